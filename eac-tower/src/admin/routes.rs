//! The admin route handlers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eac_accessor::{Candidate, EaCAccessor, ErrorKind, Errors, Outcome};
use serde::Deserialize;
use serde_json::{Value, json};

use super::reply::{error, retry_after};
use super::state::{AdminState, Refresh};

/// The 501 of a refresh or a rollback on an admin given no coordinator to go through.
fn unwired(action: &str) -> Response {
    error(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "`POST {action}` is off: this admin has no reload coordinator, and a {action} goes \
             through the process's one coordinator (single flight, cooldown, backoff), never \
             behind its back; pass it with `AdminConfig::coordinator(&reloads)`"
        ),
    )
}

/// `None` lets a mutating request through; otherwise the 429 answer, with `Retry-After`
/// in seconds until the next call is allowed. The token was checked before (in
/// [`require_admin`](super::auth::require_admin)), so that callers without it cannot use
/// up the operator's allowance; the body limit too, so an oversized body costs nothing.
/// The coordinator a route acts through, once the rate limit let the call in; or the
/// answer refusing it (no coordinator wired, or too many calls).
fn wired<'s>(
    state: &'s AdminState,
    action: &str,
) -> Result<&'s eac_accessor::reload::ReloadCoordinator, Box<Response>> {
    let Refresh::Coordinator(coordinator) = &state.refresh else {
        return Err(Box::new(unwired(action)));
    };
    match rate_limit(state) {
        Some(response) => Err(Box::new(response)),
        None => Ok(coordinator),
    }
}

fn rate_limit(state: &AdminState) -> Option<Response> {
    let wait = state.limit.try_acquire().err()?;
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too many admin requests: slow down",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, retry_after(wait));
    Some(response)
}

/// Who asked, for the audit log: the peer address and an optional `x-eac-actor` name.
fn who(peer: Option<Extension<ConnectInfo<SocketAddr>>>, headers: &HeaderMap) -> String {
    let peer = peer.map_or_else(
        || "unknown".to_owned(),
        |Extension(ConnectInfo(a))| a.to_string(),
    );
    let actor = headers
        .get("x-eac-actor")
        .and_then(|v| v.to_str().ok())
        .map(|a| {
            a.chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        });
    match actor {
        Some(actor) => format!("{actor}@{peer}"),
        None => peer,
    }
}

fn unix(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

pub(super) async fn status(State(state): State<AdminState>) -> Json<Value> {
    let status = state.accessor.status();
    let last = status.last_reload.as_ref();
    Json(json!({
        "version": status.version,
        "hash": status.hash,
        "published_at": unix(status.published_at),
        "version_origin": status.origin,
        "outcome": last.map(|r| r.outcome),
        "time": last.map(|r| unix(r.at)),
        "origin": last.map(|r| &r.origin),
        "errors": last.map(|r| r.errors.as_slice()).unwrap_or_default(),
        "last_reload": last,
        "last_rejection": status.last_rejection,
        "pending": status.pending,
        "differs_from_sources": status.differs_from_sources,
        "restart_needed": status.restart_needed,
        "held_back": status.held_back,
        "history_store": status.history_store,
        "sources": status.sources,
        "resolvers": status.resolvers,
        "canary": status.canary,
        "sections": state.accessor.section_paths(),
    }))
}

/// `GET fleet`: each member of the etcd fleet with its state (`SYNCED`, `NACKED`,
/// `SYNCING`, `STALE`), as every member computes it; 404 when this instance reads no
/// etcd prefix.
pub(super) async fn fleet(State(state): State<AdminState>) -> Response {
    let status = state.accessor.status();
    let view = status
        .sources
        .iter()
        .find_map(|s| s.details.get("fleet_view").cloned());
    match view {
        Some(view) => Json(view).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "no fleet: this instance reads no etcd prefix (live_server --etcd URL)",
        ),
    }
}

/// `POST release/{id}/promote` and `POST release/{id}/abort`: decides a fleet's gray
/// release by hand (`live_server release promote|abort ID` from the dashboard); 404
/// without a fleet or for a release without a record.
pub(super) async fn release_decide(
    State(state): State<AdminState>,
    axum::extract::Path((release, action)): axum::extract::Path<(String, String)>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let promote = match action.as_str() {
        "promote" => true,
        "abort" => false,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "a release is decided by `release/{id}/promote` or `release/{id}/abort`",
            );
        }
    };
    let Some(control) = state.accessor.release_control() else {
        return error(
            StatusCode::NOT_FOUND,
            "no fleet: this instance has no gray releases (live_server --etcd URL)",
        );
    };
    if let Some(response) = rate_limit(&state) {
        return response;
    }
    let who = who(peer, &headers);
    match control.decide(&release, promote, &who).await {
        Ok(decided) => {
            tracing::info!(target: "eac::audit", action = %action, release, who, decided, "admin release decision");
            let (decision, why) = decided.split_once(": ").unwrap_or((decided.as_str(), ""));
            Json(json!({ "release": release, "decision": decision, "why": why })).into_response()
        }
        Err(e) if e.kind() == ErrorKind::NotFound => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

pub(super) async fn history(State(state): State<AdminState>) -> Json<Value> {
    let versions: Vec<Value> = state
        .accessor
        .history()
        .iter()
        .rev()
        .map(|e| {
            json!({
                "version": e.version,
                "hash": e.hash,
                "origin": e.origin,
                "time": unix(e.published_at),
                "changed": e.changed,
            })
        })
        .collect();
    Json(json!({
        "current": state.accessor.load().version(),
        "versions": versions,
        "rejections": state.accessor.rejections(),
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct RefreshQuery {
    force: Option<String>,
}

pub(super) async fn refresh(
    State(state): State<AdminState>,
    Query(query): Query<RefreshQuery>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    if matches!(state.refresh, Refresh::Off) {
        return unwired("refresh");
    }
    if let Some(response) = rate_limit(&state) {
        return response;
    }
    let force = matches!(query.force.as_deref(), Some("1" | "true" | "yes"));
    let started = Instant::now();
    let result = state.refresh.run(force).await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let who = who(peer, &headers);
    let mut response = answer(
        &state.accessor,
        "refresh",
        &who,
        &result,
        json!({ "force": force, "duration_ms": duration_ms }),
    );
    if matches!(&result, Err(errors) if errors.has(ErrorKind::Throttled)) {
        // The coordinator knows how long its cooldown or backoff still runs; a custom
        // refresh does not say, so its callers are asked back in a second.
        let wait = state
            .refresh
            .throttled_for()
            .unwrap_or(Duration::from_secs(1));
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after(wait));
    }
    response
}

#[derive(Debug, Deserialize)]
pub(super) struct RollbackQuery {
    to: Option<String>,
}

pub(super) async fn rollback(
    State(state): State<AdminState>,
    Query(query): Query<RollbackQuery>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let coordinator = match wired(&state, "rollback") {
        Ok(coordinator) => coordinator,
        Err(response) => return *response,
    };
    let Some(to) = query.to.as_deref().and_then(|t| t.parse::<u64>().ok()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected `?to=N` with a version number",
        );
    };
    let result = coordinator.rollback_to(to).await;
    let who = who(peer, &headers);
    answer(
        &state.accessor,
        "rollback",
        &who,
        &result,
        json!({ "from": to }),
    )
}

pub(super) async fn preview(State(state): State<AdminState>, body: Bytes) -> Response {
    if let Some(response) = rate_limit(&state) {
        return response;
    }
    let overlay = match overlay(&body) {
        Ok(overlay) => overlay,
        Err(response) => return *response,
    };
    let accessor = state.accessor.clone();
    match tokio::task::spawn_blocking(move || accessor.preview(Candidate::Overlay(overlay))).await {
        Ok(preview) => Json(preview).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the preview task failed: {e}"),
        ),
    }
}

/// The overlay document of a `POST preview` or `POST canary`, or the answer refusing it.
fn overlay(body: &Bytes) -> Result<Value, Box<Response>> {
    match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "expected a JSON object: the overlay document",
        ))),
        Err(e) => {
            let at = format!("line {} column {}", e.line(), e.column());
            Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON (at {at})"),
            )))
        }
    }
}

/// `POST canary` with a JSON overlay: a canary of the sources with the overlay merged
/// over them, judged like any canary (promoted after its window, aborted on a breach).
pub(super) async fn canary(
    State(state): State<AdminState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let coordinator = match wired(&state, "canary") {
        Ok(coordinator) => coordinator,
        Err(response) => return *response,
    };
    let overlay = match overlay(&body) {
        Ok(overlay) => overlay,
        Err(response) => return *response,
    };
    let result = coordinator.start_canary(overlay).await;
    let canary = coordinator.canary().map(|c| c.status());
    let who = who(peer, &headers);
    answer(
        &state.accessor,
        "canary",
        &who,
        &result,
        json!({ "canary": canary }),
    )
}

/// `POST canary/promote`: the running canary becomes the current version now.
pub(super) async fn canary_promote(
    State(state): State<AdminState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let coordinator = match wired(&state, "canary/promote") {
        Ok(coordinator) => coordinator,
        Err(response) => return *response,
    };
    let result = coordinator.promote_canary().await;
    let who = who(peer, &headers);
    answer(&state.accessor, "canary promote", &who, &result, json!({}))
}

/// `POST canary/abort`: the running canary is dropped now; nothing is published.
pub(super) async fn canary_abort(
    State(state): State<AdminState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let coordinator = match wired(&state, "canary/abort") {
        Ok(coordinator) => coordinator,
        Err(response) => return *response,
    };
    let who = who(peer, &headers);
    match coordinator.abort_canary().await {
        Ok(()) => {
            let current = state.accessor.load();
            tracing::info!(target: "eac::audit", action = "canary abort", who, outcome = "aborted", version = current.version(), "admin canary abort");
            Json(json!({
                "outcome": "aborted",
                "version": current.version(),
                "hash": current.hash(),
                "errors": [],
            }))
            .into_response()
        }
        Err(errors) => answer(
            &state.accessor,
            "canary abort",
            &who,
            &Err(errors),
            json!({}),
        ),
    }
}

/// The JSON answer of a refresh or rollback, and its audit line.
fn answer(
    accessor: &EaCAccessor,
    action: &'static str,
    who: &str,
    result: &Result<Outcome, Errors>,
    extra: Value,
) -> Response {
    let current = accessor.load();
    let (status, mut body) = match result {
        Ok(outcome) => (
            StatusCode::OK,
            json!({
                "outcome": outcome.as_str(),
                "version": outcome.version(),
                "hash": outcome.snapshot().hash(),
                "changed": match outcome {
                    Outcome::Published { changed, .. } => changed.clone(),
                    _ => Vec::new(),
                },
                "errors": [],
            }),
        ),
        Err(errors) => (
            if errors.has(ErrorKind::NotFound) {
                StatusCode::NOT_FOUND
            } else if errors.has(ErrorKind::Throttled) {
                StatusCode::TOO_MANY_REQUESTS
            } else if errors.has(ErrorKind::Timeout) {
                StatusCode::GATEWAY_TIMEOUT
            } else if errors.has(ErrorKind::Io) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            },
            json!({
                "outcome": if errors.has(ErrorKind::Throttled) { "throttled" } else { "rejected" },
                "version": current.version(),
                "hash": current.hash(),
                "errors": errors,
            }),
        ),
    };
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    tracing::info!(
        target: "eac::audit",
        action,
        who,
        outcome = body["outcome"].as_str().unwrap_or("?"),
        version = current.version(),
        "admin {action}"
    );
    (status, Json(body)).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET diff?from=A[&to=B]`: the classified changes from kept version A to kept version
/// B (by default the running one), secrets redacted.
pub(super) async fn diff(
    State(state): State<AdminState>,
    Query(query): Query<DiffQuery>,
) -> Response {
    let version = |v: Option<&str>| v.map(|v| v.trim().parse::<u64>());
    let current = state.accessor.load().version();
    let (from, to) = match (version(query.from.as_deref()), version(query.to.as_deref())) {
        (Some(Ok(from)), None) => (from, current),
        (Some(Ok(from)), Some(Ok(to))) => (from, to),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "expected `?from=A&to=B` with two version numbers (`to` defaults to the running one)",
            );
        }
    };
    match state.accessor.diff_versions(from, to) {
        Ok(diff) => {
            let worst = diff.worst();
            Json(json!({
                "from": from,
                "to": to,
                "worst": worst,
                "changes": diff.changes,
            }))
            .into_response()
        }
        Err(errors) => {
            let status = if errors.has(ErrorKind::NotFound) {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (
                status,
                Json(json!({ "error": errors.to_string(), "errors": errors })),
            )
                .into_response()
        }
    }
}

//! An HTTP server whose behaviour follows its configuration files live.
//!
//! Run it with `cargo run --release -p eac-examples --bin live_server`, then
//! `curl -i localhost:8080/`, edit `examples/config/app.toml`, and curl again.
//! `live_server --help` lists every flag and environment variable.

mod etcd;
mod fleet;
mod options;
mod remote;
mod rules;
mod sections;
mod serve;
mod signals;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use eac_accessor::lens::Lens;
use eac_accessor::reload::ReloadCoordinator;
use eac_accessor::source::{Dir, Env, Http};
use eac_accessor::{Builder, EaCAccessor, ErrorKind};
use eac_tower::admin::{self, AdminConfig};
use eac_tower::{EaCLayer, LiveBodyLimitLayer, LiveTimeoutLayer, Pinned, Section};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use etcd::EtcdSource;
use options::Options;
use sections::{Access, Features, Greeting, Limits, Upstream};
use serve::Listener;
use signals::Signals;

/// The sections and the resolver (its replaced values kept `drain` at least), without
/// sources: what every instance validates, and what `put` validates a fleet's prefix
/// with.
pub(crate) fn sections(drain: Duration) -> Builder {
    EaCAccessor::builder()
        .drain_window(drain)
        .section::<Greeting>()
        .section::<Limits>()
        .section::<Features>()
        .section::<Upstream>()
        .section::<Access>()
        .resolver(rules::resolver())
}

/// The sections and sources, shared by serving, `--check` and `--print-schema`: the
/// files, then the remote document (`--remote`) and the etcd prefix (`--etcd`), then
/// the env overlay.
fn builder(options: &Options, remote: Option<&Http>, etcd: &EtcdSource) -> Builder {
    let builder = sections(options.drain)
        // As the user typed it, so that messages name the files that way.
        .source(Dir::new(&options.config_dir));
    let builder = match remote {
        Some(remote) => builder.source(remote.clone()),
        None => builder,
    };
    etcd.add_to(builder).source(Env::prefixed("APP_"))
}

fn accessor(
    options: &Options,
    remote: Option<&Http>,
    etcd: &EtcdSource,
) -> Result<EaCAccessor, eac_accessor::Errors> {
    builder(options, remote, etcd)
        .durable_history(options.state_dir())
        .history_label(options.config_dir_absolute().display().to_string())
        .fallback_to_last_good(options.fallback_to_last_good)
        .build()
}

/// The application's routes, with the live limits; built once.
fn app(accessor: &EaCAccessor) -> Router {
    // These limits are read through lenses from each request's pinned snapshot, so an
    // edit changes them without rebuilding anything.
    let timeout_ms = Limits::lens().request_timeout_ms();
    let timeout = LiveTimeoutLayer::new(accessor.clone(), move |s| {
        Duration::from_millis(*timeout_ms.get(s))
    });
    let max_body = Limits::lens().max_body_bytes();
    let body_limit = LiveBodyLimitLayer::new(accessor.clone(), move |s| *max_body.get(s));
    Router::new()
        .route("/", get(root))
        .route("/pinned", get(pinned_route))
        .route("/rules", get(rules::route))
        .route("/slow", get(slow))
        .layer(DefaultBodyLimit::disable())
        .layer(ServiceBuilder::new().layer(timeout).layer(body_limit))
}

/// The admin routes, refreshing through the coordinator. Reads are open only when
/// `bound` (the address of the listener they are served on) is loopback, or
/// `EAC_ADMIN_OPEN_READS=1`; event streams end when `stop` turns true.
fn admin_routes(
    reloads: &ReloadCoordinator,
    bound: SocketAddr,
    stop: &tokio::sync::watch::Receiver<bool>,
    metrics: &PrometheusHandle,
) -> Result<Router, eac_accessor::Errors> {
    let mut stop = stop.clone();
    let metrics = metrics.clone();
    let config = AdminConfig::from_env_for(bound)?
        .coordinator(reloads)
        .metrics(move || metrics.render())
        .shutdown_signal(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
    if !config.reads_are_open() {
        tracing::info!(%bound, "admin reads need a token (EAC_REFRESH_ENDPOINT_TOKEN or EAC_ADMIN_READ_TOKEN)");
    }
    // `nested` serves the dashboard at both `/_internal/eac` and `/_internal/eac/`.
    Ok(admin::nested(
        admin::DEFAULT_PREFIX,
        reloads.accessor().clone(),
        config,
    ))
}

/// Installs the process's metrics recorder (Prometheus, rendered by `GET
/// /_internal/eac/metrics`), with buckets for the `_seconds` histograms.
fn install_metrics() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), admin::SECONDS_BUCKETS)
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    // Without the exporter's listener nothing else drains the histograms between scrapes.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// `GET /`: the message (upper-cased when `features.shout`) and the version; a 500 for
/// `features.fail_ratio` of the requests.
async fn root(Pinned(snapshot): Pinned) -> axum::response::Response {
    use axum::response::IntoResponse;
    let features = snapshot.section::<Features>();
    if features.fail_ratio > 0.0 && fastrand::f64() < features.fail_ratio {
        let body = json!({ "error": "failing on purpose (features.fail_ratio)", "version": snapshot.version() });
        return (http::StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
    }
    let message = &snapshot.section::<Greeting>().message;
    let message = if features.shout {
        message.to_uppercase()
    } else {
        message.clone()
    };
    Json(json!({ "message": message, "version": snapshot.version() })).into_response()
}

/// `GET /slow?ms=N`'s query.
#[derive(serde::Deserialize)]
struct SlowQuery {
    /// How long to take, in milliseconds (at most a minute).
    #[serde(default)]
    ms: u64,
}

/// The longest `GET /slow` takes.
const SLOWEST: Duration = Duration::from_secs(60);

/// `GET /slow?ms=N`: answers after N milliseconds (at most a minute), cut short by the
/// live timeout (`[limits] request_timeout_ms`, a 408): to try the timeout, and SIGTERM's
/// drain of requests in flight, by hand.
async fn slow(
    Pinned(snapshot): Pinned,
    axum::extract::Query(query): axum::extract::Query<SlowQuery>,
) -> Json<Value> {
    let took = Duration::from_millis(query.ms).min(SLOWEST);
    tokio::time::sleep(took).await;
    Json(json!({ "slept_ms": took.as_millis() as u64, "version": snapshot.version() }))
}

/// `GET /pinned`: two sections read a few milliseconds apart, from the one pinned snapshot.
async fn pinned_route(greeting: Section<Greeting>, limits: Section<Limits>) -> Json<Value> {
    let message = greeting.message.clone();
    // Time for a publish to land mid-request; the pinned snapshot does not change.
    tokio::time::sleep(Duration::from_millis(5)).await;
    Json(json!({
        "version": greeting.snapshot().version(),
        "message": message,
        "max_body_bytes": limits.max_body_bytes,
    }))
}

/// Exit code: the state dir is another process's (`--help` lists the codes).
const STATE_DIR_IN_USE: u8 = 6;
/// Exit code: an address to listen on is taken.
const ADDRESS_IN_USE: u8 = 7;

fn fail(message: impl std::fmt::Display) -> ExitCode {
    fail_with(1, message)
}

fn fail_with(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("live_server: {message}");
    ExitCode::from(code)
}

/// Why a listener could not be bound, and the exit code that says so.
fn cannot_listen(address: SocketAddr, flag: &str, e: &std::io::Error) -> (u8, String) {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        let message = format!(
            "cannot listen on {address}: the address is in use by another process \
             (stop it, or give {flag} another address)"
        );
        return (ADDRESS_IN_USE, message);
    }
    (1, format!("cannot listen on {address}: {e}"))
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(format_args!("cannot start the async runtime: {e}")),
    };
    let code = runtime.block_on(run());
    // Not waited for: a reload still building on a blocking thread (its coordinator,
    // shut down, commits nothing). Dropping the runtime would wait for it, past the
    // shutdown grace.
    runtime.shutdown_background();
    code
}

async fn run() -> ExitCode {
    // Logs go to stderr; stdout carries only the "listening on" line.
    tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut options = Options::parse();
    if let Some(command) = options.command.take() {
        return fleet::run(command).await;
    }
    if options.print_schema {
        let schema = builder(&options, None, &EtcdSource::default()).json_schema();
        println!(
            "{}",
            serde_json::to_string_pretty(&schema).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    if options.check {
        return check(&options).await;
    }
    serve_until_stopped(options).await
}

/// `--check`: validates the configuration as a start would, serves nothing.
async fn check(options: &Options) -> ExitCode {
    let etcd = match EtcdSource::connect(options).await {
        Ok(etcd) => etcd,
        Err(e) => return fail(e),
    };
    let dir = options.config_dir.display();
    // The remote is fetched (no cache: --check opens no state dir).
    let remote = match &options.remote {
        Some(url) => match remote::start(url, options.remote_ca.as_deref(), None).await {
            Ok(r) => Some(r),
            Err(e) => return fail(e),
        },
        None => None,
    };
    match builder(options, remote.as_ref(), &etcd).check() {
        Ok(()) => {
            println!("{dir}: valid");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            println!("{dir}: invalid, {} error(s)", errors.as_slice().len());
            for error in errors.as_slice() {
                println!("  - {error}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Starts the server and serves until SIGTERM or SIGINT.
async fn serve_until_stopped(options: Options) -> ExitCode {
    // First of all: from here on no signal ends the process by its default action.
    let signals = match Signals::register() {
        Ok(s) => s,
        Err(e) => return fail(format_args!("cannot handle signals: {e}")),
    };
    // Before anything in it is read: the caches (remote, etcd) and the history.
    let state = match options.open_state_dir() {
        Ok(state) => state,
        Err(e) => return fail(e),
    };
    let etcd = match EtcdSource::connect(&options).await {
        Ok(etcd) => etcd,
        Err(e) => return fail(e),
    };
    // Before the accessor is built, so that the first publish is counted.
    let metrics = match install_metrics() {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let (mut reload_config, serve_config) = match serve::settings_from_env() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    reload_config.mode = options.reload;
    let remote = match &options.remote {
        Some(url) => match remote::start(url, options.remote_ca.as_deref(), Some(&state)).await {
            Ok(r) => Some(r),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let accessor = match accessor(&options, remote.as_ref(), &etcd) {
        Ok(a) => a,
        // Another server owns the state dir: not a configuration problem.
        Err(errors) if errors.has(ErrorKind::InUse) => {
            return fail_with(STATE_DIR_IN_USE, errors);
        }
        Err(errors) => return fail(errors),
    };
    let reloads = ReloadCoordinator::new(accessor.clone(), reload_config);
    // From here on a stop is graceful: whatever starts below is stopped in order.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    if let Err(e) = signals.running(reloads.clone(), stop_tx).await {
        return fail(e);
    }
    // Watches until dropped, at the end of this function: after the shutdown below.
    let _watcher = match reloads.watch_dir(options.config_dir_absolute()) {
        Ok(watcher) => watcher,
        Err(e) => return fail(e),
    };
    if let Some(remote) = &remote
        && let Err(e) = remote::poll(&reloads, remote)
    {
        return fail(e);
    }
    let bind = |address, flag| async move {
        TcpListener::bind(address)
            .await
            .map_err(|e| cannot_listen(address, flag, &e))
    };
    let app_listener = match bind(options.listen, "--listen").await {
        Ok(l) => l,
        Err((code, e)) => return fail_with(code, e),
    };
    let app_address = app_listener.local_addr().unwrap_or(options.listen);
    let mut listeners = Vec::new();
    let mut admin_address = None;
    match options.admin_listen {
        // Its own listener: the application's has no admin routes at all.
        Some(address) => {
            let listener = match bind(address, "--admin-listen").await {
                Ok(l) => l,
                Err((code, e)) => return fail_with(code, e),
            };
            let bound = listener.local_addr().unwrap_or(address);
            admin_address = Some(bound);
            let admin = match admin_routes(&reloads, bound, &stop, &metrics) {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            // The admin surface is not user traffic: never a canary's, never counted.
            listeners.push(Listener {
                listener,
                router: admin.layer(EaCLayer::new(accessor.clone()).canary(false)),
                name: "admin",
            });
            listeners.push(Listener {
                listener: app_listener,
                router: app(&accessor).layer(EaCLayer::new(accessor.clone())),
                name: "application",
            });
        }
        None => {
            let admin = match admin_routes(&reloads, app_address, &stop, &metrics) {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            // The admin surface is not user traffic: never a canary's, never counted.
            let admin = admin.layer(EaCLayer::new(accessor.clone()).canary(false));
            listeners.push(Listener {
                listener: app_listener,
                router: app(&accessor)
                    .layer(EaCLayer::new(accessor.clone()))
                    .merge(admin),
                name: "application",
            });
        }
    }
    let etcd = etcd.start(&reloads, &accessor, &etcd::instance_id(app_address));
    let address = app_address;
    tracing::info!(
        %address,
        admin = ?admin_address,
        config_dir = %options.config_dir.display(),
        state_dir = %options.state_dir().display(),
        remote = ?remote.as_ref().map(Http::url),
        reload = %options.reload,
        header_read_timeout = ?serve_config.header_read_timeout,
        max_connections = serve_config.max_connections,
        version = accessor.load().version(),
        "live_server listening"
    );
    match admin_address {
        Some(admin) => println!("live_server listening on http://{address} admin http://{admin}"),
        None => println!("live_server listening on http://{address}"),
    }
    serve::serve(listeners, serve_config, stop).await;
    etcd.stop().await;
    reloads.shutdown().await;
    if let Err(e) = accessor.sync_history() {
        tracing::error!(error = %e, "the history store is behind: versions were lost at exit");
    }
    ExitCode::SUCCESS
}

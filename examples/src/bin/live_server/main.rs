//! An HTTP server whose behaviour follows its configuration files live.
//!
//! Run it with `cargo run --release -p eac-examples --bin live_server`, then
//! `curl -i localhost:8080/`, edit `examples/config/app.toml`, and curl again.
//!
//! Flags (each with an environment fallback):
//! - `--config-dir DIR` (`EAC_CONFIG_DIR`, default the bundled `examples/config`)
//! - `--listen ADDR` (`EAC_LISTEN`, default `127.0.0.1:8080`)
//! - `--state-dir DIR` (`EAC_STATE_DIR`, default a folder under the system temp dir
//!   named after the config dir): where the durable history lives
//! - `--fallback-to-last-good`: start on the last good version when the files are broken
//!
//! `APP_SECTION__KEY=value` overrides the files; `EAC_REFRESH_ENDPOINT_TOKEN` turns on
//! the mutating admin routes; `EAC_REFRESH_COOLDOWN_MS`, `EAC_REFRESH_BACKOFF_MS`,
//! `EAC_REFRESH_BUILD_TIMEOUT_MS` and `EAC_WATCH_DEBOUNCE_MS` tune reloads;
//! `EAC_SHUTDOWN_GRACE_MS` (default 5000) bounds how long SIGTERM waits for open connections.

mod sections;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use eac_accessor::lens::Lens;
use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
use eac_accessor::source::{Dir, Env};
use eac_accessor::{EaCAccessor, Origin};
use eac_tower::admin::{self, AdminConfig};
use eac_tower::{EaCLayer, LiveBodyLimitLayer, LiveTimeoutLayer, Pinned, Section};
use serde_json::{Value, json};
use tower::ServiceBuilder;

use sections::{Features, Greeting, Limits, Upstream};

/// How long open connections may run on after SIGTERM (env `EAC_SHUTDOWN_GRACE_MS`).
fn shutdown_grace() -> Duration {
    std::env::var("EAC_SHUTDOWN_GRACE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(5), Duration::from_millis)
}

const USAGE: &str = "usage: live_server [--config-dir DIR] [--listen ADDR] [--state-dir DIR] [--fallback-to-last-good]
env: EAC_CONFIG_DIR, EAC_LISTEN, EAC_STATE_DIR, EAC_REFRESH_ENDPOINT_TOKEN,
     EAC_REFRESH_COOLDOWN_MS, EAC_REFRESH_BACKOFF_MS, EAC_REFRESH_BUILD_TIMEOUT_MS,
     EAC_WATCH_DEBOUNCE_MS, APP_<SECTION>__<KEY>=value";

/// Command-line options, each with an environment fallback.
#[derive(Debug)]
struct Options {
    config_dir: PathBuf,
    listen: SocketAddr,
    state_dir: PathBuf,
    fallback_to_last_good: bool,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut config_dir = env("EAC_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config")));
        let mut listen = env("EAC_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into());
        let mut state_dir = env("EAC_STATE_DIR").map(PathBuf::from);
        let mut fallback_to_last_good = false;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (arg, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--config-dir" => config_dir = PathBuf::from(value()?),
                "--listen" => listen = value()?,
                "--state-dir" => state_dir = Some(PathBuf::from(value()?)),
                "--fallback-to-last-good" => fallback_to_last_good = true,
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
            }
        }
        let listen = listen.parse().map_err(|e| {
            format!("--listen `{listen}` is not an address like 127.0.0.1:8080: {e}")
        })?;
        // One state folder per config folder, so that two servers never share a history.
        let state_dir = state_dir.unwrap_or_else(|| {
            let key = std::fs::canonicalize(&config_dir).unwrap_or_else(|_| config_dir.clone());
            let key = eac_accessor::ContentHash::of(&Value::from(key.display().to_string()));
            std::env::temp_dir()
                .join("eac-live_server")
                .join(key.to_string())
        });
        Ok(Options {
            config_dir,
            listen,
            state_dir,
            fallback_to_last_good,
        })
    }
}

fn accessor(options: &Options) -> Result<EaCAccessor, eac_accessor::Errors> {
    EaCAccessor::builder()
        .section::<Greeting>()
        .section::<Limits>()
        .section::<Features>()
        .section::<Upstream>()
        .source(Dir::new(&options.config_dir))
        .source(Env::prefixed("APP_"))
        .durable_history(&options.state_dir)
        .fallback_to_last_good(options.fallback_to_last_good)
        .build()
}

fn app(reloads: &ReloadCoordinator) -> Router {
    let accessor = reloads.accessor().clone();
    // Built once: these limits are read through lenses from each request's pinned
    // snapshot, so an edit changes them without rebuilding anything.
    let timeout_ms = Limits::lens().request_timeout_ms();
    let timeout = LiveTimeoutLayer::new(accessor.clone(), move |s| {
        Duration::from_millis(*timeout_ms.get(s))
    });
    let max_body = Limits::lens().max_body_bytes();
    let body_limit = LiveBodyLimitLayer::new(accessor.clone(), move |s| *max_body.get(s));
    let coordinator = reloads.clone();
    let admin_config = AdminConfig::from_env().refresh_with(Arc::new(move |force| {
        let coordinator = coordinator.clone();
        Box::pin(async move { coordinator.refresh(Origin::Refresh, force).await })
    }));
    // The live limits apply to the public routes; the admin routes keep their own.
    let public = Router::new()
        .route("/", get(root))
        .route("/pinned", get(pinned_route))
        .layer(DefaultBodyLimit::disable())
        .layer(ServiceBuilder::new().layer(timeout).layer(body_limit));
    public
        .nest(
            admin::DEFAULT_PREFIX,
            admin::router(accessor.clone(), admin_config),
        )
        .layer(EaCLayer::new(accessor))
}

/// `GET /`: the message (upper-cased when `features.shout`) and the version.
async fn root(Pinned(snapshot): Pinned) -> Json<Value> {
    let message = &snapshot.section::<Greeting>().message;
    let message = if snapshot.section::<Features>().shout {
        message.to_uppercase()
    } else {
        message.clone()
    };
    Json(json!({ "message": message, "version": snapshot.version() }))
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

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("live_server: {message}");
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stderr; stdout carries only the "listening on" line.
    tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let options = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("live_server: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match ReloadConfig::from_env() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let accessor = match accessor(&options) {
        Ok(a) => a,
        Err(errors) => return fail(errors),
    };
    let reloads = ReloadCoordinator::new(accessor, config);
    if let Err(e) = reloads.watch_dir(&options.config_dir) {
        return fail(e);
    }
    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Ok(l) => l,
        Err(e) => return fail(format_args!("cannot listen on {}: {e}", options.listen)),
    };
    let address = listener.local_addr().unwrap_or(options.listen);
    tracing::info!(
        %address,
        config_dir = %options.config_dir.display(),
        state_dir = %options.state_dir.display(),
        version = reloads.accessor().load().version(),
        "live_server listening"
    );
    println!("live_server listening on http://{address}");
    let service = app(&reloads).into_make_service_with_connect_info::<SocketAddr>();
    // On SIGTERM, stop accepting, let requests finish, but do not wait on a client that
    // keeps a connection open (an event stream) for more than a few seconds.
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = stopping.send(true);
    });
    let grace = async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
        tokio::time::sleep(shutdown_grace()).await;
    };
    let served = tokio::select! {
        served = server => served,
        () = grace => {
            tracing::warn!("connections still open after the grace period; closing them");
            Ok(())
        }
    };
    reloads.shutdown().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

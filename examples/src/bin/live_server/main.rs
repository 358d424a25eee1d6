//! An HTTP server whose behaviour follows its configuration files live.
//!
//! Run it with `cargo run --release -p eac-examples --bin live_server`, then
//! `curl -i localhost:8080/`. Flags: `--config-dir DIR` (env `EAC_CONFIG_DIR`, default
//! the bundled `examples/config`), `--listen ADDR` (env `EAC_LISTEN`, default
//! `127.0.0.1:8080`). Environment variables `APP_SECTION__KEY=value` override the files.

mod sections;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use eac_accessor::EaCAccessor;
use eac_accessor::source::{Dir, Env};
use eac_tower::admin::{self, AdminConfig};
use eac_tower::{EaCLayer, LiveBodyLimitLayer, LiveTimeoutLayer, Pinned, Section};
use serde_json::{Value, json};
use tower::ServiceBuilder;

use sections::{Features, Greeting, Limits, Upstream};

/// Command-line options, each with an environment fallback.
#[derive(Debug)]
struct Options {
    config_dir: PathBuf,
    listen: SocketAddr,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let mut config_dir = std::env::var_os("EAC_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config")));
        let mut listen = std::env::var("EAC_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
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
                "-h" | "--help" => {
                    println!(
                        "usage: live_server [--config-dir DIR] [--listen ADDR]\n\
                         env: EAC_CONFIG_DIR, EAC_LISTEN, APP_<SECTION>__<KEY>=value"
                    );
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument `{other}` (try --help)")),
            }
        }
        let listen = listen.parse().map_err(|e| {
            format!("--listen `{listen}` is not an address like 127.0.0.1:8080: {e}")
        })?;
        Ok(Options { config_dir, listen })
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
        .build()
}

fn app(accessor: EaCAccessor) -> Router {
    // Built once: the limits below are read from each request's pinned snapshot.
    let timeout = LiveTimeoutLayer::new(accessor.clone(), |s| {
        Duration::from_millis(s.section::<Limits>().request_timeout_ms)
    });
    let body_limit =
        LiveBodyLimitLayer::new(accessor.clone(), |s| s.section::<Limits>().max_body_bytes);
    let admin = admin::router(accessor.clone(), AdminConfig::from_env());
    Router::new()
        .route("/", get(root))
        .route("/pinned", get(pinned_route))
        .nest(admin::DEFAULT_PREFIX, admin)
        .layer(DefaultBodyLimit::disable())
        .layer(
            ServiceBuilder::new()
                .layer(EaCLayer::new(accessor))
                .layer(timeout)
                .layer(body_limit),
        )
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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_target(false).init();
    let options = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("live_server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let accessor = match accessor(&options) {
        Ok(a) => a,
        Err(errors) => {
            eprintln!("live_server: {errors}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("live_server: cannot listen on {}: {e}", options.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().map_or(options.listen, |a| a);
    tracing::info!(%address, config_dir = %options.config_dir.display(), "live_server listening");
    println!("live_server listening on http://{address}");
    let service = app(accessor).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        eprintln!("live_server: {e}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

//! The admin routes end to end, over a real HTTP server on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use eac_accessor::source::Dir;
use eac_accessor::{EaCAccessor, EaCSection};
use eac_tower::admin::{self, AdminConfig, TOKEN_HEADER};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::oneshot;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "only validated, never read")]
struct Limits {
    #[schemars(range(min = 1, max = 16_777_216))]
    max_body_bytes: u64,
}
impl EaCSection for Limits {
    const PATH: &'static str = "limits";
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[expect(dead_code, reason = "only validated, never read")]
struct Upstream {
    api_key: String,
}
impl EaCSection for Upstream {
    const PATH: &'static str = "upstream";
    fn secret_paths() -> Vec<String> {
        vec!["api_key".into()]
    }
}

const SECRET: &str = "adm1n-s3cr3t-value";
const TOKEN: &str = "t0ken-for-tests";

fn app_toml(max: &str, key: &str) -> String {
    format!("[limits]\nmax_body_bytes = {max}\n[upstream]\napi_key = {key}\n")
}

/// A running admin server on loopback; stopped on drop.
struct Server {
    address: SocketAddr,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(config: AdminConfig) -> Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app.toml"),
            app_toml("1024", &format!("\"{SECRET}\"")),
        )
        .unwrap();
        let accessor = EaCAccessor::builder()
            .section::<Limits>()
            .section::<Upstream>()
            .source(Dir::new(dir.path()))
            .build()
            .unwrap();
        let app = Router::new().nest(admin::DEFAULT_PREFIX, admin::router(accessor, config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server {
            address,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn write(&self, text: &str) {
        std::fs::write(self.dir.path().join("app.toml"), text).unwrap();
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = hyper::Request::builder().method(method).uri(format!(
            "http://{}{}{path}",
            self.address,
            admin::DEFAULT_PREFIX
        ));
        if let Some(token) = token {
            request = request.header(TOKEN_HEADER, token);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let (status, text) = self.call(method, path, token, body).await;
        assert!(!text.contains(SECRET), "{path} leaked the secret: {text}");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

/// Replaces what changes from run to run (times, hashes, paths) for snapshots.
fn stable(mut v: Value, dir: &std::path::Path) -> Value {
    fn walk(v: &mut Value, dir: &str) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    match k.as_str() {
                        "time" | "at" | "published_at" | "duration_ms" if !v.is_null() => {
                            *v = Value::from("[time]")
                        }
                        "hash" => *v = Value::from("[hash]"),
                        _ => walk(v, dir),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, dir)),
            Value::String(s) => *s = s.replace(dir, "[dir]"),
            _ => {}
        }
    }
    walk(&mut v, &dir.display().to_string());
    v
}

#[tokio::test]
async fn reads_are_open_and_mutations_are_off_without_a_token() {
    let server = Server::start(AdminConfig::new()).await;
    let (status, body) = server.json("GET", "/status", None, "").await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], 1);
    assert_eq!(body["outcome"], "published");
    let (status, body) = server.json("GET", "/history", None, "").await;
    assert_eq!(status, 200);
    assert_eq!(body["versions"][0]["version"], 1);
    for path in ["/refresh", "/rollback?to=1", "/preview"] {
        let (status, _) = server.json("POST", path, Some(TOKEN), "{}").await;
        assert_eq!(status, 403, "{path} must be off without a configured token");
    }
    server.stop().await;
}

#[tokio::test]
async fn refresh_rollback_and_status_with_the_token() {
    let server = Server::start(AdminConfig::new().token(Some(TOKEN))).await;
    let (status, _) = server.json("POST", "/refresh", None, "").await;
    assert_eq!(status, 401);
    let (status, _) = server.json("POST", "/refresh", Some("wrong"), "").await;
    assert_eq!(status, 401);

    server.write(&app_toml("2048", &format!("\"{SECRET}\"")));
    let (status, body) = server.json("POST", "/refresh", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["outcome"].as_str(), body["version"].as_u64()),
        (Some("published"), Some(2))
    );
    assert!(body["duration_ms"].as_f64().is_some());

    // A bad edit: rejected with every error, the secret's wrong value never shown.
    server.write(&app_toml("0", &format!("[\"{SECRET}\"]")));
    let (status, body) = server.json("POST", "/refresh", Some(TOKEN), "").await;
    assert_eq!(status, 422);
    assert_eq!(body["outcome"], "rejected");
    assert_eq!(body["version"], 2);
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
    let (_, status_json) = server.json("GET", "/status", None, "").await;
    assert_eq!(status_json["outcome"], "rejected");
    insta::assert_json_snapshot!(
        "status_after_rejection",
        stable(status_json, server.dir.path())
    );

    let (status, body) = server.json("POST", "/rollback?to=1", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 3);
    assert_eq!(body["from"], 1);
    let (status, _) = server
        .json("POST", "/rollback?to=99", Some(TOKEN), "")
        .await;
    assert_eq!(status, 404);
    let (status, _) = server.json("POST", "/rollback?to=x", Some(TOKEN), "").await;
    assert_eq!(status, 400);
    let (_, history) = server.json("GET", "/history", None, "").await;
    let versions: Vec<u64> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [3, 2, 1]);
    assert_eq!(history["versions"][0]["origin"]["kind"], "rollback");
    server.stop().await;
}

#[tokio::test]
async fn preview_answers_the_classified_diff_and_publishes_nothing() {
    let server = Server::start(AdminConfig::new().token(Some(TOKEN))).await;
    let overlay =
        r#"{"limits": {"max_body_bytes": 4096}, "upstream": {"api_key": "an0ther-s3cr3t"}}"#;
    let (status, body) = server.json("POST", "/preview", Some(TOKEN), overlay).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("an0ther-s3cr3t"));
    assert_eq!(body["would_publish"], true);
    insta::assert_json_snapshot!("preview", stable(body, server.dir.path()));
    let (_, status_json) = server.json("GET", "/status", None, "").await;
    assert_eq!(status_json["version"], 1, "a preview publishes nothing");

    let (status, body) = server
        .json("POST", "/preview", Some(TOKEN), "not json")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("the body is not JSON (at line 1 column 2)"))
    );
    server.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_and_bursts_get_429() {
    let server = Server::start(
        AdminConfig::new()
            .token(Some(TOKEN))
            .body_limit(256)
            .rate_limit(3, Duration::from_secs(3600)),
    )
    .await;
    let big = format!(r#"{{"limits": {{"pad": "{}"}}}}"#, "x".repeat(1024));
    let (status, _) = server.call("POST", "/preview", Some(TOKEN), &big).await;
    assert_eq!(status, 413);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(server.call("POST", "/refresh", Some(TOKEN), "").await.0);
    }
    // The oversized body was refused before the rate limit counted it.
    assert_eq!(statuses, [200, 200, 200, 429]);
    server.stop().await;
}

#[tokio::test]
async fn the_event_stream_reports_a_refresh() {
    let server = Server::start(AdminConfig::new().token(Some(TOKEN))).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let uri = format!("http://{}{}/events", server.address, admin::DEFAULT_PREFIX);
    let response = client.get(uri.parse().unwrap()).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();

    server.write(&app_toml("4096", &format!("\"{SECRET}\"")));
    let (status, _) = server.call("POST", "/refresh", Some(TOKEN), "").await;
    assert_eq!(status, 200);
    let mut seen = String::new();
    let read = async {
        while !seen.contains("\n\n") {
            let frame = body.frame().await.unwrap().unwrap();
            if let Some(data) = frame.data_ref() {
                seen.push_str(std::str::from_utf8(data).unwrap());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an event within 10 s");
    assert!(seen.starts_with("event: published\n"), "{seen}");
    assert!(seen.contains(r#""version":2"#), "{seen}");
    assert!(!seen.contains(SECRET));
    drop(body);
    server.stop().await;
}

//! `Builder::build_async` against a real HTTP server on loopback: it starts the remote
//! sources the caller did not start, leaves a started one alone, and names the URL of
//! one that cannot be reached; `build` on a source never started says so.
#![cfg(feature = "http")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use eac_accessor::source::Http;
use eac_accessor::{EaCAccessor, EaCSection, ErrorKind, Origin};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Deserialize, JsonSchema, EaCSection)]
struct Greeting {
    message: String,
}

const DOC: &str = "[greeting]\nmessage = \"from the server\"\n";

/// An HTTP/1.1 server on loopback that answers every request with [`DOC`] and counts
/// the requests; stopped on drop.
struct DocServer {
    url: String,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for DocServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DocServer {
    async fn start() -> DocServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/app.toml", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                answer(stream).await;
            }
        });
        DocServer {
            url,
            requests,
            task,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one request's head, answers [`DOC`] and closes the connection.
async fn answer(stream: TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/toml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{DOC}",
        DOC.len()
    );
    let mut rest = reply.as_bytes();
    while !rest.is_empty() {
        if stream.writable().await.is_err() {
            return;
        }
        match stream.try_write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

#[tokio::test]
async fn build_async_starts_a_remote_source_never_started() {
    let server = DocServer::start().await;
    let remote = Http::new(&server.url).unwrap();

    // `build` never touches the network: a source never started has nothing yet.
    let errors = EaCAccessor::builder()
        .section::<Greeting>()
        .source(remote.clone())
        .build()
        .expect_err("a remote source never started has no document");
    let error = &errors.as_slice()[0];
    assert_eq!(error.kind(), ErrorKind::SourceMissing, "{errors}");
    assert!(errors.to_string().contains(&server.url), "{errors}");
    assert!(errors.to_string().contains("not fetched yet"), "{errors}");
    assert_eq!(server.requests(), 0);

    let accessor = built_async_on(remote.clone()).await;
    assert_eq!(accessor.load().origin(), &Origin::Startup);
    assert_eq!(server.requests(), 1, "one fetch at start");
}

/// The greeting accessor on `remote`, built with `build_async`, serving the server's
/// document.
async fn built_async_on(remote: Http) -> EaCAccessor {
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        .source(remote)
        .build_async()
        .await
        .unwrap();
    assert_eq!(
        accessor.load().section::<Greeting>().message,
        "from the server"
    );
    accessor
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_async_leaves_a_started_source_alone() {
    let server = DocServer::start().await;
    let remote = Http::new(&server.url).unwrap();
    remote.start().await.unwrap();
    assert_eq!(server.requests(), 1);
    built_async_on(remote).await;
    assert_eq!(server.requests(), 1, "no second fetch");
}

#[tokio::test]
async fn build_async_names_a_remote_that_cannot_be_reached() {
    // A port that was just free: nothing listens there any more.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/app.toml", listener.local_addr().unwrap());
    drop(listener);
    let errors = EaCAccessor::builder()
        .section::<Greeting>()
        .source(Http::new(&url).unwrap())
        .build_async()
        .await
        .expect_err("nothing to fetch and no cache");
    assert!(errors.to_string().contains(&url), "{errors}");
}

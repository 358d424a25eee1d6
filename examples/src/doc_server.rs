//! A small HTTP server of one configuration document, with ETags and `Last-Modified`,
//! that answers conditional requests with `304`: what a config service does.
//!
//! The `doc_server` example binary serves a file with it (re-read on each request, so
//! editing the file changes the document); tests script it — count its requests and
//! connections, see the validators they carried, and choose its answers (an error
//! status, a hang, a truncated, dripped or oversized body, a redirect).
//! With the `https` feature, `DocServer::start_tls` serves the same over TLS.
//!
//! ```
//! use eac_examples::doc_server::{Document, DocServer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = DocServer::start("127.0.0.1:0".parse().unwrap()).await?;
//! server.set(Document::text("application/toml", "[greeting]\nmessage = \"hi\"\n"));
//! println!("serving {}", server.url("/app.toml"));
//! server.stop().await;
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

type Body = BoxBody<Bytes, Infallible>;

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).boxed()
}

/// Which validators the server sends with a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validators {
    /// A strong ETag and `Last-Modified` (the default).
    #[default]
    Both,
    /// A weak ETag (`W/"…"`) and `Last-Modified`.
    WeakEtag,
    /// Only `Last-Modified`.
    LastModifiedOnly,
    /// Only `Last-Modified`, the second the document changed as a static file server
    /// sends a file's modification time (`python3 -m http.server`): two changes within
    /// one second share it, and a request whose `If-Modified-Since` is that second is
    /// answered `304` whatever the document is now.
    FileTime,
    /// Neither: every request gets the whole document.
    None,
}

/// What the server serves.
#[derive(Debug, Clone)]
pub enum Document {
    /// A fixed text, with its media type.
    Text {
        /// The `Content-Type` sent.
        content_type: String,
        /// The body.
        body: Bytes,
    },
    /// A file, read on each request (so an edit changes the document); the media type
    /// comes from its extension.
    File(PathBuf),
}

impl Document {
    /// A fixed text with `content_type`.
    pub fn text(content_type: &str, body: impl Into<String>) -> Document {
        Document::Text {
            content_type: content_type.to_owned(),
            body: Bytes::from(body.into()),
        }
    }
}

/// A scripted answer in place of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The document, conditional requests honoured (the default).
    Document,
    /// This status with a short plain-text body.
    Status(u16),
    /// Never answers (until the server stops).
    Hang,
    /// Sends the head with the document's `Content-Length`, then half the body, then
    /// closes the connection.
    Truncated,
    /// `302 Found` to this location.
    Redirect(String),
    /// The document, its bytes sent a few at a time with this pause between them: a
    /// slow drip that a client's read timeout has to cut.
    Drip(Duration),
}

/// One request the server received, as far as tests care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The path and query asked for.
    pub path: String,
    /// The `If-None-Match` it carried.
    pub if_none_match: Option<String>,
    /// The `If-Modified-Since` it carried.
    pub if_modified_since: Option<String>,
    /// The `Authorization` it carried.
    pub authorization: Option<String>,
    /// What the server answered (the status; 0 for a hang).
    pub status: u16,
    /// When it arrived.
    pub at: std::time::Instant,
}

#[derive(Debug)]
struct Script {
    document: Document,
    validators: Validators,
    answer: Answer,
    /// Answer this many requests with `answer`, then go back to the document.
    times: Option<usize>,
    /// A `Last-Modified` per distinct body, so it changes when the document does.
    modified: Option<(u64, SystemTime)>,
    /// A different document on every request (a server that always changes).
    always_new: bool,
    served: u64,
    seen: Vec<Seen>,
    connections: usize,
}

/// The server; see the [module docs](self). Stop it with [`stop`](DocServer::stop).
#[derive(Debug)]
pub struct DocServer {
    addr: SocketAddr,
    tls: bool,
    script: Arc<Mutex<Script>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DocServer {
    /// Listens on `addr` (port 0 picks a free one) and serves an empty JSON object
    /// until told otherwise.
    pub async fn start(addr: SocketAddr) -> std::io::Result<DocServer> {
        DocServer::listen(addr, None).await
    }

    /// Like [`start`](DocServer::start), over TLS with `config` (its certificate and
    /// key): [`url`](DocServer::url) says `https://`.
    #[cfg(feature = "https")]
    pub async fn start_tls(
        addr: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<DocServer> {
        DocServer::listen(addr, Some(tokio_rustls::TlsAcceptor::from(config))).await
    }

    async fn listen(addr: SocketAddr, tls: Option<Acceptor>) -> std::io::Result<DocServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let script = Arc::new(Mutex::new(Script {
            document: Document::text("application/json", "{}"),
            validators: Validators::Both,
            answer: Answer::Document,
            times: None,
            modified: None,
            always_new: false,
            served: 0,
            seen: Vec::new(),
            connections: 0,
        }));
        let (stop, stopped) = watch::channel(false);
        let tls_on = tls.is_some();
        let task = tokio::spawn(serve(listener, tls, Arc::clone(&script), stopped));
        Ok(DocServer {
            addr,
            tls: tls_on,
            script,
            stop,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`, or `https://` over TLS.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        lock(&self.script)
    }

    /// Serves `document` from now on.
    pub fn set(&self, document: Document) {
        self.script().document = document;
    }

    /// Sends these validators with the document.
    pub fn validators(&self, validators: Validators) {
        self.script().validators = validators;
    }

    /// Answers every request with `answer` from now on.
    pub fn answer(&self, answer: Answer) {
        let mut script = self.script();
        script.answer = answer;
        script.times = None;
    }

    /// Answers the next `times` requests with `answer`, then serves the document again.
    pub fn answer_times(&self, answer: Answer, times: usize) {
        let mut script = self.script();
        script.answer = answer;
        script.times = Some(times);
    }

    /// Serves a new document on every request — `{n}` in the text replaced by the
    /// request's number — or, with `false`, the text as it is.
    pub fn always_new(&self, on: bool) {
        self.script().always_new = on;
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.script().seen.clone()
    }

    /// How many requests it received.
    pub fn requests(&self) -> usize {
        self.script().seen.len()
    }

    /// How many connections it accepted (over TLS: that completed the handshake).
    pub fn connections(&self) -> usize {
        self.script().connections
    }

    /// Stops listening, drops every connection (a hanging one too) and waits for that.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

#[cfg(feature = "https")]
type Acceptor = tokio_rustls::TlsAcceptor;
/// Without the `https` feature there is no TLS acceptor.
#[cfg(not(feature = "https"))]
#[derive(Clone)]
enum Acceptor {}

async fn serve(
    listener: TcpListener,
    tls: Option<Acceptor>,
    script: Arc<Mutex<Script>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let script = Arc::clone(&script);
                let tls = tls.clone();
                connections.spawn(async move {
                    match tls {
                        #[cfg(feature = "https")]
                        Some(acceptor) => {
                            // A client that refuses the certificate ends it here.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_connection(TokioIo::new(stream), script).await;
                            }
                        }
                        #[cfg(not(feature = "https"))]
                        Some(never) => match never {},
                        None => serve_connection(TokioIo::new(stream), script).await,
                    }
                });
            }
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn serve_connection<I>(io: I, script: Arc<Mutex<Script>>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    lock(&script).connections += 1;
    let service = service_fn(move |request| {
        let script = Arc::clone(&script);
        async move { Ok::<_, Infallible>(respond(&script, request).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

/// FNV-1a: stable across runs and processes, enough to tell documents apart.
fn fnv(body: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn media_type_of(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        Some("yaml" | "yml") => "application/yaml",
        Some("toml") => "application/toml",
        _ => "text/plain",
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

async fn respond(script: &Mutex<Script>, request: Request<Incoming>) -> Response<Body> {
    let headers = request.headers();
    let mut seen = Seen {
        path: request
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        if_none_match: header_text(headers, header::IF_NONE_MATCH),
        if_modified_since: header_text(headers, header::IF_MODIFIED_SINCE),
        authorization: header_text(headers, header::AUTHORIZATION),
        status: 0,
        at: std::time::Instant::now(),
    };
    let (answer, document, validators, always_new, served) = {
        let mut s = lock(script);
        let answer = s.answer.clone();
        if let Some(times) = s.times.as_mut() {
            *times = times.saturating_sub(1);
            if *times == 0 {
                s.times = None;
                s.answer = Answer::Document;
            }
        }
        s.served += 1;
        (
            answer,
            s.document.clone(),
            s.validators,
            s.always_new,
            s.served,
        )
    };
    let response = match answer {
        Answer::Hang => {
            record(script, seen);
            return std::future::pending().await;
        }
        Answer::Status(code) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            plain(code, code.canonical_reason().unwrap_or("error"))
        }
        Answer::Redirect(location) => {
            let mut r = plain(StatusCode::FOUND, "moved");
            if let Ok(v) = header::HeaderValue::try_from(location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Answer::Document | Answer::Truncated | Answer::Drip(_) => {
            let (content_type, body) = match &document {
                Document::Text { content_type, body } => (content_type.clone(), body.clone()),
                Document::File(path) => match tokio::fs::read(path).await {
                    Ok(bytes) => (media_type_of(path).to_owned(), Bytes::from(bytes)),
                    Err(e) => {
                        let r = plain(StatusCode::NOT_FOUND, &format!("cannot read the file: {e}"));
                        seen.status = r.status().as_u16();
                        record(script, seen);
                        return r;
                    }
                },
            };
            let body = if always_new {
                let text = String::from_utf8_lossy(&body);
                Bytes::from(text.replace("{n}", &served.to_string()))
            } else {
                body
            };
            document_response(
                script,
                &content_type,
                body,
                validators,
                headers,
                match answer {
                    Answer::Truncated => Delivery::Truncated,
                    Answer::Drip(pause) => Delivery::Drip(pause),
                    _ => Delivery::Whole,
                },
            )
        }
    };
    seen.status = response.status().as_u16();
    record(script, seen);
    response
}

/// The script, as it is even when a handler panicked while holding it.
fn lock(script: &Mutex<Script>) -> std::sync::MutexGuard<'_, Script> {
    script.lock().unwrap_or_else(|p| p.into_inner())
}

fn record(script: &Mutex<Script>, seen: Seen) {
    lock(script).seen.push(seen);
}

/// How a document's body goes out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Whole,
    Truncated,
    Drip(Duration),
}

/// The bytes a drip sends at a time.
const DRIP_BYTES: usize = 16;

fn document_response(
    script: &Mutex<Script>,
    content_type: &str,
    body: Bytes,
    validators: Validators,
    request: &HeaderMap,
    delivery: Delivery,
) -> Response<Body> {
    let hash = fnv(&body);
    let etag = format!("\"{hash:016x}\"");
    let modified = {
        let mut s = lock(script);
        match s.modified {
            Some((h, at)) if h == hash => at,
            _ => {
                // HTTP dates have whole seconds: a change within the same second as the
                // last one still gets a later date. The document is dated a few seconds
                // back, as a file edited before it is served: a `Last-Modified` within
                // the second of the response is a weak validator that clients do not
                // send back (RFC 9110 §8.8.2.2). `FileTime` dates it honestly instead.
                let now = SystemTime::now();
                let at = match (validators, s.modified) {
                    (Validators::FileTime, _) => now,
                    (_, Some((_, last))) => {
                        (last + Duration::from_secs(1)).max(now - Duration::from_secs(5))
                    }
                    (_, None) => now - Duration::from_secs(5),
                };
                s.modified = Some((hash, at));
                at
            }
        }
    };
    let last_modified = httpdate(modified);
    let etag = match validators {
        Validators::Both => Some(etag),
        Validators::WeakEtag => Some(format!("W/{etag}")),
        Validators::LastModifiedOnly | Validators::FileTime | Validators::None => None,
    };
    let send_date = validators != Validators::None;
    let unchanged = match (&etag, request.get(header::IF_NONE_MATCH)) {
        (Some(etag), Some(asked)) => asked.as_bytes() == etag.as_bytes(),
        (None, Some(_)) => false,
        (_, None) => {
            send_date
                && request
                    .get(header::IF_MODIFIED_SINCE)
                    .is_some_and(|v| v.as_bytes() == last_modified.as_bytes())
        }
    };
    let mut response = if unchanged {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if let Delivery::Drip(pause) = delivery {
        let declared = body.len();
        let frames = futures_util::stream::unfold(body, move |mut rest| async move {
            if rest.is_empty() {
                return None;
            }
            tokio::time::sleep(pause).await;
            let chunk = rest.split_to(DRIP_BYTES.min(rest.len()));
            Some((Ok(hyper::body::Frame::data(chunk)), rest))
        });
        let mut r = Response::new(StreamBody::new(frames).boxed());
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(declared));
        r
    } else if delivery == Delivery::Truncated {
        // A body of unknown length that ends early: hyper sends the declared length,
        // half the bytes, and closes the connection.
        let declared = body.len();
        let half = body.slice(..declared / 2);
        // The half goes out before the body ends: the client reads a head and a short body.
        let frames = futures_util::stream::unfold(Some(half), |half| async move {
            match half {
                Some(half) => Some((Ok(hyper::body::Frame::data(half)), None)),
                None => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    None
                }
            }
        });
        let mut r = Response::new(StreamBody::new(frames).boxed());
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(declared));
        r
    } else {
        Response::new(full(body))
    };
    let h = response.headers_mut();
    if let Ok(v) = header::HeaderValue::try_from(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(etag) = etag.and_then(|e| header::HeaderValue::try_from(e).ok()) {
        h.insert(header::ETAG, etag);
    }
    if send_date && let Ok(v) = header::HeaderValue::try_from(last_modified) {
        h.insert(header::LAST_MODIFIED, v);
    }
    response
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let days = secs / 86_400;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(httpdate(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            httpdate(SystemTime::UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }
}

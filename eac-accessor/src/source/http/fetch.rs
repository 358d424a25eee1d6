//! Fetching the document: the first fetch at start (or the last-good cache in its
//! place), then one conditional `GET` per poll, following redirects, on a kept connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};

use super::connection::{self, Connection, copy_request};
use super::target::{self, Target};
use super::{Doc, Fetched, Http, INVALID_HEADER, Started};
use crate::error::{Error, ErrorKind, SourceName};
use crate::source::background::{Found, text_hash};
use crate::source::{Format, SizeCap};

impl Http {
    /// Gets the first document: one fetch, bounded by the timeouts (by
    /// [`start_wait`](Http::start_wait) when there is a cache), with no retry; when it
    /// fails and the cache holds a document, starts from that at once and says so in
    /// the status, a warning and the `eac_source_serving_cache` gauge.
    ///
    /// Fails, naming the URL, when the fetch fails and there is no usable cache. A
    /// cache that is corrupt or unreadable is skipped with a warning.
    ///
    /// Warns (once per source, here) when credentials — a bearer token, a header or the URL's
    /// `user:pass@` — are to be sent in clear text: over plain `http://` to a host that is
    /// not loopback.
    pub async fn start(&self) -> Result<Started, Error> {
        self.warn_of_credentials_in_clear();
        let wait = if self.config.cache.is_some() {
            self.config.start_wait.min(self.config.timeout)
        } else {
            self.config.timeout
        };
        let fetched = match tokio::time::timeout(wait, self.fetch()).await {
            Ok(result) => result,
            Err(_) => {
                let error = self.timed_out(wait);
                self.record_error(&error, None);
                Err(error)
            }
        };
        let error = match fetched {
            Ok(_) => return Ok(Started::Fetched),
            Err(e) => e,
        };
        let Some(cache) = self.config.cache.clone() else {
            return Err(error);
        };
        let background = Arc::clone(&self.background);
        let cached = tokio::task::spawn_blocking(move || background.load_cache(&cache))
            .await
            .ok()
            .flatten();
        let Some((format, text)) = cached else {
            return Err(error);
        };
        tracing::warn!(source = %self.config.name, %error, "the remote cannot be had: starting from the last-good cache");
        self.lock().doc = Some(Arc::new(Doc {
            format,
            hash: text_hash(&text),
            text: text.into(),
            from_cache: true,
            etag: None,
            last_modified: None,
        }));
        self.background.serving_cache(true);
        Ok(Started::FromCache(error))
    }

    /// [`start`](Http::start), unless the source already holds a document (it was
    /// started, or fetched): for `Builder::build_async`, which starts what the caller
    /// did not.
    pub(crate) async fn start_unless_started(&self) -> Result<(), Error> {
        if self.lock().doc.is_some() {
            return Ok(());
        }
        self.start().await.map(drop)
    }

    /// Fetches the document once, conditionally; on a new document, keeps it for the
    /// next reload. Records the result in the status and the metrics.
    ///
    /// Errors name the URL (without credentials), never a token.
    pub async fn fetch(&self) -> Result<Fetched, Error> {
        self.fetch_with(true).await
    }

    /// Fetches the document again without conditions (no `If-None-Match`, no
    /// `If-Modified-Since`), as a forced refresh does; otherwise like
    /// [`fetch`](Http::fetch): a body equal to the document held is
    /// [`Fetched::NotModified`].
    pub async fn refetch(&self) -> Result<Fetched, Error> {
        self.fetch_with(false).await
    }

    async fn fetch_with(&self, conditional: bool) -> Result<Fetched, Error> {
        let (etag, last_modified) = {
            let state = self.lock();
            match state.doc.as_deref() {
                Some(d) if conditional => (d.etag.clone(), d.last_modified.clone()),
                _ => (None, None),
            }
        };
        self.background.asked();
        let answer = match tokio::time::timeout(
            self.config.timeout,
            self.request(etag.as_ref(), last_modified.as_ref()),
        )
        .await
        {
            Ok(answer) => answer,
            Err(_) => Err((self.timed_out(self.config.timeout), None)),
        };
        match answer {
            Ok(Answer::NotModified(code)) => {
                self.record_success(Found::NotModified, code, None);
                Ok(Fetched::NotModified)
            }
            Ok(Answer::Body {
                code,
                format,
                text,
                etag,
                last_modified,
            }) => {
                let hash = text_hash(&text);
                let mut state = self.lock();
                if state.rejected_at_start == Some(hash) {
                    // Still the document rejected at start (a server without validators):
                    // nothing new, the cache stays.
                    drop(state);
                    self.record_success(Found::NotModified, code, etag.as_ref());
                    return Ok(Fetched::NotModified);
                }
                state.rejected_at_start = None;
                let same = state
                    .doc
                    .as_deref()
                    .is_some_and(|d| d.hash == hash && d.format == format);
                // The very text held but rejected: nothing new, and not what is served.
                let held_back = same && state.rejected == Some(hash);
                state.doc = Some(Arc::new(Doc {
                    format,
                    text: text.into(),
                    hash,
                    from_cache: false,
                    etag: etag.clone(),
                    last_modified,
                }));
                drop(state);
                if held_back {
                    self.record_success(Found::NotModified, code, etag.as_ref());
                    Ok(Fetched::NotModified)
                } else if same {
                    // The very text already served: what is served now came from a fetch.
                    self.record_success(Found::Served, code, etag.as_ref());
                    Ok(Fetched::NotModified)
                } else {
                    self.record_success(Found::Modified, code, etag.as_ref());
                    Ok(Fetched::Modified)
                }
            }
            Err((error, code)) => {
                self.record_error(&error, code);
                Err(error)
            }
        }
    }

    /// Sends `request` to `target` on the kept connection when it leads there and is
    /// still open, else on a new one.
    async fn send(
        &self,
        target: &Target,
        request: Request<Empty<Bytes>>,
    ) -> Result<(http::Response<hyper::body::Incoming>, Connection), String> {
        let kept = self.lock().idle.take();
        if let Some(mut connection) = kept.filter(|c| c.is_to(target)) {
            let ready =
                tokio::time::timeout(self.config.connect_timeout, connection.sender.ready()).await;
            if let Ok(Ok(())) = ready {
                match connection.sender.send_request(copy_request(&request)).await {
                    Ok(response) => return Ok((response, connection)),
                    // Closed by the server as the request went out: a GET can be sent
                    // again, on a new connection.
                    Err(e) => {
                        tracing::debug!(source = %self.config.name, error = %e, "a kept connection failed; opening a new one");
                    }
                }
            }
        }
        let mut connection = connection::open(
            target,
            self.config.connect_timeout,
            #[cfg(feature = "https")]
            self.config.tls.as_ref(),
        )
        .await?;
        let response = connection
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        Ok((response, connection))
    }

    fn warn_of_credentials_in_clear(&self) {
        let target = &self.config.target;
        if self.config.headers.is_empty() || target.tls || target.is_loopback() {
            return;
        }
        if std::mem::replace(&mut self.lock().warned_in_clear, true) {
            return;
        }
        let headers = self.config.header_names();
        tracing::warn!(
            source = %self.config.name,
            headers = %headers.join(", "),
            "credentials are sent in clear text: plain http:// to a host that is not loopback; anyone on the network path can read them (use https://)"
        );
    }

    /// Keeps `connection` for the next fetch (its answer was read whole).
    fn keep(&self, connection: Connection) {
        self.lock().idle = Some(connection);
    }

    fn timed_out(&self, after: Duration) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!("no complete answer within {} ms", after.as_millis()),
        )
        .with_source(self.source_name())
    }

    fn record_success(&self, found: Found, code: StatusCode, etag: Option<&HeaderValue>) {
        self.background.answered(found, |details| {
            details.insert("http_status".into(), code.as_u16().into());
            if let Some(etag) = etag.and_then(|e| e.to_str().ok()) {
                details.insert("etag".into(), etag.into());
            }
        });
    }

    fn record_error(&self, error: &Error, code: Option<StatusCode>) {
        tracing::warn!(source = %self.config.name, %error, "fetching the remote document failed");
        self.background.failed(error, |details| {
            match code {
                Some(code) => details.insert("http_status".into(), code.as_u16().into()),
                None => details.remove("http_status"),
            };
        });
    }

    /// One GET, following redirects; the error carries the HTTP status when there was one.
    async fn request(
        &self,
        etag: Option<&HeaderValue>,
        last_modified: Option<&HeaderValue>,
    ) -> Result<Answer, (Error, Option<StatusCode>)> {
        let config = &*self.config;
        let err = |kind, message: String, code| {
            (
                Error::new(kind, message).with_source(self.source_name()),
                code,
            )
        };
        if config
            .headers
            .iter()
            .any(|(_, v)| v.as_bytes() == INVALID_HEADER.as_bytes())
        {
            return Err(err(
                ErrorKind::Parse,
                "a configured header value (a token?) is not a valid HTTP header value".into(),
                None,
            ));
        }
        let mut target = config.target.clone();
        let mut hops = 0u8;
        loop {
            let same_origin = target.origin() == config.target.origin();
            let mut request = Request::get(&target.path_and_query)
                .header(header::HOST, &target.authority)
                .header(
                    header::USER_AGENT,
                    concat!("eac/", env!("CARGO_PKG_VERSION")),
                )
                .header(
                    header::ACCEPT,
                    "application/toml, application/yaml, application/json;q=0.9, */*;q=0.1",
                );
            if same_origin {
                for (name, value) in &config.headers {
                    request = request.header(name, value);
                }
                if let Some(etag) = etag {
                    request = request.header(header::IF_NONE_MATCH, etag);
                }
                if let Some(since) = last_modified {
                    request = request.header(header::IF_MODIFIED_SINCE, since);
                }
            }
            let request = request.body(Empty::<Bytes>::new()).map_err(|_| {
                err(
                    ErrorKind::Parse,
                    "cannot build a request for this URL".into(),
                    None,
                )
            })?;
            let (response, connection) = self
                .send(&target, request)
                .await
                .map_err(|why| err(ErrorKind::Io, why, None))?;
            let code = response.status();
            match code {
                StatusCode::NOT_MODIFIED => {
                    self.keep(connection);
                    return Ok(Answer::NotModified(code));
                }
                StatusCode::OK => {
                    let format = self
                        .format_of(&response, &target)
                        .map_err(|e| (e, Some(code)))?;
                    let etag = response.headers().get(header::ETAG).cloned();
                    let last_modified = strong_last_modified(response.headers());
                    let text = read_body(response, config.cap, &self.source_name())
                        .await
                        .map_err(|e| (e, Some(code)))?;
                    self.keep(connection);
                    return Ok(Answer::Body {
                        code,
                        format,
                        text,
                        etag,
                        last_modified,
                    });
                }
                c if matches!(c.as_u16(), 301 | 302 | 303 | 307 | 308) => {
                    if hops >= config.max_redirects {
                        return Err(err(
                            ErrorKind::Io,
                            format!(
                                "HTTP {code}: more than {} redirects; not followed",
                                config.max_redirects
                            ),
                            Some(code),
                        ));
                    }
                    hops += 1;
                    let location = response
                        .headers()
                        .get(header::LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .ok_or_else(|| {
                            err(
                                ErrorKind::Io,
                                format!("HTTP {code} without a usable Location"),
                                Some(code),
                            )
                        })?;
                    target = target::redirect(&target, location, config.cross_origin_redirects)
                        .map_err(|refused| {
                            err(
                                ErrorKind::Io,
                                format!(
                                    "HTTP {code}: redirect not followed: {}",
                                    refused.why(&target)
                                ),
                                Some(code),
                            )
                        })?;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(err(
                        ErrorKind::Unauthorized,
                        format!(
                            "HTTP {code}: the server refused the credentials sent (or their absence)"
                        ),
                        Some(code),
                    ));
                }
                StatusCode::NOT_FOUND | StatusCode::GONE => {
                    return Err(err(
                        ErrorKind::SourceMissing,
                        format!("HTTP {code}: no document at this URL"),
                        Some(code),
                    ));
                }
                _ => {
                    return Err(err(
                        ErrorKind::Io,
                        format!("HTTP {code}: not a document"),
                        Some(code),
                    ));
                }
            }
        }
    }

    fn format_of(
        &self,
        response: &http::Response<hyper::body::Incoming>,
        target: &Target,
    ) -> Result<Format, Error> {
        if let Some(format) = self.config.format {
            return Ok(format);
        }
        let media = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        if let Some(format) = media.as_deref().and_then(format_of_media_type) {
            return Ok(format);
        }
        let path = target
            .path_and_query
            .split(['?', '#'])
            .next()
            .unwrap_or("/");
        if let Some(format) = Format::from_path(std::path::Path::new(path)) {
            return Ok(format);
        }
        Err(Error::new(
            ErrorKind::Parse,
            format!(
                "cannot tell the document's format: Content-Type `{}` and no .toml, .yaml or .json extension; set it on the source",
                media.as_deref().unwrap_or("none")
            ),
        )
        .with_source(self.source_name()))
    }
}

/// The response's `Last-Modified`, when it is a strong validator: at least a second
/// before the response's `Date` (or now, without one). A document changed within the
/// second it was fetched in has the same `Last-Modified` as the one fetched, so a
/// conditional request with it would be answered `304` (RFC 9110 §8.8.2.2): without one,
/// the next poll fetches in full and compares the content.
fn strong_last_modified(headers: &http::HeaderMap) -> Option<HeaderValue> {
    let value = headers.get(header::LAST_MODIFIED)?;
    let modified = httpdate::parse_http_date(value.to_str().ok()?).ok()?;
    let date = headers
        .get(header::DATE)
        .and_then(|d| httpdate::parse_http_date(d.to_str().ok()?).ok())
        .unwrap_or_else(std::time::SystemTime::now);
    let strong = modified
        .checked_add(Duration::from_secs(1))
        .is_some_and(|later| later <= date);
    strong.then(|| value.clone())
}

enum Answer {
    NotModified(StatusCode),
    Body {
        code: StatusCode,
        format: Format,
        text: String,
        etag: Option<HeaderValue>,
        last_modified: Option<HeaderValue>,
    },
}

fn format_of_media_type(media: &str) -> Option<Format> {
    match media {
        "application/json" | "text/json" => Some(Format::Json),
        "application/toml" | "text/toml" | "text/x-toml" | "application/x-toml" => {
            Some(Format::Toml)
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
            Some(Format::Yaml)
        }
        m if m.ends_with("+json") => Some(Format::Json),
        m if m.ends_with("+yaml") => Some(Format::Yaml),
        _ => None,
    }
}

/// Reads a body up to `cap`, refusing a larger one (by its `Content-Length` at once, or
/// while reading) and one that ends before its `Content-Length`.
async fn read_body(
    response: http::Response<hyper::body::Incoming>,
    cap: SizeCap,
    name: &SourceName,
) -> Result<String, Error> {
    let declared = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap.bytes()) {
        return Err(cap.exceeded(name));
    }
    let first = usize::try_from(declared.unwrap_or(8 * 1024)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(first);
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("the body could not be read whole: {e}"),
            )
            .with_source(name.clone())
        })?;
        if let Ok(data) = frame.into_data() {
            if (bytes.len() + data.len()) as u64 > cap.bytes() {
                return Err(cap.exceeded(name));
            }
            bytes.extend_from_slice(&data);
        }
    }
    String::from_utf8(bytes).map_err(|_| {
        Error::new(ErrorKind::Parse, "the document is not UTF-8 text").with_source(name.clone())
    })
}

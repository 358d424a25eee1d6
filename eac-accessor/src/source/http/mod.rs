//! A remote document fetched over HTTP: conditional requests, bounded reads, a
//! last-known-good cache.
//!
//! [`Http`] fetches in the background and keeps what it fetched: the pipeline's
//! [`load`](super::Source::load) reads that text and never touches the network. Fetch
//! once with [`Http::start`] before building the accessor (or let
//! [`Builder::build_async`](crate::Builder::build_async) start it), then let
//! [`ReloadCoordinator::poll`](crate::reload::ReloadCoordinator::poll) poll it.

mod connection;
mod fetch;
// `LastGood::in_dir` names its file by a URL's fingerprint, as `Http::fingerprint` does.
pub(super) mod target;
#[cfg(feature = "https")]
mod tls;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};

use super::background::{Background, text_hash};
use super::{Format, LastGood, Layer, ParseLimits, SizeCap, Source, SourceStatus};
use crate::error::{Error, ErrorKind, Errors, SourceName};
use connection::Connection;
use target::Target;

/// A TOML, YAML or JSON document at a URL, fetched in the background.
///
/// - **Conditional**: each fetch sends `If-None-Match` with the ETag exactly as received
///   (weak ones too) and `If-Modified-Since` with the `Last-Modified` received; a `304`
///   is "unchanged": nothing is parsed, hashed or published, and it counts as a hit.
/// - **Bounded**: a connect timeout (default 2 s) and a timeout on the whole request,
///   redirects included (default 5 s); a body cap (default 4 MiB) enforced while
///   reading, and a body shorter than its `Content-Length` is refused; at most 5
///   redirects, within the document's origin unless
///   [`cross_origin_redirects`](Http::cross_origin_redirects) allows others.
/// - **Secret-safe**: a [`bearer_token`](Http::bearer_token) or a custom
///   [`header`](Http::header) is never logged, never in an error, never in `Debug`; the
///   credentials of a `user:pass@` URL are sent as HTTP Basic authentication and
///   stripped wherever the URL is shown, and so is every query value
///   ([`url`](Http::url)). Credentials over plain `http://` to a host that is not
///   loopback are warned of at [`start`](Http::start).
/// - **Last good**: with a [`cache`](Http::cache), every document that was published is
///   written to it, and [`start`](Http::start) falls back to it at once when the remote
///   cannot be reached; so does the accessor's `build` when the document fetched at
///   start fails the checks (the rejection is kept in the status, and polling goes on).
/// - **One connection**: a connection the server keeps open is reused by the next
///   fetch, so polling costs no new TCP or TLS handshake.
///
/// The format comes from [`format`](Http::format), else the `Content-Type`
/// (`application/json`, `application/toml`, `application/yaml`, …), else the URL's
/// extension. Plain `http` always works; `https` needs the crate's `https` feature
/// (rustls with the ring provider, trusting webpki's root certificates, plus those of a
/// private CA given with `ca_file`).
///
/// ```no_run
/// use eac_accessor::{EaCAccessor, reload::{PollConfig, ReloadConfig, ReloadCoordinator}};
/// use eac_accessor::source::{Http, LastGood};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let remote = Http::new("http://config.internal/app.toml")?
///     .bearer_token("s3cret")
///     .cache(LastGood::new("/var/lib/app/remote.cache"));
/// remote.start().await?; // one fetch, or the cache when the remote is down
/// let accessor = EaCAccessor::builder().source(remote.clone()).build()?;
/// let reloads = ReloadCoordinator::new(accessor, ReloadConfig::from_env()?);
/// reloads.poll(&remote, PollConfig::from_env()?)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Http {
    config: Arc<Config>,
    state: Arc<Mutex<State>>,
    background: Arc<Background>,
}

#[derive(Clone)]
struct Config {
    target: Target,
    /// The URL as shown: without credentials.
    name: String,
    /// Sent on requests to the configured origin only; marked sensitive.
    headers: Vec<(HeaderName, HeaderValue)>,
    format: Option<Format>,
    cap: SizeCap,
    limits: ParseLimits,
    connect_timeout: Duration,
    timeout: Duration,
    start_wait: Duration,
    max_redirects: u8,
    cross_origin_redirects: bool,
    cache: Option<LastGood>,
    /// With extra roots ([`Http::ca_file`]): this source's own TLS configuration, built
    /// once; otherwise the shared default (webpki's roots).
    #[cfg(feature = "https")]
    tls: Option<tls::Roots>,
}

impl Config {
    /// The names of the headers sent: never their values, which hold tokens.
    fn header_names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| n.as_str()).collect()
    }
}

#[derive(Default)]
struct State {
    /// What `load` returns.
    doc: Option<Arc<Doc>>,
    /// What the last `load` returned, until `committed` caches it.
    loaded: Option<Arc<Doc>>,
    /// The connection the last fetch left open, for the next one.
    idle: Option<Connection>,
    /// The hash of the document fetched at start and rejected, while the cache is
    /// served in its place.
    rejected_at_start: Option<u64>,
    /// The hash of the last document rejected, until one is accepted.
    rejected: Option<u64>,
    /// Whether credentials in clear text were warned of (once per source).
    warned_in_clear: bool,
}

struct Doc {
    format: Format,
    text: Arc<str>,
    hash: u64,
    from_cache: bool,
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

/// What one [`Http::fetch`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fetched {
    /// A new document (a `200` whose body differs from what the source held); the next
    /// reload reads it.
    Modified,
    /// The same document: a `304`, or a `200` with the very same body.
    NotModified,
}

/// How [`Http::start`] got its first document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Started {
    /// From the remote.
    Fetched,
    /// From the last-good cache, because the remote could not be had; says why.
    FromCache(Error),
}

/// The defaults of a remote source.
const DEFAULT_CAP: SizeCap = SizeCap::mib(4);

impl Http {
    /// A source for the document at `url` (`http://` or, with the `https` feature,
    /// `https://`), with the defaults above.
    ///
    /// A URL that cannot be parsed, or of another scheme, is an error naming it (without
    /// credentials).
    ///
    /// ```
    /// use eac_accessor::source::Http;
    ///
    /// let remote = Http::new("http://ops:hunter2@config.internal:8000/app.yaml")?;
    /// assert_eq!(remote.url(), "http://config.internal:8000/app.yaml");
    /// assert!(!format!("{remote:?}").contains("hunter2"));
    /// assert!(Http::new("ftp://config.internal/app.yaml").is_err());
    /// # Ok::<(), eac_accessor::Error>(())
    /// ```
    pub fn new(url: &str) -> Result<Http, Error> {
        let parsed = target::parse_url(url)?;
        let mut headers = Vec::new();
        if let Some(credentials) = parsed.credentials {
            use base64::Engine as _;
            let basic = base64::engine::general_purpose::STANDARD.encode(credentials);
            let mut value = HeaderValue::try_from(format!("Basic {basic}")).map_err(|_| {
                Error::new(ErrorKind::Parse, "the URL's credentials cannot be sent")
                    .with_source(SourceName::Url(parsed.shown.clone()))
            })?;
            value.set_sensitive(true);
            headers.push((header::AUTHORIZATION, value));
        }
        Ok(Http {
            background: Arc::new(Background::new("http", parsed.shown.clone())),
            config: Arc::new(Config {
                name: parsed.shown,
                target: parsed.target,
                headers,
                format: None,
                cap: DEFAULT_CAP,
                limits: ParseLimits::default(),
                connect_timeout: Duration::from_secs(2),
                timeout: Duration::from_secs(5),
                start_wait: Duration::from_secs(1),
                max_redirects: 5,
                cross_origin_redirects: false,
                cache: None,
                #[cfg(feature = "https")]
                tls: None,
            }),
            state: Arc::default(),
        })
    }

    /// The URL as it is shown: in errors, the status, metrics and logs; never with
    /// credentials, a fragment or a query value (each one is `<redacted>`).
    ///
    /// ```
    /// use eac_accessor::source::Http;
    ///
    /// let remote = Http::new("http://config.internal/app.yaml?env=prod&token=s3cret")?;
    /// assert_eq!(
    ///     remote.url(),
    ///     "http://config.internal/app.yaml?env=<redacted>&token=<redacted>"
    /// );
    /// # Ok::<(), eac_accessor::Error>(())
    /// ```
    pub fn url(&self) -> &str {
        &self.config.name
    }

    /// A hash of the URL as requested, its query in full (credentials and fragment left
    /// out), stable across runs: it tells apart two URLs that [`url`](Http::url) shows
    /// alike, e.g. to name one cache file per URL ([`LastGood::in_dir`] does). It tells
    /// URLs apart; it is no digest that keeps a token of the query secret.
    pub fn fingerprint(&self) -> crate::ContentHash {
        self.config.target.fingerprint()
    }

    fn source_name(&self) -> SourceName {
        SourceName::Url(self.config.name.clone())
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Sends `Authorization: Bearer <token>` (replacing a `user:pass@` of the URL). The
    /// token is never shown; a token that is not a valid header value makes every fetch
    /// fail with an error that does not quote it.
    pub fn bearer_token(self, token: impl AsRef<str>) -> Http {
        self.header(header::AUTHORIZATION, format!("Bearer {}", token.as_ref()))
    }

    /// Sends a header on every request to the document's origin (not to another host
    /// a redirect leads to); its value is treated as a secret. A header of the same name
    /// set before is replaced.
    pub fn header(mut self, name: HeaderName, value: impl AsRef<str>) -> Http {
        let value = HeaderValue::try_from(value.as_ref()).map(|mut v| {
            v.set_sensitive(true);
            v
        });
        let config = self.config_mut();
        config.headers.retain(|(n, _)| *n != name);
        match value {
            Ok(value) => config.headers.push((name, value)),
            // Kept as an invalid marker: the fetch reports it without the value.
            Err(_) => config
                .headers
                .push((name, HeaderValue::from_static(INVALID_HEADER))),
        }
        self
    }

    /// Reads the document in `format`, whatever the server says.
    pub fn format(mut self, format: Format) -> Http {
        self.config_mut().format = Some(format);
        self
    }

    /// Refuses a body larger than `cap` (default 4 MiB), checked while reading.
    pub fn max_size(mut self, cap: SizeCap) -> Http {
        self.config_mut().cap = cap;
        self
    }

    /// Parses the document within `limits` (default [`ParseLimits::default`]).
    pub fn limits(mut self, limits: ParseLimits) -> Http {
        self.config_mut().limits = limits;
        self
    }

    /// The longest a TCP (and TLS) connection may take to open (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Http {
        self.config_mut().connect_timeout = timeout;
        self
    }

    /// The longest a whole fetch may take, redirects and body included (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Http {
        self.config_mut().timeout = timeout;
        self
    }

    /// At start with a cache, how long the first fetch may take before the source
    /// starts from the cache instead (default 1 s; without a cache, the
    /// [`timeout`](Http::timeout) applies).
    pub fn start_wait(mut self, wait: Duration) -> Http {
        self.config_mut().start_wait = wait;
        self
    }

    /// Follows at most `n` redirects (default 5; 0 refuses any).
    pub fn max_redirects(mut self, n: u8) -> Http {
        self.config_mut().max_redirects = n;
        self
    }

    /// With `true`, follows a redirect to another origin (scheme, host and port) than
    /// the document's. By default only redirects within the document's own origin are
    /// followed, and one that leads elsewhere fails the fetch with an error naming the
    /// origin it led to: a server, or whoever can change its answers, cannot send the
    /// source to fetch its configuration from another host.
    ///
    /// Either way, the [`bearer_token`](Http::bearer_token), the [`header`](Http::header)s
    /// and the URL's credentials are sent to the document's origin only, and a redirect
    /// from `https` to plain `http` is refused.
    pub fn cross_origin_redirects(mut self, allow: bool) -> Http {
        self.config_mut().cross_origin_redirects = allow;
        self
    }

    /// Keeps the last published document in `cache`, and starts from it when the
    /// remote cannot be had at start.
    pub fn cache(mut self, cache: LastGood) -> Http {
        self.config_mut().cache = Some(cache);
        self
    }

    /// Trusts the CA certificates of the PEM file at `path` for `https://` (a private
    /// CA), besides webpki's roots, which stay trusted. The file is read and checked
    /// now; call it again to add another file.
    ///
    /// A file that cannot be read, that holds no `CERTIFICATE` block, or a certificate
    /// that cannot serve as a root is an error naming the file.
    ///
    /// ```no_run
    /// use eac_accessor::source::Http;
    ///
    /// let remote = Http::new("https://config.internal/app.toml")?
    ///     .ca_file("/etc/app/internal-ca.pem")?;
    /// # Ok::<(), eac_accessor::Error>(())
    /// ```
    #[cfg(feature = "https")]
    pub fn ca_file(mut self, path: impl AsRef<std::path::Path>) -> Result<Http, Error> {
        let path = path.as_ref();
        let config = self.config_mut();
        let mut roots = config.tls.take().unwrap_or_default();
        roots.add_pem_file(path).map_err(|(kind, why)| {
            let message = format!("not usable as CA certificates for {}: {why}", config.name);
            Error::new(kind, message).with_source(SourceName::File(path.to_owned()))
        })?;
        config.tls = Some(roots);
        Ok(self)
    }
}

/// The marker for a header value that could not be built (never sent).
const INVALID_HEADER: &str = "\u{0}invalid";

impl Source for Http {
    fn load(&self) -> Result<Vec<Layer>, Vec<Error>> {
        let mut state = self.lock();
        let Some(doc) = state.doc.clone() else {
            return Err(vec![
                Error::new(
                    ErrorKind::SourceMissing,
                    "not fetched yet: await `Http::start` before building the accessor",
                )
                .with_source(self.source_name()),
            ]);
        };
        state.loaded = Some(Arc::clone(&doc));
        drop(state);
        Ok(vec![
            Layer::text(self.source_name(), doc.format, Arc::clone(&doc.text))
                .with_limits(self.config.limits),
        ])
    }

    fn committed(&self) {
        let Some(doc) = self.lock().loaded.take() else {
            return;
        };
        self.lock().rejected = None;
        self.background.accepted();
        if doc.from_cache {
            return;
        }
        self.background.serving_cache(false);
        if let Some(cache) = &self.config.cache {
            self.background.store_cache(cache, doc.format, &doc.text);
        }
    }

    /// The document was rejected: shown in the status, counted once, and never cached
    /// (what `load` returned is forgotten, so `committed` does not store it).
    fn rejected(&self, inputs: &[(SourceName, Errors)]) {
        let ours = self.source_name();
        let Some((_, errors)) = inputs.iter().find(|(input, _)| *input == ours) else {
            return;
        };
        let new = {
            let mut state = self.lock();
            let Some(doc) = state.loaded.take() else {
                return;
            };
            state.rejected.replace(doc.hash) != Some(doc.hash)
        };
        self.background.rejected(errors, new);
    }

    fn status(&self) -> Option<SourceStatus> {
        Some(self.background.status())
    }

    /// The document fetched at start was rejected: serve the cache instead, as when the
    /// server is down. Only when an error names this source, or no source at all (a
    /// missing key): a broken local file is no reason to leave a good remote document.
    fn fall_back(&self, why: &Errors) -> bool {
        let Some(cache) = &self.config.cache else {
            return false;
        };
        let ours = self.source_name();
        if !why.iter().any(|e| e.source().is_none_or(|s| *s == ours)) {
            return false;
        }
        let fetched = match self.lock().doc.clone() {
            Some(doc) if !doc.from_cache => doc,
            _ => return false,
        };
        let Some((format, text)) = self.background.load_cache(cache) else {
            return false;
        };
        let hash = text_hash(&text);
        if hash == fetched.hash && format == fetched.format {
            // The cache holds that very document: nothing else to try.
            return false;
        }
        tracing::warn!(source = %self.config.name, errors = %why, "the fetched document was rejected at start: starting from the last-good cache");
        let mut state = self.lock();
        state.rejected_at_start = Some(fetched.hash);
        state.doc = Some(Arc::new(Doc {
            format,
            text: text.into(),
            hash,
            from_cache: true,
            // Polls stay conditional on the rejected document: a 304 says it is still
            // there, and nothing is read again.
            etag: fetched.etag.clone(),
            last_modified: fetched.last_modified.clone(),
        }));
        drop(state);
        self.background.fell_back(format!(
            "the document fetched at start was rejected; serving the last-good cache: {why}"
        ));
        true
    }
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never a header's value: tokens live there.
        let headers = self.config.header_names();
        let mut f = f.debug_struct("Http");
        f.field("url", &self.config.name)
            .field("headers", &headers)
            .field("format", &self.config.format)
            .field("max_size", &self.config.cap)
            .field("timeout", &self.config.timeout)
            .field("cache", &self.config.cache);
        #[cfg(feature = "https")]
        f.field(
            "ca_files",
            &self.config.tls.as_ref().map_or(&[][..], |r| r.files()),
        );
        f.finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_sent_as_basic_and_never_shown() {
        let remote = Http::new("http://ops:p%40ss@127.0.0.1:8080/a/app.toml?x=1#frag").unwrap();
        assert_eq!(
            remote.url(),
            "http://127.0.0.1:8080/a/app.toml?x=<redacted>"
        );
        let (name, value) = &remote.config.headers[0];
        assert_eq!(name, header::AUTHORIZATION);
        assert_eq!(value.as_bytes(), b"Basic b3BzOnBAc3M=");
        for url in [
            "gopher://ops:hunter2@h/x",
            "http//ops:hunter2@h/x",
            "http://ops:hunter2@h:99999/",
        ] {
            let err = Http::new(url).unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[cfg(not(feature = "https"))]
    #[tokio::test]
    async fn https_without_its_feature_says_so() {
        let remote = Http::new("https://config.invalid/app.toml").unwrap();
        let err = remote.fetch().await.unwrap_err();
        assert!(err.message().contains("`https` feature"), "{err}");
        assert_eq!(
            err.source(),
            Some(&SourceName::Url("https://config.invalid/app.toml".into()))
        );
    }
}

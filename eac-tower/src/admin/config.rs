//! The admin's settings: tokens, read policy, limits, and what a refresh goes through;
//! they build the state the routes share.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use eac_accessor::reload::ReloadCoordinator;
use eac_accessor::{EaCAccessor, Error, ErrorKind, Errors, SourceName};
use futures_util::FutureExt;
use tokio::sync::Semaphore;

use super::auth::{Policy, RateLimit, Reads, Token};
use super::events::{Shutdown, Streams};
use super::metrics::RenderFn;
use super::state::{AdminState, Refresh, RefreshFn};
use super::{MAX_STREAMS_ENV, OPEN_READS_ENV, READ_TOKEN_ENV, TOKEN_ENV};

/// The largest `EAC_ADMIN_MAX_STREAMS` accepted.
const MAX_STREAMS_LIMIT: usize = 100_000;

/// Settings of the admin service: tokens, read policy and limits.
///
/// ```
/// use std::time::Duration;
/// use eac_tower::admin::AdminConfig;
///
/// let config = AdminConfig::new()
///     .token(Some("admin-token"))
///     .read_token(Some("read-token"))
///     .max_streams(16)
///     .rate_limit(5, Duration::from_secs(2));
/// assert!(!config.reads_are_open());
/// ```
#[derive(Clone)]
pub struct AdminConfig {
    token: Option<Token>,
    read_token: Option<Token>,
    reads: Reads,
    body_limit: usize,
    burst: u32,
    refill: Duration,
    refresh: Refresh,
    max_streams: usize,
    keep_alive: Duration,
    shutdown: Option<Shutdown>,
    metrics: Option<RenderFn>,
}

impl AdminConfig {
    /// Closed: no token (the mutating routes are off), reads need a token, no coordinator
    /// (refresh and rollback answer 501 until [`coordinator`](AdminConfig::coordinator)).
    /// 64 KiB bodies, 10 mutating requests at once then one per second, 64 event streams
    /// with a keep-alive every 15 s.
    pub fn new() -> AdminConfig {
        AdminConfig {
            token: None,
            read_token: None,
            reads: Reads::Closed,
            body_limit: 64 * 1024,
            burst: 10,
            refill: Duration::from_secs(1),
            refresh: Refresh::Off,
            max_streams: 64,
            keep_alive: Duration::from_secs(15),
            shutdown: None,
            metrics: None,
        }
    }

    /// The settings for an admin served on a listener bound to `bound`, from the
    /// environment: reads open when `bound` is a loopback address.
    ///
    /// Reads `EAC_REFRESH_ENDPOINT_TOKEN` (the admin token), `EAC_ADMIN_READ_TOKEN` (the
    /// read-only token; an empty variable counts as unset), `EAC_ADMIN_OPEN_READS` (`1`
    /// opens reads whatever the address, logged as a warning; `0` closes them even on
    /// loopback) and `EAC_ADMIN_MAX_STREAMS`. Pass the address the listener is actually
    /// bound to ([`local_addr`](std::net::TcpListener::local_addr)), not a peer's.
    ///
    /// A variable that is set but malformed is an error naming it; every such variable
    /// is reported.
    pub fn from_env_for(bound: SocketAddr) -> Result<AdminConfig, Errors> {
        AdminConfig::from_vars_for(bound, |name| std::env::var(name).ok())
    }

    /// Like [`from_env_for`](AdminConfig::from_env_for), reading variables through `var`.
    ///
    /// ```
    /// use eac_tower::admin::AdminConfig;
    ///
    /// let vars = |name: &str| (name == "EAC_ADMIN_READ_TOKEN").then(|| "r3ad".to_owned());
    /// assert!(AdminConfig::from_vars_for("127.0.0.1:8080".parse()?, vars)?.reads_are_open());
    /// assert!(!AdminConfig::from_vars_for("0.0.0.0:8080".parse()?, vars)?.reads_are_open());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_vars_for(
        bound: SocketAddr,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<AdminConfig, Errors> {
        let (config, errors) = AdminConfig::read_vars(Some(bound), var);
        match Errors::from_vec(errors) {
            None => Ok(config),
            Some(errors) => Err(errors),
        }
    }

    /// The settings from the environment, for an admin whose listener's address is not
    /// known here: reads closed unless `EAC_ADMIN_OPEN_READS=1`.
    ///
    /// Prefer [`from_env_for`](AdminConfig::from_env_for), which opens reads on loopback
    /// and fails on a malformed variable; here a malformed variable is logged and its
    /// default kept.
    pub fn from_env() -> AdminConfig {
        let (config, errors) = AdminConfig::read_vars(None, |name| std::env::var(name).ok());
        if let Some(errors) = Errors::from_vec(errors) {
            tracing::error!(%errors, "admin settings: malformed variables ignored");
        }
        config
    }

    /// The settings the variables give, a malformed one left at its default, and an
    /// error for each malformed one.
    fn read_vars(
        bound: Option<SocketAddr>,
        var: impl Fn(&str) -> Option<String>,
    ) -> (AdminConfig, Vec<Error>) {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        // Tokens are trimmed and an empty one is none (see `token`).
        let mut errors = Vec::new();
        let mut config = AdminConfig::new()
            .token(set(TOKEN_ENV))
            .read_token(set(READ_TOKEN_ENV));
        let loopback = bound.is_some_and(|b| is_loopback(b.ip()));
        let by_address = if loopback {
            Reads::Loopback
        } else {
            Reads::Closed
        };
        config.reads = match set(OPEN_READS_ENV).as_deref().map(str::trim) {
            None => {
                if let (true, Some(bound)) = (loopback, bound) {
                    tracing::info!(
                        %bound,
                        "admin reads are open to requests for a loopback address or localhost: \
                         the admin listens on loopback"
                    );
                }
                by_address
            }
            Some("1" | "true" | "yes" | "on") => {
                if !loopback {
                    tracing::warn!(
                        bound = ?bound,
                        "admin reads are open to anyone who reaches the admin ({OPEN_READS_ENV}=1)"
                    );
                }
                Reads::Open
            }
            Some("0" | "false" | "no" | "off") => Reads::Closed,
            Some(_) => {
                errors.push(
                    Error::new(ErrorKind::Parse, "expected 1 (open reads) or 0 (closed)")
                        .with_source(SourceName::EnvVar(OPEN_READS_ENV.to_owned())),
                );
                by_address
            }
        };
        if let Some(value) = set(MAX_STREAMS_ENV) {
            match value.trim().parse::<usize>() {
                Ok(n) if n <= MAX_STREAMS_LIMIT => config.max_streams = n,
                _ => errors.push(
                    Error::new(
                        ErrorKind::Parse,
                        format!(
                            "expected a whole number of event streams, at most {MAX_STREAMS_LIMIT}"
                        ),
                    )
                    .with_source(SourceName::EnvVar(MAX_STREAMS_ENV.to_owned())),
                ),
            }
        }
        (config, errors)
    }

    /// Sets (or, with `None`, clears) the admin token, which unlocks every route.
    ///
    /// Surrounding whitespace is ignored (a token read from a file often ends with a
    /// newline, which no header can carry); an empty token counts as none.
    ///
    /// To clear it without naming a type, use [`without_token`](AdminConfig::without_token)
    /// (a bare `token(None)` does not say what `None` holds).
    pub fn token(mut self, token: Option<impl AsRef<str>>) -> AdminConfig {
        self.token = token.and_then(|t| Token::new(t.as_ref()));
        self
    }

    /// Clears the admin token: the mutating routes are off (403 to everyone).
    pub fn without_token(mut self) -> AdminConfig {
        self.token = None;
        self
    }

    /// Sets (or, with `None`, clears) the read-only token, which unlocks the read routes
    /// and which a mutating route refuses with 403. Whitespace is handled as by
    /// [`token`](AdminConfig::token).
    pub fn read_token(mut self, token: Option<impl AsRef<str>>) -> AdminConfig {
        self.read_token = token.and_then(|t| Token::new(t.as_ref()));
        self
    }

    /// Clears the read-only token.
    pub fn without_read_token(mut self) -> AdminConfig {
        self.read_token = None;
        self
    }

    /// Whether the read routes answer every request without a token (by default they
    /// do not), whatever host name it is addressed to.
    ///
    /// Open them only where everyone who can reach the admin may read the whole
    /// configuration history: a port no one else reaches. On a loopback listener prefer
    /// [`from_env_for`](AdminConfig::from_env_for), which opens reads only to requests
    /// addressed to a loopback address or `localhost`, so that a web page elsewhere
    /// cannot read them by rebinding its name to this machine.
    pub fn open_reads(mut self, open: bool) -> AdminConfig {
        self.reads = if open { Reads::Open } else { Reads::Closed };
        self
    }

    /// Whether the read routes answer without a token: to every request, or (on a
    /// loopback listener, by [`from_env_for`](AdminConfig::from_env_for)) to requests
    /// addressed to a loopback address or `localhost`.
    pub fn reads_are_open(&self) -> bool {
        self.reads != Reads::Closed
    }

    /// The largest request body accepted, in bytes.
    pub fn body_limit(mut self, bytes: usize) -> AdminConfig {
        self.body_limit = bytes;
        self
    }

    /// `burst` mutating requests at once, then one per `refill`; the budget is shared by
    /// refresh, rollback and preview.
    pub fn rate_limit(mut self, burst: u32, refill: Duration) -> AdminConfig {
        self.burst = burst;
        self.refill = refill;
        self
    }

    /// The most event streams open at once (0 turns the stream off).
    pub fn max_streams(mut self, streams: usize) -> AdminConfig {
        self.max_streams = streams.min(Semaphore::MAX_PERMITS);
        self
    }

    /// How long an event stream may stay silent before it sends a keep-alive comment
    /// (at least 1 ms).
    pub fn keep_alive(mut self, interval: Duration) -> AdminConfig {
        self.keep_alive = interval.max(Duration::from_millis(1));
        self
    }

    /// Ends every event stream when `signal` completes, so that a graceful shutdown is
    /// not held up by them; streams opened after that end at once.
    ///
    /// Pass the same signal as the server's graceful shutdown (a clone of a
    /// `tokio::sync::watch::Receiver` awaited, for instance).
    pub fn shutdown_signal(
        mut self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> AdminConfig {
        let signal: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(signal);
        self.shutdown = Some(signal.shared());
        self
    }

    /// Makes `POST refresh` and `POST rollback` go through `coordinator` (single flight,
    /// cooldown, backoff, health checks), a refresh with origin
    /// [`Origin::Refresh`](eac_accessor::Origin::Refresh).
    ///
    /// Without it, both answer 501 saying to pass it (a refresh can also be wired with
    /// [`refresh_with`](AdminConfig::refresh_with)): the admin never reloads or rolls
    /// back the accessor behind the back of the coordinator that the process's other
    /// triggers go through. A refresh the coordinator refuses for now answers 429 with
    /// `Retry-After`. `coordinator` must publish to the accessor given to [`router`](super::router).
    pub fn coordinator(mut self, coordinator: &ReloadCoordinator) -> AdminConfig {
        self.refresh = Refresh::Coordinator(coordinator.clone());
        self
    }

    /// Serves `GET metrics` with what `render` returns: the Prometheus text exposition of
    /// the application's recorder.
    ///
    /// eac never installs a recorder: install one (with `metrics-exporter-prometheus`,
    /// default features off, and [`SECONDS_BUCKETS`](super::SECONDS_BUCKETS) for the `_seconds` histograms) and
    /// pass `move || handle.render()`. Without it, `GET metrics` answers 404 saying so.
    /// `render` runs on a blocking thread, once per scrape.
    pub fn metrics(mut self, render: impl Fn() -> String + Send + Sync + 'static) -> AdminConfig {
        self.metrics = Some(Arc::new(render));
        self
    }

    /// What `POST refresh` runs, for a trigger other than a [`ReloadCoordinator`]
    /// (which [`coordinator`](AdminConfig::coordinator) wires in one call, rollback
    /// included). `POST rollback` needs a coordinator all the same.
    pub fn refresh_with(mut self, refresh: RefreshFn) -> AdminConfig {
        self.refresh = Refresh::With(refresh);
        self
    }

    /// The state the routes share, for `accessor`, and the body limit in bytes; warns of
    /// settings that leave every route closed or refresh and rollback unwired.
    pub(super) fn into_state(self, accessor: EaCAccessor) -> (AdminState, usize) {
        let policy = Policy {
            admin: self.token,
            read: self.read_token,
            reads: self.reads,
        };
        if policy.reads == Reads::Closed && policy.admin.is_none() && policy.read.is_none() {
            tracing::warn!(
                "admin reads are closed and no token is set: every admin route answers 403 \
                 (set {READ_TOKEN_ENV} or {TOKEN_ENV})"
            );
        }
        if policy.admin.is_some() && !matches!(self.refresh, Refresh::Coordinator(_)) {
            tracing::warn!(
                "the admin has no reload coordinator: POST rollback (and POST refresh, unless \
                 wired with AdminConfig::refresh_with) answer 501; pass it with \
                 AdminConfig::coordinator"
            );
        }
        let state = AdminState {
            refresh: self.refresh,
            accessor,
            policy: Arc::new(policy),
            limit: Arc::new(RateLimit::new(self.burst, self.refill)),
            streams: Streams {
                slots: Arc::new(Semaphore::new(self.max_streams)),
                max: self.max_streams,
                keep_alive: self.keep_alive,
                shutdown: self.shutdown,
            },
            metrics: self.metrics,
        };
        (state, self.body_limit)
    }
}

/// Whether `ip` is a loopback address, IPv4-mapped IPv6 included.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig::new()
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |t: &Option<Token>| t.as_ref().map(|_| "[set]");
        f.debug_struct("AdminConfig")
            .field("token", &set(&self.token))
            .field("read_token", &set(&self.read_token))
            .field(
                "reads",
                &match self.reads {
                    Reads::Closed => "closed",
                    Reads::Loopback => "open to loopback host names",
                    Reads::Open => "open",
                },
            )
            .field("body_limit", &self.body_limit)
            .field("burst", &self.burst)
            .field("refill", &self.refill)
            .field(
                "refresh",
                &match self.refresh {
                    Refresh::Off => "off",
                    Refresh::With(_) => "custom",
                    Refresh::Coordinator(_) => "coordinator",
                },
            )
            .field("max_streams", &self.max_streams)
            .field("keep_alive", &self.keep_alive)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(bound: &str, vars: &[(&str, &str)]) -> Result<AdminConfig, Errors> {
        AdminConfig::from_vars_for(bound.parse().unwrap(), |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn reads_open_by_the_bound_address() {
        for open in [
            "127.0.0.1:8080",
            "127.3.4.5:1",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(config(open, &[]).unwrap().reads_are_open(), "{open}");
        }
        for closed in [
            "0.0.0.0:8080",
            "[::]:8080",
            "10.0.0.7:8080",
            "[::ffff:10.0.0.7]:80",
        ] {
            assert!(!config(closed, &[]).unwrap().reads_are_open(), "{closed}");
        }
    }

    #[test]
    fn the_operator_opens_or_closes_reads() {
        let open = config("0.0.0.0:8080", &[(OPEN_READS_ENV, "1")]).unwrap();
        assert!(open.reads_are_open());
        let closed = config("127.0.0.1:8080", &[(OPEN_READS_ENV, "0")]).unwrap();
        assert!(!closed.reads_are_open());
        let unset = config("0.0.0.0:8080", &[(OPEN_READS_ENV, "")]).unwrap();
        assert!(!unset.reads_are_open());
    }

    #[test]
    fn tokens_and_streams_come_from_the_environment() {
        let config = config(
            "0.0.0.0:8080",
            &[
                (TOKEN_ENV, "adm"),
                (READ_TOKEN_ENV, "rd"),
                (MAX_STREAMS_ENV, " 3 "),
            ],
        )
        .unwrap();
        assert!(config.token.as_ref().is_some_and(|t| t.matches("adm")));
        assert!(config.read_token.as_ref().is_some_and(|t| t.matches("rd")));
        assert_eq!(config.max_streams, 3);
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("adm\"") && !debug.contains("\"rd"),
            "{debug}"
        );
        assert!(debug.contains(r#"read_token: Some("[set]")"#), "{debug}");
    }

    #[test]
    fn every_malformed_variable_is_named() {
        let errors = config(
            "0.0.0.0:8080",
            &[(OPEN_READS_ENV, "maybe"), (MAX_STREAMS_ENV, "lots")],
        )
        .unwrap_err();
        let named: Vec<String> = errors
            .iter()
            .map(|e| e.source().unwrap().to_string())
            .collect();
        assert_eq!(
            named,
            [
                format!("env var `{OPEN_READS_ENV}`"),
                format!("env var `{MAX_STREAMS_ENV}`")
            ]
        );
        let too_many = (MAX_STREAMS_LIMIT + 1).to_string();
        assert!(config("0.0.0.0:8080", &[(MAX_STREAMS_ENV, &too_many)]).is_err());
    }

    #[test]
    fn blank_tokens_are_none_and_whitespace_is_ignored() {
        let config = AdminConfig::new()
            .token(Some("  "))
            .read_token(Some(" rd\n"));
        assert!(config.token.is_none());
        assert!(config.read_token.as_ref().is_some_and(|t| t.matches("rd")));
    }

    #[test]
    fn clearing_the_tokens_needs_no_annotation() {
        let config = AdminConfig::new()
            .token(Some("a"))
            .read_token(Some(String::from("b")))
            .without_token()
            .without_read_token();
        assert!(config.token.is_none() && config.read_token.is_none());
    }
}

//! Who may call what: the tokens, the read policy, and the rate limit of the mutating
//! routes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::reply::error;
use super::{OPEN_READS_ENV, READ_TOKEN_ENV, TOKEN_ENV, TOKEN_HEADER};

/// An expected token, kept only as its SHA-256 so that comparing is constant-time and
/// does not leak the length.
#[derive(Clone)]
pub(crate) struct Token([u8; 32]);

impl Token {
    /// The token `secret`, without surrounding whitespace; `None` when nothing is left,
    /// since an empty token would let an empty header in.
    pub(crate) fn new(secret: &str) -> Option<Token> {
        let secret = secret.trim();
        (!secret.is_empty()).then(|| Token(Sha256::digest(secret.as_bytes()).into()))
    }

    /// Whether `given` is the token: both sides hashed, then compared in constant time.
    pub(crate) fn matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        self.0.ct_eq(&given).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

/// What a request's token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Access {
    /// No token, or a wrong one.
    None,
    /// The read-only token.
    Read,
    /// The admin token.
    Admin,
}

/// When the read routes answer without a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reads {
    /// Only with a token.
    Closed,
    /// To requests addressed to a loopback address or `localhost`: the listener is bound
    /// to loopback. A page on another site whose name is rebound to 127.0.0.1 reaches the
    /// listener all the same, but its requests carry that name, so they are refused.
    Loopback,
    /// To every request: the operator opened them.
    Open,
}

/// The tokens a server accepts and whether reads need one.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) admin: Option<Token>,
    pub(crate) read: Option<Token>,
    pub(crate) reads: Reads,
}

impl Policy {
    /// The most that the tokens sent with a request allow. Both the `x-eac-refresh-token`
    /// header and `Authorization: Bearer` are looked at, so a proxy's own `Authorization`
    /// does not hide the admin header.
    pub(crate) fn access(&self, headers: &HeaderMap) -> Access {
        let header_token = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok());
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let mut access = Access::None;
        let given = [header_token, bearer].into_iter().flatten();
        for given in given.map(str::trim).filter(|g| !g.is_empty()) {
            // Both tokens are compared each time: how long this takes says nothing about
            // which one (if any) matched.
            let admin = self.admin.as_ref().is_some_and(|t| t.matches(given));
            let read = self.read.as_ref().is_some_and(|t| t.matches(given));
            let this = if admin {
                Access::Admin
            } else if read {
                Access::Read
            } else {
                Access::None
            };
            access = access.max(this);
        }
        access
    }
}

/// How to send a token, for every refusal.
const HOW: &str = "in the `x-eac-refresh-token` header or as `Authorization: Bearer <token>`";

/// A 401 that says which token to send and how.
fn unauthorized(message: String) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"eac admin\""),
    );
    response
}

/// Guards every read route: lets the request through when it carries either token or
/// reads are open to it; otherwise answers before anything is computed for it.
///
/// - Reads open because the listener is on loopback, and a request addressed to some
///   other name (or to none): 403, saying how to open reads on purpose.
/// - Reads closed and no token set on the server: 403, as no token can open them.
/// - Reads closed otherwise: 401, saying which token to send.
pub(super) async fn require_read(
    State(policy): State<Arc<Policy>>,
    request: Request,
    next: Next,
) -> Response {
    if policy.access(request.headers()) >= Access::Read {
        return next.run(request).await;
    }
    match policy.reads {
        Reads::Open => return next.run(request).await,
        Reads::Loopback => {
            let host = requested_host(&request);
            if host.is_some_and(names_loopback) {
                return next.run(request).await;
            }
            return error(StatusCode::FORBIDDEN, foreign_host(host));
        }
        Reads::Closed => {}
    }
    if policy.admin.is_none() && policy.read.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "admin reads are off: no token is set on this server, so none can open them; \
                 set `{READ_TOKEN_ENV}` (or `{TOKEN_ENV}`) on the server and send it {HOW}, \
                 or open reads to anyone who reaches the admin with `{OPEN_READS_ENV}=1`"
            ),
        );
    }
    unauthorized(format!(
        "this admin route needs a token: send the read-only token (`{READ_TOKEN_ENV}`) or \
         the admin token (`{TOKEN_ENV}`) {HOW}"
    ))
}

/// The host a request is addressed to: its URI's authority (HTTP/2's `:authority`, or
/// an absolute-form request target, which RFC 9112 §3.2.2 says wins over `Host`), else
/// its one `Host` header. `None` when it names none, or several.
fn requested_host(request: &Request) -> Option<&str> {
    if let Some(authority) = request.uri().authority() {
        return Some(authority.as_str());
    }
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.to_str().ok(),
        _ => None,
    }
}

/// Whether `authority` (`host[:port]`) names this machine by a loopback address (IPv4,
/// or IPv6 in brackets, IPv4-mapped included) or `localhost` (any case, a trailing dot
/// allowed). A name that a DNS server answers for, however it resolves, is not one.
fn names_loopback(authority: &str) -> bool {
    let port_ok = |rest: &str| rest.bytes().all(|b| b.is_ascii_digit());
    if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((ip, rest)) = bracketed.split_once(']') else {
            return false;
        };
        let port = rest.is_empty() || rest.strip_prefix(':').is_some_and(port_ok);
        return port
            && ip
                .parse::<Ipv6Addr>()
                .is_ok_and(|ip| IpAddr::V6(ip).to_canonical().is_loopback());
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port_ok(port) => host,
        Some(_) => return false,
        None => authority,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// The 403 of a read addressed to a name other than loopback while reads are open only
/// there: the name it was for (cut short), why that is refused and the ways to read.
fn foreign_host(host: Option<&str>) -> String {
    let named = match host {
        Some(host) => {
            let shown: String = host.chars().filter(|c| !c.is_control()).take(64).collect();
            let cut = if host.chars().count() > 64 { "…" } else { "" };
            format!(
                "this one is for `{shown}{cut}`, a name that a web page elsewhere could have \
                 pointed at this machine"
            )
        }
        None => "this one names no host (its `Host` header is missing, repeated or unreadable)"
            .to_owned(),
    };
    format!(
        "admin reads without a token are open only to requests addressed to a loopback \
         address or `localhost` (the admin listens on loopback), and {named}. Send the \
         read-only token (`{READ_TOKEN_ENV}`) or the admin token (`{TOKEN_ENV}`) {HOW}, or \
         open reads to every host name on purpose with `{OPEN_READS_ENV}=1`"
    )
}

/// Guards every mutating route: only the admin token passes; the read-only token gets
/// 403, anything else 401. Without a configured admin token the routes are off: every
/// caller gets 403, as no token can open them.
pub(super) async fn require_admin(
    State(policy): State<Arc<Policy>>,
    request: Request,
    next: Next,
) -> Response {
    match policy.access(request.headers()) {
        Access::Admin => next.run(request).await,
        Access::Read => error(
            StatusCode::FORBIDDEN,
            format!(
                "the read-only token cannot change anything: send the admin token (`{TOKEN_ENV}`)"
            ),
        ),
        Access::None if policy.admin.is_none() => error(
            StatusCode::FORBIDDEN,
            format!(
                "mutating admin routes are off: no admin token is set on this server, so none \
                 can open them; set `{TOKEN_ENV}` on the server to turn them on, then send that \
                 token {HOW}"
            ),
        ),
        Access::None => unauthorized(format!(
            "this admin route needs the admin token (`{TOKEN_ENV}`) {HOW}"
        )),
    }
}

/// A token bucket: `burst` requests at once, then one per `refill`.
#[derive(Debug)]
pub(crate) struct RateLimit {
    burst: u32,
    refill: Duration,
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    pub(crate) fn new(burst: u32, refill: Duration) -> RateLimit {
        RateLimit {
            burst: burst.max(1),
            refill,
            state: Mutex::new((f64::from(burst.max(1)), Instant::now())),
        }
    }

    /// Takes one token; when none is left, how long until the next one.
    pub(crate) fn try_acquire(&self) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        if !self.refill.is_zero() {
            let earned = now.duration_since(*last).as_secs_f64() / self.refill.as_secs_f64();
            *tokens = (*tokens + earned).min(f64::from(self.burst));
        } else {
            *tokens = f64::from(self.burst);
        }
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(self.refill.mul_f64(1.0 - *tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_matches_only_itself() {
        let token = Token::new("correct horse").unwrap();
        assert!(token.matches("correct horse"));
        assert!(!token.matches("correct hors"));
        assert!(!token.matches("correct horse x"));
        assert!(Token::new(" \n").is_none());
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "Token([redacted])");
    }

    #[test]
    fn the_bucket_allows_a_burst_then_says_when_to_come_back() {
        let limit = RateLimit::new(3, Duration::from_secs(3600));
        assert!((0..3).all(|_| limit.try_acquire().is_ok()));
        let wait = limit.try_acquire().unwrap_err();
        assert!(
            wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3600),
            "{wait:?}"
        );
    }

    #[test]
    fn loopback_names_and_only_those() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.255.0.1:1",
            "127.0.0.1.",
            "localhost",
            "LOCALHOST:80",
            "localhost.",
            "localhost.:8080",
            "localhost:",
            "[::1]",
            "[::1]:8080",
            "[::1]:",
            "[0:0:0:0:0:0:0:1]:1",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(names_loopback(host), "{host}");
        }
        for host in [
            "",
            ":80",
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.nip.io",
            "localhost.evil.example",
            "sub.localhost",
            "localhost..",
            "0.0.0.0",
            "127.1",
            "0x7f.0.0.1",
            "2130706433",
            "10.0.0.1:80",
            "::1",
            "[::1",
            "[::1]8080",
            "[::1]:80x",
            "[fe80::1%lo]",
            "[::]",
            "127.0.0.1:-1",
            "127.0.0.1:8080:1",
            "user@127.0.0.1",
        ] {
            assert!(!names_loopback(host), "{host}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn either_header_carries_either_token() {
        let policy = Policy {
            admin: Token::new("adm"),
            read: Token::new("rd"),
            reads: Reads::Closed,
        };
        assert_eq!(policy.access(&headers(&[])), Access::None);
        assert_eq!(
            policy.access(&headers(&[(TOKEN_HEADER, "adm")])),
            Access::Admin
        );
        assert_eq!(
            policy.access(&headers(&[("authorization", "Bearer rd")])),
            Access::Read
        );
        assert_eq!(
            policy.access(&headers(&[("authorization", "bearer adm")])),
            Access::Admin
        );
        assert_eq!(
            policy.access(&headers(&[("authorization", "Basic adm")])),
            Access::None
        );
        // A proxy's own credentials beside the admin header do not hide it.
        assert_eq!(
            policy.access(&headers(&[
                ("authorization", "Bearer proxy-credential"),
                (TOKEN_HEADER, "rd")
            ])),
            Access::Read
        );
        let unset = Policy {
            admin: None,
            read: None,
            reads: Reads::Closed,
        };
        assert_eq!(unset.access(&headers(&[(TOKEN_HEADER, "")])), Access::None);
    }
}

//! The remote document's URL: where a request goes, how the URL is shown, and where a
//! redirect may lead.
//!
//! Parsing and reference resolution follow RFC 3986 (`fluent-uri`). A URL is shown
//! without its credentials, its fragment or any query value (`?token=<redacted>`); a
//! string that is no URL at all is shown with everything up to its last `@` cut out,
//! so that credentials never show either way.

use std::net::IpAddr;

use fluent_uri::{Uri, UriRef};

use crate::ContentHash;
use crate::error::{Error, ErrorKind, SourceName};

/// What stands in for each query value of a shown URL.
pub(super) const REDACTED: &str = "<redacted>";

/// Where a request goes: a URL split into what a connection needs.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) tls: bool,
    /// Lowercase; an IPv6 address without its brackets (`::1`), as it connects.
    pub(super) host: String,
    pub(super) port: u16,
    /// `host[:port]` as the `Host` header says it.
    pub(super) authority: String,
    pub(super) path_and_query: String,
}

/// A parsed URL: its target, the credentials of a `user:pass@` (percent-decoded, as
/// the bytes `user:pass` of HTTP Basic authentication) and the URL as shown.
pub(super) struct Parsed {
    pub(super) target: Target,
    pub(super) credentials: Option<Vec<u8>>,
    pub(super) shown: String,
}

impl Target {
    /// Scheme, host and port: what a redirect must keep unless told otherwise.
    pub(super) fn origin(&self) -> (bool, &str, u16) {
        (self.tls, &self.host, self.port)
    }

    /// `scheme://host:port`, with the port always said.
    pub(super) fn origin_shown(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        match self.host.contains(':') {
            true => format!("{scheme}://[{}]:{}", self.host, self.port),
            false => format!("{scheme}://{}:{}", self.host, self.port),
        }
    }

    /// The whole URL, query values included (credentials never): never shown.
    pub(super) fn unredacted(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.path_and_query)
    }

    /// A hash of the whole URL ([`unredacted`](Target::unredacted)): one name per URL as
    /// requested, the same in every run, whatever its credentials or fragment.
    pub(super) fn fingerprint(&self) -> ContentHash {
        ContentHash::of(&serde_json::Value::from(self.unredacted()))
    }

    /// Whether the host is this machine's loopback (`localhost`, `127.0.0.0/8`, `::1`):
    /// what is sent there never crosses a network.
    pub(super) fn is_loopback(&self) -> bool {
        let host = self.host.trim_end_matches('.');
        host == "localhost"
            || host.ends_with(".localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// Parses `url` (`http://` or `https://`); the error says why, never quoting the URL.
pub(super) fn parse(url: &str) -> Result<Parsed, &'static str> {
    let uri = Uri::parse(url).map_err(|_| "cannot be parsed")?;
    let tls = match uri.scheme().as_str() {
        s if s.eq_ignore_ascii_case("http") => false,
        s if s.eq_ignore_ascii_case("https") => true,
        _ => return Err("the scheme must be http or https"),
    };
    let authority = uri.authority().ok_or("no host")?;
    let written = authority.host();
    if written.is_empty() {
        return Err("no host");
    }
    if written.contains('%') {
        return Err("a percent-encoded host name is not supported");
    }
    if written.starts_with("[v") || written.starts_with("[V") {
        return Err("an IPvFuture host is not supported");
    }
    let port = authority
        .port_to_u16()
        .map_err(|_| "the port is not a number from 0 to 65535")?;
    let host = written.to_ascii_lowercase();
    let authority_shown = match authority.port().filter(|p| !p.is_empty()) {
        Some(p) => format!("{host}:{}", p.as_str()),
        None => host.clone(),
    };
    let credentials = authority.userinfo().map(|info| {
        let (user, pass) = info
            .split_once(':')
            .unwrap_or((info, fluent_uri::pct_enc::EStr::EMPTY));
        let mut bytes = user.decode().to_bytes().into_owned();
        bytes.push(b':');
        bytes.extend_from_slice(&pass.decode().to_bytes());
        bytes
    });
    let path = match uri.path().as_str() {
        "" => "/",
        p => p,
    };
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{}", q.as_str()),
        None => path.to_owned(),
    };
    let scheme = if tls { "https" } else { "http" };
    let shown = format!(
        "{scheme}://{authority_shown}{path}{}",
        uri.query()
            .map_or_else(String::new, |q| format!("?{}", redact_query(q.as_str())))
    );
    let target = Target {
        tls,
        // `[::1]` connects as `::1`.
        host: host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host)
            .to_owned(),
        port: port.unwrap_or(if tls { 443 } else { 80 }),
        authority: authority_shown,
        path_and_query,
    };
    Ok(Parsed {
        target,
        credentials,
        shown,
    })
}

/// Parses `url` like [`parse`]; the error names the URL as shown.
pub(super) fn parse_url(url: &str) -> Result<Parsed, Error> {
    parse(url).map_err(|why| {
        Error::new(ErrorKind::Parse, format!("not a usable URL: {why}"))
            .with_source(SourceName::Url(shown(url)))
    })
}

/// [`Target::fingerprint`] of the URL `url`, which must parse.
pub(in crate::source) fn fingerprint(url: &str) -> Result<ContentHash, Error> {
    Ok(parse_url(url)?.target.fingerprint())
}

/// `url` as it may be shown: without credentials, fragment or query values. Any
/// string: one that cannot be parsed loses everything from its scheme's `//` up to
/// its last `@`, and any control character.
pub(super) fn shown(url: &str) -> String {
    // An `@` the parser did not read as credentials ends a password it took for
    // something else (`http://ops:1234/abc@h/`: port 1234, path `/abc@h/`): cut it too.
    if let Ok(parsed) = parse(url)
        && (parsed.credentials.is_some() || !url.contains('@'))
    {
        return parsed.shown;
    }
    let mut rest = url;
    let mut out = String::new();
    if let Some(at) = rest.rfind('@') {
        // Only a `//` before the `@` opens the credentials: one after it is a path's.
        let start = rest[..at].find("//").map_or(0, |i| i + 2);
        out.push_str(&rest[..start]);
        rest = &rest[at + 1..];
    }
    let (before, query) = match rest.find(['?', '#']) {
        Some(i) if rest[i..].starts_with('?') => (&rest[..i], Some(&rest[i + 1..])),
        Some(i) => (&rest[..i], None),
        None => (rest, None),
    };
    out.push_str(before);
    if let Some(query) = query {
        let query = query.split('#').next().unwrap_or_default();
        out.push('?');
        out.push_str(&redact_query(query));
    }
    out.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Every value of every key replaced by [`REDACTED`]; a part without `=` is all value.
fn redact_query(query: &str) -> String {
    let parts: Vec<String> = query
        .split('&')
        .map(|part| match part.split_once('=') {
            _ if part.is_empty() => String::new(),
            Some((key, _)) => format!("{key}={REDACTED}"),
            None => REDACTED.to_owned(),
        })
        .collect();
    parts.join("&")
}

/// Why a `Location` is not followed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// It is not a URI reference.
    Unparsable,
    /// It resolves to something that is no `http(s)://host` URL.
    Unusable(&'static str),
    /// It carries credentials.
    Credentials,
    /// From `https` to plain `http`.
    Downgrade,
    /// To another origin, without the opt-in; holds that origin as shown.
    OtherOrigin(String),
}

impl Refused {
    /// Why, for an error: the origin a refused redirect led to, never its path or query.
    pub(super) fn why(&self, from: &Target) -> String {
        match self {
            Refused::Unparsable => "its Location cannot be parsed".to_owned(),
            Refused::Unusable(why) => format!("its Location is not usable: {why}"),
            Refused::Credentials => "its Location carries credentials".to_owned(),
            Refused::Downgrade => "it leads from https to plain http".to_owned(),
            Refused::OtherOrigin(to) => format!(
                "it leads to another origin, {to}; redirects are followed within {} only \
                 (`Http::cross_origin_redirects` allows others)",
                from.origin_shown()
            ),
        }
    }
}

/// Resolves a `Location` against the URL that answered with it (RFC 3986, so
/// `/next?from=http://x` is a path on the same origin), following it to another
/// origin only when `cross_origin`, and never from `https` to `http`.
pub(super) fn redirect(
    from: &Target,
    location: &str,
    cross_origin: bool,
) -> Result<Target, Refused> {
    let reference = UriRef::parse(location).map_err(|_| Refused::Unparsable)?;
    let base = from.unredacted();
    let base = Uri::parse(base.as_str()).map_err(|_| Refused::Unparsable)?;
    let resolved = reference
        .resolve_against(&base)
        .map_err(|_| Refused::Unparsable)?;
    let next = parse(resolved.as_str()).map_err(Refused::Unusable)?;
    if next.credentials.is_some() {
        return Err(Refused::Credentials);
    }
    let to = next.target;
    if from.tls && !to.tls {
        return Err(Refused::Downgrade);
    }
    if !cross_origin && to.origin() != from.origin() {
        return Err(Refused::OtherOrigin(to.origin_shown()));
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_the_parser_misreads_never_shows() {
        for (url, password) in [
            ("http:/ops:hunter2@h//x", "hunter2"),
            ("user:pw123@h/a?u=http://x", "pw123"),
            ("http://ops:1234/abc@h/x", "1234/abc"),
            ("http://ops:1234?x@h", "1234"),
        ] {
            let shown = shown(url);
            assert!(!shown.contains(password), "{url} shown as {shown}");
        }
    }
    use proptest::prelude::*;

    fn target(url: &str) -> Target {
        parse(url).ok().unwrap().target
    }

    #[test]
    fn credentials_are_decoded_and_never_shown() {
        let p = parse("http://ops:p%40ss@127.0.0.1:8080/a/app.toml?x=1#frag")
            .ok()
            .unwrap();
        assert_eq!(p.shown, "http://127.0.0.1:8080/a/app.toml?x=<redacted>");
        assert_eq!(p.target.path_and_query, "/a/app.toml?x=1");
        assert_eq!(p.credentials.as_deref(), Some(&b"ops:p@ss"[..]));
        let p = parse("HTTP://[::1]:9").ok().unwrap();
        assert_eq!((p.target.host.as_str(), p.target.port), ("::1", 9));
        assert_eq!(p.target.authority, "[::1]:9");
        assert_eq!(p.target.path_and_query, "/");
        assert_eq!(p.target.origin_shown(), "http://[::1]:9");
    }

    #[test]
    fn query_values_are_redacted_every_one() {
        assert_eq!(
            shown("https://h/app.toml?token=abc&v=2&&flag&empty="),
            "https://h/app.toml?token=<redacted>&v=<redacted>&&<redacted>&empty=<redacted>"
        );
    }

    #[test]
    fn what_cannot_be_parsed_loses_its_credentials() {
        for (url, want) in [
            ("http//ops:hunter2@h/x", "http//h/x"),
            ("http://ops:hun?ter2@h/x?k=v", "http://h/x?k=<redacted>"),
            ("http://ops:p@ss@h/x", "http://h/x"),
            ("ops:hunter2@h", "h"),
            (
                "http://h/x y?token=s3cret#f",
                "http://h/x y?token=<redacted>",
            ),
            ("http://h/\nx", "http://h/\u{fffd}x"),
        ] {
            assert!(parse(url).is_err(), "{url}");
            assert_eq!(shown(url), want, "{url}");
        }
    }

    #[test]
    fn redirects_resolve_stay_on_their_origin_and_never_downgrade() {
        let from = target("https://h/conf/app.toml?v=1");
        let to = |l: &str| redirect(&from, l, false).map(|t| t.path_and_query);
        assert_eq!(to("v2.toml"), Ok("/conf/v2.toml".into()));
        assert_eq!(to("../x.json"), Ok("/x.json".into()));
        assert_eq!(to("/x.json#f"), Ok("/x.json".into()));
        assert_eq!(
            to("/next?from=http://elsewhere/"),
            Ok("/next?from=http://elsewhere/".into())
        );
        assert_eq!(
            to("?u=https://h2:1/"),
            Ok("/conf/app.toml?u=https://h2:1/".into())
        );
        assert_eq!(to("HTTPS://H:443/y"), Ok("/y".into()));
        assert_eq!(
            to("//other/x"),
            Err(Refused::OtherOrigin("https://other:443".into()))
        );
        assert_eq!(
            to("https://h:8443/x"),
            Err(Refused::OtherOrigin("https://h:8443".into()))
        );
        assert_eq!(to("http://h/x"), Err(Refused::Downgrade));
        assert_eq!(to("https://u:p@h/x"), Err(Refused::Credentials));
        assert_eq!(
            to("ftp://h/x"),
            Err(Refused::Unusable("the scheme must be http or https"))
        );
        assert_eq!(to("/a b"), Err(Refused::Unparsable));
        let other = redirect(&from, "https://other/x", true).unwrap();
        assert_eq!(
            (other.host.as_str(), other.path_and_query.as_str()),
            ("other", "/x")
        );
        assert_eq!(
            redirect(&from, "http://other/x", true).err(),
            Some(Refused::Downgrade)
        );
    }

    #[test]
    fn loopback_hosts() {
        for url in [
            "http://127.0.0.1/",
            "http://127.9.9.9:1/",
            "http://[::1]/",
            "http://LocalHost./",
            "http://a.localhost/",
        ] {
            assert!(target(url).is_loopback(), "{url}");
        }
        for url in [
            "http://10.0.0.1/",
            "http://config.internal/",
            "http://localhost.example/",
            "http://[::2]/",
        ] {
            assert!(!target(url).is_loopback(), "{url}");
        }
    }

    /// A secret: long enough, and of letters that no other part of the URLs below has.
    fn secret() -> impl Strategy<Value = String> {
        "[A-Z]{6,12}"
    }

    /// Any text, percent-encoded as a userinfo or query component must be.
    fn encoded(text: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    proptest! {
        #[test]
        fn nothing_panics_on_any_string(s in any::<String>(), l in any::<String>()) {
            let _ = shown(&s);
            if let Ok(p) = parse(&s) {
                let _ = redirect(&p.target, &l, false);
                let _ = redirect(&p.target, &l, true);
            }
        }

        #[test]
        fn nothing_panics_on_url_like_strings(s in r"[hH][tT]{2}[pP][sS]?:(//)?[\x20-\x7e]{0,40}") {
            let _ = shown(&s);
            let _ = parse(&s);
        }

        #[test]
        fn the_shown_url_never_has_a_password_or_a_query_value(
            user in "[a-z]{0,6}",
            pass in any::<String>(),
            pass_mark in secret(),
            host in "[a-z]{1,10}(\\.[a-z]{1,5})?",
            port in proptest::option::of(any::<u16>()),
            path in "(/[a-z._-]{0,8}){0,3}",
            query in proptest::collection::vec(("[a-z]{1,6}", secret(), any::<String>()), 0..4),
            fragment in proptest::option::of("[a-zA-Z0-9]{0,10}"),
        ) {
            let pass = format!("{pass_mark}{pass}");
            let port = port.map_or_else(String::new, |p| format!(":{p}"));
            let query: Vec<(String, String)> = query
                .into_iter()
                .map(|(k, mark, rest)| (k, format!("{mark}{rest}")))
                .collect();
            let q = query
                .iter()
                .map(|(k, v)| format!("{k}={}", encoded(v)))
                .collect::<Vec<_>>()
                .join("&");
            let url = format!(
                "http://{user}:{}@{host}{port}{path}{}{q}{}",
                encoded(&pass),
                if query.is_empty() { "" } else { "?" },
                fragment.map_or_else(String::new, |f| format!("#{f}")),
            );
            let parsed = parse(&url).ok().unwrap();
            let shown = shown(&url);
            prop_assert_eq!(&shown, &parsed.shown);
            // Credentials round-trip through the percent-encoding.
            prop_assert_eq!(parsed.credentials, Some(format!("{user}:{pass}").into_bytes()));
            for secret in std::iter::once(&pass).chain(query.iter().map(|(_, v)| v)) {
                prop_assert!(!shown.contains(&secret[..6]), "{} in {}", &secret[..6], shown);
            }
            prop_assert!(!shown.contains('@'));
        }

        #[test]
        fn a_raw_password_never_shows_parsed_or_not(
            mark in secret(),
            rest in "[^/]{0,12}",
            tail in "(/[a-z]{0,5})?(\\?[a-z]=[a-z]{0,4})?",
        ) {
            // Written as a careless user would: not percent-encoded, so it may hold
            // `@`, `:`, `?` or `#` and leave no parsable URL.
            let url = format!("http://ops:{mark}{rest}@config.internal{tail}");
            let shown = shown(&url);
            prop_assert!(!shown.contains(&mark), "{} in {}", mark, shown);
        }
    }
}

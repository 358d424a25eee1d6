//! `source::Http` against a real HTTP server on loopback ([`DocServer`]) that the tests
//! script: conditional requests, errors and recovery, hangs, truncated and oversized
//! bodies, refused credentials, a rejected document, the last-good cache, secrets,
//! connection reuse — and, with the `https` feature, TLS with a private CA.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eac_accessor::reload::{PollConfig, ReloadConfig, ReloadCoordinator, Triggered};
use eac_accessor::source::{
    Fetched, File, Format, Http, LastGood, Memory, SizeCap, Source, Started,
};
use eac_accessor::{EaCAccessor, ErrorKind, Errors, Event, Origin};
use eac_examples::doc_server::{Answer, DocServer, Document, Seen, Validators};
use eac_tests::{Features, Greeting};

#[cfg(feature = "https")]
#[path = "support/tls.rs"]
mod tls;

fn doc(message: &str) -> String {
    format!("[greeting]\nmessage = \"{message}\"\n")
}

async fn server(text: &str) -> DocServer {
    let server = DocServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    server.set(Document::text("application/toml", text));
    server
}

/// An accessor of the greeting alone, read from `source`.
fn build(source: impl Source) -> Result<EaCAccessor, Errors> {
    EaCAccessor::builder()
        .section::<Greeting>()
        .source(source)
        .build()
}

fn accessor(remote: &Http) -> EaCAccessor {
    build(remote.clone()).unwrap()
}

/// Serves the document with the greeting `message`.
fn set(server: &DocServer, message: &str) {
    server.set(Document::text("application/toml", doc(message)));
}

/// A reload for a poll of `remote` that found a new document.
async fn polled(reloads: &ReloadCoordinator, remote: &Http) -> Result<Triggered, Errors> {
    reloads
        .trigger(Origin::Poll {
            url: remote.url().to_owned(),
        })
        .await
}

/// The next event, within 10 s.
async fn next_event(events: &mut tokio::sync::broadcast::Receiver<Event>, what: &str) -> Event {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect(what)
        .unwrap()
}

/// A cache file in a folder of its own, holding the greeting `message` if given.
fn cache_holding(message: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("remote.cache");
    if let Some(message) = message {
        LastGood::new(&cache)
            .store(Format::Toml, &doc(message))
            .unwrap();
    }
    (dir, cache)
}

/// The remote `/app.toml` of `server`.
fn http(server: &DocServer) -> Http {
    Http::new(&server.url("/app.toml")).unwrap()
}

/// Starts `remote` (its first fetch), then builds an accessor on it.
async fn started(remote: &Http) -> EaCAccessor {
    remote.start().await.unwrap();
    accessor(remote)
}

/// Asserts that a reload publishes nothing new: `accessor` still serves `message`.
#[track_caller]
fn assert_last_good_stays(accessor: &EaCAccessor, message: &str) {
    assert!(!accessor.reload(Origin::Refresh).unwrap().is_published());
    assert_eq!(self::message(accessor), message);
}

fn message(accessor: &EaCAccessor) -> String {
    accessor.load().section::<Greeting>().message.clone()
}

fn reloads(accessor: &EaCAccessor, cooldown: Duration) -> ReloadCoordinator {
    let mut config = ReloadConfig::default();
    config.cooldown = cooldown;
    ReloadCoordinator::new(accessor.clone(), config)
}

fn poll_every(ms: u64) -> PollConfig {
    PollConfig::every(Duration::from_millis(ms)).jitter(0.0)
}

/// Waits (bounded) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn statuses(seen: &[Seen]) -> Vec<u16> {
    seen.iter().map(|s| s.status).collect()
}

fn cached_text(path: &Path) -> Option<String> {
    LastGood::new(path).load().map(|(_, text)| text)
}

#[tokio::test]
async fn an_etag_hit_is_a_304_that_publishes_and_parses_nothing() {
    let server = server(&doc("one")).await;
    let remote = http(&server);
    assert_eq!(remote.start().await.unwrap(), Started::Fetched);
    let accessor = accessor(&remote);
    let etag = remote.status().unwrap().details["etag"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(etag.starts_with('"'), "{etag}");

    let reloads = reloads(&accessor, Duration::ZERO);
    reloads.poll(&remote, poll_every(10)).unwrap();
    until("five polls", || server.requests() >= 6).await;
    reloads.shutdown().await;

    let seen = server.seen();
    assert_eq!(seen[0].if_none_match, None);
    for poll in &seen[1..] {
        // The ETag exactly as received, and the date too.
        assert_eq!(poll.if_none_match.as_deref(), Some(etag.as_str()));
        assert!(poll.if_modified_since.is_some());
        assert_eq!(poll.status, 304);
    }
    // No reload ran — nothing parsed, nothing published — and each hit was counted.
    assert_eq!(reloads.runs(), 0);
    assert_eq!(accessor.load().version(), 1);
    let status = remote.status().unwrap();
    assert_eq!(status.not_modified as usize, seen.len() - 1);
    assert_eq!((status.modified, status.errors), (1, 0));
    assert_eq!(status.last_result, Some("not_modified"));
    assert_eq!(status.details["http_status"], 304);
    assert_eq!(accessor.status().sources, vec![status]);

    // A weak ETag is sent back exactly as received too.
    server.validators(Validators::WeakEtag);
    set(&server, "two");
    assert_eq!(remote.fetch().await.unwrap(), Fetched::Modified);
    assert_eq!(remote.fetch().await.unwrap(), Fetched::NotModified);
    let last = server.seen().pop().unwrap();
    assert!(
        last.if_none_match.as_deref().unwrap().starts_with("W/\""),
        "{last:?}"
    );
    assert_eq!(last.status, 304);
    server.stop().await;
}

#[tokio::test]
async fn last_modified_alone_makes_the_request_conditional() {
    let server = server(&doc("one")).await;
    server.validators(Validators::LastModifiedOnly);
    let remote = http(&server);
    let accessor = started(&remote).await;

    assert_eq!(remote.fetch().await.unwrap(), Fetched::NotModified);
    let seen = server.seen();
    assert_eq!(seen[1].if_none_match, None);
    assert!(seen[1].if_modified_since.is_some());
    assert_eq!(seen[1].status, 304);

    // A new document has a later date: a 200.
    set(&server, "two");
    assert_eq!(remote.fetch().await.unwrap(), Fetched::Modified);
    let reloads = reloads(&accessor, Duration::ZERO);
    polled(&reloads, &remote).await.unwrap();
    assert_eq!(message(&accessor), "two");
    server.stop().await;
}

/// Waits for the start of the next second of the clock: HTTP dates have whole seconds,
/// and a test of what happens within one second starts at its beginning.
async fn a_fresh_second() {
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    tokio::time::sleep(Duration::from_nanos(u64::from(1_000_000_000 - into))).await;
}

#[tokio::test]
async fn a_change_within_the_second_of_a_fetch_is_fetched() {
    // A static server dating the document by the second it changed, with no ETag.
    let server = server(&doc("one")).await;
    server.validators(Validators::FileTime);
    let remote = http(&server);
    a_fresh_second().await;
    let accessor = started(&remote).await;
    // Changed within the second of that fetch: the same `Last-Modified`.
    set(&server, "two");
    let reloads = reloads(&accessor, Duration::ZERO);
    reloads.poll(&remote, poll_every(20)).unwrap();
    until("the change is live", || message(&accessor) == "two").await;
    // The first poll asked without a condition the server would have answered 304.
    let seen = server.seen();
    assert_eq!(seen[1].if_modified_since, None, "{seen:?}");
    assert_eq!(seen[1].status, 200);
    reloads.shutdown().await;
    server.stop().await;
}

#[tokio::test]
async fn a_forced_refresh_fetches_the_remote_document_at_once() {
    let server = server(&doc("one")).await;
    let remote = http(&server);
    let accessor = started(&remote).await;
    let reloads = reloads(&accessor, Duration::ZERO);
    // Polled, but not before an hour has passed.
    reloads
        .poll(&remote, PollConfig::every(Duration::from_secs(3600)))
        .unwrap();
    set(&server, "two");
    let outcome = reloads.refresh(Origin::Refresh, true).await.unwrap();
    assert!(outcome.is_published());
    assert_eq!(message(&accessor), "two");
    let seen = server.seen();
    let last = seen.last().unwrap();
    assert_eq!(
        (
            last.if_none_match.as_deref(),
            last.if_modified_since.as_deref()
        ),
        (None, None)
    );
    assert_eq!(
        seen.len(),
        2,
        "one fetch at start, one for the forced refresh"
    );
    // A refresh that is not forced reads what was fetched last.
    set(&server, "three");
    reloads.refresh(Origin::Refresh, false).await.unwrap();
    assert_eq!(message(&accessor), "two");
    reloads.shutdown().await;
    server.stop().await;
}

#[tokio::test]
async fn a_bad_remote_document_does_not_block_a_file_edit() {
    let (_cache_dir, cache) = cache_holding(None);
    let server = server(&doc("one")).await;
    let remote = http(&server).cache(LastGood::new(&cache));
    remote.start().await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let app = files.path().join("app.toml");
    std::fs::write(&app, "[features]\nshout = false\n").unwrap();
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        .section::<Features>()
        .source(File::new(&app))
        .source(remote.clone())
        .build()
        .unwrap();
    let reloads = reloads(&accessor, Duration::ZERO);

    // The remote document turns bad: rejected, and shown at its source.
    set(&server, "");
    assert_eq!(remote.fetch().await.unwrap(), Fetched::Modified);
    polled(&reloads, &remote).await.unwrap_err();
    let status = remote.status().unwrap();
    assert_eq!(status.last_result, Some("rejected"));
    assert_eq!(status.rejected, 1);
    assert_eq!(status.rejection[0].key(), Some("greeting.message"));

    // A file edit is published all the same, with the remote's last good greeting.
    std::fs::write(&app, "[features]\nshout = true\n").unwrap();
    // As a file event does: after the backoff the rejection set.
    let Triggered::Reloaded(outcome) = reloads.trigger(Origin::Refresh).await.unwrap() else {
        panic!("auto mode reloads");
    };
    assert!(outcome.is_published());
    assert!(accessor.load().section::<Features>().shout);
    assert_eq!(message(&accessor), "one");
    let held = accessor.status().held_back;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].input, format!("URL `{}`", remote.url()));
    // Still the one rejection of that document; the cache keeps the good one.
    assert_eq!(remote.status().unwrap().rejected, 1);
    assert_eq!(cached_text(&cache).as_deref(), Some(doc("one").as_str()));

    // Fixed, it goes live and is cached; the rejection is over.
    set(&server, "two");
    remote.fetch().await.unwrap();
    polled(&reloads, &remote).await.unwrap();
    assert_eq!(message(&accessor), "two");
    assert!(accessor.status().held_back.is_empty());
    let status = remote.status().unwrap();
    assert!(status.rejection.is_empty() && status.last_result != Some("rejected"));
    assert_eq!(cached_text(&cache).as_deref(), Some(doc("two").as_str()));
    reloads.shutdown().await;
    server.stop().await;
}

#[tokio::test]
async fn server_errors_back_off_then_recover() {
    let server = server(&doc("one")).await;
    let remote = http(&server);
    let accessor = started(&remote).await;
    let reloads = reloads(&accessor, Duration::ZERO);

    server.answer_times(Answer::Status(500), 2);
    reloads.poll(&remote, poll_every(25)).unwrap();
    until("two 500s", || server.requests() >= 3).await;
    server.answer_times(Answer::Status(503), 2);
    set(&server, "two");
    until("the new document is live", || message(&accessor) == "two").await;
    reloads.shutdown().await;

    let seen = server.seen();
    let codes = statuses(&seen);
    let first_ok = 1 + codes[1..].iter().position(|c| *c == 200).unwrap();
    assert!(
        codes[1..first_ok]
            .iter()
            .all(|c| [500, 503, 304].contains(c))
    );
    assert_eq!(codes.iter().filter(|c| **c >= 500).count(), 4, "{codes:?}");
    // After an error the next request never comes sooner than a healthy poll would.
    for pair in seen.windows(2).filter(|p| p[0].status >= 500) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(25),
            "{gap:?} after a {}",
            pair[0].status
        );
    }
    let status = remote.status().unwrap();
    assert!(status.up);
    assert_eq!(status.errors, 4);
    assert_eq!(status.last_error, None);
    assert_eq!(
        accessor.load().origin(),
        &Origin::Poll {
            url: server.url("/app.toml")
        }
    );
    server.stop().await;
}

#[tokio::test]
async fn a_hanging_server_times_out_and_the_last_good_stays() {
    let server = server(&doc("one")).await;
    let remote = http(&server).timeout(Duration::from_millis(300));
    let accessor = started(&remote).await;

    server.answer(Answer::Hang);
    let started = Instant::now();
    let err = remote.fetch().await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(err.to_string().contains(&server.url("/app.toml")), "{err}");
    assert!(!remote.status().unwrap().up);
    assert_last_good_stays(&accessor, "one");
    server.stop().await; // drops the hanging connection
}

/// A remote (as `setup` makes it) started on the greeting "one", then a document with
/// `message`, answered as `answer` says: the fetch fails with `kind`, saying `says`, and
/// nothing new is published.
async fn a_failed_fetch_keeps_the_last_good(
    setup: impl FnOnce(Http) -> Http,
    message: &str,
    answer: Option<Answer>,
    kind: ErrorKind,
    says: &str,
) {
    let server = server(&doc("one")).await;
    let remote = setup(http(&server));
    let accessor = started(&remote).await;

    set(&server, message);
    if let Some(answer) = answer {
        server.answer(answer);
    }
    let err = remote.fetch().await.unwrap_err();
    assert_eq!(err.kind(), kind);
    assert!(err.message().contains(says), "{err}");
    assert_last_good_stays(&accessor, "one");
    server.stop().await;
}

#[tokio::test]
async fn a_truncated_body_publishes_nothing() {
    let truncated = Some(Answer::Truncated);
    let (kind, says) = (ErrorKind::Io, "could not be read whole");
    a_failed_fetch_keeps_the_last_good(|r| r, "two, longer", truncated, kind, says).await;
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let capped = |remote: Http| remote.max_size(SizeCap::bytes_exact(64));
    let (kind, says) = (ErrorKind::Limit, "64 bytes");
    a_failed_fetch_keeps_the_last_good(capped, &"x".repeat(100), None, kind, says).await;
}

#[tokio::test]
async fn refused_credentials_are_a_distinct_error_without_a_retry_storm() {
    let server = server(&doc("one")).await;
    let remote = http(&server).bearer_token("tok-s3cret");
    remote.start().await.unwrap();
    assert_eq!(
        server.seen()[0].authorization.as_deref(),
        Some("Bearer tok-s3cret")
    );
    let accessor = accessor(&remote);

    server.answer(Answer::Status(401));
    let err = remote.fetch().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.message().contains("401"), "{err}");
    let reloads = reloads(&accessor, Duration::ZERO);
    let before = server.requests();
    let window = Instant::now();
    reloads.poll(&remote, poll_every(20)).unwrap();
    until("a few refusals", || server.requests() >= before + 4).await;
    let polled = window.elapsed();
    reloads.shutdown().await;
    let seen = server.seen();
    let refusals = &seen[before..];
    // Never faster than a healthy poll, and backing off beyond it.
    for pair in refusals.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(20));
    }
    assert!(
        polled >= Duration::from_millis(80),
        "4 refusals in {polled:?}"
    );
    assert_eq!(remote.status().unwrap().details["http_status"], 401);
    assert_eq!(message(&accessor), "one");
    server.stop().await;
}

#[tokio::test]
async fn a_document_that_fails_validation_is_rejected_and_never_cached() {
    let (_dir, cache) = cache_holding(None);
    let server = server(&doc("one")).await;
    let remote = http(&server).cache(LastGood::new(&cache));
    let accessor = started(&remote).await;
    // Published, so cached.
    assert_eq!(cached_text(&cache).as_deref(), Some(doc("one").as_str()));
    let written = std::fs::metadata(&cache).unwrap().modified().unwrap();

    set(&server, ""); // message must not be empty
    assert_eq!(remote.fetch().await.unwrap(), Fetched::Modified);
    let reloads = reloads(&accessor, Duration::ZERO);
    let errors = polled(&reloads, &remote).await.unwrap_err();
    assert!(errors.has(ErrorKind::Schema), "{errors}");
    assert_eq!(message(&accessor), "one");
    assert_eq!(cached_text(&cache).as_deref(), Some(doc("one").as_str()));
    assert_eq!(
        std::fs::metadata(&cache).unwrap().modified().unwrap(),
        written
    );

    // A good one again is published and cached.
    set(&server, "three");
    remote.fetch().await.unwrap();
    polled(&reloads, &remote).await.unwrap();
    assert_eq!(cached_text(&cache).as_deref(), Some(doc("three").as_str()));
    server.stop().await;
}

#[tokio::test]
async fn a_server_down_at_start_starts_from_the_cache_at_once_and_recovers() {
    let (_dir, cache) = cache_holding(None);
    let server = server(&doc("cached")).await;
    let addr = server.addr();
    let url = server.url("/app.toml");
    {
        let remote = Http::new(&url).unwrap().cache(LastGood::new(&cache));
        remote.start().await.unwrap();
        drop(accessor(&remote)); // published: cached
    }
    server.stop().await;

    let remote = Http::new(&url).unwrap().cache(LastGood::new(&cache));
    let started = Instant::now();
    let how = remote.start().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let Started::FromCache(why) = how else {
        panic!("{how:?}")
    };
    assert!(why.to_string().contains(&url), "{why}");
    let accessor = accessor(&remote);
    assert_eq!(message(&accessor), "cached");
    let status = remote.status().unwrap();
    assert!(status.serving_cache && !status.up, "{status:?}");
    assert!(accessor.status().sources[0].serving_cache);

    // The server comes back with the same document: no longer served from the cache,
    // said by an event; nothing new is published.
    let mut events = accessor.events();
    let server = DocServer::start(addr).await.unwrap();
    set(&server, "cached");
    let reloads = reloads(&accessor, Duration::ZERO);
    reloads.poll(&remote, poll_every(20)).unwrap();
    // The poller starts by saying where the source stands: down, serving its cache.
    let Ok(Event::Source { status: first }) = events.try_recv() else {
        panic!("no source event when polling starts")
    };
    assert!(first.serving_cache && !first.up, "{first:?}");
    let recovered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::Source { status }) = events.recv().await
                && status.up
            {
                return status;
            }
        }
    })
    .await
    .expect("an event says the source is back");
    assert!(!recovered.serving_cache);
    reloads.shutdown().await;
    assert_eq!(accessor.load().version(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_slow_server_at_start_falls_back_to_the_cache_within_the_start_wait() {
    let (_dir, cache) = cache_holding(Some("cached"));
    let server = server(&doc("fresh")).await;
    server.answer(Answer::Hang);
    let remote = http(&server)
        .cache(LastGood::new(&cache))
        .start_wait(Duration::from_millis(200));
    let started = Instant::now();
    let how = remote.start().await.unwrap();
    let took = started.elapsed();
    assert!(
        matches!(how, Started::FromCache(ref e) if e.kind() == ErrorKind::Timeout),
        "{how:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(message(&accessor(&remote)), "cached");
    server.stop().await;
}

#[tokio::test]
async fn a_corrupt_cache_is_skipped_and_never_published() {
    let (_dir, cache) = cache_holding(Some("cached"));
    let torn = std::fs::read_to_string(&cache)
        .unwrap()
        .replace("cached", "cachex");
    std::fs::write(&cache, torn).unwrap();
    // A port nothing listens on.
    let server = server(&doc("x")).await;
    let url = format!("http://ops:hunter2@{}/app.toml", server.addr());
    server.stop().await;

    let remote = Http::new(&url).unwrap().cache(LastGood::new(&cache));
    let err = remote.start().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    let shown = err.to_string();
    assert!(
        shown.contains(&format!("http://{}/app.toml", server_addr(&url))),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    let built = build(remote);
    assert!(built.is_err(), "nothing to publish");
}

fn server_addr(url: &str) -> &str {
    let rest = url.split_once('@').unwrap().1;
    rest.split_once('/').unwrap().0
}

#[tokio::test]
async fn tokens_and_url_credentials_never_show() {
    let server = server(&doc("one")).await;
    let with_userinfo = Http::new(&format!("http://ops:hunter2@{}/app.toml", server.addr()))
        .unwrap()
        .timeout(Duration::from_millis(300));
    with_userinfo.start().await.unwrap();
    assert_eq!(
        server.seen()[0].authorization.as_deref(),
        Some("Basic b3BzOmh1bnRlcjI=")
    );
    let with_token = http(&server)
        .timeout(Duration::from_millis(300))
        .bearer_token("tok-s3cret")
        .header("x-api-key".parse().unwrap(), "key-s3cret");
    with_token.start().await.unwrap();
    assert_eq!(
        server.seen()[1].authorization.as_deref(),
        Some("Bearer tok-s3cret")
    );

    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        .source(with_userinfo.clone())
        .source(with_token.clone())
        .build()
        .unwrap();
    let mut events = accessor.events();
    let reloads = reloads(&accessor, Duration::ZERO);
    let mut shown = Vec::new();
    // A new document, so that no answer below is a 304.
    set(&server, "two");
    for answer in [
        Answer::Status(401),
        Answer::Status(500),
        Answer::Hang,
        Answer::Truncated,
    ] {
        server.answer(answer);
        for remote in [&with_userinfo, &with_token] {
            if let Err(e) = remote.fetch().await {
                shown.push(format!("{e} {e:?}"));
            }
        }
    }
    reloads.poll(&with_token, poll_every(10)).unwrap();
    reloads.poll(&with_userinfo, poll_every(10)).unwrap();
    // Each poller says its source is down.
    let mut told = 0;
    while told < 2 {
        let event = next_event(&mut events, "source events").await;
        if matches!(event, Event::Source { .. }) {
            told += 1;
        }
        shown.push(serde_json::to_string(&event).unwrap());
    }
    reloads.shutdown().await;
    shown.push(format!("{with_userinfo:?} {with_token:?} {accessor:?}"));
    shown.push(serde_json::to_string(&accessor.status()).unwrap());
    shown.push(format!("{:?}", accessor.status()));
    assert_eq!(shown.len(), 2 * 4 + 2 + 3, "{shown:#?}");
    for text in &shown {
        for secret in [
            "hunter2",
            "ops:",
            "tok-s3cret",
            "key-s3cret",
            "b3BzOmh1bnRlcjI",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    assert!(
        shown
            .iter()
            .any(|t| t.contains(&format!("http://{}/app.toml", server.addr())))
    );
    server.stop().await;
}

#[tokio::test]
async fn redirects_are_followed_a_few_times() {
    let server = server(&doc("one")).await;
    server.answer_times(Answer::Redirect("/moved/app.toml".into()), 1);
    let remote = http(&server).max_redirects(2);
    remote.start().await.unwrap();
    let seen = server.seen();
    assert_eq!(statuses(&seen), [302, 200]);
    assert_eq!(seen[1].path, "/moved/app.toml");

    server.answer(Answer::Redirect("/again".into()));
    let err = remote.fetch().await.unwrap_err();
    assert!(err.message().contains("more than 2 redirects"), "{err}");
    assert_eq!(server.requests(), 2 + 3);
    server.stop().await;
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_refused_unless_allowed() {
    let elsewhere = server(&doc("elsewhere")).await;
    let server = server(&doc("here")).await;
    // Same host, another port: another origin.
    let moved = elsewhere.url("/moved/app.toml?sig=s3cret-sig");
    server.answer(Answer::Redirect(moved.clone()));
    let url = server.url("/app.toml?token=s3cret-query");
    let remote = Http::new(&url).unwrap().bearer_token("tok-s3cret");
    let err = remote.start().await.unwrap_err();
    assert_eq!(elsewhere.requests(), 0, "never asked");
    let shown = format!("http://{}/app.toml?token=<redacted>", server.addr());
    assert_eq!(
        err.to_string(),
        format!(
            "URL `{shown}`: HTTP 302 Found: redirect not followed: it leads to another origin, \
             http://{}; redirects are followed within http://{} only \
             (`Http::cross_origin_redirects` allows others)",
            elsewhere.addr(),
            server.addr()
        )
    );
    let status = serde_json::to_string(&remote.status()).unwrap();
    for text in [err.to_string(), status] {
        for secret in ["s3cret", "/moved"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    // Allowed on purpose: followed, and the token stays with the document's origin.
    let remote = Http::new(&url)
        .unwrap()
        .bearer_token("tok-s3cret")
        .cross_origin_redirects(true);
    assert_eq!(remote.start().await.unwrap(), Started::Fetched);
    let accessor = accessor(&remote);
    assert_eq!(message(&accessor), "elsewhere");
    let there = elsewhere.seen();
    assert_eq!(there.len(), 1);
    assert_eq!(there[0].path, "/moved/app.toml?sig=s3cret-sig");
    assert_eq!(there[0].authorization, None);
    assert_eq!(
        server.seen()[1].authorization.as_deref(),
        Some("Bearer tok-s3cret")
    );
    server.stop().await;
    elsewhere.stop().await;
}

#[tokio::test]
async fn a_relative_location_with_a_url_in_its_query_stays_relative() {
    let server = server(&doc("one")).await;
    server.answer_times(
        Answer::Redirect("/moved/app.toml?from=http://elsewhere.invalid/x".into()),
        1,
    );
    let remote = Http::new(&server.url("/conf/app.toml")).unwrap();
    assert_eq!(remote.start().await.unwrap(), Started::Fetched);
    let seen = server.seen();
    assert_eq!(statuses(&seen), [302, 200]);
    assert_eq!(
        seen[1].path,
        "/moved/app.toml?from=http://elsewhere.invalid/x"
    );

    // A path relative to the folder, its query holding a URL too.
    set(&server, "two");
    server.answer_times(Answer::Redirect("v2.toml?next=https://x/".into()), 1);
    assert_eq!(remote.fetch().await.unwrap(), Fetched::Modified);
    assert_eq!(server.seen()[3].path, "/conf/v2.toml?next=https://x/");
    server.stop().await;
}

#[tokio::test]
async fn query_values_and_the_credentials_of_a_bad_url_never_show() {
    // Cannot be parsed (no `:` after the scheme, a port out of range, a raw `@` in the
    // password): the error names what it can, never the password.
    for url in [
        "http//ops:hunter2@config.internal/app.toml",
        "http://ops:hunter2@config.internal:99999/app.toml",
        "http://ops:hun@ter2@config.internal/app.toml?token=s3cret-query",
        "http://ops:hunter2@config.internal/app toml",
    ] {
        let err = Http::new(url).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parse);
        let text = format!("{err} {err:?}");
        for secret in ["hunter2", "ter2", "ops:", "s3cret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("config.internal"), "{text}");
    }

    // Every value of every key is redacted wherever the URL shows: errors, the status,
    // events, the origin of a snapshot, `Debug`.
    let server = server(&doc("one")).await;
    let url = server.url("/app.toml?token=s3cret-query&env=prod-s3cret");
    let remote = Http::new(&url).unwrap();
    let shown = format!(
        "http://{}/app.toml?token=<redacted>&env=<redacted>",
        server.addr()
    );
    assert_eq!(remote.url(), shown);
    remote.start().await.unwrap();
    assert_eq!(
        server.seen()[0].path,
        "/app.toml?token=s3cret-query&env=prod-s3cret",
        "sent whole"
    );
    let accessor = accessor(&remote);
    let mut events = accessor.events();
    let reloads = reloads(&accessor, Duration::ZERO);
    let mut texts = Vec::new();
    set(&server, "two");
    polled(&reloads, &remote).await.unwrap();
    server.answer(Answer::Status(500));
    let err = remote.fetch().await.unwrap_err();
    texts.push(format!("{err} {err:?}"));
    reloads.poll(&remote, poll_every(10)).unwrap();
    // The publish of `two`, then the poller saying its source is down.
    loop {
        let event = next_event(&mut events, "events").await;
        texts.push(serde_json::to_string(&event).unwrap());
        if matches!(event, Event::Source { .. }) {
            break;
        }
    }
    reloads.shutdown().await;
    texts.push(format!("{remote:?} {accessor:?}"));
    texts.push(serde_json::to_string(&accessor.status()).unwrap());
    texts.push(format!("{:?}", accessor.load().origin()));
    for text in &texts {
        assert!(!text.contains("s3cret"), "a query value in {text}");
    }
    assert!(texts[0].contains(&shown), "{}", texts[0]);
    server.stop().await;
}

#[tokio::test]
async fn a_token_over_plain_http_to_a_remote_host_is_warned_of_once() {
    // What the subscriber writes goes to a file: the warnings as a user would read them.
    let log = tempfile::NamedTempFile::new().unwrap();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(log.reopen().unwrap()))
        .with_ansi(false)
        .finish();
    let logs = || std::fs::read_to_string(log.path()).unwrap();
    // This test's runtime has one thread: the subscriber sees all its source does.
    let _guard = tracing::subscriber::set_default(subscriber);
    const WARNING: &str = "credentials are sent in clear text";

    // Loopback, by address or by name: nothing crosses a network, no warning.
    let server = server(&doc("one")).await;
    for url in [
        server.url("/app.toml"),
        format!("http://localhost:{}/app.toml", server.addr().port()),
    ] {
        let remote = Http::new(&url).unwrap().bearer_token("tok-s3cret");
        remote.start().await.unwrap();
        remote.fetch().await.unwrap();
    }
    assert!(!logs().contains(WARNING), "{}", logs());
    server.stop().await;

    // A host of another network (TEST-NET-2): warned at start, once, whatever the fetch
    // does; never with the token or the URL's password.
    for remote in [
        Http::new("http://198.51.100.7:8000/app.toml")
            .unwrap()
            .bearer_token("tok-s3cret"),
        Http::new("http://ops:hunter2@198.51.100.7:8000/app.toml").unwrap(),
    ] {
        let remote = remote
            .connect_timeout(Duration::from_millis(50))
            .timeout(Duration::from_millis(100));
        let _ = remote.start().await;
        let _ = remote.fetch().await;
        let _ = remote.start().await;
    }
    let text = logs();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains(WARNING)).collect();
    assert_eq!(warnings.len(), 2, "{text}");
    for line in &warnings {
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("http://198.51.100.7:8000/app.toml"), "{line}");
        assert!(line.contains("authorization"), "{line}");
    }
    for secret in ["tok-s3cret", "hunter2", "b3Bz"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[tokio::test]
async fn a_server_that_always_changes_sees_a_bounded_request_rate() {
    let server = server("[greeting]\nmessage = \"v{n}\"\n").await;
    server.always_new(true);
    let remote = http(&server);
    let accessor = started(&remote).await;
    // Polls every millisecond; each new document waits for its reload, which honours
    // the 100 ms cooldown.
    let reloads = reloads(&accessor, Duration::from_millis(100));
    let started = Instant::now();
    reloads.poll(&remote, poll_every(1)).unwrap();
    until("five publishes", || accessor.load().version() >= 6).await;
    let took = started.elapsed();
    reloads.shutdown().await;
    let requests = server.requests() - 1;
    // One request per cooldown, plus the first (no cooldown before it) and the one
    // that may have left after the last publish; at a 1 ms interval alone, hundreds.
    let bound = (took.as_millis() / 100) as usize + 3;
    assert!(requests <= bound, "{requests} requests in {took:?}");
    assert!(message(&accessor).starts_with('v'));
    server.stop().await;
}

#[tokio::test]
async fn a_document_rejected_at_start_starts_from_the_cache_and_polling_goes_on() {
    let (_dir, cache) = cache_holding(Some("cached"));
    let server = server(&doc("")).await; // message must not be empty
    let url = server.url("/app.toml");

    // Without a cache, the start fails, naming the URL.
    let uncached = Http::new(&url).unwrap();
    assert_eq!(uncached.start().await.unwrap(), Started::Fetched);
    let errors = build(uncached).unwrap_err();
    assert!(errors.has(ErrorKind::Schema), "{errors}");
    assert!(errors.to_string().contains(&url), "{errors}");

    // With one, the service starts from it and says why.
    let remote = Http::new(&url).unwrap().cache(LastGood::new(&cache));
    assert_eq!(remote.start().await.unwrap(), Started::Fetched);
    let accessor = accessor(&remote);
    assert_eq!(message(&accessor), "cached");
    let status = remote.status().unwrap();
    assert!(status.serving_cache, "{status:?}");
    let why = status.last_error.unwrap();
    assert!(why.contains("rejected") && why.contains(&url), "{why}");
    let rejection = accessor
        .status()
        .last_rejection
        .expect("the rejection is kept");
    assert!(
        rejection
            .errors
            .iter()
            .any(|e| e.key() == Some("greeting.message")),
        "{rejection:?}"
    );
    assert_eq!(accessor.status().last_reload.unwrap().outcome, "published");
    assert_eq!(cached_text(&cache).as_deref(), Some(doc("cached").as_str()));

    // A broken local file is no reason to leave a remote document: no fallback then.
    let fine = DocServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    set(&fine, "fine");
    let untouched = http(&fine).cache(LastGood::new(&cache));
    untouched.start().await.unwrap();
    let local = Memory::new("local.toml", Format::Toml, "[greeting\n");
    let errors = EaCAccessor::builder()
        .section::<Greeting>()
        .source(untouched.clone())
        .source(local)
        .build()
        .unwrap_err();
    assert!(errors.to_string().contains("local.toml"), "{errors}");
    assert!(!untouched.status().unwrap().serving_cache);
    fine.stop().await;

    // Polling goes on, conditional on the rejected document: 304s, nothing reloaded.
    let reloads = reloads(&accessor, Duration::ZERO);
    reloads.poll(&remote, poll_every(10)).unwrap();
    until("three polls", || server.requests() >= 4).await;
    assert!(statuses(&server.seen()[2..]).iter().all(|s| *s == 304));
    // Without validators the rejected document comes back whole: still nothing new.
    server.validators(Validators::None);
    let before = server.requests();
    until("three more polls", || server.requests() >= before + 3).await;
    assert!(statuses(&server.seen()[before..]).iter().all(|s| *s == 200));
    assert_eq!(reloads.runs(), 0);
    assert!(remote.status().unwrap().serving_cache);
    assert_eq!(message(&accessor), "cached");

    // A good document is published, cached, and no longer served from the cache.
    set(&server, "fixed");
    until("the fixed document", || message(&accessor) == "fixed").await;
    until("cached", || {
        cached_text(&cache).as_deref() == Some(doc("fixed").as_str())
    })
    .await;
    assert!(!remote.status().unwrap().serving_cache);
    reloads.shutdown().await;
    server.stop().await;
}

#[tokio::test]
async fn polls_reuse_one_connection_and_replace_a_closed_one() {
    let server = server(&doc("one")).await;
    let addr = server.addr();
    let remote = http(&server);
    remote.start().await.unwrap();
    for _ in 0..3 {
        assert_eq!(remote.fetch().await.unwrap(), Fetched::NotModified);
    }
    assert_eq!((server.requests(), server.connections()), (4, 1));
    set(&server, "two");
    assert_eq!(remote.fetch().await.unwrap(), Fetched::Modified);
    assert_eq!((server.requests(), server.connections()), (5, 1));

    // The server goes away and comes back: the closed connection is replaced.
    server.stop().await;
    let server = DocServer::start(addr).await.unwrap();
    set(&server, "three");
    assert_eq!(remote.fetch().await.unwrap(), Fetched::Modified);
    assert_eq!(remote.fetch().await.unwrap(), Fetched::NotModified);
    assert_eq!((server.requests(), server.connections()), (2, 1));
    server.stop().await;
}

#[cfg(feature = "https")]
mod https {
    use super::*;
    use tls::PrivateCa;

    async fn tls_server(ca: &PrivateCa, text: &str) -> DocServer {
        let server = DocServer::start_tls("127.0.0.1:0".parse().unwrap(), ca.server.clone())
            .await
            .unwrap();
        server.set(Document::text("application/toml", text));
        server
    }

    /// A folder for CA files, a private CA, and a TLS server it signed serving the
    /// greeting "one".
    async fn tls_fixture() -> (tempfile::TempDir, PrivateCa, DocServer) {
        let ca = PrivateCa::new("eac test CA");
        let server = tls_server(&ca, &doc("one")).await;
        (tempfile::tempdir().unwrap(), ca, server)
    }

    #[tokio::test]
    async fn a_private_ca_is_trusted_over_real_tls() {
        let (dir, ca, server) = tls_fixture().await;
        let url = server.url("/app.toml");
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        let remote = Http::new(&url)
            .unwrap()
            .bearer_token("tok-s3cret")
            .ca_file(ca.write(dir.path()))
            .unwrap();
        assert_eq!(remote.start().await.unwrap(), Started::Fetched);
        let accessor = accessor(&remote);
        assert_eq!(message(&accessor), "one");
        assert_eq!(
            server.seen()[0].authorization.as_deref(),
            Some("Bearer tok-s3cret")
        );

        // An ETag hit over the same TLS connection.
        assert_eq!(remote.fetch().await.unwrap(), Fetched::NotModified);
        assert_eq!(statuses(&server.seen()), [200, 304]);

        // A change is fetched and published.
        set(&server, "two");
        let reloads = reloads(&accessor, Duration::ZERO);
        reloads.poll(&remote, poll_every(10)).unwrap();
        until("the new document", || message(&accessor) == "two").await;
        reloads.shutdown().await;
        assert_eq!(server.connections(), 1);

        // By name too: the certificate is for `localhost` as well.
        let by_name = Http::new(&format!(
            "https://localhost:{}/app.toml",
            server.addr().port()
        ))
        .unwrap()
        .ca_file(ca.write(dir.path()))
        .unwrap();
        assert_eq!(by_name.fetch().await.unwrap(), Fetched::Modified);
        server.stop().await;
    }

    #[tokio::test]
    async fn an_https_redirect_keeps_its_origin_and_never_goes_to_plain_http() {
        let (dir, ca, server) = tls_fixture().await;
        let plain = super::server(&doc("plain")).await;
        let port = server.addr().port();
        let remote = |allow: bool| {
            http(&server)
                .ca_file(ca.write(dir.path()))
                .unwrap()
                .cross_origin_redirects(allow)
        };
        // `localhost` is another host than `127.0.0.1`, on the same port and scheme.
        server.answer(Answer::Redirect(format!(
            "https://localhost:{port}/moved.toml"
        )));
        let err = remote(false).start().await.unwrap_err();
        assert!(
            err.message().contains(&format!(
                "it leads to another origin, https://localhost:{port}; redirects are followed within https://127.0.0.1:{port} only"
            )),
            "{err}"
        );
        server.answer_times(
            Answer::Redirect(format!("https://localhost:{port}/moved.toml")),
            1,
        );
        assert_eq!(remote(true).start().await.unwrap(), Started::Fetched);
        assert_eq!(server.seen().last().unwrap().path, "/moved.toml");

        server.answer(Answer::Redirect(plain.url("/app.toml")));
        for allow in [false, true] {
            let err = remote(allow).start().await.unwrap_err();
            assert!(err.message().contains("from https to plain http"), "{err}");
        }
        assert_eq!(plain.requests(), 0);
        server.stop().await;
        plain.stop().await;
    }

    #[tokio::test]
    async fn an_untrusted_certificate_fails_naming_the_url_never_the_token() {
        let (dir, _ca, server) = tls_fixture().await;
        let url = server.url("/app.toml");
        let other = PrivateCa::new("another CA").write(dir.path());
        for remote in [
            Http::new(&url).unwrap(),
            Http::new(&url).unwrap().ca_file(&other).unwrap(),
        ] {
            let remote = remote.bearer_token("tok-s3cret");
            let err = remote.start().await.unwrap_err();
            let shown = err.to_string();
            assert_eq!(err.kind(), ErrorKind::Io);
            assert!(shown.contains(&format!("URL `{url}`")), "{shown}");
            assert!(shown.contains("certificate is not trusted"), "{shown}");
            assert!(shown.contains("Http::ca_file"), "{shown}");
            assert!(!shown.contains("tok-s3cret"), "{shown}");
            assert!(!format!("{err:?} {remote:?}").contains("tok-s3cret"));
            assert!(
                !remote
                    .status()
                    .unwrap()
                    .last_error
                    .unwrap()
                    .contains("tok-s3cret")
            );
        }
        // Nothing reached the server: no request, so no token.
        assert_eq!(server.requests(), 0);
        server.stop().await;
    }

    /// Writes `text` to `name` in `dir`: its path.
    fn pem(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_bad_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = "https://config.internal/app.toml";
        let key_only = pem(
            &dir,
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
        );
        let broken = pem(
            &dir,
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
        );
        let not_a_cert = pem(
            &dir,
            "not-a-cert.pem",
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        );
        let missing = dir.path().join("missing.pem");
        for (file, kind, says) in [
            (&key_only, ErrorKind::Parse, "no `BEGIN CERTIFICATE` block"),
            (&broken, ErrorKind::Parse, "not valid PEM"),
            (
                &not_a_cert,
                ErrorKind::Parse,
                "certificate 1 cannot be a root",
            ),
            (&missing, ErrorKind::Io, "cannot be read"),
        ] {
            let err = Http::new(url).unwrap().ca_file(file).unwrap_err();
            let shown = err.to_string();
            assert_eq!(err.kind(), kind, "{shown}");
            assert!(
                shown.starts_with(&format!("file `{}`: ", file.display())),
                "{shown}"
            );
            assert!(shown.contains(says) && shown.contains(url), "{shown}");
        }
    }
}

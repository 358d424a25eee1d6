//! The etcd source against a real `etcd` (feature `etcd`): each test starts its own
//! member on free loopback ports and stops it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
use eac_accessor::source::{
    Dir, Etcd, EtcdOptions, EtcdWatch, LastGood, SizeCap, Source, SourceStatus,
};
use eac_accessor::{EaCAccessor, ErrorKind, Origin};
use eac_tests::etcd::{EtcdServer, TcpProxy};
use eac_tests::{ConfigDir, Features, Greeting, Limits};
use etcd_client::{Client, CompactionOptions, Txn, TxnOp};
use metrics_util::debugging::DebugValue;

const PREFIX: &str = "/eac/test/";

/// Waits until `check` holds, polling every 20 ms, at most `within`.
async fn until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

const LIVE: Duration = Duration::from_secs(10);

async fn client(server: &EtcdServer) -> Client {
    Client::connect([server.endpoint()], None)
        .await
        .expect("connect a test client")
}

fn options(endpoint: String) -> EtcdOptions {
    EtcdOptions::new([endpoint], PREFIX)
        .keep_alive(Duration::from_millis(500), Duration::from_millis(500))
        .timeouts(Duration::from_millis(500), Duration::from_secs(2))
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
}

fn greeting(message: &str) -> String {
    serde_json::json!({ "message": message }).to_string()
}

/// A running etcd, a client of it, and a config dir holding the standard `app.toml`.
async fn started() -> (EtcdServer, Client, ConfigDir) {
    let server = EtcdServer::start();
    let c = client(&server).await;
    (server, c, ConfigDir::with_app())
}

/// Puts `value` at `key` under the prefix.
async fn put(c: &mut Client, key: &str, value: impl Into<Vec<u8>>) -> etcd_client::PutResponse {
    c.put(format!("{PREFIX}{key}"), value, None)
        .await
        .unwrap_or_else(|e| panic!("put {PREFIX}{key}: {e}"))
}

/// Puts `message` as the `greeting` section under the prefix.
async fn put_greeting(c: &mut Client, message: &str) -> etcd_client::PutResponse {
    put(c, "greeting", greeting(message)).await
}

/// A last-good cache, not written yet, in a folder of its own (kept while the cache is).
fn last_good() -> (tempfile::TempDir, LastGood) {
    let dir = tempfile::tempdir().unwrap();
    let cache = LastGood::new(dir.path().join("etcd.cache"));
    (dir, cache)
}

/// The four sections on the files, then etcd above them.
fn build(dir: &ConfigDir, etcd: Etcd) -> Result<EaCAccessor, eac_accessor::Errors> {
    crate::four_sections()
        .source(Dir::new(dir.path()))
        .source(etcd)
        .build()
}

/// The files, then etcd above them, with a coordinator that reloads without cooldown.
fn fleet_member(dir: &ConfigDir, etcd: &Etcd) -> (EaCAccessor, ReloadCoordinator) {
    let accessor = build(dir, etcd.clone()).expect("build on files + etcd");
    let mut config = ReloadConfig::default();
    config.cooldown = Duration::ZERO;
    config.backoff = Duration::from_millis(10);
    let reloads = ReloadCoordinator::new(accessor.clone(), config);
    (accessor, reloads)
}

/// A fleet member on `server` with its watch running (the coordinator returned keeps
/// the watch's reloads going).
async fn watched(
    server: &EtcdServer,
    dir: &ConfigDir,
) -> (EaCAccessor, ReloadCoordinator, EtcdWatch) {
    let etcd = Etcd::connect(options(server.endpoint())).await.unwrap();
    let (accessor, reloads) = fleet_member(dir, &etcd);
    let watch = etcd.watch(&reloads);
    (accessor, reloads, watch)
}

/// [`watched`], once its etcd source reports up.
async fn watched_up(
    server: &EtcdServer,
    dir: &ConfigDir,
) -> (EaCAccessor, ReloadCoordinator, EtcdWatch) {
    let (accessor, reloads, watch) = watched(server, dir).await;
    assert!(until(LIVE, || etcd_status(&accessor).up).await);
    (accessor, reloads, watch)
}

fn message(accessor: &EaCAccessor) -> String {
    accessor.load().section::<Greeting>().message.clone()
}

fn etcd_status(accessor: &EaCAccessor) -> SourceStatus {
    accessor
        .status()
        .sources
        .into_iter()
        .find(|s| s.kind == "etcd")
        .expect("the etcd source reports a status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_load_reads_every_key_of_the_prefix_at_one_revision() {
    let (server, mut c, dir) = started().await;
    put_greeting(&mut c, "from etcd").await;
    put(
        &mut c,
        "limits.toml",
        "max_body_bytes = 10\nrequest_timeout_ms = 20\n",
    )
    .await;
    // eac's own records are not configuration.
    put(&mut c, ".notes", "not json").await;

    let etcd = Etcd::connect(options(server.endpoint())).await.unwrap();
    let (accessor, _reloads) = fleet_member(&dir, &etcd);

    assert_eq!(message(&accessor), "from etcd");
    assert_eq!(accessor.load().section::<Limits>().max_body_bytes, 10);
    let status = etcd_status(&accessor);
    assert!(status.up);
    assert_eq!(status.name, format!("etcd:{PREFIX}"));
    assert_eq!(status.details["revision"], etcd.revision());
    assert_eq!(status.details["keys"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_goes_live_with_its_key_and_revision_as_origin() {
    let (server, mut c, dir) = started().await;
    put_greeting(&mut c, "one").await;
    let (accessor, _reloads, watch) = watched(&server, &dir).await;

    let put = put_greeting(&mut c, "two").await;
    let revision = put.header().unwrap().revision();
    assert!(until(LIVE, || message(&accessor) == "two").await);
    assert_eq!(
        accessor.load().origin(),
        &Origin::Etcd {
            keys: vec![format!("{PREFIX}greeting")],
            revision
        }
    );
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_key_transaction_is_one_version() {
    let (server, mut c, dir) = started().await;
    let etcd = Etcd::connect(options(server.endpoint())).await.unwrap();
    let (accessor, reloads) = fleet_member(&dir, &etcd);
    let mut events = accessor.events();
    let watch = etcd.watch(&reloads);
    let before = accessor.load().version();

    for i in 1..=5u64 {
        let txn = Txn::new().and_then([
            TxnOp::put(
                format!("{PREFIX}greeting"),
                greeting(&format!("m{i}")),
                None,
            ),
            TxnOp::put(
                format!("{PREFIX}limits"),
                serde_json::json!({"max_body_bytes": i, "request_timeout_ms": i}).to_string(),
                None,
            ),
        ]);
        c.txn(txn).await.unwrap();
        assert!(until(LIVE, || message(&accessor) == format!("m{i}")).await);
    }
    // Every version published pairs the message and the limit of one transaction.
    let published = accessor.load().version() - before;
    assert_eq!(published, 5, "one version per transaction");
    while let Ok(event) = events.try_recv() {
        if let eac_accessor::Event::Published { changed, .. } = event {
            assert_eq!(changed.len(), 2, "both keys in one version: {changed:?}");
        }
    }
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_key_gives_way_to_the_files() {
    let (server, mut c, dir) = started().await;
    put_greeting(&mut c, "from etcd").await;
    let (accessor, _reloads, watch) = watched(&server, &dir).await;
    assert_eq!(message(&accessor), "from etcd");

    c.delete(format!("{PREFIX}greeting"), None).await.unwrap();
    assert!(until(LIVE, || message(&accessor) == "hello").await);
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_value_is_rejected_naming_key_and_revision_and_the_last_good_stays() {
    let (server, mut c, dir) = started().await;
    let (accessor, _reloads, watch) = watched(&server, &dir).await;
    let good = accessor.load_full();

    for (bad, kind) in [
        (greeting(""), ErrorKind::Schema),
        ("{\"message\": ".to_owned(), ErrorKind::Parse),
    ] {
        let revision = put(&mut c, "greeting", bad)
            .await
            .header()
            .unwrap()
            .revision();
        let rejected = until(LIVE, || {
            accessor.status().last_rejection.is_some_and(|r| {
                r.origin
                    == Origin::Etcd {
                        keys: vec![format!("{PREFIX}greeting")],
                        revision,
                    }
            })
        })
        .await;
        assert!(rejected, "the bad put at {revision} is rejected");
        let rejection = accessor.status().last_rejection.unwrap();
        let error = &rejection.errors[0];
        assert_eq!(error.kind(), kind);
        assert!(
            error
                .to_string()
                .contains(&format!("etcd:{PREFIX}greeting@{revision}")),
            "{error}"
        );
        assert_eq!(accessor.load().version(), good.version());
        assert_eq!(message(&accessor), "hello");
    }
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_blocks_only_itself_a_good_put_of_another_key_goes_live() {
    let (server, mut c, dir) = started().await;
    let (accessor, _reloads, watch) = watched_up(&server, &dir).await;
    put_greeting(&mut c, "from etcd").await;
    assert!(until(LIVE, || message(&accessor) == "from etcd").await);

    // A value that does not parse: only it changed, so the reload is rejected.
    let bad = put(&mut c, "greeting", "{\"message\": ").await;
    let bad = bad.header().unwrap().revision();
    assert!(until(LIVE, || accessor.status().last_rejection.is_some()).await);
    let status = etcd_status(&accessor);
    assert_eq!(status.last_result, Some("rejected"));
    assert!(
        status.rejection[0]
            .to_string()
            .contains(&format!("etcd:{PREFIX}greeting@{bad}"))
    );

    // A good put of another key goes live; the bad key keeps its last good value. The
    // read is committed (its revision, beside the bad key's NACK).
    let features = put(&mut c, "features", "{\"shout\": true}").await;
    let features = features.header().unwrap().revision();
    assert!(until(LIVE, || accessor.load().section::<Features>().shout).await);
    assert_eq!(message(&accessor), "from etcd");
    assert_eq!(
        etcd_status(&accessor).details["committed_revision"],
        features
    );
    let held = accessor.status().held_back;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].input, format!("etcd:{PREFIX}greeting"));
    assert_eq!(held[0].errors[0].kind(), ErrorKind::Parse);

    // Fixed, it goes live and nothing is held back.
    put_greeting(&mut c, "fixed").await;
    assert!(until(LIVE, || message(&accessor) == "fixed").await);
    assert!(accessor.status().held_back.is_empty());
    assert!(etcd_status(&accessor).rejection.is_empty());
    watch.stop().await;
}

/// `features` and `features.yaml` both set section `features`: neither wins silently.
/// Each is rejected naming the other, at a put and at a start; deleting one lets the
/// other go live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_keys_of_one_section_are_rejected_naming_both() {
    let (server, mut c, dir) = started().await;
    let (accessor, _reloads, watch) = watched_up(&server, &dir).await;
    let first = put(&mut c, "features", "{\"shout\": true}").await;
    let first = first.header().unwrap().revision();
    assert!(until(LIVE, || accessor.load().section::<Features>().shout).await);
    let version = accessor.load().version();

    let twin = put(&mut c, "features.yaml", "shout: false\n").await;
    let twin = twin.header().unwrap().revision();
    assert!(until(LIVE, || accessor.status().last_rejection.is_some()).await);
    let rejection = accessor.status().last_rejection.unwrap();
    let errors: Vec<String> = rejection.errors.iter().map(ToString::to_string).collect();
    let named = |key: &str, revision: i64, other: &str| {
        errors.iter().any(|e| {
            e.contains(&format!("etcd:{PREFIX}{key}@{revision}"))
                && e.contains(&format!("`{PREFIX}{other}`"))
        })
    };
    assert!(named("features.yaml", twin, "features"), "{errors:#?}");
    assert!(named("features", first, "features.yaml"), "{errors:#?}");
    assert_eq!(accessor.load().version(), version, "nothing was published");
    assert!(accessor.load().section::<Features>().shout);

    // A start on both is refused the same way.
    let etcd = Etcd::connect(options(server.endpoint())).await.unwrap();
    let errors = build(&dir, etcd).unwrap_err().to_string();
    assert!(
        errors.contains(&format!("etcd:{PREFIX}features.yaml@{twin}"))
            && errors.contains(&format!("`{PREFIX}features`")),
        "{errors}"
    );

    c.delete(format!("{PREFIX}features"), None).await.unwrap();
    assert!(until(LIVE, || !accessor.load().section::<Features>().shout).await);
    assert!(accessor.status().held_back.is_empty());
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_compaction_the_watch_reads_everything_again_and_loses_nothing() {
    let server = EtcdServer::start();
    let proxy = TcpProxy::start(server.port());
    let mut c = client(&server).await;
    let dir = ConfigDir::with_app();
    let etcd = Etcd::connect(options(proxy.endpoint())).await.unwrap();
    let (accessor, reloads) = fleet_member(&dir, &etcd);
    let watch = etcd.watch(&reloads);
    assert!(until(LIVE, || etcd_status(&accessor).up).await);

    // Off the cluster, the source misses two puts, then their history is compacted.
    proxy.cut();
    assert!(until(LIVE, || !etcd_status(&accessor).up).await);
    put_greeting(&mut c, "missed").await;
    let last = put_greeting(&mut c, "latest")
        .await
        .header()
        .unwrap()
        .revision();
    c.compact(last, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    assert!(etcd.revision() < last);

    proxy.restore();
    assert!(until(LIVE, || message(&accessor) == "latest").await);
    assert!(etcd.revision() >= last);
    let status = etcd_status(&accessor);
    assert!(status.up);
    assert_eq!(
        status.details["compacted_watches"], 1,
        "resynced after the compaction"
    );
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_killed_and_restarted_serving_throughout_then_resynced() {
    let (mut server, _c, dir) = started().await;
    let (accessor, _reloads, watch) = watched_up(&server, &dir).await;
    let served = accessor.load().version();

    server.kill();
    assert!(until(LIVE, || !etcd_status(&accessor).up).await);
    let down = etcd_status(&accessor);
    assert!(down.last_error.is_some_and(|e| e.contains(PREFIX)));
    assert_eq!(accessor.load().version(), served, "still serving");
    assert_eq!(message(&accessor), "hello");

    server.restart();
    let mut c = client(&server).await;
    put_greeting(&mut c, "after restart").await;
    assert!(until(LIVE, || message(&accessor) == "after restart").await);
    assert!(etcd_status(&accessor).up);
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_etcd_is_reported_down_within_the_keep_alive_bound() {
    let (mut server, _c, dir) = started().await;
    let (accessor, _reloads, watch) = watched_up(&server, &dir).await;

    server.pause();
    let paused = Instant::now();
    // Keep-alive: a ping every 500 ms answered within 500 ms; allow the ping's phase.
    let bound = Duration::from_millis(500 + 500 + 500 + 1000);
    let reported = until(bound, || !etcd_status(&accessor).up).await;
    let took = paused.elapsed();
    server.resume();
    assert!(reported, "still up {took:?} after SIGSTOP");
    assert_eq!(message(&accessor), "hello");

    // Resumed, it comes back.
    assert!(until(LIVE, || etcd_status(&accessor).up).await);
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_view_shows_an_instance_while_it_lives() {
    let server = EtcdServer::start();
    let dir = ConfigDir::with_app();
    let observer = Etcd::connect(options(server.endpoint())).await.unwrap();
    let (watching, reloads) = fleet_member(&dir, &observer);
    let watch = observer.watch(&reloads);
    let fleet = |id: &str| etcd_status(&watching).details["fleet"].get(id).cloned();

    // Instance "a" joins and leaves; its record carries the version it serves.
    let etcd_a = Etcd::connect(options(server.endpoint())).await.unwrap();
    let (a, _ra) = fleet_member(&dir, &etcd_a);
    let member = etcd_a.join_fleet(&a, "a");
    assert!(until(LIVE, || fleet("a").is_some()).await);
    let record = fleet("a").unwrap();
    assert_eq!(record["version"], a.load().version());
    assert_eq!(record["hash"], a.load().hash().to_string());
    member.leave().await;
    assert!(until(LIVE, || fleet("a").is_none()).await);

    // Instance "b" dies without leaving: its lease runs out.
    let etcd_b = Etcd::connect(options(server.endpoint())).await.unwrap();
    let (b, _rb) = fleet_member(&dir, &etcd_b);
    let member = etcd_b.join_fleet_with_ttl(&b, "b", Duration::from_secs(1));
    assert!(until(LIVE, || fleet("b").is_some()).await);
    drop(member);
    assert!(until(Duration::from_secs(15), || fleet("b").is_none()).await);

    // A heartbeat or a record is never a reload.
    assert_eq!(watching.load().version(), 1);
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_acks_the_revision_it_applied_and_nacks_the_one_it_rejected() {
    let (server, mut c, dir) = started().await;
    let etcd = Etcd::connect(options(server.endpoint())).await.unwrap();
    let (accessor, reloads) = fleet_member(&dir, &etcd);
    let watch = etcd.watch(&reloads);
    let member = etcd.join_fleet(&accessor, "a");
    let record = || etcd_status(&accessor).details["fleet"].get("a").cloned();
    // The revision a put wrote, once the record says `field` is at it.
    let recorded = async |field: &str, revision: i64| {
        let at = |r: &serde_json::Value| field.split('.').fold(r, |r, f| &r[f]) == revision;
        assert!(
            until(LIVE, || record().is_some_and(|r| at(&r))).await,
            "{field}: {:?}",
            record()
        );
        revision
    };
    let revision = |put: etcd_client::PutResponse| put.header().unwrap().revision();

    let good = recorded(
        "applied_revision",
        revision(put_greeting(&mut c, "one").await),
    )
    .await;
    let served = accessor.load().version();
    assert!(record().unwrap()["nack"].is_null());
    // The fleet view, as this member computes it.
    let state = || etcd_status(&accessor).details["fleet_view"]["members"][0]["state"].clone();
    assert!(until(LIVE, || state() == "SYNCED").await, "{:?}", state());

    // A bad value: NACKed with the key, its revision and what was expected; nothing
    // else changes.
    let bad = revision(put(&mut c, "greeting", greeting("")).await);
    recorded("nack.revision", bad).await;
    assert!(until(LIVE, || state() == "NACKED").await, "{:?}", state());
    let nacked = record().unwrap();
    assert_eq!(nacked["applied_revision"], good);
    assert_eq!(nacked["version"], served);
    let error = &nacked["nack"]["errors"][0];
    assert_eq!(error["key"], "greeting.message");
    assert_eq!(error["source"], format!("etcd:{PREFIX}greeting@{bad}"));
    assert_eq!(accessor.load().version(), served);

    // A good put clears the NACK and is ACKed.
    recorded(
        "applied_revision",
        revision(put_greeting(&mut c, "two").await),
    )
    .await;
    assert!(record().unwrap()["nack"].is_null());
    assert!(until(LIVE, || state() == "SYNCED").await, "{:?}", state());
    member.leave().await;
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_and_rejected_revisions_and_the_propagation_are_measured() {
    // The process's recorder (a test runs alone in its process under nextest): the
    // reloads run on blocking threads.
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the only recorder");
    // A snapshot drains histograms and counters: what they recorded is kept here.
    let propagated = std::cell::Cell::new(false);
    let nacks = std::cell::Cell::new(0);
    let value = |name: &str| {
        let snapshot = snapshotter.snapshot().into_vec();
        for (key, .., value) in &snapshot {
            if let (true, DebugValue::Counter(n)) = (key.key().name() == "eac_nacks_total", value) {
                nacks.set(nacks.get() + n);
            }
        }
        propagated.set(
            propagated.get()
                || snapshot.iter().any(|(key, .., value)| {
                    key.key().name() == "eac_fleet_propagation_seconds"
                        && matches!(value, DebugValue::Histogram(s) if !s.is_empty())
                }),
        );
        snapshot
            .into_iter()
            .find(|(key, ..)| key.key().name() == name)
            .map(|(.., value)| value)
    };
    let (server, mut c, dir) = started().await;
    let (accessor, _reloads, watch) = watched_up(&server, &dir).await;

    let good = put_greeting(&mut c, "measured")
        .await
        .header()
        .unwrap()
        .revision();
    assert!(until(LIVE, || message(&accessor) == "measured").await);
    assert!(
        until(LIVE, || matches!(value("eac_applied_revision"), Some(DebugValue::Gauge(g)) if g.into_inner() == good as f64)).await,
        "{:?}",
        value("eac_applied_revision")
    );
    assert!(propagated.get(), "no propagation measured");

    let bad = put(&mut c, "greeting", greeting(""))
        .await
        .header()
        .unwrap()
        .revision();
    assert!(until(LIVE, || matches!(value("eac_rejected_revision"), Some(DebugValue::Gauge(g)) if g.into_inner() == bad as f64)).await);
    // Set right after the gauge: seen by the next snapshot at the latest.
    assert!(
        until(LIVE, || {
            value("eac_nacks_total");
            nacks.get() == 1
        })
        .await
    );
    watch.stop().await;
}

/// Every log line of this process from now on, debug and up (a test runs alone in its process under
/// nextest, the README's runner).
fn captured_logs() -> impl Fn() -> String {
    let lines = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = Arc::clone(&lines);
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || LogSink(Arc::clone(&sink)))
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    move || String::from_utf8_lossy(&lines.lock().unwrap()).into_owned()
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The most reconnect attempts within `outage` of a backoff from `base` doubling up to
/// `max` that waits at least half its step (the etcd watch's): the first at once, then
/// one after each wait.
fn most_attempts(base: Duration, max: Duration, outage: Duration) -> usize {
    let mut step = base;
    let mut waited = Duration::ZERO;
    let mut attempts = 1;
    loop {
        waited += step / 2;
        if waited > outage {
            return attempts;
        }
        attempts += 1;
        step = (step * 2).min(max);
    }
}

/// An etcd outage of 30 s logs a bounded number of lines. The bound: the fleet record
/// warns once when it goes (and says once, at info, when it is back); the watch warns
/// once per reconnect attempt, and its attempts back off from 100 ms doubling to 5 s,
/// each wait at least half its step: at most 17 in 30 s, at most one every 2.5 s once
/// at 5 s. So at most 18 warnings for a 30 s outage, 7 in its last 15 s; none other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_outage_of_30_s_logs_a_bounded_number_of_warnings() {
    const OUTAGE: Duration = Duration::from_secs(30);
    // The reconnect backoff's defaults: from 100 ms, doubling to 5 s.
    const BASE: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);
    let logs = captured_logs();
    let count = |what: &str| logs().matches(what).count();
    let warnings = || logs().lines().filter(|l| l.contains(" WARN ")).count();
    let server = EtcdServer::start();
    let proxy = TcpProxy::start(server.port());
    let dir = ConfigDir::with_app();
    let etcd = Etcd::connect(options(proxy.endpoint()).backoff(BASE, MAX))
        .await
        .unwrap();
    // A member as `live_server` runs one: the prefix watched, its record in the fleet.
    let (accessor, reloads) = fleet_member(&dir, &etcd);
    let watch = etcd.watch(&reloads);
    let member = etcd.join_fleet_with_ttl(&accessor, "a", Duration::from_secs(3));
    let record = || etcd_status(&accessor).details["fleet"].get("a").cloned();
    assert!(until(LIVE, || record().is_some()).await, "{}", logs());
    assert_eq!(warnings(), 0, "{}", logs());

    proxy.cut();
    let cut = Instant::now();
    tokio::time::sleep(OUTAGE / 2).await;
    let halfway = warnings();
    tokio::time::sleep(OUTAGE / 2).await;
    let at_end = warnings();
    let cut_for = cut.elapsed();
    proxy.restore();
    assert!(
        until(Duration::from_secs(15), || count(
            "fleet record registered again"
        ) == 1)
        .await,
        "{}",
        logs()
    );
    assert!(until(LIVE, || etcd_status(&accessor).up).await);
    // Every warning since the cut, the recovery's included.
    let outage = cut.elapsed();
    let all = logs();
    let lines: Vec<&str> = all.lines().filter(|l| l.contains(" WARN ")).collect();

    // The fleet record: one warning when it goes, one line when it is back; its retries
    // say so only at debug level.
    assert_eq!(count("fleet record lost"), 1, "{all}");
    assert!(count("fleet record still not registered") >= 2, "{all}");
    // The watch: one warning per reconnect attempt, and the attempts back off.
    let watch_lines = lines
        .iter()
        .filter(|l| {
            l.contains("etcd: watch interrupted; reconnecting")
                || l.contains("etcd: cannot read the prefix; retrying")
        })
        .count();
    let fleet_lines = lines
        .iter()
        .filter(|l| l.contains("etcd: fleet record lost"))
        .count();
    // No other warning.
    assert_eq!(watch_lines + fleet_lines, lines.len(), "{all}");
    // The bound: the fleet record's one, and one per attempt of the watch's backoff
    // since the cut (17 in 30 s); the outage is seen.
    let bound = 1 + most_attempts(BASE, MAX, outage);
    let second_half = at_end - halfway;
    let steady = 1 + (OUTAGE / 2).as_millis() as usize / (MAX / 2).as_millis() as usize;
    eprintln!(
        "{at_end} warning(s) in a cut of {cut_for:?}, {} in the {outage:?} since it began (at most {bound}), {second_half} in its last {:?} (at most {steady})",
        lines.len(),
        OUTAGE / 2
    );
    assert!(
        (2..=bound).contains(&lines.len()),
        "{} warnings in the {outage:?} since the cut, at most {bound}:\n{}",
        lines.len(),
        lines.join("\n")
    );
    // During the cut itself: 18 for 30 s.
    let during = 1 + most_attempts(BASE, MAX, cut_for);
    assert!(
        at_end <= during,
        "{at_end} warnings in a cut of {cut_for:?}, at most {during}:\n{}",
        lines.join("\n")
    );
    // And it holds over time: once the backoff is at its maximum, at most one warning
    // every 2.5 s, not the ten a second an unthrottled retry would log.
    assert!(
        second_half <= steady,
        "{second_half} warnings in the outage's last {:?}, at most {steady}:\n{}",
        OUTAGE / 2,
        lines.join("\n")
    );
    watch.stop().await;
    member.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_at_start_starts_from_the_last_known_good_cache() {
    let (mut server, mut c, dir) = started().await;
    put_greeting(&mut c, "cached").await;
    let (_cache_dir, cache) = last_good();
    let with_cache = |endpoint| options(endpoint).cache(cache.clone());

    // A first instance publishes what etcd holds: that is cached.
    {
        let etcd = Etcd::connect(with_cache(server.endpoint())).await.unwrap();
        let (accessor, _reloads) = fleet_member(&dir, &etcd);
        assert_eq!(message(&accessor), "cached");
        assert!(!etcd_status(&accessor).serving_cache);
    }
    server.kill();

    // Without a cache, no start: the error names the prefix.
    let err = Etcd::connect(options(server.endpoint())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.to_string().contains(&format!("etcd:{PREFIX}")), "{err}");

    // With it, a start bounded by the request timeout, from the cache, saying so.
    let started = Instant::now();
    let etcd = Etcd::connect(with_cache(server.endpoint())).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let (accessor, reloads) = fleet_member(&dir, &etcd);
    assert_eq!(message(&accessor), "cached");
    let status = etcd_status(&accessor);
    assert!(status.serving_cache && !status.up, "{status:?}");
    let watch = etcd.watch(&reloads);

    // etcd back: read, published, no longer from the cache.
    server.restart();
    let mut c = client(&server).await;
    put_greeting(&mut c, "fresh").await;
    assert!(until(LIVE, || message(&accessor) == "fresh").await);
    let status = etcd_status(&accessor);
    assert!(status.up && !status.serving_cache, "{status:?}");
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_rejected_at_start_starts_from_the_last_known_good_cache() {
    let (server, mut c, dir) = started().await;
    put_greeting(&mut c, "cached").await;
    let (_cache_dir, cache) = last_good();
    let with_cache = || options(server.endpoint()).cache(cache.clone());
    {
        let etcd = Etcd::connect(with_cache()).await.unwrap();
        let (accessor, _reloads) = fleet_member(&dir, &etcd);
        assert_eq!(message(&accessor), "cached");
    }
    // A bad put while no instance runs: the next start reads it, rejects it, and starts
    // from the cache rather than not at all.
    put(&mut c, "greeting", r#"{"message": 5}"#).await;
    let etcd = Etcd::connect(with_cache()).await.unwrap();
    let (accessor, reloads) = fleet_member(&dir, &etcd);
    assert_eq!(message(&accessor), "cached");
    let status = etcd_status(&accessor);
    assert!(status.serving_cache && status.up, "{status:?}");
    let error = status.last_error.unwrap_or_default();
    assert!(
        error.contains("rejected at start") && error.contains("greeting"),
        "{error}"
    );
    let rejection = accessor
        .status()
        .last_rejection
        .expect("the rejection is kept");
    let named = |e: &eac_accessor::Error| e.to_string().contains(&format!("{PREFIX}greeting"));
    assert!(rejection.errors.iter().any(named), "{:?}", rejection.errors);

    // The watch goes on: the next good put is live, no longer from the cache.
    let watch = etcd.watch(&reloads);
    put_greeting(&mut c, "fixed").await;
    assert!(until(LIVE, || message(&accessor) == "fixed").await);
    assert!(!etcd_status(&accessor).serving_cache);
    watch.stop().await;

    // Without a cache, a rejected prefix still fails the start, naming the key.
    put(&mut c, "greeting", r#"{"message": 5}"#).await;
    let etcd = Etcd::connect(options(server.endpoint())).await.unwrap();
    let err = build(&dir, etcd).unwrap_err();
    assert!(
        err.to_string().contains(&format!("{PREFIX}greeting")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_layout_reads_one_key_as_the_whole_document() {
    let server = EtcdServer::start();
    let mut c = client(&server).await;
    let document =
        "[greeting]\nmessage = \"whole\"\n[limits]\nmax_body_bytes = 7\nrequest_timeout_ms = 7\n";
    put(&mut c, "app.toml", document).await;
    // Another key under the prefix is not part of this document.
    put_greeting(&mut c, "ignored").await;
    let dir = ConfigDir::with_app();
    let etcd = Etcd::connect(options(server.endpoint()).document("app.toml"))
        .await
        .unwrap();
    let (accessor, reloads) = fleet_member(&dir, &etcd);
    assert_eq!(message(&accessor), "whole");
    assert_eq!(accessor.load().section::<Limits>().max_body_bytes, 7);

    let watch = etcd.watch(&reloads);
    put(&mut c, "app.toml", document.replace("whole", "edited")).await;
    assert!(until(LIVE, || message(&accessor) == "edited").await);
    watch.stop().await;
}

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_values_of_dot_records_are_never_fetched_nor_watched() {
    let server = EtcdServer::start();
    let mut c = client(&server).await;
    put_greeting(&mut c, "from etcd").await;
    // Records of eac's own under `<prefix>.`: 24 MiB the configuration never needs.
    let big = "x".repeat(MIB);
    for i in 0..24 {
        put(&mut c, &format!(".x/{i}"), big.clone()).await;
    }
    let before = server.grpc_sent_bytes();

    let dir = ConfigDir::with_app();
    let (accessor, _reloads, watch) = watched(&server, &dir).await;
    assert_eq!(message(&accessor), "from etcd");
    // One more while watched, then a change of the configuration after it.
    put(&mut c, ".x/late", big).await;
    put_greeting(&mut c, "two").await;
    assert!(until(LIVE, || message(&accessor) == "two").await);
    watch.stop().await;

    let sent = server.grpc_sent_bytes() - before;
    assert!(
        sent < MIB as u64,
        "etcd sent {sent} bytes for a few small keys"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_prefix_over_the_total_cap_fails_naming_the_prefix_and_the_cap() {
    let server = EtcdServer::start();
    let mut c = client(&server).await;
    put_greeting(&mut c, "from etcd").await;
    let pad = serde_json::json!({ "pad": "x".repeat(30_000) }).to_string();
    for i in 0..3 {
        put(&mut c, &format!("big{i}"), pad.clone()).await;
    }
    let capped = options(server.endpoint()).max_total_size(SizeCap::bytes_exact(64 * 1024));
    let err = Etcd::connect(capped).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limit, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("etcd:{PREFIX}")) && text.contains("64 KiB"),
        "{text}"
    );

    // Within the cap, the same prefix reads.
    let roomy = options(server.endpoint()).max_total_size(SizeCap::bytes_exact(128 * 1024));
    let etcd = Etcd::connect(roomy).await.unwrap();
    let status = etcd.status().expect("a status");
    assert_eq!(status.details["keys"].as_array().map(Vec::len), Some(4));
}

/// 120 keys rewritten together by one transaction after another: every read, in pages,
/// finds all of them at one revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_pages_of_a_large_prefix_are_read_at_one_revision() {
    let server = EtcdServer::start();
    let mut c = client(&server).await;
    let keys = 120;
    let write = move |n: usize| {
        let value = serde_json::json!({ "n": n, "pad": "x".repeat(1000) }).to_string();
        Txn::new().and_then(
            (0..keys)
                .map(|k| TxnOp::put(format!("{PREFIX}k{k:03}"), value.clone(), None))
                .collect::<Vec<_>>(),
        )
    };
    c.txn(write(0)).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let mut c = c.clone();
        let stop = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            let mut n = 1;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                c.txn(write(n)).await.unwrap();
                n += 1;
            }
        })
    };
    // A value cap of 4 KiB bounds a response to a few dozen of these keys: many pages.
    let small = || options(server.endpoint()).max_value_size(SizeCap::bytes_exact(4 * 1024));
    for _ in 0..20 {
        let etcd = Etcd::connect(small()).await.unwrap();
        let status = etcd.status().expect("a status");
        let read = status.details["keys"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(read.len(), keys);
        let revisions: std::collections::BTreeSet<_> =
            read.iter().map(|k| k["mod_revision"].as_i64()).collect();
        assert_eq!(
            revisions.len(),
            1,
            "one transaction, one revision: {revisions:?}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_value_over_the_decode_bound_is_refused_naming_its_key() {
    let server = EtcdServer::start();
    let mut c = client(&server).await;
    let revision = put_greeting(&mut c, &"x".repeat(200_000))
        .await
        .header()
        .unwrap()
        .revision();
    let etcd = Etcd::connect(options(server.endpoint()).max_value_size(SizeCap::bytes_exact(1024)))
        .await
        .unwrap();
    let dir = ConfigDir::with_app();
    let err = build(&dir, etcd).unwrap_err();
    let error = err.iter().next().expect("one error");
    assert_eq!(error.kind(), ErrorKind::Limit, "{err}");
    assert!(
        error
            .to_string()
            .contains(&format!("etcd:{PREFIX}greeting@{revision}")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_prefix_too_large_for_the_cache_leaves_the_last_cache() {
    let (server, mut c, dir) = started().await;
    put_greeting(&mut c, "cached").await;
    let (_cache_dir, cache) = last_good();
    let build = |etcd: Etcd| {
        crate::four_sections()
            .allow_unknown_keys(true)
            .source(Dir::new(dir.path()))
            .source(etcd)
            .build()
            .expect("build on files + etcd")
    };
    let with_cache = || options(server.endpoint()).cache(cache.clone());
    let first = build(Etcd::connect(with_cache()).await.unwrap());
    assert_eq!(message(&first), "cached");
    assert!(cache.load().is_some());

    // 17 MiB of configuration: more than the cache loader reads (16 MiB).
    let pad = serde_json::json!({ "pad": "x".repeat(1400 * 1024) }).to_string();
    for i in 0..12 {
        put(&mut c, &format!("big{i}"), pad.clone()).await;
    }
    put_greeting(&mut c, "large").await;
    let second = build(Etcd::connect(with_cache()).await.unwrap());
    assert_eq!(message(&second), "large");
    let (_, text) = cache
        .load()
        .expect("the last cache is still there, and loads");
    assert!(
        text.contains("cached") && !text.contains("large"),
        "{}",
        text.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_gone_back_in_revisions_is_read_afresh() {
    let mut server = EtcdServer::start();
    let mut c = client(&server).await;
    for i in 0..30 {
        put_greeting(&mut c, &format!("old {i}")).await;
    }
    let dir = ConfigDir::with_app();
    let (accessor, _reloads, watch) = watched_up(&server, &dir).await;
    assert_eq!(message(&accessor), "old 29");

    // A new cluster at the same address: its revisions start again at 1.
    server.replace_with_empty();
    let mut c = client(&server).await;
    let revision = put_greeting(&mut c, "new")
        .await
        .header()
        .unwrap()
        .revision();
    assert!(revision < 30);
    assert!(
        until(LIVE, || message(&accessor) == "new").await,
        "still {:?}",
        message(&accessor)
    );
    // And the watch follows the new cluster's revisions.
    put_greeting(&mut c, "newer").await;
    assert!(until(LIVE, || message(&accessor) == "newer").await);
    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_is_said_in_a_sentence_naming_the_endpoint_and_the_cause() {
    // A port nothing listens on.
    let port = eac_tests::etcd::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let error = Etcd::connect(options(endpoint.clone())).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(&format!("cannot read the prefix at {endpoint}: ")),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");
    // Never the client's debug text.
    for debug in ["tonic::", "ConnectError(", "Os {", "Some(", "source:"] {
        assert!(!text.contains(debug), "`{debug}` in {text}");
    }
}

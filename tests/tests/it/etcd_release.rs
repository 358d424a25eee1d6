//! A gray release through the library against a real `etcd` (feature `etcd`): members
//! joined with `join_fleet` take part by themselves; `start_release`, `judge_release` and
//! `decide_release` drive it. A canary whose health check fails with the candidate is
//! rolled back by its coordinator, and the release is aborted for it.

use std::time::{Duration, SystemTime};

use eac_accessor::canary::Thresholds;
use eac_accessor::fleet::{
    DEADLINE_GRACE, Decision, PutError, ReleaseOptions, SectionPut, Selector,
};
use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
use eac_accessor::source::{Dir, Etcd, EtcdOptions, Format};
use eac_accessor::{EaCAccessor, SourceName};
use eac_tests::etcd::EtcdServer;
use eac_tests::{ConfigDir, Features};

const PREFIX: &str = "/eac/release/";

fn options(server: &EtcdServer) -> EtcdOptions {
    EtcdOptions::new([server.endpoint()], PREFIX)
        .timeouts(Duration::from_millis(500), Duration::from_secs(2))
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
}

fn shout(on: bool) -> SectionPut {
    SectionPut::new(
        "features",
        Format::Json,
        format!(r#"{{"shout": {on}}}"#),
        SourceName::Memory("release".into()),
    )
    .by("test")
}

/// A member: its accessor (the files, then the prefix) and what keeps it in the fleet.
struct Member {
    accessor: EaCAccessor,
    _reloads: ReloadCoordinator,
    watch: eac_accessor::source::EtcdWatch,
    record: eac_accessor::fleet::FleetMember,
}

async fn member(server: &EtcdServer, dir: &ConfigDir, id: &str, healthy: bool) -> Member {
    let etcd = Etcd::connect(options(server)).await.unwrap();
    let accessor = crate::four_sections()
        .source(Dir::new(dir.path()))
        .source(etcd.clone())
        .build()
        .unwrap();
    let mut config = ReloadConfig::default();
    config.cooldown = Duration::ZERO;
    config.health_window = Duration::from_secs(2);
    let reloads = ReloadCoordinator::new(accessor.clone(), config);
    if !healthy {
        // This member cannot work with `shout`: its check fails, and it rolls back.
        reloads.health_check("loud", |snapshot| async move {
            if snapshot.section::<Features>().shout {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err("too loud".to_owned())
            } else {
                Ok(())
            }
        });
    }
    let watch = etcd.watch(&reloads);
    let record = etcd.join_fleet(&accessor, id);
    Member {
        accessor,
        _reloads: reloads,
        watch,
        record,
    }
}

impl Member {
    async fn leave(self) {
        self.watch.stop().await;
        self.record.leave().await;
    }

    async fn until_shout(&self, on: bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.accessor.load().section::<Features>().shout != on {
            assert!(tokio::time::Instant::now() < deadline, "shout never {on}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Members `a` (healthy or not) and `b` (healthy) on one prefix, and a writer that has
/// seen both join the fleet.
async fn two_members(
    server: &EtcdServer,
    dir: &ConfigDir,
    a_healthy: bool,
) -> (Member, Member, Etcd) {
    let a = member(server, dir, "a", a_healthy).await;
    let b = member(server, dir, "b", true).await;
    let writer = Etcd::connect(options(server)).await.unwrap();
    let joined = writer
        .wait_for_fleet(0, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(joined.acked.len() + joined.waiting.len(), 2);
    (a, b, writer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_failing_its_health_check_aborts_the_etcd_release_and_the_rest_never_see_it() {
    let server = EtcdServer::start();
    let dir = ConfigDir::with_app();
    let (a, b, writer) = two_members(&server, &dir, false).await;
    let b_version = b.accessor.load().version();

    let started = writer
        .start_release(
            crate::four_sections(),
            shout(true),
            ReleaseOptions::new(Selector::Ids(vec!["a".into()])).window(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert_eq!(started.canaries, ["a"]);

    // Another write while it is in flight is refused, naming it.
    let refused = writer
        .put_section(crate::four_sections(), shout(false))
        .await;
    let Err(PutError::InFlight { release, sections }) = refused else {
        panic!("a put beside a release in flight: {refused:?}");
    };
    assert_eq!(
        (release.as_str(), sections),
        (started.release.as_str(), vec!["features".to_owned()])
    );

    let mut lines = Vec::new();
    let decision = writer
        .judge_release(&started.release, |line| lines.push(line))
        .await
        .unwrap();
    let Decision::Aborted(why) = decision else {
        panic!("promoted: {lines:?}");
    };
    assert!(
        why.starts_with("canary a failed its health check: health check `loud` failed: too loud"),
        "{why}"
    );
    // The canary rolled back, then went back to the prefix; the other never changed.
    a.until_shout(false).await;
    assert!(!b.accessor.load().section::<Features>().shout);
    assert_eq!(b.accessor.load().version(), b_version);
    // Decided: a second decision keeps the first.
    let again = writer
        .decide_release(&started.release, Decision::by_hand(true, "late"))
        .await
        .unwrap();
    assert_eq!(again, Decision::Aborted(why));

    // A healthy canary (b) and a promotion by hand: every member serves it.
    let started = writer
        .start_release(
            crate::four_sections(),
            shout(true),
            ReleaseOptions::new(Selector::Ids(vec!["b".into()])).window(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    b.until_shout(true).await;
    assert!(!a.accessor.load().section::<Features>().shout);
    let decided = writer
        .decide_release(&started.release, Decision::by_hand(true, "test"))
        .await
        .unwrap();
    assert_eq!(
        decided,
        Decision::Promoted("promoted by hand (test)".into())
    );
    b.until_shout(true).await;
    // A rolls back its failing health check again: what the prefix holds is what it
    // cannot run with, and its own coordinator keeps it on the last healthy version.
    let view = writer.fleet_view().await.unwrap();
    assert_eq!(view["releases"][0]["state"], "promoted", "{view}");
    assert_eq!(view["releases"][0]["why"], "promoted by hand (test)");
    a.leave().await;
    b.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_release_without_a_verdict_by_its_deadline_is_aborted_and_its_canary_goes_back() {
    let server = EtcdServer::start();
    let dir = ConfigDir::with_app();
    let (a, b, writer) = two_members(&server, &dir, true).await;
    let b_version = b.accessor.load().version();

    // The default grace is 30 s past the window.
    let default = ReleaseOptions::new(Selector::Ids(vec!["a".into()]));
    assert_eq!(default.grace, Duration::from_secs(30));
    assert_eq!(default.grace, DEADLINE_GRACE);

    // A window of 1 s, a grace of 1 s, and a minimum of requests no load reaches (these
    // members serve none): healthy throughout, never enough to promote.
    let mut thresholds = Thresholds::FLEET;
    thresholds.min_requests = 1_000_000;
    let (window, grace) = (Duration::from_secs(1), Duration::from_secs(1));
    let started = writer
        .start_release(
            crate::four_sections(),
            shout(true),
            default.window(window).grace(grace).thresholds(thresholds),
        )
        .await
        .unwrap();
    assert_eq!(started.canaries, ["a"]);
    let view = writer.fleet_view().await.unwrap();
    let record = &view["releases"][0];
    assert_eq!(record["state"], "canary", "{view}");
    // The record's deadline is start + window + grace (the writer's clock, read twice).
    let deadline = record["deadline"].as_f64().unwrap() - record["at"].as_f64().unwrap();
    assert!((1.5..2.01).contains(&deadline), "{deadline} {view}");
    a.until_shout(true).await;

    let begun = std::time::Instant::now();
    let mut lines = Vec::new();
    let judged = writer.judge_release(&started.release, |line| lines.push(line));
    let decision = tokio::time::timeout(Duration::from_secs(20), judged)
        .await
        .expect("no decision within 20 s of a 2 s deadline")
        .unwrap();
    let took = begun.elapsed();
    let Decision::Aborted(why) = decision else {
        panic!("not aborted: {decision:?} {lines:?}");
    };
    assert_eq!(
        why,
        "no verdict by the deadline: 0 canary requests of the 1000000 needed"
    );
    assert!(
        lines.iter().any(|l| l == "canaries serving it: a"),
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap(), &format!("aborted: {why}"));
    // Not before the deadline, and not long after it.
    assert!(SystemTime::now() >= started.deadline);
    assert!(took < Duration::from_secs(5), "{took:?}");

    // The canary is back on the main configuration; the other never changed.
    a.until_shout(false).await;
    assert_eq!(b.accessor.load().version(), b_version);
    assert!(!b.accessor.load().section::<Features>().shout);
    let view = writer.fleet_view().await.unwrap();
    let record = &view["releases"][0];
    assert_eq!(record["state"], "aborted", "{view}");
    assert_eq!(record["why"], why.as_str());
    // Nothing of the candidate stays: a put of the same section is written.
    writer
        .put_section(crate::four_sections(), shout(false))
        .await
        .unwrap();
    a.leave().await;
    b.leave().await;
}

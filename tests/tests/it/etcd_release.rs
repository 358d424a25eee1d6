//! A gray release through the library against a real `etcd` (feature `etcd`): members
//! joined with `join_fleet` take part by themselves; `start_release`, `judge_release` and
//! `decide_release` drive it. A canary whose health check fails with the candidate is
//! rolled back by its coordinator, and the release is aborted for it.

use std::time::Duration;

use eac_accessor::fleet::{Decision, PutError, ReleaseOptions, SectionPut, Selector};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_failing_its_health_check_aborts_the_etcd_release_and_the_rest_never_see_it() {
    let server = EtcdServer::start();
    let dir = ConfigDir::with_app();
    let a = member(&server, &dir, "a", false).await;
    let b = member(&server, &dir, "b", true).await;
    let writer = Etcd::connect(options(&server)).await.unwrap();
    let joined = writer
        .wait_for_fleet(0, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(joined.acked.len() + joined.waiting.len(), 2);
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

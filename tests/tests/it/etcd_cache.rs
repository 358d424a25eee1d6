//! The etcd source's last-known-good cache against a real `etcd` (feature `etcd`): what
//! its status and metrics say while it serves the cache, and once it has read the prefix
//! again.

use std::time::{Duration, Instant};

use eac_accessor::EaCAccessor;
use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
use eac_accessor::source::{Dir, Etcd, EtcdOptions, LastGood, Source, SourceStatus};
use eac_tests::etcd::{EtcdServer, TcpProxy};
use eac_tests::{ConfigDir, Greeting};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

const PREFIX: &str = "/eac/cache/";

fn options(endpoint: String, cache: &LastGood) -> EtcdOptions {
    EtcdOptions::new([endpoint], PREFIX)
        .keep_alive(Duration::from_millis(500), Duration::from_millis(500))
        .timeouts(Duration::from_millis(500), Duration::from_secs(2))
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .cache(cache.clone())
}

fn build(dir: &ConfigDir, etcd: &Etcd) -> EaCAccessor {
    crate::four_sections()
        .source(Dir::new(dir.path()))
        .source(etcd.clone())
        .build()
        .expect("build on files + etcd")
}

/// What the source says of itself (the accessor's status lists the same).
fn source_status(etcd: &Etcd) -> SourceStatus {
    etcd.status().expect("the etcd source reports a status")
}

/// The `eac_source_serving_cache` gauge of the source, as last set.
fn serving_cache_gauge(snapshotter: &Snapshotter) -> Option<f64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(key, ..)| {
            key.key().name() == "eac_source_serving_cache"
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == "source" && l.value() == format!("etcd:{PREFIX}"))
        })
        .map(|(.., value)| match value {
            DebugValue::Gauge(g) => g.into_inner(),
            other => panic!("{other:?}"),
        })
}

/// One thread runs the test and the watch task, so that its local recorder sees the
/// source's metrics.
#[tokio::test(flavor = "current_thread")]
async fn etcd_started_from_its_cache_serves_the_cluster_once_it_has_read_the_prefix_again() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = EtcdServer::start();
    let proxy = TcpProxy::start(server.port());
    let mut c = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .expect("connect a test client");
    let greeting = serde_json::json!({ "message": "cached" }).to_string();
    c.put(format!("{PREFIX}greeting"), greeting, None)
        .await
        .expect("put the greeting");
    let dir = ConfigDir::with_app();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = LastGood::new(cache_dir.path().join("etcd.cache"));

    // A first instance publishes what etcd holds: that is cached.
    {
        let etcd = Etcd::connect(options(proxy.endpoint(), &cache))
            .await
            .unwrap();
        build(&dir, &etcd);
        assert!(cache.load().is_some(), "the published prefix is cached");
    }

    // etcd out of reach: the next instance starts from the cache, and says so.
    proxy.cut();
    let etcd = Etcd::connect(options(proxy.endpoint(), &cache))
        .await
        .unwrap();
    let accessor = build(&dir, &etcd);
    assert_eq!(accessor.load().section::<Greeting>().message, "cached");
    let status = source_status(&etcd);
    assert!(status.serving_cache && !status.up, "{status:?}");
    assert_eq!(serving_cache_gauge(&snapshotter), Some(1.0));
    let version = accessor.load().version();

    // Back, holding what the cache holds: nothing new to publish, and what is served is
    // now what etcd holds, as soon as the prefix has been read.
    let mut config = ReloadConfig::default();
    config.cooldown = Duration::ZERO;
    let reloads = ReloadCoordinator::new(accessor.clone(), config);
    proxy.restore();
    let watch = etcd.watch(&reloads);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !source_status(&etcd).up {
        assert!(Instant::now() < deadline, "etcd not read again within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = source_status(&etcd);
    assert!(!status.serving_cache, "{status:?}");
    assert_eq!(serving_cache_gauge(&snapshotter), Some(0.0));
    assert_eq!(
        accessor.load().version(),
        version,
        "nothing new was published"
    );
    watch.stop().await;
}

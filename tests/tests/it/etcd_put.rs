//! The fleet's safe writer against a real `etcd` (feature `etcd`): `put_section`
//! validates before writing, guards its write by the revision validated against,
//! records it, and `wait_for_fleet` collects every member's ACK or NACK.

use std::time::Duration;

use eac_accessor::fleet::{PutError, SectionPut};
use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
use eac_accessor::source::{Dir, Etcd, EtcdOptions, Format};
use eac_accessor::{EaCAccessor, EaCSection, SourceName};
use eac_tests::etcd::EtcdServer;
use eac_tests::{ConfigDir, Greeting, Limits};
use etcd_client::{Client, GetOptions};
use schemars::JsonSchema;
use serde::Deserialize;

const PREFIX: &str = "/eac/put/";

fn options(server: &EtcdServer) -> EtcdOptions {
    EtcdOptions::new([server.endpoint()], PREFIX)
        .timeouts(Duration::from_millis(500), Duration::from_secs(2))
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
}

/// What the members and the writer register.
fn sections() -> eac_accessor::Builder {
    crate::four_sections()
}

fn json_put(section: &str, text: &str) -> SectionPut {
    SectionPut::new(
        section,
        Format::Json,
        text,
        SourceName::File("new.json".into()),
    )
    .by("test")
}

/// Every key under the prefix with its mod_revision.
async fn keys(c: &mut Client) -> Vec<(String, i64)> {
    c.get(PREFIX, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap()
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap().to_owned(), kv.mod_revision()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_refuses_an_invalid_section_with_every_error_and_writes_nothing() {
    let server = EtcdServer::start();
    let mut c = Client::connect([server.endpoint()], None).await.unwrap();
    c.put(
        format!("{PREFIX}limits.toml"),
        "max_body_bytes = 10\nrequest_timeout_ms = 5\n",
        None,
    )
    .await
    .unwrap();
    let etcd = Etcd::connect(options(&server)).await.unwrap();
    let before = keys(&mut c).await;

    let bad = json_put(
        "limits",
        r#"{"max_body_bytes": 0, "request_timeout_ms": 5, "bogus": 1}"#,
    );
    let Err(PutError::Invalid(errors)) = etcd.put_section(sections(), bad).await else {
        panic!("an invalid section was written");
    };
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("`limits.max_body_bytes` in file `new.json`")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("`limits.bogus` in file `new.json`")),
        "{lines:?}"
    );
    let unknown = json_put("limtis", "{}");
    let Err(PutError::Invalid(errors)) = etcd.put_section(sections(), unknown).await else {
        panic!("an unknown section was written");
    };
    assert!(
        errors.to_string().contains(
            "no section `limtis` is registered (sections: greeting, limits, features, upstream)"
        ),
        "{errors}"
    );
    assert_eq!(keys(&mut c).await, before, "nothing written");

    // Valid: the other sections the prefix lacks (greeting, upstream) are not required.
    // Written as JSON, the TOML key deleted, and the write recorded at its revision.
    let good = json_put(
        "limits",
        r#"{"max_body_bytes": 20, "request_timeout_ms": 5}"#,
    );
    let written = etcd.put_section(sections(), good).await.unwrap();
    assert_eq!(
        written.validated,
        before.iter().map(|(_, r)| *r).max().unwrap()
    );
    let after = keys(&mut c).await;
    let release = format!("{PREFIX}.releases/{}", written.release);
    assert_eq!(
        after,
        [
            (release.clone(), written.revision),
            (format!("{PREFIX}limits"), written.revision)
        ]
    );
    let value = c.get(format!("{PREFIX}limits"), None).await.unwrap();
    let value: serde_json::Value = serde_json::from_slice(value.kvs()[0].value()).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"max_body_bytes": 20, "request_timeout_ms": 5})
    );
    let record = c.get(release, None).await.unwrap();
    let record: serde_json::Value = serde_json::from_slice(record.kvs()[0].value()).unwrap();
    assert_eq!(record["sections"], serde_json::json!(["limits"]));
    assert_eq!(record["by"], "test");
    assert!(record["at"].as_f64().unwrap() > 1.7e9, "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_puts_validated_against_one_revision_one_wins_the_other_conflicts() {
    let server = EtcdServer::start();
    let etcd = Etcd::connect(options(&server)).await.unwrap();
    let first = etcd
        .prepare_put(sections(), json_put("greeting", r#"{"message": "first"}"#))
        .await
        .unwrap();
    let second = etcd
        .prepare_put(sections(), json_put("greeting", r#"{"message": "second"}"#))
        .await
        .unwrap();
    assert_eq!(first.validated(), second.validated());
    first.write().await.unwrap();
    let Err(PutError::Conflict { validated }) = second.write().await else {
        panic!("the second write overwrote the first unseen");
    };
    assert_eq!(
        validated,
        etcd.fleet_view().await.unwrap()["revision"]
            .as_i64()
            .unwrap()
            - 1
    );
    // Another section's write in between conflicts too: it was validated beside it.
    let third = etcd
        .prepare_put(
            sections(),
            json_put(
                "limits",
                r#"{"max_body_bytes": 1, "request_timeout_ms": 1}"#,
            ),
        )
        .await
        .unwrap();
    let mut c = Client::connect([server.endpoint()], None).await.unwrap();
    c.put(format!("{PREFIX}features"), r#"{"shout": true}"#, None)
        .await
        .unwrap();
    assert!(matches!(
        third.write().await,
        Err(PutError::Conflict { .. })
    ));
    let mut c = Client::connect([server.endpoint()], None).await.unwrap();
    let held = c.get(format!("{PREFIX}greeting"), None).await.unwrap();
    assert_eq!(held.kvs()[0].value(), br#"{"message":"first"}"#);
}

/// A member of another build, whose `greeting` allows five characters at most.
#[derive(Debug, Clone, Deserialize, JsonSchema, EaCSection)]
#[eac(path = "greeting")]
#[serde(deny_unknown_fields)]
struct ShortGreeting {
    #[schemars(length(min = 1, max = 5))]
    message: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_member_acks_or_nacks_a_put_and_times_it_from_the_release_record() {
    let server = EtcdServer::start();
    let dir = ConfigDir::with_app();
    let mut config = ReloadConfig::default();
    config.cooldown = Duration::ZERO;
    let member = async |id: &str, builder: eac_accessor::Builder| {
        let etcd = Etcd::connect(options(&server)).await.unwrap();
        let accessor = builder
            .source(Dir::new(dir.path()))
            .source(etcd.clone())
            .build()
            .unwrap();
        let reloads = ReloadCoordinator::new(accessor.clone(), config.clone());
        let watch = etcd.watch(&reloads);
        let record = etcd.join_fleet(&accessor, id);
        (accessor, reloads, watch, record)
    };
    let (this_build, _r1, w1, m1) = member("a", sections()).await;
    let other = EaCAccessor::builder()
        .section::<ShortGreeting>()
        .section::<Limits>()
        .section::<eac_tests::Features>()
        .section::<eac_tests::Upstream>();
    let (other_build, _r2, w2, m2) = member("b", other).await;
    let writer = Etcd::connect(options(&server)).await.unwrap();
    // Both members are in the view before the write.
    let within = Duration::from_secs(10);
    let joined = writer.wait_for_fleet(0, within).await.unwrap();
    assert_eq!(
        joined.acked.len() + joined.waiting.len(),
        2,
        "{:?}",
        joined.view
    );

    let put = json_put("greeting", r#"{"message": "hello there"}"#);
    let written = writer.put_section(sections(), put).await.unwrap();
    let answer = writer
        .wait_for_fleet(written.revision, within)
        .await
        .unwrap();
    assert_eq!(answer.acked, ["a"], "{:#}", answer.view);
    assert_eq!(answer.nacked, ["b"], "{:#}", answer.view);
    assert!(answer.waiting.is_empty());
    assert_eq!(
        this_build.load().section::<Greeting>().message,
        "hello there"
    );
    assert_ne!(
        other_build.load().section::<ShortGreeting>().message,
        "hello there"
    );

    let members = answer.view["members"].as_array().unwrap();
    let a = &members[0];
    assert_eq!(a["state"], "SYNCED");
    assert_eq!(a["applied_revision"], written.revision);
    // Timed from the writer's record, which shares the write's revision.
    assert_eq!(a["propagation"]["from"], "release", "{a}");
    let took = a["propagation"]["seconds"].as_f64().unwrap();
    assert!((0.0..10.0).contains(&took), "{took}");
    let b = &members[1];
    assert_eq!(b["state"], "NACKED");
    assert_eq!(b["nack"]["revision"], written.revision);
    assert_eq!(
        b["nack"]["errors"][0]["source"],
        format!("etcd:{PREFIX}greeting@{}", written.revision)
    );
    // What was expected, never the value refused (not a secret here, and still not shown).
    assert_eq!(
        b["nack"]["errors"][0]["message"],
        "expected at most 5 character(s), found string (value not shown)",
        "{b}"
    );
    assert!(
        !answer.view.to_string().contains("hello there"),
        "{:#}",
        answer.view
    );
    assert_eq!(answer.view["applied"]["count"], 1);
    assert_eq!(answer.view["applied"]["of"], 2);
    assert_eq!(answer.view["applied"]["slowest_seconds"], took);
    assert_eq!(answer.view["releases"][0]["id"], written.release);
    assert_eq!(answer.view["releases"][0]["revision"], written.revision);

    for w in [w1, w2] {
        w.stop().await;
    }
    for m in [m1, m2] {
        m.leave().await;
    }
}

/// What a member of another build holds against `upstream`: a key of 24 characters at
/// most, as secret as ever.
#[derive(Clone, Deserialize, JsonSchema, EaCSection)]
#[eac(path = "upstream")]
struct ShortKeyUpstream {
    url: String,
    #[eac(secret)]
    #[schemars(length(max = 24))]
    api_key: String,
}

impl std::fmt::Debug for ShortKeyUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShortKeyUpstream")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_nack_says_what_was_expected_and_never_the_secret_it_refused() {
    const KEY: &str = "sk_live_9fQ2xT7mWcB4nR8kLz3vH6pJ";
    let server = EtcdServer::start();
    let dir = ConfigDir::with_app();
    let mut config = ReloadConfig::default();
    config.cooldown = Duration::ZERO;
    let etcd = Etcd::connect(options(&server)).await.unwrap();
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        .section::<Limits>()
        .section::<eac_tests::Features>()
        .section::<ShortKeyUpstream>()
        .source(Dir::new(dir.path()))
        .source(etcd.clone())
        .build()
        .unwrap();
    let reloads = ReloadCoordinator::new(accessor.clone(), config);
    let watch = etcd.watch(&reloads);
    let record = etcd.join_fleet(&accessor, "b");
    let writer = Etcd::connect(options(&server)).await.unwrap();
    let within = Duration::from_secs(10);
    writer.wait_for_fleet(0, within).await.unwrap();

    // Valid for the writer's build (a key of at least 8 characters), too long for this
    // member's: it NACKs it.
    let put = json_put(
        "upstream",
        &serde_json::json!({"url": "https://upstream.example", "api_key": KEY}).to_string(),
    );
    let written = writer.put_section(sections(), put).await.unwrap();
    let answer = writer
        .wait_for_fleet(written.revision, within)
        .await
        .unwrap();
    assert_eq!(answer.nacked, ["b"], "{:#}", answer.view);
    // It keeps serving the key it had.
    assert_eq!(
        accessor.load().section::<ShortKeyUpstream>().api_key,
        eac_tests::SECRET
    );
    let nack = &answer.view["members"][0]["nack"];
    let errors = nack["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{nack:#}");
    // The key, the source, what was expected; the value hidden.
    assert_eq!(errors[0]["key"], "upstream.api_key");
    assert_eq!(
        errors[0]["source"],
        format!("etcd:{PREFIX}upstream@{}", written.revision)
    );
    assert_eq!(
        errors[0]["message"],
        "expected at most 24 character(s), found string (secret, value hidden)"
    );

    // Nowhere: not in the member's record as etcd holds it, nor in the fleet's JSON, nor
    // in the member's own status.
    let mut c = Client::connect([server.endpoint()], None).await.unwrap();
    let raw = c.get(format!("{PREFIX}.instances/b"), None).await.unwrap();
    let raw = String::from_utf8_lossy(raw.kvs()[0].value()).into_owned();
    assert!(raw.contains("upstream.api_key"), "{raw}");
    assert!(!raw.contains(KEY), "{raw}");
    let view = writer.fleet_view().await.unwrap().to_string();
    assert!(view.contains("value hidden"), "{view}");
    assert!(!view.contains(KEY), "{view}");
    assert!(!answer.view.to_string().contains(KEY));
    let status = serde_json::to_string(&accessor.status()).unwrap();
    assert!(status.contains("upstream.api_key"), "{status}");
    assert!(!status.contains(KEY), "{status}");

    watch.stop().await;
    record.leave().await;
}

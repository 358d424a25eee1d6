//! `live_server --etcd` as processes: a fleet of three on one real etcd (feature `etcd`);
//! without the feature, `--etcd` is refused with a message saying how to get it.

mod support;

use support::Launch;

#[cfg(not(feature = "etcd"))]
#[test]
fn without_the_etcd_feature_etcd_is_refused_saying_how_to_get_it() {
    let (config, state) = support::app_dirs();
    let (code, stderr) = Launch::new(config.path(), state.path())
        .arg("--etcd")
        .arg("http://127.0.0.1:2379")
        .run_to_end();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("`etcd` feature"), "{stderr}");
    assert!(stderr.contains("--features etcd"), "{stderr}");
    assert!(stderr.contains("protoc"), "{stderr}");
}

#[cfg(feature = "etcd")]
#[test]
fn three_instances_on_one_etcd_serve_every_put_and_refuse_every_bad_one() {
    use support::Auth;

    const PREFIX: &str = "/eac/e2e/";
    let (etcd, mut client, config) = support::etcd_fleet_ground(PREFIX, "from etcd");
    let states: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let fleet: Vec<_> = states
        .iter()
        .map(|state| {
            Launch::new(config.path(), state.path())
                .arg("--etcd")
                .arg(&etcd.endpoint())
                .env("EAC_ETCD_PREFIX", PREFIX)
                .env("EAC_FLEET_STALE_MS", "300")
                .start()
        })
        .collect();
    for server in &fleet {
        assert_eq!(server.get("/", Auth::None)["message"], "from etcd");
    }
    // Started one after the other (each one's record moves the cluster's revision), they
    // read the same configuration: the last one sees every member SYNCED.
    let members_are = |state: &'static str| {
        move |f: &serde_json::Value| {
            f["members"]
                .as_array()
                .is_some_and(|m| m.len() == 3 && m.iter().all(|m| m["state"] == state))
        }
    };
    fleet[2].until("/_internal/eac/fleet", members_are("SYNCED"));

    // A put is live on every instance.
    client.put("greeting", r#"{"message": "second"}"#);
    let versions: Vec<_> = fleet
        .iter()
        .map(|s| s.until("/", |b| b["message"] == "second")["version"].clone())
        .collect();

    // A bad put is refused by every instance, which keeps serving; its status says why.
    let bad = client.put("greeting", r#"{"message": ""}"#);
    let named = format!("etcd:{PREFIX}greeting@{bad}");
    for (server, version) in fleet.iter().zip(&versions) {
        let status = server.until("/_internal/eac/status", |s| {
            s["last_rejection"]["errors"][0]["source"] == named.as_str()
        });
        assert_eq!(&status["version"], version);
        let body = server.get("/", Auth::None);
        assert_eq!(
            (&body["message"], &body["version"]),
            (&"second".into(), version)
        );
    }

    // Each sees the whole fleet, with the version each one serves.
    let status = fleet[0].until("/_internal/eac/status", |s| {
        s["sources"][0]["details"]["fleet"]
            .as_object()
            .is_some_and(|f| f.len() == 3)
    });
    let source = &status["sources"][0];
    assert_eq!(source["kind"], "etcd");
    assert_eq!(source["up"], true);
    for record in source["details"]["fleet"].as_object().unwrap().values() {
        assert!(versions.contains(&record["version"]), "{record}");
    }

    // The fleet view, on any member: each one NACKED the bad put.
    let view = fleet[1].until("/_internal/eac/fleet", members_are("NACKED"));
    assert_eq!(view["revision"], bad);
    assert_eq!(
        view["members"][0]["nack"]["errors"][0]["source"],
        named.as_str()
    );
    // A good put: every member applies it and is SYNCED.
    let good = client.put("greeting", r#"{"message": "third"}"#);
    let view = fleet[2].until("/_internal/eac/fleet", members_are("SYNCED"));
    assert_eq!(view["revision"], good);
    assert!(view["members"][0]["nack"].is_null());

    // One is paused (SIGSTOP): behind a put, it is SYNCING, then STALE after the stale
    // window (EAC_FLEET_STALE_MS, 300 ms here), and SYNCED once it runs again.
    fleet[2].signal("STOP");
    let behind = client.put("greeting", r#"{"message": "fourth"}"#);
    let state_of_paused = |state: &'static str| {
        move |f: &serde_json::Value| {
            f["revision"] == behind
                && f["members"].as_array().is_some_and(|m| {
                    m.iter().filter(|m| m["state"] == "SYNCED").count() == 2
                        && m.iter().any(|m| m["state"] == state)
                })
        }
    };
    fleet[0].until("/_internal/eac/fleet", state_of_paused("STALE"));
    fleet[2].signal("CONT");
    fleet[0].until("/_internal/eac/fleet", members_are("SYNCED"));

    // One stops: it leaves the fleet view at once.
    let mut fleet = fleet;
    fleet.pop().unwrap().terminate();
    fleet[0].until("/_internal/eac/status", |s| {
        s["sources"][0]["details"]["fleet"]
            .as_object()
            .is_some_and(|f| f.len() == 2)
    });
    for server in fleet {
        server.terminate();
    }
}

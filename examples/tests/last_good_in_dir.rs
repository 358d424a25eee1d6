//! `LastGood::in_dir` is the layout `live_server` keeps in its state dir: a cache a
//! library user stores through it is the one `live_server --remote` starts from.

mod support;

use eac_accessor::source::{Format, LastGood};
use eac_tests::ConfigDir;
use support::{Auth, Launch};

#[test]
fn live_server_starts_from_the_cache_that_last_good_in_dir_names() {
    // A remote that is down: live_server must start from the cache or refuse.
    let addr = support::gone_remote();

    let state = tempfile::tempdir().unwrap();
    // Stored under the credentials of before a rotation: they do not name the file.
    let stored_with = format!("http://ops:old-pass@{addr}/app.toml?env=prod");
    let checked = eac_accessor::StateDir::open(state.path().join("state")).unwrap();
    LastGood::in_dir(&checked, &stored_with)
        .unwrap()
        .store(Format::Toml, "[greeting]\nmessage = \"from the cache\"\n")
        .unwrap();

    let config = ConfigDir::with_app();
    let server = Launch::new(config.path(), checked.path())
        .arg("--remote")
        .arg(&format!("http://ops:new-pass@{addr}/app.toml?env=prod"))
        .start();
    assert_eq!(server.get("/", Auth::None)["message"], "from the cache");
    let status = server.get("/_internal/eac/status", Auth::Admin);
    assert_eq!(status["sources"][0]["serving_cache"], true, "{status}");
    server.terminate();

    // Another query is another document: no cache, so no start.
    let (code, stderr) = Launch::new(config.path(), checked.path())
        .arg("--remote")
        .arg(&format!("http://{addr}/app.toml?env=staging"))
        .run_to_end();
    assert_eq!(code, Some(1), "{stderr}");
}

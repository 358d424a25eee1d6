//! A folder given as a relative path (`cfg`, `./cfg`, `.`, with `..` segments) or
//! through a symlink is watched like an absolute one. Its own test binary: it changes
//! the working directory, which is global to the process.

use std::path::Path;
use std::time::Duration;

use eac_accessor::EaCAccessor;
use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
use eac_accessor::source::Dir;
use eac_tests::{APP_TOML, Greeting, app_with};

/// Watches `given` (as typed, relative to the working directory), edits `file` and
/// waits for the edit to be served.
async fn edit_goes_live(given: &Path, file: &Path, text: &str) {
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        // The fixture holds the other sections too; this test reads only this one.
        .allow_unknown_keys(true)
        .source(Dir::new(given))
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", given.display()));
    let mut config = ReloadConfig::default();
    config.debounce = Duration::from_millis(20);
    config.cooldown = Duration::ZERO;
    let reloads = ReloadCoordinator::new(accessor.clone(), config);
    let _watcher = reloads.watch_dir(given).unwrap();
    let mut greeting = accessor.subscribe::<Greeting>();
    std::fs::write(
        file,
        app_with("message = \"hello\"", &format!("message = \"{text}\"")),
    )
    .unwrap();
    tokio::time::timeout(Duration::from_secs(5), greeting.changed())
        .await
        .unwrap_or_else(|_| panic!("an edit under `{}` never went live", given.display()))
        .unwrap();
    assert_eq!(accessor.load().section::<Greeting>().message, text);
    reloads.shutdown().await;
}

#[tokio::test]
async fn relative_dotted_and_symlinked_folders_reload() {
    let root = tempfile::tempdir().unwrap();
    let cfg = root.path().join("cfg");
    std::fs::create_dir(&cfg).unwrap();
    std::fs::create_dir(root.path().join("other")).unwrap();
    std::fs::write(cfg.join("app.toml"), APP_TOML).unwrap();
    std::os::unix::fs::symlink(&cfg, root.path().join("linked")).unwrap();
    let app = cfg.join("app.toml");

    std::env::set_current_dir(root.path()).unwrap();
    for (i, given) in ["cfg", "./cfg", "cfg/", "other/../cfg", "linked"]
        .into_iter()
        .enumerate()
    {
        edit_goes_live(Path::new(given), &app, &format!("edit {i}")).await;
    }
    std::env::set_current_dir(&cfg).unwrap();
    edit_goes_live(Path::new("."), &app, "from inside").await;
    std::env::set_current_dir(root.path().join("other")).unwrap();
    edit_goes_live(Path::new("../cfg"), &app, "from a sibling").await;
    std::env::set_current_dir("/").unwrap();
}

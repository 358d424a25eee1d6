//! A `FileWatcher` stops when dropped (RAII, as notify's watchers do): its task ends,
//! its file-system watch goes with it, and a later edit publishes nothing.

use std::time::Duration;

use eac_accessor::EaCAccessor;
use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
use eac_accessor::source::Dir;
use eac_tests::{APP_TOML, Greeting, app_with};

const DEBOUNCE: Duration = Duration::from_millis(100);

fn message_toml(text: &str) -> String {
    app_with("message = \"hello\"", &format!("message = \"{text}\""))
}

#[tokio::test]
async fn a_dropped_watcher_stops_and_a_later_edit_publishes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("config");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("app.toml");
    std::fs::write(&file, APP_TOML).unwrap();
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        // The fixture's other sections are not this test's concern.
        .allow_unknown_keys(true)
        .source(Dir::new(&dir))
        .build()
        .unwrap();
    let mut config = ReloadConfig::default();
    config.debounce = DEBOUNCE;
    config.cooldown = Duration::ZERO;
    let reloads = ReloadCoordinator::new(accessor.clone(), config);
    let mut greeting = accessor.subscribe::<Greeting>();

    // While kept, the watcher reloads an edit.
    let watcher = reloads.watch_dir(&dir).unwrap();
    let mut status = watcher.status();
    std::fs::write(&file, message_toml("watched")).unwrap();
    tokio::time::timeout(Duration::from_secs(10), greeting.changed())
        .await
        .expect("a kept watcher publishes an edit within 10 s")
        .unwrap();
    assert_eq!(accessor.load().version(), 2);

    drop(watcher);
    std::fs::write(&file, message_toml("after the drop")).unwrap();
    // The one bounded wait for something that must not come: a running watcher
    // publishes an edit one debounce after its last event; three debounces pass here
    // with no publish. (Without the drop stopping it, the edit is published in this
    // window, as it was above.)
    let published = tokio::time::timeout(3 * DEBOUNCE, greeting.changed()).await;
    assert!(published.is_err(), "an edit after the drop was published");
    assert_eq!(accessor.load().version(), 2);

    // The watch task has ended: the status it sent from is gone (and with the task, the
    // notify watcher it owned, so its inotify thread ends too).
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while status.changed().await.is_ok() {}
    })
    .await;
    assert!(ended.is_ok(), "the watch task still runs after the drop");

    // A refresh still reads the folder: dropping the watcher stopped only the watching.
    let outcome = reloads
        .refresh(eac_accessor::Origin::Refresh, false)
        .await
        .unwrap();
    assert!(outcome.is_published());
    assert_eq!(
        accessor.load().section::<Greeting>().message,
        "after the drop"
    );
    reloads.shutdown().await;
}

//! The durable history under faults: a full disk loses no record, and one process owns
//! a state dir at a time.

use std::path::Path;

use eac_accessor::{EaCAccessor, Event, Origin, source::Dir};
use eac_tests::{ConfigDir, Greeting, SmallDisk, app_with};

fn accessor(dir: &ConfigDir, state: &Path) -> EaCAccessor {
    EaCAccessor::builder()
        .section::<Greeting>()
        // The fixture holds the other sections too; this test reads only this one.
        .allow_unknown_keys(true)
        .source(Dir::new(dir.path()))
        .durable_history(state)
        .history_limit(50)
        .build()
        .unwrap()
}

fn edit(dir: &ConfigDir, accessor: &EaCAccessor, text: &str) -> u64 {
    dir.write(
        "app.toml",
        &app_with("message = \"hello\"", &format!("message = \"{text}\"")),
    );
    accessor.reload(Origin::Refresh).unwrap().version()
}

#[test]
fn a_full_disk_is_reported_and_the_store_catches_up_with_no_gap() {
    let disk = SmallDisk::new("256k");
    let state = disk.path().join("state");
    let dir = ConfigDir::with_app();
    let config = accessor(&dir, &state);
    let mut events = config.events();
    assert_eq!(edit(&dir, &config, "two"), 2);

    let filler = disk.fill();
    for i in 3..=8 {
        // Served all the same. Each record is larger than a page, so that it cannot
        // slip into the room left in the file's last one.
        let text = format!("v{i} {}", "x".repeat(6000));
        assert_eq!(edit(&dir, &config, &text), i);
    }
    let store = config.status().history_store.expect("a durable store");
    let error = store.error.expect("the failure is reported");
    assert!(error.contains(&state.display().to_string()), "{error}");
    assert_eq!(store.unsaved, [3, 4, 5, 6, 7, 8]);
    assert!(store.failures >= 1);
    let mut failed = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::HistoryStoreFailed { version, .. } = event {
            failed.push(version);
        }
    }
    assert_eq!(failed, [3, 4, 5, 6, 7, 8]);
    // The in-memory history keeps every version.
    let kept: Vec<u64> = config.history().iter().map(|e| e.version).collect();
    assert_eq!(kept, (1..=8).collect::<Vec<_>>());

    // Space comes back: the store catches up, and a restart finds no gap.
    std::fs::remove_file(filler).unwrap();
    config.sync_history().unwrap();
    let store = config.status().history_store.unwrap();
    assert!(
        store.error.is_none() && store.unsaved.is_empty(),
        "{store:?}"
    );
    drop(config);
    let restarted = accessor(&dir, &state);
    let kept: Vec<u64> = restarted.history().iter().map(|e| e.version).collect();
    assert_eq!(kept, (1..=8).collect::<Vec<_>>());
    assert_eq!(restarted.load().version(), 8);
}

#[test]
fn a_second_accessor_on_a_state_dir_in_use_is_refused_until_the_first_is_gone() {
    let state = eac_tests::private_dir();
    let dir = ConfigDir::with_app();
    let first = accessor(&dir, state.path());
    let errors = EaCAccessor::builder()
        .section::<Greeting>()
        // The fixture holds the other sections too; this test reads only this one.
        .allow_unknown_keys(true)
        .source(Dir::new(dir.path()))
        .durable_history(state.path())
        .build()
        .unwrap_err();
    let message = errors.to_string();
    assert!(
        message.contains(&state.path().display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&format!("process {}", std::process::id())),
        "{message}"
    );
    // Its own kind, and not said to be the configuration's fault.
    assert!(errors.has(eac_accessor::ErrorKind::InUse), "{errors:#?}");
    assert!(message.starts_with("the state dir `"), "{message}");
    drop(first);
    accessor(&dir, state.path());
}

#[test]
fn a_state_dir_that_served_another_folder_says_so() {
    let state = eac_tests::private_dir();
    let dir = ConfigDir::with_app();
    let build = |label: &str| {
        EaCAccessor::builder()
            .section::<Greeting>()
            // The fixture holds the other sections too; this test reads only this one.
            .allow_unknown_keys(true)
            .source(Dir::new(dir.path()))
            .durable_history(state.path())
            .history_label(label)
            .build()
            .unwrap()
    };
    let first = build("/srv/a/config");
    assert!(
        first
            .status()
            .history_store
            .unwrap()
            .served_before
            .is_none()
    );
    drop(first);
    let moved = build("/srv/b/config");
    assert_eq!(
        moved
            .status()
            .history_store
            .unwrap()
            .served_before
            .as_deref(),
        Some("/srv/a/config")
    );
}

//! File watching on real files: each way editors and Kubernetes write a config folder
//! makes exactly the expected number of publishes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use eac_accessor::reload::{FileWatcher, ReloadConfig, ReloadCoordinator};
use eac_accessor::source::Dir;
use eac_accessor::{EaCAccessor, ErrorKind};
use eac_tests::{APP_TOML, Greeting, app_with};

/// A config folder `<tmp>/config` watched by a coordinator; markers go in the folder.
struct Watched {
    root: tempfile::TempDir,
    reloads: ReloadCoordinator,
    watcher: FileWatcher,
    markers: AtomicU32,
}

impl Watched {
    async fn start() -> Watched {
        Self::start_with(|_| {}).await
    }

    /// A folder holding the fixture's `app.toml`, watched with `tune` applied to the timings.
    async fn start_with(tune: impl FnOnce(&mut ReloadConfig)) -> Watched {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("config");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("app.toml"), APP_TOML).unwrap();
        Self::start_in(root, dir, tune).await
    }

    async fn start_in(
        root: tempfile::TempDir,
        dir: PathBuf,
        tune: impl FnOnce(&mut ReloadConfig),
    ) -> Watched {
        let accessor = EaCAccessor::builder()
            .section::<Greeting>()
            // The fixture's other sections are not this test's concern.
            .allow_unknown_keys(true)
            .source(Dir::new(&dir))
            .build()
            .unwrap();
        let mut config = ReloadConfig::default();
        config.debounce = Duration::from_millis(50);
        config.cooldown = Duration::ZERO;
        config.backoff = Duration::ZERO;
        tune(&mut config);
        let reloads = ReloadCoordinator::new(accessor, config);
        let watcher = reloads.watch_dir(&dir).unwrap();
        Watched {
            root,
            reloads,
            watcher,
            markers: AtomicU32::new(0),
        }
    }

    fn dir(&self) -> PathBuf {
        self.root.path().join("config")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    fn version(&self) -> u64 {
        self.reloads.accessor().load().version()
    }

    fn message(&self) -> String {
        self.reloads
            .accessor()
            .load()
            .section::<Greeting>()
            .message
            .clone()
    }

    /// Waits until every event caused so far has been seen and handled: writes a marker
    /// in the folder (not a config file; events arrive in order), then waits for the
    /// watcher to be idle. With the folder gone, waits for its removal to be seen: the
    /// watcher sees only events about the folder and what is in it.
    async fn settle(&self) {
        let n = self.markers.fetch_add(1, Ordering::Relaxed);
        let marker = self.dir().join(format!("settle-{n}.marker"));
        let last = if self.dir().is_dir() {
            std::fs::write(&marker, "").unwrap();
            marker
        } else {
            self.dir()
        };
        let mut status = self.watcher.status();
        let wait = status.wait_for(|s| s.last_event.as_deref() == Some(last.as_path()) && !s.busy);
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| {
                let status = self.watcher.status().borrow().clone();
                panic!("the watcher did not settle within 10 s: {status:?}")
            })
            .expect("the watcher is running");
    }

    /// Writes `name` in the folder.
    fn write(&self, name: &str, contents: impl AsRef<[u8]>) {
        std::fs::write(self.path(name), contents).unwrap();
    }

    /// Renames `from` to `to` in the folder.
    fn rename(&self, from: &str, to: &str) {
        std::fs::rename(self.path(from), self.path(to)).unwrap();
    }

    /// Removes the file `name` from the folder.
    fn remove(&self, name: &str) {
        std::fs::remove_file(self.path(name)).unwrap();
    }

    /// Writes `app.toml`, then waits until the watcher has handled it.
    async fn edit(&self, contents: impl AsRef<[u8]>) {
        self.write("app.toml", contents);
        self.settle().await;
    }

    /// Waits until the watcher has handled every event so far, then asserts that the
    /// accessor serves `message` at `version`.
    async fn settled_at(&self, version: u64, message: &str) {
        self.settle().await;
        assert_eq!(
            (self.version(), self.message().as_str()),
            (version, message)
        );
    }

    /// Edits the greeting's message to `text`, waits until the watcher has handled it,
    /// and asserts that it is served at `version`.
    async fn edit_message(&self, text: &str, version: u64) {
        self.write("app.toml", message_toml(text));
        self.settled_at(version, text).await;
    }

    async fn stop(self) {
        self.reloads.shutdown().await;
    }
}

fn message_toml(text: &str) -> String {
    app_with("message = \"hello\"", &format!("message = \"{text}\""))
}

#[tokio::test]
async fn an_in_place_write_publishes_once() {
    let w = Watched::start().await;
    w.edit_message("in place", 2).await;
    w.stop().await;
}

#[tokio::test]
async fn identical_content_publishes_nothing() {
    let w = Watched::start().await;
    w.edit(APP_TOML).await;
    assert_eq!(w.version(), 1);
    assert!(
        w.watcher.status().borrow().reloads >= 1,
        "the write was seen"
    );
    w.stop().await;
}

#[tokio::test]
async fn write_temp_then_rename_publishes_once() {
    let w = Watched::start().await;
    w.write("app.toml.tmp", message_toml("renamed"));
    w.rename("app.toml.tmp", "app.toml");
    w.settled_at(2, "renamed").await;
    w.stop().await;
}

#[tokio::test]
async fn vim_style_saves_publish_once_each() {
    let w = Watched::start().await;
    for (i, text) in ["vim one", "vim two", "vim three"].into_iter().enumerate() {
        // vim: write a probe file, rename the original to a backup, write the new file,
        // delete the backup; a swap file changes throughout.
        w.write("4913", "");
        w.remove("4913");
        w.write(".app.toml.swp", "swap");
        w.rename("app.toml", "app.toml~");
        w.write("app.toml", message_toml(text));
        w.remove("app.toml~");
        w.remove(".app.toml.swp");
        w.settled_at(i as u64 + 2, text).await;
    }
    w.stop().await;
}

#[tokio::test]
async fn jetbrains_safe_write_publishes_once_and_its_temp_files_are_ignored() {
    let w = Watched::start().await;
    w.write("app.toml___jb_tmp___", message_toml("jetbrains"));
    w.settle().await;
    assert_eq!(w.version(), 1, "a ___jb_tmp___ file alone changes nothing");
    w.rename("app.toml", "app.toml___jb_old___");
    w.rename("app.toml___jb_tmp___", "app.toml");
    w.remove("app.toml___jb_old___");
    w.settled_at(2, "jetbrains").await;
    w.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_configmap_symlink_swap_publishes_once() {
    use std::os::unix::fs::symlink;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("config");
    std::fs::create_dir(&dir).unwrap();
    // The layout the kubelet makes: app.toml -> ..data/app.toml, ..data -> ..<timestamp>.
    let first = dir.join("..2026_11_22_00_00_00.000000001");
    std::fs::create_dir(&first).unwrap();
    std::fs::write(first.join("app.toml"), APP_TOML).unwrap();
    symlink(first.file_name().unwrap(), dir.join("..data")).unwrap();
    symlink(Path::new("..data").join("app.toml"), dir.join("app.toml")).unwrap();
    let w = Watched::start_in(root, dir.clone(), |_| {}).await;
    assert_eq!(w.message(), "hello");

    let second = dir.join("..2026_11_22_00_05_00.000000002");
    std::fs::create_dir(&second).unwrap();
    std::fs::write(second.join("app.toml"), message_toml("configmap")).unwrap();
    symlink(second.file_name().unwrap(), dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();
    w.settled_at(2, "configmap").await;
    w.stop().await;
}

#[tokio::test]
async fn delete_then_recreate_keeps_the_last_good_version_meanwhile() {
    let w = Watched::start().await;
    w.remove("app.toml");
    w.settle().await;
    assert_eq!(
        (w.version(), w.message().as_str()),
        (1, "hello"),
        "still serving the last good"
    );
    let status = w.reloads.accessor().status();
    assert_eq!(
        status.last_rejection.unwrap().errors[0].kind(),
        ErrorKind::SourceMissing,
        "the emptied folder says it holds no configuration file"
    );

    w.edit_message("recreated", 2).await;
    w.stop().await;
}

#[tokio::test]
async fn an_empty_file_mid_save_is_never_published() {
    let w = Watched::start().await;
    w.write("app.toml", "");
    w.settled_at(1, "hello").await;
    w.edit_message("complete", 2).await;
    w.stop().await;
}

#[tokio::test]
async fn the_folder_removed_and_recreated_is_followed() {
    let w = Watched::start().await;
    std::fs::remove_dir_all(w.dir()).unwrap();
    w.settle().await;
    assert_eq!(w.version(), 1);
    let status = w.reloads.accessor().status();
    assert_eq!(
        status.last_rejection.unwrap().errors[0].kind(),
        ErrorKind::SourceMissing
    );

    std::fs::create_dir(w.dir()).unwrap();
    w.write("app.toml", message_toml("back"));
    // The folder's return is seen through its parent's watch and the folder read again;
    // what was written in it before it was watched again is not an event to wait for.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while w.version() != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the recreated folder was not read again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(w.message(), "back");
    // And it is still watched afterwards.
    w.edit_message("again", 3).await;
    w.stop().await;
}

#[tokio::test]
async fn shutdown_stops_the_watcher() {
    let w = Watched::start().await;
    let mut status = w.watcher.status();
    w.reloads.shutdown().await;
    w.write("app.toml", message_toml("after stop"));
    assert!(
        status.changed().await.is_err(),
        "the watcher task has ended"
    );
    assert_eq!(w.version(), 1);
}

#[tokio::test]
async fn polling_instead_of_events_also_publishes_once() {
    let w = Watched::start_with(|config| {
        config.debounce = Duration::from_millis(10);
        config.poll_interval = Some(Duration::from_millis(25));
    })
    .await;
    assert_eq!(w.watcher.status().borrow().mode, "poll");

    // The folder's parent is not polled, so wait on the section instead of a marker.
    let mut greeting = w.reloads.accessor().subscribe::<Greeting>();
    w.write("app.toml", message_toml("polled"));
    tokio::time::timeout(Duration::from_secs(10), greeting.changed())
        .await
        .expect("seen by polling within 10 s")
        .unwrap();
    assert_eq!(greeting.latest().1.message, "polled");
    assert_eq!(w.version(), 2);
    w.stop().await;
}

#[tokio::test]
async fn a_file_rewritten_without_pause_still_goes_live_while_the_writes_go_on() {
    let w = Watched::start_with(|c| {
        c.debounce = Duration::from_millis(100);
        c.max_wait = Duration::from_millis(1000);
    })
    .await;
    let mut greeting = w.reloads.accessor().subscribe::<Greeting>();
    // A renderer rewrites the file every 50 ms, each time with new content, for far
    // longer than the bound: the debounce alone would never see the events go quiet.
    let writer = {
        let path = w.path("app.toml");
        tokio::spawn(async move {
            for i in 0..200 {
                std::fs::write(&path, message_toml(&format!("render {i}"))).unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // What shows the max wait at work is that the change goes live while the writes
    // go on (ten seconds of them, at the least); how soon after the bound is a matter
    // of the machine's load, measured by `benches/watch.rs`, not asserted here.
    tokio::time::timeout(Duration::from_secs(10), greeting.changed())
        .await
        .expect("live while the writes go on")
        .unwrap();
    assert!(!writer.is_finished(), "the writes were still going on");
    assert!(w.message().starts_with("render "), "{}", w.message());
    writer.abort();
    let _ = writer.await;
    w.stop().await;
}

#[tokio::test]
async fn in_manual_mode_an_edit_is_pending_until_a_refresh() {
    use eac_accessor::reload::ReloadMode;
    use eac_accessor::{Event, Origin};

    let w = Watched::start_with(|c| c.mode = ReloadMode::Manual).await;
    let accessor = w.reloads.accessor().clone();
    let mut events = accessor.events();
    w.edit(message_toml("pending edit")).await;
    // Detected and validated, not served.
    assert_eq!((w.version(), w.message().as_str()), (1, "hello"));
    let status = accessor.status();
    let pending = status.pending.expect("the edit is pending");
    assert!(status.differs_from_sources);
    let changed: Vec<_> = pending
        .diff
        .changes
        .iter()
        .map(|c| c.key.as_str())
        .collect();
    assert_eq!(changed, ["greeting.message"]);
    let event = events.try_recv().expect("a pending event");
    assert!(
        matches!(event, Event::Pending { version: 1, .. }),
        "{event:?}"
    );

    // A broken edit is rejected, and nothing is pending any more.
    w.edit("[greeting]\nmessage = 5\n").await;
    let status = accessor.status();
    assert!(status.pending.is_none());
    assert_eq!(
        status.last_rejection.unwrap().errors[0].key(),
        Some("greeting.message")
    );
    assert_eq!(w.version(), 1);

    // Fixed again, then published by an operator's refresh.
    w.edit(message_toml("pending edit")).await;
    assert!(accessor.status().pending.is_some());
    assert_eq!(w.version(), 1);
    let outcome = w.reloads.refresh(Origin::Refresh, false).await.unwrap();
    assert_eq!(outcome.version(), 2);
    assert_eq!(w.message(), "pending edit");
    let status = accessor.status();
    assert!(status.pending.is_none());
    assert!(!status.differs_from_sources);
    w.stop().await;
}

/// A `FileWatcher` stops when dropped (RAII, as notify's watchers do): its task ends,
/// its file-system watch goes with it, and a later edit publishes nothing.
#[tokio::test]
async fn a_dropped_watcher_stops_and_a_later_edit_publishes_nothing() {
    const DEBOUNCE: Duration = Duration::from_millis(100);
    let Watched {
        root,
        reloads,
        watcher,
        ..
    } = Watched::start_with(|c| c.debounce = DEBOUNCE).await;
    let accessor = reloads.accessor().clone();
    let file = root.path().join("config").join("app.toml");
    let mut greeting = accessor.subscribe::<Greeting>();

    // While kept, the watcher reloads an edit.
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

#[tokio::test]
async fn files_written_beside_the_folder_and_reads_in_it_wake_nothing() {
    let w = Watched::start().await;
    w.settle().await;
    let before = w.watcher.status().borrow().events;
    // Other instances' logs and state beside the folder, and their reads of it.
    for i in 0..20 {
        std::fs::write(w.root.path().join(format!("other-{i}.log")), "x").unwrap();
        std::fs::read(w.path("app.toml")).unwrap();
    }
    w.settle().await;
    // The marker's own events only: its create, writes and close.
    let seen = w.watcher.status().borrow().events - before;
    assert!(
        seen < 10,
        "{seen} events for 20 files written beside the folder and 20 reads in it"
    );
    assert_eq!(w.version(), 1);
    w.stop().await;
}

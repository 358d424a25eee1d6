//! Watching a configuration folder, the way editors and Kubernetes really write it.
//!
//! The folder is watched (and its parent, to see it removed and created again), never
//! single file inodes, so these all come down to one reload per real change after the
//! debounce: writes in place; write-temp-then-rename; vim's rename-original, write-new,
//! delete-backup; JetBrains' `___jb_tmp___` files (ignored); a ConfigMap mount whose
//! `..data` symlink is swapped atomically; delete then re-create; the folder removed and
//! re-created. A file seen empty or half-written is rejected by the schema like any bad
//! candidate, so it never publishes; identical content publishes nothing. When the
//! watch itself fails (inotify limits) or asks for a rescan, the watcher re-reads
//! everything and, if it cannot watch, polls instead — with a warning, never a crash.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::ReloadCoordinator;
use crate::error::{Error, ErrorKind};
use crate::snapshot::Origin;

/// What a [`FileWatcher`] has seen and done, for status pages and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchStatus {
    /// File-system events received about the folder or a file in it, other than reads
    /// (those are dropped as they arrive), relevant or not.
    pub events: u64,
    /// The path of the last change event (reads are not counted).
    pub last_event: Option<PathBuf>,
    /// Whether a change is waiting for the debounce to pass, or being reloaded.
    pub busy: bool,
    /// Reloads this watcher triggered.
    pub reloads: u64,
    /// `"notify"`, or `"poll"` after falling back to polling.
    pub mode: &'static str,
}

/// A running watch of one folder, made by [`ReloadCoordinator::watch_dir`]; it stops
/// when dropped, as notify's watchers do — keep it for as long as edits should go live.
///
/// Dropping it, [`stop`](FileWatcher::stop) and [`ReloadCoordinator::shutdown`] each end
/// the watch: its task ends and the file-system watch it held is released (a receiver
/// from [`status`](FileWatcher::status) then sees its sender gone); a reload it had
/// already started is not waited for. Only `shutdown` waits for the task to end.
///
/// ```no_run
/// # use eac_accessor::reload::ReloadCoordinator;
/// # async fn run(reloads: ReloadCoordinator) -> Result<(), eac_accessor::Error> {
/// let watcher = reloads.watch_dir("/etc/app")?; // `let _ = …` would stop it at once
/// // … serve; edits under /etc/app go live …
/// drop(watcher); // no more reloads from file changes
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a FileWatcher stops watching when dropped: keep it (`let _watcher = …`)"]
pub struct FileWatcher {
    status: watch::Receiver<WatchStatus>,
    stop: watch::Sender<bool>,
}

impl FileWatcher {
    /// What the watcher has seen and done; a receiver that wakes on each change.
    pub fn status(&self) -> watch::Receiver<WatchStatus> {
        self.status.clone()
    }

    /// Asks the watcher to stop, keeping the handle (and its [`status`](FileWatcher::status)).
    /// Dropping the watcher does the same; [`ReloadCoordinator::shutdown`] also waits for it.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for FileWatcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops one watcher task and waits for it.
pub(crate) struct Stopper {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Stopper {
    /// A stopper for `task`, which ends once `stop` says `true`.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn new(stop: watch::Sender<bool>, task: JoinHandle<()>) -> Stopper {
        Stopper { stop, task }
    }

    /// Whether the task has ended (its watcher was dropped or stopped).
    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

type RawEvent = notify::Result<notify::Event>;

/// Either watcher kind, kept alive for as long as the task runs.
enum Backend {
    Notify(notify::RecommendedWatcher),
    Poll(notify::PollWatcher),
}

impl Backend {
    fn watch(&mut self, path: &Path) -> notify::Result<()> {
        match self {
            Backend::Notify(w) => w.watch(path, RecursiveMode::NonRecursive),
            Backend::Poll(w) => w.watch(path, RecursiveMode::NonRecursive),
        }
    }

    fn unwatch(&mut self, path: &Path) {
        let _ = match self {
            Backend::Notify(w) => w.unwatch(path),
            Backend::Poll(w) => w.unwatch(path),
        };
    }

    fn mode(&self) -> &'static str {
        match self {
            Backend::Notify(_) => "notify",
            Backend::Poll(_) => "poll",
        }
    }
}

pub(crate) fn start(
    coordinator: ReloadCoordinator,
    dir: &Path,
) -> Result<(FileWatcher, Stopper), Error> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        Error::new(
            ErrorKind::Io,
            "watching files needs a Tokio runtime: call watch_dir inside one",
        )
    })?;
    // The OS reports absolute paths: compare them with the absolute folder. `..` and
    // symlinks are kept as given, so the kernel resolves them the same way for the
    // watch and for the reads.
    let dir = std::path::absolute(dir).map_err(|e| {
        Error::new(ErrorKind::Io, format!("cannot resolve the folder: {e}"))
            .with_source(crate::SourceName::Dir(dir.to_path_buf()))
    })?;
    let (events_tx, events_rx) = mpsc::unbounded_channel::<RawEvent>();
    let config = coordinator.config();
    let backend = match config.poll_interval {
        Some(interval) => open_poll(&dir, events_tx.clone(), interval)?,
        None => open_backend(&dir, events_tx.clone(), poll_interval(config.debounce))?,
    };
    let (status_tx, status_rx) = watch::channel(WatchStatus {
        mode: backend.mode(),
        ..WatchStatus::default()
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = runtime.spawn(
        Task {
            coordinator,
            dir,
            backend,
            events_tx,
            status: status_tx,
            dir_watched: true,
        }
        .run(events_rx, stop_rx),
    );
    let watcher = FileWatcher {
        status: status_rx,
        stop: stop_tx.clone(),
    };
    Ok((
        watcher,
        Stopper {
            stop: stop_tx,
            task,
        },
    ))
}

fn open_backend(
    dir: &Path,
    tx: mpsc::UnboundedSender<RawEvent>,
    interval: Duration,
) -> Result<Backend, Error> {
    let handler = {
        let tx = tx.clone();
        let dir = dir.to_path_buf();
        move |event: RawEvent| {
            // Dropped on the watcher's own thread: neither the channel nor the task wakes
            // for an event that cannot change the configuration.
            if event.as_ref().is_ok_and(|e| !may_matter(e, &dir)) {
                return;
            }
            let _ = tx.send(event);
        }
    };
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    let notify = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(dir, RecursiveMode::NonRecursive)?;
        if let Some(parent) = parent {
            w.watch(parent, RecursiveMode::NonRecursive)?;
        }
        Ok(w)
    });
    match notify {
        Ok(w) => Ok(Backend::Notify(w)),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the folder for events; polling it instead");
            open_poll(dir, tx, interval)
        }
    }
}

/// Whether `event` may change the configuration in `dir`: not a read of a file (reading
/// the files, as every reload does, raises open and close events; the close of a file
/// written is kept), and about `dir` itself or a file in it — of the parent's events
/// (watched to follow the folder being swapped), only those naming `dir`. Several
/// instances sharing a folder, or a busy parent such as `/tmp`, would otherwise wake each
/// watcher for every open of every file there.
fn may_matter(event: &notify::Event, dir: &Path) -> bool {
    if is_read(event) {
        return false;
    }
    event.need_rescan()
        || event.paths.is_empty()
        || event
            .paths
            .iter()
            .any(|p| p == dir || p.parent() == Some(dir))
}

/// Whether `event` is a read of a file: an access other than the close of a file written.
fn is_read(event: &notify::Event) -> bool {
    matches!(event.kind, EventKind::Access(kind) if !matches!(kind, AccessKind::Close(AccessMode::Write)))
}

/// The polling interval used when events cannot be had.
fn poll_interval(debounce: Duration) -> Duration {
    debounce.max(Duration::from_millis(250))
}

fn watch_error(dir: &Path, e: &notify::Error) -> Error {
    Error::new(ErrorKind::Io, format!("cannot watch the folder: {e}"))
        .with_source(crate::SourceName::Dir(dir.to_path_buf()))
}

struct Task {
    coordinator: ReloadCoordinator,
    dir: PathBuf,
    backend: Backend,
    events_tx: mpsc::UnboundedSender<RawEvent>,
    status: watch::Sender<WatchStatus>,
    dir_watched: bool,
}

impl Task {
    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<RawEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        // When a change is pending: the path that caused it, when to reload, and the
        // latest that may be (the first event plus the maximum wait).
        let mut pending: Option<(PathBuf, Instant, Instant)> = None;
        // `reload` also watches `stop`, and may be the one to see it change.
        while !*stop.borrow() {
            let deadline = pending.as_ref().map(|(_, at, _)| *at);
            tokio::select! {
                _ = stop.changed() => break,
                event = events.recv() => {
                    let Some(event) = event else { break };
                    if let Some(path) = self.handle(event) {
                        let config = self.coordinator.config();
                        let now = Instant::now();
                        let latest = pending.as_ref().map_or_else(
                            || super::throttle::later(now, config.max_wait),
                            |(_, _, latest)| *latest,
                        );
                        let at = super::throttle::later(now, config.debounce).min(latest);
                        pending = Some((path, at, latest));
                    }
                    self.status.send_modify(|s| s.busy = pending.is_some());
                }
                () = sleep_until(deadline) => {
                    let Some((path, _, _)) = pending.take() else { continue };
                    self.reload(path, &mut stop).await;
                    self.status.send_modify(|s| s.busy = pending.is_some());
                }
            }
        }
        tracing::debug!(dir = %self.dir.display(), "file watcher stopped");
    }

    /// Notes an event; returns the path to reload for when it can change the configuration.
    fn handle(&mut self, event: RawEvent) -> Option<PathBuf> {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "file watch error; re-reading the folder");
                self.rewatch_or_poll();
                return Some(self.dir.clone());
            }
        };
        self.status.send_modify(|s| s.events += 1);
        // Reading the files (as every reload does) raises open/read/close events: ignore
        // them, or each reload would trigger the next (the poll backend's come here).
        if is_read(&event) {
            return None;
        }
        self.status
            .send_modify(|s| s.last_event = event.paths.last().cloned());
        if event.need_rescan() {
            tracing::warn!(dir = %self.dir.display(), "the watch lost events; re-reading the folder");
            return Some(self.dir.clone());
        }
        let mut relevant = None;
        for path in &event.paths {
            if path == &self.dir {
                // The folder itself was removed, (re)created, renamed or swapped: follow
                // whatever now has its name.
                if matches!(event.kind, EventKind::Remove(_)) {
                    self.dir_watched = false;
                } else {
                    self.rewatch_or_poll();
                }
                relevant = Some(path.clone());
            } else if path.parent() == Some(self.dir.as_path()) && is_config_name(path) {
                relevant = Some(path.clone());
            }
        }
        relevant
    }

    fn rewatch_or_poll(&mut self) {
        // A poll watcher keeps polling its path, gone or back; re-adding it would only
        // rescan at once and report the same again.
        if matches!(self.backend, Backend::Poll(_)) {
            return;
        }
        if !self.dir.exists() {
            // Gone for now: the parent's watch tells us when it is back.
            self.dir_watched = false;
            return;
        }
        self.backend.unwatch(&self.dir);
        match self.backend.watch(&self.dir) {
            Ok(()) => self.dir_watched = true,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot watch the folder again; polling it instead");
                let interval = self
                    .coordinator
                    .config()
                    .poll_interval
                    .unwrap_or_else(|| poll_interval(self.coordinator.config().debounce));
                if let Ok(backend) = open_poll(&self.dir, self.events_tx.clone(), interval) {
                    self.backend = backend;
                    self.dir_watched = true;
                    self.status.send_modify(|s| s.mode = "poll");
                }
            }
        }
    }

    async fn reload(&mut self, path: PathBuf, stop: &mut watch::Receiver<bool>) {
        self.status.send_modify(|s| s.reloads += 1);
        let origin = Origin::FileChange { path };
        tokio::select! {
            _ = stop.changed() => {}
            result = self.coordinator.trigger(origin) => {
                // The pipeline already logged the rejection with every error.
                if let Err(errors) = result {
                    tracing::debug!(dir = %self.dir.display(), %errors, "file change not published");
                }
            }
        }
    }
}

fn open_poll(
    dir: &Path,
    tx: mpsc::UnboundedSender<RawEvent>,
    interval: Duration,
) -> Result<Backend, Error> {
    let config = notify::Config::default()
        .with_poll_interval(interval)
        .with_compare_contents(true);
    let mut poll = notify::PollWatcher::new(
        move |e| {
            let _ = tx.send(e);
        },
        config,
    )
    .map_err(|e| watch_error(dir, &e))?;
    poll.watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| watch_error(dir, &e))?;
    Ok(Backend::Poll(poll))
}

/// Whether a change to this name can change the configuration: a config file, or a
/// Kubernetes `..data`-style entry; not editor swap, backup or temp files.
fn is_config_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with("..") {
        return true;
    }
    !name.starts_with('.') && crate::source::Format::from_path(path).is_some()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_config_files_and_configmap_links_matter() {
        for name in [
            "app.toml",
            "b.yaml",
            "c.yml",
            "d.json",
            "..data",
            "..2026_11_22_01_02_03.123",
        ] {
            assert!(is_config_name(Path::new(name)), "{name}");
        }
        for name in [
            ".app.toml.swp",
            "app.toml~",
            "4913",
            "app.toml___jb_tmp___",
            "app.toml___jb_old___",
            "notes.txt",
            ".hidden.toml",
        ] {
            assert!(!is_config_name(Path::new(name)), "{name}");
        }
    }
}

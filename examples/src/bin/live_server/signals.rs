//! The signals `live_server` handles: SIGTERM and SIGINT stop it, SIGHUP reloads.
//!
//! They are registered first thing on the serving path, before anything slow at start
//! (connecting to etcd, the first remote fetch, the first build): from then on no
//! signal ends the process by its default action. Until the reload coordinator exists,
//! SIGTERM and SIGINT end it at once with 0 (nothing is built yet, nothing to stop); a
//! SIGHUP waits, as tokio keeps it, and reloads once the coordinator runs. From then on
//! SIGTERM and SIGINT stop it the graceful way, even before it serves.

use eac_accessor::Origin;
use eac_accessor::reload::{ReloadCoordinator, Triggered};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The three signals, registered.
pub(crate) struct Signals {
    term: Signal,
    interrupt: Signal,
    hangup: Signal,
}

/// The signals while the server starts; see the [module docs](self).
pub(crate) struct Starting {
    started: oneshot::Sender<()>,
    task: JoinHandle<Signals>,
}

impl Signals {
    /// Registers the handlers, replacing the default actions, and watches them while
    /// the server starts.
    pub(crate) fn register() -> std::io::Result<Starting> {
        let mut signals = Signals {
            term: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        };
        let (started, mut until_started) = oneshot::channel();
        let task = tokio::spawn(async move {
            // SIGHUP is not read here: tokio keeps one that comes for the serving loop.
            tokio::select! {
                _ = &mut until_started => signals,
                _ = signals.term.recv() => exit_while_starting("SIGTERM"),
                _ = signals.interrupt.recv() => exit_while_starting("SIGINT"),
            }
        });
        Ok(Starting { started, task })
    }
}

fn exit_while_starting(name: &str) -> ! {
    tracing::info!("{name} while starting: exiting");
    std::process::exit(0)
}

impl Starting {
    /// The coordinator runs: from now on SIGTERM and SIGINT send `stop`, SIGHUP reloads
    /// through `reloads` (at once, if one came while starting).
    pub(crate) async fn running(
        self,
        reloads: ReloadCoordinator,
        stop: watch::Sender<bool>,
    ) -> Result<(), String> {
        let _ = self.started.send(());
        let mut signals = self
            .task
            .await
            .map_err(|e| format!("the signal watcher ended: {e}"))?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = signals.term.recv() => break,
                    _ = signals.interrupt.recv() => break,
                    // On its own task: a stop is read while the reload runs (the
                    // coordinator joins or queues overlapping ones).
                    _ = signals.hangup.recv() => {
                        tokio::spawn(reload(reloads.clone()));
                    }
                }
            }
            tracing::info!("shutting down");
            let _ = stop.send(true);
        });
        Ok(())
    }
}

async fn reload(reloads: ReloadCoordinator) {
    tracing::info!("SIGHUP: reloading");
    let origin = Origin::Signal {
        name: "SIGHUP".into(),
    };
    // Like a forced refresh: what the remote servers hold now, not what the last poll
    // found.
    reloads.refetch().await;
    match reloads.trigger(origin).await {
        Ok(Triggered::Reloaded(outcome)) => tracing::info!(
            outcome = outcome.as_str(),
            version = outcome.version(),
            "SIGHUP reload done"
        ),
        Ok(Triggered::Pending(preview)) => tracing::info!(
            pending = preview.would_publish,
            "SIGHUP: re-read; publish with POST refresh"
        ),
        Ok(_) => {}
        // The rejection is warned once, by the publish that rejected it (with every
        // error); here only that the signal was handled.
        Err(errors) => tracing::info!(
            errors = errors.as_slice().len(),
            "SIGHUP reload done: rejected, the current version stays"
        ),
    }
}

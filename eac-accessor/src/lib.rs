//! Live-bound configuration for Rust services: typed sections behind one atomically
//! swapped, fully validated snapshot.
//!
//! ```
//! use eac_accessor::{EaCAccessor, EaCSection, Origin, source::{Dir, Env}};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize, JsonSchema)]
//! struct Limits {
//!     #[schemars(range(min = 1, max = 16_777_216))]
//!     max_body_bytes: u64,
//! }
//! impl EaCSection for Limits {
//!     const PATH: &'static str = "limits";
//! }
//!
//! # let dir = tempfile::tempdir().map_err(|e| eac_accessor::Error::new(eac_accessor::ErrorKind::Io, e.to_string()))?;
//! # std::fs::write(dir.path().join("app.toml"), "[limits]\nmax_body_bytes = 1024\n").unwrap();
//! let config = EaCAccessor::builder()
//!     .section::<Limits>()
//!     .source(Dir::new(dir.path()))      // every *.toml / *.json (and *.yaml, feature `yaml`), in name order
//!     .source(Env::prefixed("APP_"))     // APP_LIMITS__MAX_BODY_BYTES=2048 wins
//!     .build()?;                         // version 1, or every error at once
//!
//! let snapshot = config.load();          // one atomic load, no lock
//! assert_eq!(snapshot.section::<Limits>().max_body_bytes, 1024);
//!
//! // Later: a file changed. A bad candidate is rejected and version 1 stays.
//! let outcome = config.reload(Origin::Refresh)?;
//! assert!(!outcome.is_published()); // nothing changed on disk
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Contents
//!
//! - [`prelude`]: `use eac_accessor::prelude::*;` brings what a service needs.
//! - [`EaCAccessor`]: the handle; [`Builder`] registers sections, sources and hooks.
//! - [`Snapshot`]: one immutable version; read everything from one (its `# Consistency`);
//!   [`Snapshot::source_of`] says which source set a value, over which others.
//! - Faster reads: [`SectionCell`] (a shared handle to one section: one arc-swap load,
//!   no lookup), [`CachedReader`] and [`CachedSection`] (kept by one thread: a pointer
//!   comparison while nothing changed).
//! - [`EaCSection`]: a typed section with a path, a schema, secrets and a `validate` hook;
//!   [`Secret`] for secret fields of a section that derives `Debug`.
//! - [Only registered sections are configuration](crate::docs#only-registered-sections-are-configuration):
//!   unknown keys, the env overlay's mapping, [`Builder::allow_unknown_keys`].
//! - [`source`]: files, directories, environment, defaults, in-memory documents; with the
//!   `http` feature a remote document polled with ETags and a last-known-good cache.
//! - [`Error`] / [`Errors`]: what went wrong, for which key, in which source.
//! - [`history`], [`EaCAccessor::rollback_to`], [`EaCAccessor::preview`], [`diff`]: what
//!   each version was, going back, and seeing a change before it lands.
//! - [`resolve`]: values built from sections (rule sets, clients, pools), rebuilt once
//!   per change, checked before the swap, kept in the snapshot, drained after.
//! - `fleet` (feature `etcd`): each instance's record in a fleet's view of who serves
//!   what (its ACK or NACK of each revision, its state, how long a change took), and a
//!   safe writer (`Etcd::put_section`: validated, revision-guarded, recorded), beside
//!   the `source::Etcd` prefix it reads.
//! - [`canary`]: a new version serving a share of the requests first, judged on its own
//!   errors and latency against the current version's (`ReloadMode::Canary`); the judge
//!   a fleet's gray release shares.
//! - [`StateDir`]: the checked folder of a service's durable history and caches.
//! - [`reload`]: the reload coordinator (single flight, cooldown, backoff, timeout,
//!   health checks with auto-rollback) and file watching.
//! - [`settings`]: the process's own settings (timings, limits) from environment
//!   variables, every bad one reported at once.
//! - [`SectionWatch`], [`EaCAccessor::on_change`], [`EaCAccessor::events`]: being told.
//! - [`metrics`]: the metrics eac records, described to your recorder
//!   ([names and meanings](crate::docs::metrics)).
//! - [`testing`]: redacted, path-scrubbed renderings for snapshot tests of your config.
//! - [`docs`]: the pipeline and its guarantees in prose.

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod accessor;
mod backoff;
mod cache;
pub mod canary;
mod cell;
pub mod diff;
pub mod docs;
mod error;
#[cfg(feature = "etcd")]
pub mod fleet;
mod hash;
pub mod history;
mod json_time;
mod keys;
pub mod lens;
pub mod metrics;
pub mod prelude;
mod publish;
pub mod reload;
pub mod resolve;
mod schema;
mod schema_check;
mod secret;
mod section;
pub mod settings;
mod snapshot;
pub mod source;
mod state_dir;
mod status;
mod subscribe;
mod sync;
pub mod testing;
mod validate;

pub use accessor::{Builder, EaCAccessor};
pub use arc_swap::Guard;
pub use cache::{CachedReader, CachedSection};
pub use cell::{SectionCell, SectionGuard};
pub use diff::{Change, ChangeKind, Class, Diff};
pub use eac_derive::EaCSection;
pub use error::{Error, ErrorKind, Errors, SourceName};
pub use hash::ContentHash;
pub use history::{HistoryEntry, Rejection, StoreStatus};
pub use publish::{Candidate, Outcome, Preview};
pub use secret::Secret;
pub use section::{EaCSection, FieldErrors};
pub use snapshot::{KeySource, Origin, Overridden, Snapshot};
pub use state_dir::StateDir;
pub use status::{HeldBack, PendingChange, ReloadReport, Status};
pub use subscribe::{Closed, Event, SectionChange, SectionWatch, Subscription};

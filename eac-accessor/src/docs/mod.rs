//! Long-form documentation: how a reload works and what eac promises.
//!
//! # The pipeline
//!
//! Each reload reads every source, merges them in order (figment), removes every key
//! that no registered section owns (see below), hashes the merged document (key order
//! does not matter), and stops there with `Unchanged` when the hash equals the current
//! one. Otherwise each registered section is checked against its JSON
//! Schema (compiled once, at build), deserialized once, and passed to its `validate`;
//! each [resolver](crate::resolve) whose sections changed builds its value (the others
//! keep theirs); every readiness hook then sees the finished candidate. Only then is
//! the candidate stored, in one atomic swap, and subscribers of the sections that
//! changed are told. A resolver that cannot build rejects the candidate like a schema
//! error.
//!
//! ## One way through the code
//!
//! A reload reads one way: trigger → [`ReloadCoordinator`](crate::reload::ReloadCoordinator)
//! (single flight, cooldown, backoff, timeout, health checks) → the accessor's publisher
//! (`publish/`: `scope` merges and drops unknown keys, `prepare` checks and builds, the
//! publisher stores, records history, notifies) → the `ArcSwap`. Every refusal — a
//! rejected candidate, an invalid pending change, a failed health check — is recorded in
//! one place, so the status, the kept rejections, the event stream and
//! `eac_reload_total{outcome="rejected"}` always agree. The [`EaCAccessor`](crate::EaCAccessor)
//! handle reads; its `reload` and `rollback_to` are a library's direct path to the same
//! publisher, and nothing eac ships calls them behind the coordinator.
//!
//! # Guarantees
//!
//! 1. A published snapshot is fully valid; there is never a partial publish.
//! 2. Readers never block and never wait for a writer: a read is one `ArcSwap` load.
//! 3. A unit of work that reads one snapshot sees exactly one version.
//! 4. A rejected reload leaves the current snapshot untouched and says why, with every
//!    problem, its key, and the source that set it.
//! 5. An old snapshot is freed when its last reader drops it.
//! 6. Subscribers are told once per real change, in version order, never about a
//!    rejected or unchanged candidate.
//!
//! # Only registered sections are configuration
//!
//! One rule for every source. A top-level key that no registered section owns (a
//! misspelled `[htpp]`), or a key inside a section that none of its fields owns (a
//! misspelled `api_kee`), rejects the candidate with an [`ErrorKind::UnknownKey`](crate::ErrorKind::UnknownKey)
//! error naming the key, the source that set it and the nearest known name:
//!
//! ```text
//! `htpp` in file `app.toml`: unknown section: no registered section is at this key — did you mean `http`?
//! `upstream.api_kee` in file `app.toml`: unknown key: section `upstream` has no field of that name — did you mean `api_key`?
//! ```
//!
//! A map field (`HashMap<String, T>`, `#[serde(flatten)]` into a map) and a field whose
//! schema says nothing about its keys (`serde_json::Value`) own every key under them.
//! Which keys a section owns is read from its JSON Schema, so `#[serde(rename)]`,
//! `rename_all` and `flatten` are followed.
//!
//! [`Builder::allow_unknown_keys`](crate::Builder::allow_unknown_keys) allows unknown
//! keys everywhere, and [`EaCSection::ALLOW_UNKNOWN_KEYS`](crate::EaCSection::ALLOW_UNKNOWN_KEYS)
//! (`#[eac(allow_unknown_keys)]`) in one section. An allowed unknown key is ignored: it is
//! removed before the candidate is hashed, so it is never stored, hashed, diffed, kept in
//! the history, or shown in a preview, an event or a status. Rejected or allowed, the
//! value under an unknown key is never shown. A top-level `$schema` key (for editors) is
//! always ignored. A preview overlay may not use a dotted key (`{"upstream.api_key": ..}`):
//! it is rejected, not read as a new top-level section.
//!
//! The [`Env`](crate::source::Env) overlay of an accessor maps only the variables that
//! land on a key a registered section owns; the service's other variables with the same
//! prefix (`APP_ADMIN_TOKEN`) are ignored and never enter a document, a diff, the history
//! or an event. Each variable's value is read as the schema types its key (see `Env`
//! for lists); a value that is not UTF-8 is an error naming the variable.
//!
//! # Where a value came from
//!
//! An error about a value names the source that set it (a file, an environment
//! variable, a document). A missing key is in no source: its error names the sources
//! that set its section, or says that none does:
//!
//! ```text
//! `upstream.api_key`: missing (required by section `upstream`, set by file `app.toml`)
//! `upstream`: missing (no source sets section `upstream`, which requires `url` and `api_key`)
//! ```
//!
//! [`Snapshot::source_of`](crate::Snapshot::source_of) answers, for any key of a
//! published version, which source set its value and which sources it overrode:
//!
//! ```text
//! `limits.max_body_bytes` = 2048, set by env var `APP_LIMITS__MAX_BODY_BYTES`, overriding 1048576 from file `app.toml`
//! ```
//!
//! # An optional section
//!
//! A registered section that no source sets is built from an empty table, so a section
//! may be absent exactly when every one of its fields may be: a section whose fields
//! are all required is rejected as missing (`` `upstream`: missing (no source sets
//! section `upstream`, which requires `url` and `api_key`) ``). Three ways to let it be
//! absent, as the value it should then have decides:
//!
//! - **`#[serde(default)]` on the struct**, with a `Default`: absent, the section is its
//!   default; a source that sets some of its keys overrides those, the default fills the
//!   rest. Its schema requires none of its fields (schemars reads serde's attribute),
//!   and still checks the types and ranges of the keys that are set. Best when the
//!   defaults are the code's own.
//! - **An `Option<T>` field** (or several): absent is `None`, which a lens reads as
//!   such, so the code tells "not configured" from a value. `#[serde(default)]` on one
//!   field does the same with that field's `Default`.
//! - **A [`Defaults`](crate::source::Defaults) source, put first**: the defaults are part
//!   of the document, so they are validated, shown in the status, diffed, and named by
//!   [`Snapshot::source_of`](crate::Snapshot::source_of) (as `defaults`); the struct
//!   keeps its fields required.
//!
//! A section that becomes absent again (its file removed) goes back to that value in a
//! new version, and its subscribers are told, like any change.
//!
//! ```
//! use eac_accessor::prelude::*;
//!
//! #[derive(Debug, PartialEq, serde::Deserialize, schemars::JsonSchema, EaCSection)]
//! #[serde(default)] // absent, or a key of it absent: `Default` fills it
//! struct Cache {
//!     #[schemars(range(min = 1))]
//!     ttl_seconds: u64,
//!     /// `None` unless a source names one.
//!     redis_url: Option<String>,
//! }
//!
//! impl Default for Cache {
//!     fn default() -> Self {
//!         Cache { ttl_seconds: 60, redis_url: None }
//!     }
//! }
//!
//! let doc = Memory::new("app", Format::Toml, ""); // no `[cache]` at all
//! let config = EaCAccessor::builder().section::<Cache>().source(doc.clone()).build()?;
//! assert_eq!(*config.load().section::<Cache>(), Cache::default());
//!
//! doc.set("[cache]\nredis_url = \"redis://cache.internal\"\n"); // one key set
//! config.reload(Origin::Refresh)?;
//! let snapshot = config.load();
//! assert_eq!(Cache::lens().ttl_seconds().get(&snapshot), &60); // still the default
//! assert_eq!(
//!     Cache::lens().redis_url().get(&snapshot).as_deref(),
//!     Some("redis://cache.internal")
//! );
//!
//! doc.set("[cache]\nttl_seconds = 0\n"); // a key that is set is still checked
//! assert!(config.reload(Origin::Refresh).is_err());
//! # Ok::<(), eac_accessor::Errors>(())
//! ```
//!
//! # Secrets
//!
//! Fields listed by [`EaCSection::secret_paths`](crate::EaCSection::secret_paths) never
//! appear in error messages (which then say only the type found), in
//! [`Snapshot::redacted_document`](crate::Snapshot::redacted_document), in diffs,
//! previews, [`Snapshot::source_of`](crate::Snapshot::source_of), or in `Debug` output
//! of eac's own types ([`FieldChange`](crate::lens::FieldChange) and
//! [`FieldUpdate`](crate::lens::FieldUpdate) print `[redacted]` for a secret field's
//! values). Parse errors give a line and column, never the text. A section that derives
//! `Debug` itself types its secret fields [`Secret<T>`](crate::Secret), whose `Debug`
//! and `Display` print `[redacted]`; the derive lists such a field as a secret path.
//!
//! # Hostile input
//!
//! A file is read up to its [`SizeCap`](crate::source::SizeCap) (16 MiB) and never
//! further, whatever size it claims. Its document is parsed within
//! [`ParseLimits`](crate::source::ParseLimits): nesting is bounded by a byte scan before
//! the parse, the number of values by that scan (TOML, JSON) or by the YAML event
//! stream, and what YAML aliases expand to is counted before anything is built. A
//! document over a budget is rejected with [`ErrorKind::Limit`](crate::ErrorKind::Limit),
//! naming the file and the budget; within them, parsing a document up to the cap takes
//! well under a second and peaks under 4× its size + 50 MB (`BENCHMARKS.md`).
//!
//! # Limitations
//!
//! - An [`Env`](crate::source::Env) overlay used on its own, outside a builder, knows no
//!   schema: it maps every variable with its prefix and reads values as TOML-like scalars.
//! - A section's own `Debug` is its own: [`SectionChange`](crate::SectionChange) and
//!   [`SectionWatch::latest`](crate::SectionWatch::latest) show sections as their `Debug`
//!   does (the derive's redacts; a hand-written one should use [`Secret<T>`](crate::Secret)).
//! - [`SectionWatch`](crate::SectionWatch) holds the latest value like
//!   `tokio::sync::watch`: a slow receiver sees the newest change, not each one. Use
//!   [`EaCAccessor::on_change`](crate::EaCAccessor::on_change) to see every change.

pub mod metrics {
    //! The metrics eac records through the [`metrics`](https://docs.rs/metrics) facade.
    //! Each is described (help text and unit) to the recorder installed when the accessor
    //! is built; see [`crate::metrics::describe`].
    //!
    //! | name | type | meaning |
    //! |---|---|---|
    //! | `eac_reload_total{outcome}` | counter | reloads by outcome: `published`, `unchanged`, `rejected` (a failed health check and an invalid pending change count as `rejected`) |
    //! | `eac_config_last_reload_successful` | gauge | 1 when the last reload published or found nothing new, 0 when rejected |
    //! | `eac_config_last_reload_success_timestamp_seconds` | gauge | Unix time of the last successful reload |
    //! | `eac_snapshot_version` | gauge | the version readers see |
    //! | `eac_history_write_failures_total` | counter | failed writes of the durable history store (a full disk); the store catches up at the next write that succeeds |
    //! | `eac_publish_duration_seconds` | histogram | time from reading the sources to the store or the rejection (pipeline runs only) |
    //! | `eac_inputs_held_back` | gauge | inputs held back now: rejected while the rest of a change was published |
    //!
    //! Per source that fetches in the background (`source="<URL>"` for `source::Http`,
    //! feature `http`, as `Http::url` shows it: no credentials, every query value redacted):
    //!
    //! | name | type | meaning |
    //! |---|---|---|
    //! | `eac_source_up{source}` | gauge | 1 when the last fetch succeeded, 0 when it failed |
    //! | `eac_source_last_success_timestamp_seconds{source}` | gauge | Unix time of the last successful fetch (a `200` or a `304`) |
    //! | `eac_source_requests_total{source,result}` | counter | fetches by result: `modified`, `not_modified` (an ETag or date hit), `error` |
    //! | `eac_source_serving_cache{source}` | gauge | 1 while what the source serves came from its last-known-good cache |
    //! | `eac_source_rejected_total{source}` | counter | documents the source fetched that were rejected |
    //!
    //! With feature `etcd`, for the prefix a `source::Etcd` reads (see its docs):
    //! `eac_applied_revision` and `eac_rejected_revision` (gauges), `eac_nacks_total`
    //! (counter) and `eac_fleet_propagation_seconds{from}` (histogram).
}

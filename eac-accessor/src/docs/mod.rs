//! Long-form documentation: how a reload works and what eac promises.
//!
//! # The pipeline
//!
//! Each reload reads every source, merges them in order (figment), hashes the merged
//! document (key order does not matter), and stops there with `Unchanged` when the hash
//! equals the current one. Otherwise each registered section is checked against its JSON
//! Schema (compiled once, at build), deserialized once, and passed to its `validate`;
//! every readiness hook then sees the finished candidate. Only then is the candidate
//! stored, in one atomic swap, and subscribers of the sections that changed are told.
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
//! # Secrets
//!
//! Fields listed by [`EaCSection::secret_paths`](crate::EaCSection::secret_paths) never
//! appear in error messages (which then say only the type found), in
//! [`Snapshot::redacted_document`](crate::Snapshot::redacted_document), or in `Debug`
//! output of eac's own types. Parse errors give a line and column, never the text.
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
//! - Environment values are read as TOML-like scalars, so `APP_GREETING__MESSAGE=42`
//!   is the integer 42, which a string field's schema rejects; quote it (`'"42"'`).
//! - [`SectionWatch`](crate::SectionWatch) holds the latest value like
//!   `tokio::sync::watch`: a slow receiver sees the newest change, not each one. Use
//!   [`EaCAccessor::on_change`](crate::EaCAccessor::on_change) to see every change.

pub mod metrics {
    //! The metrics eac records through the [`metrics`](https://docs.rs/metrics) facade.
    //!
    //! | name | type | meaning |
    //! |---|---|---|
    //! | `eac_reload_total{outcome}` | counter | reloads by outcome: `published`, `unchanged`, `rejected` |
    //! | `eac_config_last_reload_successful` | gauge | 1 when the last reload published or found nothing new, 0 when rejected |
    //! | `eac_config_last_reload_success_timestamp_seconds` | gauge | Unix time of the last successful reload |
    //! | `eac_snapshot_version` | gauge | the version readers see |
    //! | `eac_publish_duration_seconds` | histogram | time from reading the sources to the store or the rejection |
}

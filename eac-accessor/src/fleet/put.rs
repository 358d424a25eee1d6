//! A safe writer for a fleet's prefix: one section, validated with the pipeline the
//! instances run, written in a transaction guarded by the revision it was validated
//! against, with a record of the write (`<prefix>.releases/<id>`) in the same
//! transaction — then, if asked, the fleet's answer: every live member's ACK or NACK.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use etcd_client::{Compare, CompareOp, EventType, Txn, TxnOp, WatchOptions};
use serde_json::Value;

use super::view;
use crate::accessor::Builder;
use crate::error::{Error, ErrorKind, Errors, SourceName};
use crate::source::etcd::entry::Key;
use crate::source::etcd::read::Read;
use crate::source::etcd::{RELEASES, Shared};
use crate::source::{Dict, Etcd, Format, Layer, Source};

/// The release records a writer keeps: each write deletes those older than the newest
/// this many, in its own transaction.
const KEPT_RELEASES: usize = 20;

/// The most keys compared one by one in a write's guard (etcd refuses more than 128
/// compares in a transaction by default); past it, only the written section's keys are
/// (and, always, that no key changed since the revision validated against).
const MOST_COMPARED: usize = 100;

/// One section to write to a fleet's prefix with [`Etcd::put_section`]: the section's
/// own keys (what `<prefix><section>` holds), where they came from, and who writes them.
///
/// ```
/// use eac_accessor::SourceName;
/// use eac_accessor::fleet::SectionPut;
/// use eac_accessor::source::Format;
///
/// let put = SectionPut::new("limits", Format::Json, r#"{"max_body_bytes": 1024}"#,
///     SourceName::File("limits.json".into()))
///     .by("deploy-42");
/// assert_eq!(put.section(), "limits");
/// ```
#[derive(Debug, Clone)]
pub struct SectionPut {
    section: String,
    format: Format,
    text: Vec<u8>,
    input: SourceName,
    by: String,
}

impl SectionPut {
    /// `text`, in `format`, holds section `section` (dotted for a nested one:
    /// `server.http`, written at `<prefix>server/http`); errors name `input` as its
    /// source. The writer is the user running the process until [`by`](SectionPut::by).
    pub fn new(
        section: impl Into<String>,
        format: Format,
        text: impl Into<Vec<u8>>,
        input: SourceName,
    ) -> SectionPut {
        SectionPut {
            section: section.into(),
            format,
            text: text.into(),
            input,
            by: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into()),
        }
    }

    /// Who writes it, as the release record says.
    pub fn by(mut self, who: impl Into<String>) -> SectionPut {
        self.by = who.into();
        self
    }

    /// The section's path.
    pub fn section(&self) -> &str {
        &self.section
    }

    /// The section's key after the prefix: `server.http` → `server/http`.
    fn key_name(&self) -> String {
        self.section.replace('.', "/")
    }

    /// The name its text is parsed under: the key with the extension of its format.
    fn parse_name(&self) -> String {
        let extension = match self.format {
            Format::Toml => ".toml",
            Format::Yaml => ".yaml",
            Format::Json => "",
        };
        format!("{}{extension}", self.key_name())
    }
}

/// A write [`Etcd::put_section`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Written {
    /// The revision it wrote: what each member ACKs or NACKs.
    pub revision: i64,
    /// The revision of the prefix it was validated against.
    pub validated: i64,
    /// Its release record's id, under `<prefix>.releases/`.
    pub release: String,
}

/// Why [`Etcd::put_section`] wrote nothing.
#[derive(Debug)]
#[non_exhaustive]
pub enum PutError {
    /// The section, with the prefix's other sections, does not pass: every error.
    Invalid(Errors),
    /// A key of the prefix changed after `validated`, the revision the section was
    /// validated against: another writer came first.
    Conflict {
        /// The revision validated against.
        validated: i64,
    },
    /// A gray release is in flight: nothing else is written to the prefix until it is
    /// promoted or aborted.
    InFlight {
        /// The release's id.
        release: String,
        /// The sections it releases.
        sections: Vec<String>,
    },
    /// etcd could not be read or written.
    Etcd(Error),
}

impl fmt::Display for PutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Invalid(errors) => write!(f, "invalid, nothing written: {errors}"),
            PutError::Conflict { validated } => write!(
                f,
                "conflict: the prefix changed after revision {validated}, which this write \
                 was validated against; nothing written (read it again and retry)"
            ),
            PutError::InFlight { release, sections } => write!(
                f,
                "release {release} (of {}) is in flight: nothing written until it is promoted \
                 or aborted (`live_server release promote|abort {release}`)",
                sections.join(", ")
            ),
            PutError::Etcd(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PutError {}

/// What each live member said of a revision: see [`Etcd::wait_for_fleet`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FleetAnswer {
    /// Members that applied it (or a later one).
    pub acked: Vec<String>,
    /// Members that rejected it (their NACK names it).
    pub nacked: Vec<String>,
    /// Members that said nothing of it yet.
    pub waiting: Vec<String>,
    /// The fleet view when the answer was taken (as `GET /_internal/eac/fleet`).
    pub view: Value,
}

/// The layers of a candidate assembled in memory: what is validated before a write.
#[derive(Debug)]
struct Assembled(Vec<(SourceName, Parsed)>);

/// One input's document and fingerprint, or why it did not parse.
type Parsed = Result<(Dict, u64), Error>;

impl Source for Assembled {
    fn load(&self) -> Result<Vec<Layer>, Vec<Error>> {
        Ok(self
            .0
            .iter()
            .map(|(name, parsed)| match parsed {
                Ok((data, fingerprint)) => Layer::parsed(name.clone(), data.clone(), *fingerprint),
                Err(e) => Layer::failed(name.clone(), e.clone()),
            })
            .collect())
    }
}

impl Etcd {
    /// Writes one section to the prefix, safely: `sections` (a builder with the sections
    /// and resolvers the members register; its sources are not read) validates the
    /// prefix as it will be — its current sections with this one in place — with
    /// [`Builder::check_partial`]: a section the prefix lacks is not required. Then one
    /// transaction, guarded by the revision validated against, writes the section as
    /// JSON at `<prefix><section>`, deletes its `.toml`/`.yaml`/`.yml`/`.json` keys, and
    /// records the write at `<prefix>.releases/<id>` (`at`, `sections`, `by`; its
    /// mod_revision is the revision written), so members time their propagation from it.
    ///
    /// Nothing is written when the candidate is invalid ([`PutError::Invalid`], every
    /// error) or a key changed since it was read ([`PutError::Conflict`]).
    ///
    /// ```no_run
    /// use eac_accessor::{EaCAccessor, SourceName};
    /// use eac_accessor::fleet::SectionPut;
    /// use eac_accessor::source::{Etcd, EtcdOptions, Format};
    /// # #[derive(serde::Deserialize, schemars::JsonSchema, eac_accessor::EaCSection)]
    /// # struct Limits { max_body_bytes: u64 }
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = Etcd::connect(EtcdOptions::new(["http://127.0.0.1:2379"], "/eac/app/")).await?;
    /// let put = SectionPut::new("limits", Format::Json, r#"{"max_body_bytes": 1024}"#,
    ///     SourceName::Memory("deploy".into()));
    /// let written = etcd.put_section(EaCAccessor::builder().section::<Limits>(), put).await?;
    /// let answer = etcd.wait_for_fleet(written.revision, std::time::Duration::from_secs(30)).await?;
    /// assert!(answer.nacked.is_empty() && answer.waiting.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn put_section(
        &self,
        sections: Builder,
        put: SectionPut,
    ) -> Result<Written, PutError> {
        self.prepare_put(sections, put).await?.write().await
    }

    /// The first half of [`put_section`](Etcd::put_section): reads the prefix and
    /// validates the section in it; nothing is written until [`PreparedPut::write`],
    /// which fails with [`PutError::Conflict`] if a key changed since this read.
    pub async fn prepare_put(
        &self,
        sections: Builder,
        put: SectionPut,
    ) -> Result<PreparedPut, PutError> {
        let shared = &self.shared;
        if shared.options.document.is_some() {
            return Err(PutError::Etcd(Error::new(
                ErrorKind::Validation,
                "the prefix holds one document (`EtcdOptions::document`): put writes sections",
            )));
        }
        if !sections.has_section(&put.section) {
            let known = sections.section_paths().join(", ");
            return Err(PutError::Invalid(
                Error::new(
                    ErrorKind::UnknownKey,
                    format!(
                        "no section `{}` is registered (sections: {known})",
                        put.section
                    ),
                )
                .into(),
            ));
        }
        let read = shared.read_pages(0).await.map_err(PutError::Etcd)?;
        let key_name = put.key_name();
        // The section's own keys, whatever their extension: replaced by this one.
        let ours = |name: &str| {
            name == key_name
                || EXTENSIONS
                    .iter()
                    .any(|ext| name.strip_suffix(ext) == Some(key_name.as_str()))
        };
        let mut layers = Vec::new();
        for raw in &read.config {
            if let Key::Config(name) = shared.classify(&raw.key) {
                if name.is_some_and(ours) {
                    continue;
                }
                let entry = shared.entry(name, &raw.key, raw.value.as_deref(), raw.mod_revision);
                let source = SourceName::Etcd {
                    key: entry.key.clone(),
                    revision: Some(entry.mod_revision),
                };
                layers.push((source, entry.parsed));
            }
        }
        let parsed = shared.parse(&put.parse_name(), &put.text, &put.input);
        let value = match &parsed {
            Ok((data, _)) => section_value(data, &key_name),
            Err(_) => Value::Null,
        };
        layers.push((put.input.clone(), parsed));
        let candidate = sections.source(Assembled(layers));
        tokio::task::spawn_blocking(move || candidate.check_partial())
            .await
            .map_err(|e| {
                PutError::Etcd(Error::new(
                    ErrorKind::Io,
                    format!("the validation did not finish: {e}"),
                ))
            })?
            .map_err(PutError::Invalid)?;
        Ok(PreparedPut {
            etcd: self.clone(),
            read,
            put,
            value,
        })
    }
}

/// A section validated against the prefix at one revision, not yet written: made by
/// [`Etcd::prepare_put`].
pub struct PreparedPut {
    etcd: Etcd,
    read: Read,
    put: SectionPut,
    value: Value,
}

impl fmt::Debug for PreparedPut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedPut")
            .field("section", &self.put.section)
            .field("validated", &self.read.revision)
            .finish_non_exhaustive()
    }
}

impl PreparedPut {
    /// The revision of the prefix it was validated against.
    pub fn validated(&self) -> i64 {
        self.read.revision
    }

    /// Writes it, in one transaction guarded by the revision validated against: no key
    /// of the prefix changed since, or [`PutError::Conflict`] and nothing written.
    pub async fn write(self) -> Result<Written, PutError> {
        let key = format!("{}{}", self.etcd.shared.options.prefix, self.put.key_name());
        let mut ops = vec![TxnOp::put(key.as_bytes(), self.value.to_string(), None)];
        for ext in EXTENSIONS {
            ops.push(TxnOp::delete(format!("{key}{ext}"), None));
        }
        let record = serde_json::json!({"kind": "put"});
        self.commit(record, ops, Vec::new()).await
    }

    /// The section's key name after the prefix (`server/http`) and its value as written.
    pub(super) fn section(&self) -> (String, &Value) {
        (self.put.key_name(), &self.value)
    }

    /// The live members' records read with it, by id.
    pub(super) fn member_records(&self) -> BTreeMap<String, Value> {
        instance_records(&self.etcd.shared, &self.read.instances)
    }

    /// Commits `ops` with the release record (`record`'s fields with `at`, `sections`,
    /// `by` and `validated`), guarded by the revision validated against and by `extra`;
    /// keeps the newest few release records.
    pub(super) async fn commit(
        self,
        mut record: Value,
        mut ops: Vec<TxnOp>,
        extra: Vec<Compare>,
    ) -> Result<Written, PutError> {
        let PreparedPut {
            etcd, read, put, ..
        } = self;
        let validated = read.revision;
        let shared = &etcd.shared;
        let prefix = &shared.options.prefix;
        if let Some(first) = in_flight(&shared.release_records(&read.releases)) {
            return Err(first);
        }
        let key = format!("{prefix}{}", put.key_name());
        // Every key read stays as read (a delete included), and no key was written since
        // (a key created after the read, the section's own included, is newer than it),
        // nor a release record (another release started).
        let compared: Vec<(&[u8], i64)> = if read.config.len() <= MOST_COMPARED {
            read.config
                .iter()
                .map(|raw| (raw.key.as_slice(), raw.mod_revision))
                .collect()
        } else {
            let ours = |raw: &&crate::source::etcd::read::Raw| {
                raw.key == key.as_bytes()
                    || EXTENSIONS
                        .iter()
                        .any(|ext| raw.key == format!("{key}{ext}").as_bytes())
            };
            read.config
                .iter()
                .filter(ours)
                .map(|raw| (raw.key.as_slice(), raw.mod_revision))
                .collect()
        };
        let mut compares: Vec<Compare> = compared
            .into_iter()
            .map(|(k, r)| Compare::mod_revision(k, CompareOp::Equal, r))
            .collect();
        let mut ranges = shared.config_ranges();
        ranges.push(shared.release_range());
        for (start, end) in ranges {
            compares
                .push(Compare::mod_revision(start, CompareOp::Less, validated + 1).with_range(end));
        }
        compares.extend(extra);
        let now = SystemTime::now();
        let release = record["id"]
            .as_str()
            .map_or_else(|| release_id(now), str::to_owned);
        if let Some(map) = record.as_object_mut() {
            map.remove("id");
            map.insert("at".into(), super::unix_f64(now).into());
            map.insert("sections".into(), serde_json::json!([put.section]));
            map.insert("by".into(), put.by.clone().into());
            map.insert("validated".into(), validated.into());
        }
        ops.push(TxnOp::put(
            format!("{prefix}{RELEASES}{release}"),
            record.to_string(),
            None,
        ));
        // The newest few records stay; older ones go with this write.
        let mut older: Vec<(i64, &[u8])> = read
            .releases
            .iter()
            .map(|raw| (raw.mod_revision, raw.key.as_slice()))
            .collect();
        older.sort();
        let excess = older.len().saturating_sub(KEPT_RELEASES - 1);
        for (_, old) in older.into_iter().take(excess) {
            ops.push(TxnOp::delete(old, None));
        }
        let txn = Txn::new().when(compares).and_then(ops);
        let mut kv = shared.client.kv_client();
        let timeout = shared.options.request_timeout;
        let response = tokio::time::timeout(timeout, kv.txn(txn))
            .await
            .map_err(|_| {
                PutError::Etcd(shared.io_error(
                    "the write was not answered (it may have landed; see `fleet`)",
                    format!("within {timeout:?}"),
                ))
            })?
            .map_err(|e| PutError::Etcd(shared.etcd_error("cannot write", &e)))?;
        if !response.succeeded() {
            return Err(PutError::Conflict { validated });
        }
        Ok(Written {
            revision: response.header().map_or(0, |h| h.revision()),
            validated,
            release,
        })
    }
}

/// The extensions a section's key may have besides none: a write replaces them all.
pub(super) const EXTENSIONS: [&str; 4] = [".toml", ".yaml", ".yml", ".json"];

/// A new release id: its start in Unix milliseconds (so ids sort by time) and four
/// random hex digits.
pub(super) fn release_id(now: SystemTime) -> String {
    format!(
        "{:013}-{:04x}",
        now.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
        fastrand::u16(..)
    )
}

/// The gray release in flight, as the error that refuses a write beside it: its staged
/// candidate would be promoted over the write, or judged on a fleet that changed under it.
fn in_flight(releases: &BTreeMap<String, Value>) -> Option<PutError> {
    let (id, record) = super::records::flying(releases)?;
    Some(PutError::InFlight {
        release: id.to_owned(),
        sections: record["sections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
    })
}

impl Etcd {
    /// Waits, at most `within`, until every live member has ACKed (applied) or NACKed
    /// (rejected) `revision`, or a later one; the members whose lease runs out meanwhile
    /// leave the question. Returns who said what, and the fleet view at that moment.
    pub async fn wait_for_fleet(
        &self,
        revision: i64,
        within: Duration,
    ) -> Result<FleetAnswer, Error> {
        let shared = &self.shared;
        let deadline = tokio::time::Instant::now() + within;
        // A watch from now (one from a past revision is caught up by etcd's sync loop,
        // every 100 ms), then the records once: each change of one after that read
        // comes from the watch. Nothing is polled, and a fleet of N members costs N
        // events, not N reads of N records.
        let (start, end) = shared.instance_range();
        let mut client = shared.client.watch_client();
        let options = WatchOptions::new().with_range(end);
        let mut stream = tokio::time::timeout(
            shared.options.request_timeout,
            client.watch(start, Some(options)),
        )
        .await
        .map_err(|_| shared.io_error("cannot watch the instance records", "no answer in time"))?
        .map_err(|e| shared.etcd_error("cannot watch the instance records", &e))?;
        let read = shared.read_pages(0).await?;
        let mut records = instance_records(shared, &read.instances);
        loop {
            let waiting = answer(revision, &records).waiting;
            if waiting.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            match tokio::time::timeout_at(deadline, stream.message()).await {
                // Time is up: one last look.
                Err(_) => {}
                Ok(Ok(Some(response))) => {
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        // What the read saw already.
                        if kv.mod_revision() <= read.revision {
                            continue;
                        }
                        let Key::Instance(id) = shared.classify(kv.key()) else {
                            continue;
                        };
                        match event.event_type() {
                            EventType::Put => {
                                let record =
                                    crate::source::etcd::entry::instance_record(kv.value());
                                records.insert(id.to_owned(), record);
                            }
                            EventType::Delete => {
                                records.remove(id);
                            }
                        }
                    }
                }
                Ok(Ok(None)) => {
                    return Err(shared.io_error("the watch ended", "closed by the server"));
                }
                Ok(Err(e)) => return Err(shared.etcd_error("the watch failed", &e)),
            }
        }
        // The view as it is now, for the table; the answer from the same records.
        let view = self.fleet_view().await?;
        let mut answer = answer(revision, &records);
        answer.view = view;
        Ok(answer)
    }

    /// The fleet view, read now from the cluster: `{"revision", "members": [...],
    /// "applied": {...}, "releases": [...]}`, as `GET /_internal/eac/fleet` answers it.
    /// A member behind the latest revision is `SYNCING` until [`EtcdOptions::stale_after`]
    /// has passed since the revision's release record (or the first member's ACK or NACK
    /// of it), then `STALE`; with neither, since when is unknown and it is `STALE`.
    ///
    /// [`EtcdOptions::stale_after`]: crate::source::EtcdOptions::stale_after
    pub async fn fleet_view(&self) -> Result<Value, Error> {
        let shared = &self.shared;
        let read = shared.read_pages(0).await?;
        let latest = read
            .config
            .iter()
            .filter(|raw| matches!(shared.classify(&raw.key), Key::Config(_)))
            .map(|raw| raw.mod_revision)
            .max()
            .unwrap_or(0);
        let records = instance_records(shared, &read.instances);
        let releases = shared.release_records(&read.releases);
        let seen = view::first_seen(latest, &records, &releases).unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(view::view(
            latest,
            seen,
            &records,
            &releases,
            shared.options.stale,
            SystemTime::now(),
        ))
    }
}

/// The section's own keys out of the document its key contributes.
fn section_value(data: &Dict, key_name: &str) -> Value {
    let mut value = Value::Object(data.clone());
    for segment in key_name.split('/') {
        value = value.get(segment).cloned().unwrap_or(Value::Null);
    }
    value
}

/// The instance records among `raws`, by id, parsed.
pub(super) fn instance_records(
    shared: &Shared,
    raws: &[crate::source::etcd::read::Raw],
) -> BTreeMap<String, Value> {
    raws.iter()
        .filter_map(|raw| match (shared.classify(&raw.key), &raw.value) {
            (Key::Instance(id), Some(value)) => Some((
                id.to_owned(),
                crate::source::etcd::entry::instance_record(value),
            )),
            _ => None,
        })
        .collect()
}

/// Who ACKed, NACKed or said nothing of `revision`, from the members' records.
fn answer(revision: i64, records: &BTreeMap<String, Value>) -> FleetAnswer {
    let mut answer = FleetAnswer {
        acked: Vec::new(),
        nacked: Vec::new(),
        waiting: Vec::new(),
        view: Value::Null,
    };
    for (id, record) in records {
        let id = id.clone();
        if record["nack"]["revision"].as_i64() >= Some(revision) {
            answer.nacked.push(id);
        } else if record["applied_revision"].as_i64() >= Some(revision) {
            answer.acked.push(id);
        } else {
            answer.waiting.push(id);
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_member_nacks_acks_or_is_waited_for() {
        let records = BTreeMap::from([
            (
                "a".to_owned(),
                json!({"applied_revision": 12, "nack": null}),
            ),
            (
                "b".to_owned(),
                json!({"applied_revision": 9, "nack": {"revision": 10}}),
            ),
            ("c".to_owned(), json!({"applied_revision": 9, "nack": null})),
            (
                "d".to_owned(),
                json!({"applied_revision": 12, "nack": {"revision": 8}}),
            ),
            (
                "e".to_owned(),
                json!({"applied_revision": null, "nack": null}),
            ),
        ]);
        let answer = answer(10, &records);
        assert_eq!(answer.acked, ["a", "d"]);
        assert_eq!(answer.nacked, ["b"]);
        assert_eq!(answer.waiting, ["c", "e"]);
    }

    #[test]
    fn a_nested_section_is_written_at_its_key() {
        let data: Dict = serde_json::from_value(json!({"server": {"http": {"port": 1}}})).unwrap();
        assert_eq!(section_value(&data, "server/http"), json!({"port": 1}));
        let put = SectionPut::new(
            "server.http",
            Format::Toml,
            "",
            SourceName::Memory("t".into()),
        );
        assert_eq!(put.parse_name(), "server/http.toml");
    }
}

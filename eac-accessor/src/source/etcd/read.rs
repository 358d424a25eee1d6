//! Reading the prefix: in pages, every page at the first page's revision, within a total
//! cap and a decode bound, and never the values of eac's own records (`<prefix>.…`) for
//! the configuration.
//!
//! In bytes, `.` (0x2E) sorts just before `/` (0x2F), so the configuration keys of the
//! sections layout are the two ranges either side of `<prefix>.`: from `<prefix>\0` to
//! `<prefix>.`, and from `<prefix>/` to the end of the prefix. The instance records are
//! read apart, from their own range, with their own caps.

use etcd_client::{GetOptions, GetResponse, KvClient, Txn, TxnOp, TxnOpResponse};

use super::{INSTANCES, RELEASES, STAGED, Shared};
use crate::error::{Error, ErrorKind};

/// Keys asked for in one page; fewer while a page would be over the decode bound.
const PAGE: i64 = 64;

/// Decoding room beyond one value's cap: the key, its revisions and the header.
const OVERHEAD: u64 = 64 * 1024;

/// The most instance records read; more are left out of the fleet view, with a warning.
const MAX_INSTANCES: u64 = 10_000;

/// The most release records read (a writer keeps the newest few; more are left out).
const MAX_RELEASES: u64 = 1_000;

/// The largest response of instance records decoded: a record is a line of JSON.
const INSTANCE_MESSAGE: usize = 1024 * 1024;

/// One key read: its value, or `None` when the value alone is over the decode bound
/// (then only its key and revision were fetched).
pub(crate) struct Raw {
    pub(crate) key: Vec<u8>,
    pub(crate) mod_revision: i64,
    pub(crate) value: Option<Vec<u8>>,
}

/// What one read of the prefix found, at one revision.
pub(crate) struct Read {
    pub(crate) revision: i64,
    pub(crate) config: Vec<Raw>,
    pub(crate) instances: Vec<Raw>,
    /// The writers' records (`<prefix>.releases/`).
    pub(crate) releases: Vec<Raw>,
    /// Whether the instance records were read (else the watch's own are kept).
    pub(crate) with_records: bool,
    /// The gray release that chose this member as a canary, if one is in flight.
    pub(crate) staged_release: Option<String>,
    /// That release's staged candidate (`<prefix>.staged/<release>/…`).
    pub(crate) staged: Vec<Raw>,
}

/// What a range may still hold before it is refused.
struct Budget {
    bytes: u64,
    keys: u64,
}

/// Why a range stopped.
enum Stop {
    /// The budget ran out.
    Budget,
    Failed(Error),
}

impl Shared {
    /// The largest response the watch and the configuration reads decode: one value at
    /// its cap, with its key and header.
    pub(crate) fn message_cap(&self) -> usize {
        usize::try_from(self.options.max_value.bytes().saturating_add(OVERHEAD))
            .unwrap_or(usize::MAX)
    }

    /// The key ranges `[start, end)` that hold the configuration.
    pub(crate) fn config_ranges(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let prefix = self.options.prefix.as_bytes();
        let with = |tail: &[u8]| [prefix, tail].concat();
        match &self.options.document {
            Some(doc) => {
                let key = with(doc.as_bytes());
                let end = [key.as_slice(), b"\0"].concat();
                vec![(key, end)]
            }
            None => section_ranges(prefix).into(),
        }
    }

    /// The key range of the instance records.
    pub(crate) fn instance_range(&self) -> (Vec<u8>, Vec<u8>) {
        self.records_range(INSTANCES)
    }

    /// The key range of the release records.
    pub(crate) fn release_range(&self) -> (Vec<u8>, Vec<u8>) {
        self.records_range(RELEASES)
    }

    /// The key range of a gray release's staged candidate.
    pub(crate) fn staged_range(&self, release: &str) -> (Vec<u8>, Vec<u8>) {
        self.records_range(&format!("{STAGED}{release}/"))
    }

    fn records_range(&self, name: &str) -> (Vec<u8>, Vec<u8>) {
        let start = [self.options.prefix.as_bytes(), name.as_bytes()].concat();
        let end = prefix_end(&start);
        (start, end)
    }

    /// Reads the configuration and the instance records at `revision` (0: the latest,
    /// then every page at the revision of the first).
    pub(crate) async fn read_pages(&self, revision: i64) -> Result<Read, Error> {
        self.read_some(revision, true).await
    }

    /// Reads the configuration and the release records at `revision`, and the instance
    /// records too when `records`: the watch keeps those from its own events, so a
    /// change read for a watch event skips them (a fleet of N members would otherwise
    /// each read N records per change). The releases (a few) are read with the
    /// configuration they released: their own watch's event may come after its. At a
    /// watch event's revision, both are read in one transaction when they fit in a page
    /// each ([`first_pages`](Shared::first_pages)).
    pub(crate) async fn read_some(&self, revision: i64, records: bool) -> Result<Read, Error> {
        let paged = match revision > 0 && !records {
            true => self.first_pages(revision).await?,
            false => None,
        };
        let (mut revision, config, instances, releases) = match paged {
            Some((config, releases)) => (revision, config, Vec::new(), releases),
            None => self.ranges(revision, records).await?,
        };
        // A canary of a release in flight reads its staged candidate at the same
        // revision; every other member leaves `.staged/` alone.
        let staged_release = self.staged_for_me(&self.release_records(&releases));
        let staged = match &staged_release {
            Some(release) => {
                let mut kv = self
                    .client
                    .kv_client()
                    .max_decoding_message_size(self.message_cap());
                let what = format!("the staged candidate of release {release}");
                let range = vec![self.staged_range(release)];
                self.capped(&mut kv, range, &mut revision, &what).await?
            }
            None => Vec::new(),
        };
        Ok(Read {
            revision,
            config,
            instances,
            releases,
            with_records: records,
            staged_release,
            staged,
        })
    }

    /// The configuration and the release records at `revision` (a watch event's) in one
    /// transaction of one page per range: one round trip and one read for the change,
    /// where a range at a time takes three. `None` when a range holds more than a page,
    /// a budget would run out or the answer is over the decode bound: then the ranges
    /// are read one by one, page by page, as [`read_pages`](Shared::read_pages) does.
    async fn first_pages(&self, revision: i64) -> Result<Option<(Vec<Raw>, Vec<Raw>)>, Error> {
        let mut ranges = self.config_ranges();
        let configs = ranges.len();
        ranges.push(self.release_range());
        // Serializable: the revision read at is one the watch delivered, so the member
        // of the cluster that sent it has applied it, and what it holds at that revision
        // is what any member holds — without the quorum round a linearizable read takes
        // (etcd's costliest part of 32 members' reads of one change). A member behind
        // that revision (the client balances across endpoints) answers "future
        // revision": then the read is linearizable.
        let txn = |serializable: bool| {
            let ops: Vec<TxnOp> = ranges
                .iter()
                .map(|(start, end)| {
                    let page = GetOptions::new()
                        .with_range(end.clone())
                        .with_limit(PAGE)
                        .with_revision(revision);
                    let page = if serializable {
                        page.with_serializable()
                    } else {
                        page
                    };
                    TxnOp::get(start.clone(), Some(page))
                })
                .collect();
            Txn::new().and_then(ops)
        };
        let mut kv = self
            .client
            .kv_client()
            .max_decoding_message_size(self.message_cap());
        let timeout = self.options.request_timeout;
        let mut answer = tokio::time::timeout(timeout, kv.txn(txn(true))).await;
        if matches!(&answer, Ok(Err(e)) if future_revision(e)) {
            answer = tokio::time::timeout(timeout, kv.txn(txn(false))).await;
        }
        let response = match self.answered(answer) {
            Ok(response) => response,
            Err(None) => return Ok(None),
            Err(Some(e)) => return Err(e),
        };
        let mut config = (
            Vec::new(),
            Budget {
                bytes: self.options.max_total.bytes(),
                keys: u64::MAX,
            },
        );
        let mut releases = (
            Vec::new(),
            Budget {
                bytes: u64::MAX,
                keys: MAX_RELEASES,
            },
        );
        for (i, answer) in response.op_responses().into_iter().enumerate() {
            let TxnOpResponse::Get(page) = answer else {
                return Ok(None);
            };
            if page.more() {
                return Ok(None);
            }
            let (out, budget) = if i < configs {
                (&mut config.0, &mut config.1)
            } else {
                (&mut releases.0, &mut releases.1)
            };
            if take(page.kvs(), budget, out).is_err() {
                return Ok(None);
            }
        }
        Ok(Some((config.0, releases.0)))
    }

    /// Reads the configuration, the instance records when `records`, and the release
    /// records, range by range and page by page, at `revision` (0: the latest, then
    /// every page at the revision of the first); returns the revision read at.
    async fn ranges(
        &self,
        revision: i64,
        records: bool,
    ) -> Result<(i64, Vec<Raw>, Vec<Raw>, Vec<Raw>), Error> {
        let mut revision = revision;
        let mut kv = self
            .client
            .kv_client()
            .max_decoding_message_size(self.message_cap());
        let ranges = self.config_ranges();
        let config = self
            .capped(
                &mut kv,
                ranges,
                &mut revision,
                "the configuration under the prefix",
            )
            .await?;
        let mut kv = kv.max_decoding_message_size(INSTANCE_MESSAGE);
        let instances = if records {
            self.records(&mut kv, self.instance_range(), MAX_INSTANCES, &mut revision)
                .await?
        } else {
            Vec::new()
        };
        let releases = self
            .records(&mut kv, self.release_range(), MAX_RELEASES, &mut revision)
            .await?;
        Ok((revision, config, instances, releases))
    }

    /// Reads `ranges` at `revision`, within the total cap: over it, an error saying that
    /// `what` is larger.
    async fn capped(
        &self,
        kv: &mut KvClient,
        ranges: Vec<(Vec<u8>, Vec<u8>)>,
        revision: &mut i64,
        what: &str,
    ) -> Result<Vec<Raw>, Error> {
        let total = self.options.max_total;
        let mut budget = Budget {
            bytes: total.bytes(),
            keys: u64::MAX,
        };
        let mut out = Vec::new();
        for (start, end) in ranges {
            match self
                .range(kv, start, end, revision, &mut budget, &mut out)
                .await
            {
                Ok(()) => {}
                Err(Stop::Failed(e)) => return Err(e),
                Err(Stop::Budget) => {
                    return Err(Error::new(
                        ErrorKind::Limit,
                        format!(
                            "{what} is larger than the total cap of {total} \
                             (`EtcdOptions::max_total_size`): not read further"
                        ),
                    )
                    .with_source(self.name()));
                }
            }
        }
        Ok(out)
    }

    /// Release records as kept: by id, with `"revision"`.
    pub(crate) fn release_records(
        &self,
        raws: &[Raw],
    ) -> std::collections::BTreeMap<String, serde_json::Value> {
        raws.iter()
            .filter_map(|raw| match (self.classify(&raw.key), &raw.value) {
                (super::Key::Release(id), Some(value)) => Some((
                    id.to_owned(),
                    super::release_record(value, raw.mod_revision),
                )),
                _ => None,
            })
            .collect()
    }

    /// Reads eac's records in `range`, at most `most` of them (with a warning past that).
    async fn records(
        &self,
        kv: &mut KvClient,
        (start, end): (Vec<u8>, Vec<u8>),
        most: u64,
        revision: &mut i64,
    ) -> Result<Vec<Raw>, Error> {
        let mut budget = Budget {
            bytes: u64::MAX,
            keys: most,
        };
        let mut out = Vec::new();
        match self
            .range(kv, start.clone(), end, revision, &mut budget, &mut out)
            .await
        {
            Ok(()) => {}
            Err(Stop::Failed(e)) => return Err(e),
            Err(Stop::Budget) => tracing::warn!(
                range = %String::from_utf8_lossy(&start),
                "etcd: more than {most} records; the first are kept"
            ),
        }
        Ok(out)
    }

    /// Reads `[start, end)` page by page into `out`, at `revision` (fixed by the first
    /// page when 0), within `budget`.
    async fn range(
        &self,
        kv: &mut KvClient,
        mut start: Vec<u8>,
        end: Vec<u8>,
        revision: &mut i64,
        budget: &mut Budget,
        out: &mut Vec<Raw>,
    ) -> Result<(), Stop> {
        let mut limit = PAGE;
        loop {
            let options = GetOptions::new().with_range(end.clone()).with_limit(limit);
            let response = match self.get(kv, &start, options, *revision).await {
                Ok(response) => response,
                Err(Some(e)) => return Err(Stop::Failed(e)),
                // Over the decode bound: fewer keys, down to one whose value alone is.
                Err(None) if limit > 1 => {
                    limit = (limit / 4).max(1);
                    continue;
                }
                Err(None) => {
                    let options = GetOptions::new()
                        .with_range(end.clone())
                        .with_limit(1)
                        .with_keys_only();
                    let response = match self.get(kv, &start, options, *revision).await {
                        Ok(response) => response,
                        Err(e) => {
                            return Err(Stop::Failed(e.unwrap_or_else(|| {
                                self.io_error(
                                    "cannot read the prefix",
                                    "a key is over the decode bound",
                                )
                            })));
                        }
                    };
                    note_revision(revision, &response);
                    let Some(kv) = response.kvs().first() else {
                        return Ok(());
                    };
                    spend(budget, kv.key().len() as u64)?;
                    out.push(Raw {
                        key: kv.key().to_vec(),
                        mod_revision: kv.mod_revision(),
                        value: None,
                    });
                    start = after(kv.key());
                    if !response.more() {
                        return Ok(());
                    }
                    continue;
                }
            };
            note_revision(revision, &response);
            take(response.kvs(), budget, out)?;
            match response.kvs().last() {
                Some(last) if response.more() => start = after(last.key()),
                _ => return Ok(()),
            }
            limit = (limit * 2).min(PAGE);
        }
    }

    /// One page; `Err(None)` when the answer is over the decode bound.
    async fn get(
        &self,
        kv: &mut KvClient,
        start: &[u8],
        options: GetOptions,
        revision: i64,
    ) -> Result<GetResponse, Option<Error>> {
        let options = if revision > 0 {
            options.with_revision(revision)
        } else {
            options
        };
        let timeout = self.options.request_timeout;
        self.answered(tokio::time::timeout(timeout, kv.get(start, Some(options))).await)
    }

    /// A read's answer within the request timeout; `Err(None)` when it is over the
    /// decode bound.
    fn answered<T>(
        &self,
        answer: Result<Result<T, etcd_client::Error>, tokio::time::error::Elapsed>,
    ) -> Result<T, Option<Error>> {
        match answer {
            Err(_) => Err(Some(self.io_error(
                "no answer",
                format!("within {:?}", self.options.request_timeout),
            ))),
            Ok(Err(e)) if too_large(&e) => Err(None),
            Ok(Err(e)) => Err(Some(self.etcd_error("cannot read the prefix", &e))),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// The ranges either side of `<prefix>.`: every key under the prefix but the prefix
/// itself and eac's own records.
fn section_ranges(prefix: &[u8]) -> [(Vec<u8>, Vec<u8>); 2] {
    let with = |tail: &[u8]| [prefix, tail].concat();
    [(with(b"\0"), with(b".")), (with(b"/"), prefix_end(prefix))]
}

/// The first page fixes the revision every other page is read at.
fn note_revision(revision: &mut i64, response: &GetResponse) {
    if *revision == 0 {
        *revision = response.header().map_or(0, |h| h.revision());
    }
}

/// Takes a page's keys and values into `out`, within `budget`.
fn take(
    kvs: &[etcd_client::KeyValue],
    budget: &mut Budget,
    out: &mut Vec<Raw>,
) -> Result<(), Stop> {
    for kv in kvs {
        spend(budget, (kv.key().len() + kv.value().len()) as u64)?;
        out.push(Raw {
            key: kv.key().to_vec(),
            mod_revision: kv.mod_revision(),
            value: Some(kv.value().to_vec()),
        });
    }
    Ok(())
}

fn spend(budget: &mut Budget, bytes: u64) -> Result<(), Stop> {
    if budget.keys == 0 || budget.bytes < bytes {
        return Err(Stop::Budget);
    }
    budget.keys -= 1;
    budget.bytes -= bytes;
    Ok(())
}

/// The first key after `key`.
fn after(key: &[u8]) -> Vec<u8> {
    [key, b"\0"].concat()
}

/// The end of the range of keys starting with `prefix` (`\0`: every key from the start).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Whether an error is etcd's refusal of a revision it has not applied yet.
fn future_revision(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(status)
        if status.message().contains("future revision"))
}

/// Whether an error is a response over the decode bound, refused before it was read.
pub(super) fn too_large(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(status)
        if status.message().contains("decoded message length too large"))
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use eac_tests::etcd::EtcdServer;

    use super::*;
    use crate::source::EtcdOptions;

    const PREFIX: &str = "/eac/read/";

    /// How many `Range` and `Txn` calls etcd has answered (its `grpc_server_handled_total`).
    fn calls(server: &EtcdServer) -> (u64, u64) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let count = |method: &str| {
            answer
                .lines()
                .filter(|l| l.starts_with("grpc_server_handled_total{"))
                .filter(|l| l.contains(&format!("grpc_method=\"{method}\"")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        };
        (count("Range"), count("Txn"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_at_an_event_is_read_in_one_transaction_a_larger_one_page_by_page() {
        let server = EtcdServer::start();
        let shared = Shared::new(EtcdOptions::new([server.endpoint()], PREFIX))
            .await
            .unwrap();
        let mut kv = shared.client.kv_client();
        let mut put = async |key: &str, value: &str| {
            let key = format!("{PREFIX}{key}");
            kv.put(key, value, None)
                .await
                .unwrap()
                .header()
                .unwrap()
                .revision()
        };
        put("greeting", r#"{"message": "hi"}"#).await;
        put(".instances/a", "{}").await;
        let at = put(".releases/r1", r#"{"kind": "put"}"#).await;
        put("greeting", r#"{"message": "later"}"#).await;

        let before = calls(&server);
        let read = shared.read_some(at, false).await.unwrap();
        let after = calls(&server);
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (0, 1),
            "one Txn, no Range"
        );
        assert_eq!(read.revision, at);
        let keys = |raws: &[Raw]| -> Vec<String> {
            raws.iter()
                .map(|r| String::from_utf8_lossy(&r.key).into_owned())
                .collect()
        };
        assert_eq!(keys(&read.config), [format!("{PREFIX}greeting")]);
        assert_eq!(
            read.config[0].value.as_deref(),
            Some(&br#"{"message": "hi"}"#[..])
        );
        assert_eq!(keys(&read.releases), [format!("{PREFIX}.releases/r1")]);
        assert!(
            read.instances.is_empty(),
            "the watch keeps the instance records"
        );

        // More keys than a page: range by range, page by page, at the event's revision.
        for n in 0..PAGE + 6 {
            put(&format!("k{n:03}"), "{}").await;
        }
        let at = put("greeting", r#"{"message": "last"}"#).await;
        put("k000", r#"{"after": true}"#).await;
        let before = calls(&server);
        let read = shared.read_some(at, false).await.unwrap();
        let after = calls(&server);
        assert!(
            after.0 - before.0 >= 2,
            "read page by page: {before:?} -> {after:?}"
        );
        assert_eq!(read.revision, at);
        assert_eq!(read.config.len() as i64, PAGE + 7);
        assert!(read.config.iter().all(|r| r.mod_revision <= at));
        assert!(
            read.config
                .iter()
                .all(|r| r.value.as_deref() != Some(&br#"{"after": true}"#[..]))
        );
    }

    #[test]
    fn a_prefix_ends_past_its_last_byte() {
        assert_eq!(prefix_end(b"/eac/app/"), b"/eac/app0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn the_config_ranges_leave_out_the_dot_records_only() {
        let ranges = section_ranges(b"/p/");
        let inside = |key: &[u8]| {
            ranges
                .iter()
                .any(|(s, e)| s.as_slice() <= key && key < e.as_slice())
        };
        for key in [
            "/p/a",
            "/p/-",
            "/p/ ",
            "/p/0",
            "/p/~",
            "/p/limits.toml",
            "/p//x",
        ] {
            assert!(inside(key.as_bytes()), "{key}");
        }
        for key in ["/p/", "/p/.x", "/p/.instances/a", "/p0", "/o", "/p"] {
            assert!(!inside(key.as_bytes()), "{key}");
        }
        assert!(inside(b"/p/\xc3\xa9"));
    }
}

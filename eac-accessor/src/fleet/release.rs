//! A gray release: one section to a share of the fleet first, judged by the canaries' own
//! health, then promoted to every member or rolled back — without a person.
//!
//! See the [fleet module's docs](crate::fleet#gray-releases).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use serde_json::{Value, json};

use super::put::{EXTENSIONS, release_id};
use super::{PutError, SectionPut, unix_f64};
use crate::accessor::Builder;
#[cfg(test)]
use crate::canary::RoleStats;
use crate::canary::{ReleaseControl, Thresholds, Verdict, compared, judge};
use crate::error::{Error, ErrorKind};
use crate::source::Etcd;
use crate::source::etcd::{JUDGES, RELEASES, STAGED, Shared};

#[cfg(test)]
use super::records::member_figures;
use super::records::{ABORTED, CANARY, PROMOTED, figures, unix_time};

/// How far past its window a release may go without a verdict before it is aborted, by
/// default ([`ReleaseOptions::grace`]): its deadline is start + window + 30 s.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(30);

/// The lease of the writer's hold on the judge's key: when the writer dies, a member
/// takes the judging over this long after.
const WRITER_LEASE_SECONDS: i64 = 5;

/// How often the judge looks at the members' figures.
const TICK: Duration = Duration::from_millis(500);

/// Which members a release goes to first.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Selector {
    /// This share of the live members (0–1), at least one: those first by a hash of the
    /// release's id and theirs (the same members for the same release).
    Share(f64),
    /// These members, by id (`<hostname>:<listen addr>`), each of them live.
    Ids(Vec<String>),
    /// The live members whose record has this label (`--fleet-label k=v`).
    Label(String, String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Share(share) => write!(f, "{}% of the members", share * 100.0),
            Selector::Ids(ids) => write!(f, "ids {}", ids.join(",")),
            Selector::Label(k, v) => write!(f, "label {k}={v}"),
        }
    }
}

/// How a release runs: to whom first, for how long, and judged by what.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReleaseOptions {
    /// The canaries.
    pub selector: Selector,
    /// How long the canaries are judged before a promotion (default 60 s).
    pub window: Duration,
    /// The judge's thresholds (default [`Thresholds::FLEET`]: 100 canary requests).
    pub thresholds: Thresholds,
    /// How long past the window the judge waits for a verdict (default
    /// [`DEADLINE_GRACE`], 30 s): the release's deadline is start + window + grace, and
    /// a release still without a verdict then is aborted.
    pub grace: Duration,
}

impl ReleaseOptions {
    /// A release to `selector`'s members, judged for 60 s by the fleet's defaults.
    pub fn new(selector: Selector) -> ReleaseOptions {
        ReleaseOptions {
            selector,
            window: Duration::from_secs(60),
            thresholds: Thresholds::FLEET,
            grace: DEADLINE_GRACE,
        }
    }

    /// Judged for `window` before a promotion.
    pub fn window(mut self, window: Duration) -> ReleaseOptions {
        self.window = window;
        self
    }

    /// Judged by `thresholds`.
    pub fn thresholds(mut self, thresholds: Thresholds) -> ReleaseOptions {
        self.thresholds = thresholds;
        self
    }

    /// Aborted when still without a verdict `grace` after the window's end.
    pub fn grace(mut self, grace: Duration) -> ReleaseOptions {
        self.grace = grace;
        self
    }
}

/// A release written and judged: see [`Etcd::start_release`]. Dropping it lets go of the
/// judge's key (its lease runs out within 5 s and a member takes the judging over).
#[derive(Debug)]
#[non_exhaustive]
pub struct Started {
    /// The release's id, under `<prefix>.releases/`.
    pub release: String,
    /// The revision written: what the canaries ACK.
    pub revision: i64,
    /// The members chosen as canaries.
    pub canaries: Vec<String>,
    /// Past this, without a verdict, the release is aborted.
    pub deadline: SystemTime,
    keeper: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
    }
}

/// How a release ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Promoted to every member, and why (the judge's figures, or an operator's word).
    Promoted(String),
    /// Rolled back, and why.
    Aborted(String),
}

impl Decision {
    /// An operator's decision, as the record says why: `promoted by hand (<by>)` or
    /// `aborted by hand (<by>)`.
    pub fn by_hand(promote: bool, by: &str) -> Decision {
        if promote {
            Decision::Promoted(format!("promoted by hand ({by})"))
        } else {
            Decision::Aborted(format!("aborted by hand ({by})"))
        }
    }
}

/// The admin routes' way to a release: [`Etcd::decide_release`] by hand.
impl ReleaseControl for Etcd {
    fn decide<'a>(
        &'a self,
        release: &'a str,
        promote: bool,
        by: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, Error>> + Send + 'a>>
    {
        Box::pin(async move {
            let decided = self
                .decide_release(release, Decision::by_hand(promote, by))
                .await?;
            Ok(decided.to_string())
        })
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Promoted(why) => write!(f, "promoted: {why}"),
            Decision::Aborted(why) => write!(f, "aborted: {why}"),
        }
    }
}

/// The thresholds a release record names; the fleet's defaults for those it lacks.
fn thresholds_of(record: &Value) -> Thresholds {
    let t = &record["thresholds"];
    let mut thresholds = Thresholds::FLEET;
    if let Some(n) = t["min_requests"].as_u64() {
        thresholds.min_requests = n;
    }
    if let Some(r) = t["max_error_ratio"].as_f64() {
        thresholds.max_error_ratio = r;
    }
    if let Some(r) = t["max_error_ratio_vs_stable"].as_f64() {
        thresholds.max_error_ratio_vs_stable = r;
    }
    if let Some(r) = t["max_latency_ratio"].as_f64() {
        thresholds.max_latency_ratio = r;
    }
    thresholds
}

/// The canaries `selector` chooses among `live` members for `release`.
fn choose(
    release: &str,
    selector: &Selector,
    live: &BTreeMap<String, Value>,
) -> Result<Vec<String>, PutError> {
    let invalid =
        |message: String| PutError::Invalid(Error::new(ErrorKind::Validation, message).into());
    let names = || live.keys().cloned().collect::<Vec<_>>().join(", ");
    if live.is_empty() {
        return Err(invalid(
            "no live member under the prefix to release to (start the fleet first)".into(),
        ));
    }
    let chosen: Vec<String> = match selector {
        Selector::Share(share) if !(share.is_finite() && *share > 0.0 && *share <= 1.0) => {
            return Err(invalid(format!(
                "a canary share of {share} is not in (0, 1]: give one like 25%"
            )));
        }
        Selector::Share(share) => {
            let mut ranked: Vec<&String> = live.keys().collect();
            ranked.sort_by_key(|id| {
                xxhash_rust::xxh3::xxh3_64(format!("{release}\n{id}").as_bytes())
            });
            let n = ((share * live.len() as f64).ceil() as usize).clamp(1, live.len());
            ranked.into_iter().take(n).cloned().collect()
        }
        Selector::Ids(ids) => {
            if let Some(unknown) = ids.iter().find(|id| !live.contains_key(*id)) {
                return Err(invalid(format!(
                    "no live member `{unknown}` (live: {})",
                    names()
                )));
            }
            let mut ids = ids.clone();
            ids.sort();
            ids.dedup();
            ids
        }
        Selector::Label(k, v) => live
            .iter()
            .filter(|(_, r)| r["labels"][k.as_str()] == v.as_str())
            .map(|(id, _)| id.clone())
            .collect(),
    };
    if chosen.is_empty() {
        return Err(invalid(format!(
            "{selector} chooses no live member (live: {})",
            names()
        )));
    }
    Ok(chosen)
}

impl Etcd {
    /// Starts a gray release of one section: validated like
    /// [`put_section`](Etcd::put_section) (every error at once, nothing written), then the
    /// candidate staged for the canaries `options` chooses and the release record written
    /// in one transaction guarded by the revision validated against; see the
    /// [module docs](crate::fleet#gray-releases). Refused with [`PutError::InFlight`] while another release is.
    ///
    /// The returned [`Started`] holds the judge's key under a 5 s lease kept alive while
    /// it lives: judge with [`judge_release`](Etcd::judge_release) while it does.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use eac_accessor::{EaCAccessor, SourceName};
    /// use eac_accessor::fleet::{ReleaseOptions, SectionPut, Selector};
    /// use eac_accessor::source::{Etcd, EtcdOptions, Format};
    /// # #[derive(serde::Deserialize, schemars::JsonSchema, eac_accessor::EaCSection)]
    /// # struct Limits { max_body_bytes: u64 }
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = Etcd::connect(EtcdOptions::new(["http://127.0.0.1:2379"], "/eac/app/")).await?;
    /// let put = SectionPut::new("limits", Format::Json, r#"{"max_body_bytes": 1024}"#,
    ///     SourceName::Memory("deploy".into()));
    /// let options = ReleaseOptions::new(Selector::Share(0.25)).window(Duration::from_secs(60));
    /// let started = etcd.start_release(EaCAccessor::builder().section::<Limits>(), put, options).await?;
    /// let decision = etcd.judge_release(&started.release, |line| println!("{line}")).await?;
    /// println!("{decision}");
    /// # Ok(()) }
    /// ```
    pub async fn start_release(
        &self,
        sections: Builder,
        put: SectionPut,
        options: ReleaseOptions,
    ) -> Result<Started, PutError> {
        let prepared = self.prepare_put(sections, put).await?;
        let shared = &self.shared;
        let prefix = &shared.options.prefix;
        let now = SystemTime::now();
        let release = release_id(now);
        let live = prepared.member_records();
        let canaries = choose(&release, &options.selector, &live)?;
        let deadline = now + options.window + options.grace;
        let lease = self
            .grant(WRITER_LEASE_SECONDS)
            .await
            .map_err(PutError::Etcd)?;
        let (name, value) = prepared.section();
        let t = options.thresholds;
        let record = json!({
            "id": release,
            "kind": "release",
            "state": CANARY,
            "selector": options.selector.to_string(),
            "canaries": canaries,
            "window_ms": options.window.as_millis() as u64,
            "deadline": unix_f64(deadline),
            "thresholds": {
                "min_requests": t.min_requests,
                "max_error_ratio": t.max_error_ratio,
                "max_error_ratio_vs_stable": t.max_error_ratio_vs_stable,
                "max_latency_ratio": t.max_latency_ratio,
            },
        });
        let ops = vec![
            TxnOp::put(
                format!("{prefix}{STAGED}{release}/{name}"),
                value.to_string(),
                None,
            ),
            TxnOp::put(
                format!("{prefix}{JUDGES}{release}"),
                "writer",
                Some(PutOptions::new().with_lease(lease)),
            ),
        ];
        let written = prepared.commit(record, ops, Vec::new()).await;
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                let _ = shared.client.lease_client().revoke(lease).await;
                return Err(e);
            }
        };
        Ok(Started {
            release: written.release,
            revision: written.revision,
            canaries,
            deadline,
            keeper: Some(tokio::spawn(keep_alive(
                std::sync::Arc::clone(&self.shared),
                lease,
            ))),
        })
    }

    async fn grant(&self, ttl: i64) -> Result<i64, Error> {
        let shared = &self.shared;
        let mut leases = shared.client.lease_client();
        tokio::time::timeout(shared.options.request_timeout, leases.grant(ttl, None))
            .await
            .map_err(|_| shared.io_error("cannot grant a lease", "no answer in time"))?
            .map(|l| l.id())
            .map_err(|e| shared.etcd_error("cannot grant a lease", &e))
    }

    /// Judges `release` until it is decided, by whoever: every half second the members'
    /// figures are read and judged; a breach (or a canary's NACK) aborts it, the window
    /// passed with enough canary requests promotes it, the deadline passed without a
    /// verdict aborts it. `step` is told each step in a line: the canaries serving, the
    /// figures as they come (at most one line every 5 s), the decision.
    ///
    /// Only the holder of the judge's key should call it (the writer that started it, or
    /// the member that took over); a decision is a transaction guarded by the release
    /// record's revision, so two judges never both decide.
    pub async fn judge_release(
        &self,
        release: &str,
        mut step: impl FnMut(String) + Send,
    ) -> Result<Decision, Error> {
        let shared = &self.shared;
        let mut serving = false;
        let mut last_line = tokio::time::Instant::now() - Duration::from_secs(10);
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            let read = shared.read_pages(0).await?;
            let releases = shared.release_records(&read.releases);
            let Some(record) = releases.get(release) else {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "release {release} has no record under `{}{RELEASES}`",
                        shared.options.prefix
                    ),
                ));
            };
            if let Some(decided) = decided(record) {
                step(decided.to_string());
                return Ok(decided);
            }
            let members = super::put::instance_records(shared, &read.instances);
            let revision = record["revision"].as_i64().unwrap_or(0);
            let canaries: Vec<&str> = record["canaries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            // A canary whose health check failed with the candidate: no figures needed.
            if let Some((id, why)) = canaries.iter().find_map(|id| {
                let release_figures = &members.get(*id)?["release"];
                (release_figures["id"] == release)
                    .then(|| release_figures["health_failed"].as_str())
                    .flatten()
                    .map(|why| (*id, why))
            }) {
                let why = format!("canary {id} failed its health check: {why}");
                return self
                    .decide(release, Decision::Aborted(why), &mut step)
                    .await;
            }
            // A canary that rejected the candidate: no figures needed.
            if let Some((id, nack)) = canaries.iter().find_map(|id| {
                let nack = &members.get(*id)?["nack"];
                (nack["revision"].as_i64() >= Some(revision)).then_some((*id, nack))
            }) {
                let errors: Vec<&str> = nack["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["message"].as_str())
                    .collect();
                let why = format!("canary {id} rejected it: {}", errors.join("; "));
                return self
                    .decide(release, Decision::Aborted(why), &mut step)
                    .await;
            }
            if !serving {
                let applied = canaries
                    .iter()
                    .filter(|id| {
                        members
                            .get(**id)
                            .is_some_and(|m| m["applied_revision"].as_i64() >= Some(revision))
                    })
                    .count();
                if applied == canaries.len() {
                    serving = true;
                    step(format!("canaries serving it: {}", canaries.join(", ")));
                }
            }
            let (canary, stable) = figures(release, record, &members);
            let thresholds = thresholds_of(record);
            let now = SystemTime::now();
            let window = Duration::from_millis(record["window_ms"].as_u64().unwrap_or(60_000));
            // A time no clock holds (the start, the window's end or the deadline) is
            // read as long past, as an unreadable deadline always was: the release is
            // decided now, not judged forever nor a panic.
            let started = match record["at"].as_f64() {
                Some(at) => unix_time(at).unwrap_or(SystemTime::UNIX_EPOCH),
                None => now,
            };
            let window_end = started
                .checked_add(window)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let deadline = match record["deadline"].as_f64() {
                Some(deadline) => unix_time(deadline).unwrap_or(SystemTime::UNIX_EPOCH),
                None => window_end
                    .checked_add(DEADLINE_GRACE)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
            };
            let window_passed = now >= window_end;
            match judge(&stable, &canary, &thresholds) {
                Verdict::Breach(why) => {
                    return self
                        .decide(release, Decision::Aborted(why.to_string()), &mut step)
                        .await;
                }
                Verdict::Healthy if window_passed && serving => {
                    let why = compared(&stable, &canary);
                    return self
                        .decide(release, Decision::Promoted(why), &mut step)
                        .await;
                }
                _ if now >= deadline => {
                    let why = format!(
                        "no verdict by the deadline: {} canary requests of the {} needed",
                        canary.requests, thresholds.min_requests
                    );
                    return self
                        .decide(release, Decision::Aborted(why), &mut step)
                        .await;
                }
                _ => {}
            }
            if last_line.elapsed() >= Duration::from_secs(5) {
                last_line = tokio::time::Instant::now();
                let left = window_end.duration_since(now).map_or_else(
                    |_| "window passed".to_owned(),
                    |d| format!("{}s of the window left", d.as_secs()),
                );
                step(format!("judging: {}; {left}", compared(&stable, &canary)));
            }
        }
    }

    /// Decides `release` as `decision` now: promoted (the staged sections written to the
    /// prefix) or aborted (the staged sections dropped), by an operator's hand or a
    /// judge's. In one transaction guarded by the release record as read: a release
    /// decided meanwhile is not decided again (its decision is returned). A promotion
    /// over a section written since the release started is turned into an abort.
    pub async fn decide_release(
        &self,
        release: &str,
        decision: Decision,
    ) -> Result<Decision, Error> {
        self.decide(release, decision, &mut |_| {}).await
    }

    async fn decide(
        &self,
        release: &str,
        decision: Decision,
        step: &mut (dyn FnMut(String) + Send),
    ) -> Result<Decision, Error> {
        let shared = &self.shared;
        let prefix = &shared.options.prefix;
        let record_key = format!("{prefix}{RELEASES}{release}");
        let (staged_start, staged_end) = shared.staged_range(release);
        let mut decision = decision;
        for _ in 0..3 {
            let read = shared.read_pages(0).await?;
            let releases = shared.release_records(&read.releases);
            let Some(record) = releases.get(release) else {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("release {release} has no record under `{prefix}{RELEASES}`"),
                ));
            };
            if let Some(decided) = decided(record) {
                step(decided.to_string());
                return Ok(decided);
            }
            let revision = record["revision"].as_i64().unwrap_or(0);
            let mut kv = shared.client.kv_client();
            let staged = kv
                .get(
                    staged_start.clone(),
                    Some(etcd_client::GetOptions::new().with_range(staged_end.clone())),
                )
                .await
                .map_err(|e| shared.etcd_error("cannot read the staged candidate", &e))?;
            let mut compares = vec![Compare::mod_revision(
                record_key.as_bytes(),
                CompareOp::Equal,
                revision,
            )];
            let mut ops = vec![
                TxnOp::delete(
                    staged_start.clone(),
                    Some(etcd_client::DeleteOptions::new().with_range(staged_end.clone())),
                ),
                TxnOp::delete(format!("{prefix}{JUDGES}{release}"), None),
            ];
            if let Decision::Promoted(_) = decision {
                for kv in staged.kvs() {
                    let name = &kv.key()[staged_start.len()..];
                    let key = [prefix.as_bytes(), name].concat();
                    // Not written since the release started, in any of its forms.
                    for form in std::iter::once(String::new()).chain(EXTENSIONS.map(String::from)) {
                        let k = [key.as_slice(), form.as_bytes()].concat();
                        compares.push(Compare::mod_revision(
                            k.clone(),
                            CompareOp::Less,
                            revision + 1,
                        ));
                        if !form.is_empty() {
                            ops.push(TxnOp::delete(k, None));
                        }
                    }
                    ops.push(TxnOp::put(key, kv.value(), None));
                }
            }
            let (state, why) = match &decision {
                Decision::Promoted(why) => (PROMOTED, why),
                Decision::Aborted(why) => (ABORTED, why),
            };
            let mut updated = record.clone();
            if let Some(map) = updated.as_object_mut() {
                map.remove("revision");
                map.insert("state".into(), state.into());
                map.insert("why".into(), why.clone().into());
                map.insert("decided_at".into(), unix_f64(SystemTime::now()).into());
            }
            ops.push(TxnOp::put(record_key.as_bytes(), updated.to_string(), None));
            let txn = Txn::new().when(compares).and_then(ops);
            let response = tokio::time::timeout(shared.options.request_timeout, kv.txn(txn))
                .await
                .map_err(|_| shared.io_error("the decision was not answered", "no answer in time"))?
                .map_err(|e| shared.etcd_error("cannot write the decision", &e))?;
            if response.succeeded() {
                step(decision.to_string());
                return Ok(decision);
            }
            // The record changed (decided by another), or the section was written since
            // the release started: a promotion would overwrite that write.
            if let Decision::Promoted(_) = decision {
                decision = Decision::Aborted(
                    "the section was written after the release started: not promoted over it"
                        .into(),
                );
            }
        }
        Err(shared.io_error(
            "cannot decide the release",
            "the record kept changing under the decision",
        ))
    }

    /// Takes the judging of `release` over with `lease` when no one holds its judge's
    /// key: whether this instance is its judge now.
    pub(crate) async fn claim_judge(
        &self,
        release: &str,
        lease: i64,
        by: &str,
    ) -> Result<bool, Error> {
        let shared = &self.shared;
        let key = format!("{}{JUDGES}{release}", shared.options.prefix);
        let txn = Txn::new()
            .when([Compare::create_revision(
                key.as_bytes(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                key.as_bytes(),
                by,
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let mut kv = shared.client.kv_client();
        let response = tokio::time::timeout(shared.options.request_timeout, kv.txn(txn))
            .await
            .map_err(|_| shared.io_error("cannot claim the judging", "no answer in time"))?
            .map_err(|e| shared.etcd_error("cannot claim the judging", &e))?;
        Ok(response.succeeded())
    }
}

/// A decided record's decision.
fn decided(record: &Value) -> Option<Decision> {
    let why = record["why"].as_str().unwrap_or_default().to_owned();
    match record["state"].as_str() {
        Some(PROMOTED) => Some(Decision::Promoted(why)),
        Some(ABORTED) => Some(Decision::Aborted(why)),
        _ => None,
    }
}

/// Keeps `lease` alive every second until aborted.
async fn keep_alive(shared: std::sync::Arc<Shared>, lease: i64) {
    let mut leases = shared.client.lease_client();
    let Ok((mut keeper, mut answers)) = leases.keep_alive(lease).await else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if keeper.keep_alive().await.is_err() {
            return;
        }
        if !matches!(answers.message().await, Ok(Some(_))) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ids: &[&str]) -> BTreeMap<String, Value> {
        ids.iter().map(|id| ((*id).to_owned(), json!({}))).collect()
    }

    #[test]
    fn a_share_chooses_the_same_members_for_the_same_release_and_at_least_one() {
        let fleet = live(&["a:1", "b:2", "c:3", "d:4"]);
        let quarter = choose("r1", &Selector::Share(0.25), &fleet).unwrap();
        assert_eq!(quarter.len(), 1);
        assert_eq!(
            quarter,
            choose("r1", &Selector::Share(0.25), &fleet).unwrap()
        );
        assert_eq!(
            choose("r1", &Selector::Share(0.5), &fleet).unwrap().len(),
            2
        );
        assert_eq!(
            choose("r1", &Selector::Share(0.01), &fleet).unwrap().len(),
            1
        );
        assert_eq!(
            choose("r1", &Selector::Share(1.0), &fleet).unwrap().len(),
            4
        );
        // Another release chooses by its own hash: over many, every member is chosen.
        let chosen: std::collections::BTreeSet<String> = (0..64)
            .flat_map(|i| choose(&format!("r{i}"), &Selector::Share(0.25), &fleet).unwrap())
            .collect();
        assert_eq!(chosen.len(), 4);
    }

    #[test]
    fn ids_and_labels_choose_exactly_those_members_and_an_unknown_one_is_named() {
        let mut fleet = live(&["a:1", "b:2", "c:3"]);
        fleet.insert("b:2".into(), json!({"labels": {"zone": "x"}}));
        let ids = Selector::Ids(vec!["c:3".into(), "a:1".into()]);
        assert_eq!(choose("r", &ids, &fleet).unwrap(), ["a:1", "c:3"]);
        let label = Selector::Label("zone".into(), "x".into());
        assert_eq!(choose("r", &label, &fleet).unwrap(), ["b:2"]);
        let error = choose("r", &Selector::Ids(vec!["z:9".into()]), &fleet)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("no live member `z:9` (live: a:1, b:2, c:3)"),
            "{error}"
        );
        let none = Selector::Label("zone".into(), "y".into());
        let error = choose("r", &none, &fleet).unwrap_err().to_string();
        assert!(
            error.contains("label zone=y chooses no live member"),
            "{error}"
        );
        assert!(choose("r", &Selector::Share(0.0), &fleet).is_err());
        assert!(choose("r", &ids, &BTreeMap::new()).is_err());
    }

    #[test]
    fn the_figures_sum_each_role_s_members_for_this_release_only() {
        let canary = RoleStats::default();
        for i in 0..100 {
            canary.record(Duration::from_millis(2), i % 2 == 0);
        }
        let stable = RoleStats::default();
        for _ in 0..300 {
            stable.record(Duration::from_millis(2), false);
        }
        let record = json!({"canaries": ["a"]});
        let members = BTreeMap::from([
            (
                "a".to_owned(),
                json!({"release": member_figures("r", true, &canary)}),
            ),
            (
                "b".to_owned(),
                json!({"release": member_figures("r", false, &stable)}),
            ),
            (
                "c".to_owned(),
                json!({"release": member_figures("r", false, &stable)}),
            ),
            // Another release's figures are not this one's.
            (
                "d".to_owned(),
                json!({"release": member_figures("other", false, &canary)}),
            ),
        ]);
        let (c, s) = figures("r", &record, &members);
        assert_eq!((c.requests, c.errors), (100, 50));
        assert_eq!((s.requests, s.errors), (600, 0));
        let Verdict::Breach(why) = judge(&s, &c, &Thresholds::FLEET) else {
            panic!("not a breach")
        };
        assert_eq!(why.to_string(), "canary: 5xx 50.0% vs 0.0% on 100 requests");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_release_record_with_times_no_clock_holds_is_decided_without_a_panic() {
        const PREFIX: &str = "/eac/release-times/";
        let records = [
            // A start past the clock's range.
            (
                "r1",
                r#"{"kind": "release", "state": "canary", "canaries": [], "at": 1e19}"#.to_owned(),
            ),
            // A start the clock holds, whose window's end it does not.
            (
                "r2",
                format!(
                    r#"{{"kind": "release", "state": "canary", "canaries": [],
                        "at": 9.22e18, "window_ms": {}}}"#,
                    u64::MAX
                ),
            ),
            // A deadline past the clock's range.
            (
                "r3",
                r#"{"kind": "release", "state": "canary", "canaries": [], "deadline": 1e19}"#
                    .to_owned(),
            ),
        ];
        let keyed: Vec<(String, &str)> = records
            .iter()
            .map(|(id, record)| (format!("{RELEASES}{id}"), record.as_str()))
            .collect();
        let (_server, mut client, etcd) = super::super::etcd_holding(PREFIX, &keyed).await;
        for (id, _) in &records {
            let decision = etcd.judge_release(id, |_| {}).await.unwrap();
            let Decision::Aborted(why) = &decision else {
                panic!("{id}: {decision}")
            };
            assert!(why.starts_with("no verdict by the deadline"), "{id}: {why}");
            let stored = client
                .get(format!("{PREFIX}{RELEASES}{id}"), None)
                .await
                .unwrap();
            let stored: Value = serde_json::from_slice(stored.kvs()[0].value()).unwrap();
            assert_eq!(stored["state"], ABORTED, "{id}");
        }
    }
}

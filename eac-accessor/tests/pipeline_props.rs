//! Property tests of the pipeline (issue 32, item 4): random documents and random
//! sequences of operations — publish, reject, rewrite, reload, rollback, preview,
//! subscribe, unsubscribe, read a section watch — against a simple model written from
//! the docs, not from the code.
//!
//! After every operation the accessor and the model must agree on: the version number;
//! the served document, each section and each cell; the history (versions, content
//! hashes, origins, changed sections; the last [`LIMIT`] kept); the rejections kept; the
//! events the operation sent; what each live subscription was told (and that a dropped
//! one is told nothing more); and what each section watch shows.
//!
//! The model: a valid source that differs from the served document publishes the next
//! version; the same content publishes nothing; an invalid one is rejected and changes
//! nothing but the rejections; a rollback to a kept version republishes its document as
//! a new version (nothing when it is what is served), to one not kept is an error kept
//! as a rejection; a preview changes nothing and tells nobody.
//!
//! 256 cases of up to 40 operations by default (one to two seconds in a debug build).
//! The longer run: `PROPTEST_CASES=20000 cargo nextest run -p eac-accessor --test
//! pipeline_props` (BENCHMARKS.md has its figures).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use eac_accessor::source::{Format, Memory};
use eac_accessor::{
    Candidate, ContentHash, EaCAccessor, EaCSection, Event, FieldErrors, Origin, SectionCell,
    SectionWatch, Subscription,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Versions (and rejections) the accessor keeps: small, so that rollbacks reach
/// evicted versions.
const LIMIT: usize = 4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Limits {
    #[schemars(range(min = 1, max = 100))]
    max: u64,
}

impl EaCSection for Limits {
    const PATH: &'static str = "limits";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Greeting {
    #[schemars(length(min = 1))]
    message: String,
}

impl EaCSection for Greeting {
    const PATH: &'static str = "greeting";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Flags {
    shout: bool,
    tags: Vec<String>,
}

impl EaCSection for Flags {
    const PATH: &'static str = "flags";

    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        if self.tags.len() > 3 {
            errors.add("tags", "at most 3");
        }
        errors.into_result()
    }
}

/// The sections in registration order.
const SECTIONS: [&str; 3] = ["limits", "greeting", "flags"];

/// `limits.max` as generated: mostly valid, sometimes out of range or of the wrong type.
#[derive(Debug, Clone)]
enum Max {
    Number(u64),
    Text,
}

/// A generated document, before it is rendered; [`Draft::is_valid`] is the model's
/// validity, written from the sections' rules.
#[derive(Debug, Clone)]
struct Draft {
    max: Max,
    message: String,
    shout: bool,
    tags: Vec<String>,
    /// A top-level key no section owns.
    stray: bool,
}

impl Draft {
    fn is_valid(&self) -> bool {
        matches!(self.max, Max::Number(1..=100))
            && !self.message.is_empty()
            && self.tags.len() <= 3
            && !self.stray
    }

    fn render(&self) -> Value {
        let max = match self.max {
            Max::Number(n) => json!(n),
            Max::Text => json!("ten"),
        };
        let mut doc = json!({
            "limits": {"max": max},
            "greeting": {"message": self.message},
            "flags": {"shout": self.shout, "tags": self.tags},
        });
        if self.stray {
            doc["stray"] = json!(true);
        }
        doc
    }
}

fn draft() -> impl Strategy<Value = Draft> {
    let max = prop_oneof![
        8 => (1..=3u64).prop_map(Max::Number),
        1 => Just(Max::Number(0)),
        1 => (101..=102u64).prop_map(Max::Number),
        1 => Just(Max::Text),
    ];
    let message = prop_oneof![6 => "[ab]{1,2}", 1 => Just(String::new())];
    let tags = prop::collection::vec("[xy]", 0..=4);
    let stray = prop::bool::weighted(0.08);
    (max, message, any::<bool>(), tags, stray).prop_map(|(max, message, shout, tags, stray)| {
        Draft {
            max,
            message,
            shout,
            tags,
            stray,
        }
    })
}

/// One step of a run.
#[derive(Debug, Clone)]
enum Op {
    /// Puts a document in the source and reloads: a publish, or a rejection.
    Publish(Draft),
    /// Puts the served document back in the source and reloads.
    Rewrite,
    /// Reloads the source as it is.
    Reload,
    /// Rolls back to the current version less `back` (`back` 0: the current one; past
    /// version 1: version 0, which never existed).
    Rollback { back: u64 },
    /// Rolls back to the version after the current one, which does not exist yet.
    RollbackAhead,
    /// A dry run of the sources.
    PreviewSources,
    /// A dry run of the sources with a document over them.
    PreviewOverlay(Draft),
    /// A callback on section `n % 3`.
    Subscribe(usize),
    /// Drops live subscription `n % live`.
    Unsubscribe(usize),
    /// Reads the section watch of section `n % 3`.
    Watch(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => draft().prop_map(Op::Publish),
        1 => Just(Op::Rewrite),
        2 => Just(Op::Reload),
        3 => (0..7u64).prop_map(|back| Op::Rollback { back }),
        1 => Just(Op::RollbackAhead),
        1 => Just(Op::PreviewSources),
        1 => draft().prop_map(Op::PreviewOverlay),
        2 => any::<usize>().prop_map(Op::Subscribe),
        1 => any::<usize>().prop_map(Op::Unsubscribe),
        2 => any::<usize>().prop_map(Op::Watch),
    ]
}

/// An event as the model predicts it.
#[derive(Debug, Clone, PartialEq)]
enum Told {
    Published(u64),
    Unchanged(u64),
    Rejected(u64),
}

/// One call of an `on_change` callback: version, old and new section.
type Call = (u64, Value, Value);

/// What one callback recorded.
type Calls = Arc<Mutex<Vec<Call>>>;

/// A subscription in the model: the accessor's handle, what its callback recorded, and
/// what it should have.
struct Sub {
    section: usize,
    handle: Subscription,
    calls: Calls,
    expected: Vec<Call>,
}

/// A kept version in the model.
#[derive(Debug, Clone)]
struct Kept {
    version: u64,
    document: Value,
    origin: Origin,
    changed: Vec<String>,
}

/// What the accessor should be.
struct Model {
    /// What the source holds.
    source: Draft,
    served: Value,
    version: u64,
    history: VecDeque<Kept>,
    /// The version current at each kept rejection.
    rejections: VecDeque<u64>,
    subs: Vec<Sub>,
    /// Dropped subscriptions: what they recorded, frozen at the drop.
    dropped: Vec<(Calls, Vec<Call>)>,
    /// Per section: the version and value its watch shows, and whether it is unseen.
    watched: [(u64, Value, bool); 3],
}

impl Model {
    fn new(source: Draft) -> Model {
        let served = source.render();
        let watched = std::array::from_fn(|i| (1, served[SECTIONS[i]].clone(), false));
        Model {
            history: VecDeque::from([Kept {
                version: 1,
                document: served.clone(),
                origin: Origin::Startup,
                changed: SECTIONS.iter().map(|s| (*s).to_owned()).collect(),
            }]),
            source,
            served,
            version: 1,
            rejections: VecDeque::new(),
            subs: Vec::new(),
            dropped: Vec::new(),
            watched,
        }
    }

    fn reject(&mut self) -> Told {
        self.rejections.push_back(self.version);
        if self.rejections.len() > LIMIT {
            self.rejections.pop_front();
        }
        Told::Rejected(self.version)
    }

    /// `document` (valid) offered for publishing with `origin`.
    fn offer(&mut self, document: Value, origin: Origin) -> Told {
        if document == self.served {
            return Told::Unchanged(self.version);
        }
        self.version += 1;
        let version = self.version;
        let changed: Vec<usize> = (0..3)
            .filter(|&i| document[SECTIONS[i]] != self.served[SECTIONS[i]])
            .collect();
        for sub in &mut self.subs {
            if changed.contains(&sub.section) {
                let s = SECTIONS[sub.section];
                sub.expected
                    .push((version, self.served[s].clone(), document[s].clone()));
            }
        }
        for &i in &changed {
            self.watched[i] = (version, document[SECTIONS[i]].clone(), true);
        }
        self.history.push_back(Kept {
            version,
            document: document.clone(),
            origin,
            changed: changed.iter().map(|&i| SECTIONS[i].to_owned()).collect(),
        });
        if self.history.len() > LIMIT {
            self.history.pop_front();
        }
        self.served = document;
        Told::Published(version)
    }

    fn reload(&mut self) -> Told {
        if self.source.is_valid() {
            self.offer(self.source.render(), Origin::Refresh)
        } else {
            self.reject()
        }
    }

    fn rollback(&mut self, to: u64) -> Told {
        match self.history.iter().find(|k| k.version == to) {
            Some(kept) => self.offer(kept.document.clone(), Origin::Rollback { from: to }),
            None => self.reject(),
        }
    }
}

/// The accessor under test, its source, and the handles the model checks.
struct Subject {
    accessor: EaCAccessor,
    source: Memory,
    cells: (
        SectionCell<Limits>,
        SectionCell<Greeting>,
        SectionCell<Flags>,
    ),
    watches: (
        SectionWatch<Limits>,
        SectionWatch<Greeting>,
        SectionWatch<Flags>,
    ),
    events: tokio::sync::broadcast::Receiver<Event>,
}

impl Subject {
    fn new(initial: &Draft) -> Subject {
        let source = Memory::new("props", Format::Json, initial.render().to_string());
        let accessor = EaCAccessor::builder()
            .section::<Limits>()
            .section::<Greeting>()
            .section::<Flags>()
            .history_limit(LIMIT)
            .source(source.clone())
            .build()
            .expect("the initial document is valid");
        Subject {
            cells: (
                accessor.section_cell(),
                accessor.section_cell(),
                accessor.section_cell(),
            ),
            watches: (
                accessor.subscribe(),
                accessor.subscribe(),
                accessor.subscribe(),
            ),
            events: accessor.events(),
            source,
            accessor,
        }
    }

    fn subscribe(&self, section: usize, calls: Calls) -> Subscription {
        fn record<T: Serialize>(calls: &Mutex<Vec<Call>>, version: u64, old: &T, new: &T) {
            let json = |v: &T| serde_json::to_value(v).expect("a section serializes");
            calls.lock().unwrap().push((version, json(old), json(new)));
        }
        match section {
            0 => self.accessor.on_change::<Limits, _>(move |c| {
                record(&calls, c.version, c.old, c.new);
            }),
            1 => self.accessor.on_change::<Greeting, _>(move |c| {
                record(&calls, c.version, c.old, c.new);
            }),
            _ => self.accessor.on_change::<Flags, _>(move |c| {
                record(&calls, c.version, c.old, c.new);
            }),
        }
    }

    /// Whether the watch of `section` has an unseen change, and then what it shows.
    fn watch(&mut self, section: usize) -> (bool, u64, Value) {
        fn read<T: EaCSection + Serialize>(w: &mut SectionWatch<T>) -> (bool, u64, Value) {
            let changed = w.has_changed();
            let (version, value) = w.latest();
            (changed, version, serde_json::to_value(&*value).unwrap())
        }
        match section {
            0 => read(&mut self.watches.0),
            1 => read(&mut self.watches.1),
            _ => read(&mut self.watches.2),
        }
    }

    /// What the events stream says happened since the last call.
    fn told(&mut self) -> Vec<Told> {
        let mut told = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            told.push(match event {
                Event::Published { version, .. } => Told::Published(version),
                Event::Unchanged { version, .. } => Told::Unchanged(version),
                Event::Rejected { version, .. } => Told::Rejected(version),
                other => panic!("an event the model does not expect: {other:?}"),
            });
        }
        told
    }
}

/// Runs `op` on both, and checks what it returned.
fn step(model: &mut Model, subject: &mut Subject, op: &Op) -> Result<(), TestCaseError> {
    let told = match op {
        Op::Publish(draft) => {
            subject.source.set(draft.render().to_string());
            model.source = draft.clone();
            reload(model, subject)?
        }
        Op::Rewrite => {
            subject.source.set(model.served.to_string());
            model.source = parse_back(&model.served);
            reload(model, subject)?
        }
        Op::Reload => reload(model, subject)?,
        Op::Rollback { .. } | Op::RollbackAhead => {
            let to = match op {
                Op::Rollback { back } => model.version.saturating_sub(*back),
                _ => model.version + 1,
            };
            let result = subject.accessor.rollback_to(to);
            let told = model.rollback(to);
            match (&told, &result) {
                (Told::Published(v), Ok(outcome)) => {
                    prop_assert!(outcome.is_published(), "rollback to v{to}: {outcome:?}");
                    prop_assert_eq!(outcome.version(), *v);
                }
                (Told::Unchanged(v), Ok(outcome)) => {
                    prop_assert!(!outcome.is_published(), "rollback to v{to}: {outcome:?}");
                    prop_assert_eq!(outcome.version(), *v);
                }
                (Told::Rejected(_), Err(_)) => {}
                _ => prop_assert!(false, "rollback to v{to}: {result:?}, model {told:?}"),
            }
            vec![told]
        }
        Op::PreviewSources => {
            let preview = subject.accessor.preview(Candidate::Sources);
            let valid = model.source.is_valid();
            let unchanged = valid && model.source.render() == model.served;
            prop_assert_eq!(preview.version, model.version);
            prop_assert_eq!(preview.errors.is_empty(), valid, "{:?}", preview.errors);
            prop_assert_eq!(preview.unchanged, unchanged);
            prop_assert_eq!(preview.would_publish, valid && !unchanged);
            Vec::new()
        }
        Op::PreviewOverlay(overlay) => {
            let preview = subject
                .accessor
                .preview(Candidate::Overlay(overlay.render()));
            // Every key is in the overlay; only a stray key of the source stays.
            let valid = overlay.is_valid() && !model.source.stray;
            let unchanged = valid && overlay.render() == model.served;
            prop_assert_eq!(preview.version, model.version);
            prop_assert_eq!(preview.errors.is_empty(), valid, "{:?}", preview.errors);
            prop_assert_eq!(preview.unchanged, unchanged);
            prop_assert_eq!(preview.would_publish, valid && !unchanged);
            Vec::new()
        }
        Op::Subscribe(n) => {
            let section = n % 3;
            let calls = Arc::new(Mutex::new(Vec::new()));
            let handle = subject.subscribe(section, Arc::clone(&calls));
            model.subs.push(Sub {
                section,
                handle,
                calls,
                expected: Vec::new(),
            });
            Vec::new()
        }
        Op::Unsubscribe(n) => {
            if !model.subs.is_empty() {
                let sub = model.subs.remove(n % model.subs.len());
                drop(sub.handle);
                model.dropped.push((sub.calls, sub.expected));
            }
            Vec::new()
        }
        Op::Watch(n) => {
            let section = n % 3;
            let (changed, version, value) = subject.watch(section);
            let (v, ref want, unseen) = model.watched[section];
            prop_assert_eq!(changed, unseen, "watch of `{}`", SECTIONS[section]);
            prop_assert_eq!((version, &value), (v, want));
            model.watched[section].2 = false;
            Vec::new()
        }
    };
    prop_assert_eq!(subject.told(), told, "events of {:?}", op);
    agree(model, subject)
}

/// A reload on both; checks what it returned, and gives the model's event.
fn reload(model: &mut Model, subject: &mut Subject) -> Result<Vec<Told>, TestCaseError> {
    let result = subject.accessor.reload(Origin::Refresh);
    let told = model.reload();
    match (&told, &result) {
        (Told::Published(v), Ok(outcome)) => {
            prop_assert!(outcome.is_published(), "{outcome:?}");
            prop_assert_eq!(outcome.version(), *v);
        }
        (Told::Unchanged(v), Ok(outcome)) => {
            prop_assert!(!outcome.is_published(), "{outcome:?}");
            prop_assert_eq!(outcome.version(), *v);
        }
        (Told::Rejected(_), Err(_)) => {}
        _ => prop_assert!(false, "reload: {result:?}, model {told:?}"),
    }
    Ok(vec![told])
}

/// The draft a served (valid) document was rendered from.
fn parse_back(served: &Value) -> Draft {
    Draft {
        max: Max::Number(served["limits"]["max"].as_u64().expect("served max")),
        message: served["greeting"]["message"]
            .as_str()
            .expect("served message")
            .to_owned(),
        shout: served["flags"]["shout"].as_bool().expect("served shout"),
        tags: serde_json::from_value(served["flags"]["tags"].clone()).expect("served tags"),
        stray: false,
    }
}

/// Checks every state the model predicts.
fn agree(model: &Model, subject: &Subject) -> Result<(), TestCaseError> {
    let snapshot = subject.accessor.load();
    prop_assert_eq!(snapshot.version(), model.version, "version");
    prop_assert_eq!(snapshot.document(), &model.served, "served document");
    prop_assert_eq!(snapshot.hash(), ContentHash::of(&model.served));
    let sections = [
        serde_json::to_value(snapshot.section::<Limits>()).unwrap(),
        serde_json::to_value(snapshot.section::<Greeting>()).unwrap(),
        serde_json::to_value(snapshot.section::<Flags>()).unwrap(),
    ];
    let cells = [
        serde_json::to_value(&*subject.cells.0.load()).unwrap(),
        serde_json::to_value(&*subject.cells.1.load()).unwrap(),
        serde_json::to_value(&*subject.cells.2.load()).unwrap(),
    ];
    for i in 0..3 {
        prop_assert_eq!(&sections[i], &model.served[SECTIONS[i]], "section");
        prop_assert_eq!(&cells[i], &model.served[SECTIONS[i]], "cell");
    }
    prop_assert_eq!(
        subject.cells.0.load().version(),
        model.version,
        "cell version"
    );

    let history = subject.accessor.history();
    let got: Vec<_> = history
        .iter()
        .map(|e| (e.version, e.hash, e.origin.clone(), e.changed.clone()))
        .collect();
    let want: Vec<_> = model
        .history
        .iter()
        .map(|k| {
            (
                k.version,
                ContentHash::of(&k.document),
                k.origin.clone(),
                k.changed.clone(),
            )
        })
        .collect();
    prop_assert_eq!(got, want, "history");
    let rejections: Vec<u64> = subject
        .accessor
        .rejections()
        .iter()
        .map(|r| r.version)
        .collect();
    prop_assert_eq!(
        rejections,
        Vec::from(model.rejections.clone()),
        "rejections"
    );
    prop_assert_eq!(subject.accessor.status().version, model.version, "status");

    for sub in &model.subs {
        prop_assert_eq!(
            &*sub.calls.lock().unwrap(),
            &sub.expected,
            "subscription to `{}`",
            SECTIONS[sub.section]
        );
    }
    for (calls, frozen) in &model.dropped {
        prop_assert_eq!(&*calls.lock().unwrap(), frozen, "told after unsubscribing");
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

/// Every random sequence of operations leaves the accessor where the model says:
/// version numbers, served document, sections and cells, history, rejections, events,
/// subscriptions and section watches agree after every operation.
#[test]
fn the_pipeline_agrees_with_its_model_over_random_operations() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        // As the other property tests: a failure prints its shrunk case, no file.
        failure_persistence: None,
        ..Config::default()
    });
    let initial = draft().prop_filter("a valid start", Draft::is_valid);
    let ops = prop::collection::vec(op(), 1..40);
    runner
        .run(&(initial, ops), |(initial, ops)| {
            let mut subject = Subject::new(&initial);
            let mut model = Model::new(initial);
            agree(&model, &subject)?;
            for op in &ops {
                step(&mut model, &mut subject, op)?;
            }
            Ok(())
        })
        .unwrap();
}

//! Resolvers: built once per change of their sections, checked before the swap, kept
//! in the snapshot, drained after.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
use eac_accessor::resolve::{ResolveError, ResolvedKey, Resolver};
use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection, ErrorKind, Origin, SourceName};
use eac_tests::Greeting;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
struct Access {
    prefixes: Vec<String>,
}

/// What a service builds from `[access]`: stamped with the prefixes it was built from.
#[derive(Debug)]
struct Rules {
    prefixes: Vec<String>,
    /// Set when the drain hook has run for this value.
    alive: Arc<AtomicBool>,
}

fn compile(access: &Access) -> Result<Rules, ResolveError> {
    if let Some(i) = access.prefixes.iter().position(|p| !p.starts_with('/')) {
        return Err(
            ResolveError::new(format!("`{}` does not start with `/`", access.prefixes[i]))
                .at_key(format!("access.prefixes.{i}")),
        );
    }
    Ok(Rules {
        prefixes: access.prefixes.clone(),
        alive: Arc::new(AtomicBool::new(true)),
    })
}

fn doc(prefixes: &[&str], message: &str) -> String {
    format!("[access]\nprefixes = {prefixes:?}\n[greeting]\nmessage = \"{message}\"\n")
}

/// An accessor whose `Rules` resolver counts its builds.
fn counted(source: &Memory) -> (EaCAccessor, Arc<AtomicUsize>) {
    let builds = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&builds);
    let accessor = EaCAccessor::builder()
        .section::<Access>()
        .section::<Greeting>()
        .resolver(Resolver::new("access rules", move |access: &Access| {
            counter.fetch_add(1, Ordering::SeqCst);
            compile(access)
        }))
        .source(source.clone())
        .build()
        .unwrap();
    (accessor, builds)
}

#[test]
fn a_resolver_is_built_once_per_change_of_its_sections_and_never_for_others() {
    let source = Memory::new("app.toml", Format::Toml, doc(&["/a"], "hi"));
    let (accessor, builds) = counted(&source);
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    let first = accessor.load_full();

    // An unrelated section changes: a new version, the same value, no build.
    source.set(doc(&["/a"], "hello"));
    assert!(accessor.reload(Origin::Refresh).unwrap().is_published());
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    let second = accessor.load_full();
    assert_eq!(second.version(), 2);
    assert!(std::ptr::eq(
        first.resolved::<Rules>().unwrap(),
        second.resolved::<Rules>().unwrap()
    ));
    assert_eq!(second.resolved_version::<Rules>(), Some(1));

    // Its own section changes: one build, for the new version.
    source.set(doc(&["/a", "/b"], "hello"));
    accessor.reload(Origin::Refresh).unwrap();
    assert_eq!(builds.load(Ordering::SeqCst), 2);
    let third = accessor.load();
    assert_eq!(third.resolved::<Rules>().unwrap().prefixes, ["/a", "/b"]);
    assert_eq!(third.resolved_version::<Rules>(), Some(3));

    // Nothing changed: nothing built.
    accessor.reload(Origin::Refresh).unwrap();
    assert_eq!(builds.load(Ordering::SeqCst), 2);

    let status = accessor.status();
    assert_eq!(status.resolvers.len(), 1);
    assert_eq!(status.resolvers[0].name, "access rules");
    assert_eq!(status.resolvers[0].reads, ["access"]);
    assert_eq!(status.resolvers[0].built_at_version, 3);
}

#[test]
fn a_failing_build_rejects_the_candidate_naming_resolver_key_and_source() {
    let source = Memory::new("app.toml", Format::Toml, doc(&["/a"], "hi"));
    let (accessor, _) = counted(&source);
    let before = accessor.load_full();

    source.set(doc(&["/a", "b"], "changed too"));
    let errors = accessor.reload(Origin::Refresh).unwrap_err();
    let error = &errors.as_slice()[0];
    assert_eq!(error.kind(), ErrorKind::Resolve);
    assert_eq!(error.key(), Some("access.prefixes.1"));
    assert_eq!(error.source(), Some(&SourceName::Memory("app.toml".into())));
    assert_eq!(
        error.message(),
        "resolver `access rules` (reads `access`) could not build: `b` does not start with `/`"
    );

    // The last good snapshot, its sections and its value stay.
    let now = accessor.load();
    assert_eq!(now.version(), 1);
    assert_eq!(now.section::<Greeting>().message, "hi");
    assert!(std::ptr::eq(
        now.resolved::<Rules>().unwrap(),
        before.resolved::<Rules>().unwrap()
    ));
    let rejected = accessor.status().last_rejection.unwrap();
    assert_eq!(rejected.errors[0].kind(), ErrorKind::Resolve);

    // A preview says the same, publishing nothing.
    let preview = accessor.preview(eac_accessor::Candidate::Sources);
    assert!(!preview.would_publish);
    assert_eq!(preview.errors[0].key(), Some("access.prefixes.1"));
}

/// A rejection reports every error at once: a section that does not build does not
/// hide the errors of a resolver whose sections did, and a resolver reports each bad
/// value it found. A resolver reading the section that failed does not run.
#[test]
fn a_rejection_reports_the_schema_errors_and_every_resolver_error_at_once() {
    let bad_prefixes = |access: &Access| {
        let errors = (access.prefixes.iter().enumerate())
            .filter(|(_, p)| !p.starts_with('/'))
            .map(|(i, p)| {
                ResolveError::new(format!("`{p}` does not start with `/`"))
                    .at_key(format!("access.prefixes.{i}"))
            })
            .collect();
        ResolveError::from_vec(errors).map_or(
            Ok(Rules {
                prefixes: access.prefixes.clone(),
                alive: Arc::new(AtomicBool::new(true)),
            }),
            Err,
        )
    };
    let greeted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&greeted);
    let source = Memory::new("app.toml", Format::Toml, doc(&["/a"], "hi"));
    let accessor = EaCAccessor::builder()
        .section::<Access>()
        .section::<Greeting>()
        .resolver(Resolver::new("access rules", bad_prefixes))
        .resolver(Resolver::new("greeting", move |g: &Greeting| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(g.message.len())
        }))
        .source(source.clone())
        .build()
        .unwrap();
    assert_eq!(greeted.load(Ordering::SeqCst), 1);

    // `greeting.message` must not be empty (the schema); two prefixes are bad.
    source.set(doc(&["a", "/ok", "c"], ""));
    let errors = accessor.reload(Origin::Refresh).unwrap_err();
    let found: Vec<(ErrorKind, Option<&str>)> =
        errors.iter().map(|e| (e.kind(), e.key())).collect();
    assert_eq!(
        found,
        [
            (ErrorKind::Schema, Some("greeting.message")),
            (ErrorKind::Resolve, Some("access.prefixes.0")),
            (ErrorKind::Resolve, Some("access.prefixes.2")),
        ],
        "{errors}"
    );
    assert_eq!(
        greeted.load(Ordering::SeqCst),
        1,
        "ran on a greeting that failed"
    );
    assert_eq!(accessor.load().version(), 1);

    // A preview says the same.
    let preview = accessor.preview(eac_accessor::Candidate::Sources);
    assert_eq!(preview.errors.len(), 3, "{:?}", preview.errors);
}

#[test]
fn a_resolver_reading_an_unregistered_section_or_a_second_resolver_of_one_type_fail_the_build() {
    let errors = EaCAccessor::builder()
        .section::<Greeting>()
        .resolver(Resolver::new("access rules", compile))
        .resolver(Resolver::new("again", compile))
        .source(Memory::new("app.toml", Format::Toml, doc(&["/a"], "hi")))
        .allow_unknown_keys(true)
        .build()
        .unwrap_err();
    let messages: Vec<&str> = errors.iter().map(|e| e.message()).collect();
    assert!(
        messages[0]
            .contains("resolver `access rules` reads section `access`, which is not registered"),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("resolvers `access rules` and `again` build the same type")),
        "{messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_resolver_past_the_build_timeout_publishes_nothing() {
    #[derive(Deserialize, JsonSchema, EaCSection)]
    struct Pool {
        connect_ms: u64,
    }
    struct Connected(u64);

    let source = Memory::new("pool.toml", Format::Toml, "[pool]\nconnect_ms = 0\n");
    let accessor = EaCAccessor::builder()
        .section::<Pool>()
        .resolver(Resolver::new_async("pool", |pool: &Pool| {
            let wait = pool.connect_ms;
            async move {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                Ok::<_, ResolveError>(Connected(wait))
            }
        }))
        .source(source.clone())
        .build()
        .unwrap();
    assert_eq!(accessor.load().resolved::<Connected>().unwrap().0, 0);

    let mut config = ReloadConfig::default();
    config.cooldown = Duration::ZERO;
    config.build_timeout = Duration::from_millis(100);
    let reloads = ReloadCoordinator::new(accessor.clone(), config);

    // Connecting takes 2 s: the build timeout gives up, and nothing is published.
    source.set("[pool]\nconnect_ms = 2000\n");
    let error = reloads.refresh(Origin::Refresh, true).await.unwrap_err();
    assert_eq!(error.as_slice()[0].kind(), ErrorKind::Timeout);
    assert_eq!(accessor.load().version(), 1);
    assert_eq!(accessor.load().resolved::<Connected>().unwrap().0, 0);

    // A fast connect publishes, with the value built by the async resolver.
    source.set("[pool]\nconnect_ms = 5\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let published = loop {
        // The abandoned run may still be reading; its retry or ours publishes
        // (when its retry did, ours finds the content unchanged at that version).
        match reloads.refresh(Origin::Refresh, true).await {
            Ok(outcome) if outcome.snapshot().version() > 1 => break outcome,
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "never published: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(published.snapshot().resolved::<Connected>().unwrap().0, 5);
}

#[test]
fn config_and_resolved_value_always_come_from_one_version_under_a_continuous_writer() {
    let source = Memory::new("app.toml", Format::Toml, doc(&["/0"], "0"));
    let (accessor, _) = counted(&source);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (accessor, source, stop) = (accessor.clone(), source.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                source.set(doc(&[&format!("/{n}")], &n.to_string()));
                accessor.reload(Origin::Refresh).unwrap();
            }
            n
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let accessor = accessor.clone();
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    let snapshot = accessor.load_full();
                    let message = snapshot.section::<Greeting>().message.clone();
                    std::thread::yield_now(); // a request's await
                    let rules = snapshot.resolved::<Rules>().unwrap();
                    assert_eq!(rules.prefixes, [format!("/{message}")]);
                }
            })
        })
        .collect();
    for reader in readers {
        reader.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 1, "the writer published");
}

#[tokio::test(start_paused = true)]
async fn the_drain_hook_runs_once_per_replaced_value_after_the_window_and_after_the_last_holder() {
    let drained: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let log = Arc::clone(&drained);
    let source = Memory::new("app.toml", Format::Toml, doc(&["/1"], "hi"));
    let accessor = EaCAccessor::builder()
        .section::<Access>()
        .section::<Greeting>()
        .drain_window(Duration::from_secs(10))
        .resolver(
            Resolver::new("access rules", compile).on_drain(move |rules: Rules| {
                let log = Arc::clone(&log);
                async move {
                    rules.alive.store(false, Ordering::SeqCst);
                    log.lock().unwrap().push(rules.prefixes);
                }
            }),
        )
        .source(source.clone())
        .build()
        .unwrap();
    let drained_now = || drained.lock().unwrap().clone();

    // A request pins version 1 and holds it.
    let request = accessor.load_full();
    let first_alive = Arc::clone(&request.resolved::<Rules>().unwrap().alive);
    source.set(doc(&["/2"], "hi"));
    accessor.reload(Origin::Refresh).unwrap();
    assert_eq!(accessor.status().resolvers[0].replaced_alive, 1);

    // The window passes while the request still holds the old value: no drain.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(drained_now().is_empty());
    assert!(first_alive.load(Ordering::SeqCst));

    // The request ends after the window: the hook runs at once, once.
    drop(request);
    settle().await;
    assert_eq!(drained_now(), [vec!["/1".to_owned()]]);
    assert!(!first_alive.load(Ordering::SeqCst));
    assert_eq!(accessor.status().resolvers[0].replaced_alive, 0);

    // Replaced with no holder: the hook waits out the window, then runs once.
    source.set(doc(&["/3"], "hi"));
    accessor.reload(Origin::Refresh).unwrap();
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(drained_now().len(), 1, "not before the window");
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(drained_now()[1], ["/2"]);

    // An unrelated change replaces nothing.
    source.set(doc(&["/3"], "hello"));
    accessor.reload(Origin::Refresh).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    settle().await;
    assert_eq!(drained_now().len(), 2);
}

/// Lets spawned drain tasks run.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[test]
fn replaced_values_are_freed_when_their_last_snapshot_goes() {
    let source = Memory::new("app.toml", Format::Toml, doc(&["/1"], "hi"));
    let (accessor, _) = counted(&source);
    let held = accessor.load_full();
    let weak: Weak<AtomicBool> = Arc::downgrade(&held.resolved::<Rules>().unwrap().alive);
    for n in 2..50 {
        source.set(doc(&[&format!("/{n}")], "hi"));
        accessor.reload(Origin::Refresh).unwrap();
    }
    assert!(weak.upgrade().is_some(), "a request still holds version 1");
    drop(held);
    assert!(weak.upgrade().is_none(), "version 1's value was freed");
    assert_eq!(accessor.status().resolvers[0].replaced_alive, 0);
}

/// What a second resolver builds from `[greeting]`.
struct Shout(String);

#[test]
fn a_resolved_key_finds_its_value_among_several_in_any_registration_order() {
    static RULES: ResolvedKey<Rules> = ResolvedKey::new();
    static SHOUT: ResolvedKey<Shout> = ResolvedKey::new();
    let build = |rules_first: bool| {
        let rules = Resolver::new("access rules", compile);
        let shout = Resolver::new("shout", |g: &Greeting| Ok(Shout(g.message.to_uppercase())));
        let builder = EaCAccessor::builder()
            .section::<Access>()
            .section::<Greeting>()
            .source(Memory::new("app", Format::Toml, doc(&["/api"], "hi")));
        let builder = if rules_first {
            builder.resolver(rules).resolver(shout)
        } else {
            builder.resolver(shout).resolver(rules)
        };
        builder.build().unwrap()
    };
    // Two accessors with the values in opposite places share the keys: each read is
    // right, whichever accessor the keys last guessed for.
    let (a, b) = (build(true), build(false));
    for _ in 0..3 {
        for accessor in [&a, &b] {
            let snapshot = accessor.load();
            assert_eq!(snapshot.resolved_by(&RULES).unwrap().prefixes, ["/api"]);
            assert_eq!(snapshot.resolved_by(&SHOUT).unwrap().0, "HI");
            assert_eq!(
                snapshot.resolved_by(&RULES).map(|r| &r.prefixes),
                snapshot.resolved::<Rules>().map(|r| &r.prefixes)
            );
        }
    }
    // A key for a type no resolver builds finds nothing.
    static NONE: ResolvedKey<String> = ResolvedKey::new();
    assert!(a.load().resolved_by(&NONE).is_none());
}

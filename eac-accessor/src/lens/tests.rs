use super::field_watch::{Latest, offer};
use super::*;
use crate::Origin;
use crate::source::{Format, Memory};
use crate::subscribe::Closed;
use tokio::sync::watch;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct Limits {
    max_body_bytes: u64,
    request_timeout_ms: u64,
}

impl EaCSection for Limits {
    const PATH: &'static str = "server.limits";
}

fn doc(max: u64, timeout: u64) -> String {
    format!("[server.limits]\nmax_body_bytes = {max}\nrequest_timeout_ms = {timeout}\n")
}

fn accessor() -> (EaCAccessor, Memory) {
    let source = Memory::new("test", Format::Toml, doc(1, 10));
    let accessor = EaCAccessor::builder()
        .section::<Limits>()
        .source(source.clone())
        .build()
        .expect("valid");
    (accessor, source)
}

fn timeout() -> impl Lens<Root = Limits, Output = u64> + fmt::Debug {
    Root::<Limits>::new().map("request_timeout_ms", |l: &Limits| &l.request_timeout_ms)
}

#[test]
fn map_reads_and_names_the_field() {
    let (accessor, _) = accessor();
    let snapshot = accessor.load();
    assert_eq!(*timeout().get(&snapshot), 10);
    assert_eq!(timeout().try_get(&snapshot), Some(&10));
    assert_eq!(*timeout().load(&accessor), 10);
    assert_eq!(timeout().key_path(), "server.limits.request_timeout_ms");
    assert_eq!(Root::<Limits>::new().key_path(), "server.limits");
    assert_eq!(Root::<Limits>::new().get(&snapshot).max_body_bytes, 1);
    assert_eq!(
        format!("{:?}", timeout()),
        r#"Lens("server.limits.request_timeout_ms")"#
    );
}

#[test]
fn constant_ignores_the_snapshot() {
    let (accessor, _) = accessor();
    let fixed = Constant::<Limits, u64>::new(&7);
    assert_eq!(*fixed.get(&accessor.load()), 7);
    assert_eq!(fixed.key_path(), "(constant)");
}

#[test]
fn field_watch_skips_sibling_changes_and_sees_the_latest() {
    let (accessor, source) = accessor();
    let mut watch = accessor.subscribe_field(timeout());
    assert_eq!(watch.key_path(), "server.limits.request_timeout_ms");

    source.set(doc(2, 10));
    accessor.reload(Origin::Refresh).expect("published");
    assert!(!watch.has_changed());

    source.set(doc(2, 20));
    accessor.reload(Origin::Refresh).expect("published");
    source.set(doc(2, 30));
    accessor.reload(Origin::Refresh).expect("published");
    assert!(watch.has_changed());
    let update = watch.take_update().expect("a change");
    assert_eq!((update.old, update.new, update.version), (10, 30, 4));
    assert!(!watch.has_changed());
}

#[test]
fn a_change_back_before_the_receiver_looks_is_no_change() {
    let (accessor, source) = accessor();
    let mut watch = accessor.subscribe_field(timeout());
    source.set(doc(1, 20));
    accessor.reload(Origin::Refresh).expect("published");
    source.set(doc(1, 10));
    accessor.reload(Origin::Refresh).expect("published");
    assert!(watch.take_update().is_none());
}

#[test]
fn dropping_the_accessor_closes_the_watch() {
    let (accessor, _) = accessor();
    let mut watch = accessor.subscribe_field(timeout());
    drop(accessor);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    assert_eq!(runtime.block_on(watch.changed()), Err(Closed));
}

#[test]
fn offer_keeps_versions_in_order() {
    let sender = watch::Sender::new(Latest {
        checked: 1,
        version: 1,
        value: 'a',
    });
    offer(&sender, 3, &'c');
    offer(&sender, 2, &'b'); // late: a newer version was already seen
    let slot = sender.borrow();
    assert_eq!((slot.checked, slot.version, slot.value), (3, 3, 'c'));
}

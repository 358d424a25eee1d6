//! Field-level change subscriptions: [`FieldWatch`] and [`EaCAccessor::on_field_change`].

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

use super::Lens;
use crate::__private::Redacted;
use crate::accessor::EaCAccessor;
use crate::subscribe::{Closed, Subscription};
use crate::validate::touches_secret;

/// One change of the value a lens reads, given to an
/// [`on_field_change`](EaCAccessor::on_field_change) callback.
///
/// Its `Debug` shows `[redacted]` for the values of a secret field (or of anything that
/// holds one).
#[non_exhaustive]
pub struct FieldChange<'a, T: ?Sized> {
    /// The value before.
    pub old: &'a T,
    /// The value now.
    pub new: &'a T,
    /// The version that was just published.
    pub version: u64,
    /// The value's dotted key.
    pub key_path: &'a str,
    secret: bool,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for FieldChange<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("FieldChange");
        s.field("key_path", &self.key_path);
        debug_values(&mut s, self.secret, &self.old, &self.new);
        s.field("version", &self.version).finish()
    }
}

/// A change seen by a [`FieldWatch`]: the value it saw last, and the new one.
///
/// Its `Debug` shows `[redacted]` for the values of a secret field (or of anything that
/// holds one).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldUpdate<T> {
    /// The value this receiver saw before.
    pub old: T,
    /// The value now.
    pub new: T,
    /// The version that published the new value.
    pub version: u64,
    secret: bool,
}

impl<T: fmt::Debug> fmt::Debug for FieldUpdate<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("FieldUpdate");
        debug_values(&mut s, self.secret, &self.old, &self.new);
        s.field("version", &self.version).finish()
    }
}

fn debug_values<T: ?Sized + fmt::Debug>(
    s: &mut fmt::DebugStruct<'_, '_>,
    secret: bool,
    old: &T,
    new: &T,
) {
    if secret {
        s.field("old", &Redacted).field("new", &Redacted);
    } else {
        s.field("old", &old).field("new", &new);
    }
}

/// A receiver that wakes when the value one lens reads changes; see
/// [`EaCAccessor::subscribe_field`].
///
/// Like `tokio::sync::watch`, it holds the latest value: a receiver that misses several
/// changes sees the newest one. It never wakes for a publish that left this value as
/// it was (a sibling changed), nor for a rejected or unchanged candidate. Dropping it
/// unregisters it; clones share the registration.
pub struct FieldWatch<T> {
    rx: watch::Receiver<Latest<T>>,
    seen: T,
    key_path: Arc<str>,
    secret: bool,
    _subscription: Arc<Subscription>,
}

/// The latest value, the version that set it, and the last version looked at.
pub(super) struct Latest<T> {
    pub(super) checked: u64,
    pub(super) version: u64,
    pub(super) value: T,
}

impl<T: Clone + PartialEq> FieldWatch<T> {
    /// Waits until the value differs from the one this receiver saw last, and returns
    /// both.
    ///
    /// Fails only when the accessor has been dropped.
    pub async fn changed(&mut self) -> Result<FieldUpdate<T>, Closed> {
        loop {
            if let Some(update) = self.take_update() {
                return Ok(update);
            }
            self.rx.changed().await.map_err(|_| Closed)?;
        }
    }

    /// Whether the value differs from the one this receiver saw last.
    pub fn has_changed(&self) -> bool {
        self.rx.borrow().value != self.seen
    }

    /// The latest value and the version that published it; marks it seen.
    pub fn latest(&mut self) -> (u64, T) {
        let (version, value) = {
            let slot = self.rx.borrow_and_update();
            (slot.version, slot.value.clone())
        };
        self.seen = value.clone();
        (version, value)
    }

    /// The dotted key of the value watched.
    pub fn key_path(&self) -> &str {
        &self.key_path
    }

    pub(super) fn take_update(&mut self) -> Option<FieldUpdate<T>> {
        let (version, new) = {
            let slot = self.rx.borrow_and_update();
            if slot.value == self.seen {
                return None;
            }
            (slot.version, slot.value.clone())
        };
        let old = std::mem::replace(&mut self.seen, new.clone());
        Some(FieldUpdate {
            old,
            new,
            version,
            secret: self.secret,
        })
    }
}

impl<T: Clone> Clone for FieldWatch<T> {
    fn clone(&self) -> Self {
        FieldWatch {
            rx: self.rx.clone(),
            seen: self.seen.clone(),
            key_path: Arc::clone(&self.key_path),
            secret: self.secret,
            _subscription: Arc::clone(&self._subscription),
        }
    }
}

impl<T> fmt::Debug for FieldWatch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the value: it may be a secret.
        f.debug_struct("FieldWatch")
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

/// Offers the value `version` has at the watched key; keeps it if it is newer and differs.
pub(super) fn offer<T: Clone + PartialEq>(
    sender: &watch::Sender<Latest<T>>,
    version: u64,
    value: &T,
) {
    sender.send_if_modified(|slot| {
        if version <= slot.checked {
            return false;
        }
        slot.checked = version;
        if slot.value == *value {
            return false;
        }
        slot.value = value.clone();
        slot.version = version;
        true
    });
}

/// Field-level subscriptions.
impl EaCAccessor {
    /// A receiver that wakes when the value `lens` reads changes, and not when anything
    /// else in its section does.
    ///
    /// ```
    /// # use eac_accessor::source::{Format, Memory};
    /// # use eac_accessor::{EaCAccessor, EaCSection, Origin};
    /// # #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
    /// # struct Greeting { message: String, shout: bool }
    /// # let doc = Memory::new("app", Format::Toml, "[greeting]\nmessage = \"hi\"\nshout = false\n");
    /// # let accessor = EaCAccessor::builder().section::<Greeting>().source(doc.clone()).build()?;
    /// let mut message = accessor.subscribe_field(Greeting::lens().message());
    /// assert_eq!(message.latest(), (1, "hi".to_owned()));
    ///
    /// doc.set("[greeting]\nmessage = \"hi\"\nshout = true\n");
    /// accessor.reload(Origin::Refresh)?;
    /// assert!(!message.has_changed()); // only `shout` changed
    /// # Ok::<(), eac_accessor::Errors>(())
    /// ```
    ///
    /// # Panics
    ///
    /// When the lens's root section was not registered on the builder.
    pub fn subscribe_field<L>(&self, lens: L) -> FieldWatch<L::Output>
    where
        L: Lens,
        L::Output: Clone + PartialEq + Send + Sync + 'static,
    {
        let first = self.load_full();
        let value = lens.get(&first).clone();
        let sender = Arc::new(watch::Sender::new(Latest {
            checked: first.version(),
            version: first.version(),
            value: value.clone(),
        }));
        let rx = sender.subscribe();
        let key_path: Arc<str> = lens.key_path().into();
        let subscription = {
            let (sender, lens) = (Arc::clone(&sender), lens.clone());
            self.on_change::<L::Root, _>(move |change| {
                offer(&sender, change.version, lens.focus(change.new));
            })
        };
        // A publish between the first load and the registration is seen here; `offer`
        // ignores it if the callback already delivered that version or a newer one.
        let now = self.load();
        offer(&sender, now.version(), lens.get(&now));
        // From here only the callback holds the sender: dropping the accessor closes it.
        drop(sender);
        FieldWatch {
            rx,
            seen: value,
            secret: touches_secret(self.secret_paths(), &key_path),
            key_path,
            _subscription: Arc::new(subscription),
        }
    }

    /// Calls `callback` with the old and new value each time the value `lens` reads
    /// changes, in version order, on the thread that publishes; keep it short.
    ///
    /// The callback stays registered while the returned [`Subscription`] lives.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use eac_accessor::source::{Format, Memory};
    /// # use eac_accessor::{EaCAccessor, EaCSection, Origin};
    /// # #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
    /// # struct Limits { max_body_bytes: u64 }
    /// # let doc = Memory::new("app", Format::Toml, "[limits]\nmax_body_bytes = 1\n");
    /// # let accessor = EaCAccessor::builder().section::<Limits>().source(doc.clone()).build()?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let _subscription = accessor.on_field_change(Limits::lens().max_body_bytes(), {
    ///     let seen = Arc::clone(&seen);
    ///     move |change| seen.lock().unwrap().push((*change.old, *change.new, change.version))
    /// });
    ///
    /// doc.set("[limits]\nmax_body_bytes = 2\n");
    /// accessor.reload(Origin::Refresh)?;
    /// assert_eq!(*seen.lock().unwrap(), [(1, 2, 2)]);
    /// # Ok::<(), eac_accessor::Errors>(())
    /// ```
    ///
    /// # Panics
    ///
    /// When the lens's root section was not registered on the builder.
    pub fn on_field_change<L, F>(&self, lens: L, callback: F) -> Subscription
    where
        L: Lens,
        L::Output: PartialEq,
        F: Fn(FieldChange<'_, L::Output>) + Send + Sync + 'static,
    {
        let key_path = lens.key_path();
        let secret = touches_secret(self.secret_paths(), &key_path);
        self.on_change::<L::Root, _>(move |change| {
            let (old, new) = (lens.focus(change.old), lens.focus(change.new));
            if old != new {
                callback(FieldChange {
                    old,
                    new,
                    version: change.version,
                    key_path: &key_path,
                    secret,
                });
            }
        })
    }
}

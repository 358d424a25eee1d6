//! Typed lenses: one value inside a section, read from a snapshot without cloning, with
//! its key path, and with subscriptions that fire only when that value changes.
//!
//! `#[derive(EaCSection)]` gives each section `Type::lens()`, with one method per field;
//! a field whose type also derives `EaCSection` gives a lens with that type's methods, so
//! lenses compose through nested structs:
//!
//! ```
//! use eac_accessor::lens::Lens;
//! use eac_accessor::source::{Format, Memory};
//! use eac_accessor::{EaCAccessor, EaCSection};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize, JsonSchema, EaCSection)]
//! #[eac(path = "server")]
//! struct Server {
//!     http: Http,
//! }
//!
//! #[derive(Deserialize, JsonSchema, EaCSection)]
//! struct Http {
//!     port: u16,
//!     host: String,
//! }
//!
//! let doc = Memory::new("app", Format::Toml, "[server.http]\nport = 8080\nhost = \"::\"\n");
//! let accessor = EaCAccessor::builder().section::<Server>().source(doc).build()?;
//!
//! let port = Server::lens().http().port();
//! assert_eq!(port.key_path(), "server.http.port");
//!
//! let snapshot = accessor.load();
//! assert_eq!(*port.get(&snapshot), 8080);                // borrowed from the snapshot
//! assert_eq!(Server::lens().http().host().get(&snapshot), "::");
//! # Ok::<(), eac_accessor::Errors>(())
//! ```
//!
//! Read every value a unit of work needs from one snapshot, as with
//! [`Snapshot::section`]: [`Lens::get`] takes the snapshot for that reason.
//! [`Lens::load`] is the short form for a single read, like arc-swap's `Access::load`.
//!
//! # Being told when a value changes
//!
//! [`EaCAccessor::subscribe_field`] gives a [`FieldWatch`], a receiver that wakes only
//! when the value the lens reads changes, not when a sibling field does, with the old
//! and the new value; [`EaCAccessor::on_field_change`] is the callback form.
//!
//! ```
//! # use eac_accessor::lens::Lens;
//! # use eac_accessor::source::{Format, Memory};
//! # use eac_accessor::{EaCAccessor, EaCSection, Origin};
//! # #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
//! # struct Limits { max_body_bytes: u64, request_timeout_ms: u64 }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let doc = Memory::new("app", Format::Toml, "[limits]\nmax_body_bytes = 1024\nrequest_timeout_ms = 500\n");
//! let accessor = EaCAccessor::builder().section::<Limits>().source(doc.clone()).build()?;
//! let mut timeout = accessor.subscribe_field(Limits::lens().request_timeout_ms());
//!
//! doc.set("[limits]\nmax_body_bytes = 2048\nrequest_timeout_ms = 500\n");
//! accessor.reload(Origin::Refresh)?;                      // a sibling changed: no wake-up
//! assert!(!timeout.has_changed());
//!
//! doc.set("[limits]\nmax_body_bytes = 2048\nrequest_timeout_ms = 900\n");
//! accessor.reload(Origin::Refresh)?;
//! let update = timeout.changed().await?;
//! assert_eq!((update.old, update.new, update.version), (500, 900, 3));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
//!
//! # Without the derive
//!
//! [`Root`] is the lens on a whole section and [`Lens::map`] projects it, so a section
//! implemented by hand has lenses too:
//!
//! ```
//! use eac_accessor::EaCSection;
//! use eac_accessor::lens::{Lens, Root};
//! # #[derive(serde::Deserialize, schemars::JsonSchema)]
//! # struct Limits { max_body_bytes: u64 }
//! # impl EaCSection for Limits { const PATH: &'static str = "limits"; }
//!
//! let max_body = Root::<Limits>::new().map("max_body_bytes", |l: &Limits| &l.max_body_bytes);
//! assert_eq!(max_body.key_path(), "limits.max_body_bytes");
//! ```
//!
//! # How the derive's lenses compose
//!
//! A field's lens is a [`Field`]; when the field's type derives `EaCSection`, `Field`
//! dereferences to that type's generated lens (which has one method per field), so
//! `.http().port()` resolves through `Deref`. Generated lenses are zero-sized: the key
//! and the way to reach each field live in types, not in values. The lens type itself
//! is generated inside the derive's `const _` block; to hold a lens, write a generic
//! `L: Lens<Output = u16>` (or `impl Lens<...>`).
//!
//! A lens method has the visibility of its field: a private field has a lens only
//! inside its module.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use crate::__private::{FieldMarker, HasLenses};
use crate::accessor::EaCAccessor;
use crate::error::join_key;
use crate::section::EaCSection;
use crate::snapshot::Snapshot;

/// A path from a section to one value inside it: reads the value from a snapshot and
/// knows its dotted key.
///
/// Implemented by [`Root`] (the whole section), [`Field`] (what the derive's lens methods
/// return), [`Map`] (any projection) and [`Constant`] (a fixed value, for tests).
/// Code that reads one setting per request takes an `L: Lens<Output = T>`.
///
/// ```
/// use eac_accessor::lens::Lens;
/// use eac_accessor::Snapshot;
///
/// /// A middleware-like reader: any lens that yields a timeout in milliseconds.
/// fn timeout_ms<L: Lens<Output = u64>>(lens: &L, snapshot: &Snapshot) -> u64 {
///     *lens.get(snapshot)
/// }
/// ```
pub trait Lens: Clone + Send + Sync + 'static {
    /// The section the lens starts from.
    type Root: EaCSection;
    /// The value the lens reads.
    type Output: ?Sized;

    /// The value's full dotted key in the document: `"server.http.port"`.
    fn key_path(&self) -> String;

    /// The value inside `root`, a value of the section.
    fn focus<'r>(&self, root: &'r Self::Root) -> &'r Self::Output;

    /// The value in `snapshot`, borrowed from it: no clone, no parse, no lock.
    ///
    /// # Panics
    ///
    /// When the root section was not registered on the builder, like
    /// [`Snapshot::section`]; [`try_get`](Lens::try_get) checks instead.
    fn get<'s>(&self, snapshot: &'s Snapshot) -> &'s Self::Output {
        self.focus(snapshot.section::<Self::Root>())
    }

    /// The value in `snapshot`, or `None` when the root section is not registered.
    fn try_get<'s>(&self, snapshot: &'s Snapshot) -> Option<&'s Self::Output> {
        snapshot.get::<Self::Root>().map(|root| self.focus(root))
    }

    /// The value in the accessor's current snapshot, behind a guard that keeps that
    /// snapshot alive: one atomic load, no lock.
    ///
    /// For several values, load the snapshot once and [`get`](Lens::get) each from it.
    ///
    /// # Panics
    ///
    /// On dereference, when the root section was not registered on the builder.
    fn load(&self, accessor: &EaCAccessor) -> LensGuard<Self>
    where
        Self: Sized,
    {
        LensGuard::new(accessor.load(), self.clone())
    }

    /// A lens on a part of this lens's value, at `key` below it (`""` for none).
    ///
    /// ```
    /// # use eac_accessor::{EaCSection, lens::{Lens, Root}};
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// # struct Greeting { message: String }
    /// # impl EaCSection for Greeting { const PATH: &'static str = "greeting"; }
    /// let message = Root::<Greeting>::new().map("message", |g: &Greeting| g.message.as_str());
    /// assert_eq!(message.key_path(), "greeting.message");
    /// ```
    fn map<U, F>(self, key: &'static str, f: F) -> Map<Self, F, U>
    where
        Self: Sized,
        U: ?Sized + 'static,
        F: Fn(&Self::Output) -> &U + Clone + Send + Sync + 'static,
    {
        Map {
            lens: self,
            key,
            f,
            _output: PhantomData,
        }
    }
}

/// The lens on a whole section: its value is the section, its key path the section's.
///
/// `Type::lens()` from the derive starts here.
pub struct Root<S>(PhantomData<fn() -> S>);

impl<S> Root<S> {
    /// The lens on section `S`.
    pub const fn new() -> Self {
        Root(PhantomData)
    }
}

impl<S> Default for Root<S> {
    fn default() -> Self {
        Root::new()
    }
}

impl<S> Clone for Root<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Root<S> {}

impl<S: EaCSection> Lens for Root<S> {
    type Root = S;
    type Output = S;

    fn key_path(&self) -> String {
        S::PATH.to_owned()
    }

    #[inline]
    fn focus<'r>(&self, root: &'r S) -> &'r S {
        root
    }
}

impl<S: EaCSection> fmt::Debug for Root<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::__private::fmt_lens(f, self)
    }
}

/// The lens on one field of what the lens `P` reads; the derive's lens methods return it.
///
/// When the field's type derives `EaCSection`, a `Field` dereferences to that type's
/// generated lens, whose methods go one level deeper.
pub struct Field<P, M> {
    parent: P,
    _field: PhantomData<fn() -> M>,
}

impl<P, M> Field<P, M> {
    pub(crate) const fn new(parent: P) -> Self {
        Field {
            parent,
            _field: PhantomData,
        }
    }
}

impl<P: Clone, M> Clone for Field<P, M> {
    fn clone(&self) -> Self {
        Field::new(self.parent.clone())
    }
}

impl<P: Copy, M> Copy for Field<P, M> {}

impl<P, M> Lens for Field<P, M>
where
    P: Lens,
    M: FieldMarker<Owner = P::Output> + 'static,
{
    type Root = P::Root;
    type Output = M::Type;

    fn key_path(&self) -> String {
        join_key(&self.parent.key_path(), M::KEY)
    }

    #[inline]
    fn focus<'r>(&self, root: &'r Self::Root) -> &'r M::Type {
        M::get(self.parent.focus(root))
    }

    #[inline]
    fn get<'s>(&self, snapshot: &'s Snapshot) -> &'s M::Type {
        M::get(self.parent.get(snapshot))
    }

    #[inline]
    fn try_get<'s>(&self, snapshot: &'s Snapshot) -> Option<&'s M::Type> {
        self.parent.try_get(snapshot).map(M::get)
    }
}

impl<P, M> Deref for Field<P, M>
where
    Self: Lens,
    M: FieldMarker,
    M::Type: HasLenses,
    <M::Type as HasLenses>::Lenses<Self>: 'static,
{
    type Target = <M::Type as HasLenses>::Lenses<Self>;

    fn deref(&self) -> &Self::Target {
        const {
            assert!(
                size_of::<Self::Target>() == 0,
                "nested lenses start from a zero-sized lens such as `Type::lens()`"
            );
        }
        // Zero-sized, so the box allocates nothing and leaking it frees nothing.
        Box::leak(Box::new(M::Type::lenses(self.clone())))
    }
}

impl<P, M> fmt::Debug for Field<P, M>
where
    Self: Lens,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::__private::fmt_lens(f, self)
    }
}

/// A lens that applies a function to what another lens reads; see [`Lens::map`].
pub struct Map<L, F, U: ?Sized> {
    lens: L,
    key: &'static str,
    f: F,
    _output: PhantomData<fn(&U)>,
}

impl<L: Clone, F: Clone, U: ?Sized> Clone for Map<L, F, U> {
    fn clone(&self) -> Self {
        Map {
            lens: self.lens.clone(),
            key: self.key,
            f: self.f.clone(),
            _output: PhantomData,
        }
    }
}

impl<L, F, U> Lens for Map<L, F, U>
where
    L: Lens,
    U: ?Sized + 'static,
    F: Fn(&L::Output) -> &U + Clone + Send + Sync + 'static,
{
    type Root = L::Root;
    type Output = U;

    fn key_path(&self) -> String {
        join_key(&self.lens.key_path(), self.key)
    }

    #[inline]
    fn focus<'r>(&self, root: &'r Self::Root) -> &'r U {
        (self.f)(self.lens.focus(root))
    }

    #[inline]
    fn get<'s>(&self, snapshot: &'s Snapshot) -> &'s U {
        (self.f)(self.lens.get(snapshot))
    }

    #[inline]
    fn try_get<'s>(&self, snapshot: &'s Snapshot) -> Option<&'s U> {
        self.lens.try_get(snapshot).map(&self.f)
    }
}

impl<L, F, U> fmt::Debug for Map<L, F, U>
where
    U: ?Sized,
    Self: Lens,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::__private::fmt_lens(f, self)
    }
}

/// A lens that always reads the same value, whatever the snapshot: for testing code
/// that takes a lens, without configuration.
///
/// It stands for a lens into section `S`, which need not be registered; subscriptions
/// to it never fire. Its key path is `"(constant)"`.
///
/// ```
/// use eac_accessor::lens::{Constant, Lens};
/// # use eac_accessor::{EaCAccessor, EaCSection, source::{Format, Memory}};
/// # #[derive(serde::Deserialize, schemars::JsonSchema)]
/// # struct Limits { request_timeout_ms: u64 }
/// # impl EaCSection for Limits { const PATH: &'static str = "limits"; }
///
/// fn timeout_ms<L: Lens<Output = u64>>(lens: &L, snapshot: &eac_accessor::Snapshot) -> u64 {
///     *lens.get(snapshot)
/// }
///
/// # let accessor = EaCAccessor::builder().source(Memory::new("m", Format::Toml, "")).build()?;
/// let fixed = Constant::<Limits, u64>::new(&250);
/// assert_eq!(timeout_ms(&fixed, &accessor.load()), 250);
/// # Ok::<(), eac_accessor::Errors>(())
/// ```
pub struct Constant<S, T: ?Sized + 'static> {
    value: &'static T,
    _root: PhantomData<fn() -> S>,
}

impl<S, T: ?Sized + 'static> Constant<S, T> {
    /// A lens that reads `value`; use `Box::leak` for a value that is not a constant.
    pub const fn new(value: &'static T) -> Self {
        Constant {
            value,
            _root: PhantomData,
        }
    }
}

impl<S, T: ?Sized + 'static> Clone for Constant<S, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, T: ?Sized + 'static> Copy for Constant<S, T> {}

impl<S: EaCSection, T: ?Sized + Sync + 'static> Lens for Constant<S, T> {
    type Root = S;
    type Output = T;

    fn key_path(&self) -> String {
        "(constant)".to_owned()
    }

    fn focus<'r>(&self, _root: &'r S) -> &'r T {
        self.value
    }

    fn get<'s>(&self, _snapshot: &'s Snapshot) -> &'s T {
        self.value
    }

    fn try_get<'s>(&self, _snapshot: &'s Snapshot) -> Option<&'s T> {
        Some(self.value)
    }
}

impl<S: EaCSection, T: ?Sized + Sync + 'static> fmt::Debug for Constant<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::__private::fmt_lens(f, self)
    }
}

mod field_watch;
mod guard;
#[cfg(test)]
mod tests;

pub use field_watch::{FieldChange, FieldUpdate, FieldWatch};
pub use guard::LensGuard;

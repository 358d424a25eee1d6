//! Resolvers: what a service builds from its configuration — a compiled rule set, an
//! HTTP client, a connection pool — built in the pipeline, kept in the snapshot.
//!
//! A [`Resolver`] is a function from the sections it reads to a value. It runs after the
//! schema and every `validate`, before the atomic store, so a value that cannot be built
//! rejects the candidate like a schema error and the running version stays. Its value
//! lives in the [`Snapshot`] beside the sections: a request that pinned version N sees
//! version N's configuration and version N's resources, never a mix. It is rebuilt only
//! when a section it reads changed; otherwise the new snapshot shares the previous value.
//!
//! ```
//! use eac_accessor::{EaCAccessor, EaCSection, Origin};
//! use eac_accessor::resolve::{ResolveError, Resolver};
//! use eac_accessor::source::{Format, Memory};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
//! struct Access {
//!     prefixes: Vec<String>,
//! }
//!
//! /// What requests use: built once per change of `[access]`.
//! struct Rules(Vec<String>);
//!
//! fn compile(access: &Access) -> Result<Rules, ResolveError> {
//!     match access.prefixes.iter().position(|p| !p.starts_with('/')) {
//!         Some(i) => Err(ResolveError::new("a prefix must start with `/`")
//!             .at_key(format!("access.prefixes.{i}"))),
//!         None => Ok(Rules(access.prefixes.clone())),
//!     }
//! }
//!
//! let file = Memory::new("app.toml", Format::Toml, "[access]\nprefixes = [\"/api\"]\n");
//! let config = EaCAccessor::builder()
//!     .section::<Access>()
//!     .resolver(Resolver::new("access rules", compile))
//!     .source(file.clone())
//!     .build()?;
//!
//! let snapshot = config.load();
//! let rules = snapshot.resolved::<Rules>().ok_or("no rules")?;
//! assert_eq!(rules.0, ["/api"]);
//! assert_eq!(snapshot.resolved_version::<Rules>(), Some(1));
//!
//! // A value that cannot be built rejects the candidate; version 1 and its rules stay.
//! file.set("[access]\nprefixes = [\"api\"]\n");
//! let errors = config.reload(Origin::Refresh).unwrap_err();
//! let error = &errors.as_slice()[0];
//! assert_eq!(error.key(), Some("access.prefixes.0"));
//! assert!(error.message().contains("resolver `access rules` (reads `access`)"));
//! assert_eq!(config.load().version(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Draining replaced values
//!
//! A replaced value is dropped when the last snapshot holding it is dropped: requests
//! still running on the old version keep their resources until they end. A hook given
//! with [`Resolver::on_drain`] receives the value instead, once the
//! [drain window](crate::Builder::drain_window) after its replacement has passed and the
//! last snapshot holding it is gone, whichever is later — to close a pool gracefully.
//!
//! # Async resolvers
//!
//! [`Resolver::new_async`] takes a build that returns a future. The reload coordinator's
//! build timeout covers it: past it, nothing is published. It is driven on the tokio
//! runtime the reload runs in (the coordinator's blocking thread; `build()` called on a
//! multi-thread runtime's worker drives it with `block_in_place`). Called where that is
//! not possible — inside a current-thread runtime, or with no runtime — the future runs
//! on a runtime of its own that ends with the build, so a value that holds runtime
//! resources (sockets) should be built from a multi-thread runtime.

mod build;
mod instance;
pub(crate) mod slot;

pub use build::{BuildAsyncFn, BuildFn};
#[doc(hidden)]
pub use build::{BuildFuture, Built};

use std::any::TypeId;
use std::fmt;
use std::future::Future;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;

use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, ErrorKind, Errors, dotted_to_pointer};
use crate::snapshot::Snapshot;

use instance::{Instance, Shared};
pub use slot::ResolvedKey;
pub(crate) use slot::ResolvedSlot;

/// Why a resolver could not build its value: a message, and the key at fault if known —
/// or several such, each reported on its own ([`from_vec`](ResolveError::from_vec)).
///
/// Any [`std::error::Error`] converts into one, so `?` works in a build function. Keep
/// secrets out of the message: it is shown in the status and logs.
pub struct ResolveError {
    message: String,
    key: Option<String>,
    /// Further errors found by the same build, reported beside this one.
    more: Vec<ResolveError>,
}

impl ResolveError {
    /// An error saying `message`.
    pub fn new(message: impl fmt::Display) -> ResolveError {
        ResolveError {
            message: message.to_string(),
            key: None,
            more: Vec::new(),
        }
    }

    /// Every error a build found, at once (`None` when there are none): each is
    /// reported as a rejection of its own, naming its key, so that one pass over a
    /// configuration shows every bad value.
    ///
    /// ```
    /// use eac_accessor::resolve::ResolveError;
    ///
    /// let patterns = ["/ok", "bad", "worse"];
    /// let errors = patterns
    ///     .iter()
    ///     .enumerate()
    ///     .filter(|(_, p)| !p.starts_with('/'))
    ///     .map(|(i, p)| ResolveError::new(format!("`{p}` must start with `/`")).at_key(format!("access.rules.{i}")))
    ///     .collect();
    /// let error = ResolveError::from_vec(errors).unwrap();
    /// let keys: Vec<_> = error.iter().map(|e| e.key()).collect();
    /// assert_eq!(keys, [Some("access.rules.1"), Some("access.rules.2")]);
    /// ```
    pub fn from_vec(errors: Vec<ResolveError>) -> Option<ResolveError> {
        let mut errors = errors.into_iter().flat_map(ResolveError::into_all);
        let mut first = errors.next()?;
        first.more = errors.collect();
        Some(first)
    }

    /// Each error it holds: itself, then those [`from_vec`](ResolveError::from_vec)
    /// joined to it.
    pub fn iter(&self) -> impl Iterator<Item = &ResolveError> {
        std::iter::once(self).chain(&self.more)
    }

    fn into_all(mut self) -> Vec<ResolveError> {
        let more = std::mem::take(&mut self.more);
        let mut all = vec![self];
        all.extend(more);
        all
    }

    /// Names the dotted key whose value is at fault (`"access.rules.2"`); the rejection
    /// then names it and the source that set it.
    pub fn at_key(mut self, key: impl Into<String>) -> ResolveError {
        self.key = Some(key.into());
        self
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The key at fault, if named.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl<E: std::error::Error> From<E> for ResolveError {
    fn from(error: E) -> ResolveError {
        ResolveError::new(error)
    }
}

impl fmt::Debug for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ResolveError");
        debug
            .field("message", &self.message)
            .field("key", &self.key);
        if !self.more.is_empty() {
            debug.field("more", &self.more);
        }
        debug.finish()
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match &error.key {
                Some(key) => write!(f, "{} (at `{key}`)", error.message)?,
                None => f.write_str(&error.message)?,
            }
        }
        Ok(())
    }
}

type Drain<R> = Arc<dyn Fn(R) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;
type Run<R> = Box<dyn Fn(&Snapshot) -> Result<Built<R>, ResolveError> + Send + Sync>;

/// A value built from sections, registered with [`Builder::resolver`](crate::Builder::resolver).
pub struct Resolver<R> {
    name: String,
    inputs: Vec<(TypeId, &'static str)>,
    run: Run<R>,
    drain: Option<Drain<R>>,
}

impl<R: Send + Sync + 'static> Resolver<R> {
    /// A resolver named `name` (for errors and the status) that builds its value with
    /// `build`, from the sections its arguments name.
    ///
    /// ```
    /// # use eac_accessor::{EaCSection, resolve::{ResolveError, Resolver}};
    /// # #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
    /// # struct Upstream { url: String }
    /// # #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
    /// # struct Limits { request_timeout_ms: u64 }
    /// struct Client { base: String, timeout_ms: u64 }
    ///
    /// let client = Resolver::new("upstream client", |up: &Upstream, limits: &Limits| {
    ///     Ok::<_, ResolveError>(Client { base: up.url.clone(), timeout_ms: limits.request_timeout_ms })
    /// });
    /// assert_eq!(client.reads(), ["upstream", "limits"]);
    /// ```
    pub fn new<I, F: BuildFn<I, R>>(name: impl Into<String>, build: F) -> Resolver<R> {
        Resolver {
            name: name.into(),
            inputs: F::__inputs(),
            run: Box::new(move |snapshot| build.__build(snapshot)),
            drain: None,
        }
    }

    /// A resolver whose build is async (opening a pool, say); see the
    /// [module docs](self#async-resolvers) for where the future runs.
    ///
    /// ```
    /// # use eac_accessor::{EaCSection, resolve::{ResolveError, Resolver}};
    /// # #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
    /// # struct Database { url: String }
    /// # struct Pool(String);
    /// # impl Pool { async fn connect(url: String) -> Result<Pool, std::io::Error> { Ok(Pool(url)) } }
    /// let pool = Resolver::new_async("pool", |db: &Database| {
    ///     let url = db.url.clone();
    ///     async move { Ok::<_, ResolveError>(Pool::connect(url).await?) }
    /// });
    /// ```
    pub fn new_async<I, F: BuildAsyncFn<I, R>>(name: impl Into<String>, build: F) -> Resolver<R> {
        Resolver {
            name: name.into(),
            inputs: F::__inputs(),
            run: Box::new(move |snapshot| build.__build(snapshot)),
            drain: None,
        }
    }

    /// Hands each replaced value to `hook` instead of dropping it, once the drain window
    /// after its replacement has passed and no snapshot holds it any more.
    ///
    /// The hook runs as a task on the tokio runtime where the value was built; a value
    /// built with no runtime around is dropped without it. A value built for a candidate
    /// that was then rejected is handed over at once.
    pub fn on_drain<F, Fut>(mut self, hook: F) -> Resolver<R>
    where
        F: Fn(R) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.drain = Some(Arc::new(move |value| Box::pin(hook(value))));
        self
    }

    /// The paths of the sections it reads, in argument order.
    pub fn reads(&self) -> Vec<&'static str> {
        self.inputs.iter().map(|(_, path)| *path).collect()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<R> fmt::Debug for Resolver<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("name", &self.name)
            .field(
                "reads",
                &self.inputs.iter().map(|(_, p)| p).collect::<Vec<_>>(),
            )
            .field("drain", &self.drain.is_some())
            .finish()
    }
}

/// A registered resolver, its value's type erased.
pub(crate) trait Resolve: Send + Sync {
    fn name(&self) -> &str;
    fn value_type(&self) -> TypeId;
    fn inputs(&self) -> &[(TypeId, &'static str)];
    fn pointers(&self) -> &[String];
    fn replaced_alive(&self) -> usize;
    fn build(&self, candidate: &Snapshot) -> Result<ResolvedSlot, ResolveError>;
}

struct Registered<R> {
    resolver: Resolver<R>,
    pointers: Vec<String>,
    shared: Arc<Shared<R>>,
}

impl<R: Send + Sync + 'static> Resolve for Registered<R> {
    fn name(&self) -> &str {
        &self.resolver.name
    }

    fn value_type(&self) -> TypeId {
        TypeId::of::<R>()
    }

    fn inputs(&self) -> &[(TypeId, &'static str)] {
        &self.resolver.inputs
    }

    fn pointers(&self) -> &[String] {
        &self.pointers
    }

    fn replaced_alive(&self) -> usize {
        self.shared.replaced_alive()
    }

    fn build(&self, candidate: &Snapshot) -> Result<ResolvedSlot, ResolveError> {
        let started = Instant::now();
        let value = catch_unwind(AssertUnwindSafe(|| match (self.resolver.run)(candidate)? {
            Built::Now(result) => result,
            Built::Later(future) => drive(future),
        }))
        .unwrap_or_else(|_| Err(ResolveError::new("the resolver panicked")))?;
        let value = Arc::new(value);
        let instance = Arc::new(Instance::new(Arc::clone(&value), Arc::clone(&self.shared)));
        Ok(ResolvedSlot {
            type_id: TypeId::of::<R>(),
            value,
            held: instance,
            built_at: candidate.version,
            took: started.elapsed(),
            built_when: SystemTime::now(),
        })
    }
}

/// Registers `resolver` for the pipeline, with the drain window every value waits out.
pub(crate) fn register<R: Send + Sync + 'static>(
    resolver: Resolver<R>,
    window: Duration,
) -> Box<dyn Resolve> {
    let pointers = resolver
        .inputs
        .iter()
        .map(|(_, path)| dotted_to_pointer(path))
        .collect();
    let shared = Arc::new(Shared::new(resolver.drain.clone(), window));
    Box::new(Registered {
        resolver,
        pointers,
        shared,
    })
}

/// Checks the resolvers against the registered sections: each reads only registered
/// ones, and no two build the same type.
pub(crate) fn check(resolvers: &[Box<dyn Resolve>], sections: &[TypeId]) -> Vec<Error> {
    let mut errors = Vec::new();
    for (i, r) in resolvers.iter().enumerate() {
        for (id, path) in r.inputs() {
            if !sections.contains(id) {
                errors.push(Error::new(
                    ErrorKind::Resolve,
                    format!(
                        "resolver `{}` reads section `{path}`, which is not registered: \
                         add it with `.section::<…>()`",
                        r.name()
                    ),
                ));
            }
        }
        if let Some(first) = resolvers[..i]
            .iter()
            .find(|o| o.value_type() == r.value_type())
        {
            errors.push(Error::new(
                ErrorKind::Resolve,
                format!(
                    "resolvers `{}` and `{}` build the same type: `resolved::<R>()` could not \
                     tell them apart",
                    first.name(),
                    r.name()
                ),
            ));
        }
    }
    errors
}

/// Builds every resolver's value for `candidate`, reusing `previous`'s value for each
/// resolver none of whose sections changed; reports every failure.
pub(crate) fn resolve_all(
    resolvers: &[Box<dyn Resolve>],
    previous: Option<&Snapshot>,
    candidate: &mut Snapshot,
) -> Result<(), Errors> {
    if resolvers.is_empty() {
        return Ok(());
    }
    let mut slots = Vec::with_capacity(resolvers.len());
    let mut errors = Vec::new();
    for resolver in resolvers {
        // A rejected candidate holds only the sections that built: a resolver runs when
        // every section it reads did.
        let built = |(id, _): &(TypeId, &str)| candidate.sections.iter().any(|(t, _, _)| t == id);
        if !resolver.inputs().iter().all(built) {
            continue;
        }
        let kept = previous.and_then(|previous| {
            let same = resolver
                .pointers()
                .iter()
                .all(|p| previous.document.pointer(p) == candidate.document.pointer(p));
            same.then(|| previous.slot(resolver.value_type()))?
        });
        match kept {
            Some(slot) => slots.push(slot.clone()),
            None => match resolver.build(candidate) {
                Ok(slot) => slots.push(slot),
                Err(e) => errors.extend(rejections(resolver.as_ref(), e, candidate)),
            },
        }
    }
    match Errors::from_vec(errors) {
        Some(errors) => Err(errors),
        None => {
            candidate.resolved = slots.into_boxed_slice();
            Ok(())
        }
    }
}

/// Marks the values `previous` held that `current` no longer does as replaced: their
/// drain window starts now.
pub(crate) fn retire(previous: &Snapshot, current: &Snapshot) {
    for old in previous.resolved.iter() {
        let kept = current
            .slot(old.type_id)
            .is_some_and(|new| Arc::ptr_eq(&new.held, &old.held));
        if !kept {
            old.held.replaced();
        }
    }
}

/// One rejection for each error the build found, naming the key and its source.
fn rejections(resolver: &dyn Resolve, error: ResolveError, candidate: &Snapshot) -> Vec<Error> {
    let reads = resolver
        .inputs()
        .iter()
        .map(|(_, p)| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let rejection = |error: ResolveError| {
        let e = Error::new(
            ErrorKind::Resolve,
            format!(
                "resolver `{}` (reads {reads}) could not build: {}",
                resolver.name(),
                error.message
            ),
        );
        match error.key {
            Some(key) => {
                let source = candidate.source_of(&key).map(|s| s.source);
                let e = e.with_key(key);
                match source {
                    Some(source) => e.with_source(source),
                    None => e,
                }
            }
            None => e,
        }
    };
    error.into_all().into_iter().map(rejection).collect()
}

/// Each resolver's state, as [`Status::resolvers`](crate::Status::resolvers) shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ResolverStatus {
    /// The resolver's name.
    pub name: String,
    /// The sections it reads.
    pub reads: Vec<&'static str>,
    /// The version whose configuration built the value now current.
    pub built_at_version: u64,
    /// When that value was built.
    #[serde(serialize_with = "crate::json_time::unix_seconds")]
    pub built_at: SystemTime,
    /// How long building it took (serialized as `build_ms`).
    #[serde(rename = "build_ms", serialize_with = "crate::json_time::millis")]
    pub build_time: Duration,
    /// Replaced values still alive: held by a request's snapshot, or waiting out the
    /// drain window.
    pub replaced_alive: usize,
}

pub(crate) fn status(resolvers: &[Box<dyn Resolve>], current: &Snapshot) -> Vec<ResolverStatus> {
    resolvers
        .iter()
        .filter_map(|r| {
            let slot = current.slot(r.value_type())?;
            Some(ResolverStatus {
                name: r.name().to_owned(),
                reads: r.inputs().iter().map(|(_, p)| *p).collect(),
                built_at_version: slot.built_at,
                built_at: slot.built_when,
                build_time: slot.took,
                replaced_alive: r.replaced_alive(),
            })
        })
        .collect()
}

/// Drives an async build to its end from a synchronous pipeline.
fn drive<R: Send>(future: BuildFuture<R>) -> Result<R, ResolveError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            // On a worker, `block_in_place` lets the others go on; elsewhere (the
            // coordinator's blocking thread) it simply runs the closure.
            tokio::task::block_in_place(|| handle.block_on(future))
        }
        // A current-thread runtime's only thread may be this one: run beside it.
        Ok(_) => std::thread::scope(|scope| {
            scope
                .spawn(|| own_runtime(future))
                .join()
                .unwrap_or_else(|_| Err(ResolveError::new("the resolver panicked")))
        }),
        Err(_) => own_runtime(future),
    }
}

fn own_runtime<R: Send>(future: BuildFuture<R>) -> Result<R, ResolveError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ResolveError::new(format!("could not start a runtime for the build: {e}")))?
        .block_on(future)
}

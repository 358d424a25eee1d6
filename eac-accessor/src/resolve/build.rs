//! The shapes of a resolver's build function: one to four sections in, a value out.

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;

use super::ResolveError;
use crate::section::EaCSection;
use crate::snapshot::Snapshot;

/// A boxed future a resolver's async build returns.
pub type BuildFuture<R> = Pin<Box<dyn Future<Output = Result<R, ResolveError>> + Send>>;

/// How one build is run: at once, or as a future to drive on a runtime.
#[allow(missing_debug_implementations)]
pub enum Built<R> {
    /// Built already.
    Now(Result<R, ResolveError>),
    /// To be driven to completion.
    Later(BuildFuture<R>),
}

/// A function that builds a resolver's value from the sections it reads.
///
/// Implemented for closures and functions taking one to four `&Section` arguments
/// (types that implement [`EaCSection`]) and returning `Result<R, ResolveError>`; the
/// argument types are the resolver's inputs, so annotate them on a closure:
/// `|access: &Access| …`. `Inputs` is a tuple of those section types, inferred.
pub trait BuildFn<Inputs, R>: Send + Sync + 'static {
    #[doc(hidden)]
    fn __inputs() -> Vec<(TypeId, &'static str)>;
    #[doc(hidden)]
    fn __build(&self, snapshot: &Snapshot) -> Result<Built<R>, ResolveError>;
}

/// A function that builds a resolver's value asynchronously (opening a pool, say).
///
/// Implemented for closures taking one to four `&Section` arguments and returning a
/// `Future<Output = Result<R, ResolveError>> + Send + 'static`: copy what the future
/// needs out of the sections before the `async move` block.
pub trait BuildAsyncFn<Inputs, R>: Send + Sync + 'static {
    #[doc(hidden)]
    fn __inputs() -> Vec<(TypeId, &'static str)>;
    #[doc(hidden)]
    fn __build(&self, snapshot: &Snapshot) -> Result<Built<R>, ResolveError>;
}

fn input<T: EaCSection>(snapshot: &Snapshot) -> Result<&T, ResolveError> {
    snapshot.get::<T>().ok_or_else(|| {
        ResolveError::new(format!(
            "section `{}` is not registered: add `.section::<{}>()` to the builder",
            T::PATH,
            std::any::type_name::<T>()
        ))
    })
}

macro_rules! build_fns {
    ($($t:ident),+) => {
        impl<F, R, $($t),+> BuildFn<($($t,)+), R> for F
        where
            F: Fn($(&$t),+) -> Result<R, ResolveError> + Send + Sync + 'static,
            R: Send + Sync + 'static,
            $($t: EaCSection),+
        {
            fn __inputs() -> Vec<(TypeId, &'static str)> {
                vec![$((TypeId::of::<$t>(), $t::PATH)),+]
            }

            fn __build(&self, snapshot: &Snapshot) -> Result<Built<R>, ResolveError> {
                Ok(Built::Now(self($(input::<$t>(snapshot)?),+)))
            }
        }

        impl<F, Fut, R, $($t),+> BuildAsyncFn<($($t,)+), R> for F
        where
            F: Fn($(&$t),+) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<R, ResolveError>> + Send + 'static,
            R: Send + Sync + 'static,
            $($t: EaCSection),+
        {
            fn __inputs() -> Vec<(TypeId, &'static str)> {
                vec![$((TypeId::of::<$t>(), $t::PATH)),+]
            }

            fn __build(&self, snapshot: &Snapshot) -> Result<Built<R>, ResolveError> {
                Ok(Built::Later(Box::pin(self($(input::<$t>(snapshot)?),+))))
            }
        }
    };
}

build_fns!(A);
build_fns!(A, B);
build_fns!(A, B, C);
build_fns!(A, B, C, D);

//! The names a service using eac needs, in one import.
//!
//! ```
//! use eac_accessor::prelude::*;
//!
//! #[derive(Debug, serde::Deserialize, schemars::JsonSchema, EaCSection)]
//! struct Limits {
//!     max_body_bytes: u64,
//! }
//!
//! let config = EaCAccessor::builder()
//!     .section::<Limits>()
//!     .source(Memory::new("app.toml", Format::Toml, "[limits]\nmax_body_bytes = 1024\n"))
//!     .source(Env::prefixed("APP_"))
//!     .build()?;
//! // `Lens` is in scope, so a lens's `get` needs no other import.
//! assert_eq!(*Limits::lens().max_body_bytes().get(&config.load()), 1024);
//! # Ok::<(), Errors>(())
//! ```
//!
//! It brings the accessor and its builder, the section trait and its derive, the
//! snapshot, [`Origin`], [`Secret`], errors, the [`Lens`] trait, every source, the
//! reload coordinator and the resolver types.

pub use crate::lens::Lens;
pub use crate::reload::{ReloadConfig, ReloadCoordinator};
pub use crate::resolve::{ResolveError, Resolver};
pub use crate::source::{Defaults, Dir, Env, File, Format, Memory, Source};
pub use crate::{
    Builder, EaCAccessor, EaCSection, Error, ErrorKind, Errors, Origin, Secret, Snapshot,
};

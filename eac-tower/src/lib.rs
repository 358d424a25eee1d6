//! Tower and axum integration for eac: one pinned configuration snapshot per request.
//!
//! ```
//! use std::convert::Infallible;
//! use eac_accessor::{EaCAccessor, EaCSection, source::{Format, Memory}};
//! use eac_tower::{EaCLayer, pinned};
//! use http::{Request, Response};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
//! #[eac(path = "greeting")]
//! struct Greeting {
//!     message: String,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let accessor = EaCAccessor::builder()
//!     .section::<Greeting>()
//!     .source(Memory::new("app", Format::Toml, "[greeting]\nmessage = \"hi\"\n"))
//!     .build()?;
//! let service = ServiceBuilder::new()
//!     .layer(EaCLayer::new(accessor))
//!     .service(service_fn(|request: Request<()>| async move {
//!         // Every read in this request comes from this one snapshot.
//!         let snapshot = pinned(&request).expect("EaCLayer runs first");
//!         let message = snapshot.section::<Greeting>().message.clone();
//!         Ok::<_, Infallible>(Response::new(message))
//!     }));
//! let response = service.oneshot(Request::new(())).await?;
//! assert_eq!(response.headers()["x-eac-version"], "1");
//! # Ok(())
//! # }
//! ```
//!
//! # Which read to use where
//!
//! | where | read | instructions per read |
//! |---|---|---:|
//! | inside a request `EaCLayer` pinned: a handler, a middleware behind the layer | the pinned snapshot: `Section<T>`, `Pinned`, [`pinned`] | about 27 (the lookup; the layer loads once per request) |
//! | outside a request: a background task, a consumer loop | `eac_accessor::SectionCell<T>` | 57 |
//! | one thread's or task's own hot loop | `eac_accessor::CachedSection<T>` | 14 |
//!
//! (Callgrind, `BENCHMARKS.md`, 2026-12-01; dynamic-config's `current()` is 68.) In a
//! request, the pinned snapshot is also the only read that stays on the request's
//! version: a cell read halfway through may hold a version published since. The
//! `extract` module shows a middleware and a handler reading one version; `SectionCell`'s
//! docs explain each read.

/// The README's Rust examples, compiled as doctests so that they keep compiling.
#[cfg(all(doctest, feature = "admin"))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

#[macro_use]
mod macros;

#[cfg(feature = "admin")]
pub mod admin;
#[cfg(feature = "axum")]
pub mod body_limit;
#[cfg(feature = "axum")]
pub mod extract;
#[cfg(test)]
mod fixture;
#[cfg(feature = "axum")]
mod live;
pub mod pin;
#[cfg(feature = "axum")]
pub mod timeout;

#[cfg(feature = "axum")]
pub use body_limit::{LiveBodyLimit, LiveBodyLimitLayer};
#[cfg(feature = "axum")]
pub use extract::{MissingSnapshot, Pinned, Resolved, Section};
pub use pin::{EaCLayer, EaCService, PinnedSnapshot, ServiceBuilderExt, VERSION_HEADER, pinned};
#[cfg(feature = "axum")]
pub use timeout::{LiveTimeout, LiveTimeoutLayer};

//! axum extractors for the pinned snapshot, one section of it, and a resolver's value.
//!
//! # Reading configuration in a request
//!
//! Inside a request that [`EaCLayer`](crate::EaCLayer) pinned, read the pinned snapshot —
//! [`Section<T>`], [`Pinned`], or [`pinned`](crate::pinned) in a middleware — rather than
//! an `eac_accessor::SectionCell` or `EaCAccessor::load`: it is the request's version
//! from its first read to its last, and a read is only the section's lookup (about 27
//! instructions; the layer paid the load once, where a cell pays 57 per read —
//! `BENCHMARKS.md`). A middleware and the handler behind it read the same version:
//!
//! ```
//! use axum::{Router, body::Body, extract::Request, middleware::{self, Next}};
//! use axum::{response::{IntoResponse, Response}, routing::get};
//! use eac_accessor::{EaCAccessor, EaCSection, Origin, source::{Format, Memory}};
//! use eac_tower::{EaCLayer, Section, pinned};
//! use http::StatusCode;
//! use tower::ServiceExt;
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
//! struct Features {
//!     maintenance: bool,
//! }
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
//! struct Greeting {
//!     message: String,
//! }
//!
//! /// 503 while `[features] maintenance` is on in this request's version.
//! async fn maintenance(request: Request, next: Next) -> Response {
//!     let on = pinned(&request).is_some_and(|s| s.section::<Features>().maintenance);
//!     if on {
//!         return StatusCode::SERVICE_UNAVAILABLE.into_response();
//!     }
//!     next.run(request).await
//! }
//!
//! async fn hello(greeting: Section<Greeting>) -> String {
//!     greeting.message.clone() // the version the middleware read
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let toml = |on| format!("[features]\nmaintenance = {on}\n[greeting]\nmessage = \"hi\"\n");
//! let doc = Memory::new("app", Format::Toml, toml(false));
//! let accessor = EaCAccessor::builder()
//!     .section::<Features>()
//!     .section::<Greeting>()
//!     .source(doc.clone())
//!     .build()?;
//! let app = Router::new()
//!     .route("/", get(hello))
//!     .layer(middleware::from_fn(maintenance))
//!     .layer(EaCLayer::new(accessor.clone())); // the outermost layer: it pins first
//!
//! let response = app.clone().oneshot(Request::new(Body::empty())).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! doc.set(toml(true));
//! accessor.reload(Origin::Refresh)?;
//! let response = app.oneshot(Request::new(Body::empty())).await?;
//! assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
//! # Ok(())
//! # }
//! ```
//!
//! Outside a request (a background task, a queue consumer) read an
//! `eac_accessor::SectionCell`; in one thread's own hot loop, an
//! `eac_accessor::CachedSection` (14 instructions). `SectionCell`'s docs have the table.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use eac_accessor::{EaCSection, Snapshot};
use http::StatusCode;
use http::request::Parts;

use crate::pin::PinnedSnapshot;

/// The snapshot [`EaCLayer`](crate::EaCLayer) pinned for this request.
///
/// ```
/// use eac_tower::Pinned;
///
/// async fn handler(Pinned(snapshot): Pinned) -> String {
///     format!("served by version {}", snapshot.version())
/// }
/// # let _: axum::routing::MethodRouter = axum::routing::get(handler);
/// ```
#[derive(Debug, Clone)]
pub struct Pinned(pub Arc<Snapshot>);

impl<S: Send + Sync> FromRequestParts<S> for Pinned {
    type Rejection = MissingSnapshot;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<PinnedSnapshot>()
            .map(|p| Pinned(Arc::clone(&p.0)))
            .ok_or(MissingSnapshot::NoLayer)
    }
}

/// One section of the pinned snapshot; derefs to `T`, without cloning it.
///
/// ```
/// use eac_accessor::EaCSection;
/// use eac_tower::Section;
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Greeting { message: String }
/// impl EaCSection for Greeting { const PATH: &'static str = "greeting"; }
///
/// async fn handler(greeting: Section<Greeting>) -> String {
///     greeting.message.clone()
/// }
/// # let _: axum::routing::MethodRouter = axum::routing::get(handler);
/// ```
pub struct Section<T> {
    snapshot: Arc<Snapshot>,
    _type: PhantomData<fn() -> T>,
}

impl<T: EaCSection> Section<T> {
    /// The snapshot the section was read from.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }
}

impl<T: EaCSection> Deref for Section<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // Checked when extracted.
        self.snapshot.section::<T>()
    }
}

impl<T> fmt::Debug for Section<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section")
            .field("type", &std::any::type_name::<T>())
            .field("version", &self.snapshot.version())
            .finish()
    }
}

impl<T: EaCSection, S: Send + Sync> FromRequestParts<S> for Section<T> {
    type Rejection = MissingSnapshot;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Pinned(snapshot) = Pinned::from_request_parts(parts, state).await?;
        if snapshot.get::<T>().is_none() {
            return Err(MissingSnapshot::NotRegistered(std::any::type_name::<T>()));
        }
        Ok(Section {
            snapshot,
            _type: PhantomData,
        })
    }
}

/// The value a [`Resolver`](eac_accessor::resolve::Resolver) built for the pinned
/// snapshot; derefs to `R`. A handler that also reads sections sees the value and the
/// sections of one version.
///
/// ```
/// use eac_tower::{Resolved, Section};
/// # #[derive(serde::Deserialize, schemars::JsonSchema, eac_accessor::EaCSection)]
/// # struct Access { prefixes: Vec<String> }
/// struct Rules(Vec<String>);
///
/// async fn handler(rules: Resolved<Rules>, access: Section<Access>) -> String {
///     // Built from exactly this `access`, whatever publishes meanwhile.
///     format!("{} rules, built by version {}", rules.0.len(), rules.built_at())
/// }
/// # let _: axum::routing::MethodRouter = axum::routing::get(handler);
/// ```
pub struct Resolved<R> {
    snapshot: Arc<Snapshot>,
    _type: PhantomData<fn() -> R>,
}

impl<R: Send + Sync + 'static> Resolved<R> {
    /// The snapshot the value belongs to.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// The version whose sections built the value (it is shared by later versions until
    /// one of its sections changes).
    pub fn built_at(&self) -> u64 {
        self.snapshot.resolved_version::<R>().unwrap_or_default()
    }
}

impl<R: Send + Sync + 'static> Deref for Resolved<R> {
    type Target = R;

    fn deref(&self) -> &R {
        match self.snapshot.resolved::<R>() {
            Some(value) => value,
            // Checked when extracted, and a snapshot never changes.
            None => unreachable!("checked when extracted"),
        }
    }
}

impl<R> fmt::Debug for Resolved<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("type", &std::any::type_name::<R>())
            .field("version", &self.snapshot.version())
            .finish()
    }
}

impl<R: Send + Sync + 'static, S: Send + Sync> FromRequestParts<S> for Resolved<R> {
    type Rejection = MissingSnapshot;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Pinned(snapshot) = Pinned::from_request_parts(parts, state).await?;
        if snapshot.resolved::<R>().is_none() {
            return Err(MissingSnapshot::NotResolved(std::any::type_name::<R>()));
        }
        Ok(Resolved {
            snapshot,
            _type: PhantomData,
        })
    }
}

/// Why a [`Pinned`], [`Section`] or [`Resolved`] extractor failed: a setup mistake, answered with 500.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissingSnapshot {
    /// No `EaCLayer` ran before the handler.
    NoLayer,
    /// The section type was never registered on the accessor's builder.
    NotRegistered(&'static str),
    /// No resolver registered on the accessor's builder builds this type.
    NotResolved(&'static str),
}

impl fmt::Display for MissingSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MissingSnapshot::NoLayer => {
                f.write_str("no snapshot pinned for this request: add `EaCLayer` to the router")
            }
            MissingSnapshot::NotRegistered(name) => write!(
                f,
                "section `{name}` is not registered: add `.section::<{name}>()` to the EaCAccessor builder"
            ),
            MissingSnapshot::NotResolved(name) => write!(
                f,
                "no resolver builds `{name}`: add `.resolver(Resolver::new(..))` building it to the EaCAccessor builder"
            ),
        }
    }
}

impl std::error::Error for MissingSnapshot {}

impl IntoResponse for MissingSnapshot {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "configuration extractor failed");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::{Body, to_bytes};
    use axum::routing::get;
    use eac_accessor::EaCAccessor;
    use http::Request;
    use tower::ServiceExt;

    use crate::fixture::{Greeting, greeting};

    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    struct Unregistered {}
    impl EaCSection for Unregistered {
        const PATH: &'static str = "nope";
    }

    struct Shout(String);

    fn accessor() -> EaCAccessor {
        EaCAccessor::builder()
            .section::<Greeting>()
            .resolver(eac_accessor::resolve::Resolver::new(
                "shout",
                |g: &Greeting| Ok(Shout(g.message.to_uppercase())),
            ))
            .source(greeting("hi"))
            .build()
            .unwrap()
    }

    async fn call(app: Router, path: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn routes() -> Router {
        Router::new()
            .route(
                "/section",
                get(|g: Section<Greeting>| async move { g.message.clone() }),
            )
            .route(
                "/pinned",
                get(|Pinned(s): Pinned| async move { s.version().to_string() }),
            )
            .route(
                "/unregistered",
                get(|_: Section<Unregistered>| async { "unreachable" }),
            )
            .route(
                "/resolved",
                get(|s: Resolved<Shout>| async move { format!("{}@{}", s.0, s.built_at()) }),
            )
            .route(
                "/unresolved",
                get(|_: Resolved<String>| async { "unreachable" }),
            )
    }

    #[tokio::test]
    async fn extractors_read_the_pinned_snapshot() {
        let app = routes().layer(crate::EaCLayer::new(accessor()));
        assert_eq!(
            call(app.clone(), "/section").await,
            (StatusCode::OK, "hi".into())
        );
        assert_eq!(
            call(app.clone(), "/pinned").await,
            (StatusCode::OK, "1".into())
        );
        let (status, body) = call(app.clone(), "/unregistered").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("is not registered"), "{body}");
        assert_eq!(
            call(app.clone(), "/resolved").await,
            (StatusCode::OK, "HI@1".into())
        );
        let (status, body) = call(app, "/unresolved").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.starts_with("no resolver builds `alloc::string::String`"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn without_the_layer_the_rejection_names_the_fix() {
        let (status, body) = call(routes(), "/section").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            "no snapshot pinned for this request: add `EaCLayer` to the router"
        );
    }
}

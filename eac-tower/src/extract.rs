//! axum extractors for the pinned snapshot and for one section of it.

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

/// Why a [`Pinned`] or [`Section`] extractor failed: a setup mistake, answered with 500.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissingSnapshot {
    /// No `EaCLayer` ran before the handler.
    NoLayer,
    /// The section type was never registered on the accessor's builder.
    NotRegistered(&'static str),
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
    use eac_accessor::source::{Format, Memory};
    use http::Request;
    use tower::ServiceExt;

    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    struct Greeting {
        message: String,
    }
    impl EaCSection for Greeting {
        const PATH: &'static str = "greeting";
    }

    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    struct Unregistered {}
    impl EaCSection for Unregistered {
        const PATH: &'static str = "nope";
    }

    fn accessor() -> EaCAccessor {
        EaCAccessor::builder()
            .section::<Greeting>()
            .source(Memory::new(
                "m",
                Format::Toml,
                "[greeting]\nmessage = \"hi\"\n",
            ))
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
        let (status, body) = call(app, "/unregistered").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("is not registered"), "{body}");
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

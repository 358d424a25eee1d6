//! A request body limit read from the pinned snapshot on every request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use eac_accessor::{EaCAccessor, Snapshot};
use http::{Request, StatusCode, header};
use http_body_util::Limited;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::live::LiveValue;

/// Limits request bodies to a size read from configuration per request.
///
/// A declared `Content-Length` over the limit is answered `413 Payload Too Large` at
/// once; a streamed body is cut at the limit and axum's body extractors answer 413.
/// axum's own `DefaultBodyLimit` (2 MB) still applies inside: add
/// `DefaultBodyLimit::disable()` to the router to let this limit govern alone.
///
/// ```
/// use eac_accessor::{EaCAccessor, EaCSection, lens::Lens, source::{Format, Memory}};
/// use eac_tower::LiveBodyLimitLayer;
///
/// #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
/// #[eac(path = "limits")]
/// struct Limits {
///     max_body_bytes: u64,
/// }
///
/// let accessor = EaCAccessor::builder()
///     .section::<Limits>()
///     .source(Memory::new("m", Format::Toml, "[limits]\nmax_body_bytes = 1024\n"))
///     .build()?;
/// // A typed lens, built once; each request reads it from its own snapshot.
/// let max_body = Limits::lens().max_body_bytes();
/// let layer = LiveBodyLimitLayer::new(accessor, move |snapshot| *max_body.get(snapshot));
/// # let _ = layer;
/// # Ok::<(), eac_accessor::Errors>(())
/// ```
#[derive(Clone)]
pub struct LiveBodyLimitLayer {
    value: LiveValue<u64>,
}

impl LiveBodyLimitLayer {
    /// A limit that `read` takes from each request's snapshot, in bytes.
    pub fn new<F>(accessor: EaCAccessor, read: F) -> Self
    where
        F: Fn(&Snapshot) -> u64 + Send + Sync + 'static,
    {
        LiveBodyLimitLayer {
            value: LiveValue::new(accessor, read),
        }
    }
}

impl std::fmt::Debug for LiveBodyLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveBodyLimitLayer").finish_non_exhaustive()
    }
}

define_live_service! {
    /// The service of [`LiveBodyLimitLayer`].
    pub struct LiveBodyLimit<S> for LiveBodyLimitLayer;
}

impl<S> Service<Request<Body>> for LiveBodyLimit<S>
where
    S: Service<Request<Body>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let limit = self.layer.value.get(&request);
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            let response = (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over the limit of {limit} bytes"),
            )
                .into_response();
            return ResponseFuture {
                inner: None,
                rejected: Some(response),
            };
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let request = request.map(|body| Body::new(Limited::new(body, limit)));
        ResponseFuture {
            inner: Some(self.inner.call(request)),
            rejected: None,
        }
    }
}

pin_project! {
    /// The response future of [`LiveBodyLimit`]: the inner service's, or an immediate 413.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        rejected: Option<Response>,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(response) = this.rejected.take() {
            return Poll::Ready(Ok(response));
        }
        match this.inner.as_pin_mut() {
            Some(future) => future.poll(cx),
            None => panic!("LiveBodyLimit's future polled after completion"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Bytes;
    use axum::routing::post;
    use eac_accessor::Origin;
    use eac_accessor::source::{Format, Memory};
    use tower::{ServiceBuilder, ServiceExt};

    fn doc(limit: u64) -> String {
        format!("[limits]\nmax_body_bytes = {limit}\n")
    }

    /// Only what a registered section owns is configuration.
    #[derive(serde::Deserialize, schemars::JsonSchema, eac_accessor::EaCSection)]
    struct Limits {
        max_body_bytes: u64,
    }

    fn request(body: &'static str, declare_length: bool) -> Request<Body> {
        let mut builder = Request::post("/");
        if declare_length {
            builder = builder.header(header::CONTENT_LENGTH, body.len());
        }
        builder.body(Body::from(body)).unwrap()
    }

    #[tokio::test]
    async fn the_limit_follows_a_publish_for_declared_and_streamed_bodies() {
        let source = Memory::new("m", Format::Toml, doc(8));
        let accessor = EaCAccessor::builder()
            .section::<Limits>()
            .source(source.clone())
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/",
                post(|body: Bytes| async move { format!("{} bytes", body.len()) }),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(crate::EaCLayer::new(accessor.clone()))
                    .layer(LiveBodyLimitLayer::new(accessor.clone(), |s| {
                        s.section::<Limits>().max_body_bytes
                    })),
            );
        let body = "0123456789abcdef";

        for declared in [true, false] {
            let response = app.clone().oneshot(request(body, declared)).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "declared={declared}"
            );
        }
        let response = app.clone().oneshot(request("small", true)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        source.set(doc(1024));
        accessor.reload(Origin::Refresh).unwrap();
        for declared in [true, false] {
            let response = app.clone().oneshot(request(body, declared)).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "declared={declared}");
        }
    }
}

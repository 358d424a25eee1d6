//! A request timeout whose duration is read from the pinned snapshot on every request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use eac_accessor::{EaCAccessor, Snapshot};
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use crate::live::LiveValue;

/// Applies a timeout read from configuration per request: editing the configuration
/// changes it without rebuilding the service stack. A request that takes longer gets
/// `408 Request Timeout` (as tower-http's timeout answers), or the status set with
/// [`status`](LiveTimeoutLayer::status) (503 or 504 behind a gateway, say).
///
/// The duration comes from the snapshot [`EaCLayer`](crate::EaCLayer) pinned (so the
/// request sees one version throughout), or from the accessor's current one when no
/// snapshot is pinned.
///
/// ```
/// use std::time::Duration;
/// use eac_accessor::{EaCAccessor, EaCSection, lens::Lens, source::{Format, Memory}};
/// use eac_tower::LiveTimeoutLayer;
/// use http::StatusCode;
///
/// #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
/// #[eac(path = "limits")]
/// struct Limits {
///     request_timeout_ms: u64,
/// }
///
/// let accessor = EaCAccessor::builder()
///     .section::<Limits>()
///     .source(Memory::new("m", Format::Toml, "[limits]\nrequest_timeout_ms = 250\n"))
///     .build()?;
/// let timeout_ms = Limits::lens().request_timeout_ms();
/// let layer = LiveTimeoutLayer::new(accessor, move |snapshot| {
///     Duration::from_millis(*timeout_ms.get(snapshot))
/// })
/// .status(StatusCode::GATEWAY_TIMEOUT);
/// # let _ = layer;
/// # Ok::<(), eac_accessor::Errors>(())
/// ```
#[derive(Clone)]
pub struct LiveTimeoutLayer {
    value: LiveValue<Duration>,
    status: StatusCode,
}

impl LiveTimeoutLayer {
    /// A timeout that `read` takes from each request's snapshot.
    pub fn new<F>(accessor: EaCAccessor, read: F) -> Self
    where
        F: Fn(&Snapshot) -> Duration + Send + Sync + 'static,
    {
        LiveTimeoutLayer {
            value: LiveValue::new(accessor, read),
            status: StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The status a request that times out gets (default `408 Request Timeout`).
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

impl std::fmt::Debug for LiveTimeoutLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTimeoutLayer")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

define_live_service! {
    /// The service of [`LiveTimeoutLayer`].
    pub struct LiveTimeout<S> for LiveTimeoutLayer;
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for LiveTimeout<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let limit = self.layer.value.get(&request);
        ResponseFuture {
            inner: self.inner.call(request),
            sleep: tokio::time::sleep(limit),
            limit,
            status: self.layer.status,
        }
    }
}

pin_project! {
    /// The response future of [`LiveTimeout`]: the inner service's, or an empty answer
    /// with the timeout's status once the limit has passed.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        limit: Duration,
        status: StatusCode,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The inner future first: an answer ready at the limit is still given.
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result);
        }
        ready!(this.sleep.poll(cx));
        tracing::debug!(limit = ?this.limit, "request timed out");
        let mut response = Response::new(B::default());
        *response.status_mut() = *this.status;
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eac_accessor::Origin;
    use eac_accessor::source::{Format, Memory};
    use std::convert::Infallible;
    use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

    fn doc(ms: u64) -> String {
        format!("[limits]\nrequest_timeout_ms = {ms}\n")
    }

    /// Only what a registered section owns is configuration.
    #[derive(serde::Deserialize, schemars::JsonSchema, eac_accessor::EaCSection)]
    struct Limits {
        request_timeout_ms: u64,
    }

    fn accessor(source: Memory) -> EaCAccessor {
        let builder = EaCAccessor::builder().section::<Limits>();
        builder.source(source).build().unwrap()
    }

    // Virtual time: the handler "takes" 100 ms without the test waiting for it.
    #[tokio::test(start_paused = true)]
    async fn the_timeout_follows_a_publish_without_rebuilding_the_service() {
        let source = Memory::new("m", Format::Toml, doc(10));
        let accessor = accessor(source.clone());
        let service = ServiceBuilder::new()
            .layer(crate::EaCLayer::new(accessor.clone()))
            .layer(LiveTimeoutLayer::new(accessor.clone(), |s| {
                Duration::from_millis(s.section::<Limits>().request_timeout_ms)
            }))
            .service(service_fn(|_: Request<()>| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, Infallible>(Response::new(String::from("done")))
            }));

        let response = service.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);

        source.set(doc(1000));
        accessor.reload(Origin::Refresh).unwrap();
        let response = service.oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), "done");
    }

    // Named, the response future asks nothing of the inner one but to be a future: a
    // handler that holds an `Rc` across an await is timed out as any other.
    #[tokio::test(start_paused = true)]
    async fn a_handler_whose_future_is_not_send_is_timed_out() {
        let accessor = accessor(Memory::new("m", Format::Toml, doc(10)));
        let mut service = LiveTimeoutLayer::new(accessor, |_| Duration::from_millis(10)).layer(
            service_fn(|_: Request<()>| async {
                let held = std::rc::Rc::new(());
                tokio::time::sleep(Duration::from_millis(100)).await;
                drop(held);
                Ok::<_, Infallible>(Response::new(String::new()))
            }),
        );
        let future: ResponseFuture<_> = service.call(Request::new(()));
        let response = future.await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn the_status_of_a_timeout_is_configurable() {
        let accessor = accessor(Memory::new("m", Format::Toml, doc(10)));
        let service = ServiceBuilder::new()
            .layer(
                LiveTimeoutLayer::new(accessor, |_| Duration::from_millis(10))
                    .status(StatusCode::GATEWAY_TIMEOUT),
            )
            .service(service_fn(|_: Request<()>| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, Infallible>(Response::new(String::new()))
            }));
        let response = service.oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}

//! Pin one configuration snapshot per request.
//!
//! [`EaCLayer`] loads the current [`Snapshot`] once when a request arrives and puts it in
//! the request's extensions, so every handler, resolver and inner middleware of that
//! request reads the same version, even if a publish lands while it runs.

mod future;
mod layer;

use future::Meter;
pub use future::ResponseFuture;
pub use layer::{EaCLayer, ServiceBuilderExt};

use std::cell::RefCell;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::task::{Context, Poll};

use eac_accessor::canary::{Canary, Role, key_of};
use eac_accessor::{EaCAccessor, Snapshot};
use http::{HeaderName, Request, Response};
use tower_service::Service;

/// The response header that carries the version which served a request.
pub const VERSION_HEADER: HeaderName = HeaderName::from_static("x-eac-version");

/// The snapshot pinned for one request, as stored in its extensions.
///
/// Read it with [`pinned`] (plain tower) or the `Pinned` extractor (axum).
#[derive(Debug, Clone)]
pub struct PinnedSnapshot(pub Arc<Snapshot>);

/// The snapshot [`EaCLayer`] pinned for this request, if the layer ran.
///
/// ```
/// use eac_tower::pinned;
/// use http::Request;
///
/// let request = Request::new(());
/// assert!(pinned(&request).is_none()); // no EaCLayer in front of this one
/// ```
pub fn pinned<B>(request: &Request<B>) -> Option<&Arc<Snapshot>> {
    request.extensions().get::<PinnedSnapshot>().map(|p| &p.0)
}

/// Middleware that pins the current snapshot into each request; see [`EaCLayer`].
#[derive(Debug, Clone)]
pub struct EaCService<S> {
    inner: S,
    accessor: EaCAccessor,
    version_header: bool,
    canary: bool,
}

impl<S> EaCService<S> {
    /// Wraps `inner`, pinning `accessor`'s current snapshot into each request.
    pub fn new(inner: S, accessor: EaCAccessor) -> Self {
        EaCService {
            inner,
            accessor,
            version_header: true,
            canary: true,
        }
    }

    /// A layer that wraps services in `EaCService`.
    pub fn layer(accessor: EaCAccessor) -> EaCLayer {
        EaCLayer::new(accessor)
    }

    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for EaCService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // While a canary runs, the request's key decides which version it sees, and
        // while a fleet's gray release runs every request is counted for its judge; when
        // neither runs (the common case) this is one check more than `load_full`.
        let (snapshot, meter) = if self.canary && self.accessor.metering() {
            metered_pin(&self.accessor, &request)
        } else {
            (self.accessor.load_full(), None)
        };
        // The number, not its header value: formatting it waits for the response.
        // None with the header off (and for a version 0, which no publish makes).
        let version = if self.version_header {
            NonZeroU64::new(snapshot.version())
        } else {
            None
        };
        request.extensions_mut().insert(PinnedSnapshot(snapshot));
        ResponseFuture::new(self.inner.call(request), version, meter)
    }
}

/// The version a request sees while a canary or a fleet release runs, and its meter.
#[inline(never)]
fn metered_pin<B>(accessor: &EaCAccessor, request: &Request<B>) -> (Arc<Snapshot>, Option<Meter>) {
    let Some(canary) = accessor.canary() else {
        return (accessor.load_full(), accessor.meter().map(Meter::fleet));
    };
    let role = canary.role_of(canary_key(request, &canary));
    let snapshot = match role {
        Role::Canary => Arc::clone(canary.snapshot()),
        Role::Stable => accessor.load_full(),
    };
    (snapshot, Some(Meter::canary(&canary, role)))
}

/// A request's key while a canary runs: the canary's key header when the request has
/// it, else the client's IP address (`ConnectInfo<SocketAddr>` from axum, or a
/// `SocketAddr` extension), else nothing (every such request hashes alike).
fn canary_key<B>(request: &Request<B>, canary: &Canary) -> u64 {
    if canary.config().key_header.is_some()
        && let Some(key) = header_key(request, canary)
    {
        return key;
    }
    match client_ip(request) {
        Some(std::net::IpAddr::V4(v4)) => key_of(&v4.octets()),
        Some(std::net::IpAddr::V6(v6)) => key_of(&v6.octets()),
        None => key_of(&[]),
    }
}

thread_local! {
    /// The key header of the canary this thread saw last, by the canary's id: parsed
    /// once per canary and thread, not on each request.
    static KEY_HEADER: RefCell<(u64, Option<HeaderName>)> = const { RefCell::new((0, None)) };
}

/// The hash of the request's key header, if the canary has one and the request carries
/// it.
fn header_key<B>(request: &Request<B>, canary: &Canary) -> Option<u64> {
    KEY_HEADER
        .try_with(|cached| {
            let mut cached = cached.borrow_mut();
            if cached.0 != canary.id() {
                let name = canary.config().key_header.as_deref();
                *cached = (
                    canary.id(),
                    name.and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok()),
                );
            }
            let name = cached.1.as_ref()?;
            request.headers().get(name).map(|v| key_of(v.as_bytes()))
        })
        .ok()
        .flatten()
}

fn client_ip<B>(request: &Request<B>) -> Option<std::net::IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(address)) =
        request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        return Some(address.ip());
    }
    request
        .extensions()
        .get::<std::net::SocketAddr>()
        .map(std::net::SocketAddr::ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceBuilderExt;
    use crate::fixture::{Greeting, greeting};
    use eac_accessor::Origin;
    use eac_accessor::source::Memory;
    use std::convert::Infallible;
    use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

    fn accessor() -> (EaCAccessor, Memory) {
        let doc = greeting("one");
        let accessor = EaCAccessor::builder()
            .section::<Greeting>()
            .source(doc.clone())
            .build()
            .unwrap();
        (accessor, doc)
    }

    async fn echo(request: Request<()>) -> Result<Response<String>, Infallible> {
        let snapshot = pinned(&request).expect("the layer pinned a snapshot");
        Ok(Response::new(
            snapshot.section::<Greeting>().message.clone(),
        ))
    }

    #[tokio::test]
    async fn pins_the_current_snapshot_and_sets_the_version_header() {
        let (accessor, doc) = accessor();
        let service = ServiceBuilder::new()
            .pin_snapshot(accessor.clone())
            .service(service_fn(echo));

        let response = service.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.headers()[VERSION_HEADER], "1");
        assert_eq!(response.body(), "one");

        // The same service object, not rebuilt, follows a publish.
        doc.set("[greeting]\nmessage = \"two\"\n");
        accessor.reload(Origin::Refresh).unwrap();
        let response = service.oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.headers()[VERSION_HEADER], "2");
        assert_eq!(response.body(), "two");
    }

    #[tokio::test]
    async fn the_header_can_be_turned_off() {
        let (accessor, _) = accessor();
        let service = EaCLayer::new(accessor)
            .version_header(false)
            .layer(service_fn(echo));
        let response = service.oneshot(Request::new(())).await.unwrap();
        assert!(response.headers().get(VERSION_HEADER).is_none());
    }

    #[tokio::test]
    async fn a_publish_during_a_request_does_not_change_what_it_reads() {
        let (accessor, doc) = accessor();
        let writer = accessor.clone();
        let service = EaCLayer::new(accessor).layer(service_fn(move |request: Request<()>| {
            let writer = writer.clone();
            let doc = doc.clone();
            async move {
                let first = pinned(&request)
                    .unwrap()
                    .section::<Greeting>()
                    .message
                    .clone();
                doc.set("[greeting]\nmessage = \"changed\"\n");
                writer.reload(Origin::Refresh).unwrap();
                let second = pinned(&request)
                    .unwrap()
                    .section::<Greeting>()
                    .message
                    .clone();
                Ok::<_, Infallible>(Response::new(format!("{first}/{second}")))
            }
        }));
        let response = service.oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.body(), "one/one");
        assert_eq!(response.headers()[VERSION_HEADER], "1");
    }
}

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use super::VERSION_HEADER;

pin_project! {
    /// Response future of [`EaCService`](super::EaCService): the inner future, then the
    /// version header.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        version: Option<u64>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, version: Option<u64>) -> Self {
        ResponseFuture { inner, version }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The inner poll's result is returned as it is, modified in place: never moved
        // out of its `Poll` and back in (a response is over a hundred bytes).
        let mut poll = this.inner.poll(cx);
        if let Poll::Ready(Ok(response)) = &mut poll
            && let Some(version) = this.version.take()
        {
            response
                .headers_mut()
                .insert(VERSION_HEADER, HeaderValue::from(version));
        }
        poll
    }
}

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

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
        // Modified in place: the response is not moved out and back in.
        let mut output = ready!(this.inner.poll(cx));
        if let (Some(version), Ok(response)) = (this.version.take(), &mut output) {
            response
                .headers_mut()
                .insert(VERSION_HEADER, HeaderValue::from(version));
        }
        Poll::Ready(output)
    }
}

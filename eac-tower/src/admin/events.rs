//! The event stream: server-sent events, a bounded number at once, kept alive through
//! proxies, ended on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use eac_accessor::EaCAccessor;
use futures_util::StreamExt;
use futures_util::future::Shared;
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;

use super::reply::{error, retry_after};

/// A shutdown signal that every stream can wait on.
pub(crate) type Shutdown = Shared<Pin<Box<dyn Future<Output = ()> + Send>>>;

/// What a refused stream request is told to wait before trying again.
pub(crate) const STREAM_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The streams' shared settings: the free slots, the keep-alive interval and the
/// shutdown signal.
#[derive(Clone)]
pub(crate) struct Streams {
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) max: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) shutdown: Option<Shutdown>,
}

/// `GET events`: each publish, unchanged reload and rejection as a server-sent event.
///
/// The stream holds one slot from here until its body is dropped (the client went away,
/// or the server shut down); without a free slot the answer is 503 with `Retry-After`.
pub(super) async fn events(
    State(streams): State<Streams>,
    State(accessor): State<EaCAccessor>,
) -> Response {
    let Ok(slot) = Arc::clone(&streams.slots).try_acquire_owned() else {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many event streams are open (at most {}): try again later",
                streams.max
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after(STREAM_RETRY_AFTER));
        return response;
    };
    let receiver = accessor.events();
    // The slot travels with the stream, so it is freed exactly when the body is dropped.
    let stream =
        futures_util::stream::unfold((receiver, slot), |(mut receiver, slot)| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => {
                        let kind = match &event {
                            eac_accessor::Event::Published { .. } => "published",
                            eac_accessor::Event::Unchanged { .. } => "unchanged",
                            eac_accessor::Event::Rejected { .. } => "rejected",
                            eac_accessor::Event::HeldBack { .. } => "held_back",
                            eac_accessor::Event::Source { .. } => "source",
                            _ => "other",
                        };
                        let data = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
                        let sse = SseEvent::default().event(kind).data(data);
                        return Some((Ok::<_, Infallible>(sse), (receiver, slot)));
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                }
            }
        });
    let shutdown = streams.shutdown.clone();
    let stream = stream.take_until(async move {
        match shutdown {
            Some(shutdown) => shutdown.await,
            None => std::future::pending().await,
        }
    });
    Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(streams.keep_alive)
                .text("keep-alive"),
        )
        .into_response()
}

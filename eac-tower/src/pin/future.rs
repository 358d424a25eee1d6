use std::cell::{Cell, RefCell};
use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use eac_accessor::canary::{Canary, Role, RoleStats};

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
        // The version to stamp, if the header is on: one word (the zero niche) to check.
        version: Option<NonZeroU64>,
        // While a canary or a fleet's gray release runs: where this request's answer (and
        // latency, when timed) is counted.
        meter: Option<Meter>,
    }
}

/// Of the stable version's requests during an in-process canary, one in this many (per
/// thread) has its latency timed: enough for the judge's p99 (the stable version serves
/// most requests), without two clock reads on every request. The canary's own requests,
/// and a fleet release's, are each timed.
const STABLE_TIMED_ONE_IN: u32 = 16;

/// One request's part in a running canary, or in a fleet's gray release: where it is
/// counted, and when it started if its latency is timed. Two words: the response future
/// of every request, metered or not, carries room for one.
#[derive(Debug)]
pub(super) struct Meter {
    stats: Arc<RoleStats>,
    /// When the request started, in nanoseconds since [`clock_base`] plus one; 0 when its
    /// latency is not timed.
    started: u64,
}

impl Meter {
    /// A request of `role` while `canary` runs.
    #[inline]
    pub(super) fn canary(canary: &Canary, role: Role) -> Meter {
        let timed = role == Role::Canary || stable_sampled();
        Meter {
            stats: Arc::clone(canary.stats(role)),
            started: if timed { now() } else { 0 },
        }
    }

    /// A request while a fleet release runs on this member.
    pub(super) fn fleet(stats: Arc<RoleStats>) -> Meter {
        Meter {
            stats,
            started: now(),
        }
    }

    /// Counts the answer: a 5xx status, or an error instead of a response, is an error.
    #[inline(never)]
    fn done(self, server_error: bool) {
        match self.started {
            0 => self.stats.count(server_error),
            started => {
                let latency = Duration::from_nanos(now().saturating_sub(started));
                self.stats.record(latency, server_error);
            }
        }
    }
}

/// What [`Meter`] measures from: the first metered request.
fn clock_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds since [`clock_base`], plus one (never 0).
#[inline]
fn now() -> u64 {
    let since = Instant::now().saturating_duration_since(clock_base());
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

thread_local! {
    /// Stable requests metered on this thread so far, for [`STABLE_TIMED_ONE_IN`].
    static STABLE_SEEN: Cell<u32> = const { Cell::new(0) };
}

/// Whether this stable request's latency is timed.
#[inline]
fn stable_sampled() -> bool {
    STABLE_SEEN
        .try_with(|seen| {
            let n = seen.get();
            seen.set(n.wrapping_add(1));
            n % STABLE_TIMED_ONE_IN == 0
        })
        .unwrap_or(true)
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(super) fn new(inner: F, version: Option<NonZeroU64>, meter: Option<Meter>) -> Self {
        ResponseFuture {
            inner,
            version,
            meter,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The inner poll's result is returned as it is, modified in place: never moved
        // out of its `Poll` and back in (a response is over a hundred bytes).
        let mut poll = this.inner.poll(cx);
        // The version first: with the header off, one check and nothing else.
        if this.version.is_some()
            && let Poll::Ready(Ok(response)) = &mut poll
            && let Some(version) = this.version.take()
        {
            stamp(response, version.get());
        }
        if this.meter.is_some()
            && poll.is_ready()
            && let Some(meter) = this.meter.take()
        {
            let server_error = match &poll {
                Poll::Ready(Ok(response)) => response.status().is_server_error(),
                _ => true,
            };
            meter.done(server_error);
        }
        poll
    }
}

thread_local! {
    /// The header value of the last version this thread stamped: made once per version
    /// (and thread), then shared — a reference count, not a number formatted and an
    /// allocation per response. The value depends on the number alone, so one slot
    /// serves every accessor.
    static LAST: RefCell<(u64, HeaderValue)> =
        const { RefCell::new((0, HeaderValue::from_static("0"))) };
}

/// Sets the version header; kept out of line so that the poll around it stays small
/// enough to inline into the caller's.
#[inline(never)]
fn stamp<B>(response: &mut Response<B>, version: u64) {
    let value = LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != version {
            *last = (version, HeaderValue::from(version));
        }
        last.1.clone()
    });
    response.headers_mut().insert(VERSION_HEADER, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_says_each_response_s_own_version_whatever_came_before() {
        let stamped = |version: u64| {
            let mut response = Response::new(());
            stamp(&mut response, version);
            response.headers()[VERSION_HEADER]
                .to_str()
                .unwrap()
                .to_owned()
        };
        // Two accessors' versions in turn, on one thread: each answer its own number.
        for version in [7, 7, 3, 7, 12_345_678_901, 3, 1] {
            assert_eq!(stamped(version), version.to_string());
        }
        // Another thread makes its own.
        std::thread::spawn(move || assert_eq!(stamped(7), "7"))
            .join()
            .unwrap();
    }
}

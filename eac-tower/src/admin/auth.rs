//! The admin token check and the rate limit of the mutating routes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The expected token, kept only as its SHA-256 so that comparing is constant-time and
/// does not leak the length.
#[derive(Clone)]
pub(crate) struct Token([u8; 32]);

impl Token {
    pub(crate) fn new(secret: &str) -> Token {
        Token(Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether `given` is the token: both sides hashed, then compared in constant time.
    pub(crate) fn matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        self.0.ct_eq(&given).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

/// A token bucket: `burst` requests at once, then one per `refill`.
#[derive(Debug)]
pub(crate) struct RateLimit {
    burst: u32,
    refill: Duration,
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    pub(crate) fn new(burst: u32, refill: Duration) -> RateLimit {
        RateLimit {
            burst: burst.max(1),
            refill,
            state: Mutex::new((f64::from(burst.max(1)), Instant::now())),
        }
    }

    /// Takes one token; `false` when none is left.
    pub(crate) fn try_acquire(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        if !self.refill.is_zero() {
            let earned = now.duration_since(*last).as_secs_f64() / self.refill.as_secs_f64();
            *tokens = (*tokens + earned).min(f64::from(self.burst));
        } else {
            *tokens = f64::from(self.burst);
        }
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_matches_only_itself() {
        let token = Token::new("correct horse");
        assert!(token.matches("correct horse"));
        assert!(!token.matches("correct hors"));
        assert!(!token.matches("correct horse "));
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "Token([redacted])");
    }

    #[test]
    fn the_bucket_allows_a_burst_then_refuses() {
        let limit = RateLimit::new(3, Duration::from_secs(3600));
        assert!((0..3).all(|_| limit.try_acquire()));
        assert!(!limit.try_acquire());
    }
}

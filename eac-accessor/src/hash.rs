//! A content hash of a configuration document that ignores key order.

use std::fmt;

use serde_json::Value;
use xxhash_rust::xxh3::Xxh3;

/// The content hash of a merged configuration document (128-bit XXH3, shown as hex).
///
/// Two documents with the same keys and values have the same hash whatever order their
/// keys were written in, so re-saving a file with its keys reordered publishes nothing.
/// It detects change; it is not a cryptographic digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(u128);

impl ContentHash {
    /// Hashes a document.
    pub fn of(document: &Value) -> ContentHash {
        let mut hasher = Buffered {
            hasher: Xxh3::new(),
            buf: Vec::with_capacity(Buffered::CAPACITY),
        };
        feed(&mut hasher, document);
        hasher.flush();
        ContentHash(hasher.hasher.digest128())
    }

    /// The hash as a number.
    pub fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

impl serde::Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// XXH3 fed in chunks: a document is thousands of few-byte writes, and each `update`
/// of the streaming hasher has a fixed cost. The byte stream, and so the hash, is the
/// same as writing each piece directly.
struct Buffered {
    hasher: Xxh3,
    buf: Vec<u8>,
}

impl Buffered {
    const CAPACITY: usize = 8 * 1024;

    fn update(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > Self::CAPACITY {
            self.flush();
        }
        if bytes.len() >= Self::CAPACITY {
            self.hasher.update(bytes);
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn flush(&mut self) {
        self.hasher.update(&self.buf);
        self.buf.clear();
    }
}

// Each value is written with a type tag and, for containers and strings, a length, so
// that no two different documents feed the same byte stream.
fn feed(h: &mut Buffered, value: &Value) {
    match value {
        Value::Null => h.update(&[0]),
        Value::Bool(b) => h.update(&[1, u8::from(*b)]),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                tagged(h, 2, u.to_le_bytes());
            } else if let Some(i) = n.as_i64() {
                tagged(h, 3, i.to_le_bytes());
            } else {
                tagged(h, 4, n.as_f64().unwrap_or(f64::NAN).to_bits().to_le_bytes());
            }
        }
        Value::String(s) => feed_str(h, 5, s),
        Value::Array(items) => {
            tagged(h, 6, (items.len() as u64).to_le_bytes());
            items.iter().for_each(|v| feed(h, v));
        }
        Value::Object(map) => {
            tagged(h, 7, (map.len() as u64).to_le_bytes());
            // serde_json's map is a BTreeMap (no `preserve_order`), so iteration is
            // sorted by key; a test below fails if that ever changes.
            for (k, v) in map {
                feed_str(h, 8, k);
                feed(h, v);
            }
        }
    }
}

/// A tag and eight bytes, in one update: the same bytes as two.
#[inline]
fn tagged(h: &mut Buffered, tag: u8, bytes: [u8; 8]) {
    let mut head = [tag; 9];
    head[1..].copy_from_slice(&bytes);
    h.update(&head);
}

fn feed_str(h: &mut Buffered, tag: u8, s: &str) {
    tagged(h, tag, (s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn key_order_does_not_matter() {
        let a = parse(r#"{"b": 1, "a": {"y": [1, 2], "x": "s"}}"#);
        let b = parse(r#"{"a": {"x": "s", "y": [1, 2]}, "b": 1}"#);
        assert_eq!(ContentHash::of(&a), ContentHash::of(&b));
    }

    #[test]
    fn any_value_change_changes_the_hash() {
        let base = ContentHash::of(&parse(r#"{"a": [1, 2], "b": "x"}"#));
        for other in [
            r#"{"a": [2, 1], "b": "x"}"#,
            r#"{"a": [1, 2], "b": "y"}"#,
            r#"{"a": [1, 2], "b": "x", "c": null}"#,
            r#"{"a": [1, 2.0], "b": "x"}"#,
            r#"{"a": [[1], 2], "b": "x"}"#,
            r#"{"a": [1, 2], "bx": ""}"#,
        ] {
            assert_ne!(base, ContentHash::of(&parse(other)), "{other}");
        }
    }

    #[test]
    fn renders_as_32_hex_digits() {
        let h = ContentHash::of(&Value::Null).to_string();
        assert_eq!(h.len(), 32);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn the_hash_of_a_document_never_changes() {
        // Hashes are kept in the durable history: a change would make the first reload
        // after an upgrade publish a version identical to the running one.
        let long = "x".repeat(20_000);
        let doc = serde_json::json!({
            "limits": {"max": 5, "ratio": 0.25, "neg": -3, "on": true, "off": null},
            "list": [1, "two", [3], {"four": 4}],
            "long": long,
            "many": (0..2000).map(|i| format!("item {i}")).collect::<Vec<_>>(),
        });
        assert_eq!(
            ContentHash::of(&doc).to_string(),
            "630115feddcede8ab57513948aed5d09"
        );
    }
}

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
        let mut hasher = Hasher::new();
        hasher.value(document);
        hasher.finish()
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

/// Writes a document's hash a piece at a time, for a walk that visits the document for
/// another reason too (the unknown-key walk): the same bytes, in the same order, as
/// [`ContentHash::of`] writes for the document as it is when the walk is done.
///
/// Each value is written with a type tag and, for containers and strings, a length, so
/// that no two different documents write the same byte stream; an object's entries in
/// key order.
pub(crate) struct Hasher {
    hasher: Xxh3,
    /// XXH3 fed in chunks: a document is thousands of few-byte writes, and each `update`
    /// of the streaming hasher has a fixed cost. On the stack: a heap buffer this size
    /// is a large allocation, which makes glibc's malloc tidy its free lists first.
    buf: [u8; Hasher::CAPACITY],
    len: usize,
}

impl Hasher {
    const CAPACITY: usize = 8 * 1024;

    pub(crate) fn new() -> Hasher {
        Hasher {
            hasher: Xxh3::new(),
            buf: [0; Hasher::CAPACITY],
            len: 0,
        }
    }

    /// The hash of everything written.
    pub(crate) fn finish(mut self) -> ContentHash {
        self.flush();
        ContentHash(self.hasher.digest128())
    }

    /// Writes a whole value.
    pub(crate) fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.update(&[0]),
            Value::Bool(b) => self.update(&[1, u8::from(*b)]),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    self.tagged(2, u.to_le_bytes());
                } else if let Some(i) = n.as_i64() {
                    self.tagged(3, i.to_le_bytes());
                } else {
                    self.tagged(4, n.as_f64().unwrap_or(f64::NAN).to_bits().to_le_bytes());
                }
            }
            Value::String(s) => self.string(5, s),
            Value::Array(items) => {
                self.array(items.len());
                items.iter().for_each(|v| self.value(v));
            }
            Value::Object(map) => {
                self.object(map.len());
                // serde_json's map is a BTreeMap (no `preserve_order`), so iteration is
                // sorted by key; a test below fails if that ever changes.
                for (k, v) in map {
                    self.key(k);
                    self.value(v);
                }
            }
        }
    }

    /// Starts an array of `len` items; each is written next.
    pub(crate) fn array(&mut self, len: usize) {
        self.tagged(6, (len as u64).to_le_bytes());
    }

    /// Starts an object of `len` entries; each is written next, in key order, as its
    /// [`key`](Hasher::key) then its value.
    pub(crate) fn object(&mut self, len: usize) {
        self.tagged(7, (len as u64).to_le_bytes());
    }

    /// The key of an object's entry.
    pub(crate) fn key(&mut self, key: &str) {
        self.string(8, key);
    }

    #[inline]
    fn update(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > Self::CAPACITY {
            self.flush();
        }
        if bytes.len() >= Self::CAPACITY {
            self.hasher.update(bytes);
        } else {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }

    fn flush(&mut self) {
        self.hasher.update(&self.buf[..self.len]);
        self.len = 0;
    }

    /// A tag and eight bytes, in one update: the same bytes as two.
    #[inline]
    fn tagged(&mut self, tag: u8, bytes: [u8; 8]) {
        let mut head = [tag; 9];
        head[1..].copy_from_slice(&bytes);
        self.update(&head);
    }

    fn string(&mut self, tag: u8, s: &str) {
        self.tagged(tag, (s.len() as u64).to_le_bytes());
        self.update(s.as_bytes());
    }
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

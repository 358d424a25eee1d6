//! How much a source may read, and how much its parser may build.
//!
//! Two budgets keep a hostile or careless document from taking the process down:
//!
//! - a [`SizeCap`] bounds the bytes read from a file (16 MiB by default), enforced while
//!   reading, so a sparse, growing or `/proc`-like file is never read whole;
//! - [`ParseLimits`] bound what the parser of a document within the cap may build: its
//!   nesting depth (checked by a byte scan before the parse), its number of values, and
//!   for YAML its aliases and what they expand to (checked before anything is built).

use std::fmt;
use std::io::Read;

use crate::error::{Error, ErrorKind, SourceName};

/// The most bytes a source may read; one more and it is rejected, naming the source.
///
/// The cap is enforced while reading: at most `cap + 1` bytes are ever read, whatever
/// size the file claims to have, so a 1 GiB sparse file, a file that grows while it is
/// read, or one that reports size 0 stays bounded.
///
/// ```
/// use eac_accessor::source::{File, SizeCap};
///
/// let file = File::new("config/app.toml").max_size(SizeCap::mib(1));
/// assert_eq!(SizeCap::FILE.bytes(), 16 * 1024 * 1024);
/// # let _ = file;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SizeCap(u64);

impl SizeCap {
    /// The default cap for a configuration file: 16 MiB.
    pub const FILE: SizeCap = SizeCap::mib(16);

    /// A cap of `bytes` bytes.
    pub const fn bytes_exact(bytes: u64) -> SizeCap {
        SizeCap(bytes)
    }

    /// A cap of `mib` MiB.
    pub const fn mib(mib: u64) -> SizeCap {
        SizeCap(mib * 1024 * 1024)
    }

    /// The cap, in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Reads `reader` to its end, or fails as soon as it yields more than the cap.
    ///
    /// Reads at most `cap + 1` bytes. An I/O failure is an [`ErrorKind::Io`] error and an
    /// oversized input an [`ErrorKind::Limit`] error, both naming `source`.
    ///
    /// ```
    /// use eac_accessor::{ErrorKind, SourceName, source::SizeCap};
    ///
    /// let name = SourceName::Memory("body".into());
    /// let small = SizeCap::bytes_exact(4).read_to_end(&b"1234"[..], &name)?;
    /// assert_eq!(small, b"1234");
    /// let err = SizeCap::bytes_exact(4).read_to_end(&b"12345"[..], &name).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Limit);
    /// # Ok::<(), eac_accessor::Error>(())
    /// ```
    pub fn read_to_end(self, reader: impl Read, source: &SourceName) -> Result<Vec<u8>, Error> {
        self.read_to_end_sized(reader, 0, source)
    }

    /// [`read_to_end`](SizeCap::read_to_end), with the size the input claims to have
    /// (a file's length, a `Content-Length`) as a hint for the first allocation.
    ///
    /// The hint is not trusted: at most `cap + 1` bytes are allocated for it, and an
    /// input that claims 0 bytes is still read, and capped, like any other.
    pub fn read_to_end_sized(
        self,
        reader: impl Read,
        size_hint: u64,
        source: &SourceName,
    ) -> Result<Vec<u8>, Error> {
        let limit = self.0.saturating_add(1);
        // One allocation when the hint is right; at the cap, none past `cap + 1`.
        let first = size_hint.saturating_add(1).max(8 * 1024).min(limit);
        let mut bytes = Vec::with_capacity(usize::try_from(first).unwrap_or(usize::MAX));
        reader.take(limit).read_to_end(&mut bytes).map_err(|e| {
            Error::new(ErrorKind::Io, format!("cannot read: {e}")).with_source(source.clone())
        })?;
        if bytes.len() as u64 > self.0 {
            return Err(self.exceeded(source));
        }
        Ok(bytes)
    }

    /// The error for an input larger than the cap, naming `source`.
    pub fn exceeded(self, source: &SourceName) -> Error {
        Error::new(
            ErrorKind::Limit,
            format!("larger than the size cap of {self}: not read further"),
        )
        .with_source(source.clone())
    }
}

impl Default for SizeCap {
    fn default() -> Self {
        SizeCap::FILE
    }
}

impl fmt::Display for SizeCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: u64 = 1024 * 1024;
        const KIB: u64 = 1024;
        match self.0 {
            b if b >= MIB && b % MIB == 0 => write!(f, "{} MiB", b / MIB),
            b if b >= KIB && b % KIB == 0 => write!(f, "{} KiB", b / KIB),
            b => write!(f, "{b} bytes"),
        }
    }
}

/// Budgets for parsing one document: nesting depth, number of values, YAML aliases.
///
/// The defaults accept any reasonable configuration — a 1 MB document with 10,000 keys
/// takes a twentieth of the node budget, a 16 MiB one of the same shape three quarters —
/// and keep the memory a document can cost in proportion to its size: a value costs
/// about 40 bytes once parsed, so the node budget bounds a dense document (`[0,0,0,…]`)
/// to a few tens of MB. A budget that is exceeded rejects the document with an
/// [`ErrorKind::Limit`] error naming the source and the budget.
///
/// | budget | default | checked |
/// |---|---|---|
/// | [`max_depth`](ParseLimits::max_depth) | 64 | by a byte scan of brackets and indentation before the parse (all formats), and by the YAML parser |
/// | [`max_nodes`](ParseLimits::max_nodes) | 500,000 | by the byte scan (TOML, JSON); on the YAML parser's event stream, counting what aliases expand to, before any value is built |
/// | [`max_aliases`](ParseLimits::max_aliases) | 10,000 | YAML alias references (`*name`) |
/// | [`max_alias_bytes`](ParseLimits::max_alias_bytes) | 4 MiB | YAML: text that aliases may add to the document's own |
///
/// ```
/// use eac_accessor::source::{Dir, ParseLimits};
///
/// let limits = ParseLimits::default().max_depth(16).max_nodes(50_000);
/// let dir = Dir::new("/etc/my-service").limits(limits);
/// assert_eq!(limits.depth(), 16);
/// # let _ = dir;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParseLimits {
    depth: usize,
    nodes: usize,
    aliases: usize,
    alias_bytes: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            depth: 64,
            nodes: 500_000,
            aliases: 10_000,
            alias_bytes: 4 * 1024 * 1024,
        }
    }
}

impl ParseLimits {
    /// The most nested maps and lists a document may have (the top-level map is 1).
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.depth = depth;
        self
    }

    /// The most values — maps, lists, keys and scalars — a document may hold; in YAML,
    /// counting every value an alias repeats.
    pub fn max_nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes;
        self
    }

    /// The most alias references (`*name`) a YAML document may hold.
    pub fn max_aliases(mut self, aliases: usize) -> Self {
        self.aliases = aliases;
        self
    }

    /// The most bytes of scalar text YAML aliases may add to what the document holds.
    pub fn max_alias_bytes(mut self, bytes: usize) -> Self {
        self.alias_bytes = bytes;
        self
    }

    /// The depth budget.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The node budget.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The alias budget.
    pub fn aliases(&self) -> usize {
        self.aliases
    }

    /// The alias expansion budget, in bytes.
    pub fn alias_bytes(&self) -> usize {
        self.alias_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that never ends, like a file that keeps growing.
    struct Endless;

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(b'a');
            Ok(buf.len())
        }
    }

    #[test]
    fn reads_at_most_one_byte_past_the_cap() {
        let name = SourceName::Memory("endless".into());
        let err = SizeCap::bytes_exact(1000)
            .read_to_end(Endless, &name)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Limit);
        assert_eq!(err.source(), Some(&name));
        assert!(err.message().contains("1000 bytes"), "{err}");
        let exact = SizeCap::bytes_exact(3)
            .read_to_end(&b"abc"[..], &name)
            .unwrap();
        assert_eq!(exact, b"abc");
    }

    #[test]
    fn caps_display_in_their_unit() {
        assert_eq!(SizeCap::FILE.to_string(), "16 MiB");
        assert_eq!(SizeCap::bytes_exact(4096).to_string(), "4 KiB");
        assert_eq!(SizeCap::bytes_exact(1000).to_string(), "1000 bytes");
    }
}

//! A last-known-good cache: one document that passed every check, kept on disk so a
//! service whose remote source is unreachable at start can start from it.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Format, SizeCap};
use crate::error::{Error, ErrorKind, SourceName};
use crate::state_dir::{self, StateDir};

/// The last document a remote source published, in one owner-only file.
///
/// [`store`](LastGood::store) writes atomically — a temporary file beside the cache,
/// `fsync`, rename, then an `fsync` of the folder — so a crash leaves either the old
/// document or the new one, never a torn one. [`load`](LastGood::load) returns `None`
/// (with a warning in the log) for a missing, unreadable or corrupt file: a cache that
/// cannot be trusted is skipped, never published.
///
/// The file holds a one-line header (`eac-last-good v1 <format> <xxh3 of the text>`)
/// followed by the document's text exactly as it was fetched, so it can be read by a
/// person and a torn or edited file is detected.
///
/// ```
/// use eac_accessor::source::{Format, LastGood};
///
/// let dir = tempfile::tempdir()?;
/// let cache = LastGood::new(dir.path().join("remote.cache"));
/// assert!(cache.load().is_none()); // nothing cached yet
/// cache.store(Format::Toml, "[greeting]\nmessage = \"hi\"\n")?;
/// let (format, text) = cache.load().expect("just stored");
/// assert_eq!((format, text.as_str()), (Format::Toml, "[greeting]\nmessage = \"hi\"\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct LastGood {
    path: PathBuf,
    cap: SizeCap,
}

const MAGIC: &str = "eac-last-good v1";

impl LastGood {
    /// A cache kept in the file at `path` (its folder is created owner-only on the first
    /// store, when missing). The file is never read or written through a symbolic link;
    /// an existing folder is not checked — keep it in a [`StateDir`] (see
    /// `in_dir`, feature `http`), where no other user can plant a cache.
    pub fn new(path: impl Into<PathBuf>) -> LastGood {
        LastGood {
            path: path.into(),
            cap: SizeCap::FILE,
        }
    }

    /// The cache of the remote document at `url`, in the folder `state_dir`: the file
    /// `remote-<fingerprint>.cache`, named by [`Http::fingerprint`](super::Http::fingerprint)
    /// — the layout `live_server` keeps in its state dir. (Feature `http`.)
    ///
    /// One file per URL as requested, its query in full: pointing a service at another
    /// URL never starts it from the other document, while a URL's credentials (changed by
    /// a rotation) and fragment name the same file. Several remotes share a folder
    /// without clashing. A URL that [`Http::new`](super::Http::new) refuses is refused
    /// here with the same error.
    ///
    /// ```
    /// use eac_accessor::StateDir;
    /// use eac_accessor::source::{Http, LastGood};
    ///
    /// # let tmp = tempfile::tempdir()?;
    /// let state = StateDir::open(tmp.path().join("state"))?; // checked, owner-only
    /// let url = "http://ops:s3cret@config.internal/app.toml?env=prod";
    /// let remote = Http::new(url)?.cache(LastGood::in_dir(&state, url)?);
    ///
    /// let cache = LastGood::in_dir(&state, url)?;
    /// let name = format!("remote-{}.cache", remote.fingerprint());
    /// assert_eq!(cache.path(), state.join(&name));
    /// let rotated = "http://ops:n3w@config.internal/app.toml?env=prod";
    /// assert_eq!(LastGood::in_dir(&state, rotated)?, cache);
    /// let staging = "http://config.internal/app.toml?env=staging";
    /// assert_ne!(LastGood::in_dir(&state, staging)?, cache);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "http")]
    pub fn in_dir(state_dir: &StateDir, url: &str) -> Result<LastGood, Error> {
        let fingerprint = super::http::target::fingerprint(url)?;
        Ok(LastGood::new(
            state_dir.join(format!("remote-{fingerprint}.cache")),
        ))
    }

    /// Reads at most `cap` bytes of the cache file (default 16 MiB); a larger file is
    /// skipped as corrupt.
    pub fn max_size(mut self, cap: SizeCap) -> LastGood {
        self.cap = cap;
        self
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `text` (in `format`) as the last good document, atomically and readable by
    /// the owner only. Blocks on disk I/O.
    ///
    /// A failure is an [`ErrorKind::Io`] error naming the cache file, or an
    /// [`ErrorKind::Limit`] one for a document over the cap (which [`load`](LastGood::load)
    /// would skip); the previous cache, if any, is then left as it was.
    pub fn store(&self, format: Format, text: &str) -> Result<(), Error> {
        let io = |what: &str, e: std::io::Error| {
            Error::new(
                ErrorKind::Io,
                format!("cannot {what} the last-good cache: {e}"),
            )
            .with_source(SourceName::File(self.path.clone()))
        };
        if text.len() as u64 > self.cap.bytes() {
            // `load` would skip it: keep the previous cache rather than replace it by one
            // that cannot be started from.
            return Err(Error::new(
                ErrorKind::Limit,
                format!(
                    "the document ({} bytes) is over the last-good cache's cap ({}): not cached, \
                     the previous cache stays",
                    text.len(),
                    self.cap
                ),
            )
            .with_source(SourceName::File(self.path.clone())));
        }
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            StateDir::open(&dir).map_err(|e| e.with_source(SourceName::File(self.path.clone())))?;
        }
        let (tmp, mut file) = state_dir::create_temp(&self.path).map_err(|e| io("create", e))?;
        let written = (|| {
            writeln!(
                file,
                "{MAGIC} {} {:016x}",
                tag(format),
                xxhash_rust::xxh3::xxh3_64(text.as_bytes())
            )?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("write", e));
        }
        // `rename` replaces a link planted at the path; it never writes through it.
        if let Err(e) = std::fs::rename(&tmp, &self.path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("replace", e));
        }
        state_dir::sync_parent(&self.path);
        Ok(())
    }

    /// The cached document and its format, or `None` when there is none or it cannot be
    /// trusted (unreadable, over the size cap, header or checksum wrong, not UTF-8): then
    /// a warning naming the file says why. Blocks on disk I/O.
    pub fn load(&self) -> Option<(Format, String)> {
        match self.try_load() {
            Ok(found) => found,
            Err(why) => {
                tracing::warn!(cache = %self.path.display(), %why, "the last-good cache is skipped");
                None
            }
        }
    }

    /// Like [`load`](LastGood::load), saying why a cache that exists was skipped.
    pub fn try_load(&self) -> Result<Option<(Format, String)>, Error> {
        let name = SourceName::File(self.path.clone());
        let corrupt = |why: &str| {
            Error::new(ErrorKind::Parse, format!("corrupt last-good cache: {why}"))
                .with_source(name.clone())
        };
        let file = match state_dir::open_private(std::fs::OpenOptions::new().read(true), &self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("cannot open the last-good cache: {e}"),
                )
                .with_source(name));
            }
        };
        // The header adds a few dozen bytes to a document within the cap.
        let cap = SizeCap::bytes_exact(self.cap.bytes().saturating_add(128));
        let bytes = cap.read_to_end(file, &name)?;
        let text = String::from_utf8(bytes).map_err(|_| corrupt("not UTF-8"))?;
        let (header, body) = text
            .split_once('\n')
            .ok_or_else(|| corrupt("no header line"))?;
        let mut fields = header
            .strip_prefix(MAGIC)
            .ok_or_else(|| corrupt("unknown header"))?
            .split_whitespace();
        let format = match fields.next() {
            Some("toml") => Format::Toml,
            Some("yaml") => Format::Yaml,
            Some("json") => Format::Json,
            _ => return Err(corrupt("unknown format in the header")),
        };
        let sum = fields
            .next()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or_else(|| corrupt("no checksum in the header"))?;
        if xxhash_rust::xxh3::xxh3_64(body.as_bytes()) != sum {
            return Err(corrupt("checksum mismatch (torn or edited)"));
        }
        Ok(Some((format, body.to_owned())))
    }
}

fn tag(format: Format) -> &'static str {
    match format {
        Format::Toml => "toml",
        Format::Yaml => "yaml",
        Format::Json => "json",
    }
}

impl fmt::Debug for LastGood {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LastGood")
            .field("path", &self.path)
            .field("cap", &self.cap)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LastGood::new(dir.path().join("sub/remote.cache"));
        cache.store(Format::Json, "{\"a\": 1}").unwrap();
        cache.store(Format::Yaml, "a: 2\n").unwrap();
        assert_eq!(cache.load(), Some((Format::Yaml, "a: 2\n".to_owned())));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(cache.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temp file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("remote.cache")]);
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_neither_read_nor_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        let forged = LastGood::new(&victim);
        forged.store(Format::Toml, "forged = true\n").unwrap();
        let before = std::fs::read(&victim).unwrap();
        let cache = LastGood::new(dir.path().join("remote.cache"));
        std::os::unix::fs::symlink(&victim, cache.path()).unwrap();
        // Read: the forged document behind the link is not served.
        let error = cache.try_load().unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert_eq!(cache.load(), None);
        // Written: the link is replaced, the file it pointed at is untouched.
        cache.store(Format::Toml, "a = 1\n").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), before);
        assert!(
            !std::fs::symlink_metadata(cache.path())
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(cache.load(), Some((Format::Toml, "a = 1\n".to_owned())));
    }

    #[test]
    fn a_corrupt_cache_is_skipped_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LastGood::new(dir.path().join("remote.cache"));
        assert_eq!(cache.try_load().unwrap(), None);
        cache.store(Format::Toml, "a = 1\n").unwrap();
        let stored = std::fs::read_to_string(cache.path()).unwrap();
        // An edited body: the checksum no longer matches.
        std::fs::write(cache.path(), stored.replace("a = 1", "a = 2")).unwrap();
        let err = cache.try_load().unwrap_err();
        assert!(err.message().contains("checksum"), "{err}");
        assert_eq!(cache.load(), None);
        // Garbage with no header.
        std::fs::write(cache.path(), [0xff, 0xfe, 0x00]).unwrap();
        assert!(cache.try_load().unwrap_err().message().contains("UTF-8"));
        // Over the cap.
        let small = LastGood::new(cache.path()).max_size(SizeCap::bytes_exact(4));
        cache.store(Format::Toml, &"# x\n".repeat(100)).unwrap();
        assert_eq!(small.try_load().unwrap_err().kind(), ErrorKind::Limit);
        // And never written over it: the previous cache stays.
        let error = small.store(Format::Toml, "a = 12345\n").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Limit, "{error}");
        assert_eq!(cache.load(), Some((Format::Toml, "# x\n".repeat(100))));
    }
}

//! File and directory sources.

use std::io;
use std::path::{Path, PathBuf};

use super::{Format, Layer, ParseLimits, SizeCap, Source};
use crate::error::{Error, ErrorKind, SourceName};

/// One configuration file, in the format its extension names (or the one given).
///
/// Required by default: a missing file rejects the candidate with
/// [`ErrorKind::SourceMissing`]. An [`optional`](File::optional) file that is missing
/// contributes nothing. A file larger than its [`SizeCap`] (16 MiB by default) is
/// rejected without being read further; its document is parsed within [`ParseLimits`].
///
/// ```
/// use eac_accessor::source::{File, Format, ParseLimits, SizeCap};
///
/// let base = File::new("config/app.toml");
/// let local = File::new("config/local.yaml").optional();
/// let odd = File::new("config/app.conf").format(Format::Toml);
/// let small = File::new("config/flags.json")
///     .max_size(SizeCap::mib(1))
///     .limits(ParseLimits::default().max_depth(8));
/// # let _ = (base, local, odd, small);
/// ```
#[derive(Debug, Clone)]
pub struct File {
    path: PathBuf,
    format: Option<Format>,
    required: bool,
    bounds: Bounds,
}

/// A file's size cap and parse limits.
#[derive(Debug, Clone, Copy, Default)]
struct Bounds {
    cap: SizeCap,
    limits: ParseLimits,
}

impl File {
    /// A required file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        File {
            path: path.into(),
            format: None,
            required: true,
            bounds: Bounds::default(),
        }
    }

    /// Sets the most bytes the file may hold (default [`SizeCap::FILE`], 16 MiB).
    pub fn max_size(mut self, cap: SizeCap) -> Self {
        self.bounds.cap = cap;
        self
    }

    /// Sets the budgets its document is parsed within (default [`ParseLimits::default`]).
    pub fn limits(mut self, limits: ParseLimits) -> Self {
        self.bounds.limits = limits;
        self
    }

    /// Makes the file optional: when it does not exist, it adds nothing.
    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    /// Sets the format instead of guessing it from the extension.
    pub fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }
}

impl Source for File {
    fn load(&self) -> Result<Vec<Layer>, Vec<Error>> {
        match read_file(&self.path, self.format, self.bounds) {
            Ok(layer) => Ok(vec![layer]),
            Err(ReadError::Missing) if !self.required => Ok(vec![]),
            Err(ReadError::Missing) => Err(vec![
                Error::new(ErrorKind::SourceMissing, "required file does not exist")
                    .with_source(SourceName::File(self.path.clone())),
            ]),
            Err(ReadError::Other(e)) => Err(vec![e]),
        }
    }
}

/// Every configuration file directly in a folder, merged in file-name order.
///
/// Reads `*.toml`, `*.yaml`, `*.yml` and `*.json` (symlinks followed); skips names that
/// start with `.` — editor swap files, and the `..data` folder of a Kubernetes ConfigMap
/// mount, whose files are reached through the symlinks beside it — and every other
/// extension (`app.toml~`, `app.toml___jb_tmp___`). The folder is listed again on every
/// reload, so added and removed files are seen.
///
/// A folder that holds no configuration file is an error ("no configuration files in
/// …"), reported once, rather than a missing key for every field. Each file is bounded
/// like a [`File`]: [`max_size`](Dir::max_size) and [`limits`](Dir::limits) apply to
/// every one of them.
///
/// ```
/// use eac_accessor::source::{Dir, SizeCap};
///
/// let dir = Dir::new("/etc/my-service").max_size(SizeCap::mib(4));
/// # let _ = dir;
/// ```
#[derive(Debug, Clone)]
pub struct Dir {
    path: PathBuf,
    bounds: Bounds,
}

impl Dir {
    /// The folder at `path`. It must exist, and hold a configuration file, when the
    /// configuration is loaded.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Dir {
            path: path.into(),
            bounds: Bounds::default(),
        }
    }

    /// Sets the most bytes each file may hold (default [`SizeCap::FILE`], 16 MiB).
    pub fn max_size(mut self, cap: SizeCap) -> Self {
        self.bounds.cap = cap;
        self
    }

    /// Sets the budgets each file's document is parsed within.
    pub fn limits(mut self, limits: ParseLimits) -> Self {
        self.bounds.limits = limits;
        self
    }

    /// The configuration files the folder holds now, in merge order.
    pub fn files(&self) -> io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if name.starts_with('.') || Format::from_path(&path).is_none() {
                continue;
            }
            // `metadata` follows symlinks: a dangling link mid-swap is skipped like a
            // file that is not there yet.
            if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                files.push(path);
            }
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        Ok(files)
    }
}

impl Source for Dir {
    fn load(&self) -> Result<Vec<Layer>, Vec<Error>> {
        let name = || SourceName::Dir(self.path.clone());
        let files = self.files().map_err(|e| {
            let error = if e.kind() == io::ErrorKind::NotFound {
                Error::new(ErrorKind::SourceMissing, "directory does not exist")
            } else {
                Error::new(ErrorKind::Io, format!("cannot list directory: {e}"))
            };
            vec![error.with_source(name())]
        })?;
        let mut layers = Vec::with_capacity(files.len());
        let mut errors = Vec::new();
        for path in files {
            match read_file(&path, None, self.bounds) {
                Ok(layer) => layers.push(layer),
                // Removed between listing and reading: it is simply not there.
                Err(ReadError::Missing) => {}
                Err(ReadError::Other(e)) => errors.push(e),
            }
        }
        if errors.is_empty() && layers.is_empty() {
            // Said once, rather than a missing key for every field of every section.
            errors.push(
                Error::new(
                    ErrorKind::SourceMissing,
                    format!(
                        "no configuration files in {} (*.toml, *.yaml, *.yml, *.json)",
                        self.path.display()
                    ),
                )
                .with_source(name()),
            );
        }
        if errors.is_empty() {
            Ok(layers)
        } else {
            Err(errors)
        }
    }
}

enum ReadError {
    Missing,
    Other(Error),
}

fn read_file(path: &Path, format: Option<Format>, bounds: Bounds) -> Result<Layer, ReadError> {
    let name = || SourceName::File(path.to_path_buf());
    let format = format.or_else(|| Format::from_path(path)).ok_or_else(|| {
        ReadError::Other(
            Error::new(
                ErrorKind::Parse,
                "unknown format: use a .toml, .yaml, .yml or .json extension, or `File::format`",
            )
            .with_source(name()),
        )
    })?;
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ReadError::Missing,
        _ => ReadError::Other(
            Error::new(ErrorKind::Io, format!("cannot read file: {e}")).with_source(name()),
        ),
    })?;
    // The size the file claims is not trusted (sparse, growing, `/proc`-like files):
    // the cap is enforced on the bytes actually read.
    let claimed = file.metadata().map_or(0, |m| m.len());
    let bytes = bounds
        .cap
        .read_to_end_sized(file, claimed, &name())
        .map_err(ReadError::Other)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        ReadError::Other(
            Error::new(
                ErrorKind::Parse,
                format!("not valid UTF-8 at line {line} (byte {})", valid.len()),
            )
            .with_source(name()),
        )
    })?;
    Ok(Layer::text(name(), format, text).with_limits(bounds.limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_lists_config_files_in_name_order_skipping_dotfiles() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "b.yaml",
            "a.toml",
            "c.json",
            ".hidden.toml",
            "app.toml~",
            "x.toml___jb_tmp___",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("..data")).unwrap();
        let names: Vec<_> = Dir::new(dir.path())
            .files()
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.toml", "b.yaml", "c.json"]);
    }

    #[test]
    fn missing_required_file_is_an_error_optional_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        let err = File::new(&path).load().unwrap_err();
        assert_eq!(err[0].kind(), ErrorKind::SourceMissing);
        assert_eq!(err[0].source(), Some(&SourceName::File(path.clone())));
        assert!(File::new(&path).optional().load().unwrap().is_empty());
    }

    #[test]
    fn dir_reports_every_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "x = = 1").unwrap();
        std::fs::write(dir.path().join("b.json"), "{").unwrap();
        std::fs::write(dir.path().join("c.toml"), "ok = 1").unwrap();
        // Files are parsed when merged; every broken one is reported then.
        let layers = Dir::new(dir.path()).load().unwrap();
        assert!(
            !format!("{layers:?}").contains("x = = 1"),
            "Debug shows no content"
        );
        let errors = super::super::merge(layers).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().all(|e| e.kind() == ErrorKind::Parse));
    }
}

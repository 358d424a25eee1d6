//! The folder a service keeps its state in: durable history, last-good caches, the lock.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind};

/// A folder that holds a service's state — the durable history, the last-good caches of
/// remote sources, the lock that makes it one process's — checked before anything in it
/// is read or written.
///
/// The state holds whole documents, secrets included, and a rollback or a start from a
/// cache serves what it finds there: a folder another user can write to, or a file in it
/// that is a link to elsewhere, would let them choose what the service serves (or make
/// it overwrite one of your files). So [`open`](StateDir::open) accepts a folder only
/// when it is
///
/// - a real folder, not a symbolic link to one;
/// - owned by the user the process runs as;
/// - without any group or other permission bits (mode `0700`);
///
/// and refuses anything else with an [`ErrorKind::Io`] error naming the folder, what is
/// wrong, and the command that fixes it. A folder that does not exist is created with
/// mode `0700` (its missing parents too). Every file eac opens in it is opened without
/// following symbolic links, created owner-only, and tightened to `0600` when found
/// looser; temporary files get a random name and are created only when new.
///
/// [`Builder::durable_history`](crate::Builder::durable_history) opens its folder
/// through this check; open the folder yourself first when other state (a
/// [`LastGood`](crate::source::LastGood) cache) goes in it too, so nothing is read from a
/// folder that would be refused.
///
/// ```
/// use eac_accessor::StateDir;
///
/// # let tmp = tempfile::tempdir()?;
/// let state = StateDir::open(tmp.path().join("my-service"))?; // created 0700
/// assert!(state.path().ends_with("my-service"));
///
/// // A folder others may enter is refused, naming it and the fix.
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755))?;
/// let error = StateDir::open(state.path()).unwrap_err();
/// assert!(error.message().contains("chmod 700"), "{error}");
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Opens the state folder at `path`, creating it (mode `0700`) when missing, and
    /// checks that it is a real folder, owned by this user, with no group or other
    /// permission bits.
    pub fn open(path: impl Into<PathBuf>) -> Result<StateDir, Error> {
        let path = path.into();
        check_or_create(&path)?;
        Ok(StateDir { path })
    }

    /// Opens the per-user state folder `name` of application `app` (see
    /// [`per_user_path`](StateDir::per_user_path)); when it lies in the shared temp
    /// folder, the per-user folder there is checked like the state folder itself, so
    /// that another user cannot have made it first.
    pub fn per_user(app: &str, name: &str) -> Result<StateDir, Error> {
        let (base, shared) = per_user_base(app);
        if shared {
            // `<temp>/eac-<uid>`: the one level in a folder everyone can write to.
            if let Some(root) = base.parent() {
                check_or_create(root)?;
            }
        }
        StateDir::open(base.join(name))
    }

    /// Where [`per_user`](StateDir::per_user) keeps `app`'s state folder `name`:
    /// `$XDG_STATE_HOME/eac/<app>/<name>` when `XDG_STATE_HOME` is an absolute path,
    /// else `$HOME/.local/state/eac/<app>/<name>`, else
    /// `<temp>/eac-<uid>/<app>/<name>`. Nothing is created.
    ///
    /// ```
    /// let path = eac_accessor::StateDir::per_user_path("live_server", "0123abcd");
    /// assert!(path.ends_with("live_server/0123abcd"));
    /// ```
    pub fn per_user_path(app: &str, name: &str) -> PathBuf {
        per_user_base(app).0.join(name)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of the file `name` in the folder.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

/// The per-user folder of `app`, and whether it lies in the shared temp folder.
fn per_user_base(app: &str) -> (PathBuf, bool) {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(state) = absolute("XDG_STATE_HOME") {
        return (state.join("eac").join(app), false);
    }
    if let Some(home) = absolute("HOME") {
        return (home.join(".local/state/eac").join(app), false);
    }
    let root = std::env::temp_dir().join(format!("eac-{}", current_uid()));
    (root.join(app), true)
}

#[cfg(unix)]
fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[cfg(not(unix))]
fn current_uid() -> u32 {
    0
}

fn refused(path: &Path, what: String) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("refusing the state dir `{}`: {what}", path.display()),
    )
}

/// Creates `path` owner-only when missing, then checks it.
fn check_or_create(path: &Path) -> Result<(), Error> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(path).map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("cannot create the state dir `{}`: {e}", path.display()),
                )
            })?;
            fs::symlink_metadata(path).map_err(|e| cannot_read(path, e))?
        }
        Err(e) => return Err(cannot_read(path, e)),
    };
    check(path, &metadata)
}

fn cannot_read(path: &Path, e: io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("cannot read the state dir `{}`: {e}", path.display()),
    )
}

#[cfg(unix)]
fn check(path: &Path, metadata: &fs::Metadata) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    if metadata.file_type().is_symlink() {
        let target = fs::read_link(path)
            .map(|t| format!(" (to `{}`)", t.display()))
            .unwrap_or_default();
        return Err(refused(
            path,
            format!(
                "it is a symbolic link{target}, and a state dir must be a real folder: \
                 pass the real folder, or `rm {shown}` and let it be created"
            ),
        ));
    }
    if !metadata.is_dir() {
        return Err(refused(
            path,
            format!("it is not a folder: move it away (`mv {shown} {shown}.old`)"),
        ));
    }
    let (owner, me) = (metadata.uid(), current_uid());
    if owner != me {
        return Err(refused(
            path,
            format!(
                "it is owned by uid {owner}, not by this user (uid {me}): another user may \
                 have made it to choose what this service serves; use another folder, or \
                 `chown {me} {shown}` if it is yours"
            ),
        ));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(refused(
            path,
            format!(
                "its mode is {mode:04o}: group or other users may read or change the state \
                 (secrets, history, caches); `chmod 700 {shown}`"
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check(path: &Path, metadata: &fs::Metadata) -> Result<(), Error> {
    if metadata.file_type().is_symlink() || !metadata.is_dir() {
        return Err(refused(path, "it is not a real folder".to_owned()));
    }
    Ok(())
}

/// Opens a file of a state folder: never through a symbolic link, created owner-only,
/// and tightened to `0600` (with a warning) when found looser.
pub(crate) fn open_private(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
        // Non-blocking too: a FIFO planted under a file's name would hang the open; a
        // regular file reads and writes the same either way.
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        options.custom_flags(flags.bits() as i32);
    }
    let file = options.open(path).map_err(|e| explain_link(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{}` is not a regular file", path.display()),
            ));
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            tracing::warn!(path = %path.display(), mode = %format!("{mode:04o}"), "a state file was readable by others: tightened to 0600");
        }
    }
    Ok(file)
}

/// Reads a state file whole, not through a link; `None` when it does not exist.
pub(crate) fn read_private(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut file = match open_private(OpenOptions::new().read(true), path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(Some(bytes))
}

/// Creates a new temporary file beside `path` (`.<name>.<random>.tmp`), owner-only and
/// only if no file of that name exists — so nothing planted there is followed or reused.
pub(crate) fn create_temp(path: &Path) -> io::Result<(PathBuf, File)> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_owned());
    loop {
        let tmp = dir.join(format!(".{name}.{:016x}.tmp", fastrand::u64(..)));
        match open_private(OpenOptions::new().write(true).create_new(true), &tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `rename` is not enough for durability: the folder holding the new name is synced too.
pub(crate) fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
}

/// `O_NOFOLLOW` on a link fails with `ELOOP`: say what it means.
fn explain_link(path: &Path, e: io::Error) -> io::Error {
    #[cfg(unix)]
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` is a symbolic link: nothing in a state dir is opened through a link \
                 (remove it)",
                path.display()
            ),
        );
    }
    let _ = path;
    e
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_folder_is_created_owner_only_with_its_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path().join("a/b")).unwrap();
        let mode = fs::metadata(state.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_link_to_a_folder_is_refused_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        StateDir::open(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let message = StateDir::open(&link).unwrap_err().to_string();
        assert!(message.contains(&link.display().to_string()), "{message}");
        assert!(message.contains("symbolic link"), "{message}");
    }

    #[test]
    fn a_file_opened_in_it_is_never_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let planted = tmp.path().join("lock");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let error = open_private(
            OpenOptions::new().read(true).write(true).create(true),
            &planted,
        )
        .unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn a_planted_fifo_is_refused_not_waited_on() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("history.eac");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let error = read_private(&fifo).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }

    #[test]
    fn a_looser_file_is_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cache");
        fs::write(&path, "x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        open_private(OpenOptions::new().read(true), &path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn temporary_files_get_fresh_names() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, _) = create_temp(&tmp.path().join("history.eac")).unwrap();
        let (b, _) = create_temp(&tmp.path().join("history.eac")).unwrap();
        assert_ne!(a, b);
        assert!(
            a.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".history.eac.")
        );
    }
}

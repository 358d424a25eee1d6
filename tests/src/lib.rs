//! Fixtures shared by eac's integration tests: the sections of the example service and a
//! temporary configuration folder.

/// A real etcd for the `etcd` feature's tests.
pub mod etcd;
/// What the latency benches share.
pub mod latency;

use std::path::{Path, PathBuf};

use eac_accessor::{EaCSection, FieldErrors};
use schemars::JsonSchema;
use serde::Deserialize;

/// `[greeting]`: the message `GET /` answers with.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Greeting {
    /// Non-empty text.
    #[schemars(length(min = 1))]
    pub message: String,
}

impl EaCSection for Greeting {
    const PATH: &'static str = "greeting";
}

/// `[limits]`: request limits.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted request body.
    #[schemars(range(min = 1, max = 16_777_216))]
    pub max_body_bytes: u64,
    /// Per-request timeout.
    #[schemars(range(min = 1, max = 60_000))]
    pub request_timeout_ms: u64,
}

impl EaCSection for Limits {
    const PATH: &'static str = "limits";
}

/// `[features]`: toggles.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
pub struct Features {
    /// Upper-case the greeting.
    #[serde(default)]
    pub shout: bool,
}

impl EaCSection for Features {
    const PATH: &'static str = "features";
}

/// `[upstream]`: where to forward, with a secret key.
#[derive(Clone, PartialEq, Deserialize, JsonSchema)]
pub struct Upstream {
    /// An http(s) URL.
    pub url: String,
    /// A secret.
    pub api_key: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &self.url)
            .field("api_key", &"[redacted]")
            .finish()
    }
}

impl EaCSection for Upstream {
    const PATH: &'static str = "upstream";

    fn secret_paths() -> Vec<String> {
        vec!["api_key".to_owned()]
    }

    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            errors.add("url", "expected an http:// or https:// URL");
        }
        if self.api_key.len() < 8 {
            errors.add("api_key", "expected at least 8 characters");
        }
        errors.into_result()
    }
}

/// A valid `app.toml` for the four sections.
pub const APP_TOML: &str = r#"[greeting]
message = "hello"

[limits]
max_body_bytes = 1048576
request_timeout_ms = 5000

[features]
shout = false

[upstream]
url = "https://upstream.example"
api_key = "s3cr3t-k3y-value"
"#;

/// The secret in [`APP_TOML`], to check it never shows.
pub const SECRET: &str = "s3cr3t-k3y-value";

/// A temporary folder only its owner may enter (mode `0700`), removed on drop: what a
/// state dir must be (tempfile's own folders follow the umask, `0755` as a rule).
pub fn private_dir() -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    builder.tempdir().expect("create a temp dir")
}

/// A temporary configuration folder, removed on drop.
#[derive(Debug)]
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    /// An empty folder.
    pub fn new() -> ConfigDir {
        ConfigDir { dir: private_dir() }
    }

    /// A folder holding `app.toml` = [`APP_TOML`].
    pub fn with_app() -> ConfigDir {
        let dir = ConfigDir::new();
        dir.write("app.toml", APP_TOML);
        dir
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The path of `name` in the folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` to `name`.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.file(name), text).expect("write a config file");
    }

    /// Replaces the folder's path with `[dir]` so rendered errors snapshot stably.
    pub fn scrub(&self, text: &str) -> String {
        text.replace(&self.path().display().to_string(), "[dir]")
    }
}

impl Default for ConfigDir {
    fn default() -> Self {
        ConfigDir::new()
    }
}

/// [`APP_TOML`] with `key = old` replaced by `key = new` (first match).
pub fn app_with(key_line: &str, new_line: &str) -> String {
    assert!(APP_TOML.contains(key_line), "fixture has no `{key_line}`");
    APP_TOML.replacen(key_line, new_line, 1)
}

/// [`APP_TOML`] with `[upstream] api_key` set to `value`, TOML as written (`"\"key\""`,
/// `"[\"key\"]"`, or something that does not parse).
pub fn app_with_api_key(value: &str) -> String {
    app_with(
        &format!("api_key = \"{SECRET}\""),
        &format!("api_key = {value}"),
    )
}

/// A small tmpfs mounted for a test (to fill a disk up), unmounted on drop.
///
/// Mounting needs root: CI runs as root; elsewhere the constructor panics saying so.
#[derive(Debug)]
pub struct SmallDisk {
    _root: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (as mount(8) reads it: `256k`, `1m`).
    pub fn new(size: &str) -> SmallDisk {
        let root = tempfile::tempdir().expect("create a temp dir");
        let mount = root.path().join("disk");
        std::fs::create_dir(&mount).expect("create the mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .status()
            .expect("run mount(8)");
        assert!(
            mounted.success(),
            "this test mounts a small tmpfs to fill it up: run it as root (CI does)"
        );
        SmallDisk { _root: root, mount }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// Fills the disk up with a file; returns its path (remove it to free the space).
    pub fn fill(&self) -> PathBuf {
        let filler = self.mount.join("filler");
        let mut file = std::fs::File::create(&filler).expect("create the filler");
        let chunk = vec![0u8; 4096];
        while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.mount)
            .status();
    }
}

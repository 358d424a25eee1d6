//! `--remote URL`: a document fetched over HTTP, merged between the files and the env
//! overlay, polled through the reload coordinator, cached in the state dir.

use std::path::Path;

use eac_accessor::StateDir;
use eac_accessor::reload::{PollConfig, ReloadCoordinator};
use eac_accessor::source::{Http, LastGood, Started};

/// Sent as `Authorization: Bearer …`; never shown.
const TOKEN_ENV: &str = "EAC_REMOTE_TOKEN";

/// The remote source, trusting the CA certificates of `ca` (`--remote-ca`) too, with its
/// first document: fetched, or from the cache in `state_dir` when the remote cannot be
/// had (no cache with `--check`: `None`).
pub(crate) async fn start(
    url: &str,
    ca: Option<&Path>,
    state_dir: Option<&StateDir>,
) -> Result<Http, String> {
    #[cfg(not(feature = "https"))]
    if url
        .trim()
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    {
        return Err(HTTPS_NEEDS_FEATURE.into());
    }
    let mut remote = Http::new(url).map_err(|e| e.to_string())?;
    if let Some(ca) = ca {
        remote = trust(remote, ca)?;
    }
    if let Some(token) = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()) {
        remote = remote.bearer_token(token);
    }
    if let Some(dir) = state_dir {
        // One cache per URL, so that pointing `--remote` elsewhere never starts from
        // another document.
        remote = remote.cache(LastGood::in_dir(dir, url).map_err(|e| e.to_string())?);
    }
    // A start from the cache is logged by the source, and shown in the status.
    match remote.start().await {
        Ok(Started::Fetched) => tracing::info!(source = %remote.url(), "remote document fetched"),
        Ok(_) => {}
        Err(error) => {
            return Err(format!(
                "cannot start: the remote document cannot be had and no cache holds it: {error}"
            ));
        }
    }
    Ok(remote)
}

#[cfg(feature = "https")]
fn trust(remote: Http, ca: &Path) -> Result<Http, String> {
    remote.ca_file(ca).map_err(|e| format!("--remote-ca: {e}"))
}

/// What a build without TLS says of `https://` and `--remote-ca`: the feature, named as
/// `--help` and the README name it, and the command that builds it.
#[cfg(not(feature = "https"))]
const HTTPS_NEEDS_FEATURE: &str = "an https:// --remote (and --remote-ca) needs the `https` \
    feature of eac-examples, which this build lacks: `cargo run --release -p eac-examples \
    --features https --bin live_server -- --remote https://…`";

#[cfg(not(feature = "https"))]
fn trust(_: Http, _: &Path) -> Result<Http, String> {
    Err(HTTPS_NEEDS_FEATURE.into())
}

/// Polls `remote` every `EAC_REFRESH_POLL_INTERVAL_MS` (default 30000; 0 disables).
pub(crate) fn poll(reloads: &ReloadCoordinator, remote: &Http) -> Result<(), String> {
    let config = PollConfig::from_env().map_err(|e| e.to_string())?;
    if !config.enabled() {
        tracing::info!(source = %remote.url(), "remote polling disabled (EAC_REFRESH_POLL_INTERVAL_MS=0)");
    }
    reloads.poll(remote, config).map_err(|e| e.to_string())
}

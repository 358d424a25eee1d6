//! `live_server`'s flags, each with an environment fallback, through one parser.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use eac_accessor::StateDir;
use eac_accessor::reload::ReloadMode;
use eac_accessor::settings::millis;

/// The variables read at start besides the flags' fallbacks, listed in `--help`.
const ENVIRONMENT: &str = "\
Environment (read at start):
  APP_<SECTION>__<KEY>=value     overrides the files (APP_GREETING__MESSAGE=hi)
  EAC_REFRESH_ENDPOINT_TOKEN     admin token: unlocks refresh, rollback, preview (and every read)
  EAC_ADMIN_READ_TOKEN           read-only admin token (status, history, events, metrics)
  EAC_ADMIN_OPEN_READS=1         admin reads without a token off loopback too, and on
                                 loopback for any Host name (logged)
  EAC_ADMIN_MAX_STREAMS          event streams at once (default 64)
  EAC_REFRESH_COOLDOWN_MS        least time between two publishes (default 250)
  EAC_REFRESH_BACKOFF_MS         first backoff after a rejected reload (default 100)
  EAC_REFRESH_BUILD_TIMEOUT_MS   longest a reload may take (default 10000)
  EAC_WATCH_DEBOUNCE_MS          quiet time after a file event (default 100)
  EAC_WATCH_MAX_WAIT_MS          a change waits at most this for quiet (default 1000)
  EAC_SHUTDOWN_GRACE_MS          SIGTERM: longest wait for open requests (default 10000)
  EAC_HEADER_READ_TIMEOUT_MS     drop a connection whose request head is not complete
                                 within this, or idle this long between requests (default 30000)
  EAC_MAX_CONNECTIONS            open connections at most (default: half the descriptor
                                 limit less a reserve for files, the state dir and the
                                 watcher); at the cap, the connection waiting longest
                                 for a request head is closed to make room

Remote document (with --remote):
  EAC_REMOTE_TOKEN               sent as `Authorization: Bearer …`; never shown
  EAC_REFRESH_POLL_INTERVAL_MS   time between polls (default 30000; 0 disables)
  EAC_REFRESH_POLL_JITTER_PCT    each wait varies by this fraction, 0.0-0.9 (default 0.2)

Canary (with --reload canary, and for POST canary):
  EAC_CANARY_SHARE               the share of requests the canary serves (default 0.05)
  EAC_CANARY_WINDOW_MS           judged this long, then promoted (default 60000)
  EAC_CANARY_KEY_HEADER          keeps a user on one version by this header (default:
                                 the client's address)
  EAC_CANARY_MIN_REQUESTS        no verdict before this many canary requests (default 200)
  EAC_CANARY_MAX_ERROR_RATIO     a canary 5xx share above this aborts it (default 0.01)
  EAC_CANARY_MAX_ERROR_RATIO_VS_STABLE
                                 ... or above this multiple of the stable one's (default 2.0)
  EAC_CANARY_MAX_LATENCY_RATIO   a p99 above this multiple of the stable one's, and 50 ms
                                 above it, aborts it (default 1.5)

Fleet on etcd (with --etcd; `put` and `fleet` read them too):
  EAC_FLEET_STALE_MS             a member behind the latest revision this long is STALE,
                                 not SYNCING (default 5000)
  EAC_ETCD_MAX_VALUE_BYTES       the largest value read under the prefix; a larger one is
                                 rejected naming its key (default 16777216)

Signals: SIGTERM and Ctrl-C stop it gracefully (every request already received is
answered, with `Connection: close`); SIGHUP reloads like `POST refresh` (in manual
mode it re-reads and shows the change as pending).

Exit codes (serving and --check; `put` and `fleet` list their own):
  0  stopped by a signal, or --check found the configuration valid
  1  invalid configuration (every error printed), or another failure to start
  2  usage error
  6  the state dir is in use by another process (its PID is named)
  7  an address to listen on is in use";

/// An HTTP server whose behaviour follows its configuration files live.
#[derive(Debug, Parser)]
#[command(name = "live_server", version, after_help = ENVIRONMENT)]
pub(crate) struct Options {
    /// The configuration folder: every *.toml, *.yaml, *.yml, *.json directly in it,
    /// in file-name order. A relative path is relative to the working directory.
    #[arg(long, env = "EAC_CONFIG_DIR", value_name = "DIR", default_value_os_t = bundled_config())]
    pub(crate) config_dir: PathBuf,

    /// Where the application listens.
    #[arg(
        long,
        env = "EAC_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub(crate) listen: SocketAddr,

    /// Serve the admin routes on this address instead of under the application's
    /// routes (which then have none).
    #[arg(long, env = "EAC_ADMIN_LISTEN", value_name = "ADDR")]
    pub(crate) admin_listen: Option<SocketAddr>,

    /// The durable history and the caches (one process at a time): a real folder owned
    /// by this user with mode 0700, or the server refuses to start. Default, named after
    /// the config folder and the listen address:
    /// `$XDG_STATE_HOME/eac/live_server/<hash>`, else
    /// `~/.local/state/eac/live_server/<hash>`, else `<temp>/eac-<uid>/live_server/<hash>`.
    #[arg(long, env = "EAC_STATE_DIR", value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,

    /// etcd endpoints, comma-separated (`http://127.0.0.1:2379`): every key under
    /// `--etcd-prefix` is a section, merged above the files and below the environment,
    /// watched. Needs the `etcd` feature of eac-examples.
    #[arg(
        long = "etcd",
        env = "EAC_ETCD_ENDPOINTS",
        value_name = "URL[,URL...]",
        value_delimiter = ','
    )]
    pub(crate) etcd: Vec<String>,

    /// The etcd prefix read with `--etcd`: `<prefix>limits` holds the `limits` section
    /// (JSON, or TOML/YAML by a `.toml`/`.yaml` extension).
    #[arg(
        long,
        env = "EAC_ETCD_PREFIX",
        value_name = "P",
        default_value = "/eac/live_server/"
    )]
    pub(crate) etcd_prefix: String,

    /// `auto` publishes a valid change at once; `manual` shows it as pending in the
    /// status until `POST refresh`; `canary` serves it to a share of the requests first
    /// (EAC_CANARY_*), promoted after the window unless its errors or latency breach.
    #[arg(long = "reload", env = "EAC_RELOAD_MODE", value_name = "MODE", default_value = "auto", value_parser = parse_mode)]
    pub(crate) reload: ReloadMode,

    /// When the files are broken at start, start on the last good version from the
    /// durable history instead of failing.
    #[arg(long)]
    pub(crate) fallback_to_last_good: bool,

    /// Validate the config folder and the environment with the same pipeline as a
    /// reload, print every error, and exit 0 (valid) or 1 (not); serves nothing and
    /// opens no state dir.
    #[arg(long, conflicts_with = "print_schema")]
    pub(crate) check: bool,

    /// Print the JSON Schema (draft-07) of all sections, for editors, and exit.
    #[arg(long)]
    pub(crate) print_schema: bool,

    /// Merge a TOML, YAML or JSON document fetched from this URL between the files and
    /// the environment, polled conditionally (ETag, Last-Modified) and cached in the
    /// state dir: when it cannot be reached at start, the server starts from the cache.
    /// Credentials in the URL are sent, never shown. An `https://` URL needs the `https`
    /// feature of eac-examples.
    #[arg(
        long,
        env = "EAC_REMOTE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) remote: Option<String>,

    /// Also trust the CA certificates in this PEM file for an `https://` `--remote` (a
    /// private CA); the public roots stay trusted. Needs the `https` feature of
    /// eac-examples.
    #[arg(long, env = "EAC_REMOTE_CA", value_name = "FILE", requires = "remote")]
    pub(crate) remote_ca: Option<PathBuf>,

    /// How long a replaced resolver value (the compiled `[access] rules`) is kept after
    /// a newer version replaces it, at least; it goes when no request holds it either.
    #[arg(long = "drain-ms", env = "EAC_REFRESH_DRAIN_MS", value_name = "MS", default_value = "0", value_parser = millis, hide_default_value = true)]
    pub(crate) drain: Duration,

    /// A label in this instance's fleet record (`zone=eu-1`; repeatable), by which
    /// `release --canary-label` chooses canaries. With `--etcd`.
    #[arg(long = "fleet-label", value_name = "K=V", value_parser = label)]
    pub(crate) fleet_labels: Vec<(String, String)>,

    /// A fleet tool instead of serving (needs the `etcd` feature).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// The fleet tools: subcommands of the same binary, which open no state dir.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Write one section to a fleet's etcd prefix, safely: validated first with the
    /// pipeline the instances run (the prefix's sections with this one in place; a
    /// section the prefix lacks is not required), written in a transaction guarded by
    /// the revision validated against, and recorded under `<prefix>.releases/`.
    ///
    /// Exit codes: 0 written (and, with --wait, every live member ACKed), 1 invalid or
    /// etcd unreachable (nothing written), 2 usage, 3 a member NACKed, 4 --wait timed
    /// out, 5 conflict (another write came first; nothing written).
    Put(PutArgs),
    /// Print each fleet member's state (SYNCED, SYNCING, NACKED, STALE) and the gray
    /// releases in flight; exit 0 only if all are SYNCED (1 otherwise, or when etcd
    /// cannot be read).
    Fleet(FleetArgs),
    /// A gray release: one section to a share of the fleet first (validated like
    /// `put`), judged by the canaries' own health against the other members' on the
    /// same window, then promoted to every member or rolled back — by itself. Prints one
    /// line per step and ends with `promoted: …` or `aborted: <why>`. If this command
    /// dies, a member takes the judging over; past the deadline (window + 30 s) without a
    /// verdict the release is aborted. `release promote|abort ID` decide by hand.
    ///
    /// Exit codes: 0 promoted, 1 invalid or etcd unreachable (nothing written), 2
    /// usage, 3 aborted, 5 conflict or another release in flight (nothing written).
    Release(Box<ReleaseArgs>),
}

/// `live_server release`.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    group(clap::ArgGroup::new("selector").required(true).args(["canary", "canary_ids", "canary_label"]))
)]
pub(crate) struct ReleaseArgs {
    #[command(flatten)]
    pub(crate) etcd: EtcdArgs,

    /// Decide a release in flight by hand.
    #[command(subcommand)]
    pub(crate) decide: Option<Decide>,

    /// The section to release (`features`; dotted for a nested one).
    #[arg(required = true)]
    pub(crate) section: Option<String>,

    /// The section's keys: a .json, .toml, .yaml or .yml file, or `-` for JSON on stdin.
    #[arg(required = true)]
    pub(crate) file: Option<PathBuf>,

    /// The share of the live members that take it first (`25%` or `0.25`; at least
    /// one), chosen by a hash of the release's id and theirs.
    #[arg(long, value_name = "SHARE", value_parser = share)]
    pub(crate) canary: Option<f64>,

    /// The members that take it first, by id (the first column of `fleet`),
    /// comma-separated.
    #[arg(long = "canary-ids", value_name = "ID[,ID...]", value_delimiter = ',')]
    pub(crate) canary_ids: Vec<String>,

    /// The members whose `--fleet-label` has this value take it first.
    #[arg(long = "canary-label", value_name = "K=V", value_parser = label)]
    pub(crate) canary_label: Option<(String, String)>,

    /// How long the canaries are judged before a promotion.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = duration)]
    pub(crate) window: Duration,

    /// No verdict before the canaries answered this many requests.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub(crate) min_requests: u64,

    /// A canary 5xx share above this aborts (default 0.01).
    #[arg(long, value_name = "RATIO")]
    pub(crate) max_error_ratio: Option<f64>,

    /// ... or above this multiple of the stable members' (default 2.0).
    #[arg(long, value_name = "RATIO")]
    pub(crate) max_error_ratio_vs_stable: Option<f64>,

    /// A canary p99 above this multiple of the stable members', and 50 ms above it,
    /// aborts (default 1.5).
    #[arg(long, value_name = "RATIO")]
    pub(crate) max_latency_ratio: Option<f64>,

    /// Who releases, in the release record (default: the user name).
    #[arg(long, value_name = "WHO")]
    pub(crate) by: Option<String>,
}

/// `live_server release promote|abort ID`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Decide {
    /// Promote a release in flight to every member now. Exit 0 promoted, 5 decided
    /// otherwise already, 1 when it cannot be read.
    Promote(DecideArgs),
    /// Abort a release in flight now: its canaries go back to the prefix's
    /// configuration. Exit 0 aborted, 5 decided otherwise already, 1 when it cannot be
    /// read.
    Abort(DecideArgs),
}

/// The release to decide.
#[derive(Debug, clap::Args)]
pub(crate) struct DecideArgs {
    #[command(flatten)]
    pub(crate) etcd: EtcdArgs,

    /// The release's id (printed by `release` and `fleet`).
    pub(crate) id: String,
}

/// Where a fleet's configuration lives.
#[derive(Debug, clap::Args)]
pub(crate) struct EtcdArgs {
    /// etcd endpoints, comma-separated (`http://127.0.0.1:2379`).
    #[arg(
        long = "etcd",
        env = "EAC_ETCD_ENDPOINTS",
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        required = true
    )]
    pub(crate) endpoints: Vec<String>,

    /// The fleet's prefix.
    #[arg(
        long,
        env = "EAC_ETCD_PREFIX",
        value_name = "P",
        default_value = "/eac/live_server/"
    )]
    pub(crate) etcd_prefix: String,
}

/// `live_server put`.
#[derive(Debug, clap::Args)]
pub(crate) struct PutArgs {
    #[command(flatten)]
    pub(crate) etcd: EtcdArgs,

    /// The section to write (`limits`; dotted for a nested one).
    pub(crate) section: String,

    /// The section's keys: a .json, .toml, .yaml or .yml file, or `-` for JSON on stdin.
    pub(crate) file: PathBuf,

    /// Then wait until every live member has ACKed or NACKed the write, print the
    /// fleet table, and exit 0 only if all ACKed (3 on a NACK, 4 on timeout).
    #[arg(long, value_name = "DUR", num_args = 0..=1, require_equals = true, default_missing_value = "30s", value_parser = duration)]
    pub(crate) wait: Option<Duration>,

    /// Who writes, in the release record (default: the user name).
    #[arg(long, value_name = "WHO")]
    pub(crate) by: Option<String>,
}

/// `live_server fleet`.
#[derive(Debug, clap::Args)]
pub(crate) struct FleetArgs {
    #[command(flatten)]
    pub(crate) etcd: EtcdArgs,
}

/// `25%` or `0.25`: a share in (0, 1].
fn share(value: &str) -> Result<f64, String> {
    let v = value.trim();
    let share = match v.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => v.parse::<f64>(),
    };
    match share {
        Ok(s) if s > 0.0 && s <= 1.0 => Ok(s),
        _ => Err("expected a share above 0 and at most 100%, like 25% or 0.25".into()),
    }
}

/// `k=v`: a label.
fn label(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err("expected a label as KEY=VALUE, like zone=eu-1".into()),
    }
}

fn duration(value: &str) -> Result<Duration, String> {
    eac_accessor::settings::duration(value).map_err(|e| e.to_string())
}

fn bundled_config() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
}

fn parse_mode(value: &str) -> Result<ReloadMode, String> {
    value
        .parse()
        .map_err(|e: eac_accessor::Error| e.to_string())
}

impl Options {
    /// The folder as an absolute path (`..` and symlinks kept, for the kernel to
    /// resolve), so that reading and watching agree whatever the working directory.
    pub(crate) fn config_dir_absolute(&self) -> PathBuf {
        std::path::absolute(&self.config_dir).unwrap_or_else(|_| self.config_dir.clone())
    }

    /// The state dir: as given, or a per-user one named after the config folder and the
    /// listen address, so that several instances on one host never share one.
    pub(crate) fn state_dir(&self) -> PathBuf {
        match &self.state_dir {
            Some(dir) => dir.clone(),
            None => StateDir::per_user_path(APP, &self.default_state_name()),
        }
    }

    /// Creates the state dir when missing and checks it (a real folder, this user's,
    /// mode 0700), before anything in it is read.
    pub(crate) fn open_state_dir(&self) -> Result<StateDir, eac_accessor::Error> {
        match &self.state_dir {
            Some(dir) => StateDir::open(dir),
            None => StateDir::per_user(APP, &self.default_state_name()),
        }
    }

    fn default_state_name(&self) -> String {
        default_state_name(&self.config_dir_absolute(), self.listen)
    }
}

/// The application's name among the per-user state folders.
const APP: &str = "live_server";

fn default_state_name(config_dir: &Path, listen: SocketAddr) -> String {
    let real = std::fs::canonicalize(config_dir).unwrap_or_else(|_| config_dir.to_path_buf());
    let key = format!("{}\n{listen}", real.display());
    eac_accessor::ContentHash::of(&serde_json::Value::from(key)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_parser_is_well_formed() {
        Options::command().debug_assert();
    }

    #[test]
    fn drain_takes_whole_milliseconds_up_to_a_day() {
        let parse = |ms: &str| Options::try_parse_from(["live_server", "--drain-ms", ms]);
        assert_eq!(parse("250").unwrap().drain, Duration::from_millis(250));
        for bad in ["2s", "86400001"] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(
                error.contains(&format!("invalid value '{bad}' for '--drain-ms <MS>'"))
                    && error.contains(
                        "expected a whole number of milliseconds, at most 86400000 (a day)"
                    ),
                "{error}"
            );
        }
    }

    #[test]
    fn instances_on_one_folder_get_their_own_state_dir() {
        let a = default_state_name(Path::new("/etc/app"), "127.0.0.1:8080".parse().unwrap());
        let b = default_state_name(Path::new("/etc/app"), "127.0.0.1:8081".parse().unwrap());
        let c = default_state_name(Path::new("/etc/other"), "127.0.0.1:8080".parse().unwrap());
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            a,
            default_state_name(Path::new("/etc/app"), "127.0.0.1:8080".parse().unwrap())
        );
    }
}

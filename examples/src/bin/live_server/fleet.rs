//! The fleet tools: `live_server put` (a safe writer for a fleet's etcd prefix) and
//! `live_server fleet` (each member's state). Both need the `etcd` feature and open no
//! state dir.

use std::process::ExitCode;

use crate::options::Command;

/// `put`: written (and, with `--wait`, ACKed by every live member).
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
const WRITTEN: u8 = 0;
/// Invalid, or etcd unreachable: nothing written. `fleet`: not all SYNCED.
const FAILED: u8 = 1;
/// A member NACKed the write.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
const NACKED: u8 = 3;
/// `--wait` ran out before every member answered.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
const TIMED_OUT: u8 = 4;
/// Another write came first: nothing written.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
const CONFLICT: u8 = 5;

/// Runs a fleet subcommand; its exit code.
pub(crate) async fn run(command: Command) -> ExitCode {
    #[cfg(feature = "etcd")]
    {
        ExitCode::from(match command {
            Command::Put(args) => put(args).await,
            Command::Fleet(args) => fleet(args).await,
            Command::Release(args) => release(*args).await,
        })
    }
    #[cfg(not(feature = "etcd"))]
    {
        let name = match command {
            Command::Put(_) => "put",
            Command::Fleet(_) => "fleet",
            Command::Release(_) => "release",
        };
        eprintln!(
            "live_server {name}: needs the `etcd` feature, which this build lacks; run \
             `cargo run --release -p eac-examples --features etcd --bin live_server -- {name} …` \
             (building it needs `protoc`: `apt-get install protobuf-compiler`)"
        );
        ExitCode::from(FAILED)
    }
}

#[cfg(feature = "etcd")]
use etcd_tools::{fleet, put, release};

#[cfg(feature = "etcd")]
mod etcd_tools {
    use std::io::Read;
    use std::path::Path;

    use eac_accessor::SourceName;
    use eac_accessor::canary::Thresholds;
    use eac_accessor::fleet::{Decision, PutError, ReleaseOptions, SectionPut, Selector};
    use eac_accessor::source::{Etcd, Format};
    use serde_json::Value;

    use super::{CONFLICT, FAILED, NACKED, TIMED_OUT, WRITTEN};
    use crate::options::{Decide, EtcdArgs, FleetArgs, PutArgs, ReleaseArgs};

    /// The largest section read from FILE or stdin (etcd's value cap).
    const MAX_INPUT: u64 = 16 * 1024 * 1024;

    async fn connect(args: &EtcdArgs) -> Result<Etcd, String> {
        let options = crate::etcd::etcd_options(&args.endpoints, &args.etcd_prefix)?;
        Etcd::connect(options).await.map_err(|e| e.to_string())
    }

    /// FILE's text and format (by its extension; `-`: JSON on stdin), and its name in
    /// errors.
    fn input(file: &Path) -> Result<(Vec<u8>, Format, SourceName), String> {
        let mut text = Vec::new();
        if file == Path::new("-") {
            std::io::stdin()
                .take(MAX_INPUT + 1)
                .read_to_end(&mut text)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            return Ok((text, Format::Json, SourceName::Memory("stdin".into())));
        }
        let format = Format::from_path(file).ok_or_else(|| {
            format!(
                "cannot tell the format of `{}`: name it .json, .toml, .yaml or .yml",
                file.display()
            )
        })?;
        std::fs::File::open(file)
            .and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut text))
            .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
        Ok((text, format, SourceName::File(file.to_path_buf())))
    }

    pub(super) async fn put(args: PutArgs) -> u8 {
        let fail = |message: &dyn std::fmt::Display| {
            eprintln!("live_server put: {message}");
            FAILED
        };
        let put = match section_put(&args.section, &args.file, args.by.as_ref()) {
            Ok(put) => put,
            Err(e) => return fail(&e),
        };
        let etcd = match connect(&args.etcd).await {
            Ok(etcd) => etcd,
            Err(e) => return fail(&e),
        };
        let written = match etcd
            .put_section(crate::sections(std::time::Duration::ZERO), put)
            .await
        {
            Ok(written) => written,
            Err(e) => return refused("put", &args.section, &e),
        };
        println!(
            "{}: written at revision {} (release {}, validated against revision {})",
            args.section, written.revision, written.release, written.validated
        );
        let Some(within) = args.wait else {
            return WRITTEN;
        };
        let answer = match etcd.wait_for_fleet(written.revision, within).await {
            Ok(answer) => answer,
            Err(e) => return fail(&e),
        };
        print!("{}", table(&answer.view));
        if !answer.nacked.is_empty() {
            println!(
                "NACKed by {} of {} member(s): {}",
                answer.nacked.len(),
                answer.view["members"].as_array().map_or(0, Vec::len),
                answer.nacked.join(", ")
            );
            NACKED
        } else if !answer.waiting.is_empty() {
            println!(
                "no answer within {within:?} from: {}",
                answer.waiting.join(", ")
            );
            TIMED_OUT
        } else {
            println!("ACKed by all {} member(s)", answer.acked.len());
            WRITTEN
        }
    }

    /// Why a write wrote nothing, said, and its exit code: every error of an invalid
    /// section (1), a conflict or a release in flight (5), etcd (1).
    fn refused(command: &str, section: &str, e: &PutError) -> u8 {
        match e {
            PutError::Invalid(errors) => {
                println!(
                    "{section}: invalid, {} error(s); nothing written",
                    errors.as_slice().len()
                );
                for error in errors.as_slice() {
                    println!("  - {error}");
                }
                FAILED
            }
            PutError::Conflict { .. } | PutError::InFlight { .. } => {
                eprintln!("live_server {command}: {e}");
                CONFLICT
            }
            e => {
                eprintln!("live_server {command}: {e}");
                FAILED
            }
        }
    }

    /// The section to write from FILE, made ready for `put` or `release`.
    fn section_put(section: &str, file: &Path, by: Option<&String>) -> Result<SectionPut, String> {
        let (text, format, source) = input(file)?;
        let put = SectionPut::new(section, format, text, source);
        Ok(match by {
            Some(by) => put.by(by.as_str()),
            None => put,
        })
    }

    pub(super) async fn release(args: ReleaseArgs) -> u8 {
        let fail = |message: &dyn std::fmt::Display| {
            eprintln!("live_server release: {message}");
            FAILED
        };
        if let Some(decide) = args.decide {
            let (etcd_args, id, decision) = match &decide {
                Decide::Promote(a) => (
                    &a.etcd,
                    &a.id,
                    Decision::Promoted(format!("promoted by hand ({})", who())),
                ),
                Decide::Abort(a) => (
                    &a.etcd,
                    &a.id,
                    Decision::Aborted(format!("aborted by hand ({})", who())),
                ),
            };
            let etcd = match connect(etcd_args).await {
                Ok(etcd) => etcd,
                Err(e) => return fail(&e),
            };
            let asked_promote = matches!(decision, Decision::Promoted(_));
            return match etcd.decide_release(id, decision).await {
                Ok(decided) => {
                    println!("release {id}: {decided}");
                    if matches!(decided, Decision::Promoted(_)) == asked_promote {
                        WRITTEN
                    } else {
                        CONFLICT
                    }
                }
                Err(e) => fail(&e),
            };
        }
        // Required by the parser without a subcommand.
        let (Some(section), Some(file)) = (args.section, args.file) else {
            return fail(&"SECTION and FILE are required");
        };
        let put = match section_put(&section, &file, args.by.as_ref()) {
            Ok(put) => put,
            Err(e) => return fail(&e),
        };
        let etcd = match connect(&args.etcd).await {
            Ok(etcd) => etcd,
            Err(e) => return fail(&e),
        };
        let selector = match (args.canary, args.canary_label) {
            (Some(share), _) => Selector::Share(share),
            (None, Some((k, v))) => Selector::Label(k, v),
            (None, None) => Selector::Ids(args.canary_ids),
        };
        let mut thresholds = Thresholds::FLEET;
        thresholds.min_requests = args.min_requests;
        if let Some(r) = args.max_error_ratio {
            thresholds.max_error_ratio = r;
        }
        if let Some(r) = args.max_error_ratio_vs_stable {
            thresholds.max_error_ratio_vs_stable = r;
        }
        if let Some(r) = args.max_latency_ratio {
            thresholds.max_latency_ratio = r;
        }
        let options = ReleaseOptions::new(selector)
            .window(args.window)
            .thresholds(thresholds);
        let started = match etcd
            .start_release(crate::sections(std::time::Duration::ZERO), put, options)
            .await
        {
            Ok(started) => started,
            Err(e) => return refused("release", &section, &e),
        };
        println!(
            "release {} of {section}: staged at revision {} for {} canary member(s): {}; judged for {:?}",
            started.release,
            started.revision,
            started.canaries.len(),
            started.canaries.join(", "),
            args.window
        );
        match etcd
            .judge_release(&started.release, |line| println!("{line}"))
            .await
        {
            Ok(Decision::Promoted(_)) => WRITTEN,
            Ok(_) => NACKED,
            Err(e) => fail(&e),
        }
    }

    fn who() -> String {
        std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into())
    }

    pub(super) async fn fleet(args: FleetArgs) -> u8 {
        let view = match connect(&args.etcd).await {
            Ok(etcd) => etcd.fleet_view().await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match view {
            Ok(view) => {
                print!("{}", table(&view));
                let all_synced = view["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|m| m["state"] == "SYNCED");
                if all_synced { WRITTEN } else { FAILED }
            }
            Err(e) => {
                eprintln!("live_server fleet: {e}");
                FAILED
            }
        }
    }

    /// The fleet view as a table: a heading line, one line per member, and each NACK's
    /// errors below its member.
    pub(super) fn table(view: &Value) -> String {
        let members = view["members"].as_array().cloned().unwrap_or_default();
        let applied = &view["applied"];
        let slowest = applied["slowest_seconds"]
            .as_f64()
            .map_or_else(String::new, |s| format!(", slowest {}", millis(s)));
        let mut out = format!(
            "revision {}: applied by {} of {} member(s){slowest}\n",
            view["revision"], applied["count"], applied["of"]
        );
        let width = members
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::len))
            .max()
            .unwrap_or(2)
            .max(2);
        out += &format!(
            "{:width$}  {:7}  {:>7}  {:>8}  {:>10}\n",
            "ID", "STATE", "VERSION", "APPLIED", "TOOK"
        );
        for m in &members {
            let took = m["propagation"]["seconds"]
                .as_f64()
                .map_or_else(|| "-".to_owned(), millis);
            out += &format!(
                "{:width$}  {:7}  {:>7}  {:>8}  {:>10}\n",
                text(&m["id"]),
                text(&m["state"]),
                text(&m["version"]),
                text(&m["applied_revision"]),
                took
            );
            if let Some(errors) = m["nack"]["errors"].as_array() {
                out += &format!("    NACK of revision {}:\n", m["nack"]["revision"]);
                for error in errors {
                    out += &format!("      - {}\n", error_line(error));
                }
            }
        }
        if members.is_empty() {
            out += "(no live member)\n";
        }
        for r in view["releases"].as_array().into_iter().flatten() {
            if r["state"] == "canary" {
                out += &format!(
                    "release {} in flight: {} to {} (canaries {}), by {}\n",
                    text(&r["id"]),
                    text(&r["sections"][0]),
                    text(&r["selector"]),
                    r["canaries"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(text)
                        .collect::<Vec<_>>()
                        .join(", "),
                    text(&r["by"]),
                );
            }
        }
        out
    }

    /// A JSON value as a table cell: a string without quotes, `-` for null.
    fn text(v: &Value) -> String {
        match v {
            Value::Null => "-".to_owned(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }
    }

    /// An error of a NACK as `Error`'s `Display` writes it: "`key` in source: message".
    fn error_line(error: &Value) -> String {
        let message = error["message"].as_str().unwrap_or_default();
        match (error["key"].as_str(), error["source"].as_str()) {
            (Some(key), Some(source)) => format!("`{key}` in {source}: {message}"),
            (Some(key), None) => format!("`{key}`: {message}"),
            (None, Some(source)) => format!("{source}: {message}"),
            (None, None) => message.to_owned(),
        }
    }

    fn millis(seconds: f64) -> String {
        format!("{:.1} ms", seconds * 1000.0)
    }
}

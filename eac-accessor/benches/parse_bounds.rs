//! Issue 18's target for hostile and large documents: any document up to the 16 MiB size
//! cap is accepted or rejected within 1 s, and one within the parse budgets peaks under
//! 4× its size + 50 MB.
//!
//! Run with `cargo bench -p eac-accessor --bench parse_bounds`. Criterion times reading
//! and parsing a few of the documents through a `File` source; then a summary loads
//! every document once in a fresh process of this benchmark (so that the peak resident
//! memory, `VmHWM` in `/proc/self/status`, is the document's alone) and prints, for each,
//! the outcome, the time, the peak and the bound.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::Criterion;
use eac_accessor::SourceName;
use eac_accessor::source::{File, Format, Layer, Source};
/// The top-level map the crate parses into.
type Dict = serde_json::Map<String, serde_json::Value>;

const MIB: usize = 1024 * 1024;
const PROBE: &str = "EAC_PARSE_BOUNDS_PROBE";

/// One entry of the publish bench's document: five leaves, about 500 bytes.
fn entry(i: usize) -> [(&'static str, String); 5] {
    [
        ("name", format!("\"service-{i:05}\"")),
        (
            "url",
            format!("\"https://s{i}.internal.example:8443/api/v2/items/{i}\""),
        ),
        (
            "description",
            format!("\"{}\"", "alpha bravo charlie delta ".repeat(16)),
        ),
        ("count", (i * 37 % 1000).to_string()),
        ("weight", format!("{:.4}", i as f64 / 7.0)),
    ]
}

/// A configuration document shaped like the publish bench's, of about `size` bytes.
fn config(format: &str, size: usize) -> String {
    let mut out = String::with_capacity(size + 1024);
    match format {
        "json" => out.push_str("{\"data\": {\n"),
        "yaml" => out.push_str("data:\n"),
        _ => {}
    }
    let mut i = 0;
    while out.len() < size {
        let fields = entry(i);
        match format {
            "json" => {
                let body: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("\"{k}\": {v}"))
                    .collect();
                let comma = if i == 0 { "" } else { ",\n" };
                let _ = write!(out, "{comma}  \"k{i:06}\": {{{}}}", body.join(", "));
            }
            "yaml" => {
                let _ = writeln!(out, "  k{i:06}:");
                for (k, v) in &fields {
                    let _ = writeln!(out, "    {k}: {v}");
                }
            }
            _ => {
                let _ = writeln!(out, "[data.k{i:06}]");
                for (k, v) in &fields {
                    let _ = writeln!(out, "{k} = {v}");
                }
            }
        }
        i += 1;
    }
    if format == "json" {
        out.push_str("\n}}\n");
    }
    out
}

/// The documents: name and text (`None`: a 1 GiB sparse file).
fn documents() -> Vec<(&'static str, Option<String>)> {
    let dense = |n: usize| vec!["0"; n].join(",");
    vec![
        ("bench-1mb.json", Some(config("json", 1_000_000))),
        ("bench-1mb.yaml", Some(config("yaml", 1_000_000))),
        ("bench-1mb.toml", Some(config("toml", 1_000_000))),
        ("cap-16mib.json", Some(config("json", 16 * MIB - 4096))),
        ("cap-16mib.yaml", Some(config("yaml", 16 * MIB - 4096))),
        ("cap-16mib.toml", Some(config("toml", 16 * MIB - 4096))),
        (
            "string-16mib.json",
            Some(format!("{{\"s\": \"{}\"}}", "x".repeat(16 * MIB - 64))),
        ),
        // The worst case within the budgets: half a million one-byte values.
        (
            "dense-500k.json",
            Some(format!("{{\"a\": [{}]}}", dense(499_990))),
        ),
        (
            "dense-500k.yaml",
            Some(format!("a: [{}]\n", dense(499_990))),
        ),
        (
            "dense-16mib.json",
            Some(format!("{{\"a\": [{}]}}", dense(8 * MIB - 16))),
        ),
        (
            "dense-16mib.yaml",
            Some(format!("a: [{}]\n", dense(8 * MIB - 16))),
        ),
        (
            "alias-bomb.yaml",
            Some(format!(
                "base: &l [{}]\nbomb: [{}]\n",
                vec!["0"; 20_000].join(", "),
                vec!["*l"; 20_000].join(", ")
            )),
        ),
        (
            "deep-60k.yaml",
            Some(format!(
                "deep: {}{}\n",
                "[".repeat(60_000),
                "]".repeat(60_000)
            )),
        ),
        ("sparse-1gib.json", None),
    ]
}

/// Reads and parses one file as a reload does; `Ok` or the first error's kind.
fn load(path: &Path) -> Result<(), String> {
    let layers = File::new(path).load().map_err(|e| e[0].to_string())?;
    for layer in layers {
        black_box(layer.parse_now().map_err(|e| e.to_string())?);
    }
    Ok(())
}

fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// In the child: load the file, print `elapsed_us peak_bytes outcome`.
fn probe(path: &str) {
    let start = Instant::now();
    let outcome = load(Path::new(path));
    let elapsed = start.elapsed();
    let outcome = match outcome {
        Ok(()) => "accepted".to_owned(),
        Err(e) => {
            let kind = e.split(' ').next().unwrap_or("error").to_owned();
            format!("rejected ({kind})")
        }
    };
    println!("{} {} {outcome}", elapsed.as_micros(), peak_rss());
}

fn write_documents(dir: &Path) -> Vec<(PathBuf, u64)> {
    documents()
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            match text {
                Some(text) => std::fs::write(&path, text).expect("write"),
                None => std::fs::File::create(&path)
                    .and_then(|f| f.set_len(1 << 30))
                    .expect("sparse file"),
            }
            let size = std::fs::metadata(&path).expect("metadata").len();
            (path, size)
        })
        .collect()
}

fn summary(files: &[(PathBuf, u64)]) {
    let exe = std::env::current_exe().expect("the bench binary");
    println!();
    println!(
        "{:<22} {:>10} {:>18} {:>9} {:>9} {:>9}  target",
        "document", "size", "outcome", "time", "peak", "bound"
    );
    for (path, size) in files {
        let out = Command::new(&exe)
            .env(PROBE, path)
            .output()
            .expect("run probe");
        let line = String::from_utf8_lossy(&out.stdout);
        let mut parts = line.trim().splitn(3, ' ');
        let us: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let peak: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let outcome = parts.next().unwrap_or("?").to_owned();
        let accepted = outcome == "accepted";
        // The memory bound applies to what is accepted (within the budgets); a
        // rejected document must stay under it too, counted at the size cap at most.
        let counted = (*size).min(16 * MIB as u64 + 1);
        let bound = 4 * counted + 50_000_000;
        let time_ok = us < 1_000_000;
        let mem_ok = peak <= bound;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        println!(
            "{:<22} {:>8.2}MB {:>18} {:>7.1}ms {:>7.1}MB {:>7.1}MB  {}{}",
            name,
            *size as f64 / 1e6,
            outcome,
            us as f64 / 1000.0,
            peak as f64 / 1e6,
            bound as f64 / 1e6,
            if time_ok { "≤1s ✓" } else { ">1s ✗" },
            if mem_ok { ", mem ✓" } else { ", mem ✗" },
        );
        let _ = accepted;
    }
}

fn main() {
    if let Ok(path) = std::env::var(PROBE) {
        probe(&path);
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let files = write_documents(dir.path());
    let find = |name: &str| {
        files
            .iter()
            .find(|(p, _)| p.file_name().is_some_and(|n| n == name))
            .map(|(p, _)| p.clone())
            .expect("document")
    };

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let mut group = c.benchmark_group("parse_bounds");
    for name in [
        "bench-1mb.json",
        "bench-1mb.yaml",
        "bench-1mb.toml",
        "cap-16mib.json",
        "alias-bomb.yaml",
        "deep-60k.yaml",
        "dense-16mib.json",
        "dense-16mib.yaml",
        "sparse-1gib.json",
    ] {
        let path = find(name);
        group.bench_function(name, |b| b.iter(|| black_box(load(&path).is_ok())));
    }
    group.finish();

    // What the bounds cost a valid document: the crate's parse (BOM, byte scan, parse
    // within budgets) against the bare parser into the same value tree.
    let mut group = c.benchmark_group("parse_overhead_1mb");
    for (format, name) in [
        (Format::Json, "bench-1mb.json"),
        (Format::Yaml, "bench-1mb.yaml"),
        (Format::Toml, "bench-1mb.toml"),
    ] {
        let text = std::fs::read_to_string(find(name)).expect("read");
        let label = name.rsplit('.').next().unwrap_or(name);
        group.bench_function(format!("{label}/eac"), |b| {
            b.iter(|| {
                let layer = Layer::parse(SourceName::Memory(name.into()), format, &text);
                black_box(layer.expect("valid"))
            })
        });
        group.bench_function(format!("{label}/bare"), |b| {
            b.iter(|| match format {
                Format::Json => black_box(serde_json::from_str::<Dict>(&text).is_ok()),
                Format::Toml => black_box(toml::from_str::<Dict>(&text).is_ok()),
                _ => black_box(serde_saphyr::from_str::<Dict>(&text).is_ok()),
            })
        });
    }
    group.finish();
    c.final_summary();

    summary(&files);
}

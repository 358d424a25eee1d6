//! Hostile input, bounded: YAML alias bombs and deep nesting rejected before
//! they cost memory, huge files never read whole, odd bytes given clear answers, and
//! every parser path property-tested with generated hostile documents.
//!
//! The memory findings are measured in a fresh process (this test binary run again on
//! one ignored test, [`memory_probe`]) so that the peak (`VmHWM` in `/proc/self/status`)
//! is the document's alone.
//!
//! The property test runs 64 cases (about a second); a longer run, 1,000 cases in about
//! 30 s on a shared machine: `PROPTEST_CASES=1000 cargo nextest run -p eac-tests hostile::property`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use eac_accessor::source::{Dir, File, Format, Layer, Memory, ParseLimits, SizeCap, Source};
use eac_accessor::{EaCAccessor, Error, ErrorKind, SourceName};
use eac_tests::{ConfigDir, Features, Greeting, Limits, Upstream};

use crate::accessor_for;

const MIB: u64 = 1024 * 1024;

/// The peak resident memory of this process so far, in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Loads one file and parses it, as a reload does: every error it reports.
fn load_file(path: &Path) -> Result<(), Vec<Error>> {
    let layers = File::new(path).load()?;
    for layer in layers {
        layer.parse_now().map_err(|e| vec![e])?;
    }
    Ok(())
}

/// The 137 kB alias document of the issue: a 20,000-item anchored list referenced
/// 20,000 times (400 million values once expanded).
fn alias_bomb() -> String {
    let items = vec!["0"; 20_000].join(", ");
    let refs = vec!["*l"; 20_000].join(", ");
    format!("base: &l [{items}]\nbomb: [{refs}]\n")
}

/// The 120 kB document of the issue: 60,000 nested brackets.
fn deep_brackets() -> String {
    format!("deep: {}{}\n", "[".repeat(60_000), "]".repeat(60_000))
}

/// Run by [`probe`] in a fresh process: loads the file named by `EAC_HOSTILE_PROBE` and
/// prints the outcome, the time it took and the process's peak memory.
#[test]
#[ignore = "run by its parent test in a fresh process, to measure peak memory"]
fn memory_probe() {
    let Ok(path) = std::env::var("EAC_HOSTILE_PROBE") else {
        return;
    };
    let before = peak_rss().unwrap_or(0);
    let start = Instant::now();
    let outcome = load_file(Path::new(&path));
    let elapsed = start.elapsed();
    let peak = peak_rss().unwrap_or(0);
    let (kind, message) = match &outcome {
        Ok(()) => ("accepted".to_owned(), String::new()),
        Err(errors) => (errors[0].kind().to_string(), errors[0].to_string()),
    };
    println!(
        "PROBE kind={kind} ms={} peak={peak} before={before} message={message}",
        elapsed.as_millis()
    );
}

struct Probe {
    kind: String,
    elapsed: Duration,
    peak: u64,
    message: String,
}

/// Loads `path` in a fresh process of this test binary and reads what it measured.
fn probe(path: &Path) -> Probe {
    let output = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "hostile::memory_probe",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("EAC_HOSTILE_PROBE", path)
        .output()
        .expect("run the probe");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PROBE "))
        .unwrap_or_else(|| {
            panic!(
                "the probe printed nothing: {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let field = |name: &str| {
        line.split(' ')
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .unwrap_or_default()
            .to_owned()
    };
    Probe {
        kind: field("kind"),
        elapsed: Duration::from_millis(field("ms").parse().expect("ms")),
        peak: field("peak").parse().expect("peak"),
        message: line
            .split_once("message=")
            .map_or("", |(_, m)| m)
            .to_owned(),
    }
}

/// The memory target of DESIGN.md: peak ≤ 4× the document's size + 50 MB.
fn memory_bound(size: u64) -> u64 {
    4 * size + 50 * 1_000_000
}

#[test]
fn the_yaml_alias_bomb_is_rejected_quickly_in_bounded_memory() {
    let dir = ConfigDir::new();
    let text = alias_bomb();
    assert!((130_000..145_000).contains(&text.len()), "{}", text.len());
    dir.write("bomb.yaml", &text);
    let probe = probe(&dir.file("bomb.yaml"));
    assert_eq!(probe.kind, "limit", "{}", probe.message);
    assert!(
        probe.message.contains("bomb.yaml") && probe.message.contains("ParseLimits::"),
        "names the file and the limit: {}",
        probe.message
    );
    assert!(
        probe.peak < memory_bound(text.len() as u64),
        "peak {} MB for a {} kB document",
        probe.peak / 1_000_000,
        text.len() / 1000
    );
    assert!(
        probe.elapsed < Duration::from_secs(1),
        "{:?}",
        probe.elapsed
    );
}

#[test]
fn sixty_thousand_nested_brackets_are_rejected_before_parsing() {
    let dir = ConfigDir::new();
    let text = deep_brackets();
    dir.write("deep.yaml", &text);
    let probe = probe(&dir.file("deep.yaml"));
    assert_eq!(probe.kind, "limit", "{}", probe.message);
    assert!(
        probe.message.contains("deep.yaml") && probe.message.contains("depth limit of 64"),
        "{}",
        probe.message
    );
    assert!(probe.peak < memory_bound(text.len() as u64));
    assert!(
        probe.elapsed < Duration::from_secs(1),
        "{:?}",
        probe.elapsed
    );

    // The same nesting in JSON and TOML is stopped the same way.
    for (name, text) in [
        ("deep.json", format!("{{\"deep\": {}}}", "[".repeat(60_000))),
        ("deep.toml", format!("deep = {}", "[".repeat(60_000))),
    ] {
        dir.write(name, &text);
        let errors = load_file(&dir.file(name)).unwrap_err();
        assert_eq!(errors[0].kind(), ErrorKind::Limit, "{}", errors[0]);
        assert_eq!(errors[0].source(), Some(&SourceName::File(dir.file(name))));
        assert!(errors[0].message().contains("depth limit"), "{}", errors[0]);
    }
}

#[test]
fn a_sparse_gigabyte_file_is_rejected_without_being_read_whole() {
    let dir = ConfigDir::with_app();
    let path = dir.file("huge.json");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(1024 * MIB))
        .expect("a sparse file");
    let probe = probe(&path);
    assert_eq!(probe.kind, "limit", "{}", probe.message);
    assert!(
        probe.message.contains("huge.json") && probe.message.contains("16 MiB"),
        "names the file and the cap: {}",
        probe.message
    );
    // At most the cap (and one byte) was held: far from the gigabyte.
    assert!(
        probe.peak < SizeCap::FILE.bytes() + 50 * MIB,
        "peak {} MB",
        probe.peak / 1_000_000
    );

    // Through the folder, it rejects the candidate, naming the file, once.
    let errors = accessor_for(&dir).unwrap_err();
    let errors = errors.as_slice();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind(), ErrorKind::Limit);
    assert_eq!(errors[0].source(), Some(&SourceName::File(path)));
}

#[test]
fn a_file_that_reports_size_zero_is_still_capped() {
    // `/proc` files claim a length of 0 and hold more: the cap counts bytes read.
    let path = Path::new("/proc/self/status");
    let claimed = std::fs::metadata(path).map(|m| m.len()).unwrap_or(1);
    assert_eq!(claimed, 0, "a /proc file reports size 0");
    let errors = File::new(path)
        .format(eac_accessor::source::Format::Yaml)
        .max_size(SizeCap::bytes_exact(64))
        .load()
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Limit, "{}", errors[0]);
    assert_eq!(errors[0].source(), Some(&SourceName::File(path.into())));
}

#[test]
fn the_size_cap_is_configurable_and_exact() {
    let dir = ConfigDir::new();
    dir.write("app.toml", &"# padding\n".repeat(100));
    let path = dir.file("app.toml");
    let at = File::new(&path).max_size(SizeCap::bytes_exact(1000));
    assert!(at.load().is_ok(), "a file of exactly the cap is read");
    let below = File::new(&path).max_size(SizeCap::bytes_exact(999));
    let errors = below.load().unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Limit);
    assert!(errors[0].message().contains("999 bytes"), "{}", errors[0]);
    let errors = Dir::new(dir.path())
        .max_size(SizeCap::bytes_exact(10))
        .load()
        .unwrap_err();
    assert_eq!(errors[0].source(), Some(&SourceName::File(path)));
}

#[test]
fn a_json_file_with_a_byte_order_mark_loads() {
    let dir = ConfigDir::new();
    let json = serde_json::json!({
        "greeting": {"message": "hello"},
        "limits": {"max_body_bytes": 1024, "request_timeout_ms": 500},
        "features": {"shout": true},
        "upstream": {"url": "https://u.example", "api_key": "0123456789"},
    });
    dir.write("app.json", &format!("\u{feff}{json}"));
    let accessor = accessor_for(&dir).expect("a BOM is not an error");
    assert_eq!(accessor.load().section::<Limits>().max_body_bytes, 1024);
    assert!(accessor.load().section::<Features>().shout);
}

#[test]
fn an_empty_folder_says_so_once() {
    for extra in [&[][..], &["notes.txt", ".hidden.toml", "app.toml~"][..]] {
        let dir = ConfigDir::new();
        for name in extra {
            dir.write(name, "[greeting]\nmessage = \"x\"\n");
        }
        let errors = accessor_for(&dir).unwrap_err();
        let errors = errors.as_slice();
        assert_eq!(errors.len(), 1, "one error, not one per field: {errors:?}");
        assert_eq!(errors[0].kind(), ErrorKind::SourceMissing);
        assert_eq!(
            errors[0].source(),
            Some(&SourceName::Dir(dir.path().to_path_buf()))
        );
        let message = dir.scrub(errors[0].message());
        assert!(
            message.starts_with("no configuration files in [dir]"),
            "{message}"
        );
    }
}

#[test]
fn a_file_that_is_not_utf8_is_rejected_naming_it() {
    let dir = ConfigDir::with_app();
    std::fs::write(
        dir.file("latin1.toml"),
        b"[greeting]\nmessage = \"caf\xe9\"\n",
    )
    .unwrap();
    let errors = accessor_for(&dir).unwrap_err();
    let e = &errors.as_slice()[0];
    assert_eq!(e.kind(), ErrorKind::Parse);
    assert_eq!(e.source(), Some(&SourceName::File(dir.file("latin1.toml"))));
    assert!(e.message().contains("UTF-8 at line 2"), "{e}");
}

#[test]
fn limits_are_configurable_per_source() {
    let dir = ConfigDir::with_app();
    dir.write(
        "extra.yaml",
        "greeting:\n  message: &m hello\nfeatures:\n  shout: false\n",
    );
    let build = |limits: ParseLimits| {
        EaCAccessor::builder()
            .section::<Greeting>()
            .section::<Limits>()
            .section::<Features>()
            .section::<Upstream>()
            .source(Dir::new(dir.path()).limits(limits))
            .build()
    };
    assert!(build(ParseLimits::default()).is_ok());
    let errors = build(ParseLimits::default().max_depth(1)).unwrap_err();
    let e = &errors.as_slice()[0];
    assert_eq!(e.kind(), ErrorKind::Limit);
    assert!(e.message().contains("depth limit of 1"), "{e}");
}

#[test]
fn the_benchmark_sized_document_fits_the_default_budgets_in_every_format() {
    // 2,000 entries of five leaves: the 1 MB / 10k-key document of the publish bench.
    let entries: serde_json::Map<String, serde_json::Value> = (0..2_000)
        .map(|i| {
            let entry = serde_json::json!({
                "name": format!("service-{i:05}"),
                "url": format!("https://s{i}.internal.example:8443/api/v2/items/{i}"),
                "description": "alpha bravo charlie ".repeat(16),
                "count": i,
                "weight": f64::from(i) / 7.0,
            });
            (format!("k{i:05}"), entry)
        })
        .collect();
    let doc = serde_json::json!({ "data": entries });
    let json = serde_json::to_string_pretty(&doc).unwrap();
    assert!(json.len() > 1_000_000, "{}", json.len());
    let dir = ConfigDir::new();
    dir.write("big.json", &json);
    load_file(&dir.file("big.json")).expect("JSON");
    let mut yaml = String::from("data:\n");
    let mut toml = String::new();
    for (key, entry) in doc["data"].as_object().unwrap() {
        yaml.push_str(&format!("  {key}:\n"));
        toml.push_str(&format!("[data.{key}]\n"));
        for (field, value) in entry.as_object().unwrap() {
            yaml.push_str(&format!("    {field}: {value}\n"));
            toml.push_str(&format!("{field} = {value}\n"));
        }
    }
    dir.write("big.yaml", &yaml);
    dir.write("big.toml", &toml);
    load_file(&dir.file("big.yaml")).expect("YAML");
    load_file(&dir.file("big.toml")).expect("TOML");
}

/// Generated hostile documents for every parser path.
mod property {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    /// A value the parsers must never repeat in an error.
    const CANARY: &str = "CANARY-s3cr3t-9f2c";

    #[derive(Debug, Clone, Copy)]
    enum Fmt {
        Toml,
        Yaml,
        Json,
    }

    impl Fmt {
        fn ext(self) -> &'static str {
            match self {
                Fmt::Toml => "toml",
                Fmt::Yaml => "yaml",
                Fmt::Json => "json",
            }
        }

        /// `key` set to `value` (already in this format's syntax) inside a section.
        fn doc(self, key: &str, value: &str) -> String {
            match self {
                Fmt::Toml => format!("[s]\nsecret = \"{CANARY}\"\n{key} = {value}\n"),
                Fmt::Yaml => format!("s:\n  secret: \"{CANARY}\"\n  {key}: {value}\n"),
                Fmt::Json => format!("{{\"s\": {{\"secret\": \"{CANARY}\", \"{key}\": {value}}}}}"),
            }
        }
    }

    fn fmt() -> impl Strategy<Value = Fmt> {
        prop_oneof![Just(Fmt::Toml), Just(Fmt::Yaml), Just(Fmt::Json)]
    }

    /// Nesting: lists (and maps, for JSON and YAML flow) up to well past the depth limit,
    /// closed or not.
    fn nested(f: Fmt) -> impl Strategy<Value = String> {
        (1usize..200, any::<bool>(), any::<bool>()).prop_map(move |(depth, maps, closed)| {
            let (open, close) = match (f, maps) {
                (Fmt::Toml, true) => ("{ a = ", " }"),
                (_, true) => match f {
                    Fmt::Json => ("{\"a\": ", "}"),
                    _ => ("{a: ", "}"),
                },
                (_, false) => ("[", "]"),
            };
            let mut v = open.repeat(depth);
            v.push('1');
            if closed {
                v.push_str(&close.repeat(depth));
            }
            v
        })
    }

    /// Many YAML aliases of an anchored list: a few thousand values once expanded, or a
    /// bomb of millions (over the budget, so refused before it is built).
    fn aliases() -> impl Strategy<Value = String> {
        prop_oneof![
            (1usize..200, 1usize..200),
            (1_000usize..3_000, 1_000usize..3_000)
        ]
        .prop_map(|(items, refs)| {
            format!(
                "s:\n  secret: \"{CANARY}\"\n  base: &l [{}]\n  many: [{}]\n",
                vec!["x"; items].join(", "),
                vec!["*l"; refs].join(", ")
            )
        })
    }

    /// A huge string value.
    fn huge_string() -> impl Strategy<Value = usize> {
        0usize..(256 * 1024)
    }

    /// A document in `f`, then damaged: hostile edits, other line endings, a BOM.
    fn document() -> impl Strategy<Value = (Fmt, Vec<u8>)> {
        let base = fmt().prop_flat_map(|f| {
            let common = prop_oneof![
                nested(f).prop_map(move |v| f.doc("deep", &v)),
                huge_string().prop_map(move |n| f.doc("big", &format!("\"{}\"", "x".repeat(n)))),
                Just(f.doc("plain", "1")),
            ];
            let doc = match f {
                Fmt::Yaml => prop_oneof![common, aliases()].boxed(),
                _ => common.boxed(),
            };
            doc.prop_map(move |d| (f, d))
        });
        (
            base,
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
            any::<bool>(),
        )
            .prop_map(|((f, doc), edits, eol, bom)| {
                let mut bytes = doc.replace('\n', eol).into_bytes();
                // Hostile bytes at random places: invalid UTF-8, brackets, quotes, NULs.
                for (at, byte) in edits {
                    let i = at.index(bytes.len() + 1);
                    bytes.insert(i, byte);
                }
                if bom {
                    bytes.splice(0..0, "\u{feff}".bytes());
                }
                (f, bytes)
            })
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(64)
    }

    #[test]
    fn every_parser_answers_hostile_input_in_bounds() {
        let dir = ConfigDir::new();
        let before = peak_rss();
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&document(), |(f, bytes)| {
                let path = dir.file(&format!("doc.{}", f.ext()));
                std::fs::write(&path, &bytes).unwrap();
                let start = Instant::now();
                let outcome = File::new(&path).load().and_then(|layers| {
                    layers
                        .into_iter()
                        .map(|l| l.parse_now())
                        .collect::<Result<Vec<Layer>, _>>()
                        .map_err(|e| vec![e])
                });
                let elapsed = start.elapsed();
                // Generous for a debug build on a shared machine; the release bound (1 s
                // for any document up to the cap) is the `parse_bounds` benchmark's.
                prop_assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
                if let Err(errors) = outcome {
                    prop_assert!(!errors.is_empty());
                    for e in &errors {
                        prop_assert_eq!(e.source(), Some(&SourceName::File(path.clone())));
                        prop_assert!(
                            matches!(e.kind(), ErrorKind::Parse | ErrorKind::Limit),
                            "{}",
                            e
                        );
                        prop_assert!(!e.to_string().contains(CANARY), "leaked: {}", e);
                    }
                }
                Ok(())
            })
            .unwrap();
        // Documents of at most a few MB: a bomb that got through would show here.
        if let (Some(before), Some(after)) = (before, peak_rss()) {
            assert!(
                after.saturating_sub(before) < 200 * MIB,
                "peak grew by {} MB",
                (after - before) / 1_000_000
            );
        }
    }

    /// Text that reaches deep into each parser's error path: arbitrary UTF-8 (multi-byte
    /// characters included), alone or after a start that makes it a value, a key or a
    /// table header, so that an error's position falls inside or after a wide character.
    fn any_text() -> impl Strategy<Value = String> {
        let start = prop_oneof![
            Just(""),
            Just("a = "),
            Just("a = \""),
            Just("[s]\nk = "),
            Just("[é"),
            Just("ключ"),
            Just("s:\n  k: "),
            Just("{\"s\": "),
            Just("- "),
            Just("a = 1"),
            Just("a = 0x"),
            Just("a = 1979-05-27T"),
            Just("a = tr"),
            Just("a = [1, "),
            Just("a = { b = "),
            Just("\"é\" = "),
            Just("a.é."),
        ];
        (start, any::<String>(), any::<String>())
            .prop_map(|(start, a, b)| format!("{start}{a}\n{b}"))
    }

    /// Every format's error path, over arbitrary UTF-8: an answer, never a panic, and an
    /// error names the source (a TOML error's position once cut a character in two).
    #[test]
    fn every_format_answers_arbitrary_utf8_naming_the_source() {
        let mut runner = TestRunner::new(Config {
            cases: cases() * 16,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&(fmt(), any_text()), |(f, text)| {
                let format = match f {
                    Fmt::Toml => Format::Toml,
                    Fmt::Yaml => Format::Yaml,
                    Fmt::Json => Format::Json,
                };
                let name = format!("arbitrary.{}", f.ext());
                let layers = Memory::new(name.as_str(), format, text.as_str())
                    .load()
                    .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                for layer in layers {
                    // A panic fails the case (proptest catches it and shrinks the text).
                    if let Err(e) = layer.parse_now() {
                        prop_assert_eq!(e.source(), Some(&SourceName::Memory(name.clone())));
                        prop_assert!(
                            matches!(e.kind(), ErrorKind::Parse | ErrorKind::Limit),
                            "{}",
                            e
                        );
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}

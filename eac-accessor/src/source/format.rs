//! The text formats of configuration documents, and how each is parsed within budgets.
//!
//! Every parse runs in three steps: a leading UTF-8 byte-order mark is dropped (some
//! Windows editors write one); a byte scan ([`scan`](super::scan)) bounds the nesting
//! and, for TOML and JSON, the number of values before the parser starts; then the parser
//! runs — for YAML with its own budgets on depth, values, aliases and what they expand
//! to, enforced on its event stream before any value is built.
//!
//! Messages give the position and the reason but never quote the text, which may hold a
//! secret.

use std::path::Path;

use super::Dict;
use super::json;
use super::limits::ParseLimits;
use super::prescan::{self, Breach};
use crate::error::ErrorKind;

/// The text formats a source can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// TOML.
    Toml,
    /// YAML, with the `yaml` feature; without it a YAML document is refused.
    Yaml,
    /// JSON.
    Json,
}

/// Why a document was refused: a syntax error ([`ErrorKind::Parse`]) or a budget
/// ([`ErrorKind::Limit`]), with a message that holds no text of the document.
pub(super) type Refusal = (ErrorKind, String);

impl Format {
    /// The format for a file name's extension (`toml`, `yaml`, `yml`, `json`), if it is one.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Toml => "TOML",
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        }
    }

    /// Parses `text` into a top-level map within `limits`.
    pub(super) fn parse(self, text: &str, limits: &ParseLimits) -> Result<Dict, Refusal> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let scanned = match self {
            Format::Toml => prescan::toml(text, limits),
            Format::Yaml => prescan::yaml(text, limits),
            // Counted as it is parsed.
            Format::Json => Ok(()),
        };
        scanned.map_err(|breach| self.breach(breach, limits))?;
        match self {
            Format::Toml => toml::from_str::<Dict>(text).map_err(|e| {
                let reason = e.message().replace('\n', "; ");
                let message = match e.span() {
                    Some(span) => {
                        format!("invalid TOML at {}: {reason}", position(text, span.start))
                    }
                    None => format!("invalid TOML: {reason}"),
                };
                (ErrorKind::Parse, message)
            }),
            Format::Json => json::parse(text, limits).map_err(|failure| {
                let e = match failure {
                    json::Failure::Breach(breach) => return self.breach(breach, limits),
                    json::Failure::Invalid(e) => e,
                };
                let at = format!("line {} column {}", e.line(), e.column());
                let message = match e.classify() {
                    serde_json::error::Category::Data => {
                        format!("invalid JSON at {at}: expected a map at the top level")
                    }
                    _ => format!("invalid JSON at {at}: {}", strip_position(&e.to_string())),
                };
                (ErrorKind::Parse, message)
            }),
            #[cfg(feature = "yaml")]
            Format::Yaml => yaml(text, limits),
            #[cfg(not(feature = "yaml"))]
            Format::Yaml => Err((
                ErrorKind::Parse,
                "YAML is not built in: turn on eac-accessor's `yaml` feature".to_owned(),
            )),
        }
    }

    fn breach(self, breach: Breach, limits: &ParseLimits) -> Refusal {
        let format = self.name();
        let message = match breach {
            Breach::Depth { line } => format!(
                "{format} nested deeper than the depth limit of {} at line {line} \
                 (`ParseLimits::max_depth`)",
                limits.depth()
            ),
            Breach::Nodes => format!(
                "{format} holds more values than the limit of {} (`ParseLimits::max_nodes`)",
                limits.nodes()
            ),
        };
        (ErrorKind::Limit, message)
    }
}

#[cfg(feature = "yaml")]
fn yaml(text: &str, limits: &ParseLimits) -> Result<Dict, Refusal> {
    use serde_saphyr::budget::BudgetBreach;

    if text.trim().is_empty() {
        return Ok(Dict::new());
    }
    // Without an anchor there is nothing to expand.
    if text.contains('&') {
        yaml_expansion(text, limits)?;
    }
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = limits.depth();
    budget.flow_nesting_limit = limits.depth();
    budget.max_nodes = limits.nodes();
    // Every node opens and most close: two events a node, and then some.
    budget.max_events = limits.nodes().saturating_mul(2).saturating_add(64);
    budget.max_aliases = limits.aliases();
    budget.max_anchors = limits.aliases();
    // Scalars as written cannot outgrow the text; aliases may add their allowance.
    budget.max_total_scalar_bytes = text.len().saturating_add(limits.alias_bytes());
    budget.max_recorded_anchor_bytes = limits.alias_bytes();
    budget.max_documents = 1;
    budget.max_inclusion_depth = 0;
    // The explicit node and byte budgets bound what aliases expand to; a fixed ratio of
    // aliases to anchors would refuse a default block merged into many sections.
    budget.enforce_alias_anchor_ratio = false;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = limits.nodes().saturating_mul(2);
    options.alias_limits.max_replay_stack_depth = limits.depth();
    // Never render a snippet of the text: it may hold a secret.
    options.with_snippet = false;
    options.crop_radius = 0;

    serde_saphyr::from_str_with_options::<Option<Dict>>(text, options)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            let mut e = &e;
            // An error met while an alias was replayed wraps the original.
            while let serde_saphyr::Error::AliasError { error, .. }
            | serde_saphyr::Error::WithSnippet { error, .. } = e
            {
                e = error;
            }
            let at = e
                .location()
                .filter(|l| l.line() > 0)
                .map(|l| format!(" at line {} column {}", l.line(), l.column()))
                .unwrap_or_default();
            let limit = |what: String| (ErrorKind::Limit, format!("YAML {what}{at}"));
            match e {
                serde_saphyr::Error::Budget { breach, .. } => match breach {
                    BudgetBreach::Depth { .. } => limit(format!(
                        "nested deeper than the depth limit of {} (`ParseLimits::max_depth`)",
                        limits.depth()
                    )),
                    BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => limit(format!(
                        "holds more values than the limit of {}, counting what aliases \
                         repeat (`ParseLimits::max_nodes`)",
                        limits.nodes()
                    )),
                    BudgetBreach::Aliases { .. } | BudgetBreach::Anchors { .. } => limit(format!(
                        "has more aliases or anchors than the limit of {} \
                             (`ParseLimits::max_aliases`)",
                        limits.aliases()
                    )),
                    BudgetBreach::ScalarBytes { .. } => limit(format!(
                        "aliases expand its text by more than the limit of {} bytes \
                         (`ParseLimits::max_alias_bytes`)",
                        limits.alias_bytes()
                    )),
                    BudgetBreach::Documents { .. } => (
                        ErrorKind::Parse,
                        format!("invalid YAML{at}: more than one document"),
                    ),
                    other => limit(format!("exceeds a parse budget ({})", breach_name(other))),
                },
                serde_saphyr::Error::AliasReplayLimitExceeded { .. }
                | serde_saphyr::Error::AliasExpansionLimitExceeded { .. }
                | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. } => limit(format!(
                    "aliases expand to more values than the limit of {} \
                     (`ParseLimits::max_nodes`)",
                    limits.nodes()
                )),
                // The only place the map of values asks for a mapping is the top level.
                serde_saphyr::Error::Unexpected {
                    expected: "mapping start",
                    ..
                } => (
                    ErrorKind::Parse,
                    format!("invalid YAML{at}: expected a map at the top level"),
                ),
                serde_saphyr::Error::Unexpected { expected, .. } => (
                    ErrorKind::Parse,
                    format!("invalid YAML{at}: expected {expected}"),
                ),
                other => {
                    let message = other.to_string();
                    // Advice to the developer ("set DuplicateKeyPolicy …") is not for the user.
                    let message = message.split(", set ").next().unwrap_or_default();
                    let reason = sanitize(strip_position(message));
                    let reason = if reason.starts_with("invalid type") {
                        "expected a map at the top level".to_owned()
                    } else {
                        reason
                    };
                    (ErrorKind::Parse, format!("invalid YAML{at}: {reason}"))
                }
            }
        })
}

/// Counts what a YAML document's aliases expand to, on the parser's event stream and
/// before any value is built: each anchor's expanded size (values and scalar bytes) is
/// recorded once, and every alias adds it. An alias bomb is refused after reading its
/// events, without the millions of values it describes ever existing.
///
/// A syntax error ends the count quietly: the parse that follows reports it.
#[cfg(feature = "yaml")]
fn yaml_expansion(text: &str, limits: &ParseLimits) -> Result<(), Refusal> {
    use serde_saphyr::granit_parser::{Event, Parser};

    #[derive(Clone, Copy, Default)]
    struct Size {
        nodes: u64,
        bytes: u64,
    }
    let max_nodes = limits.nodes() as u64;
    let max_bytes = (text.len() as u64).saturating_add(limits.alias_bytes() as u64);
    let mut anchors: std::collections::HashMap<usize, Size> = std::collections::HashMap::new();
    // Open containers: their anchor and the running total when they started.
    let mut open: Vec<(usize, Size)> = Vec::new();
    let mut total = Size::default();
    let mut aliases = 0usize;
    let refuse =
        |what: &str, line: usize| (ErrorKind::Limit, format!("YAML {what} at line {line}"));
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            return Ok(());
        };
        let line = span.start.line();
        match event {
            Event::Scalar(value, _, anchor, _) => {
                let size = Size {
                    nodes: 1,
                    bytes: value.len() as u64,
                };
                total.nodes += size.nodes;
                total.bytes += size.bytes;
                if anchor > 0 {
                    anchors.insert(anchor, size);
                }
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                open.push((anchor, total));
                total.nodes += 1;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, start)) = open.pop()
                    && anchor > 0
                {
                    let size = Size {
                        nodes: total.nodes - start.nodes,
                        bytes: total.bytes - start.bytes,
                    };
                    anchors.insert(anchor, size);
                }
            }
            Event::Alias(id) => {
                aliases += 1;
                if aliases > limits.aliases() {
                    return Err(refuse(
                        &format!(
                            "has more aliases than the limit of {} (`ParseLimits::max_aliases`)",
                            limits.aliases()
                        ),
                        line,
                    ));
                }
                let size = anchors
                    .get(&id)
                    .copied()
                    .unwrap_or(Size { nodes: 1, bytes: 0 });
                total.nodes = total.nodes.saturating_add(size.nodes);
                total.bytes = total.bytes.saturating_add(size.bytes);
            }
            _ => {}
        }
        if total.nodes > max_nodes {
            return Err(refuse(
                &format!(
                    "expands to more values than the limit of {} through its aliases \
                     (`ParseLimits::max_nodes`)",
                    limits.nodes()
                ),
                line,
            ));
        }
        if total.bytes > max_bytes {
            return Err(refuse(
                &format!(
                    "aliases expand its text by more than the limit of {} bytes \
                     (`ParseLimits::max_alias_bytes`)",
                    limits.alias_bytes()
                ),
                line,
            ));
        }
    }
    Ok(())
}

/// The name of a budget breach, without its numbers.
#[cfg(feature = "yaml")]
fn breach_name(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    let debug = format!("{breach:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or("budget")
        .to_owned()
}

/// The reason of a parser message, with anything quoted from the document removed
/// (a quoted punctuation mark, the parser's own token like `']'`, is kept).
#[cfg(feature = "yaml")]
fn sanitize(reason: &str) -> String {
    let first_line = reason.lines().next().unwrap_or_default();
    let mut out = String::with_capacity(first_line.len());
    let mut quoted: Option<(char, String)> = None;
    for ch in first_line.chars() {
        match &mut quoted {
            Some((q, inner)) if ch == *q => {
                let mut token = inner.chars();
                match (token.next(), token.next()) {
                    (Some(c), None) if c.is_ascii_punctuation() => out.push(c),
                    _ => out.push('…'),
                }
                out.push(ch);
                quoted = None;
            }
            Some((_, inner)) => inner.push(ch),
            None if matches!(ch, '"' | '`' | '\'') => {
                quoted = Some((ch, String::new()));
                out.push(ch);
            }
            None => out.push(ch),
        }
    }
    if quoted.is_some() {
        out.push('…');
    }
    out
}

/// `line L column C` (1-based) of byte `offset` in `text`; an offset inside a character
/// (a parser's span is in bytes) counts as that character's.
fn position(text: &str, offset: usize) -> String {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line} column {column}")
}

/// Drops a trailing " at line L column C" that parsers' messages carry, since we say it first.
fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(format: Format, text: &str) -> Result<Dict, Refusal> {
        format.parse(text, &ParseLimits::default())
    }

    #[test]
    fn parse_errors_give_position_not_text() {
        let secret = "hunter2-very-secret";
        for (format, text) in [
            (Format::Toml, format!("[s]\nkey = \"{secret}\nother = 1\n")),
            (
                Format::Json,
                format!("{{\"s\": {{\"key\": \"{secret}\" oops}}}}"),
            ),
            (Format::Yaml, format!("s:\n  key: \"{secret}\n  x: [1,\n")),
            (Format::Json, format!("\"{secret}\"")),
            (Format::Yaml, format!("\"{secret}\"")),
            (Format::Yaml, format!("s: *{secret}\n")),
            (Format::Yaml, format!("s: 1\ns: {secret}\n")),
            (Format::Yaml, format!("- {secret}\n")),
        ] {
            let (kind, err) = parse(format, &text).unwrap_err();
            assert_eq!(kind, ErrorKind::Parse, "{format:?}: {err}");
            assert!(!err.contains(secret), "{format:?} leaked: {err}");
            assert!(err.contains("line"), "{format:?} has no position: {err}");
        }
    }

    #[test]
    fn a_byte_order_mark_is_dropped_in_every_format() {
        for (format, text) in [
            (Format::Toml, "\u{feff}[s]\nx = 1\n"),
            (Format::Yaml, "\u{feff}s:\n  x: 1\n"),
            (Format::Json, "\u{feff}{\"s\": {\"x\": 1}}"),
        ] {
            let dict = parse(format, text).unwrap_or_else(|e| panic!("{format:?}: {e:?}"));
            assert!(dict.contains_key("s"), "{format:?}");
        }
    }

    #[test]
    fn empty_yaml_is_an_empty_map_and_a_scalar_is_not_a_map() {
        assert!(parse(Format::Yaml, "").unwrap().is_empty());
        assert!(
            parse(Format::Yaml, "# only a comment\n")
                .unwrap()
                .is_empty()
        );
        let (kind, err) = parse(Format::Yaml, "42\n").unwrap_err();
        assert_eq!(kind, ErrorKind::Parse);
        assert!(err.contains("map"), "{err}");
    }

    #[test]
    fn yaml_budgets_name_the_limit() {
        let limits = ParseLimits::default().max_nodes(100).max_aliases(5);
        let list = (0..50)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let repeated = format!("a: &x [{list}]\nb: [*x, *x, *x]\n");
        let (kind, err) = Format::Yaml.parse(&repeated, &limits).unwrap_err();
        assert_eq!(kind, ErrorKind::Limit);
        assert!(err.contains("max_nodes"), "{err}");

        let aliases = format!("a: &x 1\nb: [{}]\n", ["*x"; 6].join(", "));
        let (kind, err) = Format::Yaml.parse(&aliases, &limits).unwrap_err();
        assert_eq!(kind, ErrorKind::Limit);
        assert!(err.contains("max_aliases"), "{err}");

        let deep = format!("a: {}1{}\n", "[".repeat(70), "]".repeat(70));
        let (kind, err) = parse(Format::Yaml, &deep).unwrap_err();
        assert_eq!(kind, ErrorKind::Limit);
        assert!(err.contains("max_depth") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn nested_alias_bombs_are_counted_before_anything_is_built() {
        // Ten levels of ten aliases each: 10^10 values once expanded, 1 kB of text.
        let mut text = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*l{}", i - 1); 10].join(", ");
            text.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        let (kind, err) = parse(Format::Yaml, &text).unwrap_err();
        assert_eq!(kind, ErrorKind::Limit);
        assert!(err.contains("max_nodes") && err.contains("line 6"), "{err}");
        // Long scalars repeated by aliases are held to the byte budget.
        let big = format!(
            "a: &a \"{}\"\nb: [{}]\n",
            "x".repeat(1000),
            vec!["*a"; 20].join(", ")
        );
        let limits = ParseLimits::default().max_alias_bytes(10_000);
        let (kind, err) = Format::Yaml.parse(&big, &limits).unwrap_err();
        assert_eq!(kind, ErrorKind::Limit);
        assert!(err.contains("max_alias_bytes"), "{err}");
    }

    #[test]
    fn yaml_aliases_and_merge_keys_within_budget_expand() {
        let text = "base: &base\n  a: 1\n  b: 2\nx:\n  <<: *base\n  b: 3\n";
        let dict = parse(Format::Yaml, text).unwrap();
        let x = serde_json::to_value(&dict["x"]).unwrap();
        assert_eq!(x, serde_json::json!({"a": 1, "b": 3}));
    }

    #[test]
    fn toml_and_json_count_values_before_parsing() {
        let limits = ParseLimits::default().max_nodes(10);
        let json = format!("{{\"a\": [{}]}}", vec!["1"; 20].join(","));
        let (kind, err) = Format::Json.parse(&json, &limits).unwrap_err();
        assert_eq!(kind, ErrorKind::Limit);
        assert!(err.contains("JSON") && err.contains("max_nodes"), "{err}");
        let toml = format!("a = [{}]\n", vec!["1"; 20].join(","));
        let (kind, err) = Format::Toml.parse(&toml, &limits).unwrap_err();
        assert_eq!(kind, ErrorKind::Limit);
        assert!(err.contains("TOML") && err.contains("max_nodes"), "{err}");
    }

    #[test]
    fn a_position_inside_a_character_is_that_characters() {
        // "é" is two bytes: offset 5 falls between them.
        assert_eq!(position("a = é", 5), "line 1 column 5");
        assert_eq!(position("a\n😀x", 4), "line 2 column 1");
        assert_eq!(position("ab", 99), "line 1 column 3");
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(Format::from_path(Path::new("a.YML")), Some(Format::Yaml));
        assert_eq!(Format::from_path(Path::new("a.toml")), Some(Format::Toml));
        assert_eq!(Format::from_path(Path::new("a.txt")), None);
        assert_eq!(Format::from_path(Path::new("toml")), None);
    }
}

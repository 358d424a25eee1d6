//! A byte scan of a TOML or YAML document's shape, run before its parser so that nesting
//! (and, for TOML, the number of values) is bounded before anything is built. JSON counts
//! both as it is parsed (`json`).
//!
//! The scans read each byte once and allocate nothing that grows with the input. They
//! track strings and comments, so a bracket inside a string is not nesting; they can
//! under-count in odd corners (the parsers enforce the exact limits where they can), but
//! they do not over-count, so a document within the limits is never refused by a scan.

use super::limits::ParseLimits;

/// What a scan found beyond the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Breach {
    /// Nesting deeper than the limit, first reached at this (1-based) line.
    Depth { line: usize },
    /// More values than the limit.
    Nodes,
}

struct Counter {
    limits: ParseLimits,
    nodes: usize,
    line: usize,
}

impl Counter {
    fn new(limits: &ParseLimits) -> Self {
        Counter {
            limits: *limits,
            nodes: 0,
            line: 1,
        }
    }

    fn node(&mut self) -> Result<(), Breach> {
        self.nodes += 1;
        if self.nodes > self.limits.nodes() {
            Err(Breach::Nodes)
        } else {
            Ok(())
        }
    }

    fn depth(&self, depth: usize) -> Result<(), Breach> {
        if depth > self.limits.depth() {
            Err(Breach::Depth { line: self.line })
        } else {
            Ok(())
        }
    }
}

/// TOML: a table header's dotted segments, a key's dotted segments and the brackets of
/// its value all nest; keys, scalars, arrays and inline tables are values.
pub(super) fn toml(text: &str, limits: &ParseLimits) -> Result<(), Breach> {
    #[derive(Clone, Copy, PartialEq)]
    enum Str {
        None,
        Basic,
        Literal,
        MultiBasic,
        MultiLiteral,
    }
    let bytes = text.as_bytes();
    let mut c = Counter::new(limits);
    // Depth of the current table (the root table is 1).
    let mut table = 1usize;
    // The open value containers: depth, extra depth of the dotted key being written (in
    // an inline table), and whether it is an inline table.
    let mut stack: Vec<(usize, usize, bool)> = Vec::new();
    let mut line_start = true;
    let mut key_depth = table;
    let mut in_key = false;
    let mut in_word = false;
    let mut string = Str::None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            c.line += 1;
        }
        match string {
            Str::Basic | Str::MultiBasic => {
                if b == b'\\' {
                    i += 2;
                    continue;
                }
                if b == b'"' {
                    if string == Str::Basic {
                        string = Str::None;
                    } else if bytes[i..].starts_with(b"\"\"\"") {
                        string = Str::None;
                        i += 3;
                        continue;
                    }
                } else if b == b'\n' && string == Str::Basic {
                    string = Str::None; // an error for the parser to report
                    line_start = stack.is_empty();
                }
                i += 1;
                continue;
            }
            Str::Literal | Str::MultiLiteral => {
                if b == b'\'' {
                    if string == Str::Literal {
                        string = Str::None;
                    } else if bytes[i..].starts_with(b"'''") {
                        string = Str::None;
                        i += 3;
                        continue;
                    }
                } else if b == b'\n' && string == Str::Literal {
                    string = Str::None;
                    line_start = stack.is_empty();
                }
                i += 1;
                continue;
            }
            Str::None => {}
        }
        if line_start {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => {
                    i += 1;
                    continue;
                }
                b'[' => {
                    // A table header: its depth is the number of its segments, plus one
                    // for an array of tables.
                    let array = bytes.get(i + 1) == Some(&b'[');
                    // The root table, the header's first segment, and the array.
                    let mut depth = 2 + usize::from(array);
                    let mut quote = None;
                    i += 1 + usize::from(array);
                    while i < bytes.len() && bytes[i] != b'\n' {
                        match (quote, bytes[i]) {
                            (None, b'"' | b'\'') => quote = Some(bytes[i]),
                            (Some(q), x) if x == q => quote = None,
                            (None, b'.') => depth += 1,
                            (None, b']') => break,
                            _ => {}
                        }
                        i += 1;
                    }
                    table = depth;
                    c.depth(table)?;
                    c.node()?;
                    // The rest of the line is `]`, `]]`, a comment: nothing that nests.
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                    continue;
                }
                _ => {
                    line_start = false;
                    in_key = true;
                    key_depth = table;
                }
            }
        }
        // Depth of what is being written now: inside a container, or the current key's.
        let here = stack.last().map_or(key_depth, |&(d, extra, _)| d + extra);
        match b {
            b'"' => {
                string = if bytes[i..].starts_with(b"\"\"\"") {
                    i += 2;
                    Str::MultiBasic
                } else {
                    Str::Basic
                };
                in_word = false;
                c.node()?;
            }
            b'\'' => {
                string = if bytes[i..].starts_with(b"'''") {
                    i += 2;
                    Str::MultiLiteral
                } else {
                    Str::Literal
                };
                in_word = false;
                c.node()?;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'.' if in_key => {
                // A dotted key opens a table per dot.
                match stack.last_mut() {
                    Some((_, extra, _)) => *extra += 1,
                    None => key_depth += 1,
                }
                c.depth(here + 1)?;
                in_word = false;
            }
            b'=' => {
                in_key = false;
                in_word = false;
            }
            b'[' | b'{' if !in_key => {
                let depth = here + 1;
                c.depth(depth)?;
                c.node()?;
                stack.push((depth, 0, b == b'{'));
                in_key = b == b'{';
                in_word = false;
            }
            b']' | b'}' if !in_key || b == b'}' => {
                stack.pop();
                in_key = false;
                in_word = false;
            }
            b',' => {
                in_word = false;
                if let Some((_, extra, true)) = stack.last_mut() {
                    // Back to a key of the inline table: the previous key's dots are done.
                    *extra = 0;
                    in_key = true;
                }
            }
            b'\n' => {
                in_word = false;
                if stack.is_empty() {
                    line_start = true;
                }
            }
            b' ' | b'\t' | b'\r' => in_word = false,
            _ if !in_word => {
                in_word = true;
                c.node()?;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// YAML: indentation levels opened by `key:` or `- `, plus flow brackets outside
/// strings and comments. Block scalars (`|`, `>`) and multi-line scalars are skipped.
/// Values are counted from below (a block line, a flow collection, a comma in one: each
/// holds at least one). The YAML parser checks depth and values exactly afterwards; this
/// scan is what stops a document of deeply nested brackets, or of millions of tiny
/// values, before the parser sees it.
pub(super) fn yaml(text: &str, limits: &ParseLimits) -> Result<(), Breach> {
    let mut c = Counter::new(limits);
    let mut block: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<u8> = None;
    // Lines more indented than this belong to a block scalar.
    let mut block_scalar: Option<usize> = None;
    // The previous line ended ready for a nested block (`key:` or `-`).
    let mut opens = false;
    for (n, line) in text.split('\n').enumerate() {
        c.line = n + 1;
        let line = line.strip_suffix('\r').unwrap_or(line).as_bytes();
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let blank = line[indent..]
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r'));
        if let Some(parent) = block_scalar {
            if blank || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut i = 0;
        let mut token_start = true;
        if quote.is_none() && flow == 0 {
            if blank || line[indent] == b'#' {
                continue;
            }
            if line.starts_with(b"---") || line.starts_with(b"...") {
                block.clear();
                opens = false;
                continue;
            }
            while block.last().is_some_and(|&top| top > indent) {
                block.pop();
            }
            if block.last() != Some(&indent) {
                if block.is_empty() || opens {
                    block.push(indent);
                    c.depth(block.len())?;
                } else {
                    // A continuation of a multi-line plain scalar.
                    continue;
                }
            }
            // A block line holds at least one value (a key, an item).
            c.node()?;
            i = indent;
            // `- - x`: each further dash opens a nested sequence.
            let mut first = true;
            while i < line.len()
                && matches!(line[i], b'-' | b'?')
                && line.get(i + 1).is_none_or(|&b| b == b' ')
            {
                if !first {
                    block.push(i);
                    c.depth(block.len())?;
                }
                first = false;
                i += 1;
                while line.get(i) == Some(&b' ') {
                    i += 1;
                }
            }
            if !first && i < line.len() && has_mapping_indicator(&line[i..]) {
                // `- key: value`: a map inside the sequence item, at the key's column.
                block.push(i);
                c.depth(block.len())?;
            }
            opens = !first;
        }
        while i < line.len() {
            let b = line[i];
            if let Some(q) = quote {
                if b == q {
                    if q == b'\'' && line.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    quote = None;
                    token_start = false;
                } else if b == b'\\' && q == b'"' {
                    i += 1;
                }
                i += 1;
                continue;
            }
            match b {
                b'#' if token_start || line.get(i.wrapping_sub(1)) == Some(&b' ') => break,
                b'"' | b'\'' if token_start => {
                    quote = Some(b);
                    opens = false;
                }
                b'[' | b'{' if token_start || flow > 0 => {
                    flow += 1;
                    c.depth(block.len() + flow)?;
                    c.node()?;
                    token_start = true;
                    opens = false;
                }
                b']' | b'}' if flow > 0 => {
                    flow -= 1;
                    token_start = false;
                }
                b',' if flow > 0 => {
                    // Each comma starts another value (at least its key).
                    token_start = true;
                    c.node()?;
                }
                b':' if line.get(i + 1).is_none_or(|&b| matches!(b, b' ' | b'\t'))
                    || (flow > 0 && matches!(line.get(i + 1), Some(b',' | b']' | b'}'))) =>
                {
                    token_start = true;
                    opens = flow == 0;
                }
                b'|' | b'>' if token_start && flow == 0 => {
                    block_scalar = Some(indent);
                    opens = false;
                    break;
                }
                b'&' | b'!' if token_start => {
                    // An anchor or a tag: the node is what follows it.
                    while i < line.len() && line[i] != b' ' {
                        i += 1;
                    }
                    continue;
                }
                b' ' | b'\t' => {
                    if flow > 0 {
                        token_start = true;
                    }
                }
                _ => {
                    token_start = false;
                    opens = false;
                }
            }
            i += 1;
        }
    }
    Ok(())
}

/// Whether a block line holds `key:` (a colon followed by a space or the line's end,
/// outside quotes and before any comment).
fn has_mapping_indicator(line: &[u8]) -> bool {
    let mut quote = None;
    for (i, &b) in line.iter().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') if i == 0 => quote = Some(b),
            (Some(q), x) if x == q => quote = None,
            (None, b'#') if i == 0 || line[i - 1] == b' ' => return false,
            (None, b'[' | b'{') if i == 0 => return false,
            (None, b':') if line.get(i + 1).is_none_or(|&n| n == b' ') => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(depth: usize) -> ParseLimits {
        ParseLimits::default().max_depth(depth)
    }

    /// Asserts the scan accepts `text` at its real depth and refuses it one below.
    fn exact(scan: fn(&str, &ParseLimits) -> Result<(), Breach>, text: &str, real: usize) {
        assert_eq!(
            scan(text, &limits(real)),
            Ok(()),
            "refused at depth {real}:\n{text}"
        );
        if real == 1 {
            return; // a document is at least its top-level map
        }
        assert!(
            matches!(scan(text, &limits(real - 1)), Err(Breach::Depth { .. })),
            "accepted below depth {real}:\n{text}"
        );
    }

    #[test]
    fn toml_depth_counts_headers_dotted_keys_and_brackets() {
        for (text, real) in [
            ("a = 1\n", 1),
            ("[a]\nb = 1\n", 2),
            ("[a.b]\nc = [1, [2]]\n", 5),
            ("[[a.b]]\nc = 1\n", 4),
            ("x.y.z = 1\n", 3),
            ("t = { a = { b = 1 }, c.d = [] }\n", 4),
            ("s = \"[[[[\"\nu = '{{{{'\nv = \"\"\"\n[x.y.z]\n\"\"\"\n", 1),
            ("# [a.b.c]\nq = 1 # {[\n", 1),
            ("[\"a.b\"]\nk = 1\n", 2),
            ("arr = [\n  [1],\n  [2, [3]],\n]\n[t]\nk = 1\n", 4),
        ] {
            exact(toml, text, real);
        }
    }

    #[test]
    fn yaml_depth_follows_indentation_and_flow() {
        for (text, real) in [
            ("a: 1\n", 1),
            ("a:\n  b:\n    c: 1\n", 3),
            ("- - - x\n", 3),
            ("a:\n  - b: 1\n    c: [1, {d: 2}]\n", 5),
            ("a: |\n  x:\n    y:\n      z: 1\nb: 2\n", 1),
            ("a: \"[[[\n  {{{\"\nb: '[['\n", 1),
            ("a: this is\n    continued\nb: 1 # [[[\n", 1),
            ("a: &anchor\n  b: 1\nc: *anchor\n", 2),
            ("--- \na:\n  b: 1\n", 2),
        ] {
            exact(yaml, text, real);
        }
    }

    #[test]
    fn yaml_counts_values_from_below() {
        let text = "a: [1, 2, {b: 3, c: 4}]\nd:\n  - 5\n  - 6\n";
        // Real: 13 values (map, 4 keys, 2 lists, 1 inner map, 6 scalars, … ); counted:
        // 4 block lines, 2 flow collections, 3 commas.
        let counted = 9;
        assert_eq!(
            yaml(text, &ParseLimits::default().max_nodes(counted)),
            Ok(())
        );
        assert_eq!(
            yaml(text, &ParseLimits::default().max_nodes(counted - 1)),
            Err(Breach::Nodes)
        );
        let dense = format!("a: [{}]\n", vec!["0"; 1000].join(","));
        assert_eq!(
            yaml(&dense, &ParseLimits::default().max_nodes(500)),
            Err(Breach::Nodes)
        );
    }

    #[test]
    fn deep_brackets_stop_at_the_limit() {
        let deep = "[".repeat(60_000);
        assert_eq!(
            yaml(&format!("a: {deep}"), &limits(64)),
            Err(Breach::Depth { line: 1 })
        );
        assert_eq!(
            toml(&format!("a = {deep}"), &limits(64)),
            Err(Breach::Depth { line: 1 })
        );
    }
}

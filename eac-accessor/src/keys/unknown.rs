//! What is said of a key no section owns: its message, cut short when huge, and the
//! nearest known name ("did you mean").

use std::fmt::Write as _;

/// A key that no section owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unknown {
    /// The dotted key.
    pub(crate) key: String,
    /// The section it is in, if any (`None`: no section owns the table it is in).
    pub(crate) section: Option<&'static str>,
    /// The nearest known name at that level.
    pub(crate) nearest: Option<String>,
}

/// A key longer than this is shown cut short, with its length.
const SHOWN_KEY_MAX_CHARS: usize = 80;

impl Unknown {
    /// The key to show: whole, or its first characters and `…` when it is too long
    /// to print (a typo is short; a huge key is a broken or hostile document).
    pub(crate) fn shown_key(&self) -> String {
        match self.key.char_indices().nth(SHOWN_KEY_MAX_CHARS) {
            Some((end, _)) => format!("{}…", &self.key[..end]),
            None => self.key.clone(),
        }
    }

    /// What to say about it, suggestion included.
    pub(crate) fn message(&self) -> String {
        let mut message = match self.section {
            Some(section) => format!("unknown key: section `{section}` has no field of that name"),
            None => "unknown section: no registered section is at this key".to_owned(),
        };
        if self.key.chars().nth(SHOWN_KEY_MAX_CHARS).is_some() {
            let _ = write!(
                message,
                " (the key has {} characters; shown cut short)",
                self.key.chars().count()
            );
        }
        if let Some(nearest) = &self.nearest {
            let _ = write!(message, " — did you mean `{nearest}`?");
        }
        message
    }
}

/// Keys longer than this get no suggestion: no field name is that long, and the search
/// must cost little for a key of any size (a 2 MB key in a file or a remote document).
const SUGGEST_MAX_CHARS: usize = 64;

/// The name among `names` closest to `key`, if one is close enough to be a typo.
pub(crate) fn nearest<'a>(key: &str, names: impl Iterator<Item = &'a str>) -> Option<String> {
    if key.chars().nth(SUGGEST_MAX_CHARS).is_some() {
        return None;
    }
    let key: Vec<char> = key.to_lowercase().chars().collect();
    names
        .filter(|name| name.chars().nth(SUGGEST_MAX_CHARS).is_none())
        .filter_map(|name| {
            let lower: Vec<char> = name.to_lowercase().chars().collect();
            let max = (key.len().min(lower.len()) / 3).max(1);
            distance_within(&key, &lower, max).map(|d| (d, name))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name.to_owned())
}

/// The edit distance between `a` and `b`, counting an adjacent transposition as one
/// edit, when it is at most `max`; `None` when it is more.
///
/// Lengths further apart than `max` are refused before any work (the distance is at least
/// their difference), and only the three rows the transposition step reads are kept.
pub(super) fn distance_within(a: &[char], b: &[char], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    // Rows i-2, i-1 and i of the full table.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    let d = previous[b.len()];
    (d <= max).then_some(d)
}

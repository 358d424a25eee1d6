//! Names as they appear in the document: serde's `rename_all` rules and the default
//! section path.

/// One of serde's `rename_all` rules, applied to a field name the way serde does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RenameRule {
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

impl RenameRule {
    /// The rule serde spells `name`; `None` for a name serde would reject itself.
    pub(crate) fn from_name(name: &str) -> Option<RenameRule> {
        Some(match name {
            "lowercase" => RenameRule::Lower,
            "UPPERCASE" => RenameRule::Upper,
            "PascalCase" => RenameRule::Pascal,
            "camelCase" => RenameRule::Camel,
            "snake_case" => RenameRule::Snake,
            "SCREAMING_SNAKE_CASE" => RenameRule::ScreamingSnake,
            "kebab-case" => RenameRule::Kebab,
            "SCREAMING-KEBAB-CASE" => RenameRule::ScreamingKebab,
            _ => return None,
        })
    }

    /// The key serde reads for a field declared as `field` (snake_case by convention).
    pub(crate) fn apply_to_field(self, field: &str) -> String {
        match self {
            RenameRule::Lower | RenameRule::Snake => field.to_owned(),
            RenameRule::Upper | RenameRule::ScreamingSnake => field.to_ascii_uppercase(),
            RenameRule::Pascal => pascal(field),
            RenameRule::Camel => {
                let pascal = pascal(field);
                let mut chars = pascal.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_lowercase().to_string() + chars.as_str()
                })
            }
            RenameRule::Kebab => field.replace('_', "-"),
            RenameRule::ScreamingKebab => field.to_ascii_uppercase().replace('_', "-"),
        }
    }
}

fn pascal(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut capitalize = true;
    for c in field.chars() {
        if c == '_' {
            capitalize = true;
        } else if capitalize {
            out.push(c.to_ascii_uppercase());
            capitalize = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `HttpConfig` → `http_config`, `HTTPServer` → `http_server`: a type name as a key.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            // A new word starts after a lower-case letter or digit, or at the last capital
            // of an acronym (`HTTPServer`: the `S`).
            if prev.is_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_uppercase() && next_is_lower)
            {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_of_type_names() {
        assert_eq!(snake_case("HttpConfig"), "http_config");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Limits"), "limits");
        assert_eq!(snake_case("Http2Config"), "http2_config");
        assert_eq!(snake_case("TLS"), "tls");
    }

    #[test]
    fn rename_all_rules_follow_serde() {
        let field = "max_body_bytes";
        let cases = [
            ("lowercase", "max_body_bytes"),
            ("UPPERCASE", "MAX_BODY_BYTES"),
            ("PascalCase", "MaxBodyBytes"),
            ("camelCase", "maxBodyBytes"),
            ("snake_case", "max_body_bytes"),
            ("SCREAMING_SNAKE_CASE", "MAX_BODY_BYTES"),
            ("kebab-case", "max-body-bytes"),
            ("SCREAMING-KEBAB-CASE", "MAX-BODY-BYTES"),
        ];
        for (rule, expected) in cases {
            let rule = RenameRule::from_name(rule).expect("a serde rule");
            assert_eq!(rule.apply_to_field(field), expected);
        }
        assert_eq!(RenameRule::from_name("Title Case"), None);
    }
}

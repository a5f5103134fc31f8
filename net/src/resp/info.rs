//! The INFO reply text: sections chosen as Redis 7 chooses them from INFO's
//! arguments, rendered in Redis's format so that tools which parse INFO
//! (redis-cli, client libraries, exporters) read ringkv's figures.
//!
//! ```text
//! # Server\r\n
//! redis_version:7.2.0\r\n
//! ...\r\n
//! \r\n                       <- a blank line between sections
//! # Keyspace\r\n
//! db0:keys=10,expires=0,avg_ttl=0\r\n
//! ```
//!
//! The figures themselves come from the server; this module only selects
//! and formats. Field names and values must not contain CR or LF (they are
//! replaced by spaces).

use super::args::ArgSlice;

/// One INFO section: a name (`Server`, as shown in its header), whether
/// plain `INFO` includes it, and its `field:value` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoSection {
    /// Name as shown in the header (`Server`); matched case-insensitively.
    pub name: &'static str,
    /// Whether `INFO` without arguments (and `INFO default`) includes it.
    pub default: bool,
    /// Fields in order.
    pub fields: Vec<(&'static str, String)>,
}

/// Whether `name` was asked for by INFO's arguments (`sections`, the
/// arguments after INFO): none or `default` selects the default sections,
/// `all` and `everything` select every section, otherwise the named ones.
#[must_use]
pub fn is_selected(sections: ArgSlice<'_>, name: &str, default: bool) -> bool {
    if sections.is_empty() {
        return default;
    }
    sections.iter().any(|s| {
        s.eq_ignore_ascii_case(b"all")
            || s.eq_ignore_ascii_case(b"everything")
            || (default && s.eq_ignore_ascii_case(b"default"))
            || s.eq_ignore_ascii_case(name.as_bytes())
    })
}

/// Renders the sections INFO's arguments select, in the order given.
#[must_use]
pub fn render(sections: ArgSlice<'_>, available: &[InfoSection]) -> Vec<u8> {
    let mut out = Vec::new();
    for section in available
        .iter()
        .filter(|s| is_selected(sections, s.name, s.default))
    {
        if !out.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"# ");
        out.extend_from_slice(section.name.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (field, value) in &section.fields {
            push_clean(&mut out, field.as_bytes());
            out.push(b':');
            push_clean(&mut out, value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fn push_clean(out: &mut Vec<u8>, text: &[u8]) {
    out.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::resp::Args;

    fn sections() -> Vec<InfoSection> {
        vec![
            InfoSection {
                name: "Server",
                default: true,
                fields: vec![("redis_version", "7.2.0".into()), ("bad", "a\r\nb".into())],
            },
            InfoSection {
                name: "Keyspace",
                default: true,
                fields: vec![("db0", "keys=1,expires=0,avg_ttl=0".into())],
            },
            InfoSection {
                name: "Commandstats",
                default: false,
                fields: vec![],
            },
        ]
    }

    fn args(items: &[&'static str]) -> Args<'static> {
        Args::from_parts(items.iter().map(|s| Cow::Borrowed(s.as_bytes())).collect())
    }

    #[test]
    fn info_without_arguments_renders_default_sections_separated_by_blank_lines() {
        let text = render(args(&[]).as_slice(), &sections());
        assert_eq!(
            text,
            b"# Server\r\nredis_version:7.2.0\r\nbad:a  b\r\n\r\n# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n"
        );
    }

    #[test]
    fn info_selects_named_sections_case_insensitively_and_all() {
        let text = render(args(&["KEYSPACE"]).as_slice(), &sections());
        assert_eq!(text, b"# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n");
        let all = render(args(&["all"]).as_slice(), &sections());
        assert!(all.ends_with(b"# Commandstats\r\n"));
        let none = render(args(&["nosuch"]).as_slice(), &sections());
        assert!(none.is_empty());
    }
}

//! Where a dotted key (`encode.crf`, `input[1].path`) sits in a job file's text: its line and column for messages,
//! and the byte range of its whole `key = value` entry, which the lenient parser blanks out to look past an error.

use std::ops::Range;
use toml_edit::{ImDocument, Item, Table, Value};

/// A job file's text parsed with positions.
pub(crate) struct Locator {
    doc: ImDocument<String>,
}

/// One step of a dotted key: a name, and an index into an array of tables.
fn segments(key: &str) -> Vec<(&str, Option<usize>)> {
    key.split('.')
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse().ok()),
            None => (s, None),
        })
        .collect()
}

/// A table-like container on the way down a key.
enum Node<'a> {
    Table(&'a Table),
    Inline(&'a toml_edit::InlineTable),
}

impl Locator {
    /// `None` when the text is not TOML at all.
    pub(crate) fn new(text: &str) -> Option<Locator> {
        ImDocument::parse(text.to_string()).ok().map(|doc| Locator { doc })
    }

    /// The key's own span and its whole entry's span (key to end of value; a table's header to its end).
    fn find(&self, key: &str) -> Option<(Range<usize>, Range<usize>)> {
        let segs = segments(key);
        let mut node = Node::Table(self.doc.as_table());
        for (i, (name, index)) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            let (k, target): (Option<Range<usize>>, &Item) = match node {
                Node::Table(t) => {
                    let (k, item) = t.get_key_value(name)?;
                    (k.span(), item)
                }
                Node::Inline(t) => {
                    let (k, item) = t.get_key_value(name)?;
                    (k.span(), item)
                }
            };
            if let Some(ix) = index {
                if let Some(aot) = target.as_array_of_tables() {
                    let table = aot.get(*ix)?;
                    if last {
                        let span = table.span()?;
                        return Some((span.clone(), span));
                    }
                    node = Node::Table(table);
                    continue;
                }
                let v = target.as_array()?.get(*ix)?;
                let span = v.span()?;
                if last {
                    return Some((span.clone(), span));
                }
                node = Node::Inline(v.as_inline_table()?);
                continue;
            }
            if last {
                let value = match target {
                    Item::Value(v) => v.span(),
                    Item::Table(t) => t.span(),
                    Item::ArrayOfTables(a) => a.span(),
                    Item::None => None,
                };
                let key_span = k.or_else(|| value.clone())?;
                let end = value.map_or(key_span.end, |v| v.end.max(key_span.end));
                return Some((key_span.clone(), key_span.start..end));
            }
            node = match target {
                Item::Table(t) => Node::Table(t),
                Item::Value(Value::InlineTable(t)) => Node::Inline(t),
                _ => return None,
            };
        }
        None
    }

    /// The byte offset where `key` is written (its key, or its table's header).
    pub(crate) fn offset(&self, key: &str) -> Option<usize> {
        self.find(key).map(|(k, _)| k.start)
    }

    /// The byte range of `key`'s whole entry.
    pub(crate) fn entry(&self, key: &str) -> Option<Range<usize>> {
        self.find(key).map(|(_, e)| e)
    }
}

/// Blanks `range` of `text` with spaces (newlines kept, so every other position stays where it was), and a comma
/// that separated it from a neighbour inside an inline table or array.
pub(crate) fn blank(text: &mut String, range: Range<usize>) {
    let bytes = text.as_bytes();
    let mut r = range.start.min(bytes.len())..range.end.min(bytes.len());
    let after = bytes[r.end..].iter().position(|b| !b.is_ascii_whitespace() || *b == b'\n');
    match after {
        Some(n) if bytes[r.end + n] == b',' => r.end += n + 1,
        _ => {
            if let Some(n) = bytes[..r.start].iter().rposition(|b| !b.is_ascii_whitespace()) {
                if bytes[n] == b',' {
                    r.start = n;
                }
            }
        }
    }
    let blanked: String = text[r.clone()].chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
    // Same length in bytes only for ASCII; other characters become as many spaces as they had bytes.
    let blanked: String = if blanked.len() == r.len() {
        blanked
    } else {
        text.as_bytes()[r.clone()].iter().map(|b| if *b == b'\n' { '\n' } else { ' ' }).collect()
    };
    text.replace_range(r, &blanked);
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "version = 1\n[model]\npath = \"m.onnx\"\nprecision = \"f8\"\n[[input]]\npath = \"a\"\n[[input]]\npath = \"b\"\nencode = { crf = 99, preset = \"x\" }\n";

    #[test]
    fn keys_are_found_in_tables_arrays_and_inline_tables() {
        let l = Locator::new(TEXT).expect("toml");
        let at = |k: &str| l.offset(k).map(|o| &TEXT[o..o + 4]);
        assert_eq!(at("model.precision"), Some("prec"));
        assert_eq!(at("input[1].path"), Some("path"));
        assert_eq!(at("input[1].encode.crf"), Some("crf "));
        assert_eq!(at("version"), Some("vers"));
        assert_eq!(l.offset("model.nope"), None);
    }

    #[test]
    fn blanking_keeps_positions_and_syntax() {
        let l = Locator::new(TEXT).expect("toml");
        let mut t = TEXT.to_string();
        blank(&mut t, l.entry("input[1].encode.crf").expect("entry"));
        blank(&mut t, l.entry("model.precision").expect("entry"));
        assert_eq!(t.len(), TEXT.len());
        let parsed: toml::Table = toml::from_str(&t).expect("still TOML");
        assert!(parsed["model"].get("precision").is_none());
        assert_eq!(parsed["input"][1]["encode"].as_table().map(|e| e.len()), Some(1));
    }
}

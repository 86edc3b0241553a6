//! A small, strict YAML node tree built from `saphyr-parser` events.
//!
//! Every node carries its 1-based line and column in `program.md` and whether a
//! scalar was written plain (subject to typing) or quoted/block (always a string).
//! Anchors, aliases, tags, merge keys, complex keys, duplicate keys and multiple
//! documents are refused here, so nothing downstream has to think about them.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::error::ProgramError;

/// One YAML node with its position in `program.md`.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    pub line: usize,
    pub col: usize,
}

/// The shape of a node.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Scalar { value: String, plain: bool },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

enum Frame {
    Seq {
        line: usize,
        col: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        col: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        seen: HashMap<String, usize>,
    },
}

/// Parses one fenced YAML block. `line_offset` is the `program.md` line just before
/// the block's first content line. Returns `None` for an empty block.
pub(crate) fn parse(src: &str, line_offset: usize) -> Result<Option<Node>, ProgramError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut docs = 0usize;
    for item in Parser::new_from_str(src) {
        let (event, span) = item.map_err(|e| {
            ProgramError::new(
                line_offset + e.marker().line(),
                e.marker().col() + 1,
                format!("YAML syntax error: {}", e.info()),
            )
        })?;
        let line = line_offset + span.start.line();
        let col = span.start.col() + 1;
        let refuse =
            |what: &str, help: &str| Err(ProgramError::new(line, col, what).with_help(help));
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                docs += 1;
                if docs > 1 {
                    return refuse(
                        "a second YAML document in the same block",
                        "keep exactly one document per block (remove the `---`)",
                    );
                }
            }
            Event::Alias(_) => {
                return refuse(
                    "YAML aliases (`*name`) are not allowed",
                    "write the value out in full; the approved file must read the same to a human and to mlres",
                );
            }
            Event::Scalar(value, style, anchor, tag) => {
                check_anchor_tag(anchor, tag.is_some(), line, col)?;
                let plain = style == ScalarStyle::Plain;
                let node = Node {
                    kind: Kind::Scalar {
                        value: value.into_owned(),
                        plain,
                    },
                    line,
                    col,
                };
                complete(&mut stack, &mut root, node)?;
            }
            Event::SequenceStart(anchor, tag) => {
                check_anchor_tag(anchor, tag.is_some(), line, col)?;
                stack.push(Frame::Seq {
                    line,
                    col,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, tag) => {
                check_anchor_tag(anchor, tag.is_some(), line, col)?;
                stack.push(Frame::Map {
                    line,
                    col,
                    entries: Vec::new(),
                    key: None,
                    seen: HashMap::new(),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match stack.pop() {
                    Some(Frame::Seq { line, col, items }) => Node {
                        kind: Kind::Seq(items),
                        line,
                        col,
                    },
                    Some(Frame::Map {
                        line, col, entries, ..
                    }) => Node {
                        kind: Kind::Map(entries),
                        line,
                        col,
                    },
                    None => {
                        return Err(ProgramError::new(line, col, "YAML structure error"));
                    }
                };
                complete(&mut stack, &mut root, node)?;
            }
        }
    }
    Ok(root)
}

fn check_anchor_tag(
    anchor: usize,
    tagged: bool,
    line: usize,
    col: usize,
) -> Result<(), ProgramError> {
    if anchor > 0 {
        return Err(
            ProgramError::new(line, col, "YAML anchors (`&name`) are not allowed")
                .with_help("write every value out in full"),
        );
    }
    if tagged {
        return Err(ProgramError::new(line, col, "YAML tags (`!!str`, `!name`) are not allowed")
            .with_help("quote a value to make it a string; numbers and booleans are typed by how they are written"));
    }
    Ok(())
}

fn complete(stack: &mut [Frame], root: &mut Option<Node>, node: Node) -> Result<(), ProgramError> {
    match stack.last_mut() {
        None => {
            *root = Some(node);
            Ok(())
        }
        Some(Frame::Seq { items, .. }) => {
            items.push(node);
            Ok(())
        }
        Some(Frame::Map {
            entries, key, seen, ..
        }) => match key.take() {
            Some(k) => {
                entries.push((k, node));
                Ok(())
            }
            None => {
                let Kind::Scalar { value, plain } = &node.kind else {
                    return Err(ProgramError::new(
                        node.line,
                        node.col,
                        "mapping keys must be plain words, not lists or mappings",
                    ));
                };
                if *plain && value == "<<" {
                    return Err(ProgramError::new(
                        node.line,
                        node.col,
                        "YAML merge keys (`<<`) are not allowed",
                    )
                    .with_help("write every key out in full"));
                }
                if let Some(first) = seen.get(value) {
                    return Err(ProgramError::new(
                        node.line,
                        node.col,
                        format!("duplicate key `{value}` (first set on line {first})"),
                    )
                    .with_help("each key may appear only once; remove one of them"));
                }
                seen.insert(value.clone(), node.line);
                *key = Some(node);
                Ok(())
            }
        },
    }
}

/// Plain-scalar typing (YAML 1.2 core schema, deliberately narrowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plain {
    Null,
    Bool(bool),
    /// `-?(0|[1-9][0-9]*)`
    Int,
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?` with a fraction or exponent.
    Float,
    /// Looks like a number to some YAML reader (`+1`, `0x10`, `1_000`, `.5`, `010`,
    /// `.inf`) but not in our grammar.
    BadNumber,
    Str,
}

fn is_int(s: &str) -> bool {
    crate::units::is_plain_uint(s.strip_prefix('-').unwrap_or(s))
}

fn is_float(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int_part, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    if !crate::units::is_plain_uint(int_part) {
        return false;
    }
    if let Some(f) = frac
        && (f.is_empty() || !f.bytes().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    if let Some(e) = exp {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    frac.is_some() || exp.is_some()
}

fn looks_numeric(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let unsigned = lower.strip_prefix(['+', '-']).unwrap_or(&lower);
    if unsigned == ".inf" || unsigned == ".nan" {
        return true;
    }
    let mut chars = unsigned.chars();
    let starts = match chars.next() {
        Some(c) if c.is_ascii_digit() => true,
        Some('.') => chars.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    };
    starts
        && unsigned.matches('.').count() <= 1
        && unsigned
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "xob._:+-".contains(c))
}

/// Types a plain scalar.
pub(crate) fn classify(value: &str) -> Plain {
    match value {
        "" | "~" | "null" | "Null" | "NULL" => Plain::Null,
        "true" | "True" | "TRUE" => Plain::Bool(true),
        "false" | "False" | "FALSE" => Plain::Bool(false),
        v if is_int(v) => Plain::Int,
        v if is_float(v) => Plain::Float,
        v if looks_numeric(v) => Plain::BadNumber,
        _ => Plain::Str,
    }
}

impl Node {
    /// A short description of what the node is, for "found …" messages.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::Seq(_) => "a list".to_string(),
            Kind::Map(_) => "a mapping".to_string(),
            Kind::Scalar {
                value,
                plain: false,
            } => format!("string {value:?}"),
            Kind::Scalar { value, plain: true } => match classify(value) {
                Plain::Null => "null (an empty value)".to_string(),
                Plain::Bool(b) => format!("boolean {b}"),
                Plain::Int => format!("integer {value}"),
                Plain::Float => format!("float {value}"),
                Plain::BadNumber => {
                    format!("`{value}`, which is not a number in the accepted format")
                }
                Plain::Str => format!("string {value:?}"),
            },
        }
    }
}

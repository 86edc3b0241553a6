//! Line-based Markdown scan: ATX headings, fenced code blocks and HTML comments.
//!
//! Only as much Markdown as `program.md` needs, with the rule that anything a human
//! reader would not see (an HTML comment) must not carry policy.

use crate::error::ProgramError;

/// A fenced code block.
#[derive(Clone, Debug)]
pub(crate) struct Fence {
    /// Line of the opening fence.
    pub line: usize,
    /// First word of the info string, lowercased (`yaml`, `yml`, `` for none).
    pub lang: String,
    /// The content lines joined with `\n` (not de-indented).
    pub content: String,
}

/// A heading (level 1 or 2) and everything up to the next one.
#[derive(Clone, Debug)]
pub(crate) struct MdSection {
    pub heading: String,
    pub level: usize,
    pub line: usize,
    pub body: String,
    pub fences: Vec<Fence>,
}

/// Headings with a special meaning in `program.md` (lowercase).
pub(crate) const KNOWN_HEADINGS: &[&str] = &[
    "goal",
    "scope",
    "reference artifacts",
    "output format",
    "keep/discard criteria",
    "budget envelope",
    "objective",
    "job",
    "search space",
];

/// An ATX heading: (level, text, column of the first `#`, 1-based).
pub(crate) fn atx_heading(line: &str) -> Option<(usize, String, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let level = rest.len() - rest.trim_start_matches('#').len();
    if !(1..=6).contains(&level) {
        return None;
    }
    let after = &rest[level..];
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    let mut text = after.trim();
    // Optional closing sequence of #s preceded by a space.
    let stripped = text.trim_end_matches('#');
    if stripped.len() != text.len() && (stripped.is_empty() || stripped.ends_with([' ', '\t'])) {
        text = stripped.trim_end();
    }
    Some((level, text.to_string(), indent + 1))
}

/// An opening fence: (char, length, lang).
fn fence_open(line: &str) -> Option<(char, usize, String)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let ch = rest.chars().next()?;
    if ch != '`' && ch != '~' {
        return None;
    }
    let len = rest.len() - rest.trim_start_matches(ch).len();
    if len < 3 {
        return None;
    }
    let info = rest[len..].trim();
    if ch == '`' && info.contains('`') {
        return None;
    }
    let lang = info
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_start_matches('{')
        .trim_start_matches('.')
        .trim_end_matches('}')
        .to_ascii_lowercase();
    Some((ch, len, lang))
}

fn fence_close(line: &str, ch: char, len: usize) -> bool {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return false;
    }
    let rest = &line[indent..];
    let n = rest.len() - rest.trim_start_matches(ch).len();
    n >= len && rest[n..].trim().is_empty()
}

/// Is this text (a part of a line inside an HTML comment) policy that would be hidden?
fn hidden_policy(text: &str, line: usize, col: usize) -> Result<(), ProgramError> {
    let t = text.trim_start();
    if let Some((level, heading, _)) = atx_heading(t)
        && KNOWN_HEADINGS.contains(&heading.to_lowercase().as_str())
    {
        return Err(ProgramError::new(
            line,
            col,
            format!(
                "the `{} {heading}` heading is hidden in an HTML comment",
                "#".repeat(level)
            ),
        )
        .with_help("policy must be visible to the human who approves it: remove the comment or the heading"));
    }
    if let Some((_, _, lang)) = fence_open(t)
        && (lang == "yaml" || lang == "yml")
    {
        return Err(ProgramError::new(line, col, "a ```yaml block is hidden in an HTML comment")
            .with_help("policy must be visible to the human who approves it: remove the comment or the block"));
    }
    Ok(())
}

struct OpenFence {
    ch: char,
    len: usize,
    line: usize,
    lang: String,
    lines: Vec<String>,
}

/// A visible heading of any level: (level, text, line).
pub(crate) type Heading = (usize, String, usize);

/// Splits a document into sections at level-1 and level-2 headings. Text before the
/// first heading becomes a section with an empty heading (only if it is not blank).
/// Also returns every visible heading of any level.
pub(crate) fn scan(src: &str) -> Result<(Vec<MdSection>, Vec<Heading>), ProgramError> {
    let mut headings: Vec<Heading> = Vec::new();
    let mut sections = vec![MdSection {
        heading: String::new(),
        level: 0,
        line: 1,
        body: String::new(),
        fences: Vec::new(),
    }];
    let mut body_lines: Vec<&str> = Vec::new();
    let mut fence: Option<OpenFence> = None;
    let mut comment_from: Option<usize> = None;

    let flush = |sections: &mut Vec<MdSection>, body_lines: &mut Vec<&str>| {
        if let Some(last) = sections.last_mut() {
            let start = body_lines.iter().position(|l| !l.trim().is_empty());
            let end = body_lines.iter().rposition(|l| !l.trim().is_empty());
            last.body = match (start, end) {
                (Some(s), Some(e)) => body_lines[s..=e].join("\n"),
                _ => String::new(),
            };
        }
        body_lines.clear();
    };

    for (idx, raw) in src.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(mut f) = fence.take() {
            body_lines.push(line);
            if fence_close(line, f.ch, f.len) {
                if let Some(sec) = sections.last_mut() {
                    sec.fences.push(Fence {
                        line: f.line,
                        lang: f.lang,
                        content: f.lines.join("\n"),
                    });
                }
            } else {
                f.lines.push(line.to_string());
                fence = Some(f);
            }
            continue;
        }
        // Scan the line for comment boundaries; `visible_start` tells whether the
        // line begins outside a comment.
        let begins_visible = comment_from.is_none();
        let mut pos = 0usize;
        loop {
            if comment_from.is_some() {
                match line[pos..].find("-->") {
                    Some(i) => {
                        hidden_policy(&line[pos..pos + i], lineno, char_col(line, pos))?;
                        pos += i + 3;
                        comment_from = None;
                    }
                    None => {
                        hidden_policy(&line[pos..], lineno, char_col(line, pos))?;
                        break;
                    }
                }
            } else {
                match line[pos..].find("<!--") {
                    Some(i) => {
                        pos += i + 4;
                        comment_from = Some(lineno);
                    }
                    None => break,
                }
            }
        }
        if !begins_visible {
            body_lines.push(line);
            continue;
        }
        if let Some((ch, len, lang)) = fence_open(line) {
            body_lines.push(line);
            fence = Some(OpenFence {
                ch,
                len,
                line: lineno,
                lang,
                lines: Vec::new(),
            });
            continue;
        }
        let heading = atx_heading(line);
        if let Some((level, text, _)) = &heading {
            headings.push((*level, text.clone(), lineno));
        }
        if let Some((level, text, _)) = heading
            && level <= 2
        {
            flush(&mut sections, &mut body_lines);
            sections.push(MdSection {
                heading: text,
                level,
                line: lineno,
                body: String::new(),
                fences: Vec::new(),
            });
            continue;
        }
        body_lines.push(line);
    }
    if let Some(f) = fence {
        return Err(
            ProgramError::new(f.line, 1, "this code block is never closed").with_help(format!(
                "close it with a line of {}",
                f.ch.to_string().repeat(f.len)
            )),
        );
    }
    if let Some(l) = comment_from {
        return Err(
            ProgramError::new(l, 1, "this HTML comment (`<!--`) is never closed")
                .with_help("close it with `-->`"),
        );
    }
    flush(&mut sections, &mut body_lines);
    if sections[0].body.is_empty() && sections[0].fences.is_empty() {
        sections.remove(0);
    }
    Ok((sections, headings))
}

fn char_col(line: &str, byte_pos: usize) -> usize {
    line.get(..byte_pos).map_or(0, |p| p.chars().count()) + 1
}

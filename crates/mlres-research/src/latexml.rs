//! A small, tolerant markup reader: a tokenizer for HTML and XML (tags, attributes, text with
//! entities decoded, comments and CDATA, `script`/`style` skipped) and, on top of it, the
//! LaTeXML page reader of `research/api-contracts.md` §6.3 (arXiv HTML and ar5iv): the
//! document title, the abstract and the `h2`/`h3` `ltx_title` sections as markdown. It never
//! fails: malformed input gives fewer (or no) sections, never an error or a panic.

/// One piece of markup.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// An opening (or self-closing) tag; names are lower-cased, attributes decoded.
    Open {
        name: String,
        attrs: Vec<(String, String)>,
        self_closing: bool,
    },
    /// A closing tag, lower-cased.
    Close(String),
    /// Text, entities decoded.
    Text(String),
}

impl Token {
    /// An attribute of an opening tag.
    pub fn attr(&self, key: &str) -> Option<&str> {
        match self {
            Token::Open { attrs, .. } => attrs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }

    /// Whether an opening tag's `class` list holds `class`.
    pub fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_ascii_whitespace().any(|x| x == class))
    }
}

/// Decodes the named entities HTML and XML share, `&nbsp;`, and numeric references; anything
/// else is left as written.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..]
            .char_indices()
            .take(12)
            .find(|(_, c)| *c == ';')
            .map(|(j, _)| j + 1);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => {
                    let num = name.strip_prefix('#')?;
                    let n = match num.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok()?,
                        None => num.parse::<u32>().ok()?,
                    };
                    Some(char::from_u32(n).unwrap_or('\u{FFFD}'))
                }
            }?;
            Some((c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Splits markup into tokens. Unclosed constructs run to the end of the input.
pub fn tokenize(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    let mut text_start = 0;
    let flush = |out: &mut Vec<Token>, from: usize, to: usize| {
        if to > from {
            out.push(Token::Text(decode_entities(&s[from..to])));
        }
    };
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &s[i..];
        if rest.starts_with("<!--") {
            flush(&mut out, text_start, i);
            i = rest.find("-->").map(|e| i + e + 3).unwrap_or(b.len());
            text_start = i;
        } else if let Some(body) = rest.strip_prefix("<![CDATA[") {
            flush(&mut out, text_start, i);
            let end = body.find("]]>").unwrap_or(body.len());
            if end > 0 {
                out.push(Token::Text(body[..end].to_string()));
            }
            i = (i + 9 + end + 3).min(b.len());
            text_start = i;
        } else if rest.starts_with("<!") || rest.starts_with("<?") {
            flush(&mut out, text_start, i);
            i = rest.find('>').map(|e| i + e + 1).unwrap_or(b.len());
            text_start = i;
        } else if rest.starts_with("</") {
            flush(&mut out, text_start, i);
            let end = rest.find('>').unwrap_or(rest.len());
            let name = tag_name(&rest[2..end]);
            out.push(Token::Close(name));
            i = (i + end + 1).min(b.len());
            text_start = i;
        } else if rest.len() > 1 && rest.as_bytes()[1].is_ascii_alphabetic() {
            flush(&mut out, text_start, i);
            let (tok, len) = open_tag(rest);
            i += len;
            text_start = i;
            let raw = match &tok {
                Token::Open {
                    name,
                    self_closing: false,
                    ..
                } if name == "script" || name == "style" => Some(name.clone()),
                _ => None,
            };
            out.push(tok);
            if let Some(name) = raw {
                // Raw text up to the closing tag (any case), dropped.
                let mut j = i;
                i = loop {
                    match s[j..].find("</") {
                        None => break b.len(),
                        Some(e) => {
                            let at = j + e;
                            let tail = &b[at + 2..];
                            if tail.len() >= name.len()
                                && tail[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                            {
                                break at;
                            }
                            j = at + 2;
                        }
                    }
                };
                text_start = i;
            }
        } else {
            i += 1;
        }
    }
    flush(&mut out, text_start, b.len());
    out
}

fn tag_name(s: &str) -> String {
    s.trim_start()
        .split(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Parses `<name attr="v" ...>` at the start of `s`; returns the token and bytes consumed.
fn open_tag(s: &str) -> (Token, usize) {
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' && b[i] != b'/' {
        i += 1;
    }
    let name = s[1..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    let mut self_closing = false;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        match b[i] {
            b'>' => {
                i += 1;
                break;
            }
            b'/' => {
                self_closing = true;
                i += 1;
                continue;
            }
            _ => {}
        }
        self_closing = false;
        let k0 = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let key = s[k0..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let v0 = i + 1;
                let end = b[v0..]
                    .iter()
                    .position(|&c| c == q)
                    .map(|p| v0 + p)
                    .unwrap_or(b.len());
                value = decode_entities(&s[v0..end]);
                i = (end + 1).min(b.len());
            } else {
                let v0 = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = decode_entities(&s[v0..i]);
            }
        }
        if !key.is_empty() {
            attrs.push((key, value));
        } else if i == k0 {
            // Nothing consumed: step over one character so the loop always advances.
            i += s[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    (
        Token::Open {
            name,
            attrs,
            self_closing,
        },
        i.min(b.len()),
    )
}

/// Collapses every run of whitespace to one space and trims.
pub fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A LaTeXML page: title, abstract, sections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub title: Option<String>,
    pub abstract_text: Option<String>,
    pub sections: Vec<Section>,
}

/// One `h2`/`h3` section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    /// `"4"`, `"4.2"`, `"A.1"`, or empty when the heading has no number.
    pub id: String,
    /// The heading without its number (`"Experiments"`).
    pub title: String,
    /// 2 for `h2`, 3 for `h3`.
    pub level: u8,
    /// Markdown: paragraphs separated by blank lines, subsection headings as `###`, math as
    /// `$…$` from LaTeXML's `alttext`. An `h2` section holds its subsections.
    pub text: String,
}

/// Text being built: inline whitespace collapsed, paragraph breaks as blank lines.
#[derive(Default)]
struct Buf {
    s: String,
}

impl Buf {
    fn push(&mut self, t: &str) {
        for (n, word) in t.split_whitespace().enumerate() {
            let starts_ws = n > 0 || t.starts_with(char::is_whitespace);
            if starts_ws && !self.s.is_empty() && !self.s.ends_with([' ', '\n']) {
                self.s.push(' ');
            }
            self.s.push_str(word);
        }
        if t.ends_with(char::is_whitespace) && !self.s.is_empty() && !self.s.ends_with([' ', '\n'])
        {
            self.s.push(' ');
        }
    }
    fn para(&mut self) {
        while self.s.ends_with(' ') {
            self.s.pop();
        }
        if !self.s.is_empty() && !self.s.ends_with("\n\n") {
            if self.s.ends_with('\n') {
                self.s.push('\n');
            } else {
                self.s.push_str("\n\n");
            }
        }
    }
    fn finish(self) -> String {
        self.s.trim().to_string()
    }
}

/// `^([A-Z]?\d+(?:\.\d+)*)\s` on a heading, as ml-intern reads section numbers, and also
/// `A.1` (an appendix letter and a dot), which §6.3 lists as an id but the regex misses.
pub fn split_section_id(heading: &str) -> (String, String) {
    let b = heading.as_bytes();
    let mut i = 0;
    if i < b.len() && b[i].is_ascii_uppercase() {
        i += 1;
        // Appendix numbers as LaTeXML writes them: "A.1".
        if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            i += 1;
        }
    }
    let d0 = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == d0 {
        return (String::new(), heading.trim().to_string());
    }
    loop {
        if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        } else {
            break;
        }
    }
    if i < b.len() && b[i].is_ascii_whitespace() {
        (heading[..i].to_string(), heading[i..].trim().to_string())
    } else {
        (String::new(), heading.trim().to_string())
    }
}

/// Block-level elements: their start and end break paragraphs.
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "br"
            | "li"
            | "ul"
            | "ol"
            | "table"
            | "tr"
            | "figure"
            | "figcaption"
            | "blockquote"
            | "pre"
            | "section"
            | "h4"
            | "h5"
            | "h6"
            | "dl"
            | "dt"
            | "dd"
    )
}

/// Reads a LaTeXML page. Never fails; a page without `ltx_title` headings has no sections.
pub fn parse(html: &str) -> Document {
    let toks = tokenize(html);
    let mut doc = Document::default();
    // Where text goes.
    enum Mode {
        Body,
        Title(Buf),
        Heading(u8, Buf),
    }
    let mut mode = Mode::Body;
    let mut abstract_depth: Option<usize> = None;
    let mut div_depth = 0usize;
    let mut abs = Buf::default();
    let mut skip_abs_heading = false;
    let mut skip: Vec<String> = Vec::new();
    let mut cur_h2: Option<(usize, Buf)> = None;
    let mut cur_h3: Option<(usize, Buf)> = None;
    let mut math_depth = 0usize;

    fn close(doc: &mut Document, slot: &mut Option<(usize, Buf)>) {
        if let Some((i, b)) = slot.take() {
            doc.sections[i].text = b.finish();
        }
    }

    for t in &toks {
        // Inside an element whose text is dropped (navigation, math already rendered).
        if let Some(name) = skip.last().cloned() {
            match t {
                Token::Open {
                    name: n,
                    self_closing: false,
                    ..
                } if *n == name => skip.push(name),
                Token::Close(n) if *n == name => {
                    skip.pop();
                }
                _ => {}
            }
            continue;
        }
        if math_depth > 0 {
            match t {
                Token::Open {
                    name,
                    self_closing: false,
                    ..
                } if name == "math" => math_depth += 1,
                Token::Close(n) if n == "math" => math_depth -= 1,
                _ => {}
            }
            continue;
        }
        match &mut mode {
            Mode::Title(buf) => {
                match t {
                    Token::Text(x) => buf.push(x),
                    Token::Close(n) if n == "h1" => {
                        let b = std::mem::take(buf).finish();
                        let b = b.strip_prefix("Title:").unwrap_or(&b).trim().to_string();
                        if doc.title.is_none() && !b.is_empty() {
                            doc.title = Some(b);
                        }
                        mode = Mode::Body;
                    }
                    _ => {}
                }
                continue;
            }
            Mode::Heading(level, buf) => {
                match t {
                    // Heading tokens are joined with " " as BeautifulSoup's get_text(" ").
                    Token::Text(x) => buf.push(&format!(" {x} ")),
                    Token::Close(n) if n == "h2" || n == "h3" => {
                        let heading = std::mem::take(buf).finish();
                        let level = *level;
                        let (id, title) = split_section_id(&heading);
                        let idx = doc.sections.len();
                        doc.sections.push(Section {
                            id,
                            title: title.clone(),
                            level,
                            text: String::new(),
                        });
                        if level == 2 {
                            close(&mut doc, &mut cur_h3);
                            close(&mut doc, &mut cur_h2);
                            cur_h2 = Some((idx, Buf::default()));
                        } else {
                            close(&mut doc, &mut cur_h3);
                            if let Some((_, b)) = &mut cur_h2 {
                                b.para();
                                b.push(&format!("### {heading}"));
                                b.para();
                            }
                            cur_h3 = Some((idx, Buf::default()));
                        }
                        mode = Mode::Body;
                    }
                    _ => {}
                }
                continue;
            }
            Mode::Body => {}
        }
        match t {
            Token::Open {
                name, self_closing, ..
            } => {
                let name = name.as_str();
                if matches!(
                    name,
                    "nav" | "header" | "footer" | "annotation" | "annotation-xml"
                ) && !self_closing
                {
                    skip.push(name.to_string());
                    continue;
                }
                if name == "math" {
                    let alt = t.attr("alttext").unwrap_or("");
                    let alt = collapse_ws(alt);
                    let piece = if alt.is_empty() {
                        String::new()
                    } else {
                        format!(" ${alt}$ ")
                    };
                    for b in [&mut cur_h2, &mut cur_h3].into_iter().flatten() {
                        b.1.push(&piece);
                    }
                    if abstract_depth.is_some() {
                        abs.push(&piece);
                    }
                    if !self_closing {
                        math_depth = 1;
                    }
                    continue;
                }
                if name == "div" && !self_closing {
                    div_depth += 1;
                    if abstract_depth.is_none() && t.has_class("ltx_abstract") {
                        abstract_depth = Some(div_depth);
                    }
                }
                if name == "h1" && t.has_class("ltx_title") && !self_closing {
                    mode = Mode::Title(Buf::default());
                    continue;
                }
                if (name == "h2" || name == "h3") && t.has_class("ltx_title") && !self_closing {
                    if abstract_depth.is_some() {
                        // A heading inside the abstract block ends it (malformed page).
                        abstract_depth = None;
                    }
                    mode = Mode::Heading(if name == "h2" { 2 } else { 3 }, Buf::default());
                    continue;
                }
                if name == "h6" && abstract_depth.is_some() {
                    skip_abs_heading = true;
                }
                if is_block(name) {
                    if abstract_depth.is_some() {
                        abs.para();
                    }
                    for b in [&mut cur_h2, &mut cur_h3].into_iter().flatten() {
                        b.1.para();
                    }
                }
                if name == "li" {
                    for b in [&mut cur_h2, &mut cur_h3].into_iter().flatten() {
                        b.1.push("- ");
                    }
                }
            }
            Token::Close(name) => {
                let name = name.as_str();
                if name == "h6" {
                    skip_abs_heading = false;
                }
                if name == "div" {
                    if abstract_depth == Some(div_depth) {
                        abstract_depth = None;
                    }
                    div_depth = div_depth.saturating_sub(1);
                }
                if is_block(name) {
                    if abstract_depth.is_some() {
                        abs.para();
                    }
                    for b in [&mut cur_h2, &mut cur_h3].into_iter().flatten() {
                        b.1.para();
                    }
                }
            }
            Token::Text(x) => {
                if abstract_depth.is_some() {
                    if !skip_abs_heading && x.trim() != "Abstract" {
                        abs.push(x);
                    }
                    continue;
                }
                for b in [&mut cur_h2, &mut cur_h3].into_iter().flatten() {
                    b.1.push(x);
                }
            }
        }
    }
    close(&mut doc, &mut cur_h3);
    close(&mut doc, &mut cur_h2);
    let a = abs.finish();
    if !a.is_empty() {
        doc.abstract_text = Some(a);
    }
    doc
}

/// `_find_section`: exact id, then exact title (case-insensitive; with or without the
/// number), then a title substring, then an id prefix (`"4"` finds `"4.1"`).
pub fn find_section<'a>(sections: &'a [Section], query: &str) -> Option<&'a Section> {
    let q = query.trim();
    if q.is_empty() {
        return None;
    }
    let ql = q.to_lowercase();
    let full = |s: &Section| {
        if s.id.is_empty() {
            s.title.to_lowercase()
        } else {
            format!("{} {}", s.id, s.title).to_lowercase()
        }
    };
    sections
        .iter()
        .find(|s| !s.id.is_empty() && s.id == q)
        .or_else(|| {
            sections
                .iter()
                .find(|s| s.title.to_lowercase() == ql || full(s) == ql)
        })
        .or_else(|| {
            sections
                .iter()
                .find(|s| s.title.to_lowercase().contains(&ql))
        })
        .or_else(|| {
            let p = format!("{q}.");
            sections.iter().find(|s| s.id.starts_with(&p))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §6.3's minimal fake page.
    const MINIMAL: &str = r#"<html><body><article class="ltx_document">
<h1 class="ltx_title ltx_title_document">Direct Preference Optimization</h1>
<div class="ltx_abstract"><h6 class="ltx_title ltx_title_abstract">Abstract</h6><p class="ltx_p">We propose DPO ...</p></div>
<section class="ltx_section" id="S1"><h2 class="ltx_title ltx_title_section"><span class="ltx_tag ltx_tag_section">1 </span>Introduction</h2>
<div class="ltx_para"><p class="ltx_p">Intro text.</p></div>
<section class="ltx_subsection" id="S1.SS1"><h3 class="ltx_title ltx_title_subsection"><span class="ltx_tag ltx_tag_subsection">1.1 </span>Background</h3>
<div class="ltx_para"><p class="ltx_p">Background text.</p></div></section></section>
</article></body></html>"#;

    #[test]
    fn reads_the_minimal_page() {
        let d = parse(MINIMAL);
        assert_eq!(d.title.as_deref(), Some("Direct Preference Optimization"));
        assert_eq!(d.abstract_text.as_deref(), Some("We propose DPO ..."));
        assert_eq!(d.sections.len(), 2, "{d:?}");
        let s = &d.sections[0];
        assert_eq!(
            (s.id.as_str(), s.title.as_str(), s.level),
            ("1", "Introduction", 2)
        );
        assert_eq!(
            s.text,
            "Intro text.\n\n### 1.1 Background\n\nBackground text."
        );
        let s = &d.sections[1];
        assert_eq!(
            (s.id.as_str(), s.title.as_str(), s.level),
            ("1.1", "Background", 3)
        );
        assert_eq!(s.text, "Background text.");
    }

    #[test]
    fn math_entities_and_lookup() {
        let html = r#"<h2 class="ltx_title">2 Method</h2><p>Loss &amp; <math alttext="\beta = 0.1"><mi>β</mi></math> is&nbsp;small &#x3C;3.</p>
<h2 class="ltx_title">Appendix</h2><h3 class="ltx_title">A.1 Hyperparameters</h3><p>lr 5e-7</p>"#;
        let d = parse(html);
        assert_eq!(d.sections[0].text, "Loss & $\\beta = 0.1$ is small <3.");
        assert_eq!(d.sections[1].id, "");
        assert_eq!(d.sections[2].id, "A.1");
        assert_eq!(find_section(&d.sections, "2").unwrap().title, "Method");
        assert_eq!(find_section(&d.sections, "METHOD").unwrap().id, "2");
        assert_eq!(find_section(&d.sections, "hyper").unwrap().id, "A.1");
        // A title substring comes before an id prefix.
        assert_eq!(find_section(&d.sections, "A").unwrap().title, "Appendix");
        let subs = parse(
            r#"<h3 class="ltx_title">4.1 Setup</h3><p>x</p><h3 class="ltx_title">4.2 Results</h3>"#,
        );
        assert_eq!(find_section(&subs.sections, "4").unwrap().id, "4.1");
        assert_eq!(
            find_section(&subs.sections, "4.2").unwrap().title,
            "Results"
        );
        assert_eq!(
            find_section(&d.sections, "appendix").unwrap().title,
            "Appendix"
        );
        assert!(find_section(&d.sections, "nothing like it").is_none());
    }

    #[test]
    fn ids_as_ml_intern_reads_them() {
        assert_eq!(split_section_id("4 Experiments").0, "4");
        assert_eq!(split_section_id("4.2 Results").0, "4.2");
        assert_eq!(split_section_id("A.1 More").0, "A.1");
        assert_eq!(split_section_id("References").0, "");
        assert_eq!(split_section_id("2023 was a year").0, "2023");
        assert_eq!(split_section_id("4.").0, "");
    }

    #[test]
    fn script_and_style_text_is_dropped_in_any_case() {
        let d = parse(
            "<h2 class=ltx_title>1 A</h2><p>kept</p><SCRIPT>x</p>\"</SCRIPT ><style>p</b></StYlE>after<script>",
        );
        assert_eq!(d.sections[0].text, "kept\n\nafter");
        // Many scripts cost linear time (no copy of the rest of the page per script).
        let many = "<script>1</script>".repeat(200_000);
        let t = std::time::Instant::now();
        let _ = tokenize(&many);
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn tolerates_broken_markup() {
        for s in [
            "<",
            "<h2 class=ltx_title>1 X",
            "<a b='",
            "&#xFFFFFFFF;",
            "<![CDATA[",
            "<script>x",
            "<!--",
            "<h2 class=\"ltx_title\"><math alttext='x'>",
            "é<é>&é;",
            // Found by fuzzing: an attribute with no name followed by a multi-byte char.
            "<h2 cl>ext=\"\0\0cslas=\"ltx_tit@e\"><spal tx_\u{FFFD}=\"\u{FFFD}",
            "<fee\t\t\t=\t\t'\u{FFFD}TA[\t~\u{FFFD}k\t\t\t=\t\t'\u{FFFD}o",
            "<a =\u{FFFD}>",
            "<a ='x'\u{FFFD}>",
        ] {
            let _ = parse(s);
        }
        assert_eq!(decode_entities("&#xFFFFFFFF;"), "\u{FFFD}");
        assert_eq!(
            decode_entities("a & b &unknown; &#65;"),
            "a & b &unknown; A"
        );
    }
}

//! Papers: search (Hugging Face papers and arXiv), trending, details, reading a paper's
//! sections, the citation graph, recommendations and snippet search (Semantic Scholar), and
//! the models, datasets and Spaces that cite a paper on the Hub. Wire contracts:
//! `research/api-contracts.md` §6 (and §1 for the Hub's error shape).
//!
//! Every operation is a function of a [`Fetcher`] and typed arguments that returns a
//! serialisable result in which every piece of external text is an [`Untrusted`], plus
//! `cache_age` (seconds, when the cache answered) and `stale` (the cache answered past its
//! TTL, offline or with the network down). The HF token is attached only to Hugging Face
//! requests and the Semantic Scholar key only to Semantic Scholar's (as `x-api-key`); the
//! fetcher drops either on a redirect to another host.
//!
//! | Operation | Function | Result |
//! |---|---|---|
//! | search | [`search`]`(f, &SearchQuery)` | [`PaperList`] |
//! | trending | [`trending`]`(f, limit, date)` | [`PaperList`] |
//! | details | [`details`]`(f, id)` | [`PaperDetails`] |
//! | read | [`read`]`(f, id, section)` | [`PaperText`] |
//! | citations, references | [`citations`]`(f, id, Direction, offset, limit)` | [`CitationPage`] |
//! | recommendations | [`recommendations`]`(f, id, limit)` | [`Recommendations`] |
//! | snippet search | [`snippets`]`(f, id, query, limit)` | [`Snippets`] |
//! | linked Hub repos | [`linked`]`(f, id, RepoKind, LinkedSort, limit)` | [`Linked`] |
//!
//! `id` is any spelling of an arXiv id (`2305.18290`, `arXiv:2305.18290v2`, an arxiv.org or
//! huggingface.co/papers URL); anything else is `Usage`. Errors: `NotFound` (unknown paper or
//! section), `Api { source_name, status, message }` (a refusal: a bad date, arXiv's error
//! feed, an S2 400, a 5xx that outlasted the retries), `RateLimited`, `Offline`, `Transport`,
//! `TooLarge`, `Decode`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::latexml::{self, Section, Token};
use crate::{Credential, Fetcher, Request, ResearchError, Response, Untrusted};

/// Characters kept of a title.
pub const TITLE_CAP: usize = 500;
/// Characters kept of an abstract or an AI summary.
pub const ABSTRACT_CAP: usize = 5000;
/// Characters kept of one section (as ml-intern).
pub const SECTION_CAP: usize = 8000;
/// Characters of a section's preview in the outline (as ml-intern).
pub const PREVIEW_CAP: usize = 280;
/// Characters kept of a snippet or a citation context.
pub const SNIPPET_CAP: usize = 2000;
/// Characters kept of an author list.
pub const AUTHORS_CAP: usize = 1000;

const HF_TTL: Duration = Duration::from_secs(6 * 3600);
const TRENDING_TTL: Duration = Duration::from_secs(3600);
const PAPER_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const S2_TTL: Duration = Duration::from_secs(24 * 3600);
const S2_FIELDS: &str = "title,externalIds,year,citationCount,influentialCitationCount";
const EDGE_FIELDS: &str = "contexts,intents,isInfluential";

// ---------------------------------------------------------------------------------------
// Identifiers and small helpers

/// An arXiv identifier: `2305.18290` (new style, 4.4 or 4.5 digits) or `hep-th/9901001`
/// (old style), without its version.
pub fn parse_arxiv_id(input: &str) -> Option<(String, Option<String>)> {
    let mut s = input.trim();
    for p in [
        "https://",
        "http://",
        "www.",
        "arxiv.org/abs/",
        "arxiv.org/pdf/",
        "arxiv.org/html/",
        "huggingface.co/papers/",
        "arXiv:",
        "arxiv:",
        "ARXIV:",
    ] {
        s = s.strip_prefix(p).unwrap_or(s);
    }
    let s = s.trim_end_matches('/').trim_end_matches(".pdf");
    let (base, version) = match s.rfind('v') {
        Some(i)
            if i + 1 < s.len()
                && s[i + 1..].bytes().all(|b| b.is_ascii_digit())
                && s[..i].bytes().last().is_some_and(|b| b.is_ascii_digit()) =>
        {
            (&s[..i], Some(s[i..].to_string()))
        }
        _ => (s, None),
    };
    let new_style = |b: &str| {
        let Some((y, n)) = b.split_once('.') else {
            return false;
        };
        y.len() == 4
            && (n.len() == 4 || n.len() == 5)
            && y.bytes().chain(n.bytes()).all(|c| c.is_ascii_digit())
    };
    let old_style = |b: &str| {
        let Some((arch, n)) = b.split_once('/') else {
            return false;
        };
        let arch_ok = !arch.is_empty()
            && arch.len() <= 20
            && arch
                .bytes()
                .all(|c| c.is_ascii_alphabetic() || c == b'-' || c == b'.');
        arch_ok && n.len() == 7 && n.bytes().all(|c| c.is_ascii_digit())
    };
    (new_style(base) || old_style(base)).then(|| (base.to_string(), version))
}

fn arxiv_id(input: &str) -> Result<String, ResearchError> {
    parse_arxiv_id(input).map(|(id, _)| id).ok_or_else(|| {
        ResearchError::Usage(format!(
            "not an arXiv id: {:?} (expected e.g. 2305.18290 or hep-th/9901001)",
            input.chars().take(80).collect::<String>()
        ))
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn wrap(f: &Fetcher, source: &str, raw: &str, cap: usize) -> Untrusted {
    Untrusted::new(source, raw, cap, &f.secret_values())
}

fn age(r: &Response) -> Option<u64> {
    r.cache_age.map(|d| d.as_secs())
}

/// Oldest age and any staleness of several answers.
fn merge_age(rs: &[&Response]) -> (Option<u64>, bool) {
    let a = rs.iter().filter_map(|r| age(r)).max();
    (a, rs.iter().any(|r| r.stale))
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// A repo id or similar name from the network, kept only if it is made of safe characters.
fn safe_name(s: &str) -> Option<String> {
    (!s.is_empty()
        && s.len() <= 200
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/')))
    .then(|| s.to_string())
}

/// A timestamp from the network, kept only if it looks like one.
fn safe_date(s: Option<&str>) -> Option<String> {
    let s = s?;
    (s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b'T' | b'Z' | b'.' | b'+')))
    .then(|| s.to_string())
}

/// A non-2xx answer, typed: 404 `NotFound`, 429 `RateLimited`, anything else `Api` with the
/// body's message.
fn status_error(source_name: &'static str, what: &str, r: &Response) -> ResearchError {
    let msg = error_message(r);
    match r.status {
        404 => ResearchError::NotFound(what.to_string()),
        429 => ResearchError::RateLimited {
            host: crate::fetch::host_of(&r.url).unwrap_or_default(),
            retry_after: None,
        },
        status => ResearchError::Api {
            source_name,
            status,
            message: msg,
        },
    }
}

/// The message of an error body: `{"error": …}` (string or list), `{"message": …}`,
/// `{"errors":[{"message"}]}`, or short plain text; capped, on one line.
fn error_message(r: &Response) -> String {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let m = match (&v["error"], &v["message"], &v["errors"]) {
        (Value::String(s), _, _) => s.clone(),
        (Value::Array(a), _, _) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        (_, Value::String(s), _) => s.clone(),
        (_, _, Value::Array(a)) => a
            .iter()
            .filter_map(|e| e["message"].as_str())
            .collect::<Vec<_>>()
            .join("; "),
        _ if !r.body.starts_with(b"<") => r.text(),
        _ => String::new(),
    };
    let m = latexml::collapse_ws(&m);
    let m: String = m.chars().take(300).collect();
    let shown = Untrusted::new("error", &m, 300, &[]).text;
    if shown.is_empty() {
        format!("HTTP {}", r.status)
    } else {
        shown
    }
}

// ---------------------------------------------------------------------------------------
// Shared result types

/// Where a paper record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Hf,
    Arxiv,
}

/// A paper in a list (search, trending).
#[derive(Debug, Clone, Serialize)]
pub struct PaperSummary {
    /// Without version.
    pub arxiv_id: String,
    /// `v3`, when arXiv said.
    pub version: Option<String>,
    pub title: Untrusted,
    /// The abstract.
    pub summary: Option<Untrusted>,
    /// Comma-separated author names.
    pub authors: Option<Untrusted>,
    pub published: Option<String>,
    /// HF upvotes.
    pub upvotes: Option<u64>,
    pub github_repo: Option<Untrusted>,
    pub ai_summary: Option<Untrusted>,
    /// arXiv categories (`cs.LG`).
    pub categories: Vec<String>,
    /// `https://arxiv.org/abs/{id}`.
    pub url: String,
    pub origins: Vec<Origin>,
}

/// A list of papers.
#[derive(Debug, Clone, Serialize)]
pub struct PaperList {
    pub papers: Vec<PaperSummary>,
    /// arXiv's `opensearch:totalResults`, when arXiv was asked.
    pub arxiv_total: Option<u64>,
    /// A source that failed while another answered (search with both sources).
    pub warnings: Vec<String>,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

fn authors_of(f: &Fetcher, src: &str, names: &[String]) -> Option<Untrusted> {
    (!names.is_empty()).then(|| wrap(f, src, &names.join(", "), AUTHORS_CAP))
}

/// A paper object from the HF papers API (a daily/search item's `paper`, or flat).
fn hf_summary(f: &Fetcher, item: &Value) -> Option<PaperSummary> {
    let p = item.get("paper").filter(|p| p.is_object()).unwrap_or(item);
    let (id, _) = parse_arxiv_id(str_of(p, "id")?)?;
    let src = format!("huggingface papers {id}");
    let title = str_of(p, "title").or_else(|| str_of(item, "title"))?;
    let summary = str_of(p, "summary").or_else(|| str_of(item, "summary"));
    let names: Vec<String> = p["authors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str().map(str::to_string))
        .collect();
    Some(PaperSummary {
        version: None,
        title: wrap(f, &src, &latexml::collapse_ws(title), TITLE_CAP),
        summary: summary.map(|s| wrap(f, &src, &latexml::collapse_ws(s), ABSTRACT_CAP)),
        authors: authors_of(f, &src, &names),
        published: safe_date(str_of(p, "publishedAt")),
        upvotes: p["upvotes"].as_u64(),
        github_repo: str_of(p, "githubRepo").map(|s| wrap(f, &src, s, 300)),
        ai_summary: str_of(p, "ai_summary").map(|s| wrap(f, &src, s, ABSTRACT_CAP)),
        categories: Vec::new(),
        url: format!("https://arxiv.org/abs/{id}"),
        origins: vec![Origin::Hf],
        arxiv_id: id,
    })
}

// ---------------------------------------------------------------------------------------
// Search

/// Which index to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchSource {
    /// Hugging Face papers (semantic search over papers featured on the Hub).
    Hf,
    /// arXiv's export API.
    Arxiv,
    /// Both, merged by arXiv id (HF's order first).
    #[default]
    Both,
}

impl std::str::FromStr for SearchSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hf" => Ok(SearchSource::Hf),
            "arxiv" => Ok(SearchSource::Arxiv),
            "both" => Ok(SearchSource::Both),
            _ => Err(format!("unknown source {s:?} (hf, arxiv, both)")),
        }
    }
}

/// arXiv's `sortBy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ArxivSort {
    #[default]
    Relevance,
    LastUpdatedDate,
    SubmittedDate,
}

/// `FromStr` for the enums a command line names, from their serde names.
macro_rules! from_str_via_serde {
    ($($t:ty),*) => {$(
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                serde_json::from_value(Value::String(s.to_string())).map_err(|_| {
                    format!("unknown value {s:?} for {}", stringify!($t))
                })
            }
        }
    )*};
}
from_str_via_serde!(
    ArxivSort, Direction, RepoKind, LinkedSort, ReadSource, Origin
);

impl ArxivSort {
    fn as_str(self) -> &'static str {
        match self {
            ArxivSort::Relevance => "relevance",
            ArxivSort::LastUpdatedDate => "lastUpdatedDate",
            ArxivSort::SubmittedDate => "submittedDate",
        }
    }
}

/// A search.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchQuery {
    /// Free text; for arXiv also its field syntax (`ti:`, `au:`, `AND`, …). Plain words are
    /// searched in every field (`all:`).
    pub query: String,
    pub source: SearchSource,
    /// Results wanted (per source).
    pub limit: usize,
    /// arXiv only: 0-based offset.
    pub start: usize,
    /// arXiv only.
    pub sort: ArxivSort,
}

impl Default for SearchQuery {
    fn default() -> Self {
        SearchQuery::new("")
    }
}

impl SearchQuery {
    pub fn new(query: impl Into<String>) -> SearchQuery {
        SearchQuery {
            query: query.into(),
            source: SearchSource::Both,
            limit: 10,
            start: 0,
            sort: ArxivSort::Relevance,
        }
    }
}

/// arXiv's query syntax for free text: words become `all:word` joined by `AND` unless the
/// query already uses field prefixes.
fn arxiv_query(q: &str) -> String {
    let fielded = [
        "ti:", "au:", "abs:", "co:", "jr:", "cat:", "rn:", "id:", "all:",
    ]
    .iter()
    .any(|p| q.contains(p));
    if fielded {
        return q.to_string();
    }
    q.split_whitespace()
        .map(|w| format!("all:{w}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn search_hf(
    f: &Fetcher,
    q: &str,
    limit: usize,
) -> Result<(Vec<PaperSummary>, Response), ResearchError> {
    let url = format!(
        "{}/api/papers/search?q={}&limit={limit}",
        f.endpoints().hf,
        enc(q)
    );
    let r = f.fetch(&Request::get(url).with(Credential::Hf).ttl(HF_TTL))?;
    if !r.ok() {
        return Err(status_error("huggingface", "papers search", &r));
    }
    let v = r.json()?;
    let papers = v
        .as_array()
        .ok_or_else(|| ResearchError::Decode {
            url: r.url.clone(),
            message: "expected a list of papers".into(),
        })?
        .iter()
        .filter_map(|i| hf_summary(f, i))
        .take(limit)
        .collect();
    Ok((papers, r))
}

fn search_arxiv(
    f: &Fetcher,
    q: &SearchQuery,
    limit: usize,
) -> Result<(Vec<PaperSummary>, Option<u64>, Response), ResearchError> {
    let url = format!(
        "{}/api/query?search_query={}&start={}&max_results={limit}&sortBy={}&sortOrder=descending",
        f.endpoints().arxiv_export,
        enc(&arxiv_query(q.query.trim())),
        q.start,
        q.sort.as_str()
    );
    let r = f.fetch(&Request::get(url).accept("application/atom+xml").ttl(HF_TTL))?;
    let text = r.text();
    let feed = parse_atom(&text);
    if let Some(e) = &feed.error {
        return Err(ResearchError::Api {
            source_name: "arxiv",
            status: r.status,
            message: Untrusted::new("arxiv", e, 300, &[]).text,
        });
    }
    if !r.ok() {
        return Err(status_error("arxiv", "arXiv query", &r));
    }
    if !text.contains("<feed") {
        return Err(ResearchError::Decode {
            url: r.url.clone(),
            message: "not an Atom feed".into(),
        });
    }
    let papers = feed
        .entries
        .iter()
        .take(limit)
        .map(|e| {
            let src = format!("arxiv {}", e.id);
            PaperSummary {
                arxiv_id: e.id.clone(),
                version: e.version.clone(),
                title: wrap(f, &src, &e.title, TITLE_CAP),
                summary: (!e.summary.is_empty()).then(|| wrap(f, &src, &e.summary, ABSTRACT_CAP)),
                authors: authors_of(f, &src, &e.authors),
                published: safe_date(e.published.as_deref()),
                upvotes: None,
                github_repo: None,
                ai_summary: None,
                categories: e.categories.clone(),
                url: format!("https://arxiv.org/abs/{}", e.id),
                origins: vec![Origin::Arxiv],
            }
        })
        .collect();
    Ok((papers, feed.total, r))
}

/// Searches HF papers, arXiv or both. With both, one source failing while the other answers
/// gives the other's results and the failure in `warnings`.
pub fn search(f: &Fetcher, q: &SearchQuery) -> Result<PaperList, ResearchError> {
    if q.query.trim().is_empty() {
        return Err(ResearchError::Usage("an empty search".into()));
    }
    let limit = q.limit.clamp(1, 100);
    let hf = matches!(q.source, SearchSource::Hf | SearchSource::Both)
        .then(|| search_hf(f, q.query.trim(), limit));
    let ax = matches!(q.source, SearchSource::Arxiv | SearchSource::Both)
        .then(|| search_arxiv(f, q, limit));
    let mut warnings = Vec::new();
    let mut responses = Vec::new();
    let mut papers: Vec<PaperSummary> = Vec::new();
    let mut arxiv_total = None;
    let mut first_err = None;
    match hf {
        Some(Ok((p, r))) => {
            papers = p;
            responses.push(r);
        }
        Some(Err(e)) => {
            warnings.push(format!("Hugging Face papers: {e}"));
            first_err = Some(e);
        }
        None => {}
    }
    match ax {
        Some(Ok((p, total, r))) => {
            arxiv_total = total;
            responses.push(r);
            for s in p {
                match papers.iter_mut().find(|x| x.arxiv_id == s.arxiv_id) {
                    Some(x) => {
                        x.version = s.version;
                        x.categories = s.categories;
                        x.origins.push(Origin::Arxiv);
                        if x.authors.is_none() {
                            x.authors = s.authors;
                        }
                        if x.summary.is_none() {
                            x.summary = s.summary;
                        }
                    }
                    None => papers.push(s),
                }
            }
        }
        Some(Err(e)) => {
            warnings.push(format!("arXiv: {e}"));
            first_err.get_or_insert(e);
        }
        None => {}
    }
    if responses.is_empty()
        && let Some(e) = first_err
    {
        return Err(e);
    }
    let (cache_age, stale) = merge_age(&responses.iter().collect::<Vec<_>>());
    Ok(PaperList {
        papers,
        arxiv_total,
        warnings,
        cache_age,
        stale,
    })
}

/// One Atom entry of arXiv's export API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AtomEntry {
    pub id: String,
    pub version: Option<String>,
    pub title: String,
    pub summary: String,
    pub authors: Vec<String>,
    pub published: Option<String>,
    pub updated: Option<String>,
    pub comment: Option<String>,
    pub primary_category: Option<String>,
    pub categories: Vec<String>,
    pub pdf_url: Option<String>,
}

/// An arXiv Atom feed: entries (whitespace collapsed), `opensearch:totalResults`, or the
/// error entry (`<id>…/api/errors#…</id>`) arXiv answers a bad query with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AtomFeed {
    pub total: Option<u64>,
    pub entries: Vec<AtomEntry>,
    pub error: Option<String>,
}

/// Reads an arXiv Atom feed. Never fails: what cannot be read is left out (an entry without
/// a recognisable arXiv id is skipped).
pub fn parse_atom(xml: &str) -> AtomFeed {
    let toks = latexml::tokenize(xml);
    let mut feed = AtomFeed::default();
    let mut entry: Option<(AtomEntry, String)> = None; // the entry and its raw <id>
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut author_name = false;
    for t in &toks {
        match t {
            Token::Open {
                name, self_closing, ..
            } => {
                let name = name.as_str();
                if name == "entry" && !self_closing {
                    entry = Some((AtomEntry::default(), String::new()));
                }
                if let Some((e, _)) = &mut entry {
                    match name {
                        "link" if t.attr("title") == Some("pdf") => {
                            e.pdf_url = t
                                .attr("href")
                                .filter(|h| h.starts_with("http") && h.len() < 300)
                                .map(str::to_string);
                        }
                        "arxiv:primary_category" => {
                            e.primary_category = t.attr("term").and_then(category);
                        }
                        "category" => {
                            if let Some(c) = t.attr("term").and_then(category)
                                && !e.categories.contains(&c)
                            {
                                e.categories.push(c);
                            }
                        }
                        _ => {}
                    }
                }
                if name == "name" && path.last().is_some_and(|p| p == "author") {
                    author_name = true;
                }
                if !self_closing {
                    // Bounded, so a flood of unclosed tags cannot make closing quadratic.
                    if path.len() < 256 {
                        path.push(name.to_string());
                    }
                    text.clear();
                }
            }
            Token::Text(x) => text.push_str(x),
            Token::Close(name) => {
                let name = name.as_str();
                let value = latexml::collapse_ws(&text);
                if let Some((e, raw_id)) = &mut entry {
                    match name {
                        "id" => *raw_id = value.clone(),
                        "title" => e.title = value.clone(),
                        "summary" => e.summary = value.clone(),
                        "published" => e.published = Some(value.clone()),
                        "updated" => e.updated = Some(value.clone()),
                        "arxiv:comment" => e.comment = Some(value.clone()),
                        "name" if author_name => {
                            if !value.is_empty() {
                                e.authors.push(value.clone());
                            }
                            author_name = false;
                        }
                        _ => {}
                    }
                } else if name == "opensearch:totalresults" {
                    feed.total = value.parse().ok();
                }
                if name == "entry"
                    && let Some((mut e, raw_id)) = entry.take()
                {
                    if raw_id.contains("/api/errors") {
                        let msg = if e.summary.is_empty() {
                            raw_id
                                .rsplit('#')
                                .next()
                                .unwrap_or("error")
                                .replace('_', " ")
                        } else {
                            e.summary.clone()
                        };
                        feed.error = Some(msg);
                    } else {
                        let tail = raw_id.split("/abs/").nth(1).unwrap_or(&raw_id);
                        if let Some((id, version)) = parse_arxiv_id(tail) {
                            e.id = id;
                            e.version = version;
                            feed.entries.push(e);
                        }
                    }
                }
                // Pop to the matching open element (tolerating unclosed children).
                if let Some(pos) = path.iter().rposition(|p| p == name) {
                    path.truncate(pos);
                }
                text.clear();
            }
        }
    }
    feed
}

fn category(s: &str) -> Option<String> {
    (s.len() <= 30
        && !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')))
    .then(|| s.to_string())
}

// ---------------------------------------------------------------------------------------
// Trending and details

/// Hugging Face's daily papers (`/api/daily_papers`): `limit` items, of `date`
/// (`YYYY-MM-DD`) when given. A date the Hub refuses is `Api { status: 400 }`.
pub fn trending(f: &Fetcher, limit: usize, date: Option<&str>) -> Result<PaperList, ResearchError> {
    let mut url = format!(
        "{}/api/daily_papers?limit={}",
        f.endpoints().hf,
        limit.clamp(1, 100)
    );
    if let Some(d) = date {
        url.push_str(&format!("&date={}", enc(d.trim())));
    }
    let r = f.fetch(&Request::get(url).with(Credential::Hf).ttl(TRENDING_TTL))?;
    if !r.ok() {
        return Err(status_error("huggingface", "daily papers", &r));
    }
    let v = r.json()?;
    let papers = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| hf_summary(f, i))
        .take(limit.max(1))
        .collect();
    Ok(PaperList {
        papers,
        arxiv_total: None,
        warnings: Vec::new(),
        cache_age: age(&r),
        stale: r.stale,
    })
}

/// One paper's page on Hugging Face.
#[derive(Debug, Clone, Serialize)]
pub struct PaperDetails {
    pub paper: PaperSummary,
    pub ai_keywords: Vec<Untrusted>,
    pub github_stars: Option<u64>,
    pub project_page: Option<Untrusted>,
    pub num_comments: Option<u64>,
    /// `numTotalModels`, else the length of `linkedModels`, when the API sent either.
    pub linked_models: Option<u64>,
    pub linked_datasets: Option<u64>,
    pub linked_spaces: Option<u64>,
    pub pdf_url: String,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

fn fetch_details(f: &Fetcher, id: &str) -> Result<(Value, Response), ResearchError> {
    let url = format!("{}/api/papers/{id}", f.endpoints().hf);
    let r = f.fetch(&Request::get(url).with(Credential::Hf).ttl(PAPER_TTL))?;
    if !r.ok() {
        return Err(status_error(
            "huggingface",
            &format!("paper {id} on Hugging Face"),
            &r,
        ));
    }
    let v = r.json()?;
    Ok((v, r))
}

/// `/api/papers/{id}`. An unknown paper is `NotFound`.
pub fn details(f: &Fetcher, id: &str) -> Result<PaperDetails, ResearchError> {
    let id = arxiv_id(id)?;
    let (v, r) = fetch_details(f, &id)?;
    let paper = hf_summary(f, &v).ok_or_else(|| ResearchError::Decode {
        url: r.url.clone(),
        message: "no paper id or title".into(),
    })?;
    let src = format!("huggingface papers {id}");
    let count = |total: &str, list: &str| {
        v[total]
            .as_u64()
            .or_else(|| v[list].as_array().map(|a| a.len() as u64))
    };
    Ok(PaperDetails {
        ai_keywords: v["ai_keywords"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .take(30)
            .map(|k| wrap(f, &src, k, 100))
            .collect(),
        github_stars: v["githubStars"].as_u64(),
        project_page: str_of(&v, "projectPage").map(|s| wrap(f, &src, s, 300)),
        num_comments: v["numComments"].as_u64(),
        linked_models: count("numTotalModels", "linkedModels"),
        linked_datasets: count("numTotalDatasets", "linkedDatasets"),
        linked_spaces: count("numTotalSpaces", "linkedSpaces"),
        pdf_url: format!("https://arxiv.org/pdf/{id}"),
        paper,
        cache_age: age(&r),
        stale: r.stale,
    })
}

// ---------------------------------------------------------------------------------------
// Reading

/// Which rendering `read` used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadSource {
    ArxivHtml,
    Ar5iv,
    /// Neither HTML rendering had sections: only the abstract (with the PDF link).
    Abstract,
}

/// One entry of the outline.
#[derive(Debug, Clone, Serialize)]
pub struct OutlineEntry {
    /// `"4"`, `"4.2"`, `"A.1"` or empty.
    pub id: String,
    pub level: u8,
    pub title: Untrusted,
    /// The first 280 characters.
    pub preview: Untrusted,
}

/// One section's text as markdown (at most 8000 characters).
#[derive(Debug, Clone, Serialize)]
pub struct SectionText {
    pub id: String,
    pub level: u8,
    pub title: Untrusted,
    pub text: Untrusted,
}

/// A paper, read.
#[derive(Debug, Clone, Serialize)]
pub struct PaperText {
    pub arxiv_id: String,
    pub source: ReadSource,
    pub title: Option<Untrusted>,
    pub abstract_text: Option<Untrusted>,
    /// Every section (empty for the abstract fallback).
    pub outline: Vec<OutlineEntry>,
    /// The section asked for.
    pub section: Option<SectionText>,
    pub pdf_url: String,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

fn html_sections(f: &Fetcher, url: String) -> Option<(latexml::Document, Response)> {
    let r = f
        .fetch(
            &Request::get(url)
                .accept("text/html")
                .ttl(PAPER_TTL)
                .max_bytes(32 << 20),
        )
        .ok()?;
    if !r.ok() {
        return None;
    }
    let doc = latexml::parse(&r.text());
    (!doc.sections.is_empty()).then_some((doc, r))
}

/// A paper's sections as markdown, from arXiv's HTML rendering, else ar5iv's, else the
/// abstract from Hugging Face with the PDF link (`research/api-contracts.md` §6.3). Without
/// `section`: the outline (ids, titles, 280-character previews). With it: that section, found
/// by exact id, exact title (case-insensitive), title substring, then id prefix; a section
/// that is not there is `NotFound` naming the section ids there are.
pub fn read(f: &Fetcher, id: &str, section: Option<&str>) -> Result<PaperText, ResearchError> {
    let id = arxiv_id(id)?;
    let pdf_url = format!("https://arxiv.org/pdf/{id}");
    let e = f.endpoints();
    let found = html_sections(f, format!("{}/html/{id}", e.arxiv_html))
        .map(|(d, r)| (d, r, ReadSource::ArxivHtml))
        .or_else(|| {
            html_sections(f, format!("{}/html/{id}", e.ar5iv))
                .map(|(d, r)| (d, r, ReadSource::Ar5iv))
        });
    let Some((doc, r, source)) = found else {
        let (v, r) = fetch_details(f, &id)?;
        let src = format!("huggingface papers {id}");
        if section.is_some_and(|s| !s.trim().is_empty() && !s.eq_ignore_ascii_case("abstract")) {
            return Err(ResearchError::NotFound(format!(
                "section {:?} of {id}: no HTML rendering of this paper; only its abstract (read the PDF: {pdf_url})",
                section
                    .unwrap_or_default()
                    .chars()
                    .take(80)
                    .collect::<String>()
            )));
        }
        return Ok(PaperText {
            title: str_of(&v, "title").map(|t| wrap(f, &src, &latexml::collapse_ws(t), TITLE_CAP)),
            abstract_text: str_of(&v, "summary")
                .map(|t| wrap(f, &src, &latexml::collapse_ws(t), ABSTRACT_CAP)),
            arxiv_id: id,
            source: ReadSource::Abstract,
            outline: Vec::new(),
            section: None,
            pdf_url,
            cache_age: age(&r),
            stale: r.stale,
        });
    };
    let src = match source {
        ReadSource::ArxivHtml => format!("arxiv html {id}"),
        _ => format!("ar5iv {id}"),
    };
    let outline = doc
        .sections
        .iter()
        .map(|s| OutlineEntry {
            id: s.id.clone(),
            level: s.level,
            title: wrap(f, &src, &s.title, TITLE_CAP),
            preview: wrap(f, &src, &latexml::collapse_ws(&s.text), PREVIEW_CAP),
        })
        .collect();
    let section = match section.map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(q) => {
            let found = latexml::find_section(&doc.sections, q);
            if found.is_none()
                && q.eq_ignore_ascii_case("abstract")
                && let Some(a) = &doc.abstract_text
            {
                Some(SectionText {
                    id: String::new(),
                    level: 2,
                    title: wrap(f, &src, "Abstract", TITLE_CAP),
                    text: wrap(f, &src, a, SECTION_CAP),
                })
            } else {
                let s: &Section = found.ok_or_else(|| {
                    let ids: Vec<&str> = doc
                        .sections
                        .iter()
                        .map(|s| s.id.as_str())
                        .filter(|i| !i.is_empty())
                        .collect();
                    ResearchError::NotFound(format!(
                        "section {:?} of {id} (section ids: {})",
                        q.chars().take(80).collect::<String>(),
                        ids.join(", ")
                    ))
                })?;
                Some(SectionText {
                    id: s.id.clone(),
                    level: s.level,
                    title: wrap(f, &src, &s.title, TITLE_CAP),
                    text: wrap(f, &src, &s.text, SECTION_CAP),
                })
            }
        }
    };
    Ok(PaperText {
        arxiv_id: id,
        source,
        title: doc.title.as_deref().map(|t| wrap(f, &src, t, TITLE_CAP)),
        abstract_text: doc
            .abstract_text
            .as_deref()
            .map(|t| wrap(f, &src, t, ABSTRACT_CAP)),
        outline,
        section,
        pdf_url,
        cache_age: age(&r),
        stale: r.stale,
    })
}

// ---------------------------------------------------------------------------------------
// Semantic Scholar

/// A paper as Semantic Scholar describes it.
#[derive(Debug, Clone, Serialize)]
pub struct S2Paper {
    pub paper_id: Option<String>,
    pub arxiv_id: Option<String>,
    pub title: Option<Untrusted>,
    pub year: Option<u64>,
    pub citation_count: Option<u64>,
    pub influential_citation_count: Option<u64>,
    pub abstract_text: Option<Untrusted>,
}

fn s2_paper(f: &Fetcher, v: &Value) -> S2Paper {
    let arxiv = v["externalIds"]["ArXiv"]
        .as_str()
        .and_then(parse_arxiv_id)
        .map(|(i, _)| i);
    let paper_id = v["paperId"].as_str().and_then(safe_name);
    let src = format!(
        "semantic scholar {}",
        paper_id.as_deref().or(arxiv.as_deref()).unwrap_or("paper")
    );
    S2Paper {
        title: str_of(v, "title").map(|t| wrap(f, &src, &latexml::collapse_ws(t), TITLE_CAP)),
        abstract_text: str_of(v, "abstract").map(|t| wrap(f, &src, t, ABSTRACT_CAP)),
        year: v["year"].as_u64(),
        citation_count: v["citationCount"].as_u64(),
        influential_citation_count: v["influentialCitationCount"].as_u64(),
        paper_id,
        arxiv_id: arxiv,
    }
}

fn s2_get(f: &Fetcher, url: String, what: &str) -> Result<(Value, Response), ResearchError> {
    let r = f.fetch(&Request::get(url).with(Credential::S2).ttl(S2_TTL))?;
    if !r.ok() {
        return Err(status_error("semantic scholar", what, &r));
    }
    let v = r.json()?;
    Ok((v, r))
}

/// Which way along the citation graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Papers that cite this one.
    Citations,
    /// Papers this one cites.
    References,
}

/// One edge of the citation graph.
#[derive(Debug, Clone, Serialize)]
pub struct CitationEdge {
    pub paper: S2Paper,
    /// Sentences of the citing paper around the citation.
    pub contexts: Vec<Untrusted>,
    /// `methodology`, `background`, `result`.
    pub intents: Vec<String>,
    pub is_influential: Option<bool>,
}

/// One page of citations or references.
#[derive(Debug, Clone, Serialize)]
pub struct CitationPage {
    pub arxiv_id: String,
    pub direction: Direction,
    pub offset: u64,
    /// The offset of the next page; `None` on the last.
    pub next: Option<u64>,
    pub edges: Vec<CitationEdge>,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

/// `/graph/v1/paper/ARXIV:{id}/citations` or `/references`: one page from `offset` of at
/// most `limit` (≤ 1000) edges. Unknown paper: `NotFound`; a refused request (400): `Api`;
/// a 429 that outlasts the retries: `RateLimited`.
pub fn citations(
    f: &Fetcher,
    id: &str,
    direction: Direction,
    offset: u64,
    limit: u64,
) -> Result<CitationPage, ResearchError> {
    let id = arxiv_id(id)?;
    let what = match direction {
        Direction::Citations => "citations",
        Direction::References => "references",
    };
    let url = format!(
        "{}/graph/v1/paper/ARXIV:{id}/{what}?fields={S2_FIELDS},{EDGE_FIELDS}&offset={offset}&limit={}",
        f.endpoints().s2,
        limit.clamp(1, 1000)
    );
    let (v, r) = s2_get(f, url, &format!("{what} of {id} on Semantic Scholar"))?;
    let key = match direction {
        Direction::Citations => "citingPaper",
        Direction::References => "citedPaper",
    };
    let src = format!("semantic scholar {what} of {id}");
    let edges = v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| CitationEdge {
            paper: s2_paper(f, &e[key]),
            contexts: e["contexts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .take(10)
                .map(|c| wrap(f, &src, c, SNIPPET_CAP))
                .collect(),
            intents: e["intents"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(category)
                .collect(),
            is_influential: e["isInfluential"].as_bool(),
        })
        .collect();
    Ok(CitationPage {
        arxiv_id: id,
        direction,
        offset: v["offset"].as_u64().unwrap_or(offset),
        next: v["next"].as_u64(),
        edges,
        cache_age: age(&r),
        stale: r.stale,
    })
}

/// Papers Semantic Scholar recommends for one.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendations {
    pub arxiv_id: String,
    pub papers: Vec<S2Paper>,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

/// `/recommendations/v1/papers/forpaper/ARXIV:{id}` (`from=recent`, as ml-intern).
pub fn recommendations(
    f: &Fetcher,
    id: &str,
    limit: u64,
) -> Result<Recommendations, ResearchError> {
    let id = arxiv_id(id)?;
    let url = format!(
        "{}/recommendations/v1/papers/forpaper/ARXIV:{id}?fields={S2_FIELDS},abstract&limit={}&from=recent",
        f.endpoints().s2,
        limit.clamp(1, 500)
    );
    let (v, r) = s2_get(
        f,
        url,
        &format!("recommendations for {id} on Semantic Scholar"),
    )?;
    Ok(Recommendations {
        papers: v["recommendedPapers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| s2_paper(f, p))
            .collect(),
        arxiv_id: id,
        cache_age: age(&r),
        stale: r.stale,
    })
}

/// One passage found by snippet search.
#[derive(Debug, Clone, Serialize)]
pub struct Snippet {
    pub text: Untrusted,
    pub section: Option<Untrusted>,
    /// `title`, `abstract` or `body`.
    pub kind: Option<String>,
    pub score: Option<f64>,
    pub paper_title: Option<Untrusted>,
}

/// Passages of a paper that match a query.
#[derive(Debug, Clone, Serialize)]
pub struct Snippets {
    pub arxiv_id: String,
    pub snippets: Vec<Snippet>,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

/// `/graph/v1/snippet/search` restricted to one paper (`paperIds=ARXIV:{id}`).
pub fn snippets(f: &Fetcher, id: &str, query: &str, limit: u64) -> Result<Snippets, ResearchError> {
    let id = arxiv_id(id)?;
    if query.trim().is_empty() {
        return Err(ResearchError::Usage("an empty snippet query".into()));
    }
    let url = format!(
        "{}/graph/v1/snippet/search?query={}&paperIds=ARXIV:{id}&limit={}&fields=title,externalIds,year,citationCount",
        f.endpoints().s2,
        enc(query.trim()),
        limit.clamp(1, 1000)
    );
    let (v, r) = s2_get(f, url, &format!("snippets of {id} on Semantic Scholar"))?;
    let src = format!("semantic scholar snippets of {id}");
    let snippets = v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let s = &d["snippet"];
            let text = s["text"].as_str()?;
            Some(Snippet {
                text: wrap(f, &src, text, SNIPPET_CAP),
                section: str_of(s, "section").map(|x| wrap(f, &src, x, TITLE_CAP)),
                kind: s["snippetKind"].as_str().and_then(category),
                score: d["score"].as_f64(),
                paper_title: str_of(&d["paper"], "title").map(|x| wrap(f, &src, x, TITLE_CAP)),
            })
        })
        .collect();
    Ok(Snippets {
        arxiv_id: id,
        snippets,
        cache_age: age(&r),
        stale: r.stale,
    })
}

// ---------------------------------------------------------------------------------------
// Linked Hub resources

/// A kind of Hub repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    Models,
    Datasets,
    Spaces,
}

impl RepoKind {
    fn as_str(self) -> &'static str {
        match self {
            RepoKind::Models => "models",
            RepoKind::Datasets => "datasets",
            RepoKind::Spaces => "spaces",
        }
    }
}

/// How to order linked repos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkedSort {
    #[default]
    Downloads,
    Likes,
}

/// A Hub repo that cites a paper.
#[derive(Debug, Clone, Serialize)]
pub struct LinkedRepo {
    /// `namespace/name` (only repos whose id is made of safe characters are listed).
    pub id: String,
    pub downloads: Option<u64>,
    pub likes: Option<u64>,
    pub pipeline_tag: Option<String>,
    pub library: Option<String>,
    pub url: String,
}

/// Hub repos of one kind tagged `arxiv:{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct Linked {
    pub arxiv_id: String,
    pub kind: RepoKind,
    pub repos: Vec<LinkedRepo>,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

/// `/api/{models,datasets,spaces}?filter=arxiv:{id}&sort=…&direction=-1&limit=…`. Spaces
/// have no downloads: they are ordered by likes.
pub fn linked(
    f: &Fetcher,
    id: &str,
    kind: RepoKind,
    sort: LinkedSort,
    limit: usize,
) -> Result<Linked, ResearchError> {
    let id = arxiv_id(id)?;
    let sort = match (kind, sort) {
        (RepoKind::Spaces, _) | (_, LinkedSort::Likes) => "likes",
        _ => "downloads",
    };
    let url = format!(
        "{}/api/{}?filter=arxiv:{}&sort={sort}&direction=-1&limit={}",
        f.endpoints().hf,
        kind.as_str(),
        enc(&id),
        limit.clamp(1, 100)
    );
    let r = f.fetch(&Request::get(url).with(Credential::Hf).ttl(HF_TTL))?;
    if !r.ok() {
        return Err(status_error(
            "huggingface",
            &format!("{} for {id}", kind.as_str()),
            &r,
        ));
    }
    let v = r.json()?;
    let base = "https://huggingface.co";
    let repos = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let rid = m["id"]
                .as_str()
                .or(m["modelId"].as_str())
                .and_then(safe_name)?;
            let url = match kind {
                RepoKind::Models => format!("{base}/{rid}"),
                k => format!("{base}/{}/{rid}", k.as_str()),
            };
            Some(LinkedRepo {
                downloads: m["downloads"].as_u64(),
                likes: m["likes"].as_u64(),
                pipeline_tag: m["pipeline_tag"].as_str().and_then(category),
                library: m["library_name"].as_str().and_then(category),
                url,
                id: rid,
            })
        })
        .take(limit.max(1))
        .collect();
    Ok(Linked {
        arxiv_id: id,
        kind,
        repos,
        cache_age: age(&r),
        stale: r.stale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arxiv_ids_in_every_spelling() {
        let p = |s: &str| parse_arxiv_id(s);
        assert_eq!(p("2305.18290"), Some(("2305.18290".into(), None)));
        assert_eq!(
            p("https://arxiv.org/abs/2305.18290v3"),
            Some(("2305.18290".into(), Some("v3".into())))
        );
        assert_eq!(p("arXiv:2106.09685").unwrap().0, "2106.09685");
        assert_eq!(
            p("https://huggingface.co/papers/2106.09685").unwrap().0,
            "2106.09685"
        );
        assert_eq!(
            p("https://arxiv.org/pdf/2106.09685v2.pdf")
                .unwrap()
                .1
                .as_deref(),
            Some("v2")
        );
        assert_eq!(p("hep-th/9901001v1").unwrap().0, "hep-th/9901001");
        assert_eq!(p("1234.1234").unwrap().0, "1234.1234");
        for bad in [
            "",
            "2305",
            "../etc/passwd",
            "2305.18290?x=1",
            "2305.1829a",
            "a/b",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn enums_parse_from_their_names() {
        assert_eq!("citations".parse::<Direction>(), Ok(Direction::Citations));
        assert_eq!("models".parse::<RepoKind>(), Ok(RepoKind::Models));
        assert_eq!("likes".parse::<LinkedSort>(), Ok(LinkedSort::Likes));
        assert_eq!(
            "submittedDate".parse::<ArxivSort>(),
            Ok(ArxivSort::SubmittedDate)
        );
        assert_eq!("both".parse::<SearchSource>(), Ok(SearchSource::Both));
        assert!("nope".parse::<RepoKind>().is_err());
        let q: SearchQuery = serde_json::from_str(r#"{"query":"dpo","source":"arxiv"}"#).unwrap();
        assert_eq!((q.source, q.limit), (SearchSource::Arxiv, 10));
    }

    #[test]
    fn flat_and_nested_hf_items() {
        let f = Fetcher::new(crate::Endpoints::default(), crate::Secrets::default(), None);
        let flat =
            serde_json::json!({"id": "2305.18290", "title": "DPO", "summary": "s", "upvotes": 3});
        let nested = serde_json::json!({"paper": {"id": "2305.18290", "title": "DPO"}, "summary": "item summary"});
        let a = hf_summary(&f, &flat).unwrap();
        assert_eq!((a.arxiv_id.as_str(), a.upvotes), ("2305.18290", Some(3)));
        let b = hf_summary(&f, &nested).unwrap();
        assert_eq!(b.summary.unwrap().text, "item summary");
        assert!(hf_summary(&f, &serde_json::json!({"id": "../x", "title": "t"})).is_none());
    }

    #[test]
    fn the_contract_feed_and_error_feed() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom">
  <title type="html">ArXiv Query: search_query=ti:preference&amp;id_list=</title>
  <id>http://arxiv.org/api/Xh3t</id>
  <opensearch:totalResults>1234</opensearch:totalResults>
  <entry>
    <id>http://arxiv.org/abs/2305.18290v3</id>
    <published>2023-05-29T17:57:46Z</published>
    <title>Direct Preference Optimization: Your Language
      Model is Secretly a Reward Model</title>
    <summary>  While large-scale unsupervised language models ...</summary>
    <author><name>Rafael Rafailov</name></author>
    <author><name>Archit Sharma</name><arxiv:affiliation>Stanford</arxiv:affiliation></author>
    <arxiv:comment>NeurIPS 2023</arxiv:comment>
    <link title="pdf" href="http://arxiv.org/pdf/2305.18290v3" rel="related" type="application/pdf"/>
    <arxiv:primary_category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.AI" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
</feed>"#;
        let f = parse_atom(xml);
        assert_eq!(f.total, Some(1234));
        assert_eq!(f.error, None);
        let e = &f.entries[0];
        assert_eq!(
            (e.id.as_str(), e.version.as_deref()),
            ("2305.18290", Some("v3"))
        );
        assert_eq!(
            e.title,
            "Direct Preference Optimization: Your Language Model is Secretly a Reward Model"
        );
        assert_eq!(
            e.summary,
            "While large-scale unsupervised language models ..."
        );
        assert_eq!(e.authors, ["Rafael Rafailov", "Archit Sharma"]);
        assert_eq!(e.categories, ["cs.LG", "cs.AI"]);
        assert_eq!(e.primary_category.as_deref(), Some("cs.LG"));
        assert_eq!(
            e.pdf_url.as_deref(),
            Some("http://arxiv.org/pdf/2305.18290v3")
        );
        assert_eq!(e.comment.as_deref(), Some("NeurIPS 2023"));
        let err = parse_atom(
            "<feed><entry><id>http://arxiv.org/api/errors#incorrect_id_format_for_1234.1234</id><title>Error</title><summary>incorrect id format for 1234.1234</summary></entry></feed>",
        );
        assert_eq!(
            err.error.as_deref(),
            Some("incorrect id format for 1234.1234")
        );
        assert!(err.entries.is_empty());
    }
}

//! Hugging Face documentation (`research/api-contracts.md` §8): explore a library's docs
//! (the sidebar of `{hf}/docs/{lib}` lists its pages, each page's markdown is `{url}.md`),
//! search the fetched pages locally (BM25 over title and content, so it works offline from
//! the cache), fetch one page, and find the Hub API endpoints for a name in
//! `{hf}/.well-known/openapi.json`, with a curl example that names `$HF_TOKEN` (the text,
//! never the value). The HF token is optional and travels only as [`Credential::Hf`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::fetch::host_of;
use crate::util::{Age, scan_names, short_message, visible, words, wrap_opt};
use crate::{Credential, Fetcher, Request, ResearchError, Untrusted};

/// Libraries whose docs live at `{hf}/docs/{name}` (§8's list; `gradio` is not served
/// there and is refused).
pub const LIBRARIES: &[&str] = &[
    "hub",
    "transformers",
    "diffusers",
    "datasets",
    "gradio",
    "trackio",
    "smolagents",
    "huggingface_hub",
    "huggingface.js",
    "transformers.js",
    "inference-providers",
    "inference-endpoints",
    "peft",
    "accelerate",
    "optimum",
    "tokenizers",
    "courses",
    "evaluate",
    "tasks",
    "dataset-viewer",
    "trl",
    "simulate",
    "sagemaker",
    "timm",
    "safetensors",
    "tgi",
    "setfit",
    "lerobot",
    "autotrain",
    "tei",
    "bitsandbytes",
    "sentence_transformers",
    "chat-ui",
    "leaderboards",
    "lighteval",
    "argilla",
    "distilabel",
    "microsoft-azure",
    "kernels",
    "google-cloud",
];

/// `optimum` and `courses` are several doc sites each.
pub const OPTIMUM: &[&str] = &[
    "optimum",
    "optimum-habana",
    "optimum-neuron",
    "optimum-intel",
    "optimum-executorch",
    "optimum-tpu",
];
pub const COURSES: &[&str] = &[
    "llm-course",
    "robotics-course",
    "mcp-course",
    "smol-course",
    "agents-course",
    "deep-rl-course",
    "computer-vision-course",
    "audio-course",
    "ml-games-course",
    "diffusion-course",
    "ml-for-3d-course",
    "cookbook",
];

/// Characters of one fetched page kept.
pub const MAX_PAGE_CHARS: usize = 300_000;
/// Pages fetched per explore at most.
pub const MAX_PAGES: usize = 400;
const TTL_DOCS: Duration = Duration::from_secs(24 * 3600);

/// The doc sites a library name stands for (validated; composites expanded).
pub fn expand_library(name: &str) -> Result<Vec<&'static str>, ResearchError> {
    let n = name.trim().to_ascii_lowercase();
    if n == "gradio" {
        return Err(ResearchError::Usage(
            "gradio's docs are not served under huggingface.co/docs (they are at gradio.app); not supported here"
                .into(),
        ));
    }
    if n == "optimum" {
        return Ok(OPTIMUM.to_vec());
    }
    if n == "courses" {
        return Ok(COURSES.to_vec());
    }
    LIBRARIES
        .iter()
        .chain(OPTIMUM)
        .chain(COURSES)
        .find(|l| **l == n)
        .map(|l| vec![*l])
        .ok_or_else(|| {
            ResearchError::Usage(format!(
                "unknown docs library {:?}; one of: {}",
                visible(name),
                LIBRARIES
                    .iter()
                    .filter(|l| **l != "gradio")
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// A sidebar link.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DocLink {
    /// The link text (invisible characters shown).
    pub title: String,
    /// Absolute URL on the HF host (no `.md`).
    pub url: String,
}

/// The links of the sidebar (`<nav>` whose class contains `flex-auto`) of a docs page's
/// HTML: `href`s made absolute against `page_url` (path-absolute ones on its host), only
/// those on the host of `page_url` and not anchors, de-duplicated in order. Never panics.
pub fn extract_sidebar(html: &str, page_url: &str) -> Vec<DocLink> {
    let lower = html.to_ascii_lowercase();
    let mut out: Vec<DocLink> = Vec::new();
    let mut seen = BTreeSet::new();
    let Some(host) = host_of(page_url) else {
        return out;
    };
    let scheme = page_url
        .split_once("://")
        .map(|(s, _)| s)
        .unwrap_or("https");
    let mut pos = 0;
    while let Some(rel) = lower.get(pos..).and_then(|s| s.find("<nav")) {
        let start = pos + rel;
        let Some(tag_end) = lower[start..].find('>').map(|e| start + e) else {
            break;
        };
        let tag = &html[start..tag_end];
        let class = attr(tag, "class").unwrap_or_default();
        pos = tag_end + 1;
        if !class.split_whitespace().any(|c| c.contains("flex-auto")) {
            continue;
        }
        // The matching </nav> (navs can nest).
        let mut depth = 1;
        let mut i = pos;
        let end = loop {
            let next_open = lower[i..].find("<nav").map(|x| i + x);
            let next_close = lower[i..].find("</nav").map(|x| i + x);
            match (next_open, next_close) {
                (Some(o), Some(c)) if o < c => {
                    depth += 1;
                    i = o + 4;
                }
                (_, Some(c)) => {
                    depth -= 1;
                    i = c + 5;
                    if depth == 0 {
                        break c;
                    }
                }
                (_, None) => break lower.len(),
            }
        };
        let body = &html[pos..end];
        let body_lower = &lower[pos..end];
        let mut j = 0;
        while let Some(r) = body_lower.get(j..).and_then(|s| s.find("<a")) {
            let a = j + r;
            j = a + 2;
            // `<a` followed by whitespace or `>` (not `<abbr`).
            if !body_lower[j..].starts_with(|c: char| c.is_whitespace() || c == '>') {
                continue;
            }
            let Some(te) = body_lower[a..].find('>').map(|e| a + e) else {
                break;
            };
            let tag = &body[a..te];
            let text_end = body_lower[te..]
                .find("</a")
                .map(|e| te + e)
                .unwrap_or(body.len());
            let title = visible(
                decode_entities(&strip_tags(&body[te + 1..text_end]))
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .as_str(),
            );
            j = te + 1;
            let Some(href) = attr(tag, "href") else {
                continue;
            };
            let href = decode_entities(href.trim());
            let Some(url) = absolute(&href, scheme, &host, page_url) else {
                continue;
            };
            if host_of(&url).as_deref() != Some(host.as_str()) {
                continue;
            }
            if seen.insert(url.clone()) {
                out.push(DocLink { title, url });
            }
        }
        pos = end;
    }
    out
}

fn absolute(href: &str, scheme: &str, host: &str, page: &str) -> Option<String> {
    let href = href.split('#').next()?.split('?').next()?.trim();
    if href.is_empty() {
        return None;
    }
    let lower = href.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Some(href.to_string());
    }
    if lower.contains(':') && !lower.starts_with('/') {
        return None; // mailto:, javascript:, …
    }
    if let Some(rest) = href.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    if href.starts_with('/') {
        return Some(format!("{scheme}://{host}{href}"));
    }
    let dir = page.rsplit_once('/').map(|(d, _)| d).unwrap_or(page);
    Some(format!("{dir}/{href}"))
}

/// The value of attribute `name` in an opening tag's text (quoted or bare).
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(r) = lower.get(from..).and_then(|s| s.find(name)) {
        let i = from + r;
        from = i + name.len();
        let before_ok = i > 0 && lower.as_bytes()[i - 1].is_ascii_whitespace();
        let rest = lower[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let eq = from + (lower[from..].len() - rest.len());
        let after = &tag[eq + 1..];
        let trimmed = after.trim_start();
        return Some(match trimmed.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &trimmed[1..];
                inner.find(q).map(|e| &inner[..e]).unwrap_or(inner)
            }
            _ => trimmed
                .split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .unwrap_or(""),
        });
    }
    None
}

fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
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

// ---------------------------------------------------------------------------------------
// BM25.

/// A page to search.
#[derive(Debug, Clone)]
pub struct PageText {
    pub title: String,
    pub url: String,
    pub text: String,
}

/// A search hit: which page, its score, and the passage that matched best.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub index: usize,
    pub score: f64,
    /// Byte range of the best passage in the page's text.
    pub passage: (usize, usize),
}

/// BM25 (k1 = 1.2, b = 0.75) over each page's title (counted twice) and text; the best
/// `limit` pages with a score above zero, best first.
pub fn bm25(pages: &[PageText], query: &str, limit: usize) -> Vec<Hit> {
    let q: Vec<String> = words(query)
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if q.is_empty() || pages.is_empty() {
        return Vec::new();
    }
    let docs: Vec<BTreeMap<String, u32>> = pages
        .iter()
        .map(|p| {
            let mut tf = BTreeMap::new();
            for w in words(&p.title)
                .into_iter()
                .chain(words(&p.title))
                .chain(words(&p.text))
            {
                *tf.entry(w).or_insert(0u32) += 1;
            }
            tf
        })
        .collect();
    let lens: Vec<f64> = docs
        .iter()
        .map(|d| d.values().sum::<u32>() as f64)
        .collect();
    let n = pages.len() as f64;
    let avg = (lens.iter().sum::<f64>() / n).max(1.0);
    let (k1, b) = (1.2, 0.75);
    let df: BTreeMap<&str, f64> = q
        .iter()
        .map(|w| {
            let n = docs.iter().filter(|d| d.contains_key(w)).count() as f64;
            (w.as_str(), n)
        })
        .collect();
    let mut scored: Vec<(usize, f64)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut s = 0.0;
            for w in &q {
                let df = df[w.as_str()];
                let tf = *d.get(w).unwrap_or(&0) as f64;
                if tf == 0.0 {
                    continue;
                }
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                s += idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * lens[i] / avg));
            }
            (i, s)
        })
        .filter(|(_, s)| *s > 0.0)
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored
        .into_iter()
        .take(limit.max(1))
        .map(|(i, score)| Hit {
            index: i,
            score,
            passage: best_passage(&pages[i].text, &q),
        })
        .collect()
}

/// The paragraph (blank-line separated, at most ~800 bytes) with the most query words.
fn best_passage(text: &str, q: &[String]) -> (usize, usize) {
    let mut best = (0, 0, 0usize);
    let mut start = 0;
    for para in text.split("\n\n") {
        let end = start + para.len();
        let ws = words(para);
        let hits = q.iter().filter(|w| ws.contains(w)).count() * 1000
            + ws.iter().filter(|w| q.contains(w)).count();
        if hits > best.2 {
            best = (start, end, hits);
        }
        start = end + 2;
    }
    let (s, mut e, _) = best;
    if e == 0 {
        e = text.len().min(800);
    }
    let mut e = e.min(s + 800).min(text.len());
    while !text.is_char_boundary(e) {
        e -= 1;
    }
    (s.min(e), e)
}

// ---------------------------------------------------------------------------------------
// Explore, search, fetch.

/// A page found by a search.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DocHit {
    pub title: String,
    pub url: String,
    pub score: f64,
    pub snippet: Untrusted,
}

/// A library's docs: its pages and, with a query, the best matches.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DocsExplore {
    pub library: String,
    /// Doc sites read (composites expand).
    pub sites: Vec<String>,
    pub pages: Vec<DocLink>,
    pub query: Option<String>,
    pub hits: Vec<DocHit>,
    /// Pages whose markdown was read for the search.
    pub pages_searched: usize,
    /// Pages that could not be read (missing, refused).
    pub pages_failed: Vec<String>,
    pub warnings: Vec<String>,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

/// One fetched page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DocPage {
    pub url: String,
    pub content: Untrusted,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

fn hf_base(f: &Fetcher) -> String {
    f.endpoints().hf.trim_end_matches('/').to_string()
}

/// A docs URL on the configured HF endpoint: `trl/sft_trainer`, `/docs/trl/sft_trainer`,
/// `https://huggingface.co/docs/trl/sft_trainer[.md]` (mapped to the endpoint) or a URL on
/// the endpoint itself; anything else (another host, not under `/docs/`) is refused.
pub fn docs_url(f: &Fetcher, page: &str) -> Result<String, ResearchError> {
    let base = hf_base(f);
    let p = page.trim();
    let p = p.split('#').next().unwrap_or("");
    let p = p.split('?').next().unwrap_or("");
    let path = if let Some(rest) = p.strip_prefix(&base) {
        rest.to_string()
    } else if let Some(rest) = p
        .strip_prefix("https://huggingface.co")
        .or_else(|| p.strip_prefix("http://huggingface.co"))
    {
        rest.to_string()
    } else if p.contains("://") {
        return Err(ResearchError::Usage(format!(
            "{} is not a Hugging Face docs URL",
            visible(p)
        )));
    } else if p.starts_with("/docs/") {
        p.to_string()
    } else if p.starts_with('/') {
        return Err(ResearchError::Usage(format!(
            "{} is not a page under /docs/",
            visible(p)
        )));
    } else {
        format!("/docs/{}", p.trim_start_matches('/'))
    };
    if !path.starts_with("/docs/")
        || path.split('/').any(|s| s == "..")
        || path.len() <= "/docs/".len()
    {
        return Err(ResearchError::Usage(format!(
            "{} is not a page under /docs/",
            visible(p)
        )));
    }
    Ok(format!("{base}{}", path.trim_end_matches('/')))
}

fn md_url(url: &str) -> String {
    if url.ends_with(".md") {
        url.to_string()
    } else {
        format!("{url}.md")
    }
}

fn hf_error(f: &Fetcher, r: &crate::Response, what: &str) -> ResearchError {
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let msg = r
        .header("x-error-message")
        .map(str::to_string)
        .or_else(|| body["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("HTTP {}", r.status));
    let msg = short_message(f, &msg);
    match r.status {
        404 => ResearchError::NotFound(format!("{what}: {msg}")),
        status => ResearchError::Api {
            source_name: "huggingface",
            status,
            message: msg,
        },
    }
}

fn get_hf(
    f: &Fetcher,
    url: &str,
    accept: &'static str,
    cred: Credential,
    age: &mut Age,
    what: &str,
) -> Result<crate::Response, ResearchError> {
    let r = f.fetch(
        &Request::get(url)
            .with(cred)
            .accept(accept)
            .ttl(TTL_DOCS)
            .max_bytes(8 << 20),
    )?;
    if !r.ok() {
        return Err(hf_error(f, &r, what));
    }
    age.add(&r);
    Ok(r)
}

/// Fetches one docs page's markdown (`.md` appended when missing).
pub fn fetch_page(f: &Fetcher, page: &str) -> Result<DocPage, ResearchError> {
    let url = md_url(&docs_url(f, page)?);
    let mut age = Age::default();
    let r = get_hf(f, &url, "text/markdown", Credential::Hf, &mut age, &url)?;
    Ok(DocPage {
        content: Untrusted::new(&url, &r.text(), MAX_PAGE_CHARS, &f.secret_values()),
        url,
        cache_age: age.cache_age,
        stale: age.stale,
    })
}

/// The pages of a library's docs (the sidebars of its sites) and, with a `query`, the
/// `limit` best pages by BM25 over their markdown (fetched with up to 6 requests at a time,
/// cached a day, so a repeated or offline search reads the cache).
pub fn explore(
    f: &Fetcher,
    library: &str,
    query: Option<&str>,
    limit: usize,
) -> Result<DocsExplore, ResearchError> {
    let sites = expand_library(library)?;
    let base = hf_base(f);
    let mut age = Age::default();
    let mut pages: Vec<DocLink> = Vec::new();
    let mut failed = Vec::new();
    for site in &sites {
        let url = format!("{base}/docs/{site}");
        match get_hf(f, &url, "text/html", Credential::Hf, &mut age, &url) {
            Ok(r) => {
                for l in extract_sidebar(&r.text(), &r.url) {
                    // Only docs pages on the endpoint (a sidebar may link elsewhere).
                    if docs_url(f, &l.url).is_ok() && !pages.iter().any(|p| p.url == l.url) {
                        pages.push(l);
                    }
                }
            }
            // A composite's missing site is skipped; a single library's is the error.
            Err(e) if sites.len() == 1 => return Err(e),
            Err(_) => failed.push(url),
        }
    }
    let query = query.map(str::trim).filter(|q| !q.is_empty());
    let mut hits = Vec::new();
    let mut searched = 0;
    if let Some(q) = query {
        let wanted: Vec<&DocLink> = pages.iter().take(MAX_PAGES).collect();
        let results = fetch_all(f, &wanted);
        let mut texts = Vec::new();
        for (link, res) in wanted.iter().zip(results) {
            match res {
                Ok(r) => {
                    age.add(&r);
                    texts.push(PageText {
                        title: link.title.clone(),
                        url: link.url.clone(),
                        text: r.text(),
                    });
                }
                Err(_) => failed.push(md_url(&link.url)),
            }
        }
        searched = texts.len();
        for h in bm25(&texts, q, limit) {
            let p = &texts[h.index];
            let snippet = &p.text[h.passage.0..h.passage.1];
            hits.push(DocHit {
                title: p.title.clone(),
                url: p.url.clone(),
                score: (h.score * 1000.0).round() / 1000.0,
                snippet: Untrusted::new(&md_url(&p.url), snippet, 2000, &f.secret_values()),
            });
        }
    }
    let mut warnings = scan_names(
        f,
        &format!("{base}/docs/{library}"),
        pages.iter().map(|p| p.title.as_str()),
    );
    if query.is_some() && pages.len() > MAX_PAGES {
        warnings.push(format!(
            "note: searched the first {MAX_PAGES} of {} pages",
            pages.len()
        ));
    }
    Ok(DocsExplore {
        library: library.trim().to_ascii_lowercase(),
        sites: sites.iter().map(|s| s.to_string()).collect(),
        pages,
        query: query.map(visible),
        hits,
        pages_searched: searched,
        pages_failed: failed,
        warnings,
        cache_age: age.cache_age,
        stale: age.stale,
    })
}

/// Each page's markdown, 6 at a time; the answers in the order of `pages`.
fn fetch_all(f: &Fetcher, pages: &[&DocLink]) -> Vec<Result<crate::Response, ResearchError>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out: std::sync::Mutex<Vec<Option<Result<crate::Response, ResearchError>>>> =
        std::sync::Mutex::new((0..pages.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..6.min(pages.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(p) = pages.get(i) else { break };
                    let url = md_url(&p.url);
                    let mut age = Age::default();
                    let r = get_hf(f, &url, "text/markdown", Credential::Hf, &mut age, &url);
                    out.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
            });
        }
    });
    out.into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ResearchError::Usage("not fetched".into()))))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The Hub's OpenAPI spec.

/// One endpoint of the Hub API.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiEndpoint {
    pub method: String,
    pub path: String,
    pub operation_id: Option<String>,
    pub tags: Vec<String>,
    pub summary: Option<Untrusted>,
    pub description: Option<Untrusted>,
    /// `name (in, required)`.
    pub parameters: Vec<String>,
    /// `curl … -H 'Authorization: Bearer $HF_TOKEN'`; `None` when the path or server holds
    /// characters that are not safe to paste into a shell.
    pub curl: Option<String>,
    pub score: u32,
}

/// The endpoints matching a query.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiMatches {
    pub query: String,
    pub server: String,
    pub endpoints: Vec<ApiEndpoint>,
    /// Endpoints in the spec.
    pub total_endpoints: usize,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

fn shell_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-.:{}~%".contains(c))
}

/// Finds Hub API endpoints for `query` (words matched against path, operationId, tags,
/// summary and description) in `{hf}/.well-known/openapi.json`, optionally only those
/// tagged `tag`; the best `limit`, each with a curl example.
pub fn find_api(
    f: &Fetcher,
    query: &str,
    tag: Option<&str>,
    limit: usize,
) -> Result<ApiMatches, ResearchError> {
    let url = format!("{}/.well-known/openapi.json", hf_base(f));
    let mut age = Age::default();
    let r = get_hf(
        f,
        &url,
        "application/json",
        Credential::None,
        &mut age,
        &url,
    )?;
    let spec = r.json()?;
    let server = spec["servers"][0]["url"]
        .as_str()
        .unwrap_or("https://huggingface.co")
        .trim_end_matches('/')
        .to_string();
    let q = words(query);
    let tag = tag.map(|t| t.to_lowercase());
    let mut all = Vec::new();
    let paths = spec["paths"].as_object().cloned().unwrap_or_default();
    for (path, item) in &paths {
        let Some(ops) = item.as_object() else {
            continue;
        };
        for (method, op) in ops {
            let m = method.to_ascii_lowercase();
            if !matches!(
                m.as_str(),
                "get" | "post" | "put" | "patch" | "delete" | "head" | "options"
            ) {
                continue;
            }
            all.push((path.clone(), m, op.clone()));
        }
    }
    let total = all.len();
    let mut scored: Vec<(u32, String, String, Value)> = all
        .into_iter()
        .filter_map(|(path, m, op)| {
            let tags: Vec<String> = op["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_lowercase))
                .collect();
            if let Some(t) = &tag
                && !tags.iter().any(|x| x == t)
            {
                return None;
            }
            let fields = [
                (words(&path), 3),
                (words(op["operationId"].as_str().unwrap_or("")), 3),
                (tags.iter().flat_map(|t| words(t)).collect(), 2),
                (words(op["summary"].as_str().unwrap_or("")), 2),
                (words(op["description"].as_str().unwrap_or("")), 1),
            ];
            let mut score = 0;
            for w in &q {
                for (ws, weight) in &fields {
                    if ws
                        .iter()
                        .any(|x| x == w || (w.len() > 3 && x.starts_with(w.as_str())))
                    {
                        score += weight;
                    }
                }
            }
            (q.is_empty() || score > 0).then_some((score, path, m, op))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let endpoints = scored
        .into_iter()
        .take(limit.max(1))
        .map(|(score, path, m, op)| {
            let method = m.to_ascii_uppercase();
            let curl = (shell_safe(&path)
                && shell_safe(server.split_once("://").map_or("", |x| x.1)))
            .then(|| {
                let mut c = format!(
                    "curl -X {method} '{server}{path}' -H 'Authorization: Bearer $HF_TOKEN'"
                );
                if !op["requestBody"].is_null() {
                    c.push_str(" -H 'Content-Type: application/json' -d '{}'");
                }
                c
            });
            let parameters = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some(format!(
                        "{} ({}{})",
                        visible(p["name"].as_str()?),
                        visible(p["in"].as_str().unwrap_or("?")),
                        if p["required"].as_bool() == Some(true) {
                            ", required"
                        } else {
                            ""
                        }
                    ))
                })
                .collect();
            let src = format!("openapi {method} {}", visible(&path));
            ApiEndpoint {
                operation_id: op["operationId"].as_str().map(visible),
                tags: op["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(visible))
                    .collect(),
                summary: wrap_opt(f, &src, op["summary"].as_str(), 1000),
                description: wrap_opt(f, &src, op["description"].as_str(), 4000),
                parameters,
                curl,
                score,
                method,
                path: visible(&path),
            }
        })
        .collect();
    Ok(ApiMatches {
        query: visible(query),
        server: visible(&server),
        endpoints,
        total_endpoints: total,
        cache_age: age.cache_age,
        stale: age.stale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidebar_links() {
        let html = r#"<html><nav class="top"><a href="/x">no</a></nav>
            <nav class="flex-auto overflow-y-auto"><ul>
            <li><a href="/docs/trl/index" class="x">TRL &amp; you</a></li>
            <li><a class='y' href='sft_trainer'><span>SFT</span> Trainer</a></li>
            <li><a href="https://github.com/huggingface/trl">GitHub</a></li>
            <li><a href="/docs/trl/index#top">dup</a></li>
            <li><abbr>x</abbr><a href="mailto:a@b.c">mail</a><a>no href</a></li>
            </ul></nav></html>"#;
        let links = extract_sidebar(html, "https://huggingface.co/docs/trl/index");
        assert_eq!(
            links,
            vec![
                DocLink {
                    title: "TRL & you".into(),
                    url: "https://huggingface.co/docs/trl/index".into()
                },
                DocLink {
                    title: "SFT Trainer".into(),
                    url: "https://huggingface.co/docs/trl/sft_trainer".into()
                },
            ]
        );
        assert!(
            extract_sidebar(
                "<nav class=flex-auto><a href=/docs/a>A",
                "http://h:1/docs/a"
            )
            .len()
                == 1
        );
        assert!(extract_sidebar("<nav", "http://h").is_empty());
        assert!(extract_sidebar("<nav class=\"flex-auto\"><a href=\"é\">", "x").is_empty());
    }

    #[test]
    fn bm25_ranks_the_page_about_the_query() {
        let pages = vec![
            PageText {
                title: "SFT Trainer".into(),
                url: "a".into(),
                text: "Supervised fine-tuning.\n\nUse SFTTrainer with packing.".into(),
            },
            PageText {
                title: "DPO Trainer".into(),
                url: "b".into(),
                text: "Direct preference optimization.\n\nThe beta parameter of DPO controls the KL penalty.".into(),
            },
            PageText {
                title: "Installation".into(),
                url: "c".into(),
                text: "pip install trl".into(),
            },
        ];
        let hits = bm25(&pages, "dpo beta", 5);
        assert_eq!(hits[0].index, 1);
        assert_eq!(hits.len(), 1);
        let (s, e) = hits[0].passage;
        assert!(pages[1].text[s..e].contains("beta"));
        assert!(bm25(&pages, "", 5).is_empty());
        assert!(bm25(&pages, "zzz", 5).is_empty());
    }

    #[test]
    fn libraries_and_entities() {
        assert_eq!(expand_library("TRL").unwrap(), vec!["trl"]);
        assert_eq!(expand_library("optimum").unwrap().len(), 6);
        assert_eq!(expand_library("courses").unwrap().len(), 12);
        assert_eq!(expand_library("llm-course").unwrap(), vec!["llm-course"]);
        assert!(expand_library("gradio").is_err());
        assert!(expand_library("../etc").is_err());
        assert_eq!(
            decode_entities("a &lt;b&gt; &#x41;&#66; &bogus; &"),
            "a <b> AB &bogus; &"
        );
    }
}

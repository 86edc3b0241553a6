//! GitHub's REST API (`research/api-contracts.md` §7): find example scripts in a repository,
//! read a file, list a repository's tree, list an organisation's or user's repositories, and
//! search repositories. REST only, `Accept: application/vnd.github+json`; the token travels
//! only as [`Credential::GitHub`], which the fetcher sends to the GitHub API's host alone.
//! Without a token the anonymous calls still work (GitHub allows 60 an hour): results say so.
//! Code search (`/search/code`) needs a token and is outside the contract: [`code_search`]
//! is a typed refusal, not a fake.
//!
//! The token comes from the binary: `GITHUB_TOKEN`, else `oauth_token` in gh's
//! `~/.config/gh/hosts.yml`, read by [`token_from`] / [`gh_hosts_token`].

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fetch::{Response, host_of};
use crate::util::{
    Age, enc_path, enc_segment, scan_names, short_message, visible, words, wrap_opt,
};
use crate::{Credential, Fetcher, Request, ResearchError, Untrusted};

/// `Accept` of every GitHub call.
pub const ACCEPT_JSON: &str = "application/vnd.github+json";
/// `Accept` for a file's raw bytes (files GitHub does not inline as base64).
pub const ACCEPT_RAW: &str = "application/vnd.github.raw";
/// Lines shown when no window is asked for.
pub const DEFAULT_LINES: usize = 300;
/// Characters of one file's window kept (beyond that the text is cut and says so).
pub const MAX_FILE_CHARS: usize = 400_000;
/// Largest raw file fetched.
pub const MAX_RAW_BYTES: usize = 16 << 20;
/// What an anonymous caller is allowed (GitHub's documented primary limit).
pub const ANONYMOUS_LIMIT_PER_HOUR: u64 = 60;

const TTL_META: Duration = Duration::from_secs(6 * 3600);
const TTL_SEARCH: Duration = Duration::from_secs(3600);

/// `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRef {
    pub owner: String,
    pub name: String,
}

impl RepoRef {
    /// `owner/name` (also accepts `https://github.com/owner/name[...]`).
    pub fn parse(s: &str) -> Result<RepoRef, ResearchError> {
        let s = s.trim();
        let s = s
            .strip_prefix("https://github.com/")
            .or_else(|| s.strip_prefix("http://github.com/"))
            .or_else(|| s.strip_prefix("github.com/"))
            .unwrap_or(s);
        let mut it = s.trim_end_matches('/').split('/');
        let (Some(owner), Some(name)) = (it.next(), it.next()) else {
            return Err(ResearchError::Usage(format!(
                "a GitHub repository is owner/name, not {s:?}"
            )));
        };
        let name = name.trim_end_matches(".git");
        if !valid_name(owner) || !valid_name(name) {
            return Err(ResearchError::Usage(format!(
                "a GitHub repository is owner/name (letters, digits, '-', '_', '.'), not {s:?}"
            )));
        }
        Ok(RepoRef {
            owner: owner.into(),
            name: name.into(),
        })
    }
    pub fn full(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Who asked GitHub and how much quota is left (from the last live answer's headers).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Quota {
    /// A token was sent.
    pub authenticated: bool,
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Unix seconds when the quota resets.
    pub reset: Option<u64>,
    /// E.g. that anonymous calls get 60 an hour.
    pub note: Option<String>,
}

impl Quota {
    fn new(f: &Fetcher) -> Quota {
        let authenticated = f.has_credential(Credential::GitHub);
        Quota {
            authenticated,
            note: (!authenticated).then(|| {
                format!(
                    "anonymous GitHub API: {ANONYMOUS_LIMIT_PER_HOUR} requests an hour; set GITHUB_TOKEN (or `gh auth login`) for 5,000"
                )
            }),
            ..Quota::default()
        }
    }
    fn add(&mut self, r: &Response) {
        let num = |k: &str| r.header(k).and_then(|v| v.trim().parse::<u64>().ok());
        if r.cache_age.is_none() {
            self.limit = num("x-ratelimit-limit").or(self.limit);
            self.remaining = num("x-ratelimit-remaining").or(self.remaining);
            self.reset = num("x-ratelimit-reset").or(self.reset);
        }
    }
}

/// One call's bookkeeping.
struct Calls<'a> {
    f: &'a Fetcher,
    age: Age,
    quota: Quota,
}

impl<'a> Calls<'a> {
    fn new(f: &'a Fetcher) -> Calls<'a> {
        Calls {
            f,
            age: Age::default(),
            quota: Quota::new(f),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.f.endpoints().github.trim_end_matches('/'))
    }

    /// GET `path` (below the API base) as JSON; GitHub's error shapes become typed errors.
    fn get_json(&mut self, path: &str, ttl: Duration) -> Result<Value, ResearchError> {
        let r = self.get(path, ACCEPT_JSON, ttl, 8 << 20)?;
        r.json()
    }

    fn get(
        &mut self,
        path: &str,
        accept: &'static str,
        ttl: Duration,
        max_bytes: usize,
    ) -> Result<Response, ResearchError> {
        let req = Request::get(self.url(path))
            .with(Credential::GitHub)
            .accept(accept)
            .ttl(ttl)
            .max_bytes(max_bytes);
        let r = self.f.fetch(&req)?;
        self.quota.add(&r);
        if r.ok() {
            self.age.add(&r);
            return Ok(r);
        }
        Err(api_error(self.f, &r, path))
    }
}

/// GitHub's error answer as a typed error: 404 `NotFound`, an exhausted quota (403/429 with
/// `x-ratelimit-remaining: 0`, or a secondary limit) `RateLimited` with the reset time, 401
/// a rejected token, anything else `Api` with GitHub's `message`.
fn api_error(f: &Fetcher, r: &Response, what: &str) -> ResearchError {
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let message = body["message"]
        .as_str()
        .map(|m| short_message(f, m))
        .unwrap_or_else(|| short_message(f, &String::from_utf8_lossy(&r.body)));
    let host = host_of(&r.url).unwrap_or_default();
    let exhausted = r
        .header("x-ratelimit-remaining")
        .is_some_and(|v| v.trim() == "0");
    let limited = (r.status == 403 || r.status == 429)
        && (exhausted || message.to_ascii_lowercase().contains("rate limit"));
    if limited {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let retry_after = r
            .header("retry-after")
            .and_then(crate::fetch::parse_retry_after)
            .or_else(|| {
                r.header("x-ratelimit-reset")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|reset| Duration::from_secs(reset.saturating_sub(now)))
            });
        return ResearchError::RateLimited { host, retry_after };
    }
    match r.status {
        404 => ResearchError::NotFound(format!("GitHub {what}: {message}")),
        401 => ResearchError::Api {
            source_name: "github",
            status: 401,
            message: if f.has_credential(Credential::GitHub) {
                format!("{message}: GitHub rejected the token (GITHUB_TOKEN or gh's hosts.yml)")
            } else {
                format!(
                    "{message}: this call needs a GitHub token (GITHUB_TOKEN or `gh auth login`)"
                )
            },
        },
        status => ResearchError::Api {
            source_name: "github",
            status,
            message,
        },
    }
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

// ---------------------------------------------------------------------------------------
// Repositories.

/// A repository in a listing or a search.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RepoSummary {
    pub full_name: String,
    pub name: String,
    pub description: Option<Untrusted>,
    pub html_url: Option<String>,
    pub language: Option<String>,
    pub stars: u64,
    pub forks: u64,
    pub open_issues: u64,
    pub topics: Vec<String>,
    pub default_branch: Option<String>,
    pub updated_at: Option<String>,
    pub created_at: Option<String>,
}

fn repo_summary(f: &Fetcher, v: &Value) -> RepoSummary {
    let full = visible(v["full_name"].as_str().unwrap_or(""));
    RepoSummary {
        name: visible(v["name"].as_str().unwrap_or("")),
        description: wrap_opt(
            f,
            &format!("github:{full} description"),
            v["description"].as_str(),
            2000,
        ),
        full_name: full,
        html_url: s(&v["html_url"]).map(|u| visible(&u)),
        language: s(&v["language"]).map(|u| visible(&u)),
        stars: v["stargazers_count"].as_u64().unwrap_or(0),
        forks: v["forks_count"].as_u64().unwrap_or(0),
        open_issues: v["open_issues_count"].as_u64().unwrap_or(0),
        topics: v["topics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(visible))
            .collect(),
        default_branch: s(&v["default_branch"]).map(|u| visible(&u)),
        updated_at: s(&v["updated_at"]),
        created_at: s(&v["created_at"]),
    }
}

/// A list of repositories (an owner's, or a search's).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RepoList {
    /// The owner listed, or the search query.
    pub query: String,
    /// `org`, `user` or `search`.
    pub kind: String,
    /// For a search: how many GitHub says match.
    pub total_count: Option<u64>,
    pub repos: Vec<RepoSummary>,
    pub warnings: Vec<String>,
    pub quota: Quota,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

/// Whose repositories to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OwnerKind {
    /// An organisation, else a user.
    #[default]
    Auto,
    Org,
    User,
}

/// Order of an owner's repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoSort {
    Created,
    Updated,
    Pushed,
    FullName,
}

/// `GET /orgs/{owner}/repos` (or `/users/{owner}/repos`) page by page (`per_page=100`) until
/// an empty page or `limit` repositories. [`OwnerKind::Auto`] tries the organisation first
/// and a user on 404.
pub fn list_repos(
    f: &Fetcher,
    owner: &str,
    kind: OwnerKind,
    sort: Option<RepoSort>,
    descending: bool,
    limit: usize,
) -> Result<RepoList, ResearchError> {
    if !valid_name(owner) {
        return Err(ResearchError::Usage(format!(
            "not a GitHub owner name: {owner:?}"
        )));
    }
    let limit = limit.clamp(1, 1000);
    let kinds: &[&str] = match kind {
        OwnerKind::Auto => &["orgs", "users"],
        OwnerKind::Org => &["orgs"],
        OwnerKind::User => &["users"],
    };
    let mut c = Calls::new(f);
    let mut last_err = None;
    for k in kinds {
        let mut repos = Vec::new();
        let mut page = 1;
        let mut failed = None;
        while repos.len() < limit {
            let mut path = format!("/{k}/{}/repos?per_page=100&page={page}", enc_segment(owner));
            if let Some(s) = sort {
                let name = match s {
                    RepoSort::Created => "created",
                    RepoSort::Updated => "updated",
                    RepoSort::Pushed => "pushed",
                    RepoSort::FullName => "full_name",
                };
                path.push_str(&format!(
                    "&sort={name}&direction={}",
                    if descending { "desc" } else { "asc" }
                ));
            }
            match c.get_json(&path, TTL_META) {
                Ok(Value::Array(items)) => {
                    if items.is_empty() {
                        break;
                    }
                    repos.extend(items.iter().map(|v| repo_summary(f, v)));
                    page += 1;
                    if page > 50 {
                        break;
                    }
                }
                Ok(_) => {
                    failed = Some(ResearchError::Decode {
                        url: c.url(&path),
                        message: "expected a JSON array of repositories".into(),
                    });
                    break;
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            Some(e @ ResearchError::NotFound(_)) if repos.is_empty() => last_err = Some(e),
            Some(e) => return Err(e),
            None => {
                repos.truncate(limit);
                let warnings = scan_names(
                    f,
                    &format!("github:{owner}"),
                    repos.iter().map(|r| r.full_name.as_str()),
                );
                return Ok(RepoList {
                    query: owner.into(),
                    kind: k.trim_end_matches('s').into(),
                    total_count: None,
                    repos,
                    warnings,
                    quota: c.quota,
                    cache_age: c.age.cache_age,
                    stale: c.age.stale,
                });
            }
        }
    }
    Err(last_err.unwrap_or_else(|| ResearchError::NotFound(format!("GitHub owner {owner}"))))
}

/// `GET /search/repositories?q=…&sort=stars&order=desc&per_page=…` (GitHub's search syntax:
/// `org:huggingface trl`, `topic:rlhf language:python`).
pub fn search_repos(f: &Fetcher, query: &str, limit: usize) -> Result<RepoList, ResearchError> {
    let q = query.trim();
    if q.is_empty() {
        return Err(ResearchError::Usage(
            "a repository search needs a query".into(),
        ));
    }
    let mut c = Calls::new(f);
    let v = c.get_json(
        &format!(
            "/search/repositories?q={}&sort=stars&order=desc&per_page={}",
            enc_segment(q),
            limit.clamp(1, 100)
        ),
        TTL_SEARCH,
    )?;
    let repos: Vec<RepoSummary> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .take(limit.clamp(1, 100))
        .map(|r| repo_summary(f, r))
        .collect();
    let warnings = scan_names(
        f,
        "github search",
        repos.iter().map(|r| r.full_name.as_str()),
    );
    Ok(RepoList {
        query: visible(q),
        kind: "search".into(),
        total_count: v["total_count"].as_u64(),
        repos,
        warnings,
        quota: c.quota,
        cache_age: c.age.cache_age,
        stale: c.age.stale,
    })
}

/// Code search: GitHub's `/search/code` requires a token and is not part of the contract
/// this tool follows, so this is always a typed refusal naming what to use instead.
pub fn code_search(_f: &Fetcher, _query: &str) -> Result<RepoList, ResearchError> {
    Err(ResearchError::Usage(
        "GitHub code search (/search/code) requires authentication and is not supported by \
         this tool; use `find_examples` (ranked example scripts of a repository), \
         `list_tree` with a path prefix, or `search_repos`"
            .into(),
    ))
}

// ---------------------------------------------------------------------------------------
// Trees and examples.

/// One entry of a repository's tree.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TreeEntry {
    pub path: String,
    /// `blob` or `tree` (or `commit` for a submodule).
    pub kind: String,
    pub size: Option<u64>,
}

/// A repository's tree at a ref.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Tree {
    pub repo: String,
    pub git_ref: String,
    pub prefix: Option<String>,
    /// Entries under the prefix (at most the limit).
    pub entries: Vec<TreeEntry>,
    /// Entries under the prefix in all.
    pub total: usize,
    /// GitHub cut the recursive listing (very large repositories).
    pub truncated_by_github: bool,
    pub warnings: Vec<String>,
    pub quota: Quota,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

fn default_branch(c: &mut Calls, repo: &RepoRef) -> Result<(String, Value), ResearchError> {
    let v = c.get_json(
        &format!(
            "/repos/{}/{}",
            enc_segment(&repo.owner),
            enc_segment(&repo.name)
        ),
        TTL_META,
    )?;
    let b = v["default_branch"].as_str().unwrap_or("main").to_string();
    Ok((b, v))
}

fn raw_tree(
    c: &mut Calls,
    repo: &RepoRef,
    git_ref: &str,
) -> Result<(Vec<Value>, bool), ResearchError> {
    let v = c.get_json(
        &format!(
            "/repos/{}/{}/git/trees/{}?recursive=1",
            enc_segment(&repo.owner),
            enc_segment(&repo.name),
            enc_path(git_ref)
        ),
        TTL_META,
    )?;
    let items = v["tree"].as_array().cloned().unwrap_or_default();
    Ok((items, v["truncated"].as_bool().unwrap_or(false)))
}

/// The repository's recursive tree at `git_ref` (default branch when `None`), entries under
/// `prefix` only, at most `limit`.
pub fn list_tree(
    f: &Fetcher,
    repo: &RepoRef,
    git_ref: Option<&str>,
    prefix: Option<&str>,
    limit: usize,
) -> Result<Tree, ResearchError> {
    let mut c = Calls::new(f);
    let git_ref = match git_ref.filter(|r| !r.is_empty() && *r != "HEAD") {
        Some(r) => r.to_string(),
        None => default_branch(&mut c, repo)?.0,
    };
    let (items, truncated) = raw_tree(&mut c, repo, &git_ref)?;
    let prefix = prefix
        .map(|p| p.trim_matches('/').to_string())
        .filter(|p| !p.is_empty());
    let all: Vec<TreeEntry> = items
        .iter()
        .filter_map(|i| {
            let path = i["path"].as_str()?;
            if let Some(p) = &prefix
                && !(path == p || path.starts_with(&format!("{p}/")))
            {
                return None;
            }
            Some(TreeEntry {
                path: visible(path),
                kind: visible(i["type"].as_str().unwrap_or("blob")),
                size: i["size"].as_u64(),
            })
        })
        .collect();
    let total = all.len();
    let entries: Vec<TreeEntry> = all.into_iter().take(limit.max(1)).collect();
    let warnings = scan_names(
        f,
        &format!("github:{}", repo.full()),
        entries.iter().map(|e| e.path.as_str()),
    );
    Ok(Tree {
        repo: repo.full(),
        git_ref: visible(&git_ref),
        prefix,
        entries,
        total,
        truncated_by_github: truncated,
        warnings,
        quota: c.quota,
        cache_age: c.age.cache_age,
        stale: c.age.stale,
    })
}

/// A ranked example file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExampleFile {
    pub path: String,
    /// `script`, `notebook`, `config` or `doc`.
    pub kind: String,
    pub size: Option<u64>,
    pub score: u32,
    /// Query words found in the path.
    pub matched: Vec<String>,
    pub html_url: String,
}

/// Example scripts found in a repository (or, when it does not exist, suggestions).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Examples {
    pub repo: String,
    pub repo_found: bool,
    pub default_branch: Option<String>,
    pub description: Option<Untrusted>,
    pub query: String,
    pub examples: Vec<ExampleFile>,
    /// Candidates before the limit.
    pub total_candidates: usize,
    /// No file matched the query words: these are the repository's examples unfiltered.
    pub query_unmatched: bool,
    /// When the repository was not found: `org:{owner} {name}` search results.
    pub suggestions: Vec<RepoSummary>,
    pub truncated_by_github: bool,
    pub warnings: Vec<String>,
    pub quota: Quota,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

const EXAMPLE_DIRS: &[&str] = &[
    "examples",
    "example",
    "scripts",
    "notebooks",
    "notebook",
    "recipes",
    "cookbook",
    "tutorials",
    "demos",
    "demo",
    "samples",
    "research_projects",
];

fn example_kind(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    match ext.as_str() {
        "py" | "sh" | "rs" | "js" | "ts" => Some("script"),
        "ipynb" => Some("notebook"),
        "yaml" | "yml" | "json" | "toml" | "cfg" => Some("config"),
        "md" | "rst" => Some("doc"),
        _ => None,
    }
}

/// Ranks one blob path as an example for `query_words`: `None` when it is not an example
/// candidate (not in an example directory and not a notebook, or not a script/notebook/
/// config/doc), else the score and the query words it matched.
pub fn rank_example(path: &str, query_words: &[String]) -> Option<(u32, Vec<String>)> {
    let kind = example_kind(path)?;
    let lower = path.to_lowercase();
    let dirs: Vec<&str> = lower.split('/').collect();
    let in_examples = dirs[..dirs.len() - 1]
        .iter()
        .any(|d| EXAMPLE_DIRS.contains(d) || d.starts_with("example"));
    if !in_examples && kind != "notebook" {
        return None;
    }
    let mut score: u32 = match kind {
        "script" => 20,
        "notebook" => 18,
        "config" => 8,
        _ => 4,
    };
    if in_examples {
        score += 10;
    }
    if dirs
        .iter()
        .any(|d| matches!(*d, "tests" | "test" | "docs" | "legacy" | "deprecated"))
    {
        score = score.saturating_sub(12);
    }
    let file = dirs.last().copied().unwrap_or("");
    let file_words = words(file);
    let path_words = words(&lower);
    let mut matched = Vec::new();
    for w in query_words {
        if file_words.iter().any(|x| x == w) {
            score += 25;
            matched.push(w.clone());
        } else if file.contains(w.as_str()) {
            score += 15;
            matched.push(w.clone());
        } else if path_words.iter().any(|x| x == w) {
            score += 10;
            matched.push(w.clone());
        }
    }
    // Shallower is more likely a maintained entry point.
    score = score.saturating_sub(dirs.len().saturating_sub(3) as u32);
    Some((score, matched))
}

/// Finds example scripts for a library or task in `repo`: the repository's default branch,
/// its recursive tree, and the blob paths in example directories (and notebooks) ranked by
/// the words of `query` (empty: all examples). A repository that does not exist answers
/// with `repo_found: false` and `org:{owner} {name}` search suggestions.
pub fn find_examples(
    f: &Fetcher,
    repo: &RepoRef,
    query: &str,
    limit: usize,
) -> Result<Examples, ResearchError> {
    let mut c = Calls::new(f);
    let query_words: Vec<String> = words(query).into_iter().filter(|w| w.len() > 1).collect();
    let (branch, info) = match default_branch(&mut c, repo) {
        Ok(x) => x,
        Err(ResearchError::NotFound(_)) => {
            let q = format!("org:{} {}", repo.owner, repo.name);
            // Suggestions are a courtesy: a failed search leaves them empty.
            let suggestions = match search_repos(f, &q, 10) {
                Ok(l) => {
                    if let Some(a) = l.cache_age {
                        c.age.cache_age = Some(c.age.cache_age.map_or(a, |b| b.max(a)));
                    }
                    c.age.stale |= l.stale;
                    c.quota = l.quota;
                    l.repos
                }
                Err(_) => Vec::new(),
            };
            return Ok(Examples {
                repo: repo.full(),
                repo_found: false,
                default_branch: None,
                description: None,
                query: visible(query),
                examples: Vec::new(),
                total_candidates: 0,
                query_unmatched: false,
                suggestions,
                truncated_by_github: false,
                warnings: Vec::new(),
                quota: c.quota,
                cache_age: c.age.cache_age,
                stale: c.age.stale,
            });
        }
        Err(e) => return Err(e),
    };
    let (items, truncated) = raw_tree(&mut c, repo, &branch)?;
    let mut scored: Vec<(u32, Vec<String>, &str, Option<u64>)> = items
        .iter()
        .filter(|i| i["type"].as_str() == Some("blob"))
        .filter_map(|i| {
            let p = i["path"].as_str()?;
            let (score, matched) = rank_example(p, &query_words)?;
            Some((score, matched, p, i["size"].as_u64()))
        })
        .collect();
    let any_match = scored.iter().any(|s| !s.1.is_empty());
    let query_unmatched = !query_words.is_empty() && !any_match;
    if any_match {
        scored.retain(|s| !s.1.is_empty());
    }
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(b.2)));
    let total_candidates = scored.len();
    let web = format!(
        "https://github.com/{}/blob/{}",
        repo.full(),
        enc_path(&branch)
    );
    let examples: Vec<ExampleFile> = scored
        .into_iter()
        .take(limit.max(1))
        .map(|(score, matched, p, size)| ExampleFile {
            kind: example_kind(p).unwrap_or("script").into(),
            html_url: format!("{web}/{}", enc_path(p)),
            path: visible(p),
            size,
            score,
            matched,
        })
        .collect();
    let warnings = scan_names(
        f,
        &format!("github:{}", repo.full()),
        examples.iter().map(|e| e.path.as_str()),
    );
    Ok(Examples {
        repo: repo.full(),
        repo_found: true,
        default_branch: Some(visible(&branch)),
        description: wrap_opt(
            f,
            &format!("github:{} description", repo.full()),
            info["description"].as_str(),
            2000,
        ),
        query: visible(query),
        examples,
        total_candidates,
        query_unmatched,
        suggestions: Vec::new(),
        truncated_by_github: truncated,
        warnings,
        quota: c.quota,
        cache_age: c.age.cache_age,
        stale: c.age.stale,
    })
}

// ---------------------------------------------------------------------------------------
// Files.

/// A window of a file's text.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileContent {
    pub repo: String,
    pub path: String,
    pub git_ref: Option<String>,
    pub size: Option<u64>,
    pub html_url: Option<String>,
    /// A notebook shown as markdown (its cells; outputs left out).
    pub notebook: bool,
    /// GitHub did not inline it (large file): fetched raw.
    pub fetched_raw: bool,
    /// 1-based, inclusive.
    pub line_start: usize,
    pub line_end: usize,
    pub total_lines: usize,
    /// Lines outside the window exist.
    pub more_lines: bool,
    pub content: Untrusted,
    pub quota: Quota,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

/// `GET /repos/{o}/{r}/contents/{path}[?ref=]`: the base64 content (line breaks allowed);
/// when GitHub leaves it empty (`encoding: "none"`, large files) the same URL again with
/// `Accept: application/vnd.github.raw`. A notebook becomes markdown. Lines
/// `line_start..=line_end` (1-based; default the first 300).
pub fn read_file(
    f: &Fetcher,
    repo: &RepoRef,
    path: &str,
    git_ref: Option<&str>,
    line_start: Option<usize>,
    line_end: Option<usize>,
) -> Result<FileContent, ResearchError> {
    let path = path.trim().trim_start_matches('/');
    if path.is_empty() || path.split('/').any(|s| s == ".." || s.is_empty()) {
        return Err(ResearchError::Usage(format!("not a file path: {path:?}")));
    }
    let git_ref = git_ref.filter(|r| !r.is_empty() && *r != "HEAD");
    let mut url_path = format!(
        "/repos/{}/{}/contents/{}",
        enc_segment(&repo.owner),
        enc_segment(&repo.name),
        enc_path(path)
    );
    if let Some(r) = git_ref {
        url_path.push_str(&format!("?ref={}", enc_segment(r)));
    }
    let mut c = Calls::new(f);
    let v = c.get_json(&url_path, TTL_META)?;
    if v.is_array() {
        return Err(ResearchError::Usage(format!(
            "{path} is a directory of {}; list it with the tree command",
            repo.full()
        )));
    }
    if v["type"].as_str() != Some("file") {
        return Err(ResearchError::Usage(format!(
            "{path} is a {}, not a file",
            visible(v["type"].as_str().unwrap_or("non-file"))
        )));
    }
    let inline = v["content"].as_str().unwrap_or("");
    let encoding = v["encoding"].as_str().unwrap_or("base64");
    let (bytes, fetched_raw) = if inline.trim().is_empty() || encoding == "none" {
        let r = c.get(&url_path, ACCEPT_RAW, TTL_META, MAX_RAW_BYTES)?;
        (r.body, true)
    } else {
        let clean: String = inline.chars().filter(|c| !c.is_whitespace()).collect();
        let b = base64::engine::general_purpose::STANDARD
            .decode(clean.as_bytes())
            .map_err(|e| ResearchError::Decode {
                url: c.url(&url_path),
                message: format!("bad base64 content: {e}"),
            })?;
        (b, false)
    };
    if bytes.contains(&0) {
        return Err(ResearchError::Decode {
            url: c.url(&url_path),
            message: format!("{path} is a binary file ({} bytes)", bytes.len()),
        });
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let notebook = path.to_ascii_lowercase().ends_with(".ipynb");
    let text = if notebook {
        notebook_markdown(&text).ok_or_else(|| ResearchError::Decode {
            url: c.url(&url_path),
            message: "not a Jupyter notebook (JSON with cells)".into(),
        })?
    } else {
        text
    };
    let lines: Vec<&str> = text.lines().collect();
    let total = lines.len();
    let start = line_start.unwrap_or(1).max(1);
    if start > total.max(1) {
        return Err(ResearchError::Usage(format!(
            "{path} has {total} lines; line_start {start} is past its end"
        )));
    }
    let end = line_end.unwrap_or(start + DEFAULT_LINES - 1).max(start);
    let end = end.min(total.max(1));
    let window = if start > total {
        String::new()
    } else {
        lines[start - 1..end.min(total)].join("\n")
    };
    let source = format!(
        "github:{}/{}{} lines {start}-{end}",
        repo.full(),
        path,
        git_ref.map(|r| format!("@{r}")).unwrap_or_default()
    );
    Ok(FileContent {
        repo: repo.full(),
        path: visible(path),
        git_ref: git_ref.map(visible),
        size: v["size"].as_u64(),
        html_url: s(&v["html_url"]).map(|u| visible(&u)),
        notebook,
        fetched_raw,
        line_start: start,
        line_end: end,
        total_lines: total,
        more_lines: start > 1 || end < total,
        content: Untrusted::new(&source, &window, MAX_FILE_CHARS, &f.secret_values()),
        quota: c.quota,
        cache_age: c.age.cache_age,
        stale: c.age.stale,
    })
}

/// A Jupyter notebook's cells as markdown: markdown cells as they are, code cells fenced
/// (in the notebook's language), outputs left out. `None` when it is not a notebook.
pub fn notebook_markdown(json: &str) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    let cells = v["cells"].as_array()?;
    let lang = v["metadata"]["kernelspec"]["language"]
        .as_str()
        .or_else(|| v["metadata"]["language_info"]["name"].as_str())
        .unwrap_or("python");
    let lang: String = lang
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '-')
        .take(20)
        .collect();
    let mut out = String::new();
    for cell in cells {
        let src = match &cell["source"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(|p| p.as_str()).collect(),
            _ => String::new(),
        };
        match cell["cell_type"].as_str() {
            Some("markdown") => {
                out.push_str(src.trim_end());
                out.push_str("\n\n");
            }
            Some("code") => {
                let fence = if src.contains("```") { "~~~~" } else { "```" };
                out.push_str(&format!("{fence}{lang}\n{}\n{fence}\n\n", src.trim_end()));
            }
            _ => {
                if !src.trim().is_empty() {
                    out.push_str(src.trim_end());
                    out.push_str("\n\n");
                }
            }
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------
// The token.

/// The `oauth_token` of `host` in the text of gh's `hosts.yml` (both shapes: the token under
/// the host, or under `users: {name: {oauth_token}}` with `user:` naming the active one).
/// `None` when there is none (gh keeps it in the system keyring) or the text is not that
/// shape. Never panics.
pub fn gh_hosts_token(yaml: &str, host: &str) -> Option<String> {
    let lines: Vec<(usize, String, String)> = yaml
        .lines()
        .filter_map(|l| {
            let l = l.trim_end_matches('\r');
            let t = l.trim_start();
            if t.is_empty() || t.starts_with('#') || t.starts_with("- ") || t == "-" {
                return None;
            }
            let indent = l.len() - t.len();
            let (k, v) = split_kv(t)?;
            Some((indent, k, v))
        })
        .collect();
    // Children of the node at `i` (one indentation level deeper), as index ranges.
    let children = |i: usize| -> Vec<usize> {
        let base = lines[i].0;
        let mut out = Vec::new();
        let mut level = None;
        for (j, (ind, _, _)) in lines.iter().enumerate().skip(i + 1) {
            if *ind <= base {
                break;
            }
            let lv = *level.get_or_insert(*ind);
            if *ind == lv {
                out.push(j);
            }
        }
        out
    };
    let top = lines.iter().map(|l| l.0).min()?;
    let host_i = (0..lines.len()).find(|&i| lines[i].0 == top && lines[i].1 == host)?;
    let kids = children(host_i);
    let get = |ids: &[usize], key: &str| -> Option<usize> {
        ids.iter().copied().find(|&j| lines[j].1 == key)
    };
    let token_of = |i: usize| -> Option<String> {
        let v = lines[i].2.trim();
        (!v.is_empty()).then(|| v.to_string())
    };
    if let Some(t) = get(&kids, "oauth_token").and_then(token_of) {
        return Some(t);
    }
    let users = get(&kids, "users")?;
    let user_ids = children(users);
    let active = get(&kids, "user").and_then(token_of);
    let mut order: Vec<usize> = user_ids.clone();
    if let Some(a) = &active {
        order.sort_by_key(|&j| lines[j].1 != *a);
    }
    order
        .into_iter()
        .find_map(|u| get(&children(u), "oauth_token").and_then(token_of))
}

/// `key: value` of one YAML line (quotes removed, a trailing comment dropped).
fn split_kv(t: &str) -> Option<(String, String)> {
    let (k, v) = if let Some(rest) = t.strip_prefix('"') {
        let end = rest.find('"')?;
        let after = rest[end + 1..].trim_start().strip_prefix(':')?;
        (rest[..end].to_string(), after)
    } else if let Some(rest) = t.strip_prefix('\'') {
        let end = rest.find('\'')?;
        let after = rest[end + 1..].trim_start().strip_prefix(':')?;
        (rest[..end].to_string(), after)
    } else {
        let colon = t
            .find(": ")
            .or_else(|| t.ends_with(':').then(|| t.len() - 1))?;
        (t[..colon].trim().to_string(), &t[colon + 1..])
    };
    let v = v.trim();
    let v = if let Some(r) = v.strip_prefix('"') {
        r.split('"').next().unwrap_or("").to_string()
    } else if let Some(r) = v.strip_prefix('\'') {
        r.split('\'').next().unwrap_or("").to_string()
    } else {
        v.split(" #").next().unwrap_or("").trim().to_string()
    };
    Some((k, v))
}

/// gh's host for an API base URL: `github.com` for `https://api.github.com`, the host itself
/// for GitHub Enterprise (`https://ghe.example/api/v3`).
pub fn gh_host_for(api_base: &str) -> String {
    match host_of(api_base) {
        Some(h) if h == "api.github.com" => "github.com".into(),
        Some(h) => h.strip_prefix("api.").unwrap_or(&h).to_string(),
        None => "github.com".into(),
    }
}

/// The GitHub token: `GITHUB_TOKEN` from the environment map the binary passes, else the
/// `oauth_token` for `host` in the text of gh's `hosts.yml` (when the binary could read it).
pub fn token_from(
    env: &BTreeMap<String, String>,
    gh_hosts_yml: Option<&str>,
    host: &str,
) -> Option<String> {
    env.get("GITHUB_TOKEN")
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .or_else(|| gh_hosts_yml.and_then(|y| gh_hosts_token(y, host)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gh_hosts_both_shapes() {
        let old = "github.com:\n    oauth_token: gho_OLDshape123\n    user: octocat\n    git_protocol: https\n";
        assert_eq!(
            gh_hosts_token(old, "github.com").as_deref(),
            Some("gho_OLDshape123")
        );
        let new = "github.com:\n    users:\n        other:\n            oauth_token: gho_other\n        octocat:\n            oauth_token: \"gho_active\"\n    git_protocol: ssh\n    user: octocat\n    oauth_token: gho_top # comment\nghe.example:\n    oauth_token: ghe_x\n";
        assert_eq!(
            gh_hosts_token(new, "github.com").as_deref(),
            Some("gho_top")
        );
        let users_only = "github.com:\n  users:\n    a:\n      oauth_token: gho_a\n    b:\n      oauth_token: gho_b\n  user: b\n";
        assert_eq!(
            gh_hosts_token(users_only, "github.com").as_deref(),
            Some("gho_b")
        );
        assert_eq!(gh_hosts_token(new, "ghe.example").as_deref(), Some("ghe_x"));
        // Keyring (no token in the file), other hosts, junk.
        let keyring = "github.com:\n    users:\n        octocat:\n    git_protocol: https\n    user: octocat\n";
        assert_eq!(gh_hosts_token(keyring, "github.com"), None);
        assert_eq!(gh_hosts_token(old, "gitlab.com"), None);
        assert_eq!(gh_hosts_token("", "github.com"), None);
        assert_eq!(gh_hosts_token("::::\n  - x", "github.com"), None);
        // A nested key of the same name elsewhere is not the host's.
        let nested = "other.com:\n    github.com:\n        oauth_token: nope\n";
        assert_eq!(gh_hosts_token(nested, "github.com"), None);
        let quoted = "\"github.com\":\n  oauth_token: 'gho_q'\n";
        assert_eq!(
            gh_hosts_token(quoted, "github.com").as_deref(),
            Some("gho_q")
        );
    }

    #[test]
    fn token_order_and_hosts() {
        let mut env = BTreeMap::new();
        let yml = "github.com:\n  oauth_token: gho_file\n";
        assert_eq!(
            token_from(&env, Some(yml), "github.com").as_deref(),
            Some("gho_file")
        );
        env.insert("GITHUB_TOKEN".to_string(), "ghp_env".to_string());
        assert_eq!(
            token_from(&env, Some(yml), "github.com").as_deref(),
            Some("ghp_env")
        );
        env.insert("GITHUB_TOKEN".to_string(), " ".to_string());
        assert_eq!(token_from(&env, None, "github.com"), None);
        assert_eq!(gh_host_for("https://api.github.com"), "github.com");
        assert_eq!(gh_host_for("https://ghe.corp/api/v3"), "ghe.corp");
    }

    #[test]
    fn repo_refs_and_ranking() {
        assert_eq!(
            RepoRef::parse("huggingface/trl").unwrap().full(),
            "huggingface/trl"
        );
        assert_eq!(
            RepoRef::parse("https://github.com/huggingface/trl.git")
                .unwrap()
                .name,
            "trl"
        );
        assert!(RepoRef::parse("trl").is_err());
        assert!(RepoRef::parse("a/..").is_err());
        assert!(RepoRef::parse("a b/c").is_err());
        let q = vec!["dpo".to_string()];
        let dpo = rank_example("examples/scripts/dpo.py", &q).unwrap();
        let sft = rank_example("examples/scripts/sft.py", &q).unwrap();
        assert!(dpo.0 > sft.0 && dpo.1 == q && sft.1.is_empty());
        assert!(rank_example("trl/trainer/dpo_trainer.py", &q).is_none());
        assert!(rank_example("examples/scripts/logo.png", &q).is_none());
        assert!(rank_example("nb/intro.ipynb", &[]).is_some());
        let t = rank_example("tests/examples/test_dpo.py", &q).unwrap();
        assert!(t.0 < dpo.0);
    }

    #[test]
    fn notebooks_become_markdown() {
        let nb = r##"{"cells":[{"cell_type":"markdown","source":["# Title\n","Text"]},
            {"cell_type":"code","source":"print(1)","outputs":[{"text":"1"}]}],
            "metadata":{"kernelspec":{"language":"python"}}}"##;
        let md = notebook_markdown(nb).unwrap();
        assert!(
            md.starts_with("# Title\nText\n\n```python\nprint(1)\n```"),
            "{md}"
        );
        assert!(!md.contains("\"1\""));
        assert_eq!(notebook_markdown("not json"), None);
        assert_eq!(notebook_markdown("{}"), None);
    }
}

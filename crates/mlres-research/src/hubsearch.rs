//! Models and datasets search on the Hugging Face Hub (`GET {hf}/api/models`,
//! `/api/datasets`; `research/api-contracts.md` §4.1): `search`, `author`, repeated
//! `filter` tags (task, library, license), `sort` with `direction=-1`, `limit`, `cardData`.
//! The Hub has no minimum-downloads or size parameter: those filters are applied here, on a
//! larger page, and the result says how many items they removed. The HF token is optional.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::util::{Age, enc_segment, scan_names, short_message, visible, wrap_opt};
use crate::{Credential, Fetcher, Request, ResearchError, Untrusted};

const TTL: Duration = Duration::from_secs(3600);

/// Models or datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HubKind {
    #[default]
    Model,
    Dataset,
}

impl HubKind {
    fn plural(self) -> &'static str {
        match self {
            HubKind::Model => "models",
            HubKind::Dataset => "datasets",
        }
    }
}

/// Sort order (always descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum HubSort {
    #[default]
    #[serde(rename = "downloads")]
    Downloads,
    #[serde(rename = "likes")]
    Likes,
    #[serde(rename = "trendingScore")]
    Trending,
    #[serde(rename = "lastModified")]
    LastModified,
    #[serde(rename = "createdAt")]
    CreatedAt,
}

impl HubSort {
    pub fn as_str(self) -> &'static str {
        match self {
            HubSort::Downloads => "downloads",
            HubSort::Likes => "likes",
            HubSort::Trending => "trendingScore",
            HubSort::LastModified => "lastModified",
            HubSort::CreatedAt => "createdAt",
        }
    }
    /// `downloads`, `likes`, `trending`/`trendingScore`, `lastModified`/`updated`,
    /// `createdAt`/`created`.
    pub fn parse(s: &str) -> Option<HubSort> {
        Some(match s.to_ascii_lowercase().as_str() {
            "downloads" => HubSort::Downloads,
            "likes" => HubSort::Likes,
            "trending" | "trendingscore" => HubSort::Trending,
            "lastmodified" | "updated" | "modified" => HubSort::LastModified,
            "createdat" | "created" => HubSort::CreatedAt,
            _ => return None,
        })
    }
}

/// What to search for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HubQuery {
    pub kind: HubKind,
    /// Words in the repo id.
    pub search: Option<String>,
    pub author: Option<String>,
    /// A task: `text-generation` (models: the pipeline tag; datasets: `task_categories:`).
    pub task: Option<String>,
    /// A library: `transformers`, `peft` (datasets: `library:`).
    pub library: Option<String>,
    /// A license id: `apache-2.0`, `mit` (the `license:` tag).
    pub license: Option<String>,
    /// More tags, sent as `filter` as they are.
    pub tags: Vec<String>,
    pub sort: HubSort,
    pub limit: usize,
    /// At least this many downloads (applied here).
    pub min_downloads: Option<u64>,
    /// Models: at most/at least this many parameters (from the safetensors metadata; models
    /// without it are removed when a bound is set).
    pub min_params: Option<u64>,
    pub max_params: Option<u64>,
    /// Datasets: the `size_categories:` tag, e.g. `10K<n<100K`.
    pub size_category: Option<String>,
}

/// One model or dataset.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HubItem {
    pub id: String,
    pub url: String,
    pub author: Option<String>,
    pub downloads: Option<u64>,
    pub likes: Option<u64>,
    pub task: Option<String>,
    pub library: Option<String>,
    pub license: Option<String>,
    pub tags: Vec<String>,
    pub gated: Option<String>,
    pub last_modified: Option<String>,
    /// Models: parameter count (safetensors metadata), when the Hub gave it.
    pub params: Option<u64>,
    /// Datasets: the `size_categories:` tag.
    pub size_category: Option<String>,
    pub description: Option<Untrusted>,
}

/// A search's answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HubSearch {
    pub kind: HubKind,
    /// The request (path and query on the endpoint; never a token).
    pub request: String,
    pub items: Vec<HubItem>,
    /// Items the local filters (downloads, size, license) removed.
    pub filtered_out: usize,
    pub authenticated: bool,
    pub warnings: Vec<String>,
    pub cache_age: Option<u64>,
    pub stale: bool,
}

fn check_tag(what: &str, v: &str) -> Result<(), ResearchError> {
    let ok = !v.is_empty()
        && v.len() <= 100
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/<>+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ResearchError::Usage(format!(
            "{what} {:?} is not a Hub tag (letters, digits, - _ . : / < > +)",
            visible(v)
        )))
    }
}

/// Searches the Hub. See [`HubQuery`].
pub fn search(f: &Fetcher, q: &HubQuery) -> Result<HubSearch, ResearchError> {
    let limit = if q.limit == 0 { 20 } else { q.limit.min(1000) };
    let mut filters: Vec<String> = Vec::new();
    let ds = q.kind == HubKind::Dataset;
    if let Some(t) = q.task.as_deref().filter(|t| !t.is_empty()) {
        check_tag("task", t)?;
        filters.push(if ds && !t.contains(':') {
            format!("task_categories:{t}")
        } else {
            t.to_string()
        });
    }
    if let Some(l) = q.library.as_deref().filter(|t| !t.is_empty()) {
        check_tag("library", l)?;
        filters.push(if ds && !l.contains(':') {
            format!("library:{l}")
        } else {
            l.to_string()
        });
    }
    if let Some(l) = q.license.as_deref().filter(|t| !t.is_empty()) {
        check_tag("license", l)?;
        filters.push(if l.starts_with("license:") {
            l.to_string()
        } else {
            format!("license:{l}")
        });
    }
    if let Some(s) = q.size_category.as_deref().filter(|t| !t.is_empty()) {
        check_tag("size category", s)?;
        if !ds {
            return Err(ResearchError::Usage(
                "size categories are dataset tags; for models use min/max parameters".into(),
            ));
        }
        filters.push(if s.starts_with("size_categories:") {
            s.to_string()
        } else {
            format!("size_categories:{s}")
        });
    }
    for t in &q.tags {
        check_tag("tag", t)?;
        filters.push(t.clone());
    }
    if let Some(a) = q.author.as_deref() {
        check_tag("author", a)?;
    }
    let params_bound = !ds && (q.min_params.is_some() || q.max_params.is_some());
    let local = q.min_downloads.is_some() || params_bound;
    // Local filters need more candidates than the limit.
    let fetch_limit = if local {
        (limit * 5).clamp(100, 1000)
    } else {
        limit
    };
    let mut query = vec![
        ("sort".to_string(), q.sort.as_str().to_string()),
        ("direction".into(), "-1".into()),
        ("limit".into(), fetch_limit.to_string()),
    ];
    if let Some(s) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        query.push(("search".into(), s.to_string()));
    }
    if let Some(a) = q.author.as_deref() {
        query.push(("author".into(), a.to_string()));
    }
    for fl in &filters {
        query.push(("filter".into(), fl.clone()));
    }
    if params_bound {
        // `expand` replaces the default fields: name every one this reads.
        for e in [
            "safetensors",
            "downloads",
            "likes",
            "pipeline_tag",
            "library_name",
            "tags",
            "lastModified",
            "cardData",
            "gated",
            "author",
        ] {
            query.push(("expand".into(), e.into()));
        }
    } else {
        query.push(("cardData".into(), "true".into()));
    }
    let request = format!(
        "/api/{}?{}",
        q.kind.plural(),
        query
            .iter()
            .map(|(k, v)| format!("{k}={}", enc_segment(v)))
            .collect::<Vec<_>>()
            .join("&")
    );
    let url = format!("{}{request}", f.endpoints().hf.trim_end_matches('/'));
    let r = f.fetch(
        &Request::get(&url)
            .with(Credential::Hf)
            .accept("application/json")
            .ttl(TTL),
    )?;
    if !r.ok() {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let msg = r
            .header("x-error-message")
            .map(str::to_string)
            .or_else(|| body["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {}", r.status));
        return Err(ResearchError::Api {
            source_name: "huggingface",
            status: r.status,
            message: short_message(f, &msg),
        });
    }
    let mut age = Age::default();
    age.add(&r);
    let v = r.json()?;
    let Some(arr) = v.as_array() else {
        return Err(ResearchError::Decode {
            url,
            message: "expected a JSON array".into(),
        });
    };
    let mut items = Vec::new();
    let mut filtered_out = 0;
    for it in arr {
        let item = hub_item(f, q.kind, it);
        let keep = q
            .min_downloads
            .is_none_or(|m| item.downloads.unwrap_or(0) >= m)
            && q.min_params
                .is_none_or(|m| ds || item.params.is_some_and(|p| p >= m))
            && q.max_params
                .is_none_or(|m| ds || item.params.is_some_and(|p| p <= m))
            && q.license.as_deref().is_none_or(|l| {
                let l = l.trim_start_matches("license:");
                item.license
                    .as_deref()
                    .is_none_or(|x| x.eq_ignore_ascii_case(l))
            });
        if !keep {
            filtered_out += 1;
            continue;
        }
        if items.len() < limit {
            items.push(item);
        }
    }
    let warnings = scan_names(
        f,
        &format!("{}/api/{}", f.endpoints().hf, q.kind.plural()),
        items.iter().map(|i| i.id.as_str()),
    );
    Ok(HubSearch {
        kind: q.kind,
        request,
        items,
        filtered_out,
        authenticated: f.has_credential(Credential::Hf),
        warnings,
        cache_age: age.cache_age,
        stale: age.stale,
    })
}

fn hub_item(f: &Fetcher, kind: HubKind, v: &Value) -> HubItem {
    let id = visible(v["id"].as_str().or(v["modelId"].as_str()).unwrap_or(""));
    let tags: Vec<String> = v["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(visible))
        .collect();
    let tag_value = |prefix: &str| {
        tags.iter()
            .find_map(|t| t.strip_prefix(prefix).map(str::to_string))
    };
    let license = v["cardData"]["license"]
        .as_str()
        .map(visible)
        .or_else(|| tag_value("license:"));
    let gated = match &v["gated"] {
        Value::Bool(b) => Some(b.to_string()),
        Value::String(s) => Some(visible(s)),
        _ => None,
    };
    let url = match kind {
        HubKind::Model => format!("https://huggingface.co/{id}"),
        HubKind::Dataset => format!("https://huggingface.co/datasets/{id}"),
    };
    let desc = v["description"]
        .as_str()
        .or(v["cardData"]["description"].as_str());
    HubItem {
        author: v["author"]
            .as_str()
            .map(visible)
            .or_else(|| id.split_once('/').map(|(a, _)| a.to_string())),
        downloads: v["downloads"].as_u64(),
        likes: v["likes"].as_u64(),
        task: v["pipeline_tag"]
            .as_str()
            .map(visible)
            .or_else(|| tag_value("task_categories:")),
        library: v["library_name"].as_str().map(visible),
        license,
        gated,
        last_modified: v["lastModified"].as_str().map(visible),
        params: v["safetensors"]["total"].as_u64(),
        size_category: tag_value("size_categories:"),
        description: wrap_opt(f, &format!("{url} description"), desc, 3000),
        tags,
        url,
        id,
    }
}

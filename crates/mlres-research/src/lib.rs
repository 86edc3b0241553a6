//! Research tools' network side: papers (Hugging Face papers, arXiv, Semantic Scholar),
//! Hugging Face docs, GitHub examples and Hub search, for the researcher agent and any MCP
//! client. Every request goes through one [`Fetcher`] (credentials only to their own host,
//! redirects followed by hand, size caps, retries with `Retry-After`, per-host pacing, a disk
//! cache that answers offline), and everything that comes back is [`Untrusted`]: capped,
//! redacted, with invisible characters shown and injection strings flagged, wrapped in
//! markers. This crate never reads the environment (the binary passes [`Endpoints`] and
//! [`Secrets`]) and never prints.

pub mod cache;
pub mod docs;
pub mod fetch;
pub mod github;
pub mod hubsearch;
pub mod latexml;
pub mod papers;
pub mod untrusted;
mod util;

use std::collections::BTreeMap;
use std::time::Duration;

pub use cache::Cache;
pub use fetch::{Credential, Fetcher, Pacing, Request, Response};
pub use untrusted::Untrusted;

/// Base URLs of every source (overridable so tests point them at local fakes).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    /// Hugging Face (papers API, docs, Hub search): `HF_ENDPOINT`.
    pub hf: String,
    /// arXiv's export API (Atom).
    pub arxiv_export: String,
    /// arXiv's HTML rendering (`/html/{id}`).
    pub arxiv_html: String,
    /// ar5iv (`/html/{id}`), the fallback rendering.
    pub ar5iv: String,
    /// Semantic Scholar API (`/graph/v1`, `/recommendations/v1`).
    pub s2: String,
    /// GitHub's REST API.
    pub github: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            hf: "https://huggingface.co".into(),
            arxiv_export: "https://export.arxiv.org".into(),
            arxiv_html: "https://arxiv.org".into(),
            ar5iv: "https://ar5iv.labs.arxiv.org".into(),
            s2: "https://api.semanticscholar.org".into(),
            github: "https://api.github.com".into(),
        }
    }
}

impl Endpoints {
    /// From the environment map the binary passes: `HF_ENDPOINT`, and for tests and mirrors
    /// `MLRES_ARXIV_ENDPOINT`, `MLRES_ARXIV_HTML_ENDPOINT`, `MLRES_AR5IV_ENDPOINT`,
    /// `MLRES_S2_ENDPOINT`, `MLRES_GITHUB_ENDPOINT` (`GITHUB_API_URL` too, as GitHub Actions
    /// sets it).
    pub fn from_env(env: &BTreeMap<String, String>) -> Endpoints {
        let d = Endpoints::default();
        let get = |k: &str, def: String| {
            env.get(k)
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim().trim_end_matches('/').to_string())
                .unwrap_or(def)
        };
        Endpoints {
            hf: get("HF_ENDPOINT", d.hf),
            arxiv_export: get("MLRES_ARXIV_ENDPOINT", d.arxiv_export),
            arxiv_html: get("MLRES_ARXIV_HTML_ENDPOINT", d.arxiv_html),
            ar5iv: get("MLRES_AR5IV_ENDPOINT", d.ar5iv),
            s2: get("MLRES_S2_ENDPOINT", d.s2),
            github: get("MLRES_GITHUB_ENDPOINT", get("GITHUB_API_URL", d.github)),
        }
    }

    /// Minimum spacing per host: arXiv asks for 3 s between calls; Semantic Scholar gives a
    /// keyed client 1 request/s. Only for the real hosts (a local fake is not paced).
    pub fn default_pacing(&self) -> BTreeMap<String, Duration> {
        let mut m = BTreeMap::new();
        let real = |url: &str, host: &str| fetch::host_of(url).is_some_and(|h| h == host);
        if real(&self.arxiv_export, "export.arxiv.org") {
            m.insert("export.arxiv.org".into(), Duration::from_secs(3));
        }
        if real(&self.s2, "api.semanticscholar.org") {
            m.insert("api.semanticscholar.org".into(), Duration::from_secs(1));
        }
        m
    }
}

/// Credentials, each sent only to its own source's host.
#[derive(Clone, Default)]
pub struct Secrets {
    pub hf_token: Option<String>,
    pub github_token: Option<String>,
    pub s2_key: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("hf_token", &self.hf_token.as_ref().map(|_| "<set>"))
            .field("github_token", &self.github_token.as_ref().map(|_| "<set>"))
            .field("s2_key", &self.s2_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// What can go wrong, typed.
#[derive(Debug, thiserror::Error)]
pub enum ResearchError {
    #[error("cannot reach {url}: {message}")]
    Transport { url: String, message: String },
    #[error("offline and nothing cached for {url}")]
    Offline { url: String },
    #[error("{host} is rate limiting us{}", retry_after.map(|d| format!("; retry after {} s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        host: String,
        retry_after: Option<Duration>,
    },
    #[error("{url} sent more than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("not a URL this tool can fetch: {0}")]
    BadUrl(String),
    #[error("{url}: cannot decode the answer: {message}")]
    Decode { url: String, message: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{source_name} refused the request ({status}): {message}")]
    Api {
        source_name: &'static str,
        status: u16,
        message: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NeedsCredential(String),
}

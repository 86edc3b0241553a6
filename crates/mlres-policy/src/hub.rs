//! Scope checks for Hub writes (`mlres hub files upload|delete`, `mlres hub repo create`) and
//! for the breadth of the user's token. Pure: the binary gathers the facts (canonical
//! paths, file contents, whether a remote file exists, the token's whoami scopes).

use std::path::Path;

use crate::{Envelope, repo_allowed};

/// Why a Hub write is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HubRefusal(pub String);

fn refuse<T>(msg: String) -> Result<T, HubRefusal> {
    Err(HubRefusal(msg))
}

/// The repo (`ns/name`, or `datasets/ns/name`) must match one of `output_repos`.
pub fn check_repo_scope(env: &Envelope, repo: &str) -> Result<(), HubRefusal> {
    if repo_allowed(env, repo) {
        return Ok(());
    }
    if env.output_repos.is_empty() {
        return refuse(format!(
            "repo {repo} is out of scope: the envelope's output_repos is empty, so no repository may be written"
        ));
    }
    refuse(format!(
        "repo {repo} is out of scope: it matches none of output_repos {:?}",
        env.output_repos
    ))
}

/// A delete needs `allow_deletes: true` (and the repo in scope).
pub fn check_delete(env: &Envelope, repo: &str, path: &str) -> Result<(), HubRefusal> {
    check_repo_scope(env, repo)?;
    if !env.allow_deletes {
        return refuse(format!(
            "deleting {path} from {repo} needs allow_deletes: true in the envelope"
        ));
    }
    Ok(())
}

/// An upload: the repo in scope; overwriting an existing remote file counts as a delete.
pub fn check_upload(
    env: &Envelope,
    repo: &str,
    path: &str,
    remote_exists: bool,
) -> Result<(), HubRefusal> {
    check_repo_scope(env, repo)?;
    if remote_exists && !env.allow_deletes {
        return refuse(format!(
            "{path} already exists in {repo}: overwriting it counts as a delete, which needs allow_deletes: true"
        ));
    }
    Ok(())
}

/// Creating a repo: in scope, and private unless the envelope allows public repos.
pub fn check_create(
    env: &Envelope,
    repo: &str,
    public: bool,
    public_repos: bool,
) -> Result<(), HubRefusal> {
    check_repo_scope(env, repo)?;
    if public && !public_repos {
        return refuse(format!(
            "creating {repo} as public needs public_repos: true in the envelope (repos are private by default)"
        ));
    }
    Ok(())
}

/// The local file to upload must be inside the project directory, or inside a job
/// attempt's `work/` directory under the state dir. All paths must be canonical (symlinks
/// resolved) — the caller canonicalises.
pub fn check_upload_source(
    file: &Path,
    project_root: &Path,
    state_dir: &Path,
) -> Result<(), HubRefusal> {
    if file.starts_with(project_root) {
        return Ok(());
    }
    if let Ok(rest) = file.strip_prefix(state_dir) {
        let comps: Vec<_> = rest.components().collect();
        // A `work` directory somewhere below the state dir, with the file inside it.
        if comps
            .iter()
            .take(comps.len().saturating_sub(1))
            .any(|c| c.as_os_str() == "work")
        {
            return Ok(());
        }
    }
    refuse(format!(
        "{} is outside the project directory and outside every job's work/ directory; only those may be uploaded",
        file.display()
    ))
}

/// File names that hold credentials.
const CREDENTIAL_NAMES: &[&str] = &[
    ".env",
    ".netrc",
    "_netrc",
    ".git-credentials",
    "token",
    "stored_tokens",
    ".npmrc",
    ".pypirc",
    "credentials",
    ".htpasswd",
];

/// Why a file must never be uploaded, judged by its path and content; `None` if it may be.
pub fn credential_reason(path: &Path, content: &[u8]) -> Option<String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let shown = path.display();
    if CREDENTIAL_NAMES.contains(&name.as_str()) || name.starts_with(".env.") {
        return Some(format!("{shown} is a credential file ({name})"));
    }
    if name.starts_with("id_rsa")
        || name.starts_with("id_ed25519")
        || name.starts_with("id_ecdsa")
        || name.starts_with("id_dsa")
    {
        return Some(format!("{shown} looks like an SSH private key"));
    }
    if [".pem", ".key", ".p12", ".pfx"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        return Some(format!("{shown} is a key or certificate file"));
    }
    let s = path.to_string_lossy();
    if s.contains("/huggingface/token") || s.contains("/.huggingface/") {
        return Some(format!("{shown} is a Hugging Face token path"));
    }
    if contains_hf_token(content) {
        return Some(format!(
            "{shown} contains something that looks like a Hugging Face token (hf_...)"
        ));
    }
    if content.windows(11).any(|w| w == b"PRIVATE KEY") {
        return Some(format!("{shown} contains a private key"));
    }
    None
}

/// Whether bytes contain `hf_` followed by at least 20 token characters.
pub fn contains_hf_token(content: &[u8]) -> bool {
    content.windows(3).enumerate().any(|(i, w)| {
        w == b"hf_"
            && (i == 0 || !content[i - 1].is_ascii_alphanumeric())
            && content[i + 3..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count()
                >= 20
    })
}

/// What a token may do, as whoami-v2 reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenScopes {
    /// `read`, `write`, `admin` or `fineGrained`.
    pub role: String,
    /// The user and org names the token's user belongs to.
    pub namespaces: Vec<String>,
    /// Fine-grained permissions on everything (e.g. `repo.write`).
    pub global: Vec<String>,
    /// Fine-grained `(entity name, permissions)`.
    pub scoped: Vec<(String, Vec<String>)>,
}

/// Ways the token is broader than the envelope needs (empty: it fits).
pub fn token_breadth(env: &Envelope, t: &TokenScopes) -> Vec<String> {
    let mut out = Vec::new();
    let repo_ns: Vec<&str> = env
        .output_repos
        .iter()
        .filter_map(|g| {
            let g = g
                .strip_prefix("datasets/")
                .or_else(|| g.strip_prefix("spaces/"))
                .or_else(|| g.strip_prefix("models/"))
                .unwrap_or(g);
            g.split('/').next()
        })
        .collect();
    let job_ns: Vec<&str> = env.namespace.iter().map(String::as_str).collect();
    match t.role.as_str() {
        "write" | "admin" => {
            out.push(format!(
                "a {} token can write every repo and start jobs in every namespace of its user ({}); the envelope needs writes only to {:?} and jobs only in {}",
                t.role,
                t.namespaces.join(", "),
                env.output_repos,
                env.namespace.as_deref().unwrap_or("no namespace"),
            ));
        }
        "fineGrained" => {
            if t.global.iter().any(|p| p == "repo.write") {
                out.push("the fine-grained token has repo.write on all repos".into());
            }
            if t.global.iter().any(|p| p == "job.write") {
                out.push("the fine-grained token can start jobs in every namespace".into());
            }
            for (entity, perms) in &t.scoped {
                let ns = entity.split('/').next().unwrap_or(entity);
                let repo_wide = !entity.contains('/');
                if perms.iter().any(|p| p == "repo.write")
                    && repo_wide
                    && !repo_ns.iter().any(|r| !r.contains('*') && *r == ns)
                {
                    out.push(format!(
                        "the token can write every repo of {entity}, which no output_repos entry needs"
                    ));
                }
                if perms.iter().any(|p| p == "job.write") && !job_ns.contains(&ns) {
                    out.push(format!(
                        "the token can start jobs in namespace {ns}, outside the envelope's namespace ({})",
                        env.namespace.as_deref().unwrap_or("none")
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

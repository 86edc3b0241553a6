//! URLs the agent's tools fetch: WebFetch, and any MCP tool given a `url`-like argument; and
//! what WebSearch sends to the search engine. Denied: a host outside the research hosts
//! ([`crate::RESEARCH_HOSTS`], plus what the user allowed in Claude Code's
//! `sandbox.network.allowedDomains`, which the [`crate::Machine`] reads), credentials in the
//! URL (a token, `user:pass@`, a `token=`-like parameter), and secret-shaped values (a long hex
//! or base64-like run, as a key, an HMAC or a ledger's id would be) in the query, the
//! fragment, a path segment, or a search query. Fetching is how data leaves quietly: the
//! host sees the whole URL.

use crate::Machine;
use crate::paths::PathEnv;
use crate::shell::url_host;

type R = Result<(), String>;

/// Whether `host` is a research host or one of its subdomains, or one the user allowed
/// (`example.com` exactly, `*.example.com` its subdomains).
pub(crate) fn host_allowed(host: &str, user: &[String]) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    let under = |d: &str| h == d || h.ends_with(&format!(".{d}"));
    crate::RESEARCH_HOSTS.iter().any(|d| under(d))
        || user.iter().any(|u| {
            let u = u.trim().to_ascii_lowercase();
            let u = u.split(':').next().unwrap_or("");
            match u.strip_prefix("*.") {
                Some(d) => h.ends_with(&format!(".{d}")),
                None => h == u,
            }
        })
}

/// A run of characters that looks like key material: 32+ hex digits, or 24+ characters of
/// the base64 alphabet (not broken by `-` or `_`, as names are) mixing upper case, lower case
/// and digits.
pub(crate) fn secret_shaped(text: &str) -> Option<String> {
    let hex = text
        .split(|c: char| !c.is_ascii_hexdigit())
        .find(|r| r.len() >= 32);
    if let Some(h) = hex {
        return Some(h.to_string());
    }
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
        .flat_map(|r| r.split(['/', '=']))
        .find(|r| {
            r.len() >= 24
                && r.chars().any(|c| c.is_ascii_uppercase())
                && r.chars().any(|c| c.is_ascii_lowercase())
                && r.chars().any(|c| c.is_ascii_digit())
        })
        .map(str::to_string)
}

fn short(s: &str) -> String {
    if s.len() > 16 {
        let cut = (0..=12).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}…", &s[..cut])
    } else {
        s.to_string()
    }
}

/// Checks a URL a tool would fetch (`what` names the tool for the reason).
pub(crate) fn check_url(url: &str, what: &str, pe: &PathEnv, machine: &dyn Machine) -> R {
    if let Some(kind) = crate::redact::first_secret(url) {
        return Err(format!(
            "the URL carries a credential ({kind}). Credentials never leave mlres"
        ));
    }
    let lower = url.trim().to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("file://") {
        if let Some(why) = pe.secret_read(rest, true) {
            return Err(format!("{why} (`{url}`)"));
        }
        return Ok(());
    }
    let Some((scheme, after_scheme)) = lower.split_once("://") else {
        return Err(format!(
            "{what} is given `{}`, which is not an http(s) URL. Fetch pages by their full https \
             address on a research host",
            short(url)
        ));
    };
    if !matches!(scheme, "http" | "https") {
        return Err(format!(
            "{what} is given a `{scheme}://` URL; only http(s) pages on research hosts are fetched"
        ));
    }
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(
            "the URL embeds user credentials (`user:pass@host`). Credentials never leave mlres"
                .into(),
        );
    }
    if let Some((_, query)) = lower.split_once('?') {
        for pair in query.split(['&', '#']) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if v.is_empty() {
                continue;
            }
            if matches!(
                k,
                "token"
                    | "access_token"
                    | "api_key"
                    | "apikey"
                    | "key"
                    | "auth"
                    | "password"
                    | "secret"
                    | "hf_token"
                    | "private_token"
                    | "client_secret"
            ) {
                return Err(format!(
                    "the URL passes a credential in its `{k}` parameter. Credentials never leave mlres"
                ));
            }
        }
    }
    let host = url_host(url).unwrap_or_default();
    let user_hosts = machine.allowed_web_hosts();
    if !host_allowed(&host, &user_hosts) {
        return Err(format!(
            "{what} to `{host}`, which is not a research host ({}{}). Find the page on those \
             hosts (WebSearch, then WebFetch its arxiv.org/huggingface.co/github.com address), or \
             ask the user to allow the host in Claude Code's sandbox.network.allowedDomains \
             (`mlres setup claude --user` writes the defaults)",
            crate::RESEARCH_HOSTS.join(", "),
            if user_hosts.is_empty() {
                String::new()
            } else {
                format!(", and {}", user_hosts.join(", "))
            }
        ));
    }
    // Secret-shaped values: anywhere after the host but in a path segment of a commit or blob
    // address (40 or 64 hex digits name a git object or an LFS file there).
    let t = url.trim();
    let after_host = t
        .find("://")
        .map(|i| i + 3 + authority.len())
        .unwrap_or(t.len());
    let tail = t.get(after_host..).unwrap_or("");
    let (path, query) = tail.split_at(tail.find(['?', '#']).unwrap_or(tail.len()));
    if let Some(s) = secret_shaped(query) {
        return Err(format!(
            "the URL's query carries a secret-shaped value (`{}`: a long hex or base64 run, as a \
             key, an HMAC or a ledger id would be). Nothing read from credentials or the mlres \
             state may leave in a URL; fetch the page without it",
            short(&s)
        ));
    }
    for seg in path.split('/') {
        let object_id =
            (seg.len() == 40 || seg.len() == 64) && seg.chars().all(|c| c.is_ascii_hexdigit());
        if object_id {
            continue;
        }
        if let Some(s) = secret_shaped(seg) {
            return Err(format!(
                "the URL's path carries a secret-shaped value (`{}`). Nothing read from \
                 credentials or the mlres state may leave in a URL; fetch the page without it",
                short(&s)
            ));
        }
    }
    Ok(())
}

/// WebSearch: the query goes to the search engine.
pub(crate) fn check_search(query: &str) -> R {
    if let Some(kind) = crate::redact::first_secret(query) {
        return Err(format!(
            "the search query carries a credential ({kind}). Credentials never leave mlres"
        ));
    }
    if let Some(s) = secret_shaped(query) {
        return Err(format!(
            "the search query carries a secret-shaped value (`{}`). Nothing read from credentials \
             or the mlres state may leave in a query; search for the topic instead",
            short(&s)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert!(host_allowed("arxiv.org", &[]));
        assert!(host_allowed("export.arxiv.org", &[]));
        assert!(host_allowed("peft.readthedocs.io", &[]));
        assert!(!host_allowed("arxiv.org.evil.com", &[]));
        assert!(!host_allowed("evilarxiv.org", &[]));
        assert!(host_allowed("docs.example.com", &["*.example.com".into()]));
        assert!(!host_allowed("example.com", &["*.example.com".into()]));
        assert!(host_allowed("wandb.ai", &["wandb.ai".into()]));
    }

    #[test]
    fn shapes() {
        assert!(secret_shaped("q=2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db").is_some());
        assert!(secret_shaped("ref=ZmFrZS1rZXktZm9yLXRlc3RzLW9ubHktMTIzNDU2Nzg5MA").is_some());
        assert!(secret_shaped("query=lora+adapters&limit=10").is_none());
        assert!(secret_shaped("transformers-4.41.2-py3-none-any.whl").is_none());
        assert!(secret_shaped("torch-2.3.0%2Bcu121-cp311-cp311-linux_x86_64.whl").is_none());
        assert!(secret_shaped("Llama-3.1-8B-Instruct-GPTQ-INT4-v2_final").is_none());
        assert!(secret_shaped("HuggingFaceFW_fineweb-edu-dedup_sample-10BT").is_none());
    }
}

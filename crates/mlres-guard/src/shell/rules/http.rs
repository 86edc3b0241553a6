//! HTTP clients: `curl`, `curlie`, `wget`, `wget2`, `aria2c`, `lwp-request`, `httpie`
//! (`http`/`https`) and `xh`. Denied: any argument that carries a credential (a token, a key),
//! calls to the Hub's jobs, repo, endpoint or Space-hardware APIs, and requests to the Hub
//! that write (a non-GET method, a body or upload, an authorization header, credentials or a
//! config file). A writing request to a URL built at run time is denied too, since it may be
//! the Hub. Plain downloads, from the Hub or elsewhere, are fine; their output file is
//! checked like any write. Uploads of local files or standard input to other machines are
//! `uploads`' rule.

use crate::code::mentions_hub_host;
use crate::shell::{Analyzer, Arg, R, Stdin, deny_obf};
use crate::{SANCTIONED_HUB, SANCTIONED_SPEND};

pub(super) fn http(an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    let lower: Vec<String> = rest.iter().map(|a| a.s().to_ascii_lowercase()).collect();
    let hub = rest
        .iter()
        .any(|a| mentions_hub_host(a.s()) || a.vars.iter().any(|v| v == "HF_ENDPOINT"));
    for a in rest {
        if let Some(secret) = crate::redact::first_secret(a.s()) {
            return Err(format!(
                "refused: the request carries a credential ({secret}). Credentials never leave mlres"
            ));
        }
    }
    // The first thing that makes the request a write, if any.
    let mut write_reason: Option<&str> = None;
    for (i, s) in lower.iter().enumerate() {
        let next = lower.get(i + 1).map(String::as_str).unwrap_or("");
        let why = match prog {
            "curl" | "curlie" => curl_writes(s, rest[i].s(), next),
            "wget" | "wget2" => wget_writes(s, next),
            "aria2c" | "lwp-request" => aria2c_writes(s),
            _ => httpie_writes(s, i, &lower),
        };
        write_reason = write_reason.or(why);
    }
    let api_jobs = lower.iter().any(|s| {
        s.contains("/api/jobs")
            || s.contains("/api/repos/")
            || s.contains("/api/endpoints")
            || s.contains("/api/spaces")
                && (s.contains("/hardware") || s.contains("/secrets") || s.contains("/restart"))
    });
    if hub && api_jobs {
        return Err(format!(
            "refused: calls the Hub jobs/repo/endpoint API directly. {SANCTIONED_SPEND}"
        ));
    }
    if let Some(why) = write_reason {
        if hub {
            return Err(format!(
                "refused: sends {why} to the Hugging Face Hub outside the broker. {SANCTIONED_HUB}"
            ));
        }
        // An upload of local data says so, before the runtime-URL rule below.
        super::uploads::http_upload(prog, rest, stdin)?;
        let url_dynamic = rest.iter().any(|a| a.dynamic && !a.is_opt());
        if url_dynamic {
            return Err(deny_obf(&format!(
                "an HTTP request with {why} goes to a URL built at run time (it may be the Hub)"
            )));
        }
    }
    super::uploads::http_upload(prog, rest, stdin)?;
    // Downloads: check output targets.
    for (i, s) in rest.iter().enumerate() {
        if matches!(s.s(), "-o" | "--output" | "-O" | "--output-document")
            && prog != "aria2c"
            && let Some(t) = rest.get(i + 1)
        {
            an.check_write(t)?;
        }
    }
    Ok(())
}

/// Whether a curl argument makes the request a write. `s` is the argument in lower case,
/// `raw` as written (`-X` and `-x` differ), `next` the next argument in lower case.
fn curl_writes(s: &str, raw: &str, next: &str) -> Option<&'static str> {
    if s == "-x" && raw == "-X" || s == "--request" {
        if !matches!(next, "get" | "head") {
            return Some("a non-GET method");
        }
    } else if raw.starts_with("-X") && raw.len() > 2 {
        let m = &s[2..];
        if !matches!(m, "get" | "head") {
            return Some("a non-GET method");
        }
    } else if let Some(m) = s.strip_prefix("--request=") {
        if !matches!(m, "get" | "head") {
            return Some("a non-GET method");
        }
    } else if s.starts_with("--data")
        || s == "-d"
        || s.starts_with("-d") && raw.starts_with("-d")
        || s == "--json"
        || s == "-f" && raw == "-F"
        || s.starts_with("--form")
        || s == "-t" && raw == "-T"
        || s == "--upload-file"
    {
        return Some("a request body or upload");
    } else if s == "-h" && raw == "-H" || s == "--header" || raw.starts_with("-H") && s.len() > 2 {
        let h = if s.len() > 2 && raw.starts_with("-H") {
            &s[2..]
        } else {
            next
        };
        if h.contains("authorization")
            || h.contains("cookie")
            || h.contains("token")
            || h.contains("api-key")
            || h.starts_with('@')
        {
            return Some("an authorization header");
        }
    } else if matches!(
        s,
        "-u" | "--user"
            | "-n"
            | "--netrc"
            | "--netrc-file"
            | "--netrc-optional"
            | "--oauth2-bearer"
            | "-b"
            | "--cookie"
            | "-k"
            | "--config"
            | "--aws-sigv4"
    ) && (s != "-k" || raw == "-K")
    {
        return Some("credentials or a config file");
    }
    None
}

fn wget_writes(s: &str, next: &str) -> Option<&'static str> {
    if s.starts_with("--method") || s.starts_with("--post-") || s.starts_with("--body-") {
        if !(s.starts_with("--method") && (next == "get" || s.ends_with("=get"))) {
            return Some("a non-GET method or a request body");
        }
    } else if s.starts_with("--header")
        || s.starts_with("--user")
        || s.starts_with("--password")
        || s.starts_with("--http-user")
        || s.starts_with("--http-password")
        || s.starts_with("--load-cookies")
        || s == "-e"
        || s.starts_with("--execute")
        || s.starts_with("--use-askpass")
    {
        return Some("credentials, headers or wgetrc commands");
    }
    None
}

fn aria2c_writes(s: &str) -> Option<&'static str> {
    if s.starts_with("--header")
        || s.starts_with("--http-user")
        || s.starts_with("--http-passwd")
        || s == "-m"
        || s == "-c"
    {
        return Some("credentials or a non-GET method");
    }
    None
}

/// httpie and xh: `http POST url`, `key=value` bodies, `-a user:pass`, raw headers. `i` is
/// the argument's position in `lower`.
fn httpie_writes(s: &str, i: usize, lower: &[String]) -> Option<&'static str> {
    // httpie / xh
    if matches!(s, "post" | "put" | "patch" | "delete")
        && i == lower
            .iter()
            .position(|x| !x.starts_with('-'))
            .unwrap_or(usize::MAX)
    {
        return Some("a non-GET method");
    } else if matches!(
        s,
        "-a" | "--auth" | "-f" | "--form" | "--raw" | "--auth-type" | "-a="
    ) || s.starts_with("--auth")
        || s.starts_with("--raw")
    {
        return Some("credentials or a request body");
    } else if !s.starts_with('-')
        && !s.contains("://")
        && (s.contains(":=")
            || (!s.contains("==") && s.contains('=') && !s.contains('/'))
            || s.contains('@') && !s.contains('.'))
    {
        return Some("a request body");
    } else if s.starts_with("authorization:") || s.starts_with("cookie:") || s.contains("token:") {
        return Some("an authorization header");
    }
    None
}

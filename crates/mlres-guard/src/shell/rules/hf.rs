//! The Hugging Face CLIs, `hf` and `huggingface-cli` (also reached as `python -m
//! huggingface_hub…`). Allowed: help, version, `env`, `download`, `whoami`, the cache
//! commands, `auth`/`auth whoami`/`auth list`, and listing or showing models, datasets,
//! spaces, papers, collections and discussions. Everything else (jobs, endpoints, uploads,
//! repo changes, `auth token`, …) spends or writes outside the broker, or prints the token,
//! and is denied with the sanctioned `mlres` command to use instead.

use super::skip_all_opts;
use crate::shell::{Analyzer, Arg, R, Stdin, deny_obf};
use crate::{SANCTIONED_HUB, SANCTIONED_SPEND};

pub(super) fn hf(_an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let with_val = ["--token", "--endpoint"];
    let pos: Vec<String> = skip_all_opts(rest, &with_val)
        .map(|a| a.s().to_ascii_lowercase())
        .collect();
    if rest.iter().any(|a| a.dynamic) && pos.is_empty() {
        return Err(deny_obf("the hf subcommand is built at run time"));
    }
    let sub = pos.first().map(String::as_str).unwrap_or("");
    let sub2 = pos.get(1).map(String::as_str).unwrap_or("");
    let readonly_list = |s2: &str| {
        matches!(
            s2,
            "" | "ls" | "list" | "info" | "search" | "show" | "get" | "card"
        )
    };
    let ok = match sub {
        "" | "help" | "version" | "env" | "download" | "whoami" | "scan-cache" | "delete-cache"
        | "cache" => true,
        "auth" => matches!(sub2, "" | "whoami" | "list"),
        "models" | "datasets" | "spaces" | "papers" | "collections" | "discussions" => {
            readonly_list(sub2)
        }
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let spend = matches!(sub, "jobs" | "endpoints" | "spaces" | "inference-endpoints");
    if sub == "auth" && sub2 == "token" {
        return Err(format!(
            "refused: `{prog} auth token` prints the HF token. Tokens never go to the agent; \
             `mlres` uses them for you"
        ));
    }
    let what = if sub == "jobs" {
        "HF Jobs are launched only through mlres (`mlres exp submit …` within the approved envelope)"
    } else {
        "it writes to or spends on the Hugging Face Hub outside the broker"
    };
    Err(format!(
        "refused: `{prog} {sub}{}{}`: {what}. {} \
         (read-only `{prog} download`, `{prog} auth whoami`, `{prog} cache …` and `… ls/info` stay available)",
        if sub2.is_empty() { "" } else { " " },
        sub2,
        if spend {
            SANCTIONED_SPEND
        } else {
            SANCTIONED_HUB
        }
    ))
}

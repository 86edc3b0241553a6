//! `git` and the GitHub CLI `gh`. Denied: pushing to the Hugging Face Hub (a Hub URL, a URL
//! built from `$HF_ENDPOINT`, or a remote named like `hf`/`huggingface`/`space`), `git lfs
//! push` to the Hub, adding or pointing a remote (or a `url.*.insteadOf`) at the Hub,
//! `git credential…`, `gh auth token` and `gh auth … --show-token` (they print
//! credentials), and `git filter-branch` and `git push --receive-pack/--exec` (they run
//! arbitrary commands). Settings that run commands (`-c core.pager=…`, `alias.x=!…`,
//! `core.sshCommand`, filters, …) have their command analysed; the payloads of `git submodule
//! foreach`, `git bisect run` and `git rebase --exec` are analysed too. Everything else,
//! including pushes to ordinary remotes, has no rule.

use super::skip_all_opts;
use crate::SANCTIONED_HUB;
use crate::code::mentions_hub_host;
use crate::shell::{Analyzer, Arg, R, Stdin, deny_obf};

/// Remote names that can only mean the Hub.
const HUB_REMOTES: &[&str] = &[
    "hf",
    "huggingface",
    "hub",
    "hf-hub",
    "space",
    "spaces",
    "hf-space",
];

pub(super) fn git(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let i = global_options(an, rest)?;
    let Some(sub) = rest.get(i) else {
        return Ok(());
    };
    let args = &rest[i + 1..];
    let hub_arg = args
        .iter()
        .find(|a| mentions_hub_host(a.s()) || a.vars.iter().any(|v| v == "HF_ENDPOINT"));
    match sub.s() {
        "push" => push(hub_arg, args),
        "lfs" => {
            if args.first().is_some_and(|a| a.s() == "push") && hub_arg.is_some() {
                return Err(format!(
                    "refused: `git lfs push` to the Hugging Face Hub. {SANCTIONED_HUB}"
                ));
            }
            Ok(())
        }
        "remote" => {
            let verb = args.first().map(|a| a.s()).unwrap_or("");
            if matches!(verb, "add" | "set-url") && hub_arg.is_some() {
                return Err(format!(
                    "refused: adds a git remote on the Hugging Face Hub. {SANCTIONED_HUB}"
                ));
            }
            Ok(())
        }
        "config" => {
            let pos: Vec<&Arg> =
                skip_all_opts(args, &["--file", "-f", "--blob", "--type", "--default"]).collect();
            if pos.len() >= 2 {
                let k = pos[0].s().to_string();
                let v = pos[1].clone();
                config_pair(an, &k, &v)?;
            }
            Ok(())
        }
        s if s.starts_with("credential") => Err(
            "refused: `git credential…` can print stored credentials. Credentials never go to the agent"
                .into(),
        ),
        "submodule" => {
            if let Some(p) = args.iter().position(|a| a.s() == "foreach") {
                let cmd: Vec<&Arg> = args[p + 1..].iter().filter(|a| !a.is_opt()).collect();
                if cmd.iter().any(|a| a.dynamic) {
                    return Err(deny_obf(
                        "`git submodule foreach` with a runtime-built command",
                    ));
                }
                let joined = cmd
                    .iter()
                    .map(|a| a.s().to_string())
                    .collect::<Vec<_>>()
                    .join(" ");
                return an.analyze_shell_string(&joined, true);
            }
            Ok(())
        }
        "bisect" => {
            if args.first().is_some_and(|a| a.s() == "run") {
                return an.argv(&args[1..], &Stdin::Tty);
            }
            Ok(())
        }
        "rebase" => {
            for (k, a) in args.iter().enumerate() {
                if a.s() == "-x" || a.s() == "--exec" {
                    an.shell_payload(args.get(k + 1))?;
                } else if let Some(v) = a.s().strip_prefix("--exec=") {
                    an.analyze_shell_string(v, true)?;
                }
            }
            Ok(())
        }
        "filter-branch" => Err(deny_obf(
            "`git filter-branch` runs arbitrary filter commands",
        )),
        _ => Ok(()),
    }
}

/// Skips git's global options (checking `-c key=value` settings) and returns the index of
/// the subcommand.
fn global_options(an: &mut Analyzer<'_>, rest: &[Arg]) -> Result<usize, String> {
    let mut i = 0;
    while i < rest.len() {
        let s = rest[i].s();
        if s == "-c" {
            if let Some(kv) = rest.get(i + 1)
                && let Some((k, v)) = kv.s().split_once('=')
            {
                let val = Arg {
                    text: v.to_string(),
                    ..kv.clone()
                };
                config_pair(an, k, &val)?;
            }
            i += 2;
            continue;
        }
        if matches!(
            s,
            "-C" | "--git-dir" | "--work-tree" | "--namespace" | "--config-env" | "--exec-path"
        ) {
            i += 2;
            continue;
        }
        if rest[i].is_opt() {
            i += 1;
            continue;
        }
        break;
    }
    Ok(i)
}

/// `git push`: not to the Hub, not to a remote named at run time or like the Hub, and no
/// `--receive-pack`/`--exec`.
fn push(hub_arg: Option<&Arg>, args: &[Arg]) -> R {
    if let Some(a) = hub_arg {
        return Err(format!(
            "refused: `git push` to the Hugging Face Hub ({}). {SANCTIONED_HUB}",
            a.s()
        ));
    }
    let pos: Vec<&Arg> = skip_all_opts(
        args,
        &["-o", "--push-option", "--repo", "--receive-pack", "--exec"],
    )
    .collect();
    if let Some(r) = pos.first() {
        if r.dynamic {
            return Err(deny_obf("`git push` to a remote named at run time"));
        }
        let name = r.s().to_ascii_lowercase();
        if HUB_REMOTES.contains(&name.as_str()) {
            return Err(format!(
                "refused: `git push {}` targets a Hugging Face remote. {SANCTIONED_HUB}",
                r.s()
            ));
        }
    }
    if args
        .iter()
        .any(|a| a.s().starts_with("--receive-pack") || a.s().starts_with("--exec"))
    {
        return Err(deny_obf(
            "`git push --receive-pack/--exec` runs an arbitrary command",
        ));
    }
    Ok(())
}

/// One git setting, from `git -c key=value` or `git config key value`.
fn config_pair(an: &mut Analyzer<'_>, key: &str, val: &Arg) -> R {
    let k = key.to_ascii_lowercase();
    let v = val.s();
    if (k.starts_with("remote.") && (k.ends_with(".url") || k.ends_with(".pushurl")))
        || (k.starts_with("url.") && (k.ends_with(".insteadof") || k.ends_with(".pushinsteadof")))
    {
        if mentions_hub_host(v) || k.contains("huggingface") || k.contains("hf.co") {
            return Err(format!(
                "refused: points a git remote at the Hugging Face Hub. {SANCTIONED_HUB}"
            ));
        }
        return Ok(());
    }
    let runs_cmd = k.starts_with("alias.")
        || matches!(
            k.as_str(),
            "core.sshcommand"
                | "core.pager"
                | "core.editor"
                | "core.fsmonitor"
                | "sequence.editor"
                | "diff.external"
                | "gpg.program"
                | "credential.helper"
        )
        || k.ends_with(".textconv")
        || k.starts_with("filter.");
    if runs_cmd {
        if val.dynamic {
            return Err(deny_obf(
                "a git setting that runs commands is built at run time",
            ));
        }
        let payload = v.strip_prefix('!').unwrap_or(v);
        if k.starts_with("alias.") && !v.starts_with('!') {
            return Ok(());
        }
        return an.analyze_shell_string(payload, false);
    }
    Ok(())
}

/// `gh auth token` and `gh auth … --show-token` print the GitHub token.
pub(super) fn gh(_an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let pos: Vec<&str> = rest.iter().filter(|a| !a.is_opt()).map(|a| a.s()).collect();
    if pos.first() == Some(&"auth")
        && (pos.get(1) == Some(&"token")
            || rest
                .iter()
                .any(|a| a.s() == "--show-token" || a.s() == "-t"))
    {
        return Err("refused: prints the GitHub token. Credentials never go to the agent".into());
    }
    Ok(())
}

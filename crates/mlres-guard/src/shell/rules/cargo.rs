//! `cargo`, when it would run or install mlres: `cargo run` of the `mlres` binary or package
//! (`--bin mlres`, `-p mlres`, a manifest under an `mlres` directory), `cargo run -- <mlres
//! subcommand>` (in the mlres workspace that is the broker, built from sources the agent can
//! edit), and `cargo install` of mlres to any root (a second broker, or one replacing the
//! installed binary). Other cargo commands have no rule.

use super::skip_all_opts;
use crate::shell::{Analyzer, Arg, R, Stdin};

/// mlres' subcommands: `cargo run -- approve` in the mlres workspace is `mlres approve`.
const MLRES_SUBCOMMANDS: &[&str] = &[
    "approve",
    "check",
    "data",
    "demo",
    "doctor",
    "exp",
    "guard",
    "hub",
    "init",
    "jobs",
    "ledger",
    "loop",
    "mcp",
    "setup",
    "train",
    "__supervise",
];

const REASON: &str = "an mlres built from source is not the broker the user installed (the agent \
     can edit what it builds). Run the installed `mlres` by name, e.g. `mlres loop status`";

/// Whether an option names the mlres binary or package (`--bin mlres`, `-p=mlres`,
/// `--manifest-path crates/mlres/Cargo.toml`, `--path crates/mlres`).
fn names_mlres(rest: &[Arg]) -> Option<String> {
    for (i, a) in rest.iter().enumerate() {
        let s = a.s();
        let (flag, value) = match s.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f, Some(v.to_string())),
            _ => (s, rest.get(i + 1).map(|n| n.s().to_string())),
        };
        let Some(v) = value else { continue };
        let is_mlres = match flag {
            "--bin" | "-p" | "--package" | "--example" => v == "mlres",
            "--manifest-path" | "--path" => v.split('/').any(|c| c == "mlres"),
            _ => false,
        };
        if is_mlres {
            return Some(format!("{flag} {v}"));
        }
    }
    None
}

/// `cargo run`/`cargo r` of mlres and `cargo install` of mlres; everything else passes.
pub(super) fn cargo(_an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let with_val = [
        "--bin",
        "-p",
        "--package",
        "--manifest-path",
        "--features",
        "-F",
        "--target",
        "--target-dir",
        "--profile",
        "-j",
        "--jobs",
        "--example",
        "--path",
        "--root",
        "--git",
        "--branch",
        "--tag",
        "--rev",
        "--version",
        "--registry",
        "--index",
        "--config",
        "-Z",
        "--color",
    ];
    let mut pos = skip_all_opts(rest, &with_val);
    // `cargo +nightly run`: the toolchain comes first.
    let sub = pos
        .find(|a| !a.s().starts_with('+'))
        .map(|a| a.s().to_string())
        .unwrap_or_default();
    match sub.as_str() {
        "run" | "r" => {
            if let Some(what) = names_mlres(rest) {
                return Err(format!("refused: `cargo run {what}` runs mlres; {REASON}"));
            }
            let after = rest.iter().position(|a| a.s() == "--");
            if let Some(first) = after.and_then(|i| rest.get(i + 1))
                && MLRES_SUBCOMMANDS.contains(&first.s())
            {
                return Err(format!(
                    "refused: `cargo run -- {}` runs mlres built from the workspace; {REASON}",
                    first.s()
                ));
            }
            Ok(())
        }
        "install" => {
            let crate_named = pos.any(|a| a.s() == "mlres");
            if let Some(what) = names_mlres(rest).or(crate_named.then(|| "mlres".to_string())) {
                return Err(format!(
                    "refused: `cargo install {what}` installs an mlres of the agent's making; \
                     {REASON}"
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

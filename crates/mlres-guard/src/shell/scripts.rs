//! Scripts the command runs from files: `bash x.sh`, `sh ./x.sh`, `source env.sh`, `./x.sh`,
//! `python3 x.py`, `uv run x.py`, `torchrun train.py`. The hook sees each tool call on its own,
//! so a helper the agent wrote earlier would otherwise run unseen. Its text comes from what
//! this same command wrote into it (a heredoc, `echo … > x.sh`) or else from the
//! [`crate::Machine`] (the binary reads the file), and is analysed with the same rules as a
//! command: a shell script as shell, anything else (by interpreter or shebang) as code, with
//! the rules for whole programs (`crate::code::scan_script`), which leave out what ordinary
//! training scripts do (read `HF_TOKEN` for a gated download, copy the environment for a
//! subprocess, call `push_to_hub`). A script that is missing or unreadable is not analysed
//! and not denied: that is not proof of safety, but an ordinary `python3 train.py` must not be
//! refused for it, and Claude Code's own permissions still apply.

use super::{Analyzer, Arg, DYN, R};
use crate::FileView;
use crate::code;

/// Most script files one decision reads.
const MAX_SCRIPTS: usize = 32;

/// How a script's text is analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    /// Shell, run by a new shell (its `cd`s do not carry over).
    Shell,
    /// Shell, sourced into this one (`source`, `.`): its assignments and `cd`s carry over.
    Sourced,
    /// Interpreter code (Python, Node, Ruby, Perl, …).
    Code,
}

impl Analyzer<'_> {
    /// The text of the script `a` names: what this command wrote into it, else what the
    /// [`crate::Machine`] finds on disk. `None` when it cannot be known.
    fn script_text(&mut self, a: &Arg) -> Option<(String, String)> {
        if a.dynamic || a.procsub || a.glob {
            return None;
        }
        let path = self.pe.norm(&a.text.replace(DYN, ""));
        if let Some(t) = self.seen_files.get(&path) {
            return Some((path, t.clone()));
        }
        if !path.starts_with('/') || self.scripts_read >= MAX_SCRIPTS || system_path(&path) {
            return None;
        }
        match self.file_view(&path) {
            FileView::Text(t) => Some((path, t)),
            _ => None,
        }
    }

    /// What the [`crate::Machine`] finds at `path`, asked once per path and decision.
    pub(crate) fn file_view(&mut self, path: &str) -> FileView {
        if let Some(v) = self.files_seen.get(path) {
            return v.clone();
        }
        self.scripts_read += 1;
        let v = self.machine.file(path);
        self.files_seen.insert(path.to_string(), v.clone());
        v
    }

    /// Analyses the script `a` names, if its text can be known, as `lang`.
    pub(crate) fn run_script_file(&mut self, a: &Arg, lang: Lang) -> R {
        let Some((path, text)) = self.script_text(a) else {
            return Ok(());
        };
        self.analyze_script(&path, &text, lang)
    }

    /// Runs a program by path (`./x.sh`, `/tmp/tool`): a text file is a script in the
    /// language its `#!` line names (shell without one).
    pub(crate) fn run_program_file(&mut self, name: &Arg) -> R {
        let Some((path, text)) = self.script_text(name) else {
            return Ok(());
        };
        let lang = match shebang(&text) {
            Some(interp) if !is_shell(&interp) => Lang::Code,
            _ => Lang::Shell,
        };
        self.analyze_script(&path, &text, lang)
    }

    fn analyze_script(&mut self, path: &str, text: &str, lang: Lang) -> R {
        let shown = path.rsplit('/').next().unwrap_or(path).to_string();
        let wrap = |e: String| {
            let e = e.trim_start_matches("refused: ").to_string();
            format!("the script `{shown}` would run something the guard refuses: {e}")
        };
        match lang {
            Lang::Code => code::scan_script(text, self).map_err(wrap),
            Lang::Sourced => self.analyze_shell_string(text, true).map_err(wrap),
            Lang::Shell => {
                let saved = (self.pe.cwd.clone(), self.cwd_unknown);
                let r = self.analyze_shell_string(text, true).map_err(wrap);
                (self.pe.cwd, self.cwd_unknown) = saved;
                r
            }
        }
    }
}

/// Paths under the system's own directories: programs there are the system's, not scripts
/// the agent wrote (and reading them on every call would cost time for nothing).
fn system_path(p: &str) -> bool {
    [
        "/usr/",
        "/bin/",
        "/sbin/",
        "/lib",
        "/etc/",
        "/proc/",
        "/sys/",
        "/dev/",
        "/nix/store/",
        "/snap/",
    ]
    .iter()
    .any(|d| p.starts_with(d))
}

/// The interpreter a `#!` line names (`/usr/bin/env python3` is `python3`).
fn shebang(text: &str) -> Option<String> {
    let first = text.lines().next()?.strip_prefix("#!")?.trim();
    let mut words = first.split_whitespace();
    let mut prog = words.next()?.rsplit('/').next()?.to_string();
    if prog == "env" {
        prog = words
            .find(|w| !w.starts_with('-') && !w.contains('='))?
            .rsplit('/')
            .next()?
            .to_string();
    }
    Some(prog)
}

fn is_shell(interp: &str) -> bool {
    matches!(
        interp,
        "sh" | "bash" | "zsh" | "dash" | "ksh" | "mksh" | "ash" | "busybox"
    )
}

#[cfg(test)]
mod tests {
    use super::shebang;

    #[test]
    fn shebangs() {
        assert_eq!(shebang("#!/bin/bash\nx").as_deref(), Some("bash"));
        assert_eq!(
            shebang("#!/usr/bin/env python3\n").as_deref(),
            Some("python3")
        );
        assert_eq!(shebang("#!/usr/bin/env -S uv run\n").as_deref(), Some("uv"));
        assert_eq!(shebang("echo hi\n"), None);
    }
}

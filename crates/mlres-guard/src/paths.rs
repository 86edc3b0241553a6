//! Textual path classification: credential stores, the mlres state directory and
//! files whose modification would weaken the guard. Purely textual: symlinks cannot be
//! resolved without IO, so paths are normalised (`~`, `$HOME`, `.`/`..`, `//`) and then
//! compared component by component. Globs are matched against representative concrete
//! paths, so `~/.cache/hugging*/tok*` is recognised as the HF token file.

use crate::GuardContext;

/// Everything needed to normalise and classify a path.
#[derive(Debug, Clone)]
pub(crate) struct PathEnv {
    /// Home directory as a normalised absolute string, or `None` when unknown.
    pub home: Option<String>,
    /// Working directory of the command (follows static `cd`s), if known.
    pub cwd: Option<String>,
    pub project: Option<String>,
    pub state_dir: String,
    pub plugin_dir: Option<String>,
    pub claude_dir: Option<String>,
    /// The installed broker's path (see `GuardContext::broker_exe`).
    pub broker_exe: Option<String>,
}

fn p2s(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

impl PathEnv {
    pub(crate) fn new(ctx: &GuardContext, cwd: Option<&str>) -> Self {
        let home = ctx.home.as_deref().map(p2s).map(|h| lexical(&h));
        let mut env = PathEnv {
            home,
            cwd: None,
            project: None,
            state_dir: String::new(),
            plugin_dir: None,
            claude_dir: None,
            broker_exe: None,
        };
        env.project = ctx.project_dir.as_deref().map(p2s).map(|p| env.norm(&p));
        env.cwd = cwd
            .map(|c| env.norm(c))
            .filter(|c| c.starts_with('/'))
            .or_else(|| env.project.clone());
        let sd = p2s(&ctx.state_dir);
        env.state_dir = if sd.trim().is_empty() {
            String::new()
        } else {
            env.norm(&sd)
        };
        env.plugin_dir = ctx.plugin_dir.as_deref().map(p2s).map(|p| env.norm(&p));
        env.broker_exe = ctx.broker_exe.as_deref().map(p2s).map(|p| env.norm(&p));
        env.claude_dir = ctx
            .claude_config_dir
            .as_deref()
            .map(p2s)
            .map(|p| env.norm(&p))
            .or_else(|| env.home.as_ref().map(|h| format!("{h}/.claude")));
        env
    }

    /// Normalises a path textually: `~`, `file://`, relative-to-cwd, `.`/`..`, `//`.
    pub(crate) fn norm(&self, raw: &str) -> String {
        let mut p = raw.trim();
        if let Some(rest) = p.strip_prefix("file://") {
            p = rest;
        }
        let expanded = if p == "~" || p.starts_with("~/") {
            match &self.home {
                Some(h) => format!("{h}{}", &p[1..]),
                None => p.to_string(),
            }
        } else if !p.starts_with('/') {
            match &self.cwd {
                Some(c) if !p.is_empty() => format!("{c}/{p}"),
                _ => p.to_string(),
            }
        } else {
            p.to_string()
        };
        lexical(&expanded)
    }

    fn homed(&self, tail: &str) -> Option<String> {
        self.home.as_ref().map(|h| format!("{h}/{tail}"))
    }

    /// Directories wholly or partly made of secrets (ancestor checks for recursive reads).
    fn secret_dirs(&self) -> Vec<String> {
        let mut v: Vec<String> = [
            ".cache/huggingface",
            ".huggingface",
            ".ssh",
            ".aws",
            ".config/gh",
            ".claude",
            ".claude.json",
            ".netrc",
            ".git-credentials",
            ".docker",
            ".gnupg",
            ".kaggle",
            ".pypirc",
            ".config/gcloud",
            ".local/state/mlres",
        ]
        .iter()
        .filter_map(|t| self.homed(t))
        .collect();
        v.push(self.state_dir.clone());
        if let Some(c) = &self.claude_dir {
            v.push(c.clone());
        }
        v.retain(|s| !s.is_empty());
        v
    }

    /// Directories whose recursive modification would damage the guard or the ledger.
    fn protected_dirs(&self) -> Vec<String> {
        let mut v = vec![self.state_dir.clone()];
        if let Some(c) = &self.claude_dir {
            v.push(c.clone());
        }
        if let Some(p) = &self.plugin_dir {
            v.push(p.clone());
        }
        if let Some(h) = self.homed(".local/state/mlres") {
            v.push(h);
        }
        v.retain(|s| !s.is_empty());
        v
    }

    /// Representative concrete secret files for glob matching.
    fn secret_examples(&self) -> Vec<String> {
        let mut v = Vec::new();
        for t in SECRET_TAILS {
            if let Some(h) = self.homed(t) {
                v.push(h);
            }
        }
        for base in [&self.cwd, &self.project].into_iter().flatten() {
            v.push(format!("{base}/.env"));
            v.push(format!("{base}/.env.local"));
        }
        for f in STATE_EXAMPLES {
            v.push(format!("{}/{f}", self.state_dir));
        }
        v.push("/proc/self/environ".into());
        v.push("/proc/1/environ".into());
        v
    }

    /// Why reading `raw` (a resolved word) is refused, if it is.
    pub(crate) fn secret_read(&self, raw: &str, glob: bool) -> Option<&'static str> {
        let p = self.norm(raw);
        if glob && has_glob(&p) {
            if self.under_any_glob(&p, std::slice::from_ref(&self.state_dir)) {
                return Some(STATE);
            }
            let examples = self.secret_examples();
            for ex in &examples {
                if glob_path_match(&p, ex) {
                    return Some(classify_secret(ex, &self.state_dir).unwrap_or(CRED));
                }
            }
            for tail in SECRET_TAILS {
                if glob_suffix_match(&p, tail) {
                    return Some(classify_secret(tail, "").unwrap_or(CRED));
                }
            }
            if glob_suffix_match(&p, "proc/self/environ") {
                return Some(ENVDUMP);
            }
            return None;
        }
        if inside(&p, &self.state_dir) || comps_contain(&p, &[".local", "state", "mlres"]) {
            return Some(STATE);
        }
        classify_secret(&p, &self.state_dir)
    }

    /// Whether `raw` names a directory that is, or contains, a secret store.
    pub(crate) fn contains_secrets(&self, raw: &str, glob: bool) -> bool {
        let p = self.norm(raw);
        let dirs = self.secret_dirs();
        if glob && has_glob(&p) {
            return dirs
                .iter()
                .any(|d| glob_prefix_match(&p, d) || glob_path_is_under(&p, d));
        }
        if p == "/" {
            return true;
        }
        dirs.iter().any(|d| inside(d, &p) || inside(&p, d))
    }

    /// Why writing/deleting `raw` is refused, if it is.
    pub(crate) fn protected_write(&self, raw: &str, glob: bool) -> Option<&'static str> {
        let p = self.norm(raw);
        if glob && has_glob(&p) {
            let dirs = self.protected_dirs();
            if dirs.iter().any(|d| glob_path_is_under(&p, d)) {
                return Some(SETTINGS_WRITE);
            }
            for ex in WRITE_EXAMPLES {
                if glob_suffix_match(&p, ex) {
                    return self.protected_write(ex, false);
                }
            }
            return None;
        }
        if inside(&p, &self.state_dir) || comps_contain(&p, &[".local", "state", "mlres"]) {
            return Some(STATE_WRITE);
        }
        if let Some(c) = &self.claude_dir
            && inside(&p, c)
        {
            return Some(SETTINGS_WRITE);
        }
        if let Some(pl) = &self.plugin_dir
            && inside(&p, pl)
        {
            return Some(PLUGIN_WRITE);
        }
        let comps: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
        let base = comps.last().copied().unwrap_or("");
        for (i, c) in comps.iter().enumerate() {
            if *c == ".claude" && comps.get(i + 1).is_some_and(|n| *n != "worktrees") {
                return Some(SETTINGS_WRITE);
            }
            if *c == ".claude-plugin" {
                return Some(PLUGIN_WRITE);
            }
            if *c == ".git" && matches!(comps.get(i + 1), Some(&"hooks") | Some(&"config")) {
                return Some(GIT_WRITE);
            }
        }
        if base == ".claude" || base.starts_with(".claude.json") || base == ".mcp.json" {
            return Some(SETTINGS_WRITE);
        }
        if base == "hooks.json" {
            return Some(PLUGIN_WRITE);
        }
        if p.starts_with("/etc/claude-code") || p.contains("Application Support/ClaudeCode") {
            return Some(SETTINGS_WRITE);
        }
        if base == "mlres" {
            return Some(FAKE_BROKER);
        }
        if STARTUP_FILES.contains(&base)
            || p.starts_with("/etc/profile")
            || p == "/etc/bash.bashrc"
            || p.starts_with("/etc/environment")
            || comps.ends_with(&[".config", "fish", "config.fish"])
        {
            return Some(STARTUP_WRITE);
        }
        if comps.ends_with(&["runs", "ledger.jsonl"]) {
            return Some(LEDGER_VIEW_WRITE);
        }
        if let Some(proj) = &self.project
            && inside(&p, &format!("{proj}/runs"))
        {
            return Some(EXPORTS_WRITE);
        }
        if classify_secret(&p, &self.state_dir).is_some() && !is_env_file(base) {
            return Some(CRED_WRITE);
        }
        None
    }

    /// Whether `raw` is an ancestor-or-equal of a protected directory (recursive deletes).
    pub(crate) fn contains_protected(&self, raw: &str, glob: bool) -> bool {
        let p = self.norm(raw);
        let dirs = self.protected_dirs();
        if glob && has_glob(&p) {
            return dirs.iter().any(|d| glob_prefix_match(&p, d));
        }
        p == "/" || dirs.iter().any(|d| inside(d, &p))
    }

    fn under_any_glob(&self, p: &str, dirs: &[String]) -> bool {
        dirs.iter()
            .any(|d| !d.is_empty() && glob_path_is_under(p, d))
    }
}

pub(crate) const CRED: &str = "it reads a credential store (HF token, Claude/GitHub/cloud credentials, SSH keys or a .env file)";
pub(crate) const STATE: &str = "it reads the mlres state directory (ledger, signing key, approvals), which only the mlres broker may touch";
pub(crate) const ENVDUMP: &str = "it dumps a process environment, which holds tokens";
pub(crate) const STATE_WRITE: &str =
    "it modifies the mlres state directory, which only the mlres broker may write";
pub(crate) const SETTINGS_WRITE: &str =
    "it modifies Claude Code settings/configuration (hooks and permissions live there)";
pub(crate) const PLUGIN_WRITE: &str = "it modifies the plugin, its hooks or MCP configuration (hooks.json, .claude-plugin, .mcp.json)";
pub(crate) const GIT_WRITE: &str =
    "it modifies git hooks or .git/config, which run code or add remotes outside the guard's view";
pub(crate) const FAKE_BROKER: &str =
    "it writes a file named `mlres`, which could shadow the real broker";
pub(crate) const STARTUP_WRITE: &str = "it modifies a shell startup file, which could change PATH or the environment of later commands";
pub(crate) const EXPORTS_WRITE: &str = "the project's runs/ holds mlres' exports (ledger.jsonl, \
     summary.md, .mlres-ledger.json), which mlres regenerates from the signed ledger and alone \
     writes. Keep notes elsewhere (e.g. notes/); `mlres ledger export` regenerates the exports";
pub(crate) const LEDGER_VIEW_WRITE: &str = "runs/ledger.jsonl is a view regenerated by mlres from the signed ledger; editing it only confuses humans";
pub(crate) const CRED_WRITE: &str =
    "it overwrites a credential store (e.g. swapping the HF token for another account)";

/// Concrete secret files under the home directory (also used as suffix tails).
const SECRET_TAILS: &[&str] = &[
    ".cache/huggingface/token",
    ".cache/huggingface/stored_tokens",
    ".huggingface/token",
    ".claude/.credentials.json",
    ".claude.json",
    ".config/gh/hosts.yml",
    ".netrc",
    ".git-credentials",
    ".config/git/credentials",
    ".aws/credentials",
    ".ssh/id_rsa",
    ".ssh/id_ed25519",
    ".ssh/id_ecdsa",
    ".ssh/id_dsa",
    ".docker/config.json",
    ".pypirc",
    ".kaggle/kaggle.json",
    ".config/gcloud/credentials.db",
    ".config/gcloud/access_tokens.db",
    ".config/gcloud/application_default_credentials.json",
];

const STATE_EXAMPLES: &[&str] = &[
    "ledger.db",
    "ledger.sqlite",
    "ledger.sqlite3",
    "key",
    "ledger.key",
    "hmac.key",
    "approvals",
    "approvals.json",
    "state.json",
];

const WRITE_EXAMPLES: &[&str] = &[
    ".claude/settings.json",
    ".claude/settings.local.json",
    ".mcp.json",
    "hooks/hooks.json",
    ".claude-plugin/plugin.json",
    ".bashrc",
    ".profile",
    ".zshrc",
    ".git/hooks/pre-commit",
    "runs/ledger.jsonl",
    "runs/summary.md",
];

const STARTUP_FILES: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".kshrc",
    ".mkshrc",
    ".envrc",
    ".inputrc",
];

pub(crate) fn is_env_file(base: &str) -> bool {
    let lower = base.to_ascii_lowercase();
    let benign = [".example", ".sample", ".template", ".dist", ".defaults"];
    if benign.iter().any(|b| lower.ends_with(b)) {
        return false;
    }
    lower == ".env" || lower.starts_with(".env.") || (lower.ends_with(".env") && lower.len() > 4)
}

/// Classifies a literal (normalised) path as a secret, by suffix and by name rules.
fn classify_secret(p: &str, state_dir: &str) -> Option<&'static str> {
    if !state_dir.is_empty() && inside(p, state_dir) {
        return Some(STATE);
    }
    let comps: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    let n = comps.len();
    let base = comps.last().copied().unwrap_or("");
    let parent = if n >= 2 { comps[n - 2] } else { "" };
    if n >= 2 && comps[0] == "proc" && base == "environ" {
        return Some(ENVDUMP);
    }
    for tail in SECRET_TAILS {
        let t: Vec<&str> = tail.split('/').collect();
        if comps.ends_with(&t) {
            return Some(CRED);
        }
    }
    if parent == "huggingface" && (base == "token" || base == "stored_tokens") {
        return Some(CRED);
    }
    if base.starts_with(".claude.json") || base == ".credentials.json" || base == "_netrc" {
        return Some(CRED);
    }
    if parent == ".ssh" {
        let public = base.ends_with(".pub")
            || matches!(
                base,
                "config" | "known_hosts" | "known_hosts.old" | "authorized_keys"
            );
        if !public {
            return Some(CRED);
        }
    }
    if comps.contains(&".gnupg") && base != ".gnupg" {
        return Some(CRED);
    }
    if parent == ".aws" && base != "config" {
        return Some(CRED);
    }
    if comps.contains(&"gcloud")
        && (comps.contains(&"legacy_credentials")
            || matches!(
                base,
                "credentials.db" | "access_tokens.db" | "application_default_credentials.json"
            ))
    {
        return Some(CRED);
    }
    if base == "hosts.yml" && parent == "gh" {
        return Some(CRED);
    }
    if is_env_file(base) {
        return Some(CRED);
    }
    None
}

/// Lexical normalisation: collapse `//` and `.`, resolve `..` textually.
pub(crate) fn lexical(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !abs {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    if abs {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// `p` equals `dir` or lies under it.
pub(crate) fn inside(p: &str, dir: &str) -> bool {
    if dir.is_empty() || dir == "." {
        return false;
    }
    if dir == "/" {
        return p.starts_with('/');
    }
    p == dir || (p.starts_with(dir) && p.as_bytes().get(dir.len()) == Some(&b'/'))
}

fn comps_contain(p: &str, seq: &[&str]) -> bool {
    let comps: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    comps.windows(seq.len()).any(|w| w == seq)
}

pub(crate) fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Single-component glob match (`*`, `?`, `[...]`, `[!...]`).
pub(crate) fn fnmatch(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matcher with star backtracking; bounded by |p|*|n|.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, len)) = class_match(&p[pi..], n[ni]) {
                        if matched {
                            pi += len;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn class_match(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let neg = matches!(p.get(1), Some('!') | Some('^'));
    if neg {
        i += 1;
    }
    let start = i;
    let mut hit = false;
    while i < p.len() {
        if p[i] == ']' && i > start {
            return Some((hit != neg, i + 1));
        }
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

fn split(p: &str) -> Vec<&str> {
    p.split('/').filter(|c| !c.is_empty()).collect()
}

/// Component-wise glob match of whole paths; `**` matches any number of components.
fn comps_match(g: &[&str], c: &[&str]) -> bool {
    match g.first() {
        None => c.is_empty(),
        Some(&"**") => (0..=c.len()).any(|k| comps_match(&g[1..], &c[k..])),
        Some(first) => !c.is_empty() && fnmatch(first, c[0]) && comps_match(&g[1..], &c[1..]),
    }
}

pub(crate) fn glob_path_match(glob: &str, path: &str) -> bool {
    if glob.starts_with('/') != path.starts_with('/') {
        return false;
    }
    comps_match(&split(glob), &split(path))
}

/// The glob's last components match the whole `tail` (relative secret path).
fn glob_suffix_match(glob: &str, tail: &str) -> bool {
    let g = split(glob);
    let t = split(tail);
    if g.contains(&"**") {
        return (0..=g.len()).any(|k| comps_match(&g[k..], &t)) || comps_match(&g, &t);
    }
    g.len() >= t.len() && comps_match(&g[g.len() - t.len()..], &t)
}

/// The glob could name `dir` or one of its ancestors.
fn glob_prefix_match(glob: &str, dir: &str) -> bool {
    if !glob.starts_with('/') {
        return false;
    }
    let g = split(glob);
    let d = split(dir);
    if g.contains(&"**") {
        return true;
    }
    g.len() <= d.len() && comps_match(&g, &d[..g.len()])
}

/// The glob names something under (or equal to) `dir`.
fn glob_path_is_under(glob: &str, dir: &str) -> bool {
    if !glob.starts_with('/') || dir.is_empty() {
        return false;
    }
    let g = split(glob);
    let d = split(dir);
    if let Some(pos) = g.iter().position(|c| *c == "**") {
        return pos <= d.len() && comps_match(&g[..pos], &d[..pos]);
    }
    g.len() >= d.len() && comps_match(&g[..d.len()], &d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_basics() {
        assert!(fnmatch("tok*", "token"));
        assert!(fnmatch("hugging*", "huggingface"));
        assert!(fnmatch("t?ken", "token"));
        assert!(fnmatch("[st]oken", "token"));
        assert!(!fnmatch("[!t]oken", "token"));
        assert!(!fnmatch("tok", "token"));
        assert!(fnmatch("*", ".env"));
    }

    #[test]
    fn lexical_resolves_dots() {
        assert_eq!(lexical("/a/b/../c//./d"), "/a/c/d");
        assert_eq!(lexical("/../x"), "/x");
        assert_eq!(lexical("a/../../b"), "../b");
    }

    #[test]
    fn globs_match_paths() {
        assert!(glob_path_match(
            "/h/.cache/hugging*/tok*",
            "/h/.cache/huggingface/token"
        ));
        assert!(glob_path_match(
            "/h/**/token",
            "/h/.cache/huggingface/token"
        ));
        assert!(!glob_path_match(
            "/h/*/token",
            "/h/.cache/huggingface/token"
        ));
        assert!(glob_suffix_match("x/.c*/h*/t*", ".cache/huggingface/token"));
    }
}

//! Path checks shared by the walker (redirect targets) and the rules (arguments): reading
//! credential stores or the mlres state, writing the guard's configuration or the state,
//! and recursive reads or changes that would reach them. The classification itself is
//! textual and lives in `crate::paths`.

use super::{Analyzer, Arg, DYN, R};

impl Analyzer<'_> {
    pub(super) fn path_candidates(a: &Arg) -> Vec<String> {
        let t = a.text.replace(DYN, "");
        let mut v = vec![t.clone()];
        if a.brace {
            v.extend(brace_expand(&t, 0));
        }
        if let Some(rest) = t.strip_prefix('@') {
            v.push(rest.to_string());
        }
        if let Some((_, val)) = t.split_once('=') {
            v.push(val.to_string());
            if let Some(r) = val.strip_prefix('@') {
                v.push(r.to_string());
            }
        }
        if t.starts_with('-') && !t.starts_with("--") && t.len() > 2 && t[2..].contains('/') {
            v.push(t[2..].to_string());
        }
        if let Some((_, p)) = t.split_once(':')
            && (p.starts_with('/') || p.starts_with('~'))
        {
            v.push(p.to_string());
        }
        v.retain(|s| !s.is_empty() && s.len() < 4096);
        v
    }

    pub(super) fn check_read(&self, a: &Arg) -> R {
        if a.text.contains(DYN) && a.text.trim_matches(DYN).is_empty() {
            return Ok(());
        }
        for c in Self::path_candidates(a) {
            if let Some(why) = self.pe.secret_read(&c, a.glob) {
                return Err(format!(
                    "refused: {why} (`{}`). mlres uses the credentials itself; if you need \
                     something that needs them, ask the user",
                    c
                ));
            }
            if self.cwd_unknown && !c.starts_with('/') {
                let base = c.rsplit('/').next().unwrap_or(&c);
                if matches!(
                    base,
                    "token"
                        | "stored_tokens"
                        | "credentials"
                        | "hosts.yml"
                        | ".credentials.json"
                        | ".netrc"
                        | ".git-credentials"
                        | "id_rsa"
                        | "id_ed25519"
                        | "id_ecdsa"
                ) {
                    return Err(format!(
                        "refused: `{c}` after a `cd` the guard cannot follow looks like a credential \
                         file. Use absolute paths"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Why a program that reads and prints a file's content (`mlres data inspect`) must not be
    /// given `a`: every path [`Self::check_read`] refuses, and also private keys and
    /// certificates (`*.pem`, `*.key`, `*.p12`, `id_*` keys anywhere) and files named like
    /// credential stores (`credentials`, `credentials.json`, `*.netrc`) outside the home
    /// directory's known places.
    pub(super) fn credential_like(&self, a: &Arg) -> Option<&'static str> {
        for c in Self::path_candidates(a) {
            if let Some(why) = self.pe.secret_read(&c, a.glob) {
                return Some(why);
            }
            let base = c.rsplit('/').next().unwrap_or(&c).to_ascii_lowercase();
            let keyish = [".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".ppk"]
                .iter()
                .any(|x| base.ends_with(x));
            let named = matches!(
                base.as_str(),
                "credentials" | "credentials.json" | "credentials.db" | "netrc" | "_netrc"
            ) || base.ends_with(".netrc")
                || (base.starts_with("id_") && !base.ends_with(".pub"));
            if keyish || named {
                return Some(crate::paths::CRED);
            }
        }
        None
    }

    pub(super) fn check_write(&self, a: &Arg) -> R {
        let t = a.text.replace(DYN, "");
        if t.is_empty() || t.starts_with("/dev/") {
            return Ok(());
        }
        if let Some(why) = self.pe.protected_write(&t, a.glob) {
            return Err(format!(
                "refused: {why} (`{t}`). Leave the guard's configuration, the mlres state and \
                 the ledger to mlres and the user"
            ));
        }
        if let Some(why) = self.pe.secret_read(&t, a.glob)
            && why == crate::paths::STATE
        {
            return Err(format!("refused: {why} (`{t}`)"));
        }
        Ok(())
    }

    pub(super) fn check_recursive_read(&self, a: &Arg) -> R {
        let t = a.text.replace(DYN, "");
        if t.is_empty() {
            return Ok(());
        }
        if self.pe.contains_secrets(&t, a.glob) {
            return Err(format!(
                "refused: a recursive read of `{t}` would include credential stores or the mlres \
                 state directory. Limit it to the project directory"
            ));
        }
        Ok(())
    }

    pub(super) fn check_recursive_write(&self, a: &Arg) -> R {
        let t = a.text.replace(DYN, "");
        if !t.is_empty() && self.pe.contains_protected(&t, a.glob) {
            return Err(format!(
                "refused: a recursive change to `{t}` would reach the mlres state directory or \
                 Claude Code/plugin settings"
            ));
        }
        Ok(())
    }
}

/// Expands `{a,b}` (nested, bounded) for path checks; `{1..3}` ranges are left as-is.
fn brace_expand(s: &str, depth: usize) -> Vec<String> {
    if depth > 4 {
        return vec![s.to_string()];
    }
    let b = s.as_bytes();
    let Some(open) = s.find('{') else {
        return vec![s.to_string()];
    };
    let mut level = 0;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => level += 1,
            b'}' => {
                level -= 1;
                if level == 0 {
                    close = Some(i);
                    break;
                }
            }
            b',' if level == 1 => commas.push(i),
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![s.to_string()];
    };
    if commas.is_empty() {
        return vec![s.to_string()];
    }
    let (pre, post) = (&s[..open], &s[close + 1..]);
    let mut parts = Vec::new();
    let mut start = open + 1;
    for c in commas.iter().copied().chain(std::iter::once(close)) {
        parts.push(&s[start..c]);
        start = c + 1;
    }
    let mut out = Vec::new();
    for p in parts {
        for e in brace_expand(&format!("{pre}{p}{post}"), depth + 1) {
            if out.len() < 64 {
                out.push(e);
            }
        }
    }
    out
}

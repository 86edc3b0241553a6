//! `mlres guard`: the Claude Code hook. Reads the hook JSON on stdin, asks the pure guard for a
//! verdict and prints the documented answer. Anything unexpected (unreadable stdin, a panic,
//! an unknown state directory) is a deny with exit 2: the hook fails closed. The few facts the
//! guard asks about the machine ([`HostMachine`]: a script's text, whether a program or a
//! process is mlres, the hosts the user allowed) are read here, lazily and bounded.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::cli::{Cli, GuardArgs};

/// Hook input larger than this is denied rather than parsed.
const MAX_INPUT: u64 = 16 << 20;

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn deny(reason: &str) -> u8 {
    eprintln!("[mlres guard] {reason}");
    2
}

pub fn run(cli: &Cli, a: &GuardArgs) -> u8 {
    let mut input = String::new();
    match std::io::stdin()
        .take(MAX_INPUT + 1)
        .read_to_string(&mut input)
    {
        Ok(n) if n as u64 > MAX_INPUT => return deny("hook input too large; denied"),
        Ok(_) => {}
        Err(e) => return deny(&format!("cannot read the hook input ({e}); denied")),
    }
    if a.post {
        // PostToolUse: flag tool output that carries secrets.
        return match std::panic::catch_unwind(|| mlres_guard::post_tool_use_redact(&input)) {
            Ok(Some(out)) => {
                println!("{out}");
                0
            }
            Ok(None) => 0,
            Err(_) => deny("internal error while checking tool output; blocked"),
        };
    }
    let state_dir = match crate::state_dir(&cli.state_dir) {
        Ok(d) => d,
        Err(_) => {
            return deny(
                "cannot determine the mlres state directory (set HOME or MLRES_STATE_DIR); denied",
            );
        }
    };
    let home = env_path("HOME");
    let ctx = mlres_guard::GuardContext {
        project_dir: env_path("CLAUDE_PROJECT_DIR").or_else(|| std::env::current_dir().ok()),
        claude_config_dir: env_path("CLAUDE_CONFIG_DIR")
            .or_else(|| home.as_ref().map(|h| h.join(".claude"))),
        home,
        state_dir,
        plugin_dir: env_path("CLAUDE_PLUGIN_ROOT"),
        broker_exe: std::env::current_exe().ok(),
    };
    let machine = HostMachine {
        exe: ctx.broker_exe.clone(),
        settings: settings_files(&ctx),
    };
    let result = std::panic::catch_unwind(|| {
        let verdict = mlres_guard::decide_with(&input, &ctx, &machine);
        mlres_guard::render(&verdict, "PreToolUse")
    });
    match result {
        Ok((code, out)) => {
            if !out.is_empty() {
                println!("{out}");
            }
            u8::try_from(code).unwrap_or(2)
        }
        Err(_) => deny("internal error in the guard; denied (fail closed)"),
    }
}

/// Largest script the guard reads (bigger ones are not analysed).
const MAX_SCRIPT: u64 = 1 << 20;
/// Largest program searched for the broker's marker.
const MAX_PROGRAM: u64 = 256 << 20;

/// What the guard may learn about this machine (see [`mlres_guard::Machine`]).
struct HostMachine {
    /// The running mlres (the installed broker).
    exe: Option<PathBuf>,
    /// Claude Code settings files whose `sandbox.network.allowedDomains` the user chose.
    settings: Vec<PathBuf>,
}

/// The settings files that hold the user's network allow list: managed, user, project and
/// local (the agent cannot write any of them; the guard refuses writes under `.claude`).
fn settings_files(ctx: &mlres_guard::GuardContext) -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("/etc/claude-code/managed-settings.json")];
    if let Some(c) = &ctx.claude_config_dir {
        v.push(c.join("settings.json"));
    }
    if let Some(p) = &ctx.project_dir {
        v.push(p.join(".claude/settings.json"));
        v.push(p.join(".claude/settings.local.json"));
    }
    v
}

/// Whether `hay` contains `needle`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    let mut i = 0;
    while let Some(p) = hay
        .get(i..)
        .and_then(|h| h.iter().position(|&b| b == first))
    {
        let s = i + p;
        if hay[s..].starts_with(needle) {
            return true;
        }
        i = s + 1;
    }
    false
}

impl HostMachine {
    /// Whether `meta` is the running mlres binary itself (a hard link, a symlink to it).
    fn is_exe(&self, meta: &std::fs::Metadata) -> bool {
        self.exe
            .as_ref()
            .and_then(|e| std::fs::metadata(e).ok())
            .is_some_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
    }

    /// A compiled program: mlres if it is the running binary or carries the broker's marker.
    fn program(&self, path: &Path, meta: &std::fs::Metadata) -> mlres_guard::FileView {
        let broker = self.is_exe(meta)
            || (meta.len() <= MAX_PROGRAM
                && std::fs::read(path)
                    .is_ok_and(|bytes| contains(&bytes, mlres_guard::BROKER_MARKER.as_bytes())));
        mlres_guard::FileView::Binary { broker }
    }
}

impl mlres_guard::Machine for HostMachine {
    fn file(&self, path: &str) -> mlres_guard::FileView {
        use mlres_guard::FileView;
        let path = Path::new(path);
        let Ok(meta) = std::fs::metadata(path) else {
            return FileView::Missing;
        };
        if !meta.is_file() {
            return FileView::Missing;
        }
        let Ok(file) = std::fs::File::open(path) else {
            return FileView::Unreadable;
        };
        let mut head = Vec::new();
        if file.take(MAX_SCRIPT + 1).read_to_end(&mut head).is_err() {
            return FileView::Unreadable;
        }
        let magic = head.get(..4).unwrap_or(&[]);
        let compiled = magic == b"\x7fELF"
            || matches!(
                magic,
                [0xcf, 0xfa, 0xed, 0xfe] | [0xfe, 0xed, 0xfa, 0xcf] | [0xca, 0xfe, 0xba, 0xbe]
            );
        if compiled || head.iter().take(8192).any(|&b| b == 0) {
            return self.program(path, &meta);
        }
        if head.len() as u64 > MAX_SCRIPT {
            return FileView::Unreadable;
        }
        FileView::Text(String::from_utf8_lossy(&head).into_owned())
    }

    fn is_broker_process(&self, pid: u32) -> bool {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        if let Ok(meta) = std::fs::metadata(proc.join("exe"))
            && self.is_exe(&meta)
        {
            return true;
        }
        let named = |p: &str| {
            let base = p.rsplit('/').next().unwrap_or(p);
            base == "mlres" || base.starts_with("mlres ")
        };
        if let Ok(link) = std::fs::read_link(proc.join("exe"))
            && named(&link.to_string_lossy())
        {
            return true;
        }
        std::fs::read(proc.join("cmdline")).is_ok_and(|c| {
            let argv0 = c.split(|&b| b == 0).next().unwrap_or(&[]);
            named(&String::from_utf8_lossy(argv0))
        })
    }

    fn allowed_web_hosts(&self) -> Vec<String> {
        let mut hosts = Vec::new();
        for f in &self.settings {
            let Ok(file) = std::fs::File::open(f) else {
                continue;
            };
            let mut text = String::new();
            if file.take(MAX_SCRIPT).read_to_string(&mut text).is_err() {
                continue;
            }
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if let Some(list) = v["sandbox"]["network"]["allowedDomains"].as_array() {
                hosts.extend(list.iter().filter_map(|h| h.as_str().map(str::to_string)));
            }
        }
        hosts
    }
}

#[cfg(test)]
mod tests {
    use super::contains;

    #[test]
    fn substring_search() {
        assert!(contains(b"xxmlres-brokerxx", b"mlres-broker"));
        assert!(!contains(b"mlres-broke", b"mlres-broker"));
        assert!(contains(b"abc", b""));
    }
}

//! `mlres guard`: the Claude Code hook. Reads the hook JSON on stdin, asks the pure guard for a
//! verdict and prints the documented answer. Anything unexpected (unreadable stdin, a panic,
//! an unknown state directory) is a deny with exit 2: the hook fails closed.

use std::io::Read;
use std::path::PathBuf;

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
    let result = std::panic::catch_unwind(|| {
        let verdict = mlres_guard::decide(&input, &ctx);
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

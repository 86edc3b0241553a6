//! Claude Code itself, `claude`. Nested agents must keep the guard: denied are launching with
//! permissions disabled (`--dangerously-skip-permissions`, `--permission-mode
//! bypassPermissions`), with other settings, setting sources, MCP configs or plugin
//! directories, changing `claude config`, adding or removing MCP servers, and installing,
//! removing or disabling plugins, and any argument with settings-like text that disables
//! hooks or permissions. Prompts given on the command line are scanned like an agent's prompt
//! for commands the guard would deny.

use crate::code;
use crate::shell::{Analyzer, Arg, R, Stdin};

pub(super) fn claude(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    for (i, a) in rest.iter().enumerate() {
        let s = a.s();
        let next = rest.get(i + 1).map(|n| n.s()).unwrap_or("");
        if s == "--dangerously-skip-permissions" || s == "--allow-dangerously-skip-permissions" {
            return Err("refused: launches Claude Code with permissions disabled. Nested agents must keep the guard and permission prompts".into());
        }
        if (s == "--permission-mode" && next.eq_ignore_ascii_case("bypassPermissions"))
            || s.eq_ignore_ascii_case("--permission-mode=bypassPermissions")
        {
            return Err("refused: launches Claude Code in bypassPermissions mode. Nested agents must keep the guard and permission prompts".into());
        }
        if matches!(
            s,
            "--settings"
                | "--setting-sources"
                | "--mcp-config"
                | "--strict-mcp-config"
                | "--plugin-dir"
                | "--bare"
        ) || s.starts_with("--settings=")
            || s.starts_with("--setting-sources=")
            || s.starts_with("--mcp-config=")
        {
            return Err(format!(
                "refused: `claude {s}` could load settings or tools without the guard. Launch nested agents with the project's settings"
            ));
        }
        code::guard_disabling_text(s)?;
    }
    let pos: Vec<&str> = rest.iter().filter(|a| !a.is_opt()).map(|a| a.s()).collect();
    match pos.first().copied() {
        Some("config") if matches!(pos.get(1).copied(), Some("set" | "add" | "remove")) => {
            return Err("refused: `claude config` changes from the agent could disable hooks or permissions. Ask the user".into());
        }
        Some("mcp")
            if matches!(
                pos.get(1).copied(),
                Some("add" | "add-json" | "remove" | "add-from-claude-desktop")
            ) =>
        {
            return Err(
                "refused: adding or removing MCP servers from the agent. Ask the user".into(),
            );
        }
        Some("plugin" | "plugins")
            if !matches!(pos.get(1).copied(), Some("list" | "validate") | None) =>
        {
            return Err("refused: installing, removing or disabling plugins from the agent could disable the guard. Ask the user".into());
        }
        _ => {}
    }
    for a in rest.iter().filter(|a| !a.is_opt()) {
        if a.dynamic {
            continue;
        }
        code::scan_prompt(a.s(), an)?;
    }
    Ok(())
}

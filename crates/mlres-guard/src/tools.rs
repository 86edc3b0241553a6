//! Rules for the non-Bash tools: file writes/edits, reads, web fetches, subagents and MCP.

use serde_json::{Map, Value};

use crate::code;
use crate::paths::{self, PathEnv};
use crate::shell::Analyzer;
use crate::{SANCTIONED_HUB, SANCTIONED_SPEND};

type R = Result<(), String>;

fn req_str<'v>(input: &'v Map<String, Value>, key: &str) -> Result<&'v str, String> {
    match input.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!(
            "malformed hook input: `tool_input.{key}` is not a string"
        )),
        None => Err(format!(
            "malformed hook input: `tool_input.{key}` is missing"
        )),
    }
}

fn opt_str<'v>(input: &'v Map<String, Value>, key: &str) -> Result<Option<&'v str>, String> {
    match input.get(key) {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Null) | None => Ok(None),
        Some(_) => Err(format!(
            "malformed hook input: `tool_input.{key}` is not a string"
        )),
    }
}

fn write_target(pe: &PathEnv, path: &str) -> R {
    if let Some(why) = pe.protected_write(path, false) {
        return Err(format!(
            "{why} (`{path}`). Leave the guard's configuration, the mlres state and the ledger to \
             mlres and the user"
        ));
    }
    if pe.secret_read(path, false) == Some(paths::STATE) {
        return Err(format!("{} (`{path}`)", paths::STATE_WRITE));
    }
    Ok(())
}

/// Write / Edit / MultiEdit / NotebookEdit.
pub(crate) fn file_edit(tool: &str, input: &Map<String, Value>, an: &mut Analyzer) -> R {
    let key = if tool == "NotebookEdit" {
        "notebook_path"
    } else {
        "file_path"
    };
    let path = req_str(input, key)?;
    write_target(an.paths(), path)?;
    let notebook = tool == "NotebookEdit" || path.ends_with(".ipynb");
    let mut contents: Vec<&str> = Vec::new();
    match tool {
        "Write" => contents.extend(opt_str(input, "content")?),
        "Edit" => contents.extend(opt_str(input, "new_string")?),
        "MultiEdit" => match input.get("edits") {
            Some(Value::Array(edits)) => {
                for e in edits {
                    let Value::Object(o) = e else {
                        return Err("malformed hook input: MultiEdit edit is not an object".into());
                    };
                    contents.extend(opt_str(o, "new_string")?);
                }
            }
            None | Some(Value::Null) => {}
            Some(_) => return Err("malformed hook input: `edits` is not an array".into()),
        },
        "NotebookEdit" => contents.extend(opt_str(input, "new_source")?),
        _ => {}
    }
    for c in contents {
        if notebook {
            // Notebook cells are executed locally by the agent with the user's credentials.
            for cell in notebook_cells(c) {
                code::scan_cell(&cell, an)?;
            }
        } else {
            code::scan_file_content(c, path)?;
        }
    }
    Ok(())
}

/// Cell sources of a notebook JSON document, or the text itself when it is not one.
fn notebook_cells(text: &str) -> Vec<String> {
    let Ok(Value::Object(nb)) = serde_json::from_str::<Value>(text) else {
        return vec![text.to_string()];
    };
    let Some(Value::Array(cells)) = nb.get("cells") else {
        return vec![text.to_string()];
    };
    let mut out = Vec::new();
    for c in cells {
        match c.get("source") {
            Some(Value::String(s)) => out.push(s.clone()),
            Some(Value::Array(parts)) => {
                out.push(parts.iter().filter_map(Value::as_str).collect::<String>())
            }
            _ => {}
        }
    }
    out.push(text.to_string());
    out
}

/// Read tool (and Grep/Glob/LS paths).
pub(crate) fn read(tool: &str, input: &Map<String, Value>, pe: &PathEnv) -> R {
    let path = match tool {
        "Read" => Some(req_str(input, "file_path")?),
        _ => opt_str(input, "path")?,
    };
    let Some(path) = path else { return Ok(()) };
    if let Some(why) = pe.secret_read(path, true) {
        return Err(format!(
            "{why} (`{path}`). mlres uses the credentials itself; ask the user if you need something from there"
        ));
    }
    if tool == "Grep" && pe.contains_secrets(path, true) {
        return Err(format!(
            "a recursive search of `{path}` would read credential stores or the mlres state. Search inside the project"
        ));
    }
    if tool == "Grep"
        && let Some(g) = opt_str(input, "glob")?
        && pe.secret_read(g, true).is_some()
    {
        return Err(format!("the search glob `{g}` targets credential files"));
    }
    Ok(())
}

/// WebFetch: the URL must be on a research host and carry no credential or secret-shaped
/// value (see `crate::web`).
pub(crate) fn web_fetch(input: &Map<String, Value>, an: &Analyzer) -> R {
    let url = req_str(input, "url")?;
    crate::web::check_url(url, "WebFetch", an.paths(), an.machine)
}

/// WebSearch: the query goes to a search engine; it must carry no secret.
pub(crate) fn web_search(input: &Map<String, Value>) -> R {
    match opt_str(input, "query")? {
        Some(q) => crate::web::check_search(q),
        None => Ok(()),
    }
}

fn all_strings<'v>(v: &'v Value, out: &mut Vec<(&'v str, Option<&'v str>)>, key: Option<&'v str>) {
    match v {
        Value::String(s) => out.push((s, key)),
        Value::Array(a) => a.iter().for_each(|x| all_strings(x, out, key)),
        Value::Object(o) => o.iter().for_each(|(k, x)| all_strings(x, out, Some(k))),
        _ => {}
    }
}

/// Agent / Task (subagent launches).
pub(crate) fn agent(input: &Map<String, Value>, an: &mut Analyzer) -> R {
    for key in [
        "mode",
        "permissionMode",
        "permission_mode",
        "permission-mode",
    ] {
        if let Some(v) = input.get(key) {
            let s = v.as_str().unwrap_or("");
            if s.eq_ignore_ascii_case("bypassPermissions") || !v.is_string() {
                return Err(format!(
                    "the subagent is launched with `{key}: {v}`, which skips permission checks and hooks. \
                     Launch subagents in the default mode"
                ));
            }
        }
    }
    let whole = Value::Object(input.clone());
    let mut strings = Vec::new();
    all_strings(&whole, &mut strings, None);
    for (s, _) in &strings {
        code::guard_disabling_text(s).map_err(|e| format!("the subagent request: {e}"))?;
    }
    for key in ["prompt", "description"] {
        if let Some(p) = opt_str(input, key)? {
            code::scan_prompt(p, an)?;
        }
    }
    Ok(())
}

const HF_WRITE_WORDS: &[&str] = &[
    "job",
    "upload",
    "delete",
    "create",
    "commit",
    "push",
    "duplicate",
    "restart",
    "pause",
    "secret",
    "endpoint",
    "update",
    "move",
    "rename",
    "write",
    "deploy",
    "schedule",
    "train",
    "launch",
    "merge",
    "setting",
    "variable",
    "hardware",
    "run",
    "tag",
    "branch",
    "space_new",
    "resume",
    "scale",
];

const MCP_SPEND_WORDS: &[&str] = &[
    "run_job",
    "jobs",
    "hf_job",
    "upload",
    "push_to_hub",
    "create_repo",
    "delete_repo",
    "repo_create",
    "repo_delete",
    "inference_endpoint",
    "duplicate_space",
    "space_hardware",
    "restart_space",
];

/// `mcp__<server>__<tool>` tools of other servers.
pub(crate) fn mcp(tool: &str, input: &Map<String, Value>, an: &mut Analyzer) -> R {
    let rest = &tool[5..];
    let (server, name) = rest.split_once("__").unwrap_or((rest, ""));
    let server_l = server.to_ascii_lowercase();
    let name_l = name.to_ascii_lowercase();
    if server_l == "mlres" || server_l.starts_with("plugin_mlres") {
        return Ok(());
    }
    let hf_server = server_l.contains("hf") || server_l.contains("hugging");
    if hf_server {
        if let Some(w) = HF_WRITE_WORDS.iter().find(|w| name_l.contains(*w)) {
            let spend = matches!(
                *w,
                "job"
                    | "endpoint"
                    | "hardware"
                    | "schedule"
                    | "run"
                    | "launch"
                    | "train"
                    | "duplicate"
                    | "restart"
                    | "resume"
                    | "scale"
            );
            return Err(format!(
                "the Hugging Face MCP tool `{tool}` ({w}) writes to or spends on the Hub outside the broker. {}",
                if spend {
                    SANCTIONED_SPEND
                } else {
                    SANCTIONED_HUB
                }
            ));
        }
        for key in ["operation", "action", "op", "command", "mode", "method"] {
            if let Some(Value::String(v)) = input.get(key) {
                let v = v.to_ascii_lowercase();
                if HF_WRITE_WORDS.iter().any(|w| v.contains(w))
                    && !v.contains("list")
                    && !v.contains("get")
                {
                    return Err(format!(
                        "the Hugging Face MCP tool `{tool}` is asked to `{v}` on the Hub outside the broker. {SANCTIONED_SPEND}"
                    ));
                }
            }
        }
    } else if let Some(w) = MCP_SPEND_WORDS.iter().find(|w| name_l.contains(*w)) {
        return Err(format!(
            "the MCP tool `{tool}` ({w}) spends on or writes to the Hub outside the broker. {SANCTIONED_SPEND}"
        ));
    }
    let whole = Value::Object(input.clone());
    let mut strings = Vec::new();
    all_strings(&whole, &mut strings, None);
    for (s, _) in &strings {
        if let Some(kind) = crate::redact::first_secret(s) {
            return Err(format!(
                "the MCP call carries a credential ({kind}). Credentials never leave mlres"
            ));
        }
        code::guard_disabling_text(s).map_err(|e| format!("the MCP call: {e}"))?;
    }
    let shellish = [
        "bash", "shell", "exec", "terminal", "command", "run_cmd", "cmd",
    ]
    .iter()
    .any(|w| name_l.contains(w));
    let codeish = ["python", "code", "eval", "script", "notebook", "repl"]
        .iter()
        .any(|w| name_l.contains(w));
    let writer = [
        "write", "edit", "create", "move", "delete", "remove", "rename", "copy", "append", "patch",
        "save", "put", "push", "commit", "upload",
    ]
    .iter()
    .any(|w| name_l.contains(w));
    for (s, key) in &strings {
        let k = key.unwrap_or("").to_ascii_lowercase();
        if matches!(
            k.as_str(),
            "url" | "uri" | "href" | "link" | "endpoint" | "website" | "page_url" | "target_url"
        ) && (s.starts_with("http://") || s.starts_with("https://"))
        {
            crate::web::check_url(s, &format!("the MCP tool `{tool}`"), an.paths(), an.machine)?;
        }
        if shellish && matches!(k.as_str(), "command" | "cmd" | "script" | "shell" | "input") {
            an.analyze_command(s)?;
        }
        if codeish
            && matches!(
                k.as_str(),
                "code" | "source" | "script" | "cell" | "program"
            )
        {
            code::scan_cell(s, an)?;
        }
        if matches!(
            k.as_str(),
            "path"
                | "file_path"
                | "filepath"
                | "filename"
                | "file"
                | "paths"
                | "source"
                | "destination"
                | "target"
                | "dir"
                | "directory"
                | "src"
                | "dst"
                | "dest"
                | "uri"
        ) && s.len() < 4096
        {
            let pe = an.paths();
            if let Some(why) = pe.secret_read(s, true) {
                return Err(format!("the MCP tool `{tool}` would touch `{s}`: {why}"));
            }
            if writer {
                write_target(pe, s).map_err(|e| format!("the MCP tool `{tool}`: {e}"))?;
            }
        }
    }
    Ok(())
}

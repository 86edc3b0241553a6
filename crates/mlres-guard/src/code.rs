//! Scanning of code and prose that is not shell: inline interpreter programs (`python -c`,
//! heredocs fed to an interpreter, notebook cells), files being written, and subagent
//! prompts. All matching is plain substring / identifier matching (no regex).

use crate::paths::PathEnv;
use crate::shell::Analyzer;
use crate::{SANCTIONED_HUB, SANCTIONED_SPEND};

/// Hub SDK calls that spend money or write to the Hub (Python and JS).
const HUB_WRITE_APIS: &[&str] = &[
    "run_job",
    "run_uv_job",
    "create_scheduled_job",
    "create_scheduled_uv_job",
    "upload_file",
    "upload_folder",
    "upload_large_folder",
    "create_repo",
    "delete_repo",
    "delete_file",
    "delete_files",
    "delete_folder",
    "create_commit",
    "create_commits_on_pr",
    "push_to_hub",
    "update_repo_settings",
    "update_repo_visibility",
    "move_repo",
    "duplicate_space",
    "add_space_secret",
    "delete_space_secret",
    "add_space_variable",
    "request_space_hardware",
    "set_space_sleep_time",
    "restart_space",
    "create_inference_endpoint",
    "create_inference_endpoint_from_catalog",
    "update_inference_endpoint",
    "resume_inference_endpoint",
    "create_branch",
    "delete_branch",
    "create_tag",
    "delete_tag",
    "merge_pull_request",
    "super_squash_history",
    "create_collection",
    "add_collection_item",
    "HfFileSystem",
    "uploadFile",
    "uploadFiles",
    "uploadFilesWithProgress",
    "createRepo",
    "deleteRepo",
    "deleteFile",
    "deleteFiles",
    "createBranch",
];

/// The subset that launches (billable) compute; refused even in files being written.
const JOB_APIS: &[&str] = &[
    "run_job",
    "run_uv_job",
    "create_scheduled_job",
    "create_scheduled_uv_job",
    "create_inference_endpoint",
    "request_space_hardware",
    "duplicate_space",
];

const TOKEN_GETTERS: &[&str] = &[
    "get_token",
    "HfFolder",
    "get_stored_tokens",
    "_get_token_from_file",
    "_get_token_from_environment",
    "token_path",
];

/// Environment variables holding secrets.
pub(crate) fn is_sensitive_var(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    const EXACT: &[&str] = &[
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_API_TOKEN",
        "HUGGINGFACE_TOKEN",
        "HUGGINGFACEHUB_API_TOKEN",
        "HF_HUB_TOKEN",
        "ANTHROPIC_API_KEY",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "GH_TOKEN",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "OPENAI_API_KEY",
        "WANDB_API_KEY",
        "MLRES_KEY",
    ];
    EXACT.contains(&n.as_str())
        || n.contains("TOKEN")
        || n.contains("SECRET")
        || n.contains("API_KEY")
        || n.contains("APIKEY")
        || n.contains("PASSWORD")
        || n.contains("PASSWD")
        || n.ends_with("_KEY") && !n.ends_with("SSH_AUTH_SOCK")
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whole-identifier occurrence of `word` in `text`.
pub(crate) fn has_ident(text: &str, word: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find(word) {
        let start = from + pos;
        let end = start + word.len();
        let before_ok = start == 0 || !is_ident_byte(bytes[start - 1]);
        let after_ok = end >= bytes.len() || !is_ident_byte(bytes[end]);
        if before_ok && after_ok {
            return true;
        }
        from = start + word.len().max(1);
        if from >= text.len() {
            break;
        }
    }
    false
}

/// A Hub host or an `HF_ENDPOINT` reference appears in `text`.
pub(crate) fn mentions_hub_host(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("huggingface.co")
        || t.contains("hf.co/")
        || t.contains("://hf.co")
        || t.ends_with("hf.co")
        || t.contains(".hf.space")
        || t.contains("huggingface.cloud")
        || t.contains("hf_endpoint")
}

/// Extracts string literals ('…', "…", `…`) from code, honouring backslash escapes.
pub(crate) fn string_literals(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    string_literal_spans(&chars)
        .into_iter()
        .map(|(s, _, _)| s)
        .collect()
}

/// String literals with their positions: `(text, index of the opening quote, index after the
/// closing quote)`, in chars.
pub(crate) fn string_literal_spans(chars: &[char]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' || c == '`' {
            let mut s = String::new();
            let mut j = i + 1;
            let mut closed = false;
            while j < chars.len() {
                match chars[j] {
                    '\\' if j + 1 < chars.len() => {
                        s.push(chars[j + 1]);
                        j += 2;
                        continue;
                    }
                    q if q == c => {
                        closed = true;
                        break;
                    }
                    '\n' if c != '`' && s.len() > 4096 => break,
                    other => s.push(other),
                }
                j += 1;
            }
            if closed {
                out.push((s, i, j + 1));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

const SPAWN_APIS: &[&str] = &[
    "os.system",
    "os.popen",
    "subprocess",
    "pty.spawn",
    "os.exec",
    "os.spawn",
    "child_process",
    "execSync",
    "spawnSync",
    "execFile",
    "Open3",
    "IO.popen",
    "system(",
    "system ",
    "exec(",
    "qx",
    "%x",
    "Deno.run",
    "Deno.Command",
    "Bun.spawn",
    "sh.",
    "plumbum",
];

const DECODERS: &[&str] = &[
    "b64decode",
    "base64",
    "fromhex",
    "codecs",
    "chr(",
    "atob(",
    "Buffer.from",
    "zlib",
    "marshal",
    "[::-1]",
    "rot13",
    "rot_13",
    "decode(",
    "unhexlify",
    "pack(",
    "reverse",
];

/// Scans code that will be executed locally with the user's credentials.
pub(crate) fn scan_exec_code(code: &str, an: &mut Analyzer) -> Result<(), String> {
    scan_code(code, an, false)
}

/// Scans a whole program run from a file (`python3 x.py`, `./tool`; see `shell::scripts`)
/// with the rules for inline code, minus what ordinary training and evaluation scripts do:
/// `push_to_hub` (it needs the token, which sandboxed commands do not have, and the same
/// script runs inside mlres' jobs), reading `HF_TOKEN` for a gated download (printing or
/// sending it is still refused), copying the environment for a subprocess (dumping it is
/// still refused), `getattr`, tokenizer `decode`/`torch.compile` next to each other, and
/// loading a `.env` file.
pub(crate) fn scan_script(code: &str, an: &mut Analyzer) -> Result<(), String> {
    scan_code(code, an, true)
}

/// The code rules: inline programs (`script == false`) or whole scripts run from files.
fn scan_code(code: &str, an: &mut Analyzer, script: bool) -> Result<(), String> {
    let lower = code.to_ascii_lowercase();
    for api in HUB_WRITE_APIS {
        if script && *api == "push_to_hub" {
            continue;
        }
        if has_ident(code, api) {
            return Err(format!(
                "inline code calls the Hub write/spend API `{api}` outside mlres. {SANCTIONED_SPEND}"
            ));
        }
    }
    if lower.contains("/api/jobs") || lower.contains("/api/repos/create") {
        return Err(format!(
            "inline code calls the Hub jobs/repo REST API directly. {SANCTIONED_SPEND}"
        ));
    }
    if mentions_hub_host(code) {
        let writes = [
            ".post(",
            ".put(",
            ".patch(",
            ".delete(",
            "'post'",
            "\"post\"",
            "method",
            "authorization",
            "bearer",
            "token",
            "urlopen(",
            "request(",
        ];
        let writes = if script { &writes[..6] } else { &writes[..] };
        if writes.iter().any(|w| lower.contains(w)) {
            return Err(format!(
                "inline code sends an authenticated or non-GET request to the Hugging Face Hub. {SANCTIONED_HUB}"
            ));
        }
    }
    for g in TOKEN_GETTERS {
        if has_ident(code, g) {
            return Err(format!(
                "inline code reads the Hugging Face token (`{g}`). Tokens never leave mlres; \
                 use `mlres` commands for anything that needs Hub credentials"
            ));
        }
    }
    if script {
        secrets_shown_by_script(code)?;
    } else {
        env_dump_in_code(code)?;
        sensitive_names_in_code(code)?;
    }
    broker_copy_in_code(code)?;
    pty_in_code(code)?;
    kills_broker_in_code(code)?;
    uploads_in_code(code)?;
    let (decoding, dyn_exec) = if script {
        (
            STRONG_DECODERS.iter().any(|d| code.contains(d)),
            code.contains("exec(") || code.contains("eval("),
        )
    } else {
        (
            DECODERS.iter().any(|d| code.contains(d)),
            [
                "exec(",
                "eval(",
                "compile(",
                "Function(",
                "__import__",
                "getattr(",
            ]
            .iter()
            .any(|d| code.contains(d)),
        )
    };
    if decoding && dyn_exec {
        return Err(
            "inline code decodes data and executes it (exec/eval of decoded text is obfuscated \
             execution). Write the program in plain text"
                .into(),
        );
    }
    if !script && code.contains("huggingface_hub") && code.contains("getattr(") {
        return Err(format!(
            "inline code resolves huggingface_hub methods dynamically (getattr). {SANCTIONED_SPEND}"
        ));
    }
    let spawns = SPAWN_APIS.iter().any(|s| code.contains(s));
    let lits = string_literals(code);
    for lit in &lits {
        let base = lit.trim().rsplit('/').next().unwrap_or("");
        if script && crate::paths::is_env_file(base) {
            continue;
        }
        check_literal_path(lit, an.paths())?;
    }
    moves_protected_dirs(code, &lits, an.paths())?;
    writes_exports(code, &lits, an.paths())?;
    crate::assembled::check(code, an.paths())?;
    if spawns {
        for (i, lit) in lits.iter().enumerate() {
            let l = lit.trim();
            if l.is_empty() || l.len() > 100_000 {
                continue;
            }
            // A whole command line in one literal.
            an.analyze_embedded(l)?;
            // A list-style argv: ["hf", "jobs", "run", ...].
            let first = l.rsplit('/').next().unwrap_or(l);
            if matches!(
                first,
                "hf" | "huggingface-cli" | "mlres" | "env" | "printenv" | "bash" | "sh" | "zsh"
            ) {
                let argv: Vec<String> = lits[i..lits.len().min(i + 6)].to_vec();
                an.analyze_embedded_argv(&argv)?;
            }
        }
    }
    Ok(())
}

/// Decoders that turn data into code, for whole scripts (where `decode(` and `compile(` are
/// everyday tokenizer and `torch.compile` calls).
const STRONG_DECODERS: &[&str] = &[
    "b64decode",
    "fromhex",
    "unhexlify",
    "zlib.decompress",
    "marshal.loads",
    "rot13",
    "rot_13",
    "[::-1]",
    "atob(",
];

/// Words on a line that show or send what is on it.
const OUTPUTS: &[&str] = &[
    "print(",
    "pprint",
    ".write(",
    "json.dump",
    "sys.stdout",
    "logging.",
    "logger.",
    "requests.",
    "urlopen",
    "console.log",
    "puts ",
    "send(",
];

/// A whole script: a secret variable or the whole environment printed, written or sent
/// (`print(os.environ["HF_TOKEN"])`, `json.dumps(dict(os.environ))`), and `/proc/*/environ`.
fn secrets_shown_by_script(code: &str) -> Result<(), String> {
    if code.contains("/environ") {
        return Err(
            "the script reads a process environment (/proc/*/environ), which holds tokens".into(),
        );
    }
    for line in code.lines() {
        if !OUTPUTS.iter().any(|o| line.contains(o)) {
            continue;
        }
        for name in [
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "ANTHROPIC_API_KEY",
            "GH_TOKEN",
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "OPENAI_API_KEY",
            "WANDB_API_KEY",
        ] {
            if has_ident(line, name) {
                return Err(format!(
                    "the script prints, writes or sends the secret `{name}`. Tokens never leave \
                     mlres; `mlres` commands use the credentials for you"
                ));
            }
        }
        let whole_env = [
            "dict(os.environ",
            "os.environ)",
            "os.environ.items",
            "process.env)",
            "%ENV",
            "ENV.to_h",
        ]
        .iter()
        .any(|w| line.contains(w));
        if whole_env {
            return Err(
                "the script prints, writes or sends the whole environment, which holds tokens. \
                 Print single, non-secret variables instead"
                    .into(),
            );
        }
    }
    Ok(())
}

/// Code that writes a file and names one in the project's `runs/`, mlres' exports
/// (`open('runs/summary.md', 'w')`). Reading them is fine.
fn writes_exports(code: &str, lits: &[String], pe: &PathEnv) -> Result<(), String> {
    const WRITES: &[&str] = &[
        "'w'",
        "\"w\"",
        "'a'",
        "\"a\"",
        "'wb'",
        "\"wb\"",
        "'ab'",
        "'w+'",
        "'r+'",
        "write_text",
        "write_bytes",
        "writeFile",
        "appendFile",
        "shutil.",
        "os.remove",
        "os.unlink",
        "os.rename",
        "os.replace",
        ".unlink(",
        ".rename(",
        ".touch(",
        "savefig(",
        "to_csv(",
        "to_json(",
        "File.write",
        "File.open",
    ];
    if !WRITES.iter().any(|w| code.contains(w)) {
        return Ok(());
    }
    for lit in lits {
        let l = lit.trim();
        if l.is_empty() || l.len() > 4096 || !l.contains("runs") {
            continue;
        }
        if pe.protected_write(l, false) == Some(crate::paths::EXPORTS_WRITE) {
            return Err(format!(
                "inline code writes `{l}`: {}",
                crate::paths::EXPORTS_WRITE
            ));
        }
    }
    Ok(())
}

/// Calls that move or delete files and directories.
const MOVERS: &[&str] = &[
    "shutil.move",
    "shutil.rmtree",
    "os.rename",
    "os.renames",
    "os.replace",
    "os.remove",
    "os.rmdir",
    "os.removedirs",
    "os.unlink",
    ".rename(",
    ".replace(",
    ".rmdir(",
    ".unlink(",
    "renameSync",
    "rmSync",
    "rmdirSync",
    "fs.rename",
    "fs.rm",
    "FileUtils.mv",
    "FileUtils.rm",
    "File.rename",
    "rmtree",
];

/// Code that moves or deletes files and names a directory holding the mlres state or the
/// guard's configuration (`shutil.move(os.path.expanduser('~/.local/state'), …)`). The home
/// directory and `/` themselves are left out: code names them for many other reasons.
fn moves_protected_dirs(code: &str, lits: &[String], pe: &PathEnv) -> Result<(), String> {
    if !MOVERS.iter().any(|m| code.contains(m)) {
        return Ok(());
    }
    for lit in lits {
        let l = lit.trim();
        if l.is_empty() || l.len() > 4096 || !(l.contains('/') || l.starts_with('~')) {
            continue;
        }
        let p = pe.norm(l);
        if p == "/" || pe.home.as_deref() == Some(p.as_str()) {
            continue;
        }
        if pe.contains_protected(l, false) {
            return Err(format!(
                "inline code moves or deletes files and names `{l}`, which holds the mlres state \
                 directory or the guard's configuration. Leave it where it is: `mlres loop stop` \
                 stops the broker, and moving its state is the user's call"
            ));
        }
    }
    Ok(())
}

/// String literals in executed code that name credential stores or protected paths.
pub(crate) fn check_literal_path(lit: &str, pe: &PathEnv) -> Result<(), String> {
    let l = lit.trim();
    if l.is_empty() || l.len() > 4096 || l.contains('\n') {
        return Ok(());
    }
    if !(l.contains('/') || l.starts_with('.') || l.starts_with('~')) {
        return Ok(());
    }
    if let Some(why) = pe.secret_read(l, true) {
        return Err(format!("inline code refers to `{l}`: {why}"));
    }
    if let Some(why) = pe.protected_write(l, true)
        && why != crate::paths::FAKE_BROKER
        && why != crate::paths::LEDGER_VIEW_WRITE
        && why != crate::paths::EXPORTS_WRITE
    {
        return Err(format!("inline code refers to `{l}`: {why}"));
    }
    Ok(())
}

/// Copying or linking the mlres binary from code (`shutil.copy(shutil.which('mlres'), …)`,
/// `os.symlink('/usr/local/bin/mlres', …)`): a broker under another name escapes the guard.
fn broker_copy_in_code(code: &str) -> Result<(), String> {
    const COPIERS: &[&str] = &[
        "shutil.copy",
        "shutil.move",
        "copyfile",
        "os.symlink",
        "os.link",
        "symlink_to",
        "hardlink_to",
        "copyFileSync",
        "copyFile(",
        "fs.cp",
        "symlinkSync",
        "linkSync",
        "FileUtils.cp",
        "FileUtils.ln",
        "File.symlink",
        "File.link",
        "File::Copy",
    ];
    if !COPIERS.iter().any(|c| code.contains(c)) {
        return Ok(());
    }
    let names_broker = string_literals(code)
        .iter()
        .any(|l| l.trim_end_matches('/').rsplit('/').next() == Some("mlres"));
    if names_broker {
        return Err(
            "inline code copies or links the mlres binary to another place; a broker under another \
             name escapes the guard. Run the installed `mlres` by name"
                .into(),
        );
    }
    Ok(())
}

/// Code that sends a local file somewhere other than this machine: a request with `files=`
/// or a body read from a file (`data=open(…)`), FTP `storbinary`, SFTP `put`, S3
/// `upload_fileobj`/`put_object`, a socket's `sendfile`. URLs all on this machine
/// (`localhost`, `127.0.0.1`) are fine.
fn uploads_in_code(code: &str) -> Result<(), String> {
    const SENDS: &[&str] = &[
        "files=",
        "data=open(",
        "data = open(",
        "content=open(",
        "storbinary",
        "upload_fileobj",
        "put_object",
        "sftp.put",
        ".sendfile(",
        "FormData",
        "createReadStream",
    ];
    let Some(how) = SENDS.iter().find(|s| code.contains(*s)) else {
        return Ok(());
    };
    let remote = string_literals(code).into_iter().find_map(|l| {
        let l = l.trim();
        if !l.contains("://") {
            return None;
        }
        let host = crate::shell::url_host(l)?;
        (!crate::shell::is_local_host(&host)).then_some(host)
    });
    let network = [
        "requests.",
        "httpx.",
        "urlopen",
        "aiohttp",
        "ftplib",
        "FTP(",
        "paramiko",
        "boto3",
        "http.client",
        "fetch(",
        "axios",
        "socket",
    ]
    .iter()
    .any(|n| code.contains(n));
    if let Some(host) = remote.as_ref().filter(|_| network) {
        return Err(format!(
            "inline code uploads a local file (`{how}`) to `{host}`. Files leave this machine \
             through mlres (`mlres hub files upload --repo <approved output repo> <path>`) or the \
             user"
        ));
    }
    if network
        && remote.is_none()
        && !code.contains("://")
        && ["storbinary", "sftp.put", "upload_fileobj", "put_object"].contains(how)
    {
        return Err(format!(
            "inline code uploads a local file (`{how}`) to another machine. Files leave this \
             machine through mlres (`mlres hub files upload --repo <approved output repo> \
             <path>`) or the user"
        ));
    }
    Ok(())
}

/// Code that signals processes and names mlres (`os.kill(pid, …)` over `pgrep -f mlres`,
/// `psutil` processes whose name is `mlres`).
fn kills_broker_in_code(code: &str) -> Result<(), String> {
    const SIGNALS: &[&str] = &[
        "os.kill",
        "killpg",
        "SIGKILL",
        "SIGTERM",
        "SIGINT",
        ".kill(",
        ".terminate(",
        "send_signal",
        "process.kill",
        "Process.kill",
        "pkill",
        "killall",
    ];
    if SIGNALS.iter().any(|s| code.contains(s))
        && string_literals(code)
            .iter()
            .any(|l| l.to_ascii_lowercase().contains("mlres"))
    {
        return Err(
            "inline code signals processes and names mlres: stopping the broker, its loop or a job \
             supervisor is not the agent's call. Use `mlres loop stop`, or ask the user"
                .into(),
        );
    }
    Ok(())
}

/// A pseudo-terminal from code (`pty.spawn`, `os.openpty`, `pexpect`, Ruby's `PTY`, Perl's
/// `IO::Pty`/`Expect`, `node-pty`): a terminal faker, like `script` or `expect`.
fn pty_in_code(code: &str) -> Result<(), String> {
    const NEEDLES: &[&str] = &[
        "openpty",
        "forkpty",
        "pexpect",
        "ptyprocess",
        "wexpect",
        "node-pty",
        "IO::Pty",
        "IO::Tty",
        "zpty",
    ];
    let found = NEEDLES
        .iter()
        .find(|n| code.contains(*n))
        .copied()
        .or_else(|| has_ident(code, "pty").then_some("pty"))
        .or_else(|| has_ident(code, "PTY").then_some("PTY"))
        .or_else(|| (has_ident(code, "Expect") && code.contains("use Expect")).then_some("Expect"));
    if let Some(what) = found {
        return Err(format!(
            "inline code opens a fake terminal (`{what}`), which lets the agent drive prompts meant \
             for a human at the keyboard (`mlres approve` asks for the approval secret there). Run \
             the command directly; for unbuffered output use `python3 -u …` or \
             `PYTHONUNBUFFERED=1 …`"
        ));
    }
    Ok(())
}

fn env_dump_in_code(code: &str) -> Result<(), String> {
    let msg = |what: &str| {
        format!(
            "inline code dumps the environment ({what}), which holds tokens. Read single, \
             non-secret variables instead"
        )
    };
    for needle in ["os.environ", "process.env"] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(needle) {
            let end = from + pos + needle.len();
            let rest = code[end..].trim_start();
            let ok = if needle == "os.environ" {
                rest.starts_with('[')
                    || rest.starts_with(".get(")
                    || rest.starts_with(".setdefault(")
                    || rest.starts_with(".pop(")
                    || rest.starts_with(".update(")
                    || rest.starts_with(".__setitem__")
                    || rest.starts_with("b")
            } else {
                rest.starts_with('.') || rest.starts_with('[')
            };
            if !ok {
                return Err(msg(needle));
            }
            from = end;
        }
    }
    if code.contains("%ENV") || code.contains("environ.items") || code.contains("os.environb") {
        return Err(msg("%ENV/environ"));
    }
    for bad in [
        "ENV.to_h",
        "ENV.each",
        "ENV.inspect",
        "ENV.keys",
        "ENV.to_a",
        "ENV.map",
        "ENV.select",
        "p ENV",
        "puts ENV",
        "Deno.env.toObject",
        "System.getenv()",
        "Sys.getenv()",
    ] {
        if code.contains(bad) {
            return Err(msg(bad));
        }
    }
    if code.contains("/environ") {
        return Err(msg("/proc/*/environ"));
    }
    Ok(())
}

fn sensitive_names_in_code(code: &str) -> Result<(), String> {
    for name in [
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_API_TOKEN",
        "HUGGINGFACE_TOKEN",
        "HUGGINGFACEHUB_API_TOKEN",
        "ANTHROPIC_API_KEY",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "GH_TOKEN",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        if has_ident(code, name) {
            return Err(format!(
                "inline code reads the secret `{name}`. Tokens never leave mlres; use `mlres` \
                 commands for anything that needs credentials"
            ));
        }
    }
    Ok(())
}

/// Scans the content of a file being written (Write/Edit, heredoc into a file).
/// Training scripts may legitimately call `push_to_hub` inside an mlres-launched job, so
/// only job-launching calls, Hub-CLI spend in shell scripts and guard-disabling settings
/// are refused here.
pub(crate) fn scan_file_content(content: &str, path: &str) -> Result<(), String> {
    for api in JOB_APIS {
        if has_ident(content, api) {
            return Err(format!(
                "the file launches Hugging Face compute (`{api}`) outside mlres; a script that \
                 starts jobs bypasses the budget. {SANCTIONED_SPEND}"
            ));
        }
    }
    if content.contains("/api/jobs") {
        return Err(format!(
            "the file calls the Hub jobs REST API directly. {SANCTIONED_SPEND}"
        ));
    }
    let base = path.rsplit('/').next().unwrap_or(path);
    let shellish = base.ends_with(".sh")
        || base.ends_with(".bash")
        || base.ends_with(".zsh")
        || base == "Makefile"
        || base == "justfile"
        || !base.contains('.')
        || content.starts_with("#!");
    if shellish {
        for line in content.lines() {
            let l = line.trim();
            let words: Vec<&str> = l.split_whitespace().collect();
            for (i, w) in words.iter().enumerate() {
                let w = w.trim_start_matches(['(', '`', '@', '-']);
                if (w == "hf" || w == "huggingface-cli")
                    && words.get(i + 1).is_some_and(|s| {
                        matches!(
                            *s,
                            "jobs"
                                | "upload"
                                | "upload-large-folder"
                                | "repo"
                                | "repos"
                                | "endpoints"
                        )
                    })
                {
                    let how = if words[i + 1] == "jobs" || words[i + 1] == "endpoints" {
                        SANCTIONED_SPEND
                    } else {
                        SANCTIONED_HUB
                    };
                    return Err(format!(
                        "the script runs `{w} {}` outside mlres. {how}",
                        words[i + 1]
                    ));
                }
                if w == "mlres" && words.get(i + 1) == Some(&"approve") {
                    return Err(APPROVE_REASON.into());
                }
            }
        }
    }
    guard_disabling_text(content)
}

pub(crate) const APPROVE_REASON: &str = "`mlres approve` is for humans only: approving or widening a campaign budget must come from \
     the user. Edit program.md if needed and ask the user to run `mlres approve` themselves";

/// Settings-like text that would disable hooks or permissions.
pub(crate) fn guard_disabling_text(text: &str) -> Result<(), String> {
    let lower = text.to_ascii_lowercase();
    for needle in [
        "disableallhooks",
        "bypasspermissions",
        "dangerously-skip-permissions",
        "dangerouslyskippermissions",
        "dangerouslydisablesandbox",
        "allowunsandboxedcommands",
        "skipdangerousmodepermissionprompt",
    ] {
        if lower.contains(needle) {
            return Err(format!(
                "it contains `{needle}`, which disables Claude Code's hooks, permissions or \
                 sandbox. The guard and permission prompts must stay on; ask the user if a \
                 setting needs to change"
            ));
        }
    }
    Ok(())
}

/// Scans a subagent prompt (Agent/Task tool, `claude -p`). Lines that only *warn* against
/// a forbidden action ("never run hf jobs") are not treated as instructions.
pub(crate) fn scan_prompt(text: &str, an: &mut Analyzer) -> Result<(), String> {
    guard_disabling_text(text)?;
    for raw_line in text.lines() {
        for sentence in raw_line.split(['.', ';', '!']) {
            let s = sentence.trim();
            if s.is_empty() {
                continue;
            }
            let lower = s.to_ascii_lowercase();
            if is_negated(&lower) {
                continue;
            }
            let bad_phrases = [
                "hf jobs",
                "huggingface-cli jobs",
                "hf upload",
                "huggingface-cli upload",
                "hf repo create",
                "hf repo delete",
                "mlres approve",
                "run_job",
                "run_uv_job",
                "create_scheduled_job",
                "huggingface/token",
                "hf auth token",
                "printenv",
                "hf_token",
                "hugging_face_hub_token",
                ".credentials.json",
                "bypass the guard",
                "bypass the hook",
                "disable the hook",
                "disable the guard",
                "skip the guard",
                "around the broker",
                "bypass mlres",
                "approve the campaign",
                "approve the budget",
                "widen the budget",
                "raise the budget",
                "increase the budget",
            ];
            if let Some(p) = bad_phrases.iter().find(|p| lower.contains(*p)) {
                return Err(format!(
                    "the subagent prompt instructs it to `{p}`, which is outside what agents may do. \
                     Spend goes through `mlres exp submit`/`mlres loop run`; approvals come from the user"
                ));
            }
        }
    }
    // Code spans in the prompt are analysed as commands when they parse, unless the text
    // before them in the same sentence is a warning against them.
    for line in text.lines() {
        let mut rest = line;
        let mut consumed = 0usize;
        while let Some(start) = rest.find('`') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('`') else { break };
            let prefix = &line[..consumed + start];
            let sentence = prefix
                .rsplit(['.', ';', '!'])
                .next()
                .unwrap_or(prefix)
                .to_ascii_lowercase();
            let span = after[..end].trim();
            if !span.is_empty() && span.len() < 10_000 && !is_negated(&sentence) {
                an.analyze_embedded(span)?;
            }
            consumed += start + 1 + end + 1;
            rest = &after[end + 1..];
        }
    }
    Ok(())
}

fn is_negated(lower: &str) -> bool {
    [
        "never",
        "do not",
        "don't",
        "dont ",
        "not ",
        "avoid",
        "instead of",
        "rather than",
        "forbidden",
        "must not",
        "mustn't",
        "no ",
        "without",
        "refuse",
        "blocked",
        "denied",
        "prohibited",
    ]
    .iter()
    .any(|n| lower.contains(n))
}

/// Scans a notebook cell (or Jupyter-style code): shell escapes (`!cmd`, `%%bash`,
/// `%sx`, `%system`) are analysed as shell, the rest as executed code.
pub(crate) fn scan_cell(cell: &str, an: &mut Analyzer) -> Result<(), String> {
    let trimmed = cell.trim_start();
    let first = trimmed.lines().next().unwrap_or("").trim();
    if ["%%bash", "%%sh", "%%script", "%%system", "%%capture"]
        .iter()
        .any(|m| first.starts_with(m))
        && !first.starts_with("%%capture")
    {
        let body: String = trimmed.lines().skip(1).collect::<Vec<_>>().join("\n");
        an.analyze_embedded(&body)?;
    }
    for line in cell.lines() {
        let l = line.trim_start();
        let shell = l
            .strip_prefix("!!")
            .or_else(|| l.strip_prefix('!'))
            .or_else(|| l.strip_prefix("%sx"))
            .or_else(|| l.strip_prefix("%system"))
            .or_else(|| l.split_once("= !").map(|(_, r)| r))
            .or_else(|| l.split_once("=!").map(|(_, r)| r));
        if let Some(cmd) = shell {
            an.analyze_embedded(cmd.trim())?;
        }
    }
    scan_exec_code(cell, an)
}

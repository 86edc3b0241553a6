//! `mlres hub`: whoami, repo files (list, read, upload, delete), repo creation and pushing an
//! experiment's outputs on the Hugging Face Hub, through `mlres-hf`. mlres is the only holder of the token: it is
//! resolved from the environment like `huggingface_hub` does and never printed. Writes need
//! an approved program.md and pass the pure scope checks in `mlres_policy::hub`; each remote
//! write is recorded in the ledger.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use mlres_hf::{CommitOp, Endpoint, HfClient, RepoId, RepoType, TokenSource, WhoAmI};
use serde_json::json;

use crate::cli::Cli;
use crate::{Failure, exit, fail};

/// Largest file `mlres hub files read` prints.
const MAX_READ: u64 = 50 << 20;

#[derive(Subcommand, Debug)]
pub enum HubCmd {
    /// Show the token's user, orgs, role and scopes and where it came from (never its value);
    /// report when it is broader than the envelope needs.
    Whoami(WhoamiArgs),
    /// Files of a Hub repo.
    #[command(subcommand)]
    Files(FilesCmd),
    /// Hub repos.
    #[command(subcommand)]
    Repo(RepoCmd),
    /// Upload a finished local experiment's declared outputs (`outputs:` in `## Job`, e.g. its
    /// checkpoint folder) to a repo in the envelope's `output_repos`: one commit, large and
    /// binary files through LFS, text redacted; needs approval; recorded in the ledger.
    Push(PushArgs),
    /// Search models or datasets on the Hub by task, library, license, tags, downloads and
    /// size: `mlres hub search models --task text-generation --library peft --limit 5`.
    Search(crate::research::HubSearchArgs),
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The experiment (its job must have completed).
    pub exp: i64,
    #[command(flatten)]
    pub repo: RepoArg,
    /// Push only this declared output (repeat for several) [default: all of them].
    #[arg(long = "output", value_name = "PATH")]
    pub outputs: Vec<String>,
    /// Refuse outputs larger than this in total.
    #[arg(long, default_value = "4GiB", value_name = "SIZE")]
    pub max_size: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct WhoamiArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RepoArg {
    /// Repo id (`ns/name`, or `datasets/ns/name`).
    pub repo: String,
    /// Repo type when the id has no prefix.
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset", "space"])]
    pub kind: String,
}

#[derive(Subcommand, Debug)]
pub enum FilesCmd {
    /// List the files of a repo (recursively).
    List {
        #[command(flatten)]
        repo: RepoArg,
        /// Folder to list.
        #[arg(long, default_value = "")]
        path: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print one file to stdout.
    Read {
        #[command(flatten)]
        repo: RepoArg,
        /// Path in the repo.
        path: String,
    },
    /// Upload a file from the project (or a job's work/ directory); needs approval.
    Upload {
        #[command(flatten)]
        repo: RepoArg,
        /// Local file.
        local: PathBuf,
        /// Path in the repo (default: the file name).
        #[arg(long)]
        path_in_repo: Option<String>,
    },
    /// Delete a file; needs approval and `allow_deletes: true`.
    Delete {
        #[command(flatten)]
        repo: RepoArg,
        /// Path in the repo.
        path: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RepoCmd {
    /// Create a repo (private unless --public and the envelope allows public repos).
    Create {
        #[command(flatten)]
        repo: RepoArg,
        /// Make it public.
        #[arg(long)]
        public: bool,
    },
}

pub fn run(cli: &Cli, cmd: &HubCmd) -> Result<u8, Failure> {
    match cmd {
        HubCmd::Whoami(a) => whoami(cli, a.json),
        HubCmd::Files(FilesCmd::List { repo, path, json }) => list(repo, path, *json),
        HubCmd::Files(FilesCmd::Read { repo, path }) => read(repo, path),
        HubCmd::Files(FilesCmd::Upload {
            repo,
            local,
            path_in_repo,
        }) => upload(cli, repo, local, path_in_repo.as_deref()),
        HubCmd::Files(FilesCmd::Delete { repo, path }) => delete(cli, repo, path),
        HubCmd::Repo(RepoCmd::Create { repo, public }) => create(cli, repo, *public),
        HubCmd::Push(a) => push(cli, a),
        HubCmd::Search(a) => crate::research::hub_search(a),
    }
}

fn refused(msg: impl std::fmt::Display) -> Failure {
    fail(exit::REFUSED, anyhow!("refused: {msg}"))
}

/// The client, with the token resolved from the environment like huggingface_hub's implicit
/// token (none when `HF_HUB_DISABLE_IMPLICIT_TOKEN` is set).
fn client() -> Result<(HfClient, Option<TokenSource>), Failure> {
    client_with(mlres_hf::resolve_token)
}

type Resolver = fn(
    &BTreeMap<String, String>,
    &dyn Fn(&std::path::Path) -> Option<String>,
) -> Option<(mlres_hf::Token, TokenSource)>;

fn client_with(resolve: Resolver) -> Result<(HfClient, Option<TokenSource>), Failure> {
    let env: BTreeMap<String, String> = crate::utf8_env()?;
    let endpoint = Endpoint::from_env(&env).map_err(|e| fail(exit::USAGE, anyhow!(e)))?;
    let resolved = resolve(&env, &|p| std::fs::read_to_string(p).ok());
    let (token, source) = match resolved {
        Some((t, s)) => (Some(t), Some(s)),
        None => (None, None),
    };
    Ok((HfClient::new(endpoint, token), source))
}

fn parse_repo(r: &RepoArg) -> Result<RepoId, Failure> {
    let kind = RepoType::parse(&r.kind).unwrap_or(RepoType::Model);
    RepoId::parse(&r.repo, kind).ok_or_else(|| {
        fail(
            exit::USAGE,
            anyhow!(
                "invalid repo id {:?}: expected ns/name (letters, digits, . _ -)",
                r.repo
            ),
        )
    })
}

fn scopes(w: &WhoAmI) -> mlres_policy::TokenScopes {
    let fg = w.access_token().and_then(|t| t.fine_grained.clone());
    mlres_policy::TokenScopes {
        role: w.token_role().unwrap_or("").to_string(),
        namespaces: w.namespaces(),
        global: fg.as_ref().map(|f| f.global.clone()).unwrap_or_default(),
        scoped: fg
            .map(|f| {
                f.scoped
                    .into_iter()
                    .map(|s| (s.entity.name, s.permissions))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// `token_scope: strict` in the envelope.
fn strict_token_scope(env: &mlres_policy::Envelope) -> bool {
    env.token_scope == mlres_policy::TokenScope::Strict
}

/// `public_repos: true` in the envelope.
fn public_repos(env: &mlres_policy::Envelope) -> bool {
    env.public_repos
}

fn whoami(cli: &Cli, json_out: bool) -> Result<u8, Failure> {
    // `HfApi.whoami` calls `get_token()`, which HF_HUB_DISABLE_IMPLICIT_TOKEN does not affect.
    let (c, source) = client_with(mlres_hf::get_token)?;
    let w = c.whoami()?;
    let project = mlres_engine::Project::load(&cli.project).ok();
    let broader = project
        .as_ref()
        .map(|p| mlres_policy::token_breadth(&p.program.envelope, &scopes(&w)))
        .unwrap_or_default();
    let strict = project
        .as_ref()
        .is_some_and(|p| strict_token_scope(&p.program.envelope));
    let s = scopes(&w);
    if json_out {
        crate::print::json(&json!({
            "user": w.name,
            "orgs": w.orgs.iter().map(|o| &o.name).collect::<Vec<_>>(),
            "token_role": s.role,
            "token_name": w.access_token().map(|t| t.display_name.clone()),
            "fine_grained": {"global": s.global, "scoped": s.scoped.iter().map(|(e, p)| json!({"entity": e, "permissions": p})).collect::<Vec<_>>()},
            "token_source": source.as_ref().map(|s| s.to_string()),
            "endpoint": c.endpoint().as_str(),
            "broader_than_envelope": broader,
            "token_scope": if strict { "strict" } else { "warn" },
        }));
    } else {
        println!("user: {}", w.name);
        println!(
            "orgs: {}",
            w.orgs
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "token role: {}",
            if s.role.is_empty() {
                "unknown"
            } else {
                &s.role
            }
        );
        for g in &s.global {
            println!("  global: {g}");
        }
        for (e, p) in &s.scoped {
            println!("  {e}: {}", p.join(", "));
        }
        if let Some(src) = &source {
            println!("token from: {src}");
        }
        println!("endpoint: {}", c.endpoint());
        for b in &broader {
            println!("warning: token broader than the envelope needs: {b}");
        }
        if project.is_none() {
            println!("(no program.md here: token breadth not checked against an envelope)");
        }
    }
    if strict && !broader.is_empty() {
        return Err(refused(format!(
            "the envelope says token_scope: strict and the token is broader than it needs: {}",
            broader.join("; ")
        )));
    }
    Ok(exit::OK)
}

fn list(r: &RepoArg, path: &str, json_out: bool) -> Result<u8, Failure> {
    let repo = parse_repo(r)?;
    let (c, _) = client()?;
    let entries = c.list_tree(&repo, "main", path, true)?;
    if json_out {
        crate::print::json(&json!(entries));
    } else {
        for e in entries
            .iter()
            .filter(|e| e.kind == mlres_hf::TreeEntryKind::File)
        {
            println!("{:>12}  {}", e.size, e.path);
        }
    }
    Ok(exit::OK)
}

fn read(r: &RepoArg, path: &str) -> Result<u8, Failure> {
    use std::io::Write;
    let repo = parse_repo(r)?;
    let (c, _) = client()?;
    let f = c.read_file(&repo, "main", path, MAX_READ)?;
    std::io::stdout()
        .write_all(&f.bytes)
        .context("cannot write to stdout")?;
    Ok(exit::OK)
}

/// The repo in scope under either spelling (`ns/name` or `datasets/ns/name`).
fn scope(env: &mlres_policy::Envelope, repo: &RepoId) -> Result<(), Failure> {
    if mlres_policy::check_repo_scope(env, &repo.to_string()).is_ok() {
        return Ok(());
    }
    mlres_policy::check_repo_scope(env, &repo.id()).map_err(refused)
}

fn approved(cli: &Cli) -> Result<mlres_engine::Engine, Failure> {
    let engine = crate::commands::open_engine(cli)?;
    mlres_engine::require_approval(&engine.ledger, &engine.project)?;
    Ok(engine)
}

fn check_token_scope(engine: &mlres_engine::Engine, c: &HfClient) -> Result<(), Failure> {
    let env = &engine.project.program.envelope;
    if strict_token_scope(env) {
        let broader = mlres_policy::token_breadth(env, &scopes(&c.whoami()?));
        if !broader.is_empty() {
            return Err(refused(format!(
                "token_scope: strict and the token is broader than the envelope needs: {}",
                broader.join("; ")
            )));
        }
    }
    Ok(())
}

fn record(engine: &mut mlres_engine::Engine, payload: serde_json::Value) -> Result<(), Failure> {
    engine
        .ledger
        .append_event(None, "hub_write", &payload)
        .context("cannot record the Hub write in the ledger")?;
    Ok(())
}

fn valid_repo_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.split('/').any(|s| s.is_empty() || s == "." || s == "..")
}

fn upload(
    cli: &Cli,
    r: &RepoArg,
    local: &std::path::Path,
    path_in_repo: Option<&str>,
) -> Result<u8, Failure> {
    let repo = parse_repo(r)?;
    let mut engine = approved(cli)?;
    let env = engine.project.program.envelope.clone();
    scope(&env, &repo)?;
    let canon = local
        .canonicalize()
        .with_context(|| format!("cannot open {}", local.display()))?;
    let state = crate::state_dir(&cli.state_dir)?;
    let state = state.canonicalize().unwrap_or(state);
    mlres_policy::check_upload_source(&canon, &engine.project.root, &state).map_err(refused)?;
    if !canon.is_file() {
        return Err(fail(
            exit::USAGE,
            anyhow!("{} is not a file", canon.display()),
        ));
    }
    let bytes =
        std::fs::read(&canon).with_context(|| format!("cannot read {}", canon.display()))?;
    for p in [local, canon.as_path()] {
        if let Some(why) = mlres_policy::credential_reason(p, &bytes) {
            return Err(refused(format!("never uploaded: {why}")));
        }
    }
    let dest = match path_in_repo {
        Some(p) => p.to_string(),
        None => canon
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if !valid_repo_path(&dest) {
        return Err(fail(exit::USAGE, anyhow!("invalid path in repo {dest:?}")));
    }
    let (c, _) = client()?;
    check_token_scope(&engine, &c)?;
    let exists = c.file_entry(&repo, "main", &dest)?.is_some();
    if exists && !env.allow_deletes {
        return Err(refused(format!(
            "{dest} already exists in {repo}: overwriting it counts as a delete, which needs allow_deletes: true"
        )));
    }
    let info = c.commit(
        &repo,
        "main",
        &format!("mlres: upload {dest}"),
        &[CommitOp::Add {
            path: dest.clone(),
            bytes: bytes.clone(),
        }],
    )?;
    record(
        &mut engine,
        json!({"op": "upload", "repo": repo.to_string(), "path": dest, "bytes": bytes.len(),
               "sha256": sha256_hex(&bytes), "overwrote": exists, "commit": info.commit_oid}),
    )?;
    println!("uploaded {dest} to {repo} (commit {})", info.commit_oid);
    Ok(exit::OK)
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn delete(cli: &Cli, r: &RepoArg, path: &str) -> Result<u8, Failure> {
    let repo = parse_repo(r)?;
    let mut engine = approved(cli)?;
    let env = engine.project.program.envelope.clone();
    scope(&env, &repo)?;
    if !env.allow_deletes {
        return Err(refused(format!(
            "deleting {path} from {repo} needs allow_deletes: true in the envelope"
        )));
    }
    if !valid_repo_path(path) {
        return Err(fail(exit::USAGE, anyhow!("invalid path in repo {path:?}")));
    }
    let (c, _) = client()?;
    check_token_scope(&engine, &c)?;
    let info = c.commit(
        &repo,
        "main",
        &format!("mlres: delete {path}"),
        &[CommitOp::Delete { path: path.into() }],
    )?;
    record(
        &mut engine,
        json!({"op": "delete", "repo": repo.to_string(), "path": path, "commit": info.commit_oid}),
    )?;
    println!("deleted {path} from {repo} (commit {})", info.commit_oid);
    Ok(exit::OK)
}

fn create(cli: &Cli, r: &RepoArg, public: bool) -> Result<u8, Failure> {
    let repo = parse_repo(r)?;
    let mut engine = approved(cli)?;
    let env = engine.project.program.envelope.clone();
    scope(&env, &repo)?;
    // Scope passed above (under either spelling); the visibility rule is checked on the
    // spelling that matched.
    let spelled = if mlres_policy::check_repo_scope(&env, &repo.to_string()).is_ok() {
        repo.to_string()
    } else {
        repo.id()
    };
    mlres_policy::check_create(&env, &spelled, public, public_repos(&env)).map_err(refused)?;
    let (c, _) = client()?;
    check_token_scope(&engine, &c)?;
    let url = c.create_repo(&repo, !public)?;
    record(
        &mut engine,
        json!({"op": "create_repo", "repo": repo.to_string(), "private": !public, "url": url}),
    )?;
    println!(
        "created {} repo {repo}: {url}",
        if public { "public" } else { "private" }
    );
    Ok(exit::OK)
}

/// The repo's web page: `{endpoint}/{ns}/{name}` (`datasets/…`, `spaces/…` for those).
fn repo_url(c: &HfClient, repo: &RepoId) -> String {
    format!("{}/{repo}", c.endpoint().as_str())
}

fn push(cli: &Cli, a: &PushArgs) -> Result<u8, Failure> {
    let repo = parse_repo(&a.repo)?;
    let max = crate::commands::max_size(&a.max_size)?;
    let mut engine = approved(cli)?;
    let env = engine.project.program.envelope.clone();
    // The scope first: an out-of-scope repo is refused before anything is read or sent.
    scope(&env, &repo)?;
    let outs = engine.outputs(a.exp, &a.outputs, max)?;
    let exp = outs.exp.clone();
    if exp.status.as_deref() != Some("completed") {
        return Err(fail(
            exit::ERROR,
            anyhow!(
                "experiment {} did not complete (its job ended {}); only a completed experiment's \
                 outputs are pushed. `mlres exp artifacts {}` still copies them into the project",
                exp.id,
                exp.status.as_deref().unwrap_or("without a status"),
                exp.id
            ),
        ));
    }
    if outs.files.is_empty() {
        return Err(fail(
            exit::ERROR,
            anyhow!(
                "experiment {}'s outputs hold no files; nothing to push",
                exp.id
            ),
        ));
    }
    let mut ops = Vec::with_capacity(outs.files.len());
    let mut redacted = Vec::with_capacity(outs.files.len());
    for f in &outs.files {
        if !valid_repo_path(&f.path) {
            return Err(fail(
                exit::ERROR,
                anyhow!("`{}` cannot be a path in a repo", f.path),
            ));
        }
        let p = engine.prepare_output(&outs, f, None)?;
        let content: &[u8] = match &p.content {
            mlres_engine::Content::Text(b) => b,
            mlres_engine::Content::Binary => &[],
        };
        if let Some(why) = mlres_policy::credential_reason(std::path::Path::new(&f.path), content) {
            return Err(refused(format!("never uploaded: {why}")));
        }
        redacted.push(p.redacted.len());
        ops.push(match p.content {
            mlres_engine::Content::Text(bytes) => CommitOp::Add {
                path: f.path.clone(),
                bytes,
            },
            mlres_engine::Content::Binary => CommitOp::AddFile {
                path: f.path.clone(),
                local: f.source.clone(),
                size: p.size,
                sha256: p.sha256,
            },
        });
    }
    let (c, _) = client()?;
    check_token_scope(&engine, &c)?;
    // Replacing a file already in the repo counts as a delete, as for `hub files upload`.
    let existing: std::collections::BTreeSet<String> = match c.list_tree(&repo, "main", "", true) {
        Ok(entries) => entries
            .into_iter()
            .filter(|e| e.kind == mlres_hf::TreeEntryKind::File)
            .map(|e| e.path)
            .collect(),
        Err(e) if e.is_not_found() => {
            return Err(fail(
                exit::ERROR,
                anyhow!(
                    "{repo} does not exist (or this token cannot see it): {e}. Create it first: \
                     `mlres hub repo create {repo}`"
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let overwrites: Vec<&str> = ops
        .iter()
        .map(CommitOp::path)
        .filter(|p| existing.contains(*p))
        .collect();
    if !overwrites.is_empty() && !env.allow_deletes {
        return Err(refused(format!(
            "{} already hold(s) {}: replacing files counts as a delete, which needs \
             allow_deletes: true; nothing was uploaded",
            repo,
            overwrites.join(", ")
        )));
    }
    let metric = match (&engine.project.program.objective, exp.metric) {
        (Some(o), Some(m)) => format!(", {} = {m}", o.metric),
        _ => String::new(),
    };
    let summary = format!("mlres: outputs of experiment {}", exp.id);
    let description = format!(
        "Outputs ({}) of mlres experiment {} (campaign {}, iter {}{metric}), config {}.",
        outs.declared.join(", "),
        exp.id,
        exp.campaign,
        exp.iter,
        exp.config
    );
    let info = c.commit_described(&repo, "main", &summary, &description, &ops)?;
    let url = repo_url(&c, &repo);
    let files: Vec<serde_json::Value> = info
        .files
        .iter()
        .zip(&redacted)
        .map(|(f, r)| {
            json!({"path": f.path, "bytes": f.size, "sha256": f.sha256, "lfs": f.lfs,
                   "uploaded": f.uploaded, "skipped": f.skipped, "redactions": r})
        })
        .collect();
    engine
        .ledger
        .record_hub_push(
            exp.id,
            &repo.to_string(),
            &url,
            &info.commit_oid,
            &json!({
                "attempt": exp.attempt,
                "outputs": outs.declared,
                "commit_url": info.commit_url,
                "overwrote": overwrites,
                "files": files,
                "skipped": outs.skipped,
            }),
        )
        .context("cannot record the push in the ledger")?;
    // The exports show where the experiment's outputs went.
    if let Some(c) = engine.current_campaign()?
        && c.id == exp.campaign
    {
        mlres_engine::export(&engine.ledger, &engine.project, &c.id)?;
    }
    if a.json {
        crate::print::json(&json!({
            "exp_id": exp.id,
            "repo": repo.to_string(),
            "url": url,
            "commit": info.commit_oid,
            "commit_url": info.commit_url,
            "files": files,
            "skipped": outs.skipped,
        }));
    } else {
        let lfs = info.files.iter().filter(|f| f.lfs).count();
        println!(
            "Pushed {} file(s) of experiment {} to {repo} ({lfs} through LFS), commit {}: {url}",
            info.files.len(),
            exp.id,
            info.commit_oid
        );
        for s in &outs.skipped {
            println!("  skipped {}: {}", s.path, s.reason);
        }
    }
    Ok(exit::OK)
}

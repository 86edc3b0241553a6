//! Command-line definitions (clap derive types only).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Quick start:
  mlres demo                      sweep the built-in trainer locally (no GPU, no network)
  mlres check                     parse program.md strictly and print the resolved campaign
  mlres approve                   a human pins the envelope (by hash) before anything is spent
  mlres loop run                  run the autonomous sweep until target, budget or patience
  mlres loop status --json        what an orchestrating agent reads

Exit codes: 0 ok, 1 error, 2 usage, 3 refused by policy (approval, envelope, scope),
4 the ledger failed its checks (edited outside mlres, or its state dir is gone or replaced;
nothing is spent), 5 the experiment's job did not complete (exp wait/evaluate) or
the campaign failed: `loop run` ended without any experiment producing a usable metric,
6 `mlres data audit` found problems at or above --fail-on,
130/143 `loop run` interrupted by SIGINT/SIGTERM (jobs in flight keep running).

State (ledger, approvals, HMAC key, job directories) lives in $MLRES_STATE_DIR, else
$XDG_STATE_HOME/mlres, else ~/.local/state/mlres: outside the project, where agents cannot write.
Broker mode (`sudo mlres setup broker`) moves it to a user of its own; this CLI then goes
through the broker's socket (`mlres broker status`).";

/// mlres: an autonomous, budget-bounded ML research broker.
#[derive(Parser, Debug)]
#[command(name = "mlres", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Project directory (holds program.md and runs/).
    #[arg(
        short = 'C',
        long = "project",
        global = true,
        default_value = ".",
        value_name = "DIR"
    )]
    pub project: PathBuf,
    /// mlres state directory [env: MLRES_STATE_DIR] (default $XDG_STATE_HOME/mlres).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a demo campaign, approve it as you, and sweep the built-in trainer locally.
    Demo(DemoArgs),
    /// Write a starter program.md: the demo, or a TRL campaign (--template sft|dpo|grpo).
    Init(InitArgs),
    /// Parse program.md strictly and print the resolved campaign (spends nothing).
    Check(JsonArg),
    /// Show what will be authorised and pin it (by hash, HMAC-keyed) as a human approval.
    Approve(ApproveArgs),
    /// The autonomous loop: run, status, stop.
    #[command(subcommand)]
    Loop(LoopCmd),
    /// Agent-driven experiments: submit one, then status/wait/evaluate it, copy its outputs.
    #[command(subcommand)]
    Exp(ExpCmd),
    /// The tamper-evident ledger.
    #[command(subcommand)]
    Ledger(LedgerCmd),
    /// The built-in CPU trainer.
    #[command(subcommand)]
    Train(TrainCmd),
    /// Inspect and audit training data (local files or Hugging Face datasets); spends nothing.
    #[command(subcommand)]
    Data(crate::data::DataCmd),
    /// Hugging Face Hub: whoami, files (list/read/upload/delete), repo create, push outputs,
    /// search models and datasets.
    #[command(subcommand)]
    Hub(crate::hub::HubCmd),
    /// Papers: search (HF papers, arXiv), trending, details, read sections, citations,
    /// references, recommendations, snippets, linked Hub repos. Read-only; external text is
    /// shown as untrusted.
    #[command(subcommand)]
    Papers(crate::research::PapersCmd),
    /// Hugging Face library docs: explore and search a library's pages, fetch one, find an API
    /// endpoint. Read-only; external text is shown as untrusted.
    #[command(subcommand)]
    Docs(crate::research::DocsCmd),
    /// GitHub: example scripts for a library or task, read a file, a repo's tree, an owner's
    /// repos, repository search. Read-only; uses GITHUB_TOKEN or gh's login when present.
    #[command(subcommand)]
    Github(crate::research::GithubCmd),
    /// Hugging Face Jobs: run one approved experiment; status, logs, cancel, list.
    #[command(subcommand)]
    Jobs(crate::jobs::JobsCmd),
    /// Report which sandbox protections are active on this machine.
    Doctor(JsonArg),
    /// Write a self-contained HTML report of a campaign (runs/report.html: budget, best so far,
    /// learning curves, hyperparameters, experiments, audit trail) and runs/summary.md.
    Report(crate::view::ReportArgs),
    /// Live dashboard on 127.0.0.1, behind a random token it prints (read-only; --allow-stop
    /// adds `loop stop`, never approval).
    Serve(crate::view::ServeArgs),
    /// Serve the Model Context Protocol over stdin/stdout for an agent (no approval tool).
    Mcp,
    /// Claude Code hook: read the hook JSON on stdin, allow or deny the tool call (fails closed).
    Guard(GuardArgs),
    /// Write recommended settings for an agent client, the approval secret, or a broker.
    #[command(subcommand)]
    Setup(SetupCmd),
    /// Broker mode: the daemon that owns the state under its own user, its login and status.
    #[command(subcommand)]
    Broker(BrokerCmd),
    /// Internal: the detached job supervisor (started by mlres itself).
    #[command(name = "__supervise", hide = true)]
    Supervise {
        dir: PathBuf,
        /// Use bubblewrap only at this path (from MLRES_BWRAP; the supervisor's own
        /// environment is cleared, so it arrives here).
        #[arg(long)]
        bwrap: Option<PathBuf>,
        /// The engine already saw bubblewrap work (it probes once per process, not per job).
        #[arg(long, conflicts_with = "sandbox_fallback")]
        bwrap_ok: bool,
        /// The engine's probe found no working bubblewrap, for this reason: use the fallback.
        #[arg(long, value_name = "REASON")]
        sandbox_fallback: Option<String>,
        /// Slurm: follow the job a dead supervisor of this attempt submitted, by its id.
        #[arg(long)]
        reattach: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SetupCmd {
    /// Set (or change) the approval secret a human gives to every `mlres approve`. Asks at the
    /// terminal, or reads --secret-fd/--secret-file. Only its Argon2id hash is kept.
    Approver(SetupApproverArgs),
    /// Add deny/allow permission rules to .claude/settings.json (and, with --user, the sandbox
    /// and credential settings to ~/.claude/settings.json). Prints every change; never removes.
    Claude(SetupClaudeArgs),
    /// Once, with root: create the broker's system user, its state dir (0700) and socket
    /// dir, install this binary where only root can change it, write /etc/mlres/broker.json,
    /// set the approval secret, and start the broker (systemd unit, or the one command to
    /// run). From then on every mlres command of the listed clients goes through the broker.
    Broker(SetupBrokerArgs),
}

#[derive(Args, Debug)]
pub struct SetupBrokerArgs {
    /// The broker's system user (created when missing).
    #[arg(long, default_value = "mlres")]
    pub user: String,
    /// Users allowed to use the broker (repeatable). Default: the user who ran sudo.
    #[arg(long, value_name = "USER")]
    pub client: Vec<String>,
    /// The broker's state dir (ledger, key, approvals, credentials, job dirs).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/mlres")]
    pub broker_state_dir: PathBuf,
    /// The socket clients connect to.
    #[arg(long, value_name = "PATH", default_value = "/run/mlres/broker.sock")]
    pub socket: PathBuf,
    /// Where the broker's binary is installed (root-owned).
    #[arg(long, value_name = "DIR", default_value = "/usr/local/lib/mlres")]
    pub install_dir: PathBuf,
    /// The configuration every client reads (only this default path turns broker mode on
    /// for everyone; elsewhere clients need MLRES_BROKER_SOCKET).
    #[arg(long, value_name = "PATH", default_value = "/etc/mlres/broker.json")]
    pub config: PathBuf,
    /// Where the systemd unit is written.
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    pub unit_dir: PathBuf,
    /// Do not write or start a systemd unit; print the command that starts the broker.
    #[arg(long)]
    pub no_systemd: bool,
    /// Read the approval secret from this file descriptor instead of the terminal.
    #[arg(long, value_name = "N", conflicts_with = "secret_file")]
    pub secret_fd: Option<i32>,
    /// Read the approval secret from this file (mode 600) instead of the terminal.
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum BrokerCmd {
    /// Run the broker (as its own user; `mlres setup broker` says how). Serves every mlres
    /// command of its clients over a Unix socket, identified by SO_PEERCRED.
    Serve(ServeArgs),
    /// Hand the broker your Hugging Face token, once (after the approval secret). Reads it
    /// from the terminal (hidden) or --token-fd/--token-file; it never leaves the broker.
    Login(LoginArgs),
    /// Which mode this CLI is in and, in broker mode, who the broker sees you as.
    Status(JsonArg),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The configuration `mlres setup broker` wrote (default /etc/mlres/broker.json when it
    /// exists). --socket, --state-dir and --allow-user override it.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The socket to listen on.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// A user allowed to connect (name or uid; repeatable). None anywhere: every local user.
    #[arg(long, value_name = "USER")]
    pub allow_user: Vec<String>,
    /// Allow running as root (never in production: jobs would start from root).
    #[arg(long, hide = true)]
    pub allow_root: bool,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Read the token from this file descriptor instead of the terminal.
    #[arg(long, value_name = "N", conflicts_with = "token_file")]
    pub token_fd: Option<i32>,
    /// Read the token from this file (yours, mode 600) instead of the terminal.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Read the approval secret from this file descriptor instead of the terminal.
    #[arg(long, value_name = "N", conflicts_with = "secret_file")]
    pub secret_fd: Option<i32>,
    /// Read the approval secret from this file (yours, mode 600) instead of the terminal.
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SetupApproverArgs {
    /// Read the new secret from this file descriptor instead of the terminal.
    #[arg(long, value_name = "N", conflicts_with = "secret_file")]
    pub secret_fd: Option<i32>,
    /// Read the new secret from this file (yours, mode 600) instead of the terminal.
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    /// Changing a secret: read the current one from this file descriptor.
    #[arg(long, value_name = "N", conflicts_with = "current_secret_file")]
    pub current_secret_fd: Option<i32>,
    /// Changing a secret: read the current one from this file (yours, mode 600).
    #[arg(long, value_name = "PATH")]
    pub current_secret_file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SetupClaudeArgs {
    /// Also write the user-level sandbox and credential settings (~/.claude/settings.json).
    #[arg(long)]
    pub user: bool,
    /// Show what would change without writing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct GuardArgs {
    /// PostToolUse mode: flag tool output that carries secrets.
    #[arg(long)]
    pub post: bool,
}

#[derive(Args, Debug)]
pub struct LoopStatusArgs {
    /// Show at most this many experiments (the most recent); counts, budget and best always
    /// cover the whole campaign.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Page back: show experiments with iter below this (`page.next_before_iter` in --json).
    #[arg(long, value_name = "ITER")]
    pub before_iter: Option<u32>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct JsonArg {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to create the demo project.
    #[arg(long, default_value = "mlres-demo", value_name = "DIR")]
    pub dir: PathBuf,
    /// Start a fresh campaign even if an unfinished one exists.
    #[arg(long)]
    pub fresh: bool,
    /// Print the final summary as JSON (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
}

const INIT_AFTER_HELP: &str = "\
Templates (TRL, in the style of TRL's own trl/scripts/*.py):
  sft   supervised fine-tuning: data with `messages`, `text`, or `prompt`+`completion`;
        objective eval_loss (minimize)
  dpo   preference optimization: `prompt`, `chosen`, `rejected`; the reference model is a
        frozen copy of the policy (--ref_model in the command for another; with --lora the
        adapter-disabled base); objective eval_loss (minimize)
  grpo  GRPO with a verifiable reward shipped in the script (the completion's final number
        must equal the row's `answer`): `prompt`, `answer`; objective eval_reward (maximize)

Each writes program.md and the script (sft.py, dpo.py, grpo.py) into the project: the script
is pinned with the approval (`code:`), runs from {project}/.venv/bin/python, evaluates on the
held-out split (or 10% of train with a fixed seed), prints metric lines mlres parses, and
never pushes (outputs come back with `mlres exp artifacts`, go to the Hub with
`mlres hub push`). With --dataset, the data is inspected first and a template it cannot train
is refused (exit 3), naming the template(s) it fits; `mlres data inspect` names them too.

Examples:
  mlres init                                     the demo campaign (built-in trainer)
  mlres init --template sft --dataset data/ --model Qwen/Qwen2.5-0.5B-Instruct
  mlres init --template dpo --lora --dataset prefs.jsonl --model models/base
  mlres init --template grpo --dataset hf:openai/gsm8k --gpus 1";

/// `mlres init`: the demo campaign, or a TRL training campaign with `--template`.
#[derive(Args, Debug)]
#[command(after_help = INIT_AFTER_HELP)]
pub struct InitArgs {
    /// Overwrite an existing program.md (and the template's script).
    #[arg(long)]
    pub force: bool,
    /// Write a TRL training campaign instead of the demo: program.md plus sft.py, dpo.py or
    /// grpo.py.
    #[arg(long, value_enum, value_name = "NAME")]
    pub template: Option<crate::templates::Template>,
    /// Fine-tune LoRA adapters (peft: rank searched over 8/16/32, alpha 32, all linear
    /// layers) instead of every weight.
    #[arg(long, requires = "template")]
    pub lora: bool,
    /// The training data: a .jsonl/.json/.csv/.parquet file, a dataset directory (train*,
    /// test* files), or hf:<owner>/<name>. Inspected first: data that cannot train the
    /// template is refused. Pinned with the approval. [default: data/ in the project]
    #[arg(long, value_name = "PATH", requires = "template")]
    pub dataset: Option<String>,
    /// The model to fine-tune: a Hub id (the jobs then get the network) or a directory in the
    /// project (offline).
    #[arg(
        long,
        value_name = "ID_OR_DIR",
        requires = "template",
        default_value = "Qwen/Qwen2.5-0.5B-Instruct"
    )]
    pub model: String,
    /// The Python the job runs: a virtualenv's `bin/python` (the job gets that whole
    /// virtualenv read-only) with torch, transformers, trl, peft and datasets. Relative paths
    /// are in the project. The venv must come from a system interpreter (/usr/bin/python3):
    /// jobs do not see $HOME, where pyenv, conda and uv keep theirs.
    #[arg(
        long,
        value_name = "PATH",
        requires = "template",
        default_value = ".venv/bin/python"
    )]
    pub python: String,
    /// GPUs per job (`gpus:`); 0 trains on CPU (`--use_cpu true --bf16 false`).
    #[arg(long, value_name = "N", requires = "template")]
    pub gpus: Option<u32>,
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// Read the approval secret from this file descriptor (scripts, CI: `3< secret.txt`)
    /// instead of asking at the terminal.
    #[arg(long, value_name = "N", conflicts_with = "secret_file")]
    pub secret_fd: Option<i32>,
    /// Read the approval secret from this file (yours, mode 600) instead of asking at the
    /// terminal.
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    /// No longer enough on its own: approvals need the approval secret. Kept so that old
    /// scripts get an explanation instead of a usage error.
    #[arg(long, hide = true)]
    pub operator: bool,
    /// Accept that this project's history (runs/) was written by another ledger that the one in
    /// use replaces (the state dir was deleted, moved or replaced): the campaign starts over
    /// with a fresh budget. mlres refuses to approve or spend until a human says so.
    #[arg(long)]
    pub acknowledge_reset: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum LoopCmd {
    /// Propose, reserve, submit, watch, evaluate until a stop condition.
    Run(LoopRunArgs),
    /// Campaign state: approval, budget used, best, recent experiments, stop condition.
    Status(LoopStatusArgs),
    /// Stop the campaign: cancel jobs in flight (or let them finish with --drain).
    Stop(LoopStopArgs),
}

#[derive(Args, Debug)]
pub struct LoopRunArgs {
    /// Start a new campaign generation (needs an approval newer than the current campaign).
    #[arg(long)]
    pub fresh: bool,
    /// Print the final summary as JSON (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LoopStopArgs {
    /// Let jobs in flight finish instead of cancelling them.
    #[arg(long)]
    pub drain: bool,
    /// Why (recorded in the ledger).
    #[arg(long, default_value = "operator request")]
    pub reason: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ExpCmd {
    /// The proposer's next configurations for the active campaign (the approved search
    /// space's method: grid, random, tpe or bayes), without submitting: pick one, add your own
    /// hypothesis, and `mlres exp submit` it.
    Suggest(ExpSuggestArgs),
    /// Validate a config against the approved search space, reserve budget and launch it.
    Submit(ExpSubmitArgs),
    /// One experiment's state (reconciled with its job first).
    Status(ExpIdArgs),
    /// Wait until the experiment is finished and evaluated.
    Wait(ExpWaitArgs),
    /// Evaluate a finished experiment (metric parsed by mlres from the job's own logs).
    Evaluate(ExpIdArgs),
    /// Print an experiment's captured output.
    Logs(ExpLogsArgs),
    /// Copy a finished local experiment's declared outputs (`outputs:` in `## Job`) into the
    /// project: text redacted, no symlink followed out of the job's work dir, nothing replaced
    /// without --force; recorded in the ledger.
    Artifacts(ExpArtifactsArgs),
}

#[derive(Args, Debug)]
pub struct ExpSuggestArgs {
    /// How many configurations (each later one counts the earlier ones as pending).
    #[arg(short = 'n', long = "count", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub n: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExpSubmitArgs {
    /// The configuration: every search-space parameter, as NAME=VALUE (repeat the flag; values
    /// are typed as the search space lists them) or as one JSON object,
    /// e.g. --config lr=0.001 --config d_model=64, or --config '{"lr": 0.001, "d_model": 64}'.
    #[arg(long, value_name = "NAME=VALUE|JSON", required = true)]
    pub config: Vec<String>,
    /// Why this experiment (recorded in the ledger).
    #[arg(long, value_name = "TEXT")]
    pub hypothesis: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExpIdArgs {
    pub id: i64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExpWaitArgs {
    pub id: i64,
    /// Give up after this long (e.g. 30m).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub timeout: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExpLogsArgs {
    pub id: i64,
    /// Show stderr instead of stdout.
    #[arg(long)]
    pub stderr: bool,
}

#[derive(Args, Debug)]
pub struct ExpArtifactsArgs {
    pub id: i64,
    /// Where to copy them: a directory in the project, not `runs/` or a hidden directory
    /// (relative paths are relative to the current directory) [default: artifacts/e<ID> in the
    /// project].
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Replace files that already exist there.
    #[arg(long)]
    pub force: bool,
    /// Refuse outputs larger than this in total.
    #[arg(long, default_value = "4GiB", value_name = "SIZE")]
    pub max_size: String,
    /// Machine-readable output: the files copied, their sizes and sha256s.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum LedgerCmd {
    /// Walk the hash chain and HMACs; report any edited, deleted, reordered or truncated event.
    Verify(JsonArg),
    /// Print the latest events.
    Events(LedgerEventsArgs),
    /// Regenerate runs/ledger.jsonl and runs/summary.md for the current campaign.
    Export(JsonArg),
}

#[derive(Args, Debug)]
pub struct LedgerEventsArgs {
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum TrainCmd {
    /// Supervised fine-tuning of a small decoder-only transformer on CPU.
    Sft(Box<SftArgs>),
}

#[derive(Args, Debug)]
pub struct SftArgs {
    /// Built-in task: `addN` (N-digit addition), `subN`, `mulN`, or e.g. `arith2:+-`.
    #[arg(long, default_value = "add2", conflicts_with = "train_file")]
    pub task: String,
    /// JSONL training data (`prompt`/`completion`, `messages` or `text` rows).
    #[arg(long, value_name = "FILE")]
    pub train_file: Option<PathBuf>,
    /// JSONL held-out data (default: the last 10% of --train-file).
    #[arg(long, value_name = "FILE", requires = "train_file")]
    pub eval_file: Option<PathBuf>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Model width.
    #[arg(long)]
    pub d_model: Option<usize>,
    /// Transformer blocks.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Attention heads.
    #[arg(long)]
    pub heads: Option<usize>,
    /// MLP width (default 4 x d_model).
    #[arg(long)]
    pub d_ff: Option<usize>,
    /// Optimiser steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Linear warmup steps.
    #[arg(long)]
    pub warmup: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long)]
    pub grad_clip: Option<f64>,
    /// Initialisation and batching seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print a `step=` line every N steps.
    #[arg(long)]
    pub log_every: Option<usize>,
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Training problems generated for a built-in task.
    #[arg(long)]
    pub train_size: Option<usize>,
    /// Held-out problems for a built-in task.
    #[arg(long)]
    pub eval_size: Option<usize>,
    /// Seed of the built-in task's train/held-out split (keep it fixed across a sweep).
    #[arg(long)]
    pub data_seed: Option<u64>,
    /// Save a safetensors checkpoint here.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

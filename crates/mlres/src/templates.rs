//! `mlres init --template sft|dpo|grpo`: a TRL training campaign (program.md plus a training
//! script in the style of TRL's own `trl/scripts/*.py`), and which template a dataset fits.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::ValueEnum;
use mlres_data::inspect::{InspectOptions, InspectReport};

use crate::{Cli, Failure, exit, fail};

/// A TRL training template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// Supervised fine-tuning (`SFTTrainer`): `messages`, `text`, or `prompt`+`completion`.
    Sft,
    /// Direct Preference Optimization (`DPOTrainer`): `prompt`, `chosen`, `rejected`.
    Dpo,
    /// GRPO (`GRPOTrainer`) with a verifiable reward: `prompt` and a numeric `answer`.
    Grpo,
}

/// Every template, in the order `data inspect` names them.
pub const ALL: [Template; 3] = [Template::Sft, Template::Dpo, Template::Grpo];

/// The column the GRPO template's reward compares completions with.
const GRPO_ANSWER: &str = "answer";

impl Template {
    pub fn name(self) -> &'static str {
        match self {
            Template::Sft => "sft",
            Template::Dpo => "dpo",
            Template::Grpo => "grpo",
        }
    }

    pub fn script_name(self) -> &'static str {
        match self {
            Template::Sft => "sft.py",
            Template::Dpo => "dpo.py",
            Template::Grpo => "grpo.py",
        }
    }

    fn script(self) -> &'static str {
        match self {
            Template::Sft => include_str!("templates/sft.py"),
            Template::Dpo => include_str!("templates/dpo.py"),
            Template::Grpo => include_str!("templates/grpo.py"),
        }
    }

    /// `Ok` when the inspected data can train this template, else why not.
    pub fn fits(self, r: &InspectReport) -> Result<(), Vec<String>> {
        let v = match self {
            Template::Sft => &r.fitness.sft,
            Template::Dpo => &r.fitness.dpo,
            Template::Grpo => &r.fitness.grpo,
        };
        let mut problems = if v.fits {
            Vec::new()
        } else {
            v.problems.clone()
        };
        if self == Template::Grpo {
            match r.columns.iter().find(|c| c.name == GRPO_ANSWER) {
                None => problems.push(format!(
                    "the template's reward (numeric_answer_reward) compares each completion's \
                     final number with an `{GRPO_ANSWER}` column, which the data does not have"
                )),
                Some(c) if c.nulls > 0 => problems.push(format!(
                    "{} row(s) with a null `{GRPO_ANSWER}` (the reward needs one per prompt)",
                    c.nulls
                )),
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Templates whose `data inspect` verdict fits but which need more than it checks (GRPO's
/// `answer` column), with why they do not fit.
pub fn near_misses(r: &InspectReport) -> Vec<(Template, Vec<String>)> {
    ALL.into_iter()
        .filter(|t| {
            let v = match t {
                Template::Sft => &r.fitness.sft,
                Template::Dpo => &r.fitness.dpo,
                Template::Grpo => &r.fitness.grpo,
            };
            v.fits
        })
        .filter_map(|t| t.fits(r).err().map(|p| (t, p)))
        .collect()
}

/// The templates the inspected data can train.
pub fn fitting(r: &InspectReport) -> Vec<Template> {
    ALL.into_iter().filter(|t| t.fits(r).is_ok()).collect()
}

/// What `init --template` was asked for.
pub struct Request<'a> {
    pub template: Template,
    pub lora: bool,
    pub dataset: Option<&'a str>,
    pub model: &'a str,
    pub python: &'a str,
    pub gpus: u32,
    pub force: bool,
}

/// Where the job finds the model or the data: a path in the project (seen through
/// `{project}`), a path outside it (datasets only: the envelope's local datasets are granted
/// to the job), or a Hub name (needs the network).
#[derive(Debug, Clone)]
enum Source {
    InProject(String),
    Outside(PathBuf),
    Hub(String),
}

impl Source {
    fn arg(&self) -> String {
        match self {
            Source::InProject(rel) if rel.is_empty() || rel == "." => "{project}".into(),
            Source::InProject(rel) => format!("{{project}}/{rel}"),
            Source::Outside(p) => p.to_string_lossy().into_owned(),
            Source::Hub(name) => name.clone(),
        }
    }

    fn remote(&self) -> bool {
        matches!(self, Source::Hub(_))
    }
}

/// `path` relative to the project root when it is inside it (both canonicalised).
fn in_project(root: &Path, path: &Path) -> Option<String> {
    let root = std::fs::canonicalize(root).ok()?;
    let p = std::fs::canonicalize(path).ok()?;
    let rel = p.strip_prefix(&root).ok()?;
    Some(rel.to_string_lossy().into_owned())
}

fn model_source(root: &Path, model: &str) -> Result<Source, Failure> {
    let p = Path::new(model);
    if p.exists() {
        return match in_project(root, p) {
            Some(rel) => Ok(Source::InProject(rel)),
            None => Err(fail(
                exit::USAGE,
                anyhow!(
                    "--model {model} is a directory outside the project: a local job sees only \
                     system directories, its code and the project (read-only). Move or copy the \
                     model into the project (a symlink out of it is not followed), or give a Hub \
                     model id. Nothing was written"
                ),
            )),
        };
    }
    if model.starts_with('/') || model.starts_with('.') || model.split('/').count() > 2 {
        return Err(fail(
            exit::USAGE,
            anyhow!(
                "--model {model}: no such directory, and not a Hub model id (owner/name). \
                 Nothing was written"
            ),
        ));
    }
    Ok(Source::Hub(model.to_string()))
}

/// The dataset's source and its inspection (`None` when it does not exist yet).
fn dataset_source(
    cli: &Cli,
    root: &Path,
    dataset: &str,
) -> Result<(Source, String, Option<InspectReport>), Failure> {
    let opts = InspectOptions {
        sample_rows: 0,
        ..InspectOptions::default()
    };
    if let Some(repo) = crate::data_hf::hf_dataset(dataset) {
        let report = crate::data_hf::inspect(cli, &repo, opts, 1000)?;
        return Ok((
            Source::Hub(repo.clone()),
            format!("hf:{repo}"),
            Some(report),
        ));
    }
    // A relative path is relative to the current directory, else to the project.
    let given = Path::new(dataset);
    let joined = root.join(given);
    let p: &Path = if given.is_relative() && !given.exists() && joined.exists() {
        &joined
    } else {
        given
    };
    if !p.exists() {
        // Not there yet: a path relative to the project, checked when it exists.
        if p.is_absolute() {
            return Ok((Source::Outside(p.to_path_buf()), dataset.to_string(), None));
        }
        let rel = dataset.trim_end_matches('/').to_string();
        return Ok((Source::InProject(rel.clone()), rel, None));
    }
    let report = mlres_data::inspect::inspect_path(p, opts, &mut |_| {})
        .map_err(|e| fail(exit::ERROR, anyhow!("cannot inspect {dataset}: {e}")))?;
    Ok(match in_project(root, p) {
        Some(rel) => (Source::InProject(rel.clone()), rel, Some(report)),
        None => {
            let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            let entry = abs.to_string_lossy().into_owned();
            (Source::Outside(abs), entry, Some(report))
        }
    })
}

/// One YAML flow-sequence item, double-quoted.
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

struct Plan {
    metric: &'static str,
    goal: &'static str,
    what: &'static str,
    /// (parameter, YAML of its distribution)
    params: Vec<(&'static str, &'static str)>,
    args: Vec<String>,
}

fn plan(t: Template, lora: bool) -> Plan {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let lr = match (t, lora) {
        (Template::Sft, false) => "{distribution: log_uniform_values, min: 1.0e-5, max: 3.0e-4}",
        (Template::Sft, true) => "{distribution: log_uniform_values, min: 5.0e-5, max: 1.0e-3}",
        (Template::Dpo, false) => "{distribution: log_uniform_values, min: 1.0e-7, max: 5.0e-6}",
        (Template::Dpo, true) => "{distribution: log_uniform_values, min: 1.0e-6, max: 1.0e-4}",
        (Template::Grpo, false) => "{distribution: log_uniform_values, min: 1.0e-7, max: 1.0e-5}",
        (Template::Grpo, true) => "{distribution: log_uniform_values, min: 1.0e-6, max: 1.0e-4}",
    };
    let mut params = vec![("learning_rate", lr)];
    let mut args = s(&["--learning_rate", "{learning_rate}"]);
    let (metric, goal, what) = match t {
        Template::Sft => {
            args.extend(s(&[
                "--num_train_epochs",
                "1",
                "--per_device_train_batch_size",
                "8",
                "--per_device_eval_batch_size",
                "8",
            ]));
            ("eval_loss", "minimize", "held-out loss")
        }
        Template::Dpo => {
            params.push(("beta", "{values: [0.05, 0.1, 0.3]}"));
            args.extend(s(&[
                "--beta",
                "{beta}",
                "--num_train_epochs",
                "1",
                "--per_device_train_batch_size",
                "4",
                "--per_device_eval_batch_size",
                "4",
            ]));
            ("eval_loss", "minimize", "held-out DPO loss")
        }
        Template::Grpo => {
            args.extend(s(&[
                "--num_train_epochs",
                "1",
                "--num_generations",
                "4",
                "--per_device_train_batch_size",
                "4",
                "--per_device_eval_batch_size",
                "4",
                "--max_completion_length",
                "128",
            ]));
            ("eval_reward", "maximize", "mean held-out reward")
        }
    };
    if lora {
        params.push(("lora_r", "{values: [8, 16, 32]}"));
        args.extend(s(&[
            "--use_peft",
            "--lora_r",
            "{lora_r}",
            "--lora_alpha",
            "32",
            "--lora_target_modules",
            "all-linear",
        ]));
    }
    Plan {
        metric,
        goal,
        what,
        params,
        args,
    }
}

fn program(
    r: &Request,
    model: &Source,
    data: &Source,
    data_entry: &str,
    fits: Option<&str>,
) -> String {
    let t = r.template;
    let p = plan(t, r.lora);
    let script = t.script_name();
    let title = match t {
        Template::Sft => "Supervised fine-tuning",
        Template::Dpo => "Direct Preference Optimization",
        Template::Grpo => "GRPO with a verifiable reward",
    };
    let network = model.remote() || data.remote();
    let python = if Path::new(r.python).is_absolute() {
        r.python.to_string()
    } else {
        format!("{{project}}/{}", r.python.trim_start_matches("./"))
    };
    let mut argv = vec![
        python.clone(),
        format!("{{code}}/{script}"),
        "--model_name_or_path".into(),
        model.arg(),
        "--dataset_name".into(),
        data.arg(),
    ];
    argv.extend(p.args.iter().cloned());
    argv.extend(
        [
            "--eval_strategy",
            "steps",
            "--eval_steps",
            "50",
            "--logging_steps",
            "10",
            "--save_strategy",
            "no",
            "--report_to",
            "none",
            "--seed",
            "{seed}",
            "--output_dir",
            "checkpoint",
        ]
        .map(String::from),
    );
    if r.gpus == 0 {
        argv.extend(["--use_cpu", "true", "--bf16", "false"].map(String::from));
    }
    // One flag and its value per line.
    let mut lines: Vec<Vec<String>> = Vec::new();
    for (i, a) in argv.iter().enumerate() {
        match lines.last_mut() {
            Some(l) if i > 1 && !a.starts_with("--") => l.push(yaml_str(a)),
            Some(l) if i == 1 => l.push(yaml_str(a)),
            _ => lines.push(vec![yaml_str(a)]),
        }
    }
    let command = lines
        .iter()
        .map(|l| l.join(", "))
        .collect::<Vec<_>>()
        .join(",\n  ");
    let lora = if r.lora {
        " with LoRA (peft: rank `lora_r`, alpha 32, every linear layer)"
    } else {
        ""
    };
    let needs = match t {
        Template::Sft => {
            "- Data: a `messages` column (chat; the model's tokenizer needs a chat template), a \
             `text` column, or `prompt` and `completion`."
        }
        Template::Dpo => {
            "- Data: `prompt`, `chosen` and `rejected` columns (one preferred and one \
             dispreferred answer per prompt).\n- Reference model: a frozen copy of the starting \
             policy, loaded a second time (add `--ref_model PATH` to the command for another \
             one); with LoRA no copy is loaded, the base model with the adapter disabled is the \
             reference. `beta` sets how close the policy stays to it."
        }
        Template::Grpo => {
            "- Data: a `prompt` column and an `answer` column.\n- Reward: `numeric_answer_reward` \
             in grpo.py, a verifiable reward: 1.0 when the last number of a completion equals \
             the last number of the row's `answer`, else 0.0. No reward model; edit \
             `REWARD_FUNCS` to add your own (a code change needs a new approval). No reference \
             model (`beta` is 0)."
        }
    };
    let model_line = match model {
        Source::Hub(m) => format!(
            "- Model: `{m}` from the Hugging Face Hub, downloaded by each job (the job has the \
             network). Download it once into the project and pass its directory to \
             `mlres init --model` to run offline."
        ),
        Source::InProject(rel) => format!(
            "- Model: `{rel}`, a directory in the project (read-only to the job), as `{}`.",
            model.arg()
        ),
        Source::Outside(p) => format!("- Model: `{}`.", p.display()),
    };
    let data_line = match (data, fits) {
        (_, Some(f)) => format!(
            "- Dataset: `{data_entry}`, pinned by content with the approval (`datasets:`); \
             `mlres data inspect` found it fits {f}."
        ),
        _ => format!(
            "- Dataset: `{data_entry}` (not there yet: put `train.jsonl`, and `test.jsonl` if you \
             have a held-out split, in it, then run `mlres data inspect {data_entry}`); pinned by \
             content with the approval (`datasets:`)."
        ),
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"# {title}: TRL {upper}{lora}

## Goal
Find the {t} training configuration with the best {what} (`{metric}`, {goal}d) on the
held-out split of the dataset.

## Scope
{model_line}
{data_line}
{needs}
- Code: `{script}` (every `{config}` flag works in the command), pinned with the approval
  (`code:`). Jobs run the approved, read-only copy; editing it afterwards is refused until a
  human approves again.
- Python: `{python}`, a virtualenv with torch, transformers, trl, peft and datasets; the job
  gets that virtualenv read-only. Make it from a system interpreter
  (`/usr/bin/python3 -m venv .venv`): a job sees system directories, not `$HOME`, so a venv
  of a pyenv, conda or uv-managed Python there cannot start.
- Evaluation: the dataset's `test` (else `validation`) split; without one, 10% of train held
  out with a fixed seed (`--eval_split_seed`), the same rows for every experiment.
- Output repos: none. `checkpoint/` comes back with `mlres exp artifacts <id>`; the script
  never pushes. To publish, list a repo in `output_repos`, approve, and run
  `mlres hub push <id> <repo>`.

## Output format
The script ends with the final held-out evaluation (`trainer.log_metrics`, then the same
numbers as one JSON line); mlres reads `{metric}` from it. `checkpoint/` holds the model (or
the LoRA adapter), the tokenizer and `eval_results.json`.

## Keep/discard criteria
Keep an experiment when its `{metric}` beats the best so far; otherwise discard.

## Budget envelope
```yaml
max_jobs: 8
max_walltime: 8h
allowed_flavors: [cpu-basic]
max_timeout: 1h
allow_deletes: false
output_repos: []
max_concurrent: 1
backends: [local]
datasets: [{data_yaml}]
```

## Objective
```yaml
metric: {metric}
goal: {goal}
patience: 4
max_consecutive_failures: 2
```

## Job
```yaml
backend: local
code: [{script}]
command: [{command}]
flavor: cpu-basic
timeout: 1h
limits:
  memory: 16GiB     # cgroup memory (no address-space cap: CUDA and torch reserve far more)
  processes: 1024
network: {network}
env:
  HF_HOME: hf-home  # in the job's work dir: caches the job may write
  TOKENIZERS_PARALLELISM: "false"{offline}{gpus}
outputs: [checkpoint/]
```

## Search space
```yaml
method: random
seed: 0
parameters:
{params}```
"#,
        upper = t.name().to_uppercase(),
        config = match t {
            Template::Sft => "SFTConfig",
            Template::Dpo => "DPOConfig",
            Template::Grpo => "GRPOConfig",
        },
        t = t.name().to_uppercase(),
        what = p.what,
        metric = p.metric,
        goal = p.goal,
        data_yaml = yaml_str(data_entry),
        offline = if network {
            ""
        } else {
            "\n  HF_HUB_OFFLINE: \"1\""
        },
        gpus = if r.gpus > 0 {
            format!("\ngpus: {}", r.gpus)
        } else {
            String::new()
        },
        params = p
            .params
            .iter()
            .map(|(k, v)| format!("  {k}: {v}\n"))
            .collect::<String>(),
    );
    out
}

fn names(ts: &[Template]) -> String {
    if ts.is_empty() {
        return "none of the templates".into();
    }
    ts.iter()
        .map(|t| format!("`mlres init --template {}`", t.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `mlres init --template …`: writes program.md and the template's script into the project.
pub fn init(cli: &Cli, r: &Request) -> Result<u8, Failure> {
    let root = &cli.project;
    let t = r.template;
    let program_path = root.join("program.md");
    let script_path = root.join(t.script_name());
    if !r.force {
        for p in [&program_path, &script_path] {
            if p.exists() {
                return Err(fail(
                    exit::ERROR,
                    anyhow!("{} exists; pass --force to overwrite it", p.display()),
                ));
            }
        }
    }
    std::fs::create_dir_all(root).map_err(|e| {
        fail(
            exit::ERROR,
            anyhow!("cannot create {}: {e}", root.display()),
        )
    })?;
    let model = model_source(root, r.model)?;
    let dataset = r.dataset.unwrap_or("data");
    let (data, data_entry, report) = dataset_source(cli, root, dataset)?;
    let mut fits_text = None;
    if let Some(report) = &report {
        if let Err(problems) = t.fits(report) {
            let other = fitting(report);
            return Err(fail(
                exit::REFUSED,
                anyhow!(
                    "refused (data_unfit): {dataset} cannot train the {} template:\n  - {}\n\
                     The data fits {}. Check it with `mlres data inspect {dataset}`. Nothing was \
                     written",
                    t.name(),
                    problems.join("\n  - "),
                    names(&other),
                ),
            ));
        }
        fits_text = Some(match t {
            Template::Sft => format!(
                "SFT ({})",
                report.fitness.sft.layout.as_deref().unwrap_or("?")
            ),
            Template::Dpo => "DPO (prompt+chosen+rejected)".to_string(),
            Template::Grpo => "GRPO (prompt+answer)".to_string(),
        });
    }
    let text = program(r, &model, &data, &data_entry, fits_text.as_deref());
    for (path, body) in [(&script_path, t.script()), (&program_path, text.as_str())] {
        std::fs::write(path, body)
            .map_err(|e| fail(exit::ERROR, anyhow!("cannot write {}: {e}", path.display())))?;
    }
    println!(
        "wrote {} and {} (TRL {}{})",
        program_path.display(),
        script_path.display(),
        t.name().to_uppercase(),
        if r.lora { " + LoRA" } else { "" }
    );
    match (&report, &fits_text) {
        (Some(_), Some(f)) => println!("data: {data_entry} fits {f}"),
        _ => println!(
            "data: {data_entry} does not exist yet; put train.jsonl (and test.jsonl) there, then \
             run `mlres data inspect {data_entry}`"
        ),
    }
    let python = if Path::new(r.python).is_absolute() {
        PathBuf::from(r.python)
    } else {
        root.join(r.python)
    };
    if !python.exists() {
        println!(
            "python: the job runs {}, which does not exist yet; create it with\n  \
             /usr/bin/python3 -m venv .venv && .venv/bin/pip install torch transformers trl peft datasets",
            python.display()
        );
    }
    println!(
        "next: review program.md, run `mlres check`, then a human runs `mlres approve` and \
         `mlres loop run`"
    );
    Ok(exit::OK)
}

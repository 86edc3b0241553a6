//! `mlres-train`: the built-in CPU trainer of mlres. A small decoder-only transformer over
//! bytes with hand-written forward and backward passes in plain single-threaded Rust (no ML
//! framework), trained by supervised fine-tuning (loss on completion tokens only) with AdamW,
//! warmup + cosine decay and global-norm gradient clipping. It also ships a deterministic
//! arithmetic task generator and a JSONL loader, evaluates held-out loss and greedy exact-match
//! accuracy, writes `key=value` metric lines to a caller-supplied writer and saves safetensors
//! checkpoints.
//!
//! This crate must not know about budgets, the broker, the ledger, backends, sandboxes or the
//! CLI: it is a pure library that turns a [`SftConfig`] into metric lines and a checkpoint.

mod checkpoint;
mod data;
mod error;
mod kernels;
pub mod model;
mod rng;

pub use checkpoint::{FORMAT, META_CONFIG, META_FORMAT, load_checkpoint, save_checkpoint};
pub use data::{
    Dataset, Example, Problem, arithmetic_problems, load_jsonl, load_jsonl_dataset, render_messages,
};
pub use error::{JsonlErrorKind, TrainError};
pub use model::{Batch, Model, ModelConfig, Seq, TensorSpec, Workspace};
pub use rng::Rng;

use std::io::Write;
use std::path::{Path, PathBuf};

/// Standard deviation of the random weight initialisation.
pub const INIT_STD: f64 = 0.02;
/// AdamW β₁.
pub const ADAM_BETA1: f64 = 0.9;
/// AdamW β₂.
pub const ADAM_BETA2: f64 = 0.99;
/// AdamW ε.
pub const ADAM_EPS: f64 = 1e-8;
/// Default data seed of the arithmetic generator (same split for every experiment of a sweep).
pub const DEFAULT_DATA_SEED: u64 = 1234;

/// Where the training data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    /// Built-in integer arithmetic: prompts like `47+38=`, completions like `85`; operands are
    /// uniform in `[0, 10^digits)`; train and eval problems are disjoint and depend only on
    /// `data_seed` (the eval set does not depend on `train_size`).
    Arithmetic {
        /// Operand digits (1..=9).
        digits: u32,
        /// Operators, a non-empty subset of `+`, `-`, `*`.
        ops: Vec<char>,
        /// Number of training problems.
        train_size: usize,
        /// Number of held-out problems.
        eval_size: usize,
        /// Seed of the problem generator.
        data_seed: u64,
    },
    /// JSONL files (see [`load_jsonl`]); without `eval` the last 10% of `train` is held out.
    Jsonl {
        /// Training file.
        train: PathBuf,
        /// Optional held-out file.
        eval: Option<PathBuf>,
    },
}

impl DataSource {
    /// The default arithmetic task: 2-digit addition, 5000 train / 200 eval problems.
    pub fn default_arithmetic() -> DataSource {
        DataSource::Arithmetic {
            digits: 2,
            ops: vec!['+'],
            train_size: 5000,
            eval_size: 200,
            data_seed: DEFAULT_DATA_SEED,
        }
    }
}

/// Hyperparameters of one SFT run.
#[derive(Clone, Debug, PartialEq)]
pub struct SftConfig {
    /// Peak learning rate (> 0).
    pub lr: f64,
    /// Model width (divisible by `n_heads`).
    pub d_model: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// MLP hidden width (default `4·d_model`).
    pub d_ff: Option<usize>,
    /// Optimizer steps (> 0).
    pub steps: usize,
    /// Linear warmup steps (`<= steps`; 0 = none).
    pub warmup: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Decoupled AdamW weight decay (>= 0), applied to matrices and embeddings only.
    pub weight_decay: f64,
    /// Global gradient-norm clip (> 0; `f64::INFINITY` disables clipping).
    pub grad_clip: f64,
    /// Seed for initialisation and batch order.
    pub seed: u64,
    /// Print a `step=` line every this many steps (> 0).
    pub log_every: usize,
    /// Maximum input positions; longer sequences are truncated.
    pub max_seq_len: usize,
    /// Training data.
    pub data: DataSource,
}

impl Default for SftConfig {
    fn default() -> Self {
        SftConfig {
            lr: 3e-3,
            d_model: 48,
            n_layers: 2,
            n_heads: 4,
            d_ff: None,
            steps: 1500,
            warmup: 100,
            batch_size: 32,
            weight_decay: 0.1,
            grad_clip: 1.0,
            seed: 0,
            log_every: 100,
            max_seq_len: 32,
            data: DataSource::default_arithmetic(),
        }
    }
}

impl SftConfig {
    /// Checks every value; returns a clear [`TrainError::InvalidConfig`] on the first problem.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::InvalidConfig(m));
        if !self.lr.is_finite() || self.lr <= 0.0 {
            return bad(format!("lr must be finite and > 0, got {}", self.lr));
        }
        if self.d_model == 0 {
            return bad("d_model must be > 0".into());
        }
        if self.n_layers == 0 {
            return bad("n_layers must be > 0".into());
        }
        if self.n_heads == 0 {
            return bad("n_heads must be > 0".into());
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return bad(format!(
                "d_model ({}) must be divisible by n_heads ({})",
                self.d_model, self.n_heads
            ));
        }
        if self.d_ff == Some(0) {
            return bad("d_ff must be > 0".into());
        }
        if self.steps == 0 {
            return bad("steps must be > 0".into());
        }
        if self.warmup > self.steps {
            return bad(format!(
                "warmup ({}) must not exceed steps ({})",
                self.warmup, self.steps
            ));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be > 0".into());
        }
        if !self.weight_decay.is_finite() || self.weight_decay < 0.0 {
            return bad(format!(
                "weight_decay must be finite and >= 0, got {}",
                self.weight_decay
            ));
        }
        if self.grad_clip.is_nan() || self.grad_clip <= 0.0 {
            return bad(format!("grad_clip must be > 0, got {}", self.grad_clip));
        }
        if self.log_every == 0 {
            return bad("log_every must be > 0".into());
        }
        if self.max_seq_len < 2 {
            return bad(format!(
                "max_seq_len must be >= 2, got {}",
                self.max_seq_len
            ));
        }
        if let DataSource::Arithmetic {
            digits,
            ops,
            train_size,
            eval_size,
            ..
        } = &self.data
        {
            // Reuse the generator's checks without generating (sizes 0 are caught there too).
            if !(1..=9).contains(digits) || ops.is_empty() || *train_size == 0 || *eval_size == 0 {
                return arithmetic_problems(*digits, ops, *train_size, *eval_size, 0).map(|_| ());
            }
        }
        Ok(())
    }

    /// The model architecture this config trains.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            vocab_size: model::VOCAB_SIZE,
            d_model: self.d_model,
            n_layers: self.n_layers,
            n_heads: self.n_heads,
            d_ff: self.d_ff.unwrap_or(4 * self.d_model),
            max_seq_len: self.max_seq_len,
        }
    }
}

/// Result of [`run_sft`].
#[derive(Clone, Debug, PartialEq)]
pub struct SftReport {
    /// Mean training loss over the last (up to) 50 steps; NaN if training diverged.
    pub train_loss: f64,
    /// Mean completion-token cross-entropy on the held-out split (nats/token).
    pub eval_loss: f64,
    /// Greedy-decoding exact-match accuracy on held-out prompt/completion examples
    /// (0 if there are none, e.g. text-only data, or if training diverged).
    pub eval_accuracy: f64,
    /// Optimizer updates applied.
    pub steps: usize,
    /// Number of scalar parameters.
    pub params: usize,
    /// Whether the loss or gradient became NaN/inf (training stopped early).
    pub diverged: bool,
}

/// Learning rate at 1-based `step`: linear warmup to `lr`, then cosine decay to `0.1·lr`.
pub fn lr_at(cfg: &SftConfig, step: usize) -> f64 {
    if cfg.warmup > 0 && step <= cfg.warmup {
        return cfg.lr * step as f64 / cfg.warmup as f64;
    }
    let span = (cfg.steps - cfg.warmup).max(1) as f64;
    let progress = ((step - cfg.warmup) as f64 / span).clamp(0.0, 1.0);
    let min = 0.1 * cfg.lr;
    min + (cfg.lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Loads or generates the train/eval examples of a config.
pub fn load_dataset(data: &DataSource) -> Result<Dataset, TrainError> {
    match data {
        DataSource::Arithmetic {
            digits,
            ops,
            train_size,
            eval_size,
            data_seed,
        } => {
            let (tr, ev) = arithmetic_problems(*digits, ops, *train_size, *eval_size, *data_seed)?;
            Ok(Dataset {
                train: tr.iter().map(Problem::example).collect(),
                eval: ev.iter().map(Problem::example).collect(),
            })
        }
        DataSource::Jsonl { train, eval } => load_jsonl_dataset(train, eval.as_deref()),
    }
}

/// Held-out metrics of a model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalResult {
    /// Mean loss per target token (NaN if there are no targets).
    pub loss: f64,
    /// Greedy exact-match accuracy over prompt/completion examples (0 if none).
    pub accuracy: f64,
}

const EVAL_CHUNK: usize = 64;

/// Mean target-token cross-entropy of `model` over `examples`.
pub fn eval_loss(model: &Model, examples: &[Example]) -> f64 {
    let msl = model.config().max_seq_len;
    let seqs: Vec<Seq> = examples
        .iter()
        .map(|e| e.encode(msl))
        .filter(|s| s.n_targets() > 0)
        .collect();
    let (mut sum, mut cnt) = (0.0, 0usize);
    for ch in seqs.chunks(EVAL_CHUNK) {
        let (s, n) = model.loss_sum(&Batch::from_seqs(ch));
        sum += s;
        cnt += n;
    }
    if cnt == 0 { f64::NAN } else { sum / cnt as f64 }
}

/// Greedy exact-match accuracy: for each prompt/completion example, decode from
/// `BOS + prompt` and count it correct iff the output is exactly the completion followed by
/// EOS within the context limit. Decoding of an example stops at its first wrong token (greedy
/// decoding is deterministic, so this equals decoding to EOS and comparing strings).
pub fn exact_match_accuracy(model: &Model, examples: &[Example]) -> f64 {
    let msl = model.config().max_seq_len;
    struct Active {
        ctx: Vec<u32>,
        expect: Vec<u32>,
        next: usize,
    }
    let mut active = Vec::new();
    let mut total = 0usize;
    for e in examples {
        if let Example::PromptCompletion { prompt, completion } = e {
            total += 1;
            let ctx: Vec<u32> = std::iter::once(model::BOS)
                .chain(prompt.bytes().map(u32::from))
                .collect();
            let expect: Vec<u32> = completion
                .bytes()
                .map(u32::from)
                .chain(std::iter::once(model::EOS))
                .collect();
            active.push(Active {
                ctx,
                expect,
                next: 0,
            });
        }
    }
    if total == 0 {
        return 0.0;
    }
    let mut correct = 0usize;
    let v = model.config().vocab_size;
    while !active.is_empty() {
        // Contexts that no longer fit can never finish: wrong.
        active.retain(|a| a.ctx.len() <= msl);
        let mut still = Vec::with_capacity(active.len());
        for ch in active.chunks(EVAL_CHUNK) {
            let b = Batch::for_next_token(ch.iter().map(|a| a.ctx.as_slice()));
            let logits = model.logits(&b);
            for (i, a) in ch.iter().enumerate() {
                let t = model::argmax(&logits[i * v..(i + 1) * v]) as u32;
                if t != a.expect[a.next] {
                    continue;
                }
                if a.next + 1 == a.expect.len() {
                    correct += 1;
                    continue;
                }
                let mut ctx = a.ctx.clone();
                ctx.push(t);
                still.push(Active {
                    ctx,
                    expect: a.expect.clone(),
                    next: a.next + 1,
                });
            }
        }
        active = still;
    }
    correct as f64 / total as f64
}

/// Held-out loss and accuracy.
pub fn evaluate(model: &Model, examples: &[Example]) -> EvalResult {
    EvalResult {
        loss: eval_loss(model, examples),
        accuracy: exact_match_accuracy(model, examples),
    }
}

fn emit(out: &mut dyn Write, line: &str) -> Result<(), TrainError> {
    writeln!(out, "{line}").map_err(TrainError::Output)?;
    out.flush().map_err(TrainError::Output)
}

/// AdamW state over the flat parameter vector.
struct AdamW {
    m: Vec<f32>,
    v: Vec<f32>,
    decay: Vec<bool>,
    t: i32,
}

impl AdamW {
    fn new(model: &Model) -> AdamW {
        let n = model.param_count();
        let mut decay = vec![false; n];
        for s in model.specs() {
            decay[s.offset..s.offset + s.len].fill(s.decay);
        }
        AdamW {
            m: vec![0.0; n],
            v: vec![0.0; n],
            decay,
            t: 0,
        }
    }

    fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f64, wd: f64) {
        self.t += 1;
        let bc1 = 1.0 - ADAM_BETA1.powi(self.t);
        let bc2 = 1.0 - ADAM_BETA2.powi(self.t);
        let (b1, b2) = (ADAM_BETA1 as f32, ADAM_BETA2 as f32);
        let step_size = (lr / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        let eps = ADAM_EPS as f32;
        let decay_factor = (1.0 - lr * wd) as f32;
        for i in 0..params.len() {
            let g = grads[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            if self.decay[i] {
                params[i] *= decay_factor;
            }
            params[i] -= step_size * self.m[i] / ((self.v[i]).sqrt() * inv_sqrt_bc2 + eps);
        }
    }
}

/// Validates the config (clear error for zero/negative/inconsistent values, e.g. d_model not
/// divisible by n_heads), trains, evaluates, writes metric lines to `out`, and saves a
/// safetensors checkpoint to `checkpoint` if given.
///
/// Lines: every `log_every` steps `step=N loss=L lr=R` (L = mean training loss since the
/// previous line); on divergence `diverged=1 step=N`; at the end
/// `eval_loss=.. eval_accuracy=.. train_loss=.. steps=.. params=..`.
pub fn run_sft(
    cfg: &SftConfig,
    out: &mut dyn Write,
    checkpoint: Option<&Path>,
) -> Result<SftReport, TrainError> {
    cfg.validate()?;
    let data = load_dataset(&cfg.data)?;
    let (model, report) = train(cfg, &data, out)?;
    if let Some(path) = checkpoint {
        let sft_meta = format!(
            "{{\"lr\":{},\"steps\":{},\"seed\":{},\"eval_loss\":{},\"eval_accuracy\":{}}}",
            json_f64(cfg.lr),
            report.steps,
            cfg.seed,
            json_f64(report.eval_loss),
            json_f64(report.eval_accuracy)
        );
        save_checkpoint(&model, &[("sft", sft_meta)], path)?;
    }
    Ok(report)
}

fn json_f64(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".into()
    }
}

/// Trains a fresh model on an already loaded dataset (see [`run_sft`]); returns the model too.
pub fn train(
    cfg: &SftConfig,
    data: &Dataset,
    out: &mut dyn Write,
) -> Result<(Model, SftReport), TrainError> {
    cfg.validate()?;
    let seqs: Vec<Seq> = data
        .train
        .iter()
        .map(|e| e.encode(cfg.max_seq_len))
        .filter(|s| s.n_targets() > 0)
        .collect();
    if seqs.is_empty() {
        return Err(TrainError::NoTrainableExamples(format!(
            "all {} training examples have no loss token within max_seq_len={}",
            data.train.len(),
            cfg.max_seq_len
        )));
    }
    let mut model = Model::init(cfg.model_config(), cfg.seed, INIT_STD);
    let mut rng = Rng::new(cfg.seed ^ 0x5EED_DA7A_0BAD_CAFE);
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    rng.shuffle(&mut order);
    let mut cursor = 0usize;
    let mut opt = AdamW::new(&model);
    let mut grads = vec![0.0f32; model.param_count()];
    let mut ws = model::Workspace::default();
    let mut recent: std::collections::VecDeque<f64> = std::collections::VecDeque::new();
    let (mut win_sum, mut win_n) = (0.0f64, 0usize);
    let mut done = 0usize;
    let mut diverged = false;
    let mut batch_idx = Vec::with_capacity(cfg.batch_size);

    for step in 1..=cfg.steps {
        batch_idx.clear();
        for _ in 0..cfg.batch_size {
            if cursor == order.len() {
                rng.shuffle(&mut order);
                cursor = 0;
            }
            batch_idx.push(order[cursor]);
            cursor += 1;
        }
        let batch = Batch::from_seqs(batch_idx.iter().map(|&i| &seqs[i]));
        grads.fill(0.0);
        let loss = model.loss_and_grad_with(&batch, &mut grads, &mut ws);
        let norm = grads
            .iter()
            .map(|&g| (g as f64) * (g as f64))
            .sum::<f64>()
            .sqrt();
        if !loss.is_finite() || !norm.is_finite() {
            diverged = true;
            emit(out, &format!("diverged=1 step={step}"))?;
            break;
        }
        if norm > cfg.grad_clip {
            let s = (cfg.grad_clip / norm) as f32;
            grads.iter_mut().for_each(|g| *g *= s);
        }
        let lr = lr_at(cfg, step);
        opt.step(&mut model.params, &grads, lr, cfg.weight_decay);
        done = step;
        recent.push_back(loss);
        if recent.len() > 50 {
            recent.pop_front();
        }
        win_sum += loss;
        win_n += 1;
        if step.is_multiple_of(cfg.log_every) {
            emit(
                out,
                &format!("step={step} loss={:.4} lr={lr:.6}", win_sum / win_n as f64),
            )?;
            win_sum = 0.0;
            win_n = 0;
        }
    }

    let train_loss = if diverged || recent.is_empty() {
        f64::NAN
    } else {
        recent.iter().sum::<f64>() / recent.len() as f64
    };
    let eval_loss = eval_loss(&model, &data.eval);
    let eval_accuracy = if diverged {
        0.0
    } else {
        exact_match_accuracy(&model, &data.eval)
    };
    let report = SftReport {
        train_loss,
        eval_loss,
        eval_accuracy,
        steps: done,
        params: model.param_count(),
        diverged,
    };
    emit(
        out,
        &format!(
            "eval_loss={:.4} eval_accuracy={:.4} train_loss={:.4} steps={} params={}",
            report.eval_loss, report.eval_accuracy, report.train_loss, report.steps, report.params
        ),
    )?;
    Ok((model, report))
}

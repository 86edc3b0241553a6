//! The decoder-only transformer: parameter layout, forward pass, hand-written backward pass.
//!
//! All linear weights are stored row-major as `[in, out]` so a layer computes `y = x·W`.
//! Sequences of different lengths are packed back to back (no padding); attention is computed
//! per sequence, so tokens never attend across sequence boundaries.

use crate::kernels::{add_scaled, dot, fast_exp, gelu_bwd, gelu_fwd, matmul, matmul_at, matmul_bt};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Number of byte tokens.
pub const BYTE_VOCAB: usize = 256;
/// Beginning-of-sequence token id.
pub const BOS: u32 = 256;
/// End-of-sequence token id.
pub const EOS: u32 = 257;
/// Padding token id (reserved; packing means training never needs it).
pub const PAD: u32 = 258;
/// Vocabulary size: 256 bytes + BOS, EOS, PAD.
pub const VOCAB_SIZE: usize = 259;

const LN_EPS: f32 = 1e-5;

/// Architecture hyperparameters (stored as JSON in checkpoint metadata under `config`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Vocabulary size (259 for the byte tokenizer).
    pub vocab_size: usize,
    /// Residual stream width.
    pub d_model: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Attention heads per block (`d_model % n_heads == 0`).
    pub n_heads: usize,
    /// Hidden width of the MLP.
    pub d_ff: usize,
    /// Maximum number of input positions (rows of `pos_emb`).
    pub max_seq_len: usize,
}

/// Name, shape and location of one parameter tensor inside the flat parameter vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// Tensor name, e.g. `blocks.0.attn.wq`.
    pub name: String,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Offset into the flat parameter vector.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
    /// Whether AdamW weight decay applies (matrices yes; LayerNorm parameters and biases no).
    pub decay: bool,
}

#[derive(Clone, Debug)]
struct BlockIdx {
    ln1_w: usize,
    ln1_b: usize,
    wq: usize,
    wk: usize,
    wv: usize,
    wo: usize,
    ln2_w: usize,
    ln2_b: usize,
    w1: usize,
    b1: usize,
    w2: usize,
    b2: usize,
}

/// A model: configuration plus all parameters in one flat `f32` vector.
#[derive(Clone, Debug)]
pub struct Model {
    cfg: ModelConfig,
    /// Flat parameter vector; see [`Model::specs`] for the layout.
    pub params: Vec<f32>,
    specs: Vec<TensorSpec>,
    tok_emb: usize,
    pos_emb: usize,
    blocks: Vec<BlockIdx>,
    lnf_w: usize,
    lnf_b: usize,
    head: usize,
}

/// One tokenised training/eval sequence: `tokens[0]` is BOS; the model is trained to predict
/// `tokens[j]` for every `j >= loss_start` from `tokens[..j]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seq {
    /// Token ids (BOS first).
    pub tokens: Vec<u32>,
    /// First token index that contributes to the loss (>= 1).
    pub loss_start: usize,
}

impl Seq {
    /// Number of loss targets in this sequence.
    pub fn n_targets(&self) -> usize {
        self.tokens.len().saturating_sub(self.loss_start.max(1))
    }
}

/// A packed batch: input tokens of several sequences back to back, plus the rows at which
/// logits are needed (and their targets, when training).
#[derive(Clone, Debug, Default)]
pub struct Batch {
    tokens: Vec<u32>,
    pos: Vec<usize>,
    seqs: Vec<(usize, usize)>,
    out_rows: Vec<usize>,
    targets: Vec<u32>,
}

impl Batch {
    /// Builds a training batch; each sequence contributes inputs `tokens[..len-1]` and targets
    /// at positions `loss_start..len`. Sequences must have at most the model's
    /// `max_seq_len + 1` tokens and ids below `vocab_size` (the model's forward pass asserts
    /// this; [`crate::Example::encode`] guarantees it).
    pub fn from_seqs<'a>(seqs: impl IntoIterator<Item = &'a Seq>) -> Batch {
        let mut b = Batch::default();
        for s in seqs {
            if s.tokens.len() < 2 {
                continue;
            }
            let start = b.tokens.len();
            let n_in = s.tokens.len() - 1;
            b.seqs.push((start, n_in));
            for (p, &t) in s.tokens[..n_in].iter().enumerate() {
                b.tokens.push(t);
                b.pos.push(p);
            }
            for j in s.loss_start.max(1)..s.tokens.len() {
                b.out_rows.push(start + j - 1);
                b.targets.push(s.tokens[j]);
            }
        }
        b
    }

    /// Builds an inference batch requesting logits at the last position of every context.
    pub fn for_next_token<'a>(contexts: impl IntoIterator<Item = &'a [u32]>) -> Batch {
        let mut b = Batch::default();
        for c in contexts {
            if c.is_empty() {
                continue;
            }
            let start = b.tokens.len();
            b.seqs.push((start, c.len()));
            for (p, &t) in c.iter().enumerate() {
                b.tokens.push(t);
                b.pos.push(p);
            }
            b.out_rows.push(start + c.len() - 1);
            b.targets.push(0);
        }
        b
    }

    /// Number of loss targets (= logit rows).
    pub fn n_targets(&self) -> usize {
        self.out_rows.len()
    }

    /// Number of packed input tokens.
    pub fn n_tokens(&self) -> usize {
        self.tokens.len()
    }
}

#[derive(Default)]
struct LayerActs {
    x_in: Vec<f32>,
    h1: Vec<f32>,
    mean1: Vec<f32>,
    rstd1: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    probs: Vec<f32>,
    att: Vec<f32>,
    x_mid: Vec<f32>,
    h2: Vec<f32>,
    mean2: Vec<f32>,
    rstd2: Vec<f32>,
    f1: Vec<f32>,
    t: Vec<f32>,
    g: Vec<f32>,
}

/// Reusable activation and gradient buffers for [`Model::loss_and_grad_with`].
#[derive(Default)]
pub struct Workspace {
    acts: Acts,
    bw: BackBufs,
}

#[derive(Default)]
struct BackBufs {
    scratch: Vec<f32>,
    dp: Vec<f32>,
    dlogits: Vec<f32>,
    dhf: Vec<f32>,
    dxf_rows: Vec<f32>,
    dx: Vec<f32>,
    df1: Vec<f32>,
    dh2: Vec<f32>,
    datt: Vec<f32>,
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
    dh1: Vec<f32>,
}

/// Clears `v` and refills it with `len` zeros, keeping its allocation.
fn zeroed(v: &mut Vec<f32>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}

#[derive(Default)]
struct Acts {
    layers: Vec<LayerActs>,
    prob_offsets: Vec<usize>,
    x_final: Vec<f32>,
    xf_rows: Vec<f32>,
    hf: Vec<f32>,
    meanf: Vec<f32>,
    rstdf: Vec<f32>,
    logits: Vec<f32>,
}

fn ln_forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    d: usize,
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    for (i, (xr, or)) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
        let mu = xr.iter().sum::<f32>() / d as f32;
        let var = xr.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / d as f32;
        let rs = 1.0 / (var + LN_EPS).sqrt();
        mean[i] = mu;
        rstd[i] = rs;
        for j in 0..d {
            or[j] = (xr[j] - mu) * rs * w[j] + b[j];
        }
    }
}

/// Accumulates dx (+=), dw, db for y = LN(x)·w + b.
#[allow(clippy::too_many_arguments)]
fn ln_backward(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    mean: &[f32],
    rstd: &[f32],
    d: usize,
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let mut dxhat = vec![0.0f32; d];
    for (i, ((dyr, xr), dxr)) in dy
        .chunks_exact(d)
        .zip(x.chunks_exact(d))
        .zip(dx.chunks_exact_mut(d))
        .enumerate()
    {
        let (mu, rs) = (mean[i], rstd[i]);
        let mut s1 = 0.0f32;
        let mut s2 = 0.0f32;
        for j in 0..d {
            let xhat = (xr[j] - mu) * rs;
            dw[j] += dyr[j] * xhat;
            db[j] += dyr[j];
            dxhat[j] = dyr[j] * w[j];
            s1 += dxhat[j];
            s2 += dxhat[j] * xhat;
        }
        s1 /= d as f32;
        s2 /= d as f32;
        for j in 0..d {
            let xhat = (xr[j] - mu) * rs;
            dxr[j] += rs * (dxhat[j] - s1 - xhat * s2);
        }
    }
}

struct LayoutBuilder {
    specs: Vec<TensorSpec>,
    total: usize,
}

impl LayoutBuilder {
    fn push(&mut self, name: String, shape: Vec<usize>, decay: bool) -> usize {
        let len = shape.iter().product();
        let offset = self.total;
        self.specs.push(TensorSpec {
            name,
            shape,
            offset,
            len,
            decay,
        });
        self.total += len;
        offset
    }
}

impl Model {
    /// Builds a model with zeroed parameters (LayerNorm gains 1). Use [`Model::init`] to
    /// randomise. The config must be valid (checked by the caller: `d_model % n_heads == 0`,
    /// all sizes > 0).
    pub fn zeros(cfg: ModelConfig) -> Model {
        let d = cfg.d_model;
        let mut lb = LayoutBuilder {
            specs: Vec::new(),
            total: 0,
        };
        let tok_emb = lb.push("tok_emb".into(), vec![cfg.vocab_size, d], true);
        let pos_emb = lb.push("pos_emb".into(), vec![cfg.max_seq_len, d], true);
        let mut blocks = Vec::new();
        for l in 0..cfg.n_layers {
            let p = |s: &str| format!("blocks.{l}.{s}");
            blocks.push(BlockIdx {
                ln1_w: lb.push(p("ln1.weight"), vec![d], false),
                ln1_b: lb.push(p("ln1.bias"), vec![d], false),
                wq: lb.push(p("attn.wq"), vec![d, d], true),
                wk: lb.push(p("attn.wk"), vec![d, d], true),
                wv: lb.push(p("attn.wv"), vec![d, d], true),
                wo: lb.push(p("attn.wo"), vec![d, d], true),
                ln2_w: lb.push(p("ln2.weight"), vec![d], false),
                ln2_b: lb.push(p("ln2.bias"), vec![d], false),
                w1: lb.push(p("mlp.w1"), vec![d, cfg.d_ff], true),
                b1: lb.push(p("mlp.b1"), vec![cfg.d_ff], false),
                w2: lb.push(p("mlp.w2"), vec![cfg.d_ff, d], true),
                b2: lb.push(p("mlp.b2"), vec![d], false),
            });
        }
        let lnf_w = lb.push("ln_f.weight".into(), vec![d], false);
        let lnf_b = lb.push("ln_f.bias".into(), vec![d], false);
        let head = lb.push("lm_head".into(), vec![d, cfg.vocab_size], true);
        let mut params = vec![0.0f32; lb.total];
        for s in &lb.specs {
            if s.name.ends_with("ln1.weight")
                || s.name.ends_with("ln2.weight")
                || s.name == "ln_f.weight"
            {
                params[s.offset..s.offset + s.len].fill(1.0);
            }
        }
        Model {
            cfg,
            params,
            specs: lb.specs,
            tok_emb,
            pos_emb,
            blocks,
            lnf_w,
            lnf_b,
            head,
        }
    }

    /// Builds a randomly initialised model: matrices ~ N(0, std²) (residual output projections
    /// scaled by 1/sqrt(2·n_layers)), LayerNorm gains 1, biases 0.
    pub fn init(cfg: ModelConfig, seed: u64, std: f64) -> Model {
        let mut m = Model::zeros(cfg);
        let mut rng = Rng::new(seed);
        let resid_scale = 1.0 / (2.0 * m.cfg.n_layers as f64).sqrt();
        for s in m.specs.clone() {
            if !s.decay {
                continue;
            }
            let sd = if s.name.ends_with("attn.wo") || s.name.ends_with("mlp.w2") {
                std * resid_scale
            } else {
                std
            };
            for p in &mut m.params[s.offset..s.offset + s.len] {
                *p = (rng.normal() * sd) as f32;
            }
        }
        m
    }

    /// The architecture.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Layout of every parameter tensor in [`Model::params`].
    pub fn specs(&self) -> &[TensorSpec] {
        &self.specs
    }

    /// Total number of scalar parameters.
    pub fn param_count(&self) -> usize {
        self.params.len()
    }

    /// Slice of one named tensor.
    pub fn tensor(&self, name: &str) -> Option<&[f32]> {
        let s = self.specs.iter().find(|s| s.name == name)?;
        Some(&self.params[s.offset..s.offset + s.len])
    }

    /// Mutable slice of one named tensor.
    pub fn tensor_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        let s = self.specs.iter().find(|s| s.name == name)?;
        Some(&mut self.params[s.offset..s.offset + s.len])
    }

    #[allow(clippy::needless_range_loop)] // index-based attention loops mirror the math
    fn forward(&self, b: &Batch, a: &mut Acts) {
        let c = &self.cfg;
        let (d, f, v, h) = (c.d_model, c.d_ff, c.vocab_size, c.n_heads);
        let hd = d / h;
        let n = b.tokens.len();
        let p = &self.params;
        let scale = 1.0 / (hd as f32).sqrt();

        a.prob_offsets.clear();
        let mut off = 0;
        for &(_, t) in &b.seqs {
            a.prob_offsets.push(off);
            off += h * t * t;
        }
        let prob_total = off;
        // Batches built by this crate from `Example::encode` always satisfy these; they guard
        // hand-built batches (a programming error, not bad data).
        assert!(
            b.pos.iter().all(|&p| p < c.max_seq_len),
            "batch has a sequence longer than max_seq_len={}",
            c.max_seq_len
        );
        assert!(
            b.tokens.iter().chain(&b.targets).all(|&t| (t as usize) < v),
            "batch has a token id >= vocab_size={v}"
        );

        // Embeddings.
        let mut x = std::mem::take(&mut a.x_final);
        zeroed(&mut x, n * d);
        for i in 0..n {
            let tok = b.tokens[i] as usize;
            let pos = b.pos[i];
            let te = &p[self.tok_emb + tok * d..self.tok_emb + (tok + 1) * d];
            let pe = &p[self.pos_emb + pos * d..self.pos_emb + (pos + 1) * d];
            let xr = &mut x[i * d..(i + 1) * d];
            for j in 0..d {
                xr[j] = te[j] + pe[j];
            }
        }

        a.layers.resize_with(c.n_layers, LayerActs::default);
        for (bi, la) in self.blocks.iter().zip(a.layers.iter_mut()) {
            std::mem::swap(&mut la.x_in, &mut x);
            zeroed(&mut la.h1, n * d);
            zeroed(&mut la.mean1, n);
            zeroed(&mut la.rstd1, n);
            ln_forward(
                &la.x_in,
                &p[bi.ln1_w..bi.ln1_w + d],
                &p[bi.ln1_b..bi.ln1_b + d],
                d,
                &mut la.h1,
                &mut la.mean1,
                &mut la.rstd1,
            );
            zeroed(&mut la.q, n * d);
            zeroed(&mut la.k, n * d);
            zeroed(&mut la.v, n * d);
            matmul(&la.h1, &p[bi.wq..], &mut la.q, n, d, d, false);
            matmul(&la.h1, &p[bi.wk..], &mut la.k, n, d, d, false);
            matmul(&la.h1, &p[bi.wv..], &mut la.v, n, d, d, false);

            zeroed(&mut la.probs, prob_total);
            zeroed(&mut la.att, n * d);
            for (si, &(start, t_len)) in b.seqs.iter().enumerate() {
                let poff = a.prob_offsets[si];
                for hh in 0..h {
                    let hoff = hh * hd;
                    for t in 0..t_len {
                        let qi = (start + t) * d + hoff;
                        let q = &la.q[qi..qi + hd];
                        let prow = &mut la.probs[poff + hh * t_len * t_len + t * t_len..][..t_len];
                        let mut mx = f32::NEG_INFINITY;
                        for u in 0..=t {
                            let ki = (start + u) * d + hoff;
                            let s = dot(q, &la.k[ki..ki + hd]) * scale;
                            prow[u] = s;
                            if s > mx {
                                mx = s;
                            }
                        }
                        let mut sum = 0.0f32;
                        for pu in prow.iter_mut().take(t + 1) {
                            *pu = fast_exp(*pu - mx);
                            sum += *pu;
                        }
                        let inv = 1.0 / sum;
                        for pu in prow.iter_mut().take(t + 1) {
                            *pu *= inv;
                        }
                        let orow = &mut la.att[qi..qi + hd];
                        for u in 0..=t {
                            let vi = (start + u) * d + hoff;
                            add_scaled(prow[u], &la.v[vi..vi + hd], orow);
                        }
                    }
                }
            }
            la.x_mid.clear();
            la.x_mid.extend_from_slice(&la.x_in);
            matmul(&la.att, &p[bi.wo..], &mut la.x_mid, n, d, d, true);

            zeroed(&mut la.h2, n * d);
            zeroed(&mut la.mean2, n);
            zeroed(&mut la.rstd2, n);
            ln_forward(
                &la.x_mid,
                &p[bi.ln2_w..bi.ln2_w + d],
                &p[bi.ln2_b..bi.ln2_b + d],
                d,
                &mut la.h2,
                &mut la.mean2,
                &mut la.rstd2,
            );
            zeroed(&mut la.f1, n * f);
            for r in la.f1.chunks_exact_mut(f) {
                r.copy_from_slice(&p[bi.b1..bi.b1 + f]);
            }
            matmul(&la.h2, &p[bi.w1..], &mut la.f1, n, d, f, true);
            zeroed(&mut la.g, n * f);
            zeroed(&mut la.t, n * f);
            gelu_fwd(&la.f1, &mut la.g, &mut la.t);
            let xo = &mut x;
            xo.clear();
            xo.extend_from_slice(&la.x_mid);
            for r in xo.chunks_exact_mut(d) {
                for (rv, bv) in r.iter_mut().zip(&p[bi.b2..bi.b2 + d]) {
                    *rv += bv;
                }
            }
            matmul(&la.g, &p[bi.w2..], xo, n, f, d, true);
        }
        a.x_final = x;

        // Final LayerNorm + head, only at the requested rows.
        let mrows = b.out_rows.len();
        zeroed(&mut a.xf_rows, mrows * d);
        for (r, &row) in b.out_rows.iter().enumerate() {
            a.xf_rows[r * d..(r + 1) * d].copy_from_slice(&a.x_final[row * d..(row + 1) * d]);
        }
        zeroed(&mut a.hf, mrows * d);
        zeroed(&mut a.meanf, mrows);
        zeroed(&mut a.rstdf, mrows);
        ln_forward(
            &a.xf_rows,
            &p[self.lnf_w..self.lnf_w + d],
            &p[self.lnf_b..self.lnf_b + d],
            d,
            &mut a.hf,
            &mut a.meanf,
            &mut a.rstdf,
        );
        zeroed(&mut a.logits, mrows * v);
        matmul(&a.hf, &p[self.head..], &mut a.logits, mrows, d, v, false);
    }

    /// Logits (rows × vocab) at the batch's output rows.
    pub fn logits(&self, b: &Batch) -> Vec<f32> {
        let mut a = Acts::default();
        self.forward(b, &mut a);
        a.logits
    }

    /// Sum of token cross-entropies (nats) over the batch targets, and the target count.
    pub fn loss_sum(&self, b: &Batch) -> (f64, usize) {
        let logits = self.logits(b);
        let v = self.cfg.vocab_size;
        let mut total = 0.0f64;
        for (r, &t) in b.targets.iter().enumerate() {
            total += row_ce(&logits[r * v..(r + 1) * v], t as usize, None);
        }
        (total, b.targets.len())
    }

    /// Mean cross-entropy over the batch targets (NaN if there are none).
    pub fn loss(&self, b: &Batch) -> f64 {
        let (s, n) = self.loss_sum(b);
        if n == 0 { f64::NAN } else { s / n as f64 }
    }

    /// Mean cross-entropy over the batch targets; accumulates (adds) its gradient with respect
    /// to every parameter into `grads` (same layout as [`Model::params`]).
    pub fn loss_and_grad(&self, b: &Batch, grads: &mut [f32]) -> f64 {
        self.loss_and_grad_with(b, grads, &mut Workspace::default())
    }

    /// [`Model::loss_and_grad`] reusing the buffers of `ws` (avoids allocating every step).
    #[allow(clippy::needless_range_loop)] // index-based attention loops mirror the math
    pub fn loss_and_grad_with(&self, b: &Batch, grads: &mut [f32], ws: &mut Workspace) -> f64 {
        assert_eq!(grads.len(), self.params.len(), "gradient buffer size");
        let c = &self.cfg;
        let (d, f, v, h) = (c.d_model, c.d_ff, c.vocab_size, c.n_heads);
        let hd = d / h;
        let n = b.tokens.len();
        let mrows = b.out_rows.len();
        if mrows == 0 {
            return f64::NAN;
        }
        let Workspace { acts: a, bw } = ws;
        self.forward(b, a);
        let p = &self.params;
        let scale = 1.0 / (hd as f32).sqrt();
        let scratch = &mut bw.scratch;

        // Loss and dlogits.
        let inv_m = 1.0 / mrows as f32;
        let dlogits = &mut bw.dlogits;
        zeroed(dlogits, mrows * v);
        let mut total = 0.0f64;
        for (r, &t) in b.targets.iter().enumerate() {
            total += row_ce(
                &a.logits[r * v..(r + 1) * v],
                t as usize,
                Some((&mut dlogits[r * v..(r + 1) * v], inv_m)),
            );
        }
        let loss = total / mrows as f64;

        // Head.
        matmul_at(&a.hf, dlogits, &mut grads[self.head..], mrows, d, v);
        let dhf = &mut bw.dhf;
        zeroed(dhf, mrows * d);
        matmul_bt(dlogits, &p[self.head..], dhf, mrows, d, v, false, scratch);
        let dxf_rows = &mut bw.dxf_rows;
        zeroed(dxf_rows, mrows * d);
        {
            let (gw, gb) = two_mut(grads, self.lnf_w, self.lnf_b, d);
            ln_backward(
                dhf,
                &a.xf_rows,
                &p[self.lnf_w..self.lnf_w + d],
                &a.meanf,
                &a.rstdf,
                d,
                dxf_rows,
                gw,
                gb,
            );
        }
        let dx = &mut bw.dx;
        zeroed(dx, n * d);
        for (r, &row) in b.out_rows.iter().enumerate() {
            add_scaled(
                1.0,
                &dxf_rows[r * d..(r + 1) * d],
                &mut dx[row * d..(row + 1) * d],
            );
        }

        for (bi, la) in self.blocks.iter().zip(a.layers.iter()).rev() {
            // MLP: x_out = x_mid + gelu(h2·W1 + b1)·W2 + b2.
            for r in dx.chunks_exact(d) {
                add_scaled(1.0, r, &mut grads[bi.b2..bi.b2 + d]);
            }
            matmul_at(&la.g, dx, &mut grads[bi.w2..], n, f, d);
            let df1 = &mut bw.df1;
            zeroed(df1, n * f);
            matmul_bt(dx, &p[bi.w2..], df1, n, f, d, false, scratch);
            gelu_bwd(&la.f1, &la.t, df1);
            for r in df1.chunks_exact(f) {
                add_scaled(1.0, r, &mut grads[bi.b1..bi.b1 + f]);
            }
            matmul_at(&la.h2, df1, &mut grads[bi.w1..], n, d, f);
            let dh2 = &mut bw.dh2;
            zeroed(dh2, n * d);
            matmul_bt(df1, &p[bi.w1..], dh2, n, d, f, false, scratch);
            // dx now becomes d x_mid (residual path kept, LN2 path added).
            {
                let (gw, gb) = two_mut(grads, bi.ln2_w, bi.ln2_b, d);
                ln_backward(
                    dh2,
                    &la.x_mid,
                    &p[bi.ln2_w..bi.ln2_w + d],
                    &la.mean2,
                    &la.rstd2,
                    d,
                    dx,
                    gw,
                    gb,
                );
            }

            // Attention: x_mid = x_in + att·Wo.
            matmul_at(&la.att, dx, &mut grads[bi.wo..], n, d, d);
            let datt = &mut bw.datt;
            zeroed(datt, n * d);
            matmul_bt(dx, &p[bi.wo..], datt, n, d, d, false, scratch);
            let dq = &mut bw.dq;
            zeroed(dq, n * d);
            let dk = &mut bw.dk;
            zeroed(dk, n * d);
            let dv = &mut bw.dv;
            zeroed(dv, n * d);
            let dp = &mut bw.dp;
            for (si, &(start, t_len)) in b.seqs.iter().enumerate() {
                let poff = a.prob_offsets[si];
                for hh in 0..h {
                    let hoff = hh * hd;
                    for t in 0..t_len {
                        let qi = (start + t) * d + hoff;
                        let prow = &la.probs[poff + hh * t_len * t_len + t * t_len..][..t_len];
                        let dout = &datt[qi..qi + hd];
                        dp.clear();
                        let mut sum = 0.0f32;
                        for u in 0..=t {
                            let vi = (start + u) * d + hoff;
                            let g = dot(dout, &la.v[vi..vi + hd]);
                            dp.push(g);
                            sum += g * prow[u];
                            add_scaled(prow[u], dout, &mut dv[vi..vi + hd]);
                        }
                        for u in 0..=t {
                            let ds = prow[u] * (dp[u] - sum) * scale;
                            let ki = (start + u) * d + hoff;
                            add_scaled(ds, &la.k[ki..ki + hd], &mut dq[qi..qi + hd]);
                            add_scaled(ds, &la.q[qi..qi + hd], &mut dk[ki..ki + hd]);
                        }
                    }
                }
            }
            matmul_at(&la.h1, dq, &mut grads[bi.wq..], n, d, d);
            matmul_at(&la.h1, dk, &mut grads[bi.wk..], n, d, d);
            matmul_at(&la.h1, dv, &mut grads[bi.wv..], n, d, d);
            let dh1 = &mut bw.dh1;
            zeroed(dh1, n * d);
            matmul_bt(dq, &p[bi.wq..], dh1, n, d, d, true, scratch);
            matmul_bt(dk, &p[bi.wk..], dh1, n, d, d, true, scratch);
            matmul_bt(dv, &p[bi.wv..], dh1, n, d, d, true, scratch);
            {
                let (gw, gb) = two_mut(grads, bi.ln1_w, bi.ln1_b, d);
                ln_backward(
                    dh1,
                    &la.x_in,
                    &p[bi.ln1_w..bi.ln1_w + d],
                    &la.mean1,
                    &la.rstd1,
                    d,
                    dx,
                    gw,
                    gb,
                );
            }
        }

        // Embeddings.
        for i in 0..n {
            let tok = b.tokens[i] as usize;
            let pos = b.pos[i];
            let r = &dx[i * d..(i + 1) * d];
            add_scaled(1.0, r, &mut grads[self.tok_emb + tok * d..][..d]);
            add_scaled(1.0, r, &mut grads[self.pos_emb + pos * d..][..d]);
        }
        loss
    }

    /// Greedy decoding: appends argmax tokens to `BOS + prompt` until EOS, `max_new` tokens, or
    /// the context is full. Returns the generated bytes (special tokens dropped, EOS excluded).
    pub fn generate(&self, prompt: &[u8], max_new: usize) -> Vec<u8> {
        let mut ctx: Vec<u32> = std::iter::once(BOS)
            .chain(prompt.iter().map(|&b| b as u32))
            .collect();
        let mut out = Vec::new();
        for _ in 0..max_new {
            if ctx.len() > self.cfg.max_seq_len {
                break;
            }
            let b = Batch::for_next_token([ctx.as_slice()]);
            let logits = self.logits(&b);
            let t = argmax(&logits);
            if t == EOS as usize {
                break;
            }
            if t < BYTE_VOCAB {
                out.push(t as u8);
            }
            ctx.push(t as u32);
        }
        out
    }
}

/// Index of the largest value (first one on ties; NaN never wins).
pub fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    let mut bv = f32::NEG_INFINITY;
    for (i, &x) in xs.iter().enumerate() {
        if x > bv {
            bv = x;
            best = i;
        }
    }
    best
}

/// Cross-entropy of one logits row (in nats, computed in f64); optionally writes
/// `scale·(softmax − onehot)` into the gradient row.
fn row_ce(logits: &[f32], target: usize, grad: Option<(&mut [f32], f32)>) -> f64 {
    let mx = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let mut sum = 0.0f64;
    for &x in logits {
        sum += (x as f64 - mx).exp();
    }
    let lse = mx + sum.ln();
    if let Some((g, s)) = grad {
        for (gi, &x) in g.iter_mut().zip(logits) {
            *gi = ((x as f64 - lse).exp() as f32) * s;
        }
        g[target] -= s;
    }
    lse - logits[target] as f64
}

fn two_mut(g: &mut [f32], a: usize, b: usize, d: usize) -> (&mut [f32], &mut [f32]) {
    debug_assert!(a + d <= b);
    let (lo, hi) = g.split_at_mut(b);
    (&mut lo[a..a + d], &mut hi[..d])
}

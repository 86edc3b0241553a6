//! `method: tpe`: a multivariate tree-structured Parzen estimator (Bergstra et al. 2011;
//! the multivariate form Optuna uses), with a low-discrepancy start, bandwidths that are
//! never narrower than half a Scott-like rule, and a constant liar for trials still running.
//!
//! The proposal is a pure function of the space (with its seed), the proposal index and
//! the history (completed, failed and pending configurations with their losses), so a loop
//! resumed from its ledger proposes exactly what an uninterrupted one would.
//!
//! How it works, in the `[0, 1]` coordinates of [`crate::dims`] (every numeric parameter is
//! uniform there under its prior; categoricals are indices):
//! 1. Until `n_startup` trials have completed, points of a randomly shifted Kronecker
//!    (golden-ratio) sequence: evenly spread, unlike independent random draws.
//! 2. Then the completed trials are split into the best `gamma` fraction ("good") and the
//!    rest, with pending trials counted among the rest (constant liar: they are assumed bad,
//!    so parallel workers do not all propose the same point). Each group gets a density: a
//!    product kernel per trial (truncated Gaussians on numeric coordinates whose width is the
//!    distance to the trial's neighbours, floored at half of `0.2 n^(-1/(d+4))`; a peaked
//!    distribution over categories) mixed with a uniform prior.
//! 3. Candidates are drawn from the good density (optionally also from a narrow
//!    neighbourhood of the best trials, off by default: it measured worse); after rounding
//!    each to a real configuration, the one maximising `log good(x) - log rest(x)` that has
//!    not been tried yet is proposed.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::dims::{Dim, cat_index, dim, norm_cdf, norm_ppf, unit_to_value, value_to_unit};
use crate::program::{Param, SearchSpace};
use crate::search::Config;

/// What became of one configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Finished with this loss (lower is better: negate a metric that is maximised).
    Done(f64),
    /// Still running (or reserved): counted as bad, never proposed again.
    Pending,
    /// Failed or produced no metric: not modelled, never proposed again.
    Failed,
}

/// One configuration of the campaign's history.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The configuration as submitted.
    pub config: Config,
    /// What became of it.
    pub outcome: Outcome,
}

/// The knobs of the estimator; [`Tuning::default`] is what `method: tpe` uses.
#[derive(Clone, Debug, PartialEq)]
pub struct Tuning {
    /// Completed trials before the model is used (`None`: from the dimension, 5 to 10).
    /// Until then, and for proposals made while fewer have completed, points of the
    /// shifted Kronecker sequence.
    pub n_startup: Option<usize>,
    /// Fraction of completed trials in the good group.
    pub gamma: f64,
    /// Most trials in the good group.
    pub max_good: usize,
    /// Candidates drawn from the good density.
    pub n_candidates: usize,
    /// Candidates drawn near the best trials.
    pub n_local: usize,
    /// Weight of the uniform prior in each density, in trials.
    pub prior_weight: f64,
    /// Bandwidth scale (Scott-like: `scale * n^(-1/(d+4))`).
    pub bandwidth: f64,
    /// Per-trial bandwidths from the distance to its neighbours in each coordinate (as
    /// Optuna 5 does) instead of one Scott-like bandwidth per group.
    pub neighbour: bool,
    /// With `neighbour`: no bandwidth below this fraction of the Scott-like one.
    pub mix: f64,
    /// Two kernels per trial, half weight each: the neighbour one and the Scott-like one
    /// (a multi-scale estimate: narrow where trials cluster, broad everywhere).
    pub multiscale: bool,
    /// With `multiscale`: the weight of the broad kernel (the narrow one has the rest).
    pub broad_weight: f64,
    /// Start from the shifted Kronecker sequence (else from independent random draws).
    pub kronecker: bool,
    /// With `multiscale`: which densities get the broad kernels (0 both, 1 the good one
    /// only, 2 the rest only).
    pub multiscale_in: u8,
}

impl Default for Tuning {
    /// Measured with `bench/search.sh` (see the README): Optuna's split (`gamma` 0.1, 24
    /// candidates, 10 startup trials), neighbour bandwidths floored at half the Scott-like
    /// one, no local candidates.
    fn default() -> Self {
        Tuning {
            n_startup: Some(10),
            gamma: 0.1,
            max_good: 25,
            n_candidates: 24,
            n_local: 0,
            prior_weight: 1.0,
            bandwidth: 0.2,
            neighbour: true,
            mix: 0.0,
            multiscale: true,
            broad_weight: 0.5,
            kronecker: true,
            multiscale_in: 0,
        }
    }
}

/// A deterministic generator (splitmix64).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let v = (self.next() >> 11) as f64;
        v / (1u64 << 53) as f64
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        #[allow(clippy::cast_possible_truncation)]
        let i = ((u128::from(self.next()) * n as u128) >> 64) as usize;
        i
    }
}

/// A point in proposer coordinates: numeric coordinates then category indices.
#[derive(Clone, Debug)]
pub(crate) struct Point {
    pub(crate) u: Vec<f64>,
    pub(crate) c: Vec<usize>,
}

pub(crate) struct Space<'a> {
    names: Vec<&'a str>,
    params: Vec<&'a Param>,
    /// Indices into `params` of numeric parameters.
    pub(crate) num: Vec<usize>,
    /// Indices into `params` of categoricals, with their number of values.
    pub(crate) cat: Vec<(usize, usize)>,
}

impl<'a> Space<'a> {
    pub(crate) fn new(space: &'a SearchSpace) -> Self {
        let mut s = Space {
            names: Vec::new(),
            params: Vec::new(),
            num: Vec::new(),
            cat: Vec::new(),
        };
        for (i, (name, p)) in space.parameters.iter().enumerate() {
            s.names.push(name);
            s.params.push(p);
            match dim(p) {
                Dim::Fixed(_) => {}
                Dim::Cat(v) => s.cat.push((i, v.len())),
                Dim::Num(_) => s.num.push(i),
            }
        }
        s
    }

    pub(crate) fn dims(&self) -> usize {
        self.num.len() + self.cat.len()
    }

    pub(crate) fn encode(&self, config: &Config) -> Option<Point> {
        let mut u = Vec::with_capacity(self.num.len());
        for &i in &self.num {
            u.push(value_to_unit(self.params[i], config.get(self.names[i])?)?);
        }
        let mut c = Vec::with_capacity(self.cat.len());
        for &(i, _) in &self.cat {
            let Param::Values(vals) = self.params[i] else {
                return None;
            };
            c.push(cat_index(vals, config.get(self.names[i])?)?);
        }
        Some(Point { u, c })
    }

    pub(crate) fn decode(&self, pt: &Point) -> Config {
        let mut out = Config::new();
        let (mut ni, mut ci) = (0, 0);
        for (i, p) in self.params.iter().enumerate() {
            let v = match dim(p) {
                Dim::Fixed(s) => s.to_json(),
                Dim::Cat(vals) => {
                    let k = pt.c[ci];
                    ci += 1;
                    vals[k.min(vals.len() - 1)].to_json()
                }
                Dim::Num(p) => {
                    let v = unit_to_value(p, pt.u[ni]);
                    ni += 1;
                    v
                }
            };
            out.insert(self.names[i].to_string(), v);
        }
        out
    }
}

/// A config's identity for dedup: numbers compared by value (`243.0` is `243`).
pub(crate) fn key(config: &Config) -> String {
    let mut out = String::new();
    // By name: a config read back from JSON may list its keys in another order.
    let mut entries: Vec<(&String, &Value)> = config.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in entries {
        out.push_str(k);
        out.push('=');
        match v {
            Value::Number(n) => match n.as_f64() {
                #[allow(clippy::cast_possible_truncation)]
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    out.push_str(&(f as i64).to_string());
                }
                Some(f) => out.push_str(&format!("{f:?}")),
                None => out.push_str(&n.to_string()),
            },
            other => out.push_str(&other.to_string()),
        }
        out.push('\u{1f}');
    }
    out
}

/// The `i`-th point of a shifted Kronecker sequence in `d` dimensions (Roberts' R_d).
pub(crate) fn kronecker(d: usize, i: u64, shift: &[f64]) -> Vec<f64> {
    // phi_d: the positive root of x^(d+1) = x + 1.
    let mut phi = 2.0f64;
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_wrap)]
    let e = 1.0 / (d as f64 + 1.0);
    for _ in 0..40 {
        phi = (1.0 + phi).powf(e);
    }
    #[allow(clippy::cast_precision_loss)]
    let n = (i + 1) as f64;
    (0..d)
        .map(|j| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
            let alpha = (1.0 / phi.powi(j as i32 + 1)).fract();
            (shift[j] + n * alpha).fract()
        })
        .collect()
}

/// One density: kernels around points plus a uniform prior.
struct Density<'a> {
    points: Vec<&'a Point>,
    weights: Vec<f64>,
    prior: f64,
    /// Bandwidth per point, per numeric coordinate.
    sigma: Vec<Vec<f64>>,
    /// Probability a categorical kernel keeps its own category.
    keep: f64,
    sizes: Vec<usize>,
    n_num: usize,
}

fn ln_trunc_normal(x: f64, m: f64, s: f64) -> f64 {
    let z = (x - m) / s;
    let mass = (norm_cdf((1.0 - m) / s) - norm_cdf(-m / s)).max(1e-300);
    -0.5 * z * z - (s * mass * (2.0 * std::f64::consts::PI).sqrt()).ln()
}

fn sample_trunc_normal(rng: &mut Rng, m: f64, s: f64) -> f64 {
    let (lo, hi) = (norm_cdf(-m / s), norm_cdf((1.0 - m) / s));
    let p = lo + rng.unit() * (hi - lo);
    (m + s * norm_ppf(p)).clamp(0.0, 1.0)
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

impl<'a> Density<'a> {
    fn new(points: Vec<&'a Point>, sp: &Space, t: &Tuning) -> Self {
        let n = points.len();
        #[allow(clippy::cast_precision_loss)]
        let nf = n.max(1) as f64;
        #[allow(clippy::cast_precision_loss)]
        let d = sp.dims().max(1) as f64;
        // Smallest bandwidth: 1 / (kernels + prior + 1), at most 1/100 of the range.
        let floor = 1.0 / (nf + 2.0).min(100.0);
        let scott = (t.bandwidth * nf.powf(-1.0 / (d + 4.0))).clamp(floor, 1.0);
        let mut sigma = vec![vec![scott; sp.num.len()]; n];
        if t.neighbour {
            #[allow(clippy::needless_range_loop)]
            for j in 0..sp.num.len() {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by(|&a, &b| points[a].u[j].total_cmp(&points[b].u[j]).then(a.cmp(&b)));
                for (r, &i) in order.iter().enumerate() {
                    let here = points[i].u[j];
                    let left = (r > 0).then(|| here - points[order[r - 1]].u[j]);
                    let right = (r + 1 < n).then(|| points[order[r + 1]].u[j] - here);
                    // The outermost points look inwards only (a lone point reaches both ends).
                    let gap = match (left, right) {
                        (Some(l), Some(r)) => l.max(r),
                        (Some(g), None) | (None, Some(g)) => g,
                        (None, None) => here.max(1.0 - here),
                    };
                    sigma[i][j] = gap.max(t.mix * scott).clamp(floor, 1.0);
                }
            }
        }
        let (points, weights) = if t.multiscale && t.neighbour {
            let broad = vec![scott; sp.num.len()];
            let mut all = points.clone();
            all.extend(points.iter().copied());
            sigma.extend(std::iter::repeat_n(broad, n));
            let b = t.broad_weight.clamp(0.0, 1.0);
            let mut w = vec![1.0 - b; n];
            w.extend(std::iter::repeat_n(b, n));
            (all, w)
        } else {
            (points, vec![1.0; n])
        };
        Density {
            points,
            weights,
            prior: t.prior_weight,
            sigma,
            keep: (1.0 - 1.0 / (2.0 + nf)).min(0.9),
            sizes: sp.cat.iter().map(|&(_, k)| k).collect(),
            n_num: sp.num.len(),
        }
    }

    fn ln_pdf(&self, x: &Point) -> f64 {
        let total: f64 = self.weights.iter().sum::<f64>() + self.prior;
        let mut terms = Vec::with_capacity(self.points.len() + 1);
        // The uniform prior: density 1 on numeric coordinates, 1/k on categories.
        #[allow(clippy::cast_precision_loss)]
        let prior_cat: f64 = self.sizes.iter().map(|&k| -(k as f64).ln()).sum();
        terms.push((self.prior / total).ln() + prior_cat);
        for ((p, w), sig) in self.points.iter().zip(&self.weights).zip(&self.sigma) {
            let mut l = (w / total).ln();
            for (j, s) in sig.iter().enumerate() {
                l += ln_trunc_normal(x.u[j], p.u[j], *s);
            }
            for (j, &k) in self.sizes.iter().enumerate() {
                #[allow(clippy::cast_precision_loss)]
                let other = (1.0 - self.keep) / (k.max(2) - 1) as f64;
                l += if x.c[j] == p.c[j] { self.keep } else { other }.ln();
            }
            terms.push(l);
        }
        log_sum_exp(&terms)
    }

    fn sample(&self, rng: &mut Rng) -> Point {
        let total: f64 = self.weights.iter().sum::<f64>() + self.prior;
        let mut pick = rng.unit() * total;
        let mut chosen = None;
        for ((p, w), sig) in self.points.iter().zip(&self.weights).zip(&self.sigma) {
            if pick < *w {
                chosen = Some((*p, sig));
                break;
            }
            pick -= w;
        }
        match chosen {
            None => Point {
                u: (0..self.n_num).map(|_| rng.unit()).collect(),
                c: self.sizes.iter().map(|&k| rng.below(k)).collect(),
            },
            Some((p, sig)) => Point {
                u: p.u
                    .iter()
                    .zip(sig)
                    .map(|(m, s)| sample_trunc_normal(rng, *m, *s))
                    .collect(),
                c: p.c
                    .iter()
                    .zip(&self.sizes)
                    .map(|(&c, &k)| {
                        if k < 2 || rng.unit() < self.keep {
                            c
                        } else {
                            let o = rng.below(k - 1);
                            if o >= c { o + 1 } else { o }
                        }
                    })
                    .collect(),
            },
        }
    }
}

/// The next configuration of `method: tpe` for proposal number `index`, given the history.
/// Pure: the same space (and seed), index and history give the same configuration. It is
/// never a configuration of the history when an untried one can be found.
pub fn suggest(space: &SearchSpace, history: &[Observation], index: u64) -> Config {
    suggest_with(space, history, index, &Tuning::default())
}

/// [`suggest`] with explicit [`Tuning`].
pub fn suggest_with(
    space: &SearchSpace,
    history: &[Observation],
    index: u64,
    t: &Tuning,
) -> Config {
    let sp = Space::new(space);
    let seen: BTreeSet<String> = history.iter().map(|o| key(&o.config)).collect();
    let mut seed_rng = Rng(space.seed ^ 0x7470_655f_7374_6172);
    let shift: Vec<f64> = (0..sp.dims()).map(|_| seed_rng.unit()).collect();
    let mut rng = Rng(space.seed.rotate_left(17) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let done: Vec<(Point, f64)> = history
        .iter()
        .filter_map(|o| match o.outcome {
            Outcome::Done(l) if l.is_finite() => sp.encode(&o.config).map(|p| (p, l)),
            _ => None,
        })
        .collect();
    let n_startup = t.n_startup.unwrap_or_else(|| (sp.dims() + 3).clamp(5, 10));
    let fresh = |pt: &Point| {
        let c = sp.decode(pt);
        (!seen.contains(&key(&c))).then_some(c)
    };
    let random_point = |rng: &mut Rng| Point {
        u: (0..sp.num.len()).map(|_| rng.unit()).collect(),
        c: sp.cat.iter().map(|&(_, k)| rng.below(k)).collect(),
    };
    if done.len() < n_startup || sp.dims() == 0 {
        let k = if t.kronecker {
            kronecker(sp.dims(), index, &shift)
        } else {
            (0..sp.dims()).map(|_| rng.unit()).collect()
        };
        let (u, c) = k.split_at(sp.num.len());
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let pt = Point {
            u: u.to_vec(),
            c: c.iter()
                .zip(&sp.cat)
                .map(|(x, &(_, n))| ((x * n as f64) as usize).min(n - 1))
                .collect(),
        };
        if let Some(c) = fresh(&pt) {
            return c;
        }
        for _ in 0..256 {
            if let Some(c) = fresh(&random_point(&mut rng)) {
                return c;
            }
        }
        return sp.decode(&pt);
    }
    let mut order: Vec<usize> = (0..done.len()).collect();
    order.sort_by(|&a, &b| done[a].1.total_cmp(&done[b].1).then(a.cmp(&b)));
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let n_good = ((t.gamma * done.len() as f64).ceil() as usize).clamp(1, t.max_good);
    let pending: Vec<Point> = history
        .iter()
        .filter(|o| o.outcome == Outcome::Pending)
        .filter_map(|o| sp.encode(&o.config))
        .collect();
    let good: Vec<&Point> = order[..n_good].iter().map(|&i| &done[i].0).collect();
    let rest: Vec<&Point> = order[n_good..]
        .iter()
        .map(|&i| &done[i].0)
        .chain(pending.iter())
        .collect();
    let only = |on: bool| Tuning {
        multiscale: t.multiscale && on,
        ..t.clone()
    };
    let l = Density::new(good, &sp, &only(t.multiscale_in != 2));
    let g = Density::new(rest, &sp, &only(t.multiscale_in != 1));
    let snap = |pt: Point| -> Option<(Config, Point)> {
        let c = sp.decode(&pt);
        let p = sp.encode(&c)?;
        Some((c, p))
    };
    let mut best: Option<(f64, Config)> = None;
    let consider = |pt: Point, best: &mut Option<(f64, Config)>| {
        let Some((c, p)) = snap(pt) else { return };
        if seen.contains(&key(&c)) {
            return;
        }
        let score = l.ln_pdf(&p) - g.ln_pdf(&p);
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            *best = Some((score, c));
        }
    };
    for _ in 0..t.n_candidates {
        let pt = l.sample(&mut rng);
        consider(pt, &mut best);
    }
    // Local candidates: small moves from the best few trials, in a few coordinates at a
    // time (the good density alone rarely proposes a point this close to the incumbent).
    let top = n_good.min(3);
    let dims = sp.dims();
    for i in 0..t.n_local {
        let centre = &done[order[i % top]].0;
        let mut p = centre.clone();
        #[allow(clippy::cast_precision_loss)]
        let frac = 1.0 / dims.max(1) as f64;
        let mut moved = false;
        while !moved {
            for j in 0..p.u.len() {
                if rng.unit() < frac.max(0.2) {
                    let s = l.sigma[i % top][j] * 0.5;
                    p.u[j] = sample_trunc_normal(&mut rng, centre.u[j], s);
                    moved = true;
                }
            }
            for (j, &(_, k)) in sp.cat.iter().enumerate() {
                if k > 1 && rng.unit() < frac * 0.5 {
                    let o = rng.below(k - 1);
                    p.c[j] = if o >= centre.c[j] { o + 1 } else { o };
                    moved = true;
                }
            }
            if dims == 0 {
                break;
            }
        }
        consider(p, &mut best);
    }
    if let Some((_, c)) = best {
        return c;
    }
    for _ in 0..256 {
        if let Some(c) = fresh(&random_point(&mut rng)) {
            return c;
        }
    }
    sp.decode(&random_point(&mut rng))
}

//! One coordinate system for every distribution: each numeric parameter maps to `[0, 1]`
//! through its prior's CDF (so uniform, log, integer, quantised, normal and beta parameters
//! all look uniform to a proposer), and back through the inverse CDF followed by the
//! parameter's own rounding. Categoricals are indices.

use serde_json::Value;

use crate::program::{Dist, Param, Scalar};

/// Keeps inverse CDFs of unbounded distributions finite.
const EDGE: f64 = 1e-12;

/// The standard normal CDF, from a Chebyshev fit of `erfc` (relative error < 1.2e-7).
pub(crate) fn norm_cdf(x: f64) -> f64 {
    0.5 * crate::special::erfc(-x / std::f64::consts::SQRT_2)
}

/// The standard normal inverse CDF (Acklam's rational approximation, relative error
/// about 1e-9), for `p` in `(0, 1)`.
pub(crate) fn norm_ppf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(EDGE, 1.0 - EDGE);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The regularised incomplete beta function `I_x(a, b)`: the CDF of `Beta(a, b)`.
pub(crate) fn beta_cdf(x: f64, a: f64, b: f64) -> f64 {
    crate::special::reg_inc_beta(x, a, b)
}

/// The inverse CDF of `Beta(a, b)` by bisection (to about 1e-15).
pub(crate) fn beta_ppf(p: f64, a: f64, b: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if beta_cdf(mid, a, b) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

impl Dist {
    /// The value at quantile `u` (W&B's `ppf`).
    pub(crate) fn ppf(&self, u: f64) -> f64 {
        let u = u.clamp(0.0, 1.0);
        match *self {
            Dist::LogUniform { min, max } => (min + u * (max - min)).exp(),
            Dist::LogUniformValues { min, max } | Dist::InvLogUniformValues { min, max } => {
                let (a, b) = (min.ln(), max.ln());
                (a + u * (b - a)).exp().clamp(min, max)
            }
            Dist::InvLogUniform { min, max } => (-max + u * (max - min)).exp(),
            Dist::Normal { mu, sigma } => mu + sigma * norm_ppf(u),
            Dist::LogNormal { mu, sigma } => (mu + sigma * norm_ppf(u)).exp(),
            Dist::Beta { a, b } => beta_ppf(u, a, b),
        }
    }

    /// The quantile of value `v` (W&B's `cdf`).
    pub(crate) fn cdf(&self, v: f64) -> f64 {
        let r = match *self {
            Dist::LogUniform { min, max } => (v.max(f64::MIN_POSITIVE).ln() - min) / (max - min),
            Dist::LogUniformValues { min, max } | Dist::InvLogUniformValues { min, max } => {
                (v.max(f64::MIN_POSITIVE).ln() - min.ln()) / (max.ln() - min.ln())
            }
            Dist::InvLogUniform { min, max } => (v.max(f64::MIN_POSITIVE).ln() + max) / (max - min),
            Dist::Normal { mu, sigma } => norm_cdf((v - mu) / sigma),
            Dist::LogNormal { mu, sigma } => {
                if v <= 0.0 {
                    0.0
                } else {
                    norm_cdf((v.ln() - mu) / sigma)
                }
            }
            Dist::Beta { a, b } => beta_cdf(v, a, b),
        };
        r.clamp(0.0, 1.0)
    }
}

/// A multiple of `q` as a tidy float: `3 * 0.1` is `0.3`, not `0.30000000000000004`.
pub(crate) fn tidy_multiple(k: i64, q: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let raw = k as f64 * q;
    let s = format!("{q:?}");
    let d = if s.contains('e') {
        17
    } else {
        s.split_once('.')
            .map_or(0, |(_, f)| f.trim_end_matches('0').len())
    };
    if d < 17 {
        format!("{raw:.d$}").parse::<f64>().unwrap_or(raw)
    } else {
        raw
    }
}

pub(crate) fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// How one parameter looks to a proposer.
pub(crate) enum Dim<'a> {
    /// A constant.
    Fixed(&'a Scalar),
    /// Listed values, chosen by index.
    Cat(&'a [Scalar]),
    /// A numeric parameter, mapped to `[0, 1]`.
    Num(&'a Param),
}

pub(crate) fn dim(p: &Param) -> Dim<'_> {
    match p {
        Param::Value(s) => Dim::Fixed(s),
        Param::Values(v) => Dim::Cat(v),
        _ => Dim::Num(p),
    }
}

#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
fn cell(u: f64, n: i64) -> i64 {
    ((u * n as f64).floor() as i64).clamp(0, n - 1)
}

/// The value of a numeric parameter at `u` in `[0, 1]`: the prior's inverse CDF, then the
/// parameter's rounding (integers stay integers; quantised values are tidy multiples of
/// `q` inside the bounds).
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
pub(crate) fn unit_to_value(p: &Param, u: f64) -> Value {
    let u = u.clamp(0.0, 1.0);
    match *p {
        Param::Value(ref s) => s.to_json(),
        Param::Values(ref v) => v[cell(u, v.len() as i64) as usize].to_json(),
        Param::Uniform { min, max } => float((min + u * (max - min)).clamp(min, max)),
        Param::LogUniformValues { min, max } => {
            let (a, b) = (min.ln(), max.ln());
            float((a + u * (b - a)).exp().clamp(min, max))
        }
        Param::IntUniform { min, max } => {
            let n = max.saturating_sub(min).saturating_add(1);
            Value::from(min.saturating_add(cell(u, n)))
        }
        Param::QUniform { min, max, q } => match crate::search::q_range(min, max, q) {
            Some((lo, hi)) => {
                let k = lo + cell(u, hi - lo + 1);
                float(tidy_multiple(k, q).clamp(min, max))
            }
            None => Value::Null,
        },
        Param::IntLogUniform { min, max } => {
            let (a, b) = ((min as f64 - 0.5).ln(), (max as f64 + 0.5).ln());
            let v = (a + u * (b - a)).exp().round() as i64;
            Value::from(v.clamp(min, max))
        }
        Param::Shaped { dist, q, int } => {
            let r = dist.ppf(u.clamp(EDGE, 1.0 - EDGE));
            let Some(q) = q else {
                let (lo, hi) = dist.bounds();
                return float(r.clamp(lo.unwrap_or(f64::MIN), hi.unwrap_or(f64::MAX)));
            };
            let mut k = (r / q).round();
            if let (Some(lo), Some(hi)) = dist.bounds()
                && let Some((klo, khi)) = crate::search::q_range(lo, hi, q)
            {
                k = k.clamp(klo as f64, khi as f64);
            }
            let k = k.clamp(-9.0e15, 9.0e15) as i64;
            if int {
                #[allow(clippy::cast_sign_loss)]
                let qi = q as i64;
                Value::from(k.saturating_mul(qi))
            } else {
                float(tidy_multiple(k, q))
            }
        }
    }
}

/// Where a value of a numeric parameter sits in `[0, 1]` (the centre of its cell for
/// integers and quantised values), or `None` when it is not a number.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn value_to_unit(p: &Param, v: &Value) -> Option<f64> {
    let x = v.as_f64()?;
    let u = match *p {
        Param::Value(_) | Param::Values(_) => return None,
        Param::Uniform { min, max } => (x - min) / (max - min),
        Param::LogUniformValues { min, max } => (x.ln() - min.ln()) / (max.ln() - min.ln()),
        Param::IntUniform { min, max } => {
            (x - min as f64 + 0.5) / ((max as f64) - (min as f64) + 1.0)
        }
        Param::QUniform { min, max, q } => {
            let (lo, hi) = crate::search::q_range(min, max, q)?;
            ((x / q).round() - lo as f64 + 0.5) / ((hi - lo + 1) as f64)
        }
        Param::IntLogUniform { min, max } => {
            let (a, b) = ((min as f64 - 0.5).ln(), (max as f64 + 0.5).ln());
            (x.max(0.5).ln() - a) / (b - a)
        }
        Param::Shaped { dist, .. } => dist.cdf(x),
    };
    u.is_finite().then(|| u.clamp(0.0, 1.0))
}

/// Index of a listed value, numbers compared numerically.
pub(crate) fn cat_index(values: &[Scalar], v: &Value) -> Option<usize> {
    let s = match v {
        Value::Bool(b) => Scalar::Bool(*b),
        Value::String(s) => Scalar::Str(s.clone()),
        Value::Number(n) => n
            .as_i64()
            .map(Scalar::Int)
            .or_else(|| n.as_f64().map(Scalar::Float))?,
        _ => return None,
    };
    values.iter().position(|x| x.same_value(&s))
}

//! Proposers (grid, random), validation of agent-submitted configs, and command rendering.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::program::{Method, Param, Piece, Scalar, SearchSpace, parse_placeholders};

/// One experiment configuration: parameter name → value, in parameter-name order.
pub type Config = serde_json::Map<String, Value>;

/// Number of grid points, or `None` for random search or when it overflows `u64`.
pub fn grid_size(space: &SearchSpace) -> Option<u64> {
    if space.method != Method::Grid {
        return None;
    }
    space.parameters.values().try_fold(1u64, |acc, p| match p {
        Param::Value(_) => Some(acc),
        Param::Values(v) => acc.checked_mul(v.len() as u64),
        _ => None,
    })
}

/// How many distinct values one parameter can take, or `None` for a continuous
/// distribution (or a count that does not fit `u64`).
pub fn param_size(p: &Param) -> Option<u64> {
    match p {
        Param::Value(_) => Some(1),
        Param::Values(v) => Some(v.len() as u64),
        Param::IntUniform { min, max } => {
            u64::try_from(i128::from(*max) - i128::from(*min) + 1).ok()
        }
        Param::QUniform { min, max, q } => {
            let (lo, hi) = q_range(*min, *max, *q)?;
            u64::try_from(i128::from(hi) - i128::from(lo) + 1).ok()
        }
        Param::IntLogUniform { min, max } => {
            u64::try_from(i128::from(*max) - i128::from(*min) + 1).ok()
        }
        Param::Shaped {
            dist, q: Some(q), ..
        } => match dist.bounds() {
            (Some(lo), Some(hi)) => {
                let (lo, hi) = q_range(lo, hi, *q)?;
                u64::try_from(i128::from(hi) - i128::from(lo) + 1).ok()
            }
            _ => None,
        },
        Param::Uniform { .. } | Param::LogUniformValues { .. } | Param::Shaped { .. } => None,
    }
}

/// The inclusive range of integers `k` with `k * q` in `[min, max]`.
pub(crate) fn q_range(min: f64, max: f64, q: f64) -> Option<(i64, i64)> {
    if !(q > 0.0 && min.is_finite() && max.is_finite() && q.is_finite()) {
        return None;
    }
    let lo = (min / q).ceil();
    let hi = (max / q).floor();
    // Bounds chosen so that the i64 conversion below is exact and cannot saturate.
    let limit = 9.0e15;
    if lo > hi || lo.abs() > limit || hi.abs() > limit {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)]
    Some((lo as i64, hi as i64))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A uniform float in [0, 1) from 64 random bits.
fn unit(x: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let v = (x >> 11) as f64;
    v * (1.0 / (1u64 << 53) as f64)
}

/// A uniform integer in [0, n) (n > 0) from 64 random bits.
fn below(x: u64, n: u128) -> u128 {
    (u128::from(x) * n) >> 64
}

/// Number of decimals in the shortest representation of `q` (for clean multiples).
fn decimals(q: f64) -> usize {
    let s = format!("{q:?}");
    if s.contains('e') {
        return 17;
    }
    s.split_once('.')
        .map_or(0, |(_, f)| f.trim_end_matches('0').len())
}

/// Draws one value of a parameter from 64 random bits.
fn draw(p: &Param, x: u64) -> Value {
    match p {
        Param::Value(s) => s.to_json(),
        Param::Values(v) => {
            #[allow(clippy::cast_possible_truncation)]
            let i = below(x, v.len() as u128) as usize;
            v.get(i).map_or(Value::Null, Scalar::to_json)
        }
        Param::Uniform { min, max } => float((min + unit(x) * (max - min)).clamp(*min, *max)),
        Param::LogUniformValues { min, max } => {
            let (a, b) = (min.ln(), max.ln());
            float((a + unit(x) * (b - a)).exp().clamp(*min, *max))
        }
        Param::IntUniform { min, max } => {
            let span = (i128::from(*max) - i128::from(*min) + 1) as u128;
            #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
            let v = (i128::from(*min) + below(x, span) as i128) as i64;
            Value::from(v)
        }
        Param::QUniform { min, max, q } => {
            let Some((lo, hi)) = q_range(*min, *max, *q) else {
                return Value::Null;
            };
            let span = (i128::from(hi) - i128::from(lo) + 1) as u128;
            #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
            let k = (i128::from(lo) + below(x, span) as i128) as i64;
            #[allow(clippy::cast_precision_loss)]
            let raw = k as f64 * q;
            let d = decimals(*q);
            let tidy = if d < 17 {
                format!("{raw:.d$}").parse::<f64>().unwrap_or(raw)
            } else {
                raw
            };
            float(tidy.clamp(*min, *max))
        }
        Param::IntLogUniform { .. } | Param::Shaped { .. } => {
            crate::dims::unit_to_value(p, unit(x))
        }
    }
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// The `index`-th proposal. Grid: the index-th point of the cartesian product
/// (parameters in name order, the last varying fastest), `None` past the end.
/// Random: a pure function of `(seed, index)`; never `None`.
pub fn propose(space: &SearchSpace, index: u64) -> Option<Config> {
    let mut out = Config::new();
    match space.method {
        Method::Grid => {
            if index >= grid_size(space)? {
                return None;
            }
            let mut rest = index;
            let mut picks: Vec<(&String, Value)> = Vec::new();
            for (name, p) in space.parameters.iter().rev() {
                let v = match p {
                    Param::Value(s) => s.to_json(),
                    Param::Values(vals) => {
                        let n = vals.len() as u64;
                        #[allow(clippy::cast_possible_truncation)]
                        let i = (rest % n) as usize;
                        rest /= n;
                        vals[i].to_json()
                    }
                    _ => return None,
                };
                picks.push((name, v));
            }
            for (name, v) in picks.into_iter().rev() {
                out.insert(name.clone(), v);
            }
        }
        Method::Tpe => return Some(crate::tpe::suggest(space, &[], index)),
        Method::Bayes => return Some(crate::gp::suggest_bayes(space, &[], index)),
        Method::Command => return None,
        Method::Random => {
            let base = splitmix64(space.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for (name, p) in &space.parameters {
                let x = splitmix64(base ^ fnv1a(name));
                out.insert(name.clone(), draw(p, x));
            }
        }
    }
    Some(out)
}

/// The loop's next proposal at or after `index`, given the campaign's history: grid and
/// random skip indices whose configuration the history already holds (after rounding:
/// `243.0` is `243`), and give up (`None`, the space looks exhausted) after 1,000 such
/// indices in a row; TPE models the history ([`crate::tpe::suggest`]) and gives `None` when it
/// finds no untried configuration. Returns the index
/// used with the configuration.
pub fn propose_next(
    space: &SearchSpace,
    index: u64,
    history: &[crate::tpe::Observation],
) -> Option<(u64, Config)> {
    let seen: std::collections::BTreeSet<String> =
        history.iter().map(|o| crate::tpe::key(&o.config)).collect();
    if space.method == Method::Bayes {
        let c = crate::gp::suggest_bayes(space, history, index);
        return (!seen.contains(&crate::tpe::key(&c))).then_some((index, c));
    }
    if matches!(space.method, Method::Tpe | Method::Command) {
        // `method: command` proposes through its executable; what mlres itself suggests for
        // it (`mlres exp suggest`) comes from the TPE model of the same history. TPE repeats a
        // configuration only when it found no untried one: the space is exhausted.
        let c = crate::tpe::suggest(space, history, index);
        return (!seen.contains(&crate::tpe::key(&c))).then_some((index, c));
    }
    for i in index..index.saturating_add(1000) {
        let c = propose(space, i)?;
        if !seen.contains(&crate::tpe::key(&c)) {
            return Some((i, c));
        }
    }
    None
}

/// How many times the loop asks a `method: command` proposer for one configuration before
/// it stops with the reasons.
pub const PROPOSER_ATTEMPTS: u32 = 3;

/// Longest hypothesis a proposer may give.
pub const MAX_HYPOTHESIS_CHARS: usize = 2000;

/// Reads what a `method: command` proposer printed: one JSON object
/// `{"hypothesis": "...", "config": {...}}`, either the whole output or its last line that is
/// one (so a chatty tool may print before it). The config must validate against the space
/// (normalised as [`validate_config`] does) and must not repeat a configuration of the
/// history, tried or pending. Returns the hypothesis and config, or why it is refused.
pub fn parse_proposal(
    space: &SearchSpace,
    stdout: &str,
    history: &[crate::tpe::Observation],
) -> Result<(String, Config), String> {
    let whole = serde_json::from_str::<Value>(stdout.trim()).ok();
    let found = whole.filter(Value::is_object).or_else(|| {
        stdout
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .find(Value::is_object)
    });
    let Some(Value::Object(obj)) = found else {
        let shown = show(&Value::String(stdout.trim().to_string()));
        return Err(format!(
            "the output is not a JSON object {{\"hypothesis\": ..., \"config\": {{...}}}}; got {shown}"
        ));
    };
    if let Some(k) = obj.keys().find(|k| *k != "hypothesis" && *k != "config") {
        return Err(format!(
            "unknown key `{k}` in the proposal; only `hypothesis` and `config` are read"
        ));
    }
    let hypothesis = match obj.get("hypothesis") {
        Some(Value::String(h)) if !h.trim().is_empty() => h.trim().to_string(),
        Some(other) => {
            return Err(format!(
                "`hypothesis` must be a non-empty string, found {}",
                show(other)
            ));
        }
        None => return Err("`hypothesis` is missing".into()),
    };
    if hypothesis.chars().count() > MAX_HYPOTHESIS_CHARS {
        return Err(format!(
            "`hypothesis` is longer than {MAX_HYPOTHESIS_CHARS} characters"
        ));
    }
    let config = obj.get("config").ok_or("`config` is missing")?;
    let config = validate_config(space, config).map_err(|e| format!("invalid config: {e}"))?;
    let key = crate::tpe::key(&config);
    if history.iter().any(|o| crate::tpe::key(&o.config) == key) {
        return Err(format!(
            "duplicate: {} was already tried or is running; propose another configuration",
            show(&Value::Object(config))
        ));
    }
    Ok((hypothesis, config))
}

fn json_scalar(v: &Value) -> Option<Scalar> {
    match v {
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::String(s) => Some(Scalar::Str(s.clone())),
        Value::Number(n) => n
            .as_i64()
            .map(Scalar::Int)
            .or_else(|| n.as_f64().map(Scalar::Float)),
        _ => None,
    }
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn number(name: &str, v: &Value) -> Result<f64, String> {
    let f = v
        .as_f64()
        .ok_or_else(|| format!("`{name}` must be a number, found {}", show(v)))?;
    if f.is_finite() {
        Ok(f)
    } else {
        Err(format!("`{name}` must be finite"))
    }
}

/// Checks a configuration submitted by an untrusted agent against the approved space:
/// a JSON object with exactly the space's parameters, each value inside its domain.
/// Returns the normalised config (in parameter-name order; listed values take the
/// approved spelling, e.g. `1.0` becomes `1` when the space lists `1`).
pub fn validate_config(space: &SearchSpace, config: &Value) -> Result<Config, String> {
    let Value::Object(obj) = config else {
        return Err(format!(
            "the config must be a JSON object, found {}",
            show(config)
        ));
    };
    for key in obj.keys() {
        if !space.parameters.contains_key(key) {
            let names: Vec<&str> = space.parameters.keys().map(String::as_str).collect();
            let hint = crate::program::closest(key, &names)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "`{key}` is not a parameter of the approved search space{hint}; parameters: {}",
                names.join(", ")
            ));
        }
    }
    let mut out = Config::new();
    for (name, p) in &space.parameters {
        let v = obj
            .get(name)
            .ok_or_else(|| format!("parameter `{name}` is missing"))?;
        let norm = match p {
            Param::Value(s) => {
                let got = json_scalar(v);
                if got.as_ref().is_some_and(|g| g.same_value(s)) {
                    s.to_json()
                } else {
                    return Err(format!(
                        "`{name}` must be {}, found {}",
                        show(&s.to_json()),
                        show(v)
                    ));
                }
            }
            Param::Values(vals) => {
                let got = json_scalar(v);
                match got.and_then(|g| vals.iter().find(|s| s.same_value(&g))) {
                    Some(s) => s.to_json(),
                    None => {
                        let list: Vec<String> = vals.iter().map(|s| show(&s.to_json())).collect();
                        return Err(format!(
                            "`{name}` must be one of [{}], found {}",
                            list.join(", "),
                            show(v)
                        ));
                    }
                }
            }
            Param::Uniform { min, max } | Param::LogUniformValues { min, max } => {
                let f = number(name, v)?;
                if f < *min || f > *max {
                    return Err(format!("`{name}` = {f} is outside [{min}, {max}]"));
                }
                v.clone()
            }
            Param::IntUniform { min, max } | Param::IntLogUniform { min, max } => {
                let i = match v.as_i64() {
                    Some(i) => i,
                    None => {
                        let f = number(name, v)?;
                        #[allow(clippy::cast_precision_loss)]
                        let in_range =
                            f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64;
                        if !in_range {
                            return Err(format!("`{name}` must be an integer, found {}", show(v)));
                        }
                        #[allow(clippy::cast_possible_truncation)]
                        let i = f as i64;
                        i
                    }
                };
                if i < *min || i > *max {
                    return Err(format!("`{name}` = {i} is outside [{min}, {max}]"));
                }
                Value::from(i)
            }
            Param::QUniform { min, max, q } => {
                let f = number(name, v)?;
                if f < *min || f > *max {
                    return Err(format!("`{name}` = {f} is outside [{min}, {max}]"));
                }
                let k = f / q;
                if (k - k.round()).abs() > 1e-9 * k.abs().max(1.0) {
                    return Err(format!("`{name}` = {f} is not a multiple of {q}"));
                }
                v.clone()
            }
            Param::Shaped { dist, q, int } => shaped_value(name, *dist, *q, *int, v)?,
        };
        out.insert(name.clone(), norm);
    }
    Ok(out)
}

/// Checks and normalises a value of a [`Param::Shaped`] parameter: inside the
/// distribution's bounds, a multiple of `q` when quantised (an integer when `q` is), so
/// that `243.0` and `243` are the same configuration.
fn shaped_value(
    name: &str,
    dist: crate::program::Dist,
    q: Option<f64>,
    int: bool,
    v: &Value,
) -> Result<Value, String> {
    let f = number(name, v)?;
    let (lo, hi) = dist.bounds();
    let what = dist.wandb_name(q.is_some());
    if let Some(lo) = lo
        && f < lo
    {
        return Err(format!(
            "`{name}` = {f} is below {lo}, the least value of {what}"
        ));
    }
    if let Some(hi) = hi
        && f > hi
    {
        return Err(format!(
            "`{name}` = {f} is above {hi}, the greatest value of {what}"
        ));
    }
    let Some(q) = q else {
        return Ok(v.clone());
    };
    let k = f / q;
    if (k - k.round()).abs() > 1e-9 * k.abs().max(1.0) || k.abs() > 9.0e15 {
        return Err(format!("`{name}` = {f} is not a multiple of {q}"));
    }
    #[allow(clippy::cast_possible_truncation)]
    let k = k.round() as i64;
    if int {
        #[allow(clippy::cast_possible_truncation)]
        let qi = q as i64;
        Ok(Value::from(k.saturating_mul(qi)))
    } else {
        Ok(float(crate::dims::tidy_multiple(k, q)))
    }
}

/// Renders one value for a command line: strings as-is, integers without `.0`,
/// floats in their shortest JSON form, booleans `true`/`false`.
fn render_value(name: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!(
            "`{{{name}}}` has a value that cannot go on a command line: {}",
            show(v)
        )),
    }
}

/// Substitutes `{name}` placeholders in each argument (`{{`/`}}` are literal braces).
/// Names come from `config` or `builtins`; a name in both is an error. One template
/// element stays one argv element: no splitting, no shell.
pub fn render_command(
    template: &[String],
    config: &Config,
    builtins: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    let mut argv = Vec::with_capacity(template.len());
    for arg in template {
        let mut out = String::new();
        for piece in parse_placeholders(arg)? {
            match piece {
                Piece::Lit(s) => out.push_str(&s),
                Piece::Var(name) => match (config.get(&name), builtins.get(&name)) {
                    (Some(_), Some(_)) => {
                        return Err(format!(
                            "`{{{name}}}` is both a parameter and a builtin; rename the parameter"
                        ));
                    }
                    (Some(v), None) => out.push_str(&render_value(&name, v)?),
                    (None, Some(b)) => out.push_str(b),
                    (None, None) => return Err(format!("no value for placeholder `{{{name}}}`")),
                },
            }
        }
        argv.push(out);
    }
    Ok(argv)
}

/// Why `--config` flags could not be turned into a config.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigArgError {
    /// The flags are malformed (neither `NAME=VALUE` nor one JSON object, a name given
    /// twice, both forms mixed).
    #[error("{0}")]
    Usage(String),
    /// Well-formed, but a name or value does not fit the approved search space.
    #[error("{0}")]
    Invalid(String),
}

/// Builds a config from `--config` flags, in either of two forms: one JSON object
/// (`'{"lr": 0.001}'`), or any number of `NAME=VALUE` pairs whose values are typed the way
/// the search space types the parameter (a listed value takes its listed spelling and type,
/// so `tag=1` is the string `"1"` when the space lists strings; distributions take numbers).
/// The result may be partial: callers decide whether missing parameters are an error
/// ([`validate_config`]) or take defaults. Values are not range-checked here.
pub fn parse_config_args(space: &SearchSpace, args: &[String]) -> Result<Config, ConfigArgError> {
    let usage = |m: String| ConfigArgError::Usage(m);
    let is_json = |a: &str| matches!(a.trim_start().chars().next(), Some('{' | '['));
    if let Some(json) = args.iter().find(|a| is_json(a)) {
        if args.len() > 1 {
            return Err(usage(
                "give either one JSON object or NAME=VALUE pairs to --config, not both or \
                 several objects"
                    .into(),
            ));
        }
        return match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(usage(format!(
                "--config must be a JSON object such as '{{\"lr\": 0.001}}' or NAME=VALUE, found {}",
                show(&other)
            ))),
            Err(e) => Err(usage(format!("--config is not valid JSON: {e}"))),
        };
    }
    let mut out = Config::new();
    for arg in args {
        let Some((name, text)) = arg.split_once('=').filter(|(n, _)| !n.trim().is_empty()) else {
            return Err(usage(format!(
                "--config {arg:?}: expected NAME=VALUE (e.g. lr=0.001) or one JSON object"
            )));
        };
        let name = name.trim();
        if out.contains_key(name) {
            return Err(usage(format!("--config: `{name}` is given twice")));
        }
        let Some(param) = space.parameters.get(name) else {
            let names: Vec<&str> = space.parameters.keys().map(String::as_str).collect();
            let hint = crate::program::closest(name, &names)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            return Err(ConfigArgError::Invalid(format!(
                "`{name}` is not a parameter of the approved search space{hint}; parameters: {}",
                names.join(", ")
            )));
        };
        out.insert(
            name.to_string(),
            typed_value(name, param, text).map_err(ConfigArgError::Invalid)?,
        );
    }
    Ok(out)
}

/// `text` as a value of `param`: a listed value when one matches, else a number, boolean or
/// string according to what the parameter holds.
fn typed_value(name: &str, param: &Param, text: &str) -> Result<Value, String> {
    let listed: &[Scalar] = match param {
        Param::Value(s) => std::slice::from_ref(s),
        Param::Values(v) => v,
        Param::IntUniform { .. } | Param::IntLogUniform { .. } => {
            return text
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("`{name}` must be an integer, found {text:?}"));
        }
        Param::Shaped { int: true, .. } => {
            if let Ok(i) = text.trim().parse::<i64>() {
                return Ok(Value::from(i));
            }
            return match text.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(float(f)),
                _ => Err(format!("`{name}` must be an integer, found {text:?}")),
            };
        }
        Param::Uniform { .. }
        | Param::LogUniformValues { .. }
        | Param::QUniform { .. }
        | Param::Shaped { .. } => {
            return match text.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(float(f)),
                _ => Err(format!("`{name}` must be a number, found {text:?}")),
            };
        }
    };
    let as_number = text.trim().parse::<f64>().ok().filter(|f| f.is_finite());
    let as_bool = match text.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    };
    let matched = listed.iter().find(|s| match s {
        Scalar::Str(v) => v == text,
        Scalar::Bool(b) => as_bool == Some(*b),
        Scalar::Int(_) | Scalar::Float(_) => {
            as_number.is_some_and(|f| s.same_value(&Scalar::Float(f)))
        }
    });
    if let Some(s) = matched {
        return Ok(s.to_json());
    }
    // No listed value matches: keep the type the parameter holds so that the refusal names the
    // allowed values rather than a type confusion.
    if listed.iter().all(|s| matches!(s, Scalar::Bool(_))) {
        return as_bool
            .map(Value::Bool)
            .ok_or_else(|| format!("`{name}` must be true or false, found {text:?}"));
    }
    if listed
        .iter()
        .all(|s| matches!(s, Scalar::Int(_) | Scalar::Float(_)))
    {
        return match text.trim().parse::<i64>() {
            Ok(i) => Ok(Value::from(i)),
            Err(_) => as_number
                .map(float)
                .ok_or_else(|| format!("`{name}` must be a number, found {text:?}")),
        };
    }
    Ok(Value::String(text.to_string()))
}

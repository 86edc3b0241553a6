//! The canonical approval document, its hash, and a line diff for re-approval.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::program::{Envelope, JobTemplate, Objective, Param, Program, Scalar, SearchSpace};
use crate::units::format_duration;

/// Builds a JSON object with keys in sorted order (serde_json keeps insertion order).
fn obj(mut fields: Vec<(&str, Value)>) -> Value {
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut m = Map::new();
    for (k, v) in fields {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Exact, human-readable size: the largest binary (then decimal) unit that divides it
/// (`2GiB`, `1500KB`, `7B`); [`crate::parse_size`] reads it back.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 8] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
        (1_000_000_000_000, "TB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1000, "KB"),
    ];
    for (n, u) in UNITS {
        if bytes >= n && bytes.is_multiple_of(n) {
            return format!("{}{u}", bytes / n);
        }
    }
    format!("{bytes}B")
}

fn envelope(e: &Envelope) -> Value {
    obj(vec![
        ("max_jobs", Value::from(e.max_jobs)),
        (
            "max_walltime",
            Value::from(format_duration(e.max_walltime_secs)),
        ),
        ("allowed_flavors", strings(&e.allowed_flavors)),
        (
            "max_timeout",
            Value::from(format_duration(e.max_timeout_secs)),
        ),
        ("allow_deletes", Value::from(e.allow_deletes)),
        ("output_repos", strings(&e.output_repos)),
        (
            "max_cost_usd",
            e.max_cost_usd
                .map_or(Value::Null, |m| Value::from(m.to_string())),
        ),
        ("max_concurrent", Value::from(e.max_concurrent)),
        (
            "namespace",
            e.namespace.clone().map_or(Value::Null, Value::from),
        ),
        ("images", strings(&e.images)),
        ("datasets", strings(&e.datasets)),
        ("models", strings(&e.models)),
        (
            "backends",
            Value::Array(e.backends.iter().map(|b| Value::from(b.as_str())).collect()),
        ),
        (
            "final_reserve",
            Value::from(format_duration(e.final_reserve_secs)),
        ),
        ("token_scope", Value::from(e.token_scope.as_str())),
        ("public_repos", Value::from(e.public_repos)),
        ("user_token_in_jobs", Value::from(e.user_token_in_jobs)),
    ])
}

fn objective(o: &Objective) -> Value {
    let mut fields = vec![
        ("metric", Value::from(o.metric.clone())),
        (
            "goal",
            Value::from(match o.goal {
                crate::Goal::Maximize => "maximize",
                crate::Goal::Minimize => "minimize",
            }),
        ),
        ("target", o.target.map_or(Value::Null, float)),
        ("patience", o.patience.map_or(Value::Null, Value::from)),
        (
            "max_consecutive_failures",
            Value::from(o.max_consecutive_failures),
        ),
    ];
    // In the document only when declared, so approvals of programs without them keep their hash.
    if let Some(r) = &o.range {
        fields.push((
            "range",
            Value::Array(vec![
                r.min.map_or(Value::Null, float),
                r.max.map_or(Value::Null, float),
            ]),
        ));
    }
    if let Some(n) = &o.noise {
        fields.push((
            "noise",
            obj(vec![
                ("sd", n.sd.map_or(Value::Null, float)),
                ("repeats", n.repeats.map_or(Value::Null, Value::from)),
                ("confidence", float(n.confidence)),
            ]),
        ));
    }
    if let Some(e) = &o.early_stop {
        fields.push((
            "early_stop",
            obj(vec![
                ("method", Value::from("asha")),
                ("step", Value::from(e.step_key.clone())),
                ("min_step", float(e.min_step)),
                ("max_step", e.max_step.map_or(Value::Null, float)),
                ("reduction_factor", Value::from(e.reduction_factor)),
                ("startup", Value::from(e.startup)),
            ]),
        ));
    }
    obj(fields)
}

fn job(j: &JobTemplate) -> Value {
    let env: Vec<(&str, Value)> = j
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), Value::from(v.clone())))
        .collect();
    let l = &j.limits;
    let mut limits = vec![
        ("memory", Value::from(format_size(l.memory_bytes))),
        (
            "cpu_time",
            l.cpu_secs
                .map_or(Value::Null, |s| Value::from(format_duration(s))),
        ),
        ("file_size", Value::from(format_size(l.file_size_bytes))),
        ("processes", Value::from(l.processes)),
        ("log_size", Value::from(format_size(l.log_bytes))),
    ];
    // Keys added later appear only when set, so programs that do not use them keep the
    // hash they were approved under.
    if let Some(a) = l.address_space_bytes {
        limits.push(("address_space", Value::from(format_size(a))));
    }
    if let Some(c) = l.cpu_millis {
        limits.push(("cpus", Value::from(crate::program::format_cpus(c))));
    }
    let mut fields = vec![
        ("backend", Value::from(j.backend.as_str())),
        ("command", strings(&j.command)),
        ("flavor", Value::from(j.flavor.clone())),
        ("timeout", Value::from(format_duration(j.timeout_secs))),
        ("env", obj(env)),
        ("pass_env", strings(&j.pass_env)),
        ("secrets", strings(&j.secrets)),
        ("limits", obj(limits)),
        ("network", Value::from(j.network)),
        ("image", j.image.clone().map_or(Value::Null, Value::from)),
    ];
    // Like the newer limit keys: only when used, so older programs keep their hash.
    if j.gpus > 0 {
        fields.push(("gpus", Value::from(j.gpus)));
    }
    if j.share_gpus {
        fields.push(("share_gpus", Value::from(true)));
    }
    // Only when declared: a program without `code` keeps the document (and hash) it had.
    if !j.code.is_empty() {
        fields.push(("code", strings(&j.code)));
    }
    if !j.outputs.is_empty() {
        fields.push(("outputs", strings(&j.outputs)));
    }
    obj(fields)
}

fn scalar(s: &Scalar) -> Value {
    s.to_json()
}

fn search(s: &SearchSpace) -> Value {
    let params: Vec<(&str, Value)> = s
        .parameters
        .iter()
        .map(|(name, p)| {
            let v = match p {
                Param::Value(x) => obj(vec![("value", scalar(x))]),
                Param::Values(xs) => obj(vec![(
                    "values",
                    Value::Array(xs.iter().map(scalar).collect()),
                )]),
                Param::Uniform { min, max } => obj(vec![
                    ("distribution", Value::from("uniform")),
                    ("min", float(*min)),
                    ("max", float(*max)),
                ]),
                Param::IntUniform { min, max } => obj(vec![
                    ("distribution", Value::from("int_uniform")),
                    ("min", Value::from(*min)),
                    ("max", Value::from(*max)),
                ]),
                Param::LogUniformValues { min, max } => obj(vec![
                    ("distribution", Value::from("log_uniform_values")),
                    ("min", float(*min)),
                    ("max", float(*max)),
                ]),
                Param::QUniform { min, max, q } => obj(vec![
                    ("distribution", Value::from("q_uniform")),
                    ("min", float(*min)),
                    ("max", float(*max)),
                    ("q", float(*q)),
                ]),
                Param::IntLogUniform { min, max } => obj(vec![
                    ("distribution", Value::from("int_uniform")),
                    ("log", Value::from(true)),
                    ("min", Value::from(*min)),
                    ("max", Value::from(*max)),
                ]),
                Param::Shaped { dist, q, int } => {
                    let mut f = vec![("distribution", Value::from(dist.wandb_name(q.is_some())))];
                    match *dist {
                        crate::program::Dist::LogUniform { min, max }
                        | crate::program::Dist::LogUniformValues { min, max }
                        | crate::program::Dist::InvLogUniform { min, max }
                        | crate::program::Dist::InvLogUniformValues { min, max } => {
                            f.push(("min", float(min)));
                            f.push(("max", float(max)));
                        }
                        crate::program::Dist::Normal { mu, sigma }
                        | crate::program::Dist::LogNormal { mu, sigma } => {
                            f.push(("mu", float(mu)));
                            f.push(("sigma", float(sigma)));
                        }
                        crate::program::Dist::Beta { a, b } => {
                            f.push(("a", float(a)));
                            f.push(("b", float(b)));
                        }
                    }
                    if let Some(q) = q {
                        #[allow(clippy::cast_possible_truncation)]
                        let qv = if *int {
                            Value::from(*q as i64)
                        } else {
                            float(*q)
                        };
                        f.push(("q", qv));
                    }
                    obj(f)
                }
            };
            (name.as_str(), v)
        })
        .collect();
    let mut fields = vec![
        ("method", Value::from(s.method.name())),
        ("parameters", obj(params)),
        ("seed", Value::from(s.seed)),
    ];
    // Only when declared: other programs keep the document (and hash) they had.
    if let Some(c) = &s.command {
        fields.push(("command", strings(&c.argv)));
        fields.push(("timeout_secs", Value::from(c.timeout_secs)));
    }
    obj(fields)
}

/// The approved search space as JSON, in the approval document's form (W&B-style keys):
/// what a `method: command` proposer is shown.
pub fn search_space_json(s: &SearchSpace) -> Value {
    search(s)
}

/// The canonical document a human approves: pretty JSON with sorted keys, one field
/// per line, covering the envelope, the `## Scope` text (one line per element), the
/// objective, the job template and the search space. Prose sections such as Goal are
/// not part of it.
pub fn approval_document(p: &Program) -> String {
    let scope: Vec<Value> = p.scope_text().lines().map(Value::from).collect();
    let doc = obj(vec![
        ("format", Value::from("mlres-approval/1")),
        ("envelope", envelope(&p.envelope)),
        ("scope", Value::Array(scope)),
        (
            "objective",
            p.objective.as_ref().map_or(Value::Null, objective),
        ),
        ("job", p.job.as_ref().map_or(Value::Null, job)),
        (
            "search_space",
            p.search_space.as_ref().map_or(Value::Null, search),
        ),
    ]);
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

/// SHA-256 of the document, lowercase hex.
pub fn approval_hash(doc: &str) -> String {
    let digest = Sha256::digest(doc.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op<'a> {
    Same(&'a str),
    Del(&'a str),
    Add(&'a str),
}

/// Largest middle part (cells) diffed exactly; beyond it the middle is shown as a
/// block replacement.
const MAX_LCS_CELLS: usize = 4_000_000;

fn diff_ops<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Op<'a>> {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let max_suf = a.len().min(b.len()) - pre;
    let suf = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max_suf)
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut ops: Vec<Op<'a>> = a[..pre].iter().map(|l| Op::Same(l)).collect();
    let (n, m) = (am.len(), bm.len());
    if n.saturating_mul(m) > MAX_LCS_CELLS {
        ops.extend(am.iter().map(|l| Op::Del(l)));
        ops.extend(bm.iter().map(|l| Op::Add(l)));
    } else {
        // lcs[i][j] = LCS length of am[i..] and bm[j..].
        let w = m + 1;
        let mut lcs = vec![0u32; (n + 1) * w];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * w + j] = if am[i] == bm[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                ops.push(Op::Same(am[i]));
                i += 1;
                j += 1;
            } else if i < n && (j == m || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
                ops.push(Op::Del(am[i]));
                i += 1;
            } else {
                ops.push(Op::Add(bm[j]));
                j += 1;
            }
        }
    }
    ops.extend(a[a.len() - suf..].iter().map(|l| Op::Same(l)));
    ops
}

/// A minimal line diff: `- old` / `+ new` lines with two lines of context (`  line`),
/// skipped stretches shown as `  ...`. Empty when the documents are equal.
pub fn diff_documents(old: &str, new: &str) -> String {
    const CONTEXT: usize = 2;
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = diff_ops(&a, &b);
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o, Op::Same(_)))
        .map(|(i, _)| i)
        .collect();
    if changed.is_empty() {
        return String::new();
    }
    let near = |i: usize| changed.iter().any(|&c| c.abs_diff(i) <= CONTEXT);
    let mut out = String::new();
    let mut skipped = false;
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Same(l) if near(i) => {
                out.push_str("  ");
                out.push_str(l);
                out.push('\n');
                skipped = false;
            }
            Op::Same(_) => {
                if !skipped {
                    out.push_str("  ...\n");
                    skipped = true;
                }
            }
            Op::Del(l) => {
                out.push_str("- ");
                out.push_str(l);
                out.push('\n');
                skipped = false;
            }
            Op::Add(l) => {
                out.push_str("+ ");
                out.push_str(l);
                out.push('\n');
                skipped = false;
            }
        }
    }
    out
}

/// A unified diff (`--- old_label`, `+++ new_label`, `@@ -a,b +c,d @@` hunks with `context`
/// lines around each change), as `diff -u` writes it. Empty when the texts have the same lines.
pub fn unified_diff(
    old: &str,
    new: &str,
    old_label: &str,
    new_label: &str,
    context: usize,
) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = diff_ops(&a, &b);
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o, Op::Same(_)))
        .map(|(i, _)| i)
        .collect();
    if changed.is_empty() {
        return String::new();
    }
    // Hunks as ranges of ops: each change with its context, overlapping ones merged.
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &c in &changed {
        let start = c.saturating_sub(context);
        let end = (c + context + 1).min(ops.len());
        match hunks.last_mut() {
            Some(h) if start <= h.1 => h.1 = end,
            _ => hunks.push((start, end)),
        }
    }
    // Line numbers (1-based) in old and new at the start of each op.
    let mut pos = Vec::with_capacity(ops.len() + 1);
    let (mut i, mut j) = (1usize, 1usize);
    for op in &ops {
        pos.push((i, j));
        match op {
            Op::Same(_) => {
                i += 1;
                j += 1;
            }
            Op::Del(_) => i += 1,
            Op::Add(_) => j += 1,
        }
    }
    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    for (s, e) in hunks {
        let span = &ops[s..e];
        let olen = span.iter().filter(|o| !matches!(o, Op::Add(_))).count();
        let nlen = span.iter().filter(|o| !matches!(o, Op::Del(_))).count();
        let (os, ns) = pos[s];
        // An empty side starts at the line before it, as diff -u writes it.
        let ostart = if olen == 0 { os - 1 } else { os };
        let nstart = if nlen == 0 { ns - 1 } else { ns };
        out.push_str(&format!("@@ -{ostart},{olen} +{nstart},{nlen} @@\n"));
        for op in span {
            let (mark, l) = match op {
                Op::Same(l) => (' ', l),
                Op::Del(l) => ('-', l),
                Op::Add(l) => ('+', l),
            };
            out.push(mark);
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

//! Datasets: the built-in arithmetic task generator and JSONL loading, plus tokenisation.

use crate::error::{JsonlErrorKind, TrainError};
use crate::model::{BOS, EOS, Seq};
use crate::rng::Rng;
use std::collections::HashSet;
use std::path::Path;

/// One supervised example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Example {
    /// Loss only on `completion` (+ EOS); exact-match evaluable.
    PromptCompletion {
        /// Conditioning text (no loss).
        prompt: String,
        /// Target text.
        completion: String,
    },
    /// Plain text: loss on every token (+ EOS); not exact-match evaluable.
    Text(String),
}

impl Example {
    /// Tokenises as `BOS + bytes + EOS`, truncated to `max_seq_len + 1` tokens (so the model
    /// sees at most `max_seq_len` input positions).
    pub fn encode(&self, max_seq_len: usize) -> Seq {
        let (bytes, loss_start): (Vec<u8>, usize) = match self {
            Example::PromptCompletion { prompt, completion } => {
                let mut b = prompt.as_bytes().to_vec();
                b.extend_from_slice(completion.as_bytes());
                (b, 1 + prompt.len())
            }
            Example::Text(t) => (t.as_bytes().to_vec(), 1),
        };
        let mut tokens: Vec<u32> = std::iter::once(BOS)
            .chain(bytes.iter().map(|&b| b as u32))
            .chain(std::iter::once(EOS))
            .collect();
        tokens.truncate(max_seq_len + 1);
        Seq { tokens, loss_start }
    }
}

/// Fixed chat template used to render `messages` records.
pub fn render_messages(msgs: &[(String, String)]) -> String {
    let mut s = String::new();
    for (role, content) in msgs {
        s.push_str("<|");
        s.push_str(role);
        s.push_str("|>\n");
        s.push_str(content);
        s.push('\n');
    }
    s.push_str("<|assistant|>\n");
    s
}

/// A train/eval split.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Training examples.
    pub train: Vec<Example>,
    /// Held-out examples.
    pub eval: Vec<Example>,
}

/// One arithmetic problem `a op b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Problem {
    /// Left operand.
    pub a: u64,
    /// Operator (`+`, `-` or `*`).
    pub op: char,
    /// Right operand.
    pub b: u64,
}

impl Problem {
    /// The prompt, e.g. `47+38=`.
    pub fn prompt(&self) -> String {
        format!("{}{}{}=", self.a, self.op, self.b)
    }

    /// The exact answer, e.g. `85` (may be negative for `-`).
    pub fn answer(&self) -> String {
        let (a, b) = (self.a as i128, self.b as i128);
        let r = match self.op {
            '+' => a + b,
            '-' => a - b,
            _ => a * b,
        };
        r.to_string()
    }

    /// As an example.
    pub fn example(&self) -> Example {
        Example::PromptCompletion {
            prompt: self.prompt(),
            completion: self.answer(),
        }
    }
}

/// Generates disjoint eval and train problem sets (eval first, so the eval set depends only
/// on `data_seed`, `digits`, `ops` and `eval_size`, not on `train_size`).
pub fn arithmetic_problems(
    digits: u32,
    ops: &[char],
    train_size: usize,
    eval_size: usize,
    data_seed: u64,
) -> Result<(Vec<Problem>, Vec<Problem>), TrainError> {
    if !(1..=9).contains(&digits) {
        return Err(TrainError::InvalidConfig(format!(
            "arithmetic digits must be in 1..=9, got {digits}"
        )));
    }
    if ops.is_empty() {
        return Err(TrainError::InvalidConfig(
            "arithmetic ops must not be empty".into(),
        ));
    }
    let mut seen_ops = Vec::new();
    for &o in ops {
        if !matches!(o, '+' | '-' | '*') {
            return Err(TrainError::InvalidConfig(format!(
                "unsupported arithmetic op {o:?} (use '+', '-', '*')"
            )));
        }
        if seen_ops.contains(&o) {
            return Err(TrainError::InvalidConfig(format!(
                "duplicate arithmetic op {o:?}"
            )));
        }
        seen_ops.push(o);
    }
    if train_size == 0 || eval_size == 0 {
        return Err(TrainError::InvalidConfig(
            "train_size and eval_size must be > 0".into(),
        ));
    }
    let range = 10u64.pow(digits);
    let total = (range as u128) * (range as u128) * ops.len() as u128;
    let need = train_size as u128 + eval_size as u128;
    if need > total {
        return Err(TrainError::InvalidConfig(format!(
            "train_size + eval_size = {need} exceeds the {total} distinct problems"
        )));
    }
    let mut rng = Rng::new(data_seed);
    let decode = |idx: u64| {
        let op = ops[(idx % ops.len() as u64) as usize];
        let rest = idx / ops.len() as u64;
        Problem {
            a: rest / range,
            op,
            b: rest % range,
        }
    };
    let need = need as usize;
    let mut out = Vec::with_capacity(need);
    if need as u128 * 2 <= total {
        let mut seen = HashSet::with_capacity(need);
        while out.len() < need {
            let idx = rng.below(total as u64);
            if seen.insert(idx) {
                out.push(decode(idx));
            }
        }
    } else {
        // Dense case: total < 2·need, so enumerating is cheap.
        let mut all: Vec<u64> = (0..total as u64).collect();
        for i in 0..need {
            let j = i + rng.below((all.len() - i) as u64) as usize;
            all.swap(i, j);
            out.push(decode(all[i]));
        }
    }
    let train = out.split_off(eval_size);
    Ok((train, out))
}

fn jerr(path: &Path, line: usize, kind: JsonlErrorKind) -> TrainError {
    TrainError::Jsonl {
        path: path.to_path_buf(),
        line,
        kind,
    }
}

fn get_str(
    obj: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    path: &Path,
    line: usize,
) -> Result<Option<String>, TrainError> {
    match obj.get(key) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(jerr(
            path,
            line,
            JsonlErrorKind::WrongType {
                field: key.to_string(),
                expected: "string",
            },
        )),
    }
}

fn parse_record(text: &str, path: &Path, line: usize) -> Result<Example, TrainError> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| jerr(path, line, JsonlErrorKind::InvalidJson(e.to_string())))?;
    let serde_json::Value::Object(obj) = v else {
        return Err(jerr(path, line, JsonlErrorKind::NotAnObject));
    };
    if let Some(msgs) = obj.get("messages") {
        let serde_json::Value::Array(arr) = msgs else {
            return Err(jerr(
                path,
                line,
                JsonlErrorKind::WrongType {
                    field: "messages".into(),
                    expected: "array",
                },
            ));
        };
        let mut turns = Vec::with_capacity(arr.len());
        for (i, m) in arr.iter().enumerate() {
            let serde_json::Value::Object(mo) = m else {
                return Err(jerr(
                    path,
                    line,
                    JsonlErrorKind::WrongType {
                        field: format!("messages[{i}]"),
                        expected: "object",
                    },
                ));
            };
            let role = get_str(mo, "role", path, line)?.ok_or_else(|| {
                jerr(
                    path,
                    line,
                    JsonlErrorKind::MissingField(format!("messages[{i}].role")),
                )
            })?;
            let content = get_str(mo, "content", path, line)?.ok_or_else(|| {
                jerr(
                    path,
                    line,
                    JsonlErrorKind::MissingField(format!("messages[{i}].content")),
                )
            })?;
            if !matches!(role.as_str(), "user" | "system" | "assistant") {
                return Err(jerr(path, line, JsonlErrorKind::BadRole(role)));
            }
            turns.push((role, content));
        }
        match turns.last() {
            Some((r, _)) if r == "assistant" => {}
            _ => {
                return Err(jerr(path, line, JsonlErrorKind::NoFinalAssistant));
            }
        }
        let (_, completion) = turns.pop().unwrap_or_default();
        return Ok(Example::PromptCompletion {
            prompt: render_messages(&turns),
            completion,
        });
    }
    let prompt = get_str(&obj, "prompt", path, line)?;
    let completion = get_str(&obj, "completion", path, line)?;
    match (prompt, completion) {
        (Some(prompt), Some(completion)) => {
            return Ok(Example::PromptCompletion { prompt, completion });
        }
        (Some(_), None) => {
            return Err(jerr(
                path,
                line,
                JsonlErrorKind::MissingField("completion".into()),
            ));
        }
        (None, Some(_)) => {
            return Err(jerr(
                path,
                line,
                JsonlErrorKind::MissingField("prompt".into()),
            ));
        }
        (None, None) => {}
    }
    if let Some(t) = get_str(&obj, "text", path, line)? {
        return Ok(Example::Text(t));
    }
    Err(jerr(
        path,
        line,
        JsonlErrorKind::MissingField("one of prompt+completion, messages, text".into()),
    ))
}

/// Loads a JSONL file (blank lines are skipped). Each record is
/// `{"prompt","completion"}`, `{"messages":[{"role","content"}..]}` or `{"text"}`.
/// Errors name the file and the 1-based line number; an empty file is an error.
pub fn load_jsonl(path: &Path) -> Result<Vec<Example>, TrainError> {
    let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let text = std::str::from_utf8(raw).map_err(|e| {
            jerr(
                path,
                line,
                JsonlErrorKind::NotUtf8 {
                    byte_offset: e.valid_up_to(),
                },
            )
        })?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        out.push(parse_record(text, path, line)?);
    }
    if out.is_empty() {
        return Err(TrainError::EmptyDataset {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Loads a train file and an optional eval file; without an eval file the last 10% (at least
/// one example) of the train file is held out, which needs at least 2 examples.
pub fn load_jsonl_dataset(train: &Path, eval: Option<&Path>) -> Result<Dataset, TrainError> {
    let mut tr = load_jsonl(train)?;
    let ev = match eval {
        Some(p) => load_jsonl(p)?,
        None => {
            if tr.len() < 2 {
                return Err(TrainError::InvalidConfig(format!(
                    "{}: need at least 2 examples to hold out an eval split (or give an eval file)",
                    train.display()
                )));
            }
            let n_eval = (tr.len() / 10).max(1);
            tr.split_off(tr.len() - n_eval)
        }
    };
    Ok(Dataset {
        train: tr,
        eval: ev,
    })
}

//! `mlres train sft`: flags to an `SftConfig`, metric lines to stdout.

use anyhow::anyhow;
use mlres_train::{DataSource, SftConfig};

use crate::cli::SftArgs;
use crate::{Failure, exit, fail};

/// Parses a built-in task name: `add2`, `sub3`, `mul1`, or `arith2:+-*`.
pub fn parse_task(s: &str) -> Result<(u32, Vec<char>), String> {
    let (name, digits) = s.split_at(s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len()));
    let (digits, ops_part) = match digits.split_once(':') {
        Some((d, o)) => (d, Some(o)),
        None => (digits, None),
    };
    let digits: u32 = digits
        .parse()
        .map_err(|_| format!("task {s:?}: expected a digit count, e.g. add2"))?;
    if !(1..=6).contains(&digits) {
        return Err(format!("task {s:?}: digits must be 1..=6"));
    }
    let ops = match (name, ops_part) {
        ("add", None) => vec!['+'],
        ("sub", None) => vec!['-'],
        ("mul", None) => vec!['*'],
        ("arith", Some(o)) if !o.is_empty() && o.chars().all(|c| "+-*".contains(c)) => {
            let mut v: Vec<char> = o.chars().collect();
            v.dedup();
            v
        }
        _ => {
            return Err(format!(
                "unknown task {s:?}: use addN, subN, mulN or arithN:<ops> (ops from + - *)"
            ));
        }
    };
    Ok((digits, ops))
}

pub fn sft(a: &SftArgs) -> Result<u8, Failure> {
    let mut cfg = SftConfig::default();
    if let Some(train) = &a.train_file {
        cfg.data = DataSource::Jsonl {
            train: train.clone(),
            eval: a.eval_file.clone(),
        };
    } else {
        let (digits, ops) = parse_task(&a.task).map_err(|e| fail(exit::USAGE, anyhow!(e)))?;
        if let DataSource::Arithmetic {
            digits: d,
            ops: o,
            train_size,
            eval_size,
            data_seed,
        } = &mut cfg.data
        {
            *d = digits;
            *o = ops;
            if let Some(v) = a.train_size {
                *train_size = v;
            }
            if let Some(v) = a.eval_size {
                *eval_size = v;
            }
            if let Some(v) = a.data_seed {
                *data_seed = v;
            }
        }
    }
    macro_rules! set {
        ($($f:ident => $g:ident),*) => { $( if let Some(v) = a.$f { cfg.$g = v; } )* };
    }
    set!(lr => lr, d_model => d_model, layers => n_layers, heads => n_heads, steps => steps,
         warmup => warmup, batch_size => batch_size, weight_decay => weight_decay,
         grad_clip => grad_clip, seed => seed, log_every => log_every, max_seq_len => max_seq_len);
    // The default warmup is sized for the default step count; scale it down for short runs
    // unless the user chose it.
    if a.warmup.is_none() && cfg.warmup > cfg.steps {
        cfg.warmup = cfg.steps / 10;
    }
    if a.d_ff.is_some() {
        cfg.d_ff = a.d_ff;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // A diverged run is a result (it prints `diverged=1` and its eval metrics), not a crash, so
    // it exits 0 and the sweep discards it on its metric.
    mlres_train::run_sft(&cfg, &mut out, a.out.as_deref())
        .map_err(|e| fail(exit::ERROR, anyhow!(e)))?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::parse_task;

    #[test]
    fn tasks() {
        assert_eq!(parse_task("add2").unwrap(), (2, vec!['+']));
        assert_eq!(parse_task("arith3:+-").unwrap(), (3, vec!['+', '-']));
        assert!(parse_task("add").is_err());
        assert!(parse_task("div2").is_err());
        assert!(parse_task("add9").is_err());
        assert!(parse_task("arith2:/").is_err());
    }
}

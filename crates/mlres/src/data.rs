//! `mlres data`: the terminal side of `mlres-data` (inspect here, audit in `data_audit`).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use mlres_data::inspect::{ColumnStats, InspectOptions, InspectReport, Progress, Verdict};

use crate::{Cli, Failure, exit, fail, print};

#[derive(Subcommand, Debug)]
pub enum DataCmd {
    /// Schema, splits, row counts, per-column statistics, sample rows and SFT/DPO/GRPO fitness.
    ///
    /// SOURCE is a .jsonl/.json/.csv/.parquet file (optionally .gz/.zst/.bz2), a dataset
    /// directory (files are grouped into splits by name: train*, validation*/val*/dev*,
    /// test*), or `hf:<owner>/<name>` for a Hugging Face dataset read through the dataset
    /// viewer (a sample of rows). Reads only; needs no approval and spends nothing. Broken rows
    /// are counted and shown; a source with no readable row fails (exit 1).
    Inspect(InspectArgs),
    /// Duplicates, near duplicates, contamination, PII and secrets, injection and poisoning.
    Audit(crate::data_audit::AuditArgs),
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A local .jsonl/.json/.csv/.parquet file (optionally .gz/.zst/.bz2) or directory, or
    /// `hf:<owner>/<dataset>`.
    pub source: String,
    /// Sample rows to show.
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// For `hf:` sources: rows to fetch per split from the dataset viewer.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_rows: usize,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, cmd: &DataCmd) -> Result<u8, Failure> {
    match cmd {
        DataCmd::Inspect(a) => inspect(cli, a),
        DataCmd::Audit(a) => crate::data_audit::run(cli, a),
    }
}

/// A progress bar on stderr for long local scans, only when stderr is a terminal.
pub(crate) struct ScanBar(Option<indicatif::ProgressBar>);

impl ScanBar {
    pub(crate) fn new(json: bool) -> ScanBar {
        if json || !std::io::stderr().is_terminal() {
            return ScanBar(None);
        }
        ScanBar(Some(indicatif::ProgressBar::hidden()))
    }

    pub(crate) fn update(&mut self, p: Progress) {
        let Some(b) = &self.0 else { return };
        if b.is_hidden() && p.total_bytes > 0 {
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            b.set_length(p.total_bytes);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes}",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
        }
        b.set_position(p.bytes_done);
        b.set_message(format!("{} rows", p.rows));
    }
}

impl Drop for ScanBar {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

fn inspect(cli: &Cli, a: &InspectArgs) -> Result<u8, Failure> {
    let opts = InspectOptions {
        sample_rows: a.samples,
        ..InspectOptions::default()
    };
    let report = if let Some(repo) = crate::data_hf::hf_dataset(&a.source) {
        crate::data_hf::inspect(cli, &repo, opts, a.max_rows)?
    } else {
        let path = Path::new(&a.source);
        let mut bar = ScanBar::new(a.json);
        mlres_data::inspect::inspect_path(path, opts, &mut |p| bar.update(p))
            .map_err(|e| fail(exit::ERROR, anyhow!("cannot inspect {}: {e}", a.source)))?
    };
    let templates: Vec<&str> = crate::templates::fitting(&report)
        .into_iter()
        .map(|t| t.name())
        .collect();
    if a.json {
        // The report as `mlres_data` serialises it, plus the `mlres init` templates it fits.
        let mut v = serde_json::to_value(&report)
            .map_err(|e| fail(exit::ERROR, anyhow!("cannot serialise the report: {e}")))?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("templates".into(), serde_json::json!(templates));
        }
        print::json(&v);
    } else {
        print_report(&report, &templates, &a.source);
    }
    Ok(exit::OK)
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn types(c: &ColumnStats) -> String {
    let mut t: Vec<(&String, &u64)> = c.types.iter().filter(|(k, _)| *k != "null").collect();
    t.sort_by(|a, b| b.1.cmp(a.1));
    let non_null: u64 = t.iter().map(|(_, n)| **n).sum();
    let parts: Vec<String> = t
        .iter()
        .map(|(k, n)| {
            if t.len() == 1 {
                k.to_string()
            } else {
                format!("{k} {:.0}%", **n as f64 * 100.0 / non_null.max(1) as f64)
            }
        })
        .collect();
    if parts.is_empty() {
        "null".into()
    } else {
        parts.join(", ")
    }
}

fn verdict_line(name: &str, v: &Verdict) -> String {
    let mut s = if v.fits {
        format!(
            "  {name:<5} fits ({}): all {} rows",
            v.layout.as_deref().unwrap_or("?"),
            v.rows
        )
    } else {
        format!(
            "  {name:<5} does not fit{}",
            v.layout
                .as_deref()
                .map(|l| format!(" ({l}): {} of {} rows fit", v.fitting_rows, v.rows))
                .unwrap_or_default()
        )
    };
    for p in &v.problems {
        s.push_str(&format!("\n          - {p}"));
    }
    s
}

fn print_report(r: &InspectReport, templates: &[&str], source: &str) {
    println!(
        "{}{}: {} rows in {} split{}{}",
        r.source,
        if r.sampled { " (sample)" } else { "" },
        r.rows,
        r.splits.len(),
        if r.splits.len() == 1 { "" } else { "s" },
        if r.skipped > 0 {
            format!(
                ", {} row{} skipped",
                r.skipped,
                if r.skipped == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        }
    );
    println!("\nSplits:");
    for s in &r.splits {
        let bytes: u64 = s.files.iter().map(|f| f.bytes).sum();
        println!(
            "  {:<12} {:>9} rows  {} file{}  {}{}",
            s.name,
            s.rows,
            s.files.len(),
            if s.files.len() == 1 { "" } else { "s" },
            human_bytes(bytes),
            if s.skipped > 0 {
                format!("  ({} skipped)", s.skipped)
            } else {
                String::new()
            }
        );
        for e in &s.errors {
            println!("      skipped {}:{}: {}", e.file, e.row, e.message);
        }
        if s.skipped > s.errors.len() as u64 {
            println!("      … and {} more", s.skipped - s.errors.len() as u64);
        }
    }
    println!("\nColumns:");
    for c in &r.columns {
        let mut line = format!(
            "  {:<16} {:<18} nulls {:<7} distinct {}{}",
            c.name,
            types(c),
            c.nulls,
            if c.distinct_exact { "" } else { "~" },
            c.distinct
        );
        if let (Some(lo), Some(mean), Some(hi)) = (c.min_len, c.mean_len, c.max_len) {
            line.push_str(&format!("  length {lo}/{mean:.0}/{hi}"));
        }
        if let (Some(lo), Some(mean), Some(hi)) = (c.min, c.mean, c.max) {
            line.push_str(&format!("  range {lo}..{hi} (mean {mean:.3})"));
        }
        println!("{line}");
        if !c.balance.is_empty() && c.balance.len() > 1 {
            let total: u64 = c.balance.iter().map(|(_, n)| n).sum();
            let parts: Vec<String> = c
                .balance
                .iter()
                .map(|(v, n)| format!("{v} {:.1}%", *n as f64 * 100.0 / total.max(1) as f64))
                .collect();
            println!("  {:<16} balance: {}", "", parts.join(" · "));
        }
    }
    if r.untracked_columns > 0 {
        println!(
            "  … and {} more column{} without statistics (only the first {} are tracked)",
            r.untracked_columns,
            if r.untracked_columns == 1 { "" } else { "s" },
            mlres_data::inspect::MAX_COLUMNS
        );
    }
    println!("\nFitness:");
    println!("{}", verdict_line("SFT", &r.fitness.sft));
    println!("{}", verdict_line("DPO", &r.fitness.dpo));
    println!("{}", verdict_line("GRPO", &r.fitness.grpo));
    // Said so that a text/label set is not taken for SFT data; no template trains it.
    if r.fitness.classification.layout.is_some() {
        println!(
            "{}",
            verdict_line("Text classification", &r.fitness.classification)
        );
    }
    if templates.is_empty() {
        println!("Templates: none (`mlres init --template` needs data that fits one of the above)");
    } else {
        println!("Templates:");
        for t in templates {
            println!("  mlres init --template {t} --dataset {source}");
        }
    }
    for (t, problems) in crate::templates::near_misses(r) {
        println!("  not --template {}: {}", t.name(), problems.join("; "));
    }
    if !r.samples.is_empty() {
        println!("\nSample rows:");
        for s in &r.samples {
            println!(
                "  {}",
                serde_json::to_string(s).unwrap_or_else(|_| "?".into())
            );
        }
    }
}

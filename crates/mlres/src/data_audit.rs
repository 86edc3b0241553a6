//! `mlres data audit`: the terminal side of `mlres_data::audit`.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use mlres_data::audit::minhash::Shingle;
use mlres_data::audit::{self, AuditConfig, AuditReport, Detector, NearDupConfig, Severity};

use crate::{Cli, Failure, exit, fail, print};

/// Exit code when findings reach `--fail-on`.
pub const FINDINGS: u8 = exit::FINDINGS;

const AFTER_HELP: &str = "\
Detectors: exact-dup, near-dup (MinHash LSH), contamination (needs --against), pii, secrets,
injection, poisoning (trigger n-grams tied to one label/response, label flips among
duplicates, identical chosen/rejected, length outliers).

Severities: high = secrets, contamination, trigger n-grams; medium = PII, injection strings,
label flips, identical chosen/rejected; low = duplicates, near duplicates, length outliers.
Broken rows (skipped, so audited by nothing) are a finding by their share: high from 10%,
medium from 1%, else low. A source with no readable row is an error (exit 1).

Contamination: n-gram overlap (--ngram, by default 8 to 13 words chosen from the eval rows'
lengths) plus exact and normalised matching of eval rows shorter than that; the report says
how many eval rows each method checked.

Secrets and PII are shown redacted (first characters, then …[redacted]). Rows are shown as
file:line (the file relative to a directory audited); in --json, row numbers are positions in
the source and `locations` names each cited one as file:line.

Exit codes: 0 no finding at or above --fail-on; 6 findings at or above --fail-on;
1 unreadable source or eval set, or one with no readable row; 2 bad arguments.";

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FailOn {
    Low,
    Medium,
    High,
    Never,
}

#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct AuditArgs {
    /// A local .jsonl/.json/.csv/.parquet file (optionally .gz/.zst/.bz2) or directory (all
    /// splits are audited).
    pub source: String,
    /// An evaluation set (file or directory) to check the source against for contamination.
    #[arg(long, value_name = "EVAL_SOURCE")]
    pub against: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Exit with code 6 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value = "low")]
    pub fail_on: FailOn,
    /// Run only these detectors (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "DETECTORS")]
    pub only: Vec<String>,
    /// Skip these detectors (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "DETECTORS")]
    pub skip: Vec<String>,
    /// Jaccard similarity (of word or character shingles) at or above which rows are near
    /// duplicates; every LSH candidate pair is checked on its shingle sets.
    #[arg(
        long,
        default_value_t = 0.8,
        value_name = "J",
        visible_alias = "threshold"
    )]
    pub near_dup_threshold: f64,
    /// MinHash signature length.
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub num_perm: usize,
    /// LSH bands (default: chosen from the threshold and --num-perm).
    #[arg(long, value_name = "B")]
    pub bands: Option<usize>,
    /// Shingles: `word:N` (word n-grams) or `char:N` (character n-grams).
    #[arg(long, default_value = "word:3", value_name = "KIND:N")]
    pub shingle: String,
    /// Seed of the MinHash permutations.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Word n-gram length for contamination (default: chosen from the eval rows' lengths,
    /// 8 to 13; eval rows shorter than it are matched whole, exact and normalised).
    #[arg(long, value_name = "N")]
    pub ngram: Option<usize>,
    /// Share of an eval row's n-grams a train row must hold to count as contaminated.
    #[arg(long, default_value_t = 0.5, value_name = "FRACTION")]
    pub contamination_threshold: f64,
    /// Examples shown per detector (all are counted).
    #[arg(
        long,
        default_value_t = 5,
        value_name = "N",
        visible_alias = "max-examples"
    )]
    pub examples: usize,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
}

fn parse_shingle(s: &str) -> Result<Shingle, String> {
    let (kind, n) = s
        .split_once(':')
        .ok_or_else(|| format!("--shingle {s:?}: expected word:N or char:N"))?;
    let n: usize = n
        .parse()
        .map_err(|_| format!("--shingle {s:?}: {n:?} is not a number"))?;
    match kind {
        "word" | "words" => Ok(Shingle::Words(n)),
        "char" | "chars" => Ok(Shingle::Chars(n)),
        _ => Err(format!("--shingle {s:?}: expected word:N or char:N")),
    }
}

fn detectors(a: &AuditArgs) -> Result<Vec<Detector>, String> {
    let parse = |names: &[String]| -> Result<Vec<Detector>, String> {
        names
            .iter()
            .map(|n| {
                Detector::parse(n.trim()).ok_or_else(|| {
                    let all: Vec<&str> = Detector::ALL.iter().map(|d| d.name()).collect();
                    format!("unknown detector {n:?} (known: {})", all.join(", "))
                })
            })
            .collect()
    };
    let mut ds = if a.only.is_empty() {
        Detector::ALL.to_vec()
    } else {
        parse(&a.only)?
    };
    let skip = parse(&a.skip)?;
    ds.retain(|d| !skip.contains(d));
    Ok(ds)
}

fn config(a: &AuditArgs) -> Result<AuditConfig, String> {
    Ok(AuditConfig {
        detectors: detectors(a)?,
        near_dup: NearDupConfig {
            threshold: a.near_dup_threshold,
            num_perm: a.num_perm,
            bands: a.bands,
            shingle: parse_shingle(&a.shingle)?,
            seed: a.seed,
        },
        contamination_ngram: a.ngram,
        contamination_threshold: a.contamination_threshold,
        max_examples: a.examples,
        threads: a.threads,
        ..AuditConfig::default()
    })
}

pub fn run(_cli: &Cli, a: &AuditArgs) -> Result<u8, Failure> {
    let cfg = config(a).map_err(|e| fail(exit::USAGE, anyhow!(e)))?;
    if crate::data_hf::hf_dataset(&a.source).is_some() {
        return Err(fail(
            exit::USAGE,
            anyhow!(
                "mlres data audit reads local files; download the dataset first (hf: sources are not audited remotely)"
            ),
        ));
    }
    let bar = (!a.json && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        b
    });
    let mut progress = |rows: u64| {
        if let Some(b) = &bar {
            b.set_message(format!("{rows} rows audited"));
            b.tick();
        }
    };
    let result = audit::audit_path(
        Path::new(&a.source),
        a.against.as_deref().map(Path::new),
        &cfg,
        &mut progress,
    );
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = result.map_err(|e| match e {
        audit::AuditError::Config(_) => fail(exit::USAGE, anyhow!("{e}")),
        audit::AuditError::Read(_) => fail(exit::ERROR, anyhow!("cannot audit: {e}")),
        audit::AuditError::NoReadableRows(_) => {
            fail(exit::ERROR, anyhow!("cannot audit {}: {e}", a.source))
        }
    })?;
    if a.json {
        print::json(&report);
    } else {
        print_report(&a.source, &report);
    }
    let threshold = match a.fail_on {
        FailOn::Low => Some(Severity::Low),
        FailOn::Medium => Some(Severity::Medium),
        FailOn::High => Some(Severity::High),
        FailOn::Never => None,
    };
    Ok(match (report.worst(), threshold) {
        (Some(w), Some(t)) if w >= t => FINDINGS,
        _ => exit::OK,
    })
}

fn sev(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "MEDIUM",
        Severity::High => "HIGH",
    }
}

/// Rows as `file:line`, comma-separated.
fn rows_list(r: &AuditReport, rows: &[u64]) -> String {
    rows.iter().map(|&n| r.at(n)).collect::<Vec<_>>().join(", ")
}

fn print_report(source: &str, r: &AuditReport) {
    println!("audit of {source}: {} rows", r.rows);
    if r.broken_rows > 0 {
        println!("  {} broken rows skipped", r.broken_rows);
        for e in &r.broken_examples {
            println!("    {}: {}", r.at(e.row), e.message);
        }
    }
    if let Some(n) = r.eval_rows {
        println!("  checked against an eval set of {n} rows");
    }
    println!();
    if r.summary.is_empty() {
        println!("no findings");
    } else {
        println!("findings:");
        for s in &r.summary {
            println!(
                "  [{:<6}] {:<14} {} {}",
                sev(s.severity),
                s.detector.name(),
                s.count,
                s.finding
            );
        }
    }
    if let Some(d) = &r.exact_duplicates {
        println!();
        println!(
            "exact duplicates: {} duplicate rows in {} groups",
            d.duplicate_rows, d.groups
        );
        for g in &d.examples {
            println!(
                "  {} rows ({}): {}",
                g.size,
                rows_list(r, &g.rows),
                g.excerpt
            );
        }
    }
    if let Some(d) = &r.near_duplicates {
        println!();
        println!(
            "near duplicates (MinHash {} perms, {} bands × {} rows, J ≥ {}): {} rows in {} groups ({} candidate pairs, {} verified on their shingles{})",
            r.config.near_dup.num_perm,
            d.bands,
            d.rows_per_band,
            r.config.near_dup.threshold,
            d.near_duplicate_rows,
            d.groups,
            d.candidate_pairs,
            d.verified_pairs,
            if d.estimated_pairs > 0 {
                format!(
                    "; {} pairs judged on the signatures' estimate, past the shingle memory budget",
                    d.estimated_pairs
                )
            } else {
                String::new()
            }
        );
        for g in &d.examples {
            println!(
                "  {} rows ({}), J ≥ {:.2}: {}",
                g.size,
                rows_list(r, &g.rows),
                g.min_similarity,
                g.excerpt
            );
        }
    }
    if let Some(c) = &r.contamination {
        println!();
        println!(
            "contamination ({}-gram overlap{}, exact and normalised matches of shorter rows): {} rows",
            c.ngram,
            if c.ngram_adaptive {
                " (length chosen from the eval rows)"
            } else {
                ""
            },
            c.rows
        );
        let v = &c.coverage;
        println!(
            "  eval rows checked: {} by {}-gram overlap, {} shorter ones by their words anywhere in a row, {} of under {} words by whole-row match, {} not checkable (broken or no words)",
            v.by_ngram,
            c.ngram,
            v.by_contained_words,
            v.by_whole_row,
            audit::MIN_CONTAINED_WORDS,
            v.unchecked
        );
        for x in &c.examples {
            let how = match x.method {
                "ngram" => format!("{:.0}% of its {}-grams", x.overlap * 100.0, c.ngram),
                m => format!("{m} match"),
            };
            println!(
                "  {} ~ eval {} ({how}): {}",
                r.at(x.row),
                r.eval_at(x.eval_row),
                x.excerpt
            );
        }
    }
    for (title, s) in [("secrets", &r.secrets), ("PII", &r.pii)] {
        if let Some(s) = s {
            println!();
            let kinds: Vec<String> = s.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!(
                "{title}: {} matches in {} rows{}",
                s.matches,
                s.rows,
                if kinds.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", kinds.join(", "))
                }
            );
            for h in &s.examples {
                println!("  {} {} {}: {}", r.at(h.row), h.field, h.kind, h.excerpt);
            }
        }
    }
    if let Some(i) = &r.injection {
        println!();
        let kinds: Vec<String> = i.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "prompt injection: {} rows{}",
            i.rows,
            if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", kinds.join(", "))
            }
        );
        for h in &i.examples {
            println!("  {} {} {}: {}", r.at(h.row), h.field, h.kind, h.excerpt);
        }
    }
    if let Some(p) = &r.poisoning {
        println!();
        println!("poisoning signals:");
        println!(
            "  trigger n-grams tied to one {}: {} ({} high, {} medium; {} class or topic n-grams set aside: their rows' other words agree with the label)",
            p.target_kind,
            p.triggers.len(),
            p.high_triggers,
            p.medium_triggers,
            p.label_consistent_ngrams
        );
        // What the detector decides on: significance against the base rate (support counted
        // over distinct rows), and whether the phrase is foreign to the rows it is in.
        for t in &p.triggers {
            println!(
                "    [{}] {:?} → {:?}: {} distinct rows, {:.0}% of them vs {:.1}% overall, p {}; {}; rows {}",
                sev_tag(t.severity),
                t.ngram,
                t.target,
                t.rows,
                t.purity * 100.0,
                t.base_rate * 100.0,
                p_value(t.log10_p),
                foreignness(t.context_evidence, t.context_evidence_se),
                rows_list(r, &t.example_rows)
            );
        }
        println!(
            "  label flips among duplicates: {} groups",
            p.label_flip_groups
        );
        for f in &p.label_flips {
            println!(
                "    rows {} labelled {}: {}",
                rows_list(r, &f.rows),
                f.labels.join(" / "),
                f.excerpt
            );
        }
        println!(
            "  identical chosen and rejected: {}{}",
            p.identical_chosen_rejected,
            if p.identical_chosen_rejected_rows.is_empty() {
                String::new()
            } else {
                format!(
                    " (rows {})",
                    rows_list(r, &p.identical_chosen_rejected_rows)
                )
            }
        );
        println!(
            "  length outliers (median {:.0} chars): {}",
            p.median_chars, p.length_outliers
        );
        for o in &p.length_outlier_rows {
            println!("    {}: {} chars", r.at(o.row), o.chars);
        }
    }
}

fn sev_tag(s: Severity) -> &'static str {
    match s {
        Severity::High => "HIGH",
        Severity::Medium => "MEDIUM",
        Severity::Low => "LOW",
    }
}

/// A Bonferroni-adjusted p-value from its log10: `≈ 1e-42`, or `≈ 0.003` when not tiny.
fn p_value(log10_p: f64) -> String {
    if log10_p >= -3.0 {
        format!("≈ {:.3}", 10f64.powf(log10_p))
    } else {
        format!("≈ 1e{:.0}", log10_p)
    }
}

/// The rows' other words as evidence for the label: negative means the phrase is foreign to
/// its rows (their content argues against the label it maps to).
fn foreignness(evidence: Option<f64>, se: Option<f64>) -> String {
    match (evidence, se) {
        (Some(e), Some(se)) => format!(
            "context evidence {e:+.2} ± {se:.2} ({})",
            if e < 0.0 {
                "foreign to its rows"
            } else {
                "fits its rows"
            }
        ),
        (Some(e), None) => format!("context evidence {e:+.2}"),
        _ => "foreignness not measured".to_string(),
    }
}

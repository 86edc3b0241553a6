//! Approval document, hash and diff.

use mlres_policy::{
    Backend, Goal, Method, Money, Param, Program, Scalar, approval_document, approval_hash,
    diff_documents, parse_program,
};

const FIXTURE: &str = include_str!("fixtures/program.md");

fn fixture() -> Program {
    parse_program(FIXTURE).unwrap_or_else(|e| panic!("{e}"))
}

/// Every mutation of an authorised field, each labelled.
type Mutation = (&'static str, Box<dyn Fn(&mut Program)>);

fn mutations() -> Vec<Mutation> {
    fn job(p: &mut Program) -> &mut mlres_policy::JobTemplate {
        p.job.as_mut().expect("job")
    }
    fn obj(p: &mut Program) -> &mut mlres_policy::Objective {
        p.objective.as_mut().expect("objective")
    }
    fn space(p: &mut Program) -> &mut mlres_policy::SearchSpace {
        p.search_space.as_mut().expect("space")
    }
    vec![
        (
            "max_jobs",
            Box::new(|p: &mut Program| p.envelope.max_jobs += 1),
        ),
        (
            "max_walltime",
            Box::new(|p: &mut Program| p.envelope.max_walltime_secs += 1),
        ),
        (
            "allowed_flavors",
            Box::new(|p: &mut Program| p.envelope.allowed_flavors.push("a100x8".into())),
        ),
        (
            "max_timeout",
            Box::new(|p: &mut Program| p.envelope.max_timeout_secs += 60),
        ),
        (
            "allow_deletes",
            Box::new(|p: &mut Program| p.envelope.allow_deletes = true),
        ),
        (
            "output_repos",
            Box::new(|p: &mut Program| p.envelope.output_repos[0] = "me/*".into()),
        ),
        (
            "max_cost_usd",
            Box::new(|p: &mut Program| {
                p.envelope.max_cost_usd = Some(Money {
                    micro_usd: 12_500_001,
                })
            }),
        ),
        (
            "max_cost_usd none",
            Box::new(|p: &mut Program| p.envelope.max_cost_usd = None),
        ),
        (
            "max_concurrent",
            Box::new(|p: &mut Program| p.envelope.max_concurrent = 3),
        ),
        (
            "namespace",
            Box::new(|p: &mut Program| p.envelope.namespace = Some("org".into())),
        ),
        (
            "images",
            Box::new(|p: &mut Program| p.envelope.images.push("img".into())),
        ),
        (
            "datasets",
            Box::new(|p: &mut Program| p.envelope.datasets.clear()),
        ),
        (
            "models",
            Box::new(|p: &mut Program| p.envelope.models.push("m2".into())),
        ),
        (
            "backends",
            Box::new(|p: &mut Program| p.envelope.backends.retain(|b| *b != Backend::HfJobs)),
        ),
        (
            "final_reserve",
            Box::new(|p: &mut Program| p.envelope.final_reserve_secs = 0),
        ),
        (
            "scope",
            Box::new(|p: &mut Program| {
                let s = p
                    .sections
                    .iter_mut()
                    .find(|s| s.heading == "Scope")
                    .expect("scope");
                s.body.push_str("\n- Also: the internet.");
            }),
        ),
        (
            "metric",
            Box::new(|p: &mut Program| obj(p).metric = "eval_loss".into()),
        ),
        (
            "goal",
            Box::new(|p: &mut Program| obj(p).goal = Goal::Minimize),
        ),
        (
            "target",
            Box::new(|p: &mut Program| obj(p).target = Some(0.95)),
        ),
        (
            "patience",
            Box::new(|p: &mut Program| obj(p).patience = None),
        ),
        (
            "max_consecutive_failures",
            Box::new(|p: &mut Program| obj(p).max_consecutive_failures = 9),
        ),
        (
            "objective none",
            Box::new(|p: &mut Program| p.objective = None),
        ),
        (
            "job backend",
            Box::new(|p: &mut Program| job(p).backend = Backend::HfJobs),
        ),
        (
            "job command",
            Box::new(|p: &mut Program| job(p).command.push("--evil".into())),
        ),
        (
            "job flavor",
            Box::new(|p: &mut Program| job(p).flavor = "t4-small".into()),
        ),
        (
            "job timeout",
            Box::new(|p: &mut Program| job(p).timeout_secs += 1),
        ),
        (
            "job env",
            Box::new(|p: &mut Program| {
                job(p).env.insert("LD_PRELOAD".into(), "x".into());
            }),
        ),
        (
            "job env value",
            Box::new(|p: &mut Program| {
                job(p).env.insert("RUN_NAME".into(), "other".into());
            }),
        ),
        (
            "job pass_env",
            Box::new(|p: &mut Program| job(p).pass_env.push("HOME".into())),
        ),
        (
            "job secrets",
            Box::new(|p: &mut Program| job(p).secrets.push("HF_TOKEN".into())),
        ),
        (
            "job memory",
            Box::new(|p: &mut Program| job(p).limits.memory_bytes += 1),
        ),
        (
            "job cpu",
            Box::new(|p: &mut Program| job(p).limits.cpu_secs = None),
        ),
        (
            "job file_size",
            Box::new(|p: &mut Program| job(p).limits.file_size_bytes *= 2),
        ),
        (
            "job processes",
            Box::new(|p: &mut Program| job(p).limits.processes += 1),
        ),
        (
            "job log",
            Box::new(|p: &mut Program| job(p).limits.log_bytes += 1),
        ),
        (
            "job address_space",
            Box::new(|p: &mut Program| job(p).limits.address_space_bytes = Some(64 << 30)),
        ),
        ("job gpus", Box::new(|p: &mut Program| job(p).gpus = 1)),
        (
            "job share_gpus",
            Box::new(|p: &mut Program| {
                job(p).gpus = 1;
                job(p).share_gpus = true;
            }),
        ),
        (
            "job cpus",
            Box::new(|p: &mut Program| job(p).limits.cpu_millis = Some(1500)),
        ),
        (
            "job network",
            Box::new(|p: &mut Program| job(p).network = true),
        ),
        (
            "method",
            Box::new(|p: &mut Program| space(p).method = Method::Grid),
        ),
        ("seed", Box::new(|p: &mut Program| space(p).seed = 8)),
        (
            "param max",
            Box::new(|p: &mut Program| {
                space(p).parameters.insert(
                    "lr".into(),
                    Param::LogUniformValues {
                        min: 1e-4,
                        max: 3.0000001e-3,
                    },
                );
            }),
        ),
        (
            "param values",
            Box::new(|p: &mut Program| {
                space(p).parameters.insert(
                    "width".into(),
                    Param::Values(vec![
                        Scalar::Int(32),
                        Scalar::Int(64),
                        Scalar::Str("128".into()),
                    ]),
                );
            }),
        ),
        (
            "param q",
            Box::new(|p: &mut Program| {
                space(p).parameters.insert(
                    "dropout".into(),
                    Param::QUniform {
                        min: 0.0,
                        max: 0.3,
                        q: 0.1,
                    },
                );
            }),
        ),
        (
            "param int",
            Box::new(|p: &mut Program| {
                space(p)
                    .parameters
                    .insert("layers".into(), Param::IntUniform { min: 0, max: 4 });
            }),
        ),
        (
            "param value",
            Box::new(|p: &mut Program| {
                space(p)
                    .parameters
                    .insert("warmup".into(), Param::Value(Scalar::Float(100.0)));
            }),
        ),
        (
            "param added",
            Box::new(|p: &mut Program| {
                space(p)
                    .parameters
                    .insert("zeta".into(), Param::Uniform { min: 0.0, max: 1.0 });
            }),
        ),
    ]
}

#[test]
fn every_authorised_field_changes_the_document() {
    let base = approval_document(&fixture());
    let mut seen = std::collections::BTreeSet::new();
    for (label, mutate) in mutations() {
        let mut p = fixture();
        mutate(&mut p);
        let doc = approval_document(&p);
        assert_ne!(
            doc, base,
            "changing {label} did not change the approval document"
        );
        assert_ne!(approval_hash(&doc), approval_hash(&base), "{label}");
        assert!(
            seen.insert(doc),
            "{label} produced the same document as another mutation"
        );
    }
}

#[test]
fn goal_prose_and_other_sections_do_not_change_the_document() {
    let base = approval_document(&fixture());
    let edited = FIXTURE
        .replace(
            "reach\neval_accuracy >= 0.9",
            "reach\neval_accuracy >= 0.95 quickly",
        )
        .replace("Keep if it beats", "We keep it if it beats")
        .replace("# Tiny SFT sweep", "# A tiny SFT sweep");
    assert_ne!(edited, FIXTURE);
    let p = parse_program(&edited).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(approval_document(&p), base);
}

#[test]
fn source_level_envelope_edit_changes_the_hash() {
    let base = approval_hash(&approval_document(&fixture()));
    let edited = FIXTURE.replace("max_jobs: 12", "max_jobs: 13");
    let p = parse_program(&edited).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(approval_hash(&approval_document(&p)), base);
}

#[test]
fn document_is_deterministic_and_readable() {
    let a = approval_document(&fixture());
    let b = approval_document(&fixture());
    assert_eq!(a, b);
    assert!(a.contains("\"max_walltime\": \"8h\""), "{a}");
    assert!(a.contains("\"max_cost_usd\": \"12.50\""), "{a}");
    assert!(a.contains("\"memory\": \"1536MiB\""), "{a}");
    assert!(a.contains("\"timeout\": \"1h30m\""), "{a}");
    assert!(
        !a.contains("Find a learning rate"),
        "goal prose leaked into the document"
    );
    // keys are sorted at the top level
    let top: Vec<&str> = a
        .lines()
        .filter(|l| l.starts_with("  \""))
        .map(|l| l.trim_start().split('"').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        top,
        [
            "envelope",
            "format",
            "job",
            "objective",
            "scope",
            "search_space"
        ]
    );
}

#[test]
fn hash_is_sha256_hex() {
    assert_eq!(
        approval_hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn diff_shows_the_changed_line_with_context() {
    let old = approval_document(&fixture());
    let mut p = fixture();
    p.envelope.max_jobs = 13;
    let new = approval_document(&p);
    let d = diff_documents(&old, &new);
    assert!(
        d.contains("-     \"max_jobs\": 12,\n+     \"max_jobs\": 13,\n"),
        "{d}"
    );
    let changed: Vec<&str> = d
        .lines()
        .filter(|l| l.starts_with('-') || l.starts_with('+'))
        .collect();
    assert_eq!(changed.len(), 2, "{d}");
    assert!(d.lines().count() <= 2 + 2 * 2 + 2, "too much context:\n{d}");
    assert!(d.contains("  ..."), "{d}");
    assert_eq!(diff_documents(&old, &old), "");
}

#[test]
fn diff_handles_insertions_and_deletions() {
    let d = diff_documents("a\nb\nc\nd\n", "a\nc\nd\ne\n");
    assert_eq!(d, "  a\n- b\n  c\n  d\n+ e\n");
    let d = diff_documents("", "x\n");
    assert_eq!(d, "+ x\n");
    let d = diff_documents("1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\n4\nX\n6\n7\n8\n9\n");
    assert_eq!(d, "  ...\n  3\n  4\n- 5\n+ X\n  6\n  7\n  ...\n");
}

//! Programs that parse but could never run are refused at parse time (errors), and programs
//! that would run pointless sweeps parse with warnings. Slurm jobs stay inside the envelope's
//! partitions and GPU limits.

use mlres_policy::{Backend, parse_program};

use crate::common::{BASE, doc, env_doc, expect_err};

const OBJECTIVE: &str = "metric: score\ngoal: maximize";
const SPACE: &str = "method: grid\nparameters:\n  lr: {values: [0.1, 0.01]}";
const JOB: &str = "command: [python, t.py, \"--lr={lr}\"]\ntimeout: 10m";

fn slurm_program(env_extra: &str, job_extra: &str) -> String {
    let env = format!("{BASE}\nbackends: [local, slurm]{env_extra}");
    doc(&[
        ("Budget envelope", &env),
        ("Job", &format!("{JOB}\nbackend: slurm{job_extra}")),
        ("Objective", OBJECTIVE),
        ("Search space", SPACE),
    ])
    .0
}

#[test]
fn a_slurm_job_parses_with_its_partition_gpus_and_gpu_budget() {
    let src = slurm_program(
        "\npartitions: [gpu, debug]\nmax_gpus_per_job: 2\nmax_gpu_hours: 1.5",
        "\ngpus: 2\nslurm:\n  partition: debug\n  account: lab-1\n  qos: normal\n  cpus: 4",
    );
    let p = parse_program(&src).unwrap();
    assert_eq!(p.envelope.partitions, ["gpu", "debug"]);
    assert_eq!(p.envelope.max_gpus_per_job, Some(2));
    assert_eq!(p.envelope.max_gpu_secs, Some(5400));
    let job = p.job.unwrap();
    assert_eq!(job.backend, Backend::Slurm);
    assert_eq!(job.gpus, 2);
    let s = job.slurm.unwrap();
    assert_eq!(s.partition.as_deref(), Some("debug"));
    assert_eq!(s.account.as_deref(), Some("lab-1"));
    assert_eq!(s.qos.as_deref(), Some("normal"));
    assert_eq!(s.cpus, 4);
    // Without `slurm:` a slurm job still gets one CPU and the default partition.
    let p = parse_program(&slurm_program("", "")).unwrap();
    assert_eq!(p.job.unwrap().slurm.unwrap().cpus, 1);
}

#[test]
fn slurm_jobs_outside_the_envelope_are_refused() {
    for (env, job, needle) in [
        (
            "\npartitions: [gpu]",
            "\nslurm:\n  partition: debug",
            "partition `debug` is not in the envelope's partitions [gpu]",
        ),
        ("", "\nslurm:\n  partition: debug", "partitions []"),
        (
            "\nmax_gpus_per_job: 1",
            "\ngpus: 2",
            "asks for 2 GPUs and the envelope allows 1 per job",
        ),
        ("\nmax_gpu_hours: 0", "\ngpus: 1", "`max_gpu_hours` is 0"),
        (
            "",
            "\nslurm:\n  partition: \"a;rm -rf\"",
            "not a usable Slurm partition name",
        ),
        ("", "\nslurm:\n  cpus: 0", "`cpus` must be from 1 to 4096"),
        ("", "\nslurm:\n  nodes: 3", "nodes"),
        ("\nmax_gpu_hours: -1", "", "`max_gpu_hours` must be"),
        (
            "\npartitions: [\"--all\"]",
            "",
            "not a Slurm partition name",
        ),
        (
            "",
            "\ngpus: 1\nshare_gpus: true",
            "Slurm gives each job its own GPUs",
        ),
    ] {
        let src = slurm_program(env, job);
        let e = parse_program(&src).expect_err(&src);
        assert!(e.to_string().contains(needle), "{e}\n{src}");
    }
}

#[test]
fn a_slurm_map_on_another_backend_is_refused() {
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        ("Job", &format!("{JOB}\nslurm:\n  partition: debug")),
        ("Objective", OBJECTIVE),
        ("Search space", SPACE),
    ]);
    let e = parse_program(&src).unwrap_err();
    assert!(
        e.to_string()
            .contains("`slurm` is for `backend: slurm` jobs, not `local`"),
        "{e}"
    );
}

#[test]
fn every_backend_has_a_name() {
    let names: Vec<&str> = Backend::ALL.iter().map(|b| b.as_str()).collect();
    assert_eq!(names, ["local", "hf-jobs", "slurm"]);
    assert_eq!(Backend::from_name("kubernetes"), None);
    for b in Backend::ALL {
        assert_eq!(Backend::from_name(b.as_str()), Some(b));
    }
}

#[test]
fn a_job_without_an_objective_is_refused() {
    let (src, starts) = doc(&[
        ("Budget envelope", BASE),
        ("Job", JOB),
        ("Search space", SPACE),
    ]);
    // The `## Job` heading is 3 lines above its first YAML line.
    let e = expect_err(&src, starts[1] - 3, 1, "no `## Objective` section");
    assert!(e.message.contains("metric"), "{e}");
    assert!(e.help.unwrap_or_default().contains("goal"));
}

#[test]
fn a_job_without_a_search_space_is_refused() {
    let (src, starts) = doc(&[
        ("Budget envelope", BASE),
        ("Objective", OBJECTIVE),
        ("Job", "command: [python, t.py]\ntimeout: 10m"),
    ]);
    expect_err(&src, starts[2] - 3, 1, "no `## Search space` section");
}

/// The plugin's template has a budget envelope and prose only: it still parses (hub writes
/// need only an envelope), with a warning that nothing can run.
#[test]
fn an_envelope_only_program_parses_with_a_warning() {
    let p = parse_program(&env_doc(BASE)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.objective, None);
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(
        p.warnings[0].message.contains("no `## Job`"),
        "{:?}",
        p.warnings
    );
}

fn full(envelope: &str, job: &str) -> String {
    doc(&[
        ("Budget envelope", envelope),
        ("Objective", OBJECTIVE),
        ("Job", job),
        ("Search space", SPACE),
    ])
    .0
}

#[test]
fn a_timeout_longer_than_max_walltime_is_refused() {
    let env = "max_jobs: 3\nmax_walltime: 20m\nallowed_flavors: [cpu-basic]\nmax_timeout: 1h";
    let src = full(env, "command: [python, t.py, \"{lr}\"]\ntimeout: 30m");
    // Job YAML starts on line 22: command 22, timeout 23.
    let e = expect_err(&src, 23, 10, "job timeout 30m is over max_walltime 20m");
    assert!(e.message.contains("no experiment"), "{e}");
    // Exactly max_walltime fits one job.
    let ok = full(env, "command: [python, t.py, \"{lr}\"]\ntimeout: 20m");
    parse_program(&ok).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_final_reserve_that_leaves_no_room_for_one_job_is_refused() {
    // 8h max_walltime minus 475m leaves 5m: a 10m job can never be proposed by the loop.
    let env = format!("{BASE}\nfinal_reserve: 475m");
    let src = full(&env, "command: [python, t.py, \"{lr}\"]\ntimeout: 10m");
    // The envelope has 5 lines, so the job's YAML starts on line 23; timeout is line 24.
    let e = expect_err(&src, 24, 10, "final_reserve");
    assert!(e.message.contains("5m"), "{e}");
    let env = BASE.to_string() + "\nfinal_reserve: 470m";
    parse_program(&full(
        &env,
        "command: [python, t.py, \"{lr}\"]\ntimeout: 10m",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn max_jobs_zero_is_refused_when_there_is_a_job() {
    let env = BASE.replace("max_jobs: 3", "max_jobs: 0");
    let src = full(&env, JOB);
    expect_err(&src, 6, 11, "`max_jobs` is 0");
    // Without a job (hub writes only) it means what it says.
    parse_program(&env_doc(&env)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn max_cost_zero_is_refused_when_there_is_a_job() {
    let env = format!("{BASE}\nmax_cost_usd: 0");
    let src = full(&env, JOB);
    expect_err(&src, 10, 15, "`max_cost_usd` is 0");
    let env = format!("{BASE}\nmax_cost_usd: 0.01");
    parse_program(&full(&env, JOB)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_parameter_the_command_never_uses_is_a_warning() {
    let space =
        "method: grid\nparameters:\n  lr: {values: [0.1, 0.01]}\n  width: {values: [8, 16]}";
    let (src, starts) = doc(&[
        ("Budget envelope", BASE),
        ("Objective", OBJECTIVE),
        ("Job", JOB),
        ("Search space", space),
    ]);
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    let w = &p.warnings[0];
    assert!(w.message.contains("`width`"), "{w:?}");
    assert!(w.message.contains("same command"), "{w:?}");
    assert_eq!((w.line, w.column), (starts[3] + 3, 3), "{w:?}");
    assert!(w.help.as_deref().unwrap_or("").contains("{width}"), "{w:?}");
    // An escaped brace is a literal, not a use.
    let job = "command: [python, t.py, \"--lr={lr}\", \"{{width}}\"]\ntimeout: 10m";
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        ("Objective", OBJECTIVE),
        ("Job", job),
        ("Search space", space),
    ]);
    assert_eq!(parse_program(&src).unwrap().warnings.len(), 1);
    // Used inside a word, it is used.
    let job = "command: \"python t.py --lr={lr} --width={width}\"\ntimeout: 10m";
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        ("Objective", OBJECTIVE),
        ("Job", job),
        ("Search space", space),
    ]);
    assert_eq!(parse_program(&src).unwrap().warnings, vec![]);
}

#[test]
fn a_complete_program_has_no_warnings() {
    let p = parse_program(&full(BASE, JOB)).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

/// The README's Slurm example (its envelope and job, as printed there) is a valid program.
#[test]
fn the_readmes_slurm_example_parses() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split("\n## Slurm\n")
        .nth(1)
        .expect("README has a ## Slurm section");
    let block = section
        .split("````markdown\n")
        .nth(1)
        .and_then(|b| b.split("\n````").next())
        .expect("the section's example");
    let src = format!(
        "# T\n\n{block}\n\n## Objective\n```yaml\n{OBJECTIVE}\n```\n\n## Search space\n```yaml\n\
         method: grid\nparameters:\n  lr: {{values: [0.1, 0.01]}}\n```\n"
    );
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    assert_eq!(p.envelope.partitions, ["gpu", "debug"]);
    assert_eq!(p.envelope.max_gpu_secs, Some(40 * 3600));
    let job = p.job.unwrap();
    assert_eq!(job.backend, Backend::Slurm);
    assert_eq!(job.gpus, 1);
    assert_eq!(job.slurm.unwrap().account.as_deref(), Some("my-lab"));
}

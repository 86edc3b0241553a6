//! Programs that parse but could never run are refused at parse time (errors), and programs
//! that would run pointless sweeps parse with warnings. A backend that is not implemented is
//! refused wherever a backend name is accepted, never replaced by another one.

use mlres_policy::{Backend, parse_program};

use crate::common::{BASE, doc, env_doc, expect_err};

const OBJECTIVE: &str = "metric: score\ngoal: maximize";
const SPACE: &str = "method: grid\nparameters:\n  lr: {values: [0.1, 0.01]}";
const JOB: &str = "command: [python, t.py, \"--lr={lr}\"]\ntimeout: 10m";

#[test]
fn slurm_in_the_job_is_refused_as_not_implemented() {
    let env = format!("{BASE}\nbackends: [local]");
    let (src, starts) = doc(&[
        ("Budget envelope", &env),
        ("Job", &format!("{JOB}\nbackend: slurm")),
        ("Objective", OBJECTIVE),
        ("Search space", SPACE),
    ]);
    let e = expect_err(
        &src,
        starts[1] + 2,
        10,
        "backend `slurm` is not implemented yet",
    );
    let help = e.help.unwrap_or_default();
    assert!(help.contains("local, hf-jobs"), "{help}");
}

#[test]
fn slurm_in_the_envelope_is_refused_as_not_implemented() {
    let src = env_doc(&format!("{BASE}\nbackends: [local, slurm]"));
    // line 10 is `backends: [local, slurm]`; `slurm` starts at column 19.
    let e = expect_err(&src, 10, 19, "backend `slurm` is not implemented yet");
    assert!(
        e.help.unwrap_or_default().contains("local, hf-jobs"),
        "the help names the backends that exist"
    );
}

#[test]
fn only_implemented_backends_have_names() {
    let names: Vec<&str> = Backend::ALL.iter().map(|b| b.as_str()).collect();
    assert_eq!(names, ["local", "hf-jobs"]);
    assert_eq!(Backend::from_name("slurm"), None);
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

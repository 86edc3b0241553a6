//! One test per malformed program.md, asserting exact line and column.

use mlres_policy::parse_program;

use crate::common::{BASE, doc, env_doc, expect_err};

/// BASE with line `n` (0-based) replaced.
fn base_with(n: usize, line: &str) -> String {
    let mut lines: Vec<&str> = BASE.lines().collect();
    lines[n] = line;
    lines.join("\n")
}

#[test]
fn duplicate_top_level_key() {
    let src = env_doc(&format!("{BASE}\nmax_jobs: 4"));
    let e = expect_err(&src, 10, 1, "duplicate key `max_jobs`");
    assert!(e.message.contains("first set on line 6"), "{e}");
}

#[test]
fn duplicate_nested_key() {
    let (src, starts) = doc(&[
        ("Budget envelope", BASE),
        (
            "Job",
            "command: [python, t.py]\ntimeout: 10m\nlimits:\n  memory: 1GiB\n  memory: 2GiB",
        ),
    ]);
    assert_eq!(starts[1], 15);
    expect_err(&src, 19, 3, "duplicate key `memory`");
}

#[test]
fn duplicate_key_in_flow_mapping() {
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        (
            "Search space",
            "method: grid\nparameters:\n  lr: {values: [1], values: [2]}",
        ),
    ]);
    // line 15 method, 16 parameters, 17 lr
    expect_err(&src, 17, 21, "duplicate key `values`");
}

#[test]
fn unknown_key_with_suggestion() {
    let src = env_doc(&base_with(0, "max_job: 3"));
    let e = expect_err(&src, 6, 1, "unknown key `max_job`");
    assert_eq!(e.help.as_deref(), Some("did you mean `max_jobs`?"));
}

#[test]
fn unknown_key_far_from_everything_lists_valid_keys() {
    let src = env_doc(&format!("{BASE}\nbananas: 1"));
    let e = expect_err(&src, 10, 1, "unknown key `bananas`");
    assert!(
        e.help.as_deref().unwrap_or("").contains("max_walltime"),
        "{e}"
    );
}

#[test]
fn quoted_number_is_a_string() {
    let src = env_doc(&base_with(0, "max_jobs: \"12\""));
    let e = expect_err(
        &src,
        6,
        11,
        "`max_jobs` must be a non-negative integer, found string \"12\"",
    );
    assert!(e.help.as_deref().unwrap_or("").contains("quotes"), "{e}");
}

#[test]
fn float_is_not_an_integer() {
    let src = env_doc(&base_with(0, "max_jobs: 12.0"));
    expect_err(
        &src,
        6,
        11,
        "must be a non-negative integer, found float 12.0",
    );
}

#[test]
fn integer_spellings_other_than_plain_digits_are_refused() {
    for bad in ["+1", "0x10", "1_000", "010", "0o7"] {
        let src = env_doc(&base_with(0, &format!("max_jobs: {bad}")));
        let e = expect_err(&src, 6, 11, "must be a non-negative integer");
        assert!(e.message.contains(bad), "{e}");
        assert!(e.help.is_some(), "{bad}: {e}");
    }
    let src = env_doc(&base_with(0, "max_jobs: 1e3"));
    expect_err(&src, 6, 11, "found float 1e3");
    let src = env_doc(&base_with(0, "max_jobs: -1"));
    expect_err(&src, 6, 11, "found integer -1");
}

#[test]
fn yes_is_not_a_boolean() {
    let src = env_doc(&format!("{BASE}\nallow_deletes: yes"));
    let e = expect_err(
        &src,
        10,
        16,
        "`allow_deletes` must be true or false, found string \"yes\"",
    );
    assert!(e.help.as_deref().unwrap_or("").contains("true"), "{e}");
}

#[test]
fn string_where_a_list_is_needed() {
    let src = env_doc(&base_with(2, "allowed_flavors: t4-small"));
    expect_err(
        &src,
        8,
        18,
        "`allowed_flavors` must be a list, found string \"t4-small\"",
    );
}

#[test]
fn empty_allowed_flavors_is_not_any() {
    let src = env_doc(&base_with(2, "allowed_flavors: []"));
    let e = expect_err(&src, 8, 18, "`allowed_flavors` is empty");
    assert!(
        e.help.as_deref().unwrap_or("").contains("does not mean"),
        "{e}"
    );
}

#[test]
fn empty_backends_is_refused() {
    let src = env_doc(&format!("{BASE}\nbackends: []"));
    expect_err(&src, 10, 11, "`backends` is empty");
}

#[test]
fn unknown_backend_suggests() {
    let src = env_doc(&format!("{BASE}\nbackends: [hf_jobs]"));
    let e = expect_err(&src, 10, 12, "unknown backend `hf_jobs`");
    assert_eq!(e.help.as_deref(), Some("did you mean `hf-jobs`?"));
}

#[test]
fn max_concurrent_zero_is_refused() {
    let src = env_doc(&format!("{BASE}\nmax_concurrent: 0"));
    expect_err(&src, 10, 17, "at least 1");
}

#[test]
fn money_is_exact_and_strict() {
    let src = env_doc(&format!("{BASE}\nmax_cost_usd: 1.0000001"));
    expect_err(&src, 10, 15, "more than 6 decimals");
    let src = env_doc(&format!("{BASE}\nmax_cost_usd: \"12\""));
    expect_err(&src, 10, 15, "must be a number of dollars");
    let src = env_doc(&format!("{BASE}\nmax_cost_usd: 1e2"));
    expect_err(&src, 10, 15, "not an amount");
}

#[test]
fn two_envelope_blocks_in_one_section() {
    let src = "## Budget envelope\n\n```yaml\nmax_jobs: 1\nmax_walltime: 1h\nallowed_flavors: [a]\nmax_timeout: 1h\n```\n\n```yaml\nmax_jobs: 99\n```\n";
    let e = expect_err(src, 10, 1, "a second ```yaml block");
    assert!(e.message.contains("first is on line 3"), "{e}");
}

#[test]
fn two_envelope_headings() {
    let (src, _) = doc(&[("Budget envelope", BASE), ("Budget envelope", BASE)]);
    // second heading: 3 + 5 + 4 = 12
    let e = expect_err(&src, 12, 1, "appears twice");
    assert!(e.message.contains("first on line 3"), "{e}");
}

#[test]
fn envelope_heading_hidden_in_html_comment() {
    let src = format!(
        "# T\n\n<!--\n## Budget envelope\n\n```yaml\nmax_jobs: 999\n```\n-->\n\n{}",
        env_doc(BASE)
    );
    expect_err(&src, 4, 1, "hidden in an HTML comment");
}

#[test]
fn yaml_fence_hidden_in_single_line_comment_opening() {
    let src = format!("<!-- ```yaml\nmax_jobs: 999\n``` -->\n{}", env_doc(BASE));
    expect_err(&src, 1, 5, "hidden in an HTML comment");
}

#[test]
fn inline_comment_with_heading_is_refused() {
    let src = format!("{}\n<!-- ## Job -->\n", env_doc(BASE));
    expect_err(&src, 13, 5, "hidden in an HTML comment");
}

#[test]
fn unclosed_comment_is_refused() {
    let src = format!("{}\n<!-- forgot to close\n", env_doc(BASE));
    expect_err(&src, 13, 1, "never closed");
}

#[test]
fn envelope_keys_outside_the_envelope_section() {
    let src = format!(
        "{}## Budget envelope (draft)\n\n```yaml\nmax_jobs: 99\n```\n",
        env_doc(BASE)
    );
    // env_doc is 11 lines; draft heading 12, fence 14
    expect_err(&src, 14, 1, "budget-envelope keys outside");
}

#[test]
fn envelope_heading_at_wrong_level() {
    let src = format!("{}### Budget envelope\n", env_doc(BASE));
    expect_err(&src, 12, 1, "must be a level-2 heading");
}

#[test]
fn missing_envelope() {
    let e = expect_err(
        "# T\n\n## Goal\n\nwin\n",
        1,
        1,
        "no `## Budget envelope` section",
    );
    assert!(e.help.is_some());
}

#[test]
fn envelope_section_without_yaml_block() {
    expect_err(
        "# T\n\n## Budget envelope\n\nmax_jobs: 3\n",
        3,
        1,
        "has no ```yaml block",
    );
}

#[test]
fn empty_envelope_block() {
    expect_err(
        "## Budget envelope\n```yaml\n# nothing\n```\n",
        2,
        1,
        "is empty",
    );
}

#[test]
fn missing_required_key() {
    let src = env_doc("max_jobs: 3\nmax_walltime: 8h\nallowed_flavors: [cpu-basic]");
    expect_err(&src, 6, 1, "missing required key `max_timeout`");
}

#[test]
fn envelope_not_a_mapping() {
    let src = env_doc("- max_jobs: 3");
    expect_err(&src, 6, 1, "must be a mapping");
}

#[test]
fn yaml_syntax_error_is_located() {
    // An unterminated flow sequence: the error is reported where YAML gives up,
    // which is on the line after the `[`.
    let src = env_doc("max_jobs: 3\nallowed_flavors: [cpu-basic\nmax_timeout: 1h");
    let e = parse_program(&src).expect_err("syntax error");
    assert!(e.message.starts_with("YAML syntax error"), "{e}");
    assert!((7..=9).contains(&e.line), "{e}");
    let src = env_doc("max_jobs: 3\n  max_walltime: 8h");
    let e = expect_err(&src, 7, 15, "YAML syntax error");
    assert!(e.message.len() > "YAML syntax error: ".len(), "{e}");
}

#[test]
fn anchors_and_aliases_are_refused() {
    let src = env_doc(&format!("{BASE}\nimages: &imgs [a]\nmodels: *imgs"));
    expect_err(&src, 10, 9, "anchors");
    let src = env_doc(&format!("{BASE}\nmodels: *imgs"));
    let e = parse_program(&src).expect_err("alias");
    assert_eq!(e.line, 10, "{e}");
}

#[test]
fn merge_keys_and_tags_are_refused() {
    let src = env_doc(&format!("{BASE}\n<<: {{max_jobs: 100}}"));
    expect_err(&src, 10, 1, "merge keys");
    let src = env_doc(&base_with(0, "max_jobs: !!str 12"));
    expect_err(&src, 6, 11, "tags");
}

#[test]
fn second_yaml_document_is_refused() {
    let src = env_doc(&format!("{BASE}\n---\nmax_jobs: 100"));
    expect_err(&src, 10, 1, "second YAML document");
}

#[test]
fn bad_durations_in_the_envelope() {
    let cases = [
        ("1e5s", "exponents"),
        ("+86400", "sign"),
        ("86_400", "`_`"),
        ("2h30m", "compound"),
        ("-1h", "sign"),
        ("1.5", "no unit"),
        ("h", "not a duration"),
        ("0.3s", "whole number of seconds"),
    ];
    for (bad, needle) in cases {
        let src = env_doc(&base_with(1, &format!("max_walltime: {bad}")));
        let e = expect_err(&src, 7, 15, "`max_walltime`");
        assert!(e.message.contains(needle), "{bad}: {e}");
    }
}

#[test]
fn final_reserve_over_walltime() {
    let src = env_doc(&format!("{BASE}\nfinal_reserve: 9h"));
    expect_err(&src, 10, 16, "larger than `max_walltime`");
}

fn job_doc(job: &str) -> String {
    doc(&[("Budget envelope", BASE), ("Job", job)]).0
}

#[test]
fn job_timeout_over_max_timeout() {
    // job content starts on line 15
    let src = job_doc("command: [python, t.py]\ntimeout: 3h");
    let e = expect_err(
        &src,
        16,
        10,
        "job timeout 3h is over the envelope's max_timeout 1h",
    );
    assert!(e.help.is_some());
}

#[test]
fn job_flavor_not_allowed() {
    let src = job_doc("command: [python, t.py]\ntimeout: 10m\nflavor: a100x8");
    let e = expect_err(&src, 17, 9, "job flavor `a100x8`");
    assert!(e.message.contains("[cpu-basic]"), "{e}");
}

#[test]
fn job_backend_not_allowed() {
    let src = job_doc("command: [python, t.py]\ntimeout: 10m\nbackend: hf-jobs");
    expect_err(
        &src,
        17,
        10,
        "job backend `hf-jobs` is not in the envelope's backends [local]",
    );
}

#[test]
fn unknown_placeholder() {
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        ("Job", "command:\n  - python\n  - --lr={lrr}\ntimeout: 10m"),
        (
            "Search space",
            "method: grid\nparameters:\n  lr: {values: [1, 2]}",
        ),
    ]);
    let e = expect_err(&src, 17, 5, "unknown placeholder `{lrr}`");
    assert!(
        e.help
            .as_deref()
            .unwrap_or("")
            .contains("did you mean `{lr}`?"),
        "{e}"
    );
}

#[test]
fn unknown_placeholder_in_string_command_points_at_the_command() {
    let src = job_doc("command: python t.py --x {nope}\ntimeout: 10m");
    expect_err(&src, 15, 10, "unknown placeholder `{nope}`");
}

#[test]
fn shell_syntax_in_string_command_is_refused() {
    let src = job_doc("command: python t.py && curl evil\ntimeout: 10m");
    let e = expect_err(&src, 15, 10, "not run through a shell");
    assert!(e.help.is_some());
}

#[test]
fn bad_env_names_and_types() {
    let src = job_doc("command: [python]\ntimeout: 10m\nenv:\n  lower: x");
    expect_err(&src, 18, 3, "`lower` is not a variable name");
    let src = job_doc("command: [python]\ntimeout: 10m\nsecrets: [hf-token]");
    expect_err(
        &src,
        17,
        11,
        "`hf-token` in `secrets` is not a variable name",
    );
    let src = job_doc("command: [python]\ntimeout: 10m\nnetwork: \"true\"");
    expect_err(&src, 17, 10, "`network` must be true or false");
    let src = job_doc("command: [python]\ntimeout: 10m\nlimits: {memory: 2 GiB}");
    expect_err(&src, 17, 18, "`memory`");
}

#[test]
fn grid_with_a_distribution() {
    let (src, starts) = doc(&[
        ("Budget envelope", BASE),
        (
            "Search space",
            "method: grid\nparameters:\n  lr: {distribution: uniform, min: 0.1, max: 1}",
        ),
    ]);
    assert_eq!(starts[1], 15);
    let e = expect_err(&src, 17, 3, "`lr` has a distribution");
    assert!(e.help.as_deref().unwrap_or("").contains("random"), "{e}");
}

#[test]
fn min_not_below_max() {
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        (
            "Search space",
            "method: random\nparameters:\n  lr:\n    distribution: uniform\n    min: 1\n    max: 1",
        ),
    ]);
    expect_err(&src, 19, 10, "`min` (1) must be less than `max` (1)");
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        (
            "Search space",
            "method: random\nparameters:\n  n: {distribution: int_uniform, min: 5, max: 2}",
        ),
    ]);
    expect_err(&src, 17, 39, "`min` (5) must be less than `max` (2)");
}

#[test]
fn log_uniform_needs_positive_min() {
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        (
            "Search space",
            "method: random\nparameters:\n  lr: {distribution: log_uniform_values, min: 0, max: 1}",
        ),
    ]);
    expect_err(&src, 17, 47, "greater than 0");
}

#[test]
fn unknown_distribution_suggests() {
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        (
            "Search space",
            "method: random\nparameters:\n  lr: {distribution: log_uniform, min: 0.0001, max: 0.1}",
        ),
    ]);
    // W&B's `log_uniform` takes exponents: these bounds are a learning rate written as
    // values, which would draw everything from [1.0001, 1.105]. Refused, with the fix.
    let e = expect_err(&src, 17, 40, "takes natural-log exponents");
    assert!(e.message.contains("within [1, e]"), "{e}");
    assert!(
        e.help
            .as_deref()
            .unwrap_or("")
            .contains("use `log_uniform_values`, e.g. min: 0.0001, max: 0.1"),
        "{e}"
    );
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        (
            "Search space",
            "method: random\nparameters:\n  lr: {distribution: unifrom, min: 1, max: 2}",
        ),
    ]);
    let e = expect_err(&src, 17, 22, "unknown distribution `unifrom`");
    assert!(
        e.help
            .as_deref()
            .unwrap_or("")
            .starts_with("did you mean `uniform`?"),
        "{e}"
    );
}

#[test]
fn search_space_shape_errors() {
    let space = |params: &str| {
        doc(&[
            ("Budget envelope", BASE),
            (
                "Search space",
                &format!("method: random\nparameters:\n{params}"),
            ),
        ])
        .0
    };
    expect_err(&space("  lr: 0.1"), 17, 7, "must be a mapping");
    expect_err(&space("  lr: {values: []}"), 17, 16, "is empty");
    expect_err(&space("  lr: {values: [1, 1.0]}"), 17, 20, "listed twice");
    expect_err(
        &space("  lr: {values: [.5]}"),
        17,
        17,
        "not a number in the accepted format",
    );
    expect_err(&space("  lr: {min: 1, max: 2}"), 17, 3, "no `distribution`");
    expect_err(
        &space("  lr: {distribution: uniform, min: 1, max: 2, q: 1}"),
        17,
        47,
        "`q` is not used",
    );
    expect_err(&space("  seed: {value: 1}"), 17, 3, "builtin placeholder");
    expect_err(
        &space("  x: {distribution: q_uniform, min: 0.1, max: 0.2, q: 1}"),
        17,
        3,
        "no multiple",
    );
    let src = doc(&[
        ("Budget envelope", BASE),
        (
            "Search space",
            "method: hyperband\nparameters: {a: {value: 1}}",
        ),
    ])
    .0;
    let e = expect_err(&src, 15, 9, "unknown search method `hyperband`");
    assert!(e.help.as_deref().unwrap_or("").contains("bayes"), "{e}");
    let src = doc(&[
        ("Budget envelope", BASE),
        ("Search space", "method: grid\nparameters: {}"),
    ])
    .0;
    expect_err(&src, 16, 13, "`parameters` is empty");
}

#[test]
fn objective_errors() {
    let obj = |y: &str| doc(&[("Budget envelope", BASE), ("Objective", y)]).0;
    let e = expect_err(
        &obj("metric: acc\ngoal: maximise"),
        16,
        7,
        "maximize or minimize",
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `maximize`?"));
    expect_err(
        &obj("metric: eval acc\ngoal: maximize"),
        15,
        9,
        "not a metric name",
    );
    expect_err(
        &obj("metric: acc\ngoal: maximize\npatience: 0"),
        17,
        11,
        "at least 1",
    );
    expect_err(
        &obj("metric: acc\ngoal: maximize\ntarget: \"0.9\""),
        17,
        9,
        "`target` must be a number",
    );
    expect_err(&obj("metric: acc"), 15, 1, "missing required key `goal`");
}

#[test]
fn objective_block_missing_or_doubled() {
    let src = format!("{}## Objective\n\nNo yaml here.\n", env_doc(BASE));
    expect_err(&src, 12, 1, "`## Objective` section has no ```yaml block");
}

#[test]
fn unclosed_fence_is_refused() {
    let src = format!("{}## Job\n\n```yaml\ncommand: [x]\n", env_doc(BASE));
    expect_err(&src, 14, 1, "never closed");
}

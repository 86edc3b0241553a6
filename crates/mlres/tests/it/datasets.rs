//! Datasets declared in the envelope are pinned by content at approval; a swapped, edited,
//! added or removed file makes the next submit refuse with the manifest difference.

use crate::support::{Env, Fast, code, stderr};

fn program_with(datasets: &str) -> String {
    Fast::default().program().replace(
        "allow_deletes: false",
        &format!("allow_deletes: false\ndatasets: {datasets}"),
    )
}

fn submit(env: &Env, x: u32) -> std::process::Output {
    env.run(&[
        "exp",
        "submit",
        "--config",
        &format!(r#"{{"x": {x}}}"#),
        "--hypothesis",
        "h",
        "--json",
    ])
}

fn jobs(env: &Env) -> u64 {
    let s = env.json(&["loop", "status", "--json"]);
    s["budget"]["jobs_used"]
        .as_u64()
        .or_else(|| s["experiments"].as_array().map(|a| a.len() as u64))
        .unwrap_or(0)
}

#[test]
fn a_swapped_dataset_file_is_refused_with_the_difference_until_reapproved() {
    let env = Env::new();
    let data = env.project.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("train.jsonl"),
        "{\"text\": \"a\"}\n{\"text\": \"b\"}\n",
    )
    .unwrap();
    std::fs::write(env.project.join("eval.jsonl"), "{\"text\": \"e\"}\n").unwrap();
    env.write_program(&program_with("[data, eval.jsonl]"));
    env.approve();

    let out = submit(&env, 1);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"].to_string();
    env.ok(&["exp", "wait", &id, "--timeout", "2m"]);
    let before = jobs(&env);

    // Same size, different content: a poisoned row swapped in after approval.
    std::fs::write(
        data.join("train.jsonl"),
        "{\"text\": \"a\"}\n{\"text\": \"X\"}\n",
    )
    .unwrap();
    let out = submit(&env, 2);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("dataset_changed"), "{err}");
    assert!(
        err.contains("train.jsonl"),
        "the difference names the file: {err}"
    );
    assert!(err.contains("content changed"), "{err}");
    assert_eq!(jobs(&env), before, "nothing was reserved");

    // An extra file with a new column is named too, with its rows and schema.
    std::fs::write(data.join("extra.jsonl"), "{\"label\": 1}\n").unwrap();
    let err = stderr(&submit(&env, 2));
    assert!(err.contains("extra.jsonl: added"), "{err}");

    // Removing a file is a change.
    std::fs::remove_file(env.project.join("eval.jsonl")).unwrap();
    let err = stderr(&submit(&env, 2));
    assert!(err.contains("eval.jsonl"), "{err}");
    assert!(err.contains("missing now"), "{err}");

    // A human re-approves the new content: submits go through again.
    std::fs::write(env.project.join("eval.jsonl"), "{\"text\": \"e\"}\n").unwrap();
    env.approve();
    let out = submit(&env, 2);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn an_unreadable_dataset_fails_the_approval_and_records_nothing() {
    let env = Env::new();
    let data = env.project.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("train.jsonl"), "{\"text\": \"a\"}\n").unwrap();
    // A symlink loop cannot be read even by root.
    std::os::unix::fs::symlink("loop", data.join("loop")).unwrap();
    env.write_program(&program_with("[data]"));
    let out = env.approve_args(&[]);
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot be read"), "{}", stderr(&out));
    let out = submit(&env, 1);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("never been approved"),
        "{}",
        stderr(&out)
    );
}

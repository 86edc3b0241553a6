//! Test-only stand-in for the `mlres __supervise <dir>` hidden subcommand, used by the
//! integration tests of `mlres-backends` (the real binary lives in the CLI crate).
//!
//! Usage:
//! - `mlres-supervise-test supervise <dir> [--bwrap <path>]`: run the supervisor (bubblewrap
//!   only at `<path>` if given, as `mlres __supervise --bwrap`); exit 0 with a status, 3 if the
//!   attempt was already claimed, 2 on any other error.
//! - `mlres-supervise-test launch-and-die <dir>`: `launch` a detached supervisor for `dir`, then
//!   SIGKILL ourselves (the supervisor must survive).
//! - `mlres-supervise-test __jail ...`: the job sandbox's inner stage (as `mlres __jail`).
//! - `mlres-supervise-test cgroup-limits`: print whether each cgroup limit is enforced for
//!   jobs of this process (`<limit> on|off <how or why>`).
//! - `mlres-supervise-test supervise-hf <dir>`: the hf-jobs supervisor, token from
//!   `MLRES_TEST_HF_TOKEN`, secrets (JSON) from `MLRES_TEST_HF_SECRETS`.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let os_args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if os_args.get(1).is_some_and(|a| a == "__jail") {
        return match mlres_backends::jail_main(&os_args[2..]) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(125)),
            Err(e) => {
                eprintln!("__jail: {e}");
                ExitCode::from(125)
            }
        };
    }
    let args: Vec<String> = std::env::args().collect();
    match args.get(1..) {
        Some([mode, dir, rest @ ..])
            if mode == "supervise"
                && (rest.is_empty() || rest.len() == 2 && rest[0] == "--bwrap") =>
        {
            let bwrap = rest.get(1).map(std::path::Path::new);
            match mlres_backends::supervise(std::path::Path::new(dir), bwrap) {
                Ok(s) => {
                    println!("{:?}", s.outcome);
                    ExitCode::SUCCESS
                }
                Err(e @ mlres_backends::BackendError::AlreadyClaimed { .. }) => {
                    eprintln!("{e}");
                    ExitCode::from(3)
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Some([mode, dir]) if mode == "supervise-hf" => {
            // Test token and secrets from this process's environment, like `mlres __supervise`.
            let Some(token) = std::env::var("MLRES_TEST_HF_TOKEN")
                .ok()
                .and_then(|t| mlres_hf::Token::new(&t))
            else {
                eprintln!("MLRES_TEST_HF_TOKEN is not set");
                return ExitCode::from(2);
            };
            let secrets = std::env::var("MLRES_TEST_HF_SECRETS")
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default();
            let creds = mlres_backends::HfCredentials { token, secrets };
            match mlres_backends::supervise_hf(std::path::Path::new(dir), &creds) {
                Ok(s) => {
                    println!("{:?}", s.outcome);
                    ExitCode::SUCCESS
                }
                Err(e @ mlres_backends::BackendError::AlreadyClaimed { .. }) => {
                    eprintln!("{e}");
                    ExitCode::from(3)
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Some([mode]) if mode == "cgroup-limits" => {
            let l = mlres_backends::cgroup_limits();
            for (name, e) in [
                ("memory", &l.memory),
                ("processes", &l.processes),
                ("cpus", &l.cpus),
            ] {
                match e {
                    mlres_backends::LimitEnforcement::Enforced(how) => println!("{name} on {how}"),
                    mlres_backends::LimitEnforcement::NotEnforced(why) => {
                        println!("{name} off {why}")
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Some([mode, dir]) if mode == "launch-and-die" => {
            let exe = match std::env::current_exe() {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let mut sup = Command::new(exe);
            sup.args(["supervise", dir.as_str()]);
            if let Err(e) = mlres_backends::launch(std::path::Path::new(dir), &sup) {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
            // SAFETY: raising SIGKILL on ourselves has no memory-safety preconditions.
            unsafe { libc::raise(libc::SIGKILL) };
            ExitCode::from(4)
        }
        _ => {
            eprintln!("usage: mlres-supervise-test (supervise|launch-and-die) <dir>");
            ExitCode::from(64)
        }
    }
}

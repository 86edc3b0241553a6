//! `mlres setup broker` (once, as root), `mlres broker login` (the human hands the broker the
//! Hugging Face token) and `mlres broker status`.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command as Proc;

use anyhow::{Context, anyhow};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Config;
use crate::cli::{Cli, LoginArgs, SetupBrokerArgs};
use crate::{Failure, exit, fail, print};

/// The broker's copy of the Hugging Face token, relative to its state dir.
pub const TOKEN_FILE: &str = "credentials/hf_token";
/// The systemd unit's name.
pub const UNIT: &str = "mlres-broker.service";

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), Failure> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("cannot chown {}", path.display()))
        .map_err(Failure::from)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), Failure> {
    chown(path, uid, gid)?;
    if path.is_dir() && !path.is_symlink() {
        for e in
            std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
        {
            let e = e.map_err(|e| fail(exit::ERROR, anyhow!(e)))?;
            chown_tree(&e.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn mkdir(path: &Path, mode: u32) -> Result<(), Failure> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", path.display()))?;
    Ok(())
}

/// `mlres setup broker`: the broker's user, state dir, socket dir, binary, configuration,
/// approval secret and (where systemd runs) unit. Idempotent: what exists is checked and kept.
pub fn setup(cli: &Cli, a: &SetupBrokerArgs) -> Result<u8, Failure> {
    if !is_root() {
        return Err(fail(
            exit::REFUSED,
            anyhow!(
                "`mlres setup broker` creates a system user and root-owned files: run it with sudo \
                 (`sudo {} setup broker`)",
                crate::invocation()
            ),
        ));
    }
    if cli.state_dir.is_some() {
        return Err(fail(
            exit::USAGE,
            anyhow!("use `setup broker --broker-state-dir DIR` for the broker's state dir"),
        ));
    }
    let mut done: Vec<String> = Vec::new();
    // 1. The user.
    let (uid, gid) = match super::ids_of(&a.user) {
        Some(ids) => {
            done.push(format!("user {} exists (uid {})", a.user, ids.0));
            ids
        }
        None => {
            let st = Proc::new("useradd")
                .args(["--system", "--user-group", "--no-create-home", "--home-dir"])
                .arg(&a.broker_state_dir)
                .args(["--shell", "/usr/sbin/nologin", &a.user])
                .status()
                .context("cannot run useradd")?;
            if !st.success() {
                return Err(fail(
                    exit::ERROR,
                    anyhow!("useradd {} failed ({st})", a.user),
                ));
            }
            let ids = super::ids_of(&a.user)
                .ok_or_else(|| fail(exit::ERROR, anyhow!("useradd did not create {}", a.user)))?;
            done.push(format!("created system user {} (uid {})", a.user, ids.0));
            ids
        }
    };
    if uid == 0 {
        return Err(fail(
            exit::REFUSED,
            anyhow!("the broker's user must not be root"),
        ));
    }
    // 2. The binary, where only root can change it (the broker runs what is there).
    mkdir(&a.install_dir, 0o755)?;
    let exe = a.install_dir.join("mlres");
    let me = std::env::current_exe().context("cannot locate this executable")?;
    let tmp = a.install_dir.join(".mlres.new");
    std::fs::copy(&me, &tmp)
        .with_context(|| format!("cannot copy {} to {}", me.display(), tmp.display()))?;
    chown(&tmp, 0, 0)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &exe)?;
    done.push(format!("installed {}", exe.display()));
    // 3. State dir (the broker's alone) and socket dir (the broker's, world-searchable).
    mkdir(&a.broker_state_dir, 0o700)?;
    let socket_dir = a
        .socket
        .parent()
        .ok_or_else(|| fail(exit::USAGE, anyhow!("--socket needs a directory")))?
        .to_path_buf();
    mkdir(&socket_dir, 0o755)?;
    chown(&socket_dir, uid, gid)?;
    // 4. Clients.
    let mut clients = Vec::new();
    let named = if a.client.is_empty() {
        std::env::var("SUDO_USER").ok().into_iter().collect()
    } else {
        a.client.clone()
    };
    for c in &named {
        let id = super::ids_of(c)
            .ok_or_else(|| fail(exit::USAGE, anyhow!("--client {c}: no such user")))?
            .0;
        clients.push(id);
    }
    let cfg = Config {
        socket: a.socket.clone(),
        state_dir: a.broker_state_dir.clone(),
        user: a.user.clone(),
        clients,
    };
    if let Some(d) = a.config.parent() {
        mkdir(d, 0o755)?;
    }
    let text =
        serde_json::to_string_pretty(&cfg).map_err(|e| fail(exit::ERROR, anyhow!(e)))? + "\n";
    std::fs::write(&a.config, text)
        .with_context(|| format!("cannot write {}", a.config.display()))?;
    std::fs::set_permissions(&a.config, std::fs::Permissions::from_mode(0o644))?;
    done.push(format!("wrote {}", a.config.display()));
    // 5. The approval secret: set here, by the human with root, so the broker never runs
    //    without one (an agent could otherwise set the first).
    let ledger = mlres_ledger::Ledger::open(&a.broker_state_dir)?;
    let existing = ledger.approver_secret()?.is_some();
    drop(ledger);
    if existing {
        done.push(
            "an approval secret is already set (change it with `mlres setup approver`)".into(),
        );
    } else {
        let from = crate::secret::From::of(a.secret_fd, a.secret_file.as_deref());
        let (new, source) =
            crate::secret::read(&from, "New approval secret (at least 8 characters): ")?;
        if source == mlres_engine::SecretSource::Terminal {
            let (again, _) = crate::secret::read(&from, "Again: ")?;
            if again != new {
                return Err(fail(
                    exit::REFUSED,
                    anyhow!("the two entries differ; nothing was changed"),
                ));
            }
        }
        let by = format!(
            "{} (uid {}, at broker setup)",
            std::env::var("SUDO_USER").unwrap_or_else(|_| "root".into()),
            std::env::var("SUDO_UID").unwrap_or_else(|_| "0".into())
        );
        let mut ledger = mlres_ledger::Ledger::open(&a.broker_state_dir)?;
        mlres_engine::set_approver_secret(&mut ledger, &new, None, &by)?;
        done.push("set the approval secret (only its Argon2id hash is kept)".into());
    }
    chown_tree(&a.broker_state_dir, uid, gid)?;
    std::fs::set_permissions(&a.broker_state_dir, std::fs::Permissions::from_mode(0o700))?;
    // 6. Starting it.
    let serve = format!(
        "{} broker serve --config {}",
        crate::shell_word(&exe.to_string_lossy()),
        crate::shell_word(&a.config.to_string_lossy())
    );
    let systemd = Path::new("/run/systemd/system").is_dir() && !a.no_systemd;
    let start = if systemd {
        let unit = unit_text(&a.user, &serve);
        let path = a.unit_dir.join(UNIT);
        std::fs::write(&path, unit).with_context(|| format!("cannot write {}", path.display()))?;
        done.push(format!("wrote {}", path.display()));
        let ok = Proc::new("systemctl")
            .arg("daemon-reload")
            .status()
            .is_ok_and(|s| s.success())
            && Proc::new("systemctl")
                .args(["enable", "--now", UNIT])
                .status()
                .is_ok_and(|s| s.success());
        if ok {
            done.push(format!("started {UNIT}"));
            None
        } else {
            Some(format!("sudo systemctl enable --now {UNIT}"))
        }
    } else {
        Some(format!(
            "sudo runuser -u {} -- {serve}",
            crate::shell_word(&a.user)
        ))
    };
    let hints = vec![
        format!(
            "give the broker your Hugging Face token once: `mlres broker login` (it never leaves the broker)"
        ),
        format!(
            "the broker reads your project and writes its runs/: e.g. `setfacl -m u:{u}:x ~ && setfacl -R -m u:{u}:rX,d:u:{u}:rX PROJECT && mkdir -p PROJECT/runs && setfacl -R -m u:{u}:rwX,d:u:{u}:rwX PROJECT/runs`",
            u = a.user
        ),
        "then `mlres setup claude --user` writes Claude Code settings that reach the socket and nothing of the state".into(),
    ];
    if a.json {
        print::json(&json!({
            "config": cfg,
            "exe": exe,
            "done": done,
            "start": start,
            "systemd": systemd,
            "next": hints,
        }));
    } else {
        for d in &done {
            println!("  {d}");
        }
        match &start {
            Some(cmd) if systemd => println!("\nStart the broker: {cmd}"),
            Some(cmd) => println!("\nsystemd is not running here. Start the broker with:\n  {cmd}"),
            None => println!("\nThe broker is running."),
        }
        println!("\nNext:");
        for h in &hints {
            println!("  - {h}");
        }
    }
    Ok(exit::OK)
}

fn unit_text(user: &str, serve: &str) -> String {
    format!(
        "[Unit]\n\
         Description=mlres broker (budgets, approvals, ledger and credentials under their own user)\n\
         After=network-online.target\n\n\
         [Service]\n\
         User={user}\n\
         Group={user}\n\
         ExecStart={serve}\n\
         UMask=0077\n\
         NoNewPrivileges=yes\n\
         # A cgroup of its own, so each job's memory, process and CPU limits are enforced.\n\
         Delegate=yes\n\
         # Jobs and `loop run`s outlive a broker restart; the ledger re-attaches to them.\n\
         KillMode=process\n\
         Restart=on-failure\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// `mlres broker login`: store the Hugging Face token in the broker, after the approval
/// secret (so an agent cannot swap in a token of its own).
pub fn login(a: &LoginArgs) -> Result<u8, Failure> {
    let Some(served) = super::served() else {
        return Err(fail(
            exit::USAGE,
            anyhow!(
                "no broker is configured: in single-user mode mlres uses your own Hugging Face token \
                 (HF_TOKEN, or the file `hf auth login` writes)"
            ),
        ));
    };
    let dir = &served.state_dir;
    let approver = crate::secret::approver(&crate::secret::From::of(
        a.secret_fd,
        a.secret_file.as_deref(),
    ))?;
    let mut ledger = mlres_ledger::Ledger::open(dir)?;
    let ok = ledger
        .approver_secret()?
        .is_some_and(|phc| mlres_engine::verify_secret(&phc, &approver.secret));
    if !ok {
        ledger.append_event(
            None,
            "approval_refused",
            &json!({"reason": "wrong approval secret (broker login)", "by": approver.label()}),
        )?;
        return Err(fail(
            exit::REFUSED,
            anyhow!(
                "the approval secret did not match; the token was not stored (recorded in the ledger)"
            ),
        ));
    }
    let from = crate::secret::From::of(a.token_fd, None);
    let (token, _) = crate::secret::read(&from, "Hugging Face token (input hidden): ")?;
    let token = token.trim().to_string();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(fail(
            exit::USAGE,
            anyhow!("that is not a token (empty, or it contains spaces); nothing was stored"),
        ));
    }
    let path = dir.join(TOKEN_FILE);
    let parent = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    mkdir(&parent, 0o700)?;
    let tmp = parent.join(".hf_token.new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    let fingerprint: String = Sha256::digest(token.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    ledger.append_event(
        None,
        "credential_set",
        &json!({"name": "hf_token", "sha256_prefix": fingerprint, "by": approver.label()}),
    )?;
    if a.json {
        print::json(
            &json!({"credential": "hf_token", "stored": true, "sha256_prefix": fingerprint}),
        );
    } else {
        println!(
            "Hugging Face token stored in the broker (sha256 {fingerprint}…), readable by its user only. \
             It never leaves the broker: a job granted it gets it in its own environment."
        );
    }
    Ok(exit::OK)
}

/// `mlres broker status`: which mode this CLI is in and, through the broker, who it sees.
pub fn status(json_out: bool) -> Result<u8, Failure> {
    let v = match super::served() {
        Some(s) => json!({
            "mode": "broker",
            "state_dir": s.state_dir,
            "broker": {"uid": unsafe_uid(), "user": super::user_of(unsafe_uid())},
            "client": {"uid": s.peer.uid, "user": s.peer_name, "pid": s.peer.pid},
            "hf_token": s.state_dir.join(TOKEN_FILE).exists(),
            "version": env!("CARGO_PKG_VERSION"),
        }),
        None => json!({
            "mode": "single-user",
            "detail": "no broker is configured (no /etc/mlres/broker.json, no MLRES_BROKER_SOCKET): mlres runs as you",
            "version": env!("CARGO_PKG_VERSION"),
        }),
    };
    if json_out {
        print::json(&v);
    } else if v["mode"] == "broker" {
        println!(
            "broker mode: served by {} (uid {}) from {}; you are {} (uid {}); HF token stored: {}",
            v["broker"]["user"].as_str().unwrap_or("?"),
            v["broker"]["uid"],
            v["state_dir"].as_str().unwrap_or("?"),
            v["client"]["user"].as_str().unwrap_or("?"),
            v["client"]["uid"],
            if v["hf_token"] == true {
                "yes"
            } else {
                "no (`mlres broker login`)"
            }
        );
    } else {
        println!("single-user mode: {}", v["detail"].as_str().unwrap_or(""));
    }
    Ok(exit::OK)
}

fn unsafe_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

//! Issue 16, service units: `deploy/systemd/*.service` are hardened (a
//! dynamic or dedicated user, `ProtectSystem=strict`, `NoNewPrivileges`,
//! secrets through `LoadCredential`) and pass `systemd-analyze verify` when
//! it is available (skipped, with the reason printed, when it is not).

use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: &[&str] = &[
    "nightshift-scheduler.service",
    "nightshift-console.service",
    "nightshift-executor.service",
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd")
}

fn directives(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_unit_is_hardened_and_takes_secrets_as_credentials() -> Result<()> {
    for unit in UNITS {
        let text = std::fs::read_to_string(deploy_dir().join(unit)).context(*unit)?;
        let user =
            directives(&text, "DynamicUser") == ["yes"] || !directives(&text, "User").is_empty();
        assert!(user, "{unit}: no DynamicUser=yes or User=");
        assert_eq!(directives(&text, "ProtectSystem"), ["strict"], "{unit}");
        assert_eq!(directives(&text, "NoNewPrivileges"), ["yes"], "{unit}");
        assert_eq!(directives(&text, "CapabilityBoundingSet"), [""], "{unit}");
        let credentials = directives(&text, "LoadCredential");
        assert!(
            credentials.iter().any(|c| c.starts_with("etcd-password:")),
            "{unit}: the etcd password must be a credential"
        );
        // Secrets never appear on a command line or in Environment=.
        for line in directives(&text, "ExecStart")
            .iter()
            .chain(&directives(&text, "Environment"))
        {
            let lower = line.to_lowercase();
            assert!(
                !lower.contains("password=") && !lower.contains("token="),
                "{unit}: a secret in `{line}`"
            );
        }
    }
    let env = std::fs::read_to_string(deploy_dir().join("nightshift.env.example"))?;
    assert!(!env.to_lowercase().contains("password="), "{env}");
    Ok(())
}

/// Runs `systemd-analyze verify` on the units with ExecStart pointing at
/// this build's binary; returns its complaints (empty: clean), or `None`
/// when systemd-analyze cannot run here.
fn verify(units: &[(String, String)]) -> Result<Option<String>> {
    let dir = tempfile::tempdir()?;
    let mut paths = Vec::new();
    for (name, text) in units {
        let text = text.replace(
            "/usr/local/bin/nightshift",
            env!("CARGO_BIN_EXE_nightshift"),
        );
        let path = dir.path().join(name);
        std::fs::write(&path, text)?;
        paths.push(path);
    }
    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .args(&paths)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: systemd-analyze is not available ({e})");
            return Ok(None);
        }
    };
    // systemd-analyze exits 0 on settings it ignores, so any output is a
    // complaint.
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() && complaints.trim().is_empty() {
        anyhow::bail!("systemd-analyze failed with {}", out.status);
    }
    Ok(Some(complaints))
}

#[test]
fn systemd_analyze_verify_accepts_the_units() -> Result<()> {
    let units: Vec<(String, String)> = UNITS
        .iter()
        .map(|u| {
            Ok((
                u.to_string(),
                std::fs::read_to_string(deploy_dir().join(u))?,
            ))
        })
        .collect::<Result<_>>()?;
    let Some(complaints) = verify(&units)? else {
        return Ok(());
    };
    assert!(
        complaints.trim().is_empty(),
        "systemd-analyze verify:\n{complaints}"
    );
    // The check has teeth: a misspelt value is reported.
    let broken = units[0]
        .1
        .replace("ProtectSystem=strict", "ProtectSystem=stricter");
    let complaints = verify(&[("broken.service".into(), broken)])?.unwrap_or_default();
    assert!(complaints.contains("protect system"), "{complaints}");
    Ok(())
}

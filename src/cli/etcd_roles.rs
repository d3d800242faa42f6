//! `nightshift etcd-roles --prefix P [--apply --passwords-dir DIR]`: the
//! least-privilege etcd roles of an installation, as `etcdctl` commands to
//! review and run, or applied directly (as an etcd root user).
//!
//! Whoever can write under the prefix controls Nightshift (commands under
//! any name, fake executors, results). One user per component, each with
//! the narrowest key ranges its code needs, built from `core::keyspace` so
//! they follow the layout:
//!
//! - `nightshift-scheduler`: read and write the whole prefix (it leads).
//! - `nightshift-executor`: read the prefix; write its registration
//!   (`executors/`), its result batches (`results/`), item checkpoints
//!   (`checkpoints/`) and item progress (under `runs/`). Not commands, DAGs, assignments (`owners/`), the
//!   leader key or cron state.
//! - `nightshift-console`: read the prefix; write only `commands/`.
//! - `nightshift-operator` (the CLI: `apply`, `trigger`, `pause`, …): read
//!   the prefix; write `dags/` and `commands/`.

use crate::cli::conn::{self, EtcdArgs};
use anyhow::Context as _;
use nightshift_coord::etcd::{EtcdCoordinator, Grant, RoleSpec};
use nightshift_core::keyspace;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags of `nightshift etcd-roles`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Create the roles and users in etcd now (connecting as a root user
    /// with --etcd / --etcd-user / NIGHTSHIFT_ETCD_PASSWORD) instead of
    /// printing the etcdctl commands.
    #[arg(long, requires = "passwords_dir")]
    pub apply: bool,
    /// With --apply: each user's password is read from DIR/USER.password,
    /// or generated and written there (mode 0600) when the file is absent.
    #[arg(long, value_name = "DIR")]
    pub passwords_dir: Option<PathBuf>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

fn read(prefix: &str) -> Grant {
    Grant {
        prefix: prefix.to_owned(),
        write: false,
    }
}

fn write(prefix: String) -> Grant {
    Grant {
        prefix,
        write: true,
    }
}

/// The roles of an installation under `prefix` (ending in `/`).
pub fn roles(prefix: &str) -> Vec<RoleSpec> {
    let role = |name: &str, grants: Vec<Grant>| RoleSpec {
        name: name.to_owned(),
        grants,
    };
    vec![
        role("nightshift-scheduler", vec![write(prefix.to_owned())]),
        role(
            "nightshift-executor",
            vec![
                read(prefix),
                write(keyspace::executors_prefix(prefix)),
                write(keyspace::all_results_prefix(prefix)),
                write(keyspace::all_checkpoints_prefix(prefix)),
                // item progress is kept under the job's run keys
                write(keyspace::runs_prefix(prefix)),
            ],
        ),
        role(
            "nightshift-console",
            vec![read(prefix), write(keyspace::commands_prefix(prefix))],
        ),
        role(
            "nightshift-operator",
            vec![
                read(prefix),
                write(keyspace::dags_prefix(prefix)),
                write(keyspace::commands_prefix(prefix)),
            ],
        ),
    ]
}

/// A shell word in single quotes.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `etcdctl` commands creating `roles`.
pub fn etcdctl_script(prefix: &str, roles: &[RoleSpec]) -> String {
    let mut out = format!(
        "# Least-privilege etcd users for Nightshift under {} (nightshift etcd-roles).\n\
         # Each user's password is read from USER.password in this directory.\n",
        quote(prefix)
    );
    for role in roles {
        let name = &role.name;
        out.push_str(&format!("etcdctl role add {name}\n"));
        for g in &role.grants {
            let mode = if g.write { "readwrite" } else { "read" };
            out.push_str(&format!(
                "etcdctl role grant-permission {name} {mode} --prefix=true {}\n",
                quote(&g.prefix)
            ));
        }
        out.push_str(&format!(
            "etcdctl user add {name} --interactive=false --new-user-password=\"$(cat {name}.password)\"\n\
             etcdctl user grant-role {name} {name}\n"
        ));
    }
    out.push_str("# Then, if not done yet: etcdctl user add root && etcdctl user grant-role root root && etcdctl auth enable\n");
    out
}

/// The password of `user` in `dir`, generated and stored when absent.
fn password(dir: &Path, user: &str) -> anyhow::Result<String> {
    let path = dir.join(format!("{user}.password"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim_end_matches(['\r', '\n']).to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let secret = format!("{:032x}", rand::random::<u128>());
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            writeln!(file, "{secret}").with_context(|| format!("writing {}", path.display()))?;
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Runs `nightshift etcd-roles`.
pub fn run(args: Args) -> ExitCode {
    conn::block_on(async move {
        let prefix = args.etcd.key_prefix()?;
        let roles = roles(&prefix);
        let Some(dir) = args.passwords_dir.as_deref().filter(|_| args.apply) else {
            print!("{}", etcdctl_script(&prefix, &roles));
            return Ok(ExitCode::SUCCESS);
        };
        let config = args.etcd.config()?;
        let coord = EtcdCoordinator::connect(config)
            .await
            .context("connecting to etcd as its administrator")?;
        for role in &roles {
            let secret = password(dir, &role.name)?;
            coord
                .ensure_role_and_user(role, &secret)
                .await
                .with_context(|| format!("creating role and user {}", role.name))?;
            println!(
                "{}: role and user ready (password in {})",
                role.name,
                dir.join(format!("{}.password", role.name)).display()
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_writes_only_commands_and_executors_never_commands() {
        let roles = roles("/ns/");
        let writes = |name: &str| -> Vec<String> {
            roles
                .iter()
                .find(|r| r.name == name)
                .unwrap()
                .grants
                .iter()
                .filter(|g| g.write)
                .map(|g| g.prefix.clone())
                .collect()
        };
        assert_eq!(writes("nightshift-console"), ["/ns/commands/"]);
        assert_eq!(
            writes("nightshift-executor"),
            [
                "/ns/executors/",
                "/ns/results/",
                "/ns/checkpoints/",
                "/ns/runs/"
            ]
        );
        assert_eq!(writes("nightshift-scheduler"), ["/ns/"]);
        let script = etcdctl_script("/ns/", &roles);
        assert!(
            script.contains(
                "etcdctl role grant-permission nightshift-console readwrite --prefix=true '/ns/commands/'"
            ),
            "{script}"
        );
        assert_eq!(quote("a'b"), r"'a'\''b'");
    }
}

//! Least-privilege etcd (issue 15): etcd with client TLS and
//! authentication, the roles of `nightshift etcd-roles --apply`, and every
//! component as a real process on its own user — a DAG runs to success
//! through the console, the executor's user cannot write a command and the
//! console's user cannot write run state.

mod dev_support;

use dev_support::{get_json, http, poll, Proc, TOKEN};
use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator, TlsFiles};
use nightshift_coord::{CoordError, Coordinator};
use nightshift_core::ids::RunId;
use nightshift_core::keyspace::{command_key, dag_key, CommandId};
use nightshift_testkit::etcd::{EtcdOptions, EtcdServer, EtcdTls};
use nightshift_testkit::tls::certificates;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PREFIX: &str = "/secured/";
// `report` stores checkpoints: the executor user must be able to.
const DAG: &str = "name = \"secured\"\nschedule = \"0 2 * * *\"\ntimezone = \"UTC\"\n\
                   [jobs.load]\nhandler = \"noop\"\nshards = 8\n\
                   [jobs.report]\nhandler = \"sleep\"\ndepends_on = [\"load\"]\nshards = 2\n\
                   params = { millis = 20, steps = 2, checkpoint = true }\n";

struct Secured {
    etcd: EtcdServer,
    certs: PathBuf,
    passwords: PathBuf,
}

impl Secured {
    /// `--etcd …` flags of a component running as `user`.
    fn flags(&self, user: &str) -> Vec<String> {
        let c = |f: &str| self.certs.join(f).display().to_string();
        vec![
            "--etcd".into(),
            self.etcd.endpoint(),
            "--etcd-ca".into(),
            c("ca.pem"),
            "--etcd-cert".into(),
            c("tls-client.pem"),
            "--etcd-key".into(),
            c("tls-client.key"),
            "--etcd-user".into(),
            user.into(),
            "--etcd-password-file".into(),
            self.passwords
                .join(format!("{user}.password"))
                .display()
                .to_string(),
            "--prefix".into(),
            PREFIX.into(),
        ]
    }

    /// A coordinator logged in as `user`.
    async fn coord(&self, user: &str) -> Result<EtcdCoordinator, CoordError> {
        let mut config = EtcdConfig::new(self.etcd.endpoints());
        config.tls = Some(TlsFiles {
            ca: self.certs.join("ca.pem"),
            cert: Some(self.certs.join("tls-client.pem")),
            key: Some(self.certs.join("tls-client.key")),
        });
        config.username = Some(user.into());
        let file = self.passwords.join(format!("{user}.password"));
        config.password = Some(std::fs::read_to_string(file).unwrap().trim().to_owned());
        config.probe_key = PREFIX.into();
        EtcdCoordinator::connect(config).await
    }
}

fn run(args: &[String], log: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("NIGHTSHIFT_ETCD_PASSWORD")
        .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(log).unwrap())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "nightshift {args:?}:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_least_privilege_roles_run_a_dag_and_refuse_what_a_component_may_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let passwords = dir.path().join("passwords");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::create_dir_all(&passwords).unwrap();
    // a client certificate whose name is no etcd user grants nothing by itself
    certificates(&certs, "tls-client");
    let etcd = EtcdServer::start_with(EtcdOptions {
        tls: Some(EtcdTls {
            cert: certs.join("server.pem"),
            key: certs.join("server.key"),
            ca: certs.join("ca.pem"),
        }),
        ..EtcdOptions::default()
    })
    .await
    .unwrap();
    let env = Secured {
        etcd,
        certs,
        passwords,
    };

    // A root user, authentication on.
    std::fs::write(env.passwords.join("root.password"), "root-password-0123\n").unwrap();
    let admin_tls = etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(
            std::fs::read(env.certs.join("ca.pem")).unwrap(),
        ))
        .identity(etcd_client::Identity::from_pem(
            std::fs::read(env.certs.join("tls-client.pem")).unwrap(),
            std::fs::read(env.certs.join("tls-client.key")).unwrap(),
        ));
    let mut admin = etcd_client::Client::connect(
        env.etcd.endpoints(),
        Some(etcd_client::ConnectOptions::new().with_tls(admin_tls)),
    )
    .await
    .unwrap();
    admin
        .user_add("root", "root-password-0123", None)
        .await
        .unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();

    // The roles, created by the command under test as root.
    let logs = dir.path();
    let mut roles = strings(&["etcd-roles", "--apply", "--passwords-dir"]);
    roles.push(env.passwords.display().to_string());
    roles.extend(env.flags("root"));
    run(&roles, &logs.join("roles.log"));

    let db = nightshift_testkit::db::fresh_sqlite();
    let database = ["--database".to_owned(), db.url.clone()];
    let dag_file = dir.path().join("secured.toml");
    std::fs::write(&dag_file, DAG).unwrap();
    let mut apply = strings(&["apply"]);
    apply.push(dag_file.display().to_string());
    apply.extend(env.flags("nightshift-operator"));
    apply.extend(database.clone());
    run(&apply, &logs.join("apply.log"));

    let start = |args: Vec<String>, log: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::start(&args, &logs.join(log), false).unwrap()
    };
    let _scheduler = start(
        [
            strings(&["scheduler", "--lease-ttl", "3s"]),
            env.flags("nightshift-scheduler"),
            database.to_vec(),
        ]
        .concat(),
        "scheduler.log",
    );
    let _executor = start(
        [
            strings(&["executor", "--id", "e1", "--lease-ttl", "3s"]),
            env.flags("nightshift-executor"),
        ]
        .concat(),
        "executor.log",
    );
    let token_file = dir.path().join("operator-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let console_log = logs.join("console.log");
    let console = start(
        [
            strings(&[
                "console",
                "--listen",
                "127.0.0.1:0",
                "--operator-token-file",
            ]),
            vec![token_file.display().to_string()],
            env.flags("nightshift-console"),
            database.to_vec(),
        ]
        .concat(),
        "console.log",
    );
    let addr = poll(Duration::from_secs(30), "the console address", || {
        let log = std::fs::read_to_string(&console_log).ok()?;
        let line = log.lines().find_map(|l| {
            l.split_once("console on http://")
                .map(|(_, a)| a.to_owned())
        })?;
        Some(line.split('/').next()?.to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", console.tail()));

    // The console (as nightshift-console) sends the trigger; the scheduler
    // and the executor, each on its own user, run it to success.
    poll(Duration::from_secs(30), "the executor registered", || {
        let v = get_json(&addr, "/api/v1/executors").ok()?;
        (!v.as_array()?.is_empty()).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\nexecutor:\n{}\nconsole:\n{}",
            std::fs::read_to_string(logs.join("executor.log")).unwrap_or_default(),
            console.tail()
        )
    });
    let (status, body) = http(&addr, "POST", "/api/v1/dags/secured/trigger", None).unwrap();
    assert_eq!(status, 202, "{body}");
    let run_id = poll(Duration::from_secs(60), "the run succeeded", || {
        let runs = get_json(&addr, "/api/v1/runs?dag=secured").ok()?;
        runs.as_array()?
            .iter()
            .find(|r| r["state"] == "succeeded")
            .and_then(|r| r["run_id"].as_str().map(str::to_owned))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\nscheduler:\n{}",
            std::fs::read_to_string(logs.join("scheduler.log")).unwrap_or_default()
        )
    });

    // What each user may not write.
    let executor = env.coord("nightshift-executor").await.unwrap();
    let id = CommandId::new(1, 42);
    let refused = executor
        .put(
            &command_key(PREFIX, &id),
            br#"{"forged":true}"#.to_vec(),
            None,
        )
        .await;
    assert!(
        matches!(refused, Err(CoordError::Denied(_))),
        "executor wrote a command: {refused:?}"
    );
    let refused = executor
        .put(
            &dag_key(PREFIX, &nightshift_core::ids::DagName::new("secured")),
            b"{}".to_vec(),
            None,
        )
        .await;
    assert!(
        matches!(refused, Err(CoordError::Denied(_))),
        "executor wrote a DAG: {refused:?}"
    );
    // Assignments are the leader's: an executor cannot hand itself work.
    let forged = nightshift_core::keyspace::assign_key(
        PREFIX,
        &RunId::new(run_id.as_str()),
        &nightshift_core::ids::JobName::new("forged"),
        &nightshift_core::ids::ExecutorId::new("intruder"),
    );
    let refused = executor.put(&forged, b"{}".to_vec(), None).await;
    assert!(
        matches!(refused, Err(CoordError::Denied(_))),
        "executor wrote an assignment: {refused:?}"
    );
    let console_user = env.coord("nightshift-console").await.unwrap();
    let state_key =
        nightshift_scheduler::record::run_state_key(PREFIX, &RunId::new(run_id.as_str()));
    let refused = console_user.put(&state_key, b"{}".to_vec(), None).await;
    assert!(
        matches!(refused, Err(CoordError::Denied(_))),
        "console wrote run state: {refused:?}"
    );
    // ...while the console's own kind of write is allowed.
    console_user
        .put(&command_key(PREFIX, &id), b"x".to_vec(), None)
        .await
        .expect("the console may write commands");
    console_user
        .delete(&command_key(PREFIX, &id))
        .await
        .unwrap();
    drop(db);
}

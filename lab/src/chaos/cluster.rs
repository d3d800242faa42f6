//! The system under test: an etcd of its own (one member, or a cluster of
//! three), a fresh PostgreSQL database, two `nightshift scheduler` replicas
//! and N `nightshift demo executor` processes, every one of them a real
//! child process the chaos run can kill, stop and restart.
//!
//! The network is made of [`Proxy`]s the run controls. Each Nightshift
//! process reaches each etcd member through a link of its own (so one
//! process can be cut off, or have its answers swallowed); with several
//! members, every link of member *i* goes through that member's proxy (so
//! the member can be partitioned from every client at once while it still
//! talks to its peers). Every Nightshift process reaches PostgreSQL through
//! a shared proxy (so the database can "restart" for its clients without
//! touching the server other tests use).

use super::proxy::Proxy;
use crate::bench::etcd::BenchEtcd;
use crate::bench::process::NightshiftChild;
use anyhow::{bail, Context as _};
use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_coord::Coordinator;
use nightshift_core::keyspace;
use sqlx::Connection as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A PostgreSQL URL taken apart, enough to point it at another database or
/// another address. The password, if any, stays inside: never print it.
#[derive(Clone)]
pub struct PgUrl {
    scheme: String,
    userinfo: Option<String>,
    host: String,
    port: u16,
    database: String,
    query: Option<String>,
}

impl PgUrl {
    /// Parses `postgres://[user[:password]@]host[:port][/db][?query]`.
    pub fn parse(url: &str) -> anyhow::Result<PgUrl> {
        let (scheme, rest) = url
            .split_once("://")
            .context("expected postgres://user@host:port/db")?;
        if scheme != "postgres" && scheme != "postgresql" {
            bail!("expected a postgres:// URL, got {scheme}://...");
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q.to_owned())),
            None => (rest, None),
        };
        let (authority, database) = rest.split_once('/').unwrap_or((rest, "postgres"));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .context("the port of the postgres URL is not a number")?,
            ),
            None => (hostport, 5432),
        };
        if host.is_empty() {
            bail!("the postgres URL has no host (a TCP host is needed to proxy it)");
        }
        Ok(PgUrl {
            scheme: scheme.to_owned(),
            userinfo,
            host: host.to_owned(),
            port,
            database: database.to_owned(),
            query,
        })
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, database: &str) -> PgUrl {
        PgUrl {
            database: database.to_owned(),
            ..self.clone()
        }
    }

    /// The same database, reached at `addr`.
    pub fn via(&self, addr: SocketAddr) -> PgUrl {
        PgUrl {
            host: addr.ip().to_string(),
            port: addr.port(),
            ..self.clone()
        }
    }

    /// The server's address.
    pub async fn addr(&self) -> anyhow::Result<SocketAddr> {
        let mut addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("resolving {}", self.host))?;
        addrs
            .next()
            .with_context(|| format!("{} has no address", self.host))
    }

    /// The URL, credentials included: for child processes, never for logs.
    pub fn secret_url(&self) -> String {
        let user = self
            .userinfo
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let query = self
            .query
            .as_ref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        format!(
            "{}://{user}{}:{}/{}{query}",
            self.scheme, self.host, self.port, self.database
        )
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }
}

/// A fresh database on the admin URL's server, dropped by [`ChaosDb::drop_database`].
pub struct ChaosDb {
    admin: PgUrl,
    /// The database, reached directly (the chaos run's own reads).
    pub direct: PgUrl,
}

impl ChaosDb {
    /// Creates `nightshift_chaos_{pid}_{millis}`.
    pub async fn create(admin: PgUrl) -> anyhow::Result<ChaosDb> {
        let name = format!(
            "nightshift_chaos_{}_{}",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        );
        let mut conn = sqlx::PgConnection::connect(&admin.secret_url())
            .await
            .context("connecting with the admin URL")?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .context("creating the chaos database")?;
        let _ = conn.close().await;
        let direct = admin.with_database(&name);
        Ok(ChaosDb { admin, direct })
    }

    /// Terminates every server-side connection of the database but ours.
    pub async fn drop_connections(&self) -> anyhow::Result<u64> {
        let mut conn = sqlx::PgConnection::connect(&self.admin.secret_url())
            .await
            .context("connecting with the admin URL")?;
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(self.direct.database())
        .fetch_one(&mut conn)
        .await
        .context("terminating the database's connections")?;
        let _ = conn.close().await;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Drops the database (and whatever is still connected to it).
    pub async fn drop_database(&self) -> anyhow::Result<()> {
        let mut conn = sqlx::PgConnection::connect(&self.admin.secret_url())
            .await
            .context("connecting with the admin URL")?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.direct.database()
        ))
        .execute(&mut conn)
        .await
        .context("dropping the chaos database")?;
        let _ = conn.close().await;
        Ok(())
    }
}

/// One Nightshift process the chaos run manages.
pub struct Member {
    /// `scheduler-0`, `executor-2`, ...: its id and its log's name.
    pub name: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<NightshiftChild>,
    stopped: bool,
    /// Its own links to etcd, one per member.
    links: Vec<Proxy>,
    env: Vec<(String, String)>,
    starts: u32,
}

impl Member {
    fn new(
        name: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        dir: &Path,
        links: Vec<Proxy>,
    ) -> Member {
        let log = dir.join(format!("{name}.log"));
        Member {
            name,
            args,
            log,
            child: None,
            stopped: false,
            links,
            env,
            starts: 0,
        }
    }

    /// Starts the process (again).
    pub fn start(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        self.child = Some(NightshiftChild::spawn_with_env(
            &self.name, &self.args, &self.env, &self.log, "info",
        )?);
        self.stopped = false;
        Ok(())
    }

    /// Cuts it off etcd: every link drops its connections and refuses new
    /// ones until [`Member::reconnect`].
    pub fn cut_off(&self) {
        for link in &self.links {
            link.cut();
        }
    }

    /// Its etcd links forward its requests but swallow etcd's answers,
    /// until [`Member::cut_off`] or [`Member::reconnect`].
    pub fn swallow(&self) {
        for link in &self.links {
            link.swallow();
        }
    }

    /// Lets its etcd traffic through again.
    pub fn reconnect(&self) {
        for link in &self.links {
            link.restore();
        }
    }

    /// SIGKILLs it and reaps it.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_ref() {
            if self.stopped {
                // A stopped process dies on SIGKILL too; CONT keeps the books simple.
                let _ = child.signal(libc::SIGCONT);
            }
        }
        // Dropping the handle SIGKILLs and reaps the process.
        self.child = None;
        self.stopped = false;
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn pause(&mut self, stop: bool) -> anyhow::Result<()> {
        let child = self
            .child
            .as_ref()
            .with_context(|| format!("{} is not running", self.name))?;
        child.signal(if stop { libc::SIGSTOP } else { libc::SIGCONT })?;
        self.stopped = stop;
        Ok(())
    }

    /// Times it was started again after a kill or an exit.
    pub fn restarts(&self) -> u32 {
        self.starts.saturating_sub(1)
    }

    /// Whether a process is running (not killed by us).
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// `Some(status)` when the process exited without being told to.
    pub fn exited_on_its_own(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.exited() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status.to_string())
            }
            _ => None,
        }
    }

    /// Lines of its log that contain `text`.
    pub fn log_lines_with(&self, text: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(text))
            .count()
    }

    /// The last lines of its log, for evidence.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Everything that runs.
pub struct Cluster {
    /// The etcd members (each restartable on its data).
    pub etcd: Vec<BenchEtcd>,
    /// With several members, member *i*'s proxy, which every process's
    /// link to member *i* goes through; empty with one member.
    pub member_proxies: Vec<Proxy>,
    /// A client of the chaos run itself, straight to every member.
    pub coord: Arc<dyn Coordinator>,
    /// Key prefix.
    pub prefix: String,
    /// The database.
    pub db: ChaosDb,
    /// Between Nightshift processes and PostgreSQL.
    pub pg_proxy: Proxy,
    /// The two scheduler replicas.
    pub schedulers: Vec<Member>,
    /// The executors.
    pub executors: Vec<Member>,
}

/// Knobs of the processes.
pub struct Shape {
    /// Number of executor processes.
    pub executors: usize,
    /// Lease TTL of executors and schedulers.
    pub lease_ttl: Duration,
    /// Items each executor runs at once.
    pub capacity: u32,
    /// etcd members: 1, or an odd number for a cluster.
    pub etcd_members: usize,
    /// Ops per etcd txn of the schedulers (the test-only
    /// `NIGHTSHIFT_TEST_MAX_TXN_OPS`), so that job starts and passes need
    /// several txns, any of which a fault may cut or leave ambiguous.
    pub max_txn_ops: usize,
}

impl Cluster {
    /// Starts etcd, creates the database (migrated, demo-seeded by the
    /// caller), and prepares (does not start) the processes.
    pub async fn prepare(dir: &Path, admin: PgUrl, shape: &Shape) -> anyhow::Result<Cluster> {
        let etcd = if shape.etcd_members > 1 {
            BenchEtcd::cluster(shape.etcd_members).await?
        } else {
            vec![BenchEtcd::start().await?]
        };
        let endpoints: Vec<String> = etcd.iter().map(|m| m.endpoint().to_owned()).collect();
        let coord: Arc<dyn Coordinator> = Arc::new(
            EtcdCoordinator::connect(EtcdConfig::new(endpoints.clone()))
                .await
                .context("connecting to etcd")?,
        );
        let mut member_proxies = Vec::new();
        let mut upstreams = Vec::new();
        for endpoint in &endpoints {
            let addr: SocketAddr = endpoint
                .trim_start_matches("http://")
                .parse()
                .context("parsing the etcd address")?;
            if shape.etcd_members > 1 {
                let proxy = Proxy::start(addr).await?;
                upstreams.push(proxy.addr());
                member_proxies.push(proxy);
            } else {
                upstreams.push(addr);
            }
        }
        let db = ChaosDb::create(admin).await?;
        let pg_proxy = Proxy::start(db.direct.addr().await?).await?;
        let proxied_db = db.direct.via(pg_proxy.addr()).secret_url();
        let prefix = "/nightshift-chaos/".to_owned();
        let ttl = format!("{}ms", shape.lease_ttl.as_millis());
        let journal_dir = dir.join(JOURNAL_DIR);
        std::fs::create_dir_all(&journal_dir).context("creating the journal dir")?;
        let journal_dir = journal_dir
            .to_str()
            .context("the work dir is not UTF-8")?
            .to_owned();
        let mut schedulers = Vec::new();
        for i in 0..2 {
            let (links, urls) = links(&upstreams).await?;
            let name = format!("scheduler-{i}");
            let args = strings(&[
                "scheduler",
                "--etcd",
                &urls,
                "--prefix",
                &prefix,
                "--database",
                &proxied_db,
                "--id",
                &name,
                "--lease-ttl",
                &ttl,
                "--tick",
                "200ms",
                // Outage alerts resolve well within the check's wait.
                "--store-alert-linger",
                "5s",
            ]);
            let env = vec![(MAX_TXN_OPS_ENV.to_owned(), shape.max_txn_ops.to_string())];
            schedulers.push(Member::new(name, args, env, dir, links));
        }
        let mut executors = Vec::new();
        for i in 0..shape.executors {
            let (links, urls) = links(&upstreams).await?;
            let name = format!("executor-{i}");
            let args = strings(&[
                "demo",
                "executor",
                "--etcd",
                &urls,
                "--prefix",
                &prefix,
                "--database",
                &proxied_db,
                "--id",
                &name,
                "--lease-ttl",
                &ttl,
                "--capacity",
                &shape.capacity.to_string(),
                "--sleep-journal-dir",
                &journal_dir,
            ]);
            executors.push(Member::new(name, args, Vec::new(), dir, links));
        }
        Ok(Cluster {
            etcd,
            member_proxies,
            coord,
            prefix,
            db,
            pg_proxy,
            schedulers,
            executors,
        })
    }

    /// Every member's client URL, comma-separated (for `--etcd`).
    pub fn endpoints(&self) -> String {
        self.etcd
            .iter()
            .map(|m| m.endpoint())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The index of the etcd member that is the raft leader, if one is.
    pub async fn etcd_leader(&self) -> Option<usize> {
        for (i, m) in self.etcd.iter().enumerate() {
            if m.is_leader().await {
                return Some(i);
            }
        }
        None
    }

    /// Every managed process.
    pub fn members(&mut self) -> impl Iterator<Item = &mut Member> {
        self.schedulers.iter_mut().chain(self.executors.iter_mut())
    }

    /// The id of the leading scheduler, if one leads.
    pub async fn leader(&self) -> anyhow::Result<Option<String>> {
        let election = nightshift_coord::election::Election::new(
            self.coord.clone(),
            keyspace::leader_prefix(&self.prefix),
        );
        let kv = election.leader().await.context("reading the leader")?;
        Ok(kv.map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
    }

    /// Number of executors registered in etcd.
    pub async fn registered_executors(&self) -> anyhow::Result<usize> {
        let (kvs, _) = self
            .coord
            .get_prefix(&keyspace::executors_prefix(&self.prefix))
            .await?;
        Ok(kvs.len())
    }

    /// The executors that hold an assignment of `job` (of any run) now.
    pub async fn stubborn_holders(&self, job: &str) -> anyhow::Result<Vec<String>> {
        let (kvs, _) = self
            .coord
            .get_prefix(&keyspace::owners_prefix(&self.prefix))
            .await?;
        Ok(kvs
            .iter()
            .filter_map(|kv| {
                let (_, j, executor) = keyspace::parse_assign_key(&self.prefix, &kv.key)?;
                (j.as_str() == job).then(|| executor.to_string())
            })
            .collect())
    }

    /// Number of keys of live runs still in etcd: run state, assignments
    /// and unconsumed result batches.
    pub async fn live_run_keys(&self) -> anyhow::Result<usize> {
        let mut keys = 0;
        for prefix in [
            keyspace::runs_prefix(&self.prefix),
            keyspace::owners_prefix(&self.prefix),
            keyspace::all_results_prefix(&self.prefix),
        ] {
            keys += self.coord.get_prefix(&prefix).await?.0.len();
        }
        Ok(keys)
    }
}

/// The schedulers' test-only ops-per-txn setting (read by `nightshift
/// scheduler`).
const MAX_TXN_OPS_ENV: &str = "NIGHTSHIFT_TEST_MAX_TXN_OPS";

/// Directory of the work dir where executors journal stubborn items' steps.
pub const JOURNAL_DIR: &str = "journals";

/// A process's own links, one per etcd member (to `upstreams`), and the
/// `--etcd` value naming them.
async fn links(upstreams: &[SocketAddr]) -> anyhow::Result<(Vec<Proxy>, String)> {
    let mut links = Vec::new();
    for upstream in upstreams {
        links.push(Proxy::start(*upstream).await?);
    }
    let urls = links
        .iter()
        .map(|l| format!("http://{}", l.addr()))
        .collect::<Vec<_>>()
        .join(",");
    Ok((links, urls))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_are_re_pointed_without_losing_credentials() {
        let url =
            PgUrl::parse("postgres://app:s3cret@db.example:6432/postgres?sslmode=disable").unwrap();
        let other = url
            .with_database("chaos")
            .via("127.0.0.1:4000".parse().unwrap());
        assert_eq!(
            other.secret_url(),
            "postgres://app:s3cret@127.0.0.1:4000/chaos?sslmode=disable"
        );
        assert_eq!(
            PgUrl::parse("postgresql://u@h/db").unwrap().secret_url(),
            "postgresql://u@h:5432/db"
        );
        assert!(PgUrl::parse("sqlite://x.db").is_err());
        assert!(PgUrl::parse("postgres://u@:5432/db").is_err());
        assert!(PgUrl::parse("postgres://u@h:port/db").is_err());
    }
}

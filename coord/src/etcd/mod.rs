//! etcd backend: a thin translation of the contract onto `etcd-client`, plus
//! the supervision the crate lacks.
//!
//! - **Deadlines and retries:** every unary call (and every watch
//!   stream's creation) runs under `request_timeout` (default 2 s; a lease
//!   renewal under at least 5 s, see `keep_alive`; our own `tokio::time::timeout`, not tonic's per-request timeout,
//!   which would also cut long-lived watch streams). Within it, a failed
//!   attempt is sent again when that is safe (see the `retry` module): at
//!   once when it never reached a member (a dead member's connect error),
//!   after 50 ms when a member without a raft leader refused it, and, for
//!   reads, renewals and watch creation only, after any transient failure.
//!   A deadline passed is [`CoordError::Unavailable`].
//! - **Member loss:** the client balances requests over all endpoints
//!   (tonic's power-of-two-choices balancer, which does not route to a
//!   member it is still reconnecting to) and sends etcd's `hasleader`
//!   metadata, so a member cut off from its leader refuses requests at once
//!   and cancels its watches instead of holding them. A request in flight
//!   on a member when it dies fails with the connection; one in flight on a
//!   follower whose leader died waits at most the deadline. Together with
//!   the retries, losing one member of three costs callers at most about one
//!   deadline plus etcd's own leader election.
//! - **Keep-alive supervision:** [`Coordinator::keep_alive`] opens a fresh
//!   lease keep-alive stream per call, renews once, reads the answer and drops
//!   the stream. No stream outlives a call, so a stream killed by an etcd
//!   restart or a dead connection can never silently stop renewing a lease:
//!   the next call simply opens a new one on a reconnected channel (and is
//!   retried on another member within its deadline). Periodic renewal and the
//!   deadline bookkeeping live in [`crate::lease`].
//! - **Watch supervision:** see the `watch` module: re-created after any error from the
//!   last delivered revision + 1, deduplicated, resynced after compaction.
//! - **HTTP/2 keep-alive** pings every 6 s (3 s timeout) while streams are
//!   open, so a watch on a silently dead connection (a member host that
//!   vanished without closing its sockets) is noticed within 9 s and
//!   re-created on a live member; etcd's server answers pings more frequent
//!   than `--grpc-keepalive-min-time` (5 s), or pings on a connection
//!   without streams, with GOAWAY, hence not faster and not while idle
//!   (unary requests have their deadline instead). A member process that
//!   dies closes its connections, which clients notice at once.

mod admin;
mod convert;
mod retry;
mod watch;

pub use admin::{Grant, RoleSpec};

use crate::api::{
    prefix_range_end, CoordError, Coordinator, KeyValue, LeaseId, PrefixPage, Revision, Txn,
    TxnResponse, WatchStream,
};
use async_trait::async_trait;
use etcd_client as ec;
use retry::Safety;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// Largest response we accept (a big `get_prefix`); etcd-client's default is 4 MiB.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Least deadline of a lease renewal: up to 5/12 of a 10 s TTL, the
/// longest a renewal sent every TTL/4 may take and still keep its holder
/// writing (see `crate::lease`).
const KEEP_ALIVE_DEADLINE: Duration = Duration::from_secs(5);
/// Keys per page of a keys-only read: a key is at most a few hundred
/// bytes, so a page stays far below the response cap.
const KEYS_ONLY_PAGE: usize = 10_000;
/// HTTP/2 keep-alive ping interval; must stay ≥ etcd's `--grpc-keepalive-min-time`.
const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(6);
/// How long a keep-alive ping may go unanswered before the connection is dropped.
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Default [`EtcdConfig::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach etcd.
#[derive(Clone)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://127.0.0.1:2379` (`https://` with [`tls`](Self::tls)).
    pub endpoints: Vec<String>,
    /// User name, when etcd has authentication enabled.
    pub username: Option<String>,
    /// Password for [`username`](Self::username). Never logged.
    pub password: Option<String>,
    /// TLS material, for `https://` endpoints.
    pub tls: Option<TlsFiles>,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Deadline of each unary request (get, put, txn, lease calls, a watch's
    /// creation), retries on other members included. Short, so that a
    /// request held by a member that lost its leader does not hold its
    /// caller long; raise it only for very large reads on a slow etcd.
    pub request_timeout: Duration,
    /// The key read (count only) to learn the store's revision at connect
    /// time and for "from now" watches. A user restricted to a key range
    /// (least-privilege roles) must be allowed to read it, so services set
    /// it to their key prefix; the default is `"\0"`, a key nobody uses.
    pub probe_key: String,
}

impl EtcdConfig {
    /// Plain-text, unauthenticated access to `endpoints`: 5 s to connect,
    /// a 2 s deadline per request.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdConfig {
            endpoints,
            username: None,
            password: None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            probe_key: "\0".to_owned(),
        }
    }
}

impl Default for EtcdConfig {
    /// etcd's conventional local address, `http://127.0.0.1:2379`.
    fn default() -> Self {
        EtcdConfig::new(vec!["http://127.0.0.1:2379".to_owned()])
    }
}

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials are redacted: configs end up in logs and error reports.
        let redact = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("username", &redact(&self.username))
            .field("password", &redact(&self.password))
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// PEM files for TLS to etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate that signed etcd's server certificate.
    pub ca: PathBuf,
    /// Client certificate, when etcd requires client authentication.
    pub cert: Option<PathBuf>,
    /// Private key of [`cert`](Self::cert).
    pub key: Option<PathBuf>,
}

/// The etcd coordinator. Cloning is cheap (clones share the connection).
#[derive(Clone)]
pub struct EtcdCoordinator {
    client: ec::Client,
    request_timeout: Duration,
    /// How many endpoints the client balances over (bounds instant retries).
    endpoints: usize,
    probe_key: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for EtcdCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdCoordinator")
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl EtcdCoordinator {
    /// Connects and checks that etcd answers (one read), so a wrong endpoint
    /// or bad credentials fail here with a clear error rather than later.
    pub async fn connect(config: EtcdConfig) -> Result<Self, CoordError> {
        if config.endpoints.is_empty() {
            return Err(CoordError::Invalid("no etcd endpoints configured".into()));
        }
        let mut options = ec::ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(H2_KEEPALIVE_INTERVAL, H2_KEEPALIVE_TIMEOUT)
            .with_keep_alive_while_idle(false)
            // A member without a raft leader refuses at once ("no leader",
            // retried elsewhere) and cancels its watches, instead of holding
            // requests until etcd's own timeout.
            .with_require_leader(true);
        match (&config.username, &config.password) {
            (Some(user), Some(password)) => {
                options = options
                    .with_user(user.clone(), password.clone())
                    .with_auto_token_refresh(true);
            }
            (None, None) => {}
            _ => {
                return Err(CoordError::Invalid(
                    "etcd username and password must be given together".into(),
                ))
            }
        }
        if let Some(tls) = &config.tls {
            options = options.with_tls(tls_options(tls)?);
        }
        let endpoints = config.endpoints.join(",");
        let connect = ec::Client::connect(&config.endpoints, Some(options));
        let client = match tokio::time::timeout(config.connect_timeout, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(in_context(convert::error(e, None), &endpoints)),
            Err(_) => {
                return Err(CoordError::Unavailable(format!(
                    "connecting to etcd at {endpoints} timed out after {:?}",
                    config.connect_timeout
                )))
            }
        };
        let coordinator = EtcdCoordinator {
            client,
            request_timeout: config.request_timeout,
            endpoints: config.endpoints.len(),
            probe_key: config.probe_key.clone().into_bytes().into(),
        };
        coordinator
            .current_revision()
            .await
            .map_err(|e| in_context(e, &endpoints))?;
        Ok(coordinator)
    }

    /// Runs one etcd call under the request deadline, retrying it on another
    /// member when that is safe (see [`retry`]), and maps its error.
    /// `attempt` makes one attempt; it is called again for each retry.
    async fn call<T, F, Fut>(
        &self,
        lease: Option<LeaseId>,
        safety: retry::Safety,
        attempt: F,
    ) -> Result<T, CoordError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ec::Error>>,
    {
        self.call_within(self.request_timeout, lease, safety, attempt)
            .await
    }

    /// [`call`](Self::call) with a deadline of `timeout`.
    async fn call_within<T, F, Fut>(
        &self,
        timeout: Duration,
        lease: Option<LeaseId>,
        safety: retry::Safety,
        mut attempt: F,
    ) -> Result<T, CoordError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ec::Error>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tries: u32 = 0;
        loop {
            tries += 1;
            let e = match tokio::time::timeout_at(deadline, attempt()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(CoordError::Unavailable(format!(
                        "etcd request timed out after {timeout:?}"
                    )))
                }
            };
            let Some(pause) = retry::pause(safety, retry::classify(&e), tries, self.endpoints)
            else {
                return Err(convert::error(e, lease));
            };
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(convert::error(e, lease));
            }
            metrics::counter!("nightshift_etcd_request_retries_total").increment(1);
            tracing::debug!(error = %e, tries, "etcd request failed; retrying on another member");
            tokio::time::sleep(pause).await;
        }
    }

    /// One page of a prefix: at most `limit` keys sorting after `after`,
    /// at `revision` (now when `None`); without values when `keys_only`.
    async fn range_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
        keys_only: bool,
    ) -> Result<PrefixPage, CoordError> {
        // The page starts just after `after` (the smallest key greater than
        // it is `after` + NUL) and runs to the prefix's range end.
        let start: Vec<u8> = match after {
            Some(after) => {
                let mut start = after.as_bytes().to_vec();
                start.push(0);
                start
            }
            None => prefix.as_bytes().to_vec(),
        };
        // etcd: a range end of "\0" means "to the end of the keyspace".
        let end = prefix_range_end(prefix.as_bytes()).unwrap_or_else(|| vec![0]);
        let mut options = ec::GetOptions::new()
            .with_range(end)
            .with_limit(i64::try_from(limit.max(1)).unwrap_or(i64::MAX))
            .with_revision(revision.unwrap_or(0));
        if keys_only {
            options = options.with_keys_only();
        }
        let resp = self
            .call(None, Safety::Repeatable, || {
                let mut kv = self.kv();
                let (start, options) = (start.clone(), options.clone());
                async move { kv.get(start, Some(options)).await }
            })
            .await?;
        Ok(PrefixPage {
            kvs: resp.kvs().iter().map(convert::key_value).collect(),
            revision: match revision {
                Some(rev) => rev,
                None => header_revision(resp.header())?,
            },
            more: resp.more(),
        })
    }

    fn kv(&self) -> ec::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }
}

fn tls_options(tls: &TlsFiles) -> Result<ec::TlsOptions, CoordError> {
    let read = |p: &PathBuf| {
        std::fs::read(p)
            .map_err(|e| CoordError::Invalid(format!("reading etcd tls file {}: {e}", p.display())))
    };
    let mut options =
        ec::TlsOptions::new().ca_certificate(ec::Certificate::from_pem(read(&tls.ca)?));
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            options = options.identity(ec::Identity::from_pem(read(cert)?, read(key)?))
        }
        (None, None) => {}
        _ => {
            return Err(CoordError::Invalid(
                "etcd tls cert and key must be given together".into(),
            ))
        }
    }
    Ok(options)
}

/// Prefixes an error message with the endpoints it was about.
fn in_context(e: CoordError, endpoints: &str) -> CoordError {
    match e {
        CoordError::Unavailable(m) => CoordError::Unavailable(format!("etcd at {endpoints}: {m}")),
        CoordError::Denied(m) => CoordError::Denied(format!("etcd at {endpoints}: {m}")),
        CoordError::Invalid(m) => CoordError::Invalid(format!("etcd at {endpoints}: {m}")),
        CoordError::Full(m) => CoordError::Full(format!("etcd at {endpoints}: {m}")),
        other => other,
    }
}

/// Whole seconds, rounded up, at least 1: etcd's lease API carries seconds.
fn ttl_seconds(ttl: Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

fn seconds(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}

fn header_revision(header: Option<&ec::ResponseHeader>) -> Result<Revision, CoordError> {
    header
        .map(ec::ResponseHeader::revision)
        .ok_or_else(|| CoordError::Unavailable("etcd response without header".into()))
}

#[async_trait]
impl Coordinator for EtcdCoordinator {
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, CoordError> {
        // Not repeated after an ambiguous failure: a second grant would leave
        // the first lease orphaned (it expires after its TTL, harmlessly).
        let resp = self
            .call(None, Safety::Once, || {
                let mut leases = self.client.lease_client();
                async move { leases.grant(ttl_seconds(ttl), None).await }
            })
            .await?;
        Ok(LeaseId(resp.id()))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, CoordError> {
        // A longer deadline than other requests: etcd answers a renewal only
        // once it has applied what it committed, so a write backlog delays
        // it, and a late answer still confirms the lease from its send time
        // (see `crate::lease`); abandoning it would only queue another.
        let timeout = self.request_timeout.max(KEEP_ALIVE_DEADLINE);
        self.call_within(timeout, Some(lease), Safety::Repeatable, || {
            let mut leases = self.client.lease_client();
            async move {
                // etcd-client sends one renewal and checks its answer inside
                // `keep_alive`, but drops the TTL; a second renewal on the same
                // fresh stream reports it. Both renewals happen after the caller
                // decided to renew, so the TTL is measured conservatively.
                let (mut keeper, mut responses) = leases.keep_alive(lease.0).await?;
                keeper.keep_alive().await?;
                match responses.message().await? {
                    Some(r) if r.ttl() > 0 => Ok(seconds(r.ttl())),
                    Some(_) => Err(ec::Error::LeaseKeepAliveError("lease not found".into())),
                    None => Err(ec::Error::LeaseKeepAliveError(
                        "keep-alive stream closed".into(),
                    )),
                }
            }
        })
        .await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), CoordError> {
        self.call(Some(lease), Safety::Once, || {
            let mut leases = self.client.lease_client();
            async move { leases.revoke(lease.0).await }
        })
        .await
        .map(|_| ())
    }

    async fn lease_time_to_live(&self, lease: LeaseId) -> Result<Option<Duration>, CoordError> {
        match self
            .call(Some(lease), Safety::Repeatable, || {
                let mut leases = self.client.lease_client();
                async move { leases.time_to_live(lease.0, None).await }
            })
            .await
        {
            // etcd answers TTL -1 for a lease it does not know.
            Ok(resp) => Ok((resp.ttl() >= 0).then(|| seconds(resp.ttl()))),
            Err(CoordError::LeaseNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, CoordError> {
        let options = lease.map(|l| ec::PutOptions::new().with_lease(l.0));
        let resp = self
            .call(lease, Safety::Once, || {
                let mut kv = self.kv();
                let (value, options) = (value.clone(), options.clone());
                async move { kv.put(key, value, options).await }
            })
            .await?;
        header_revision(resp.header())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, CoordError> {
        let resp = self
            .call(None, Safety::Repeatable, || {
                let mut kv = self.kv();
                async move { kv.get(key, None).await }
            })
            .await?;
        Ok(resp.kvs().first().map(convert::key_value))
    }

    async fn get_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), CoordError> {
        let resp = self
            .call(None, Safety::Repeatable, || {
                let mut kv = self.kv();
                async move {
                    kv.get(prefix, Some(ec::GetOptions::new().with_prefix()))
                        .await
                }
            })
            .await?;
        // etcd sorts a range by key, ascending, by default.
        Ok((
            resp.kvs().iter().map(convert::key_value).collect(),
            header_revision(resp.header())?,
        ))
    }

    async fn get_prefix_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<PrefixPage, CoordError> {
        self.range_page(prefix, after, limit, revision, false).await
    }

    async fn get_prefix_keys(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), CoordError> {
        let mut attempt = 0;
        'read: loop {
            attempt += 1;
            let first = self
                .range_page(prefix, None, KEYS_ONLY_PAGE, None, true)
                .await?;
            let (revision, mut more, mut kvs) = (first.revision, first.more, first.kvs);
            while more {
                let Some(after) = kvs.last().map(|kv| kv.key.clone()) else {
                    break;
                };
                match self
                    .range_page(prefix, Some(&after), KEYS_ONLY_PAGE, Some(revision), true)
                    .await
                {
                    Ok(page) => {
                        more = page.more;
                        kvs.extend(page.kvs);
                    }
                    Err(CoordError::Compacted { .. }) if attempt < 3 => continue 'read,
                    Err(e) => return Err(e),
                }
            }
            return Ok((kvs, revision));
        }
    }

    async fn delete(&self, key: &str) -> Result<i64, CoordError> {
        let resp = self
            .call(None, Safety::Once, || {
                let mut kv = self.kv();
                async move { kv.delete(key, None).await }
            })
            .await?;
        Ok(resp.deleted())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<i64, CoordError> {
        let resp = self
            .call(None, Safety::Once, || {
                let mut kv = self.kv();
                let options = ec::DeleteOptions::new().with_prefix();
                async move { kv.delete(prefix, Some(options)).await }
            })
            .await?;
        Ok(resp.deleted())
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, CoordError> {
        // A put with a missing lease fails the whole txn: name that lease.
        let lease = txn
            .success
            .iter()
            .chain(&txn.failure)
            .find_map(|op| match op {
                crate::api::TxnOp::Put { lease, .. } => *lease,
                _ => None,
            });
        let request = convert::txn(txn);
        let resp = self
            .call(lease, Safety::Once, || {
                let mut kv = self.kv();
                let request = request.clone();
                async move { kv.txn(request).await }
            })
            .await?;
        Ok(TxnResponse {
            succeeded: resp.succeeded(),
            revision: header_revision(resp.header())?,
            results: convert::txn_results(&resp),
        })
    }

    async fn current_revision(&self) -> Result<Revision, CoordError> {
        // Any read returns the store revision in its header; count-only on
        // one key keeps it tiny.
        let resp = self
            .call(None, Safety::Repeatable, || {
                let mut kv = self.kv();
                let options = ec::GetOptions::new().with_count_only();
                let key = self.probe_key.to_vec();
                async move { kv.get(key, Some(options)).await }
            })
            .await?;
        header_revision(resp.header())
    }

    async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: Option<Revision>,
    ) -> Result<WatchStream, CoordError> {
        // "Only future changes" is pinned to a revision now, so a write that
        // completes after this call returns is always delivered, even if the
        // first watch stream is only established after a reconnect.
        let start = match start_revision {
            Some(rev) => rev.max(1),
            None => self.current_revision().await? + 1,
        };
        Ok(watch::spawn(self.clone(), prefix.to_owned(), start))
    }
}

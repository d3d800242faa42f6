//! [`Executor::builder`]: the only way to make an [`Executor`], and it cannot
//! produce a half-configured one — [`ExecutorBuilder::build`] checks
//! everything that can be checked before touching the network.

use crate::job::Job;
use crate::params::ParamsSchema;
use crate::stats::Stats;
use nightshift_coord::etcd::TlsFiles;
use nightshift_coord::Coordinator;
use nightshift_protocol::ids::{ExecutorId, HandlerName};
use nightshift_protocol::keyspace::{self, KeyError};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Shortest lease TTL accepted: below it, renewals every TTL/3 leave no room
/// for a slow etcd round trip.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(2);

/// A configured executor; start it with [`Executor::run_until`].
pub struct Executor {
    pub(crate) config: Arc<Config>,
    pub(crate) source: Source,
    pub(crate) stats: Arc<Stats>,
}

/// Settled configuration, shared by every registration.
pub(crate) struct Config {
    pub id: ExecutorId,
    pub prefix: String,
    pub capacity: u32,
    pub lease_ttl: Duration,
    pub drain_grace: Duration,
    pub labels: BTreeMap<String, String>,
    pub handlers: BTreeMap<HandlerName, Arc<dyn Job>>,
    /// Handlers with their own limit on items at once (within `capacity`).
    pub handler_capacity: BTreeMap<HandlerName, u32>,
    /// Params schemas of the handlers that declare a params type.
    pub params_schemas: BTreeMap<HandlerName, serde_json::Value>,
    /// How long an outcome may wait for others to share its batch.
    pub linger: Duration,
    /// Shortest interval between two progress writes of a job.
    pub progress_interval: Duration,
    /// How long a cancelled item's handler may run on (`None`: TTL/6).
    pub cancel_grace: Option<Duration>,
}

/// Where the coordination service is.
pub(crate) enum Source {
    /// An already connected backend (in-process, or shared with the host service).
    Coordinator(Arc<dyn Coordinator>),
    /// etcd, connected when the executor starts.
    Etcd(EtcdSettings),
}

/// How to reach etcd.
#[derive(Clone, Default)]
pub struct EtcdSettings {
    /// `http(s)://host:port` endpoints.
    pub endpoints: Vec<String>,
    /// User and password, when etcd has authentication on.
    pub credentials: Option<(String, String)>,
    /// TLS files, when etcd serves TLS.
    pub tls: Option<TlsFiles>,
    /// Deadline of each etcd request, retries on other members included;
    /// `None`: the coordination client's default (2 s).
    pub request_timeout: Option<Duration>,
}

impl fmt::Debug for EtcdSettings {
    // Hand-written so that the password can never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdSettings")
            .field("endpoints", &self.endpoints)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("tls", &self.tls)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Why an executor could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// No `.handler(..)` was registered: the executor could run nothing.
    #[error("no handler registered: add at least one with .handler(name, job)")]
    NoHandler,
    /// The same handler name was registered twice.
    #[error("handler `{0}` registered twice")]
    DuplicateHandler(String),
    /// Capacity 0 would never run an item.
    #[error("capacity must be at least 1")]
    ZeroCapacity,
    /// `.handler_capacity(name, ..)` for a handler that is not registered.
    #[error("handler capacity for `{0}`, which is not a registered handler")]
    UnknownHandlerCapacity(String),
    /// The lease TTL is below [`MIN_LEASE_TTL`].
    #[error("lease ttl {0:?} is too short (minimum 2s)")]
    LeaseTtlTooShort(Duration),
    /// Neither `.etcd(..)` nor `.coordinator(..)` was called, or no endpoint given.
    #[error("no coordination service: call .etcd(endpoints) or .coordinator(..)")]
    NoCoordinator,
    /// A handler's params schema is larger than
    /// [`MAX_PARAMS_SCHEMA_BYTES`](nightshift_protocol::keyspace::MAX_PARAMS_SCHEMA_BYTES):
    /// it would bloat the executor's registration record.
    #[error("params schema of handler `{handler}` is {bytes} bytes; at most {max} are published (split the params type, or drop the declaration)", max = keyspace::MAX_PARAMS_SCHEMA_BYTES)]
    ParamsSchemaTooLarge {
        /// Handler name.
        handler: String,
        /// Size of its schema as compact JSON.
        bytes: usize,
    },
    /// An id, handler name or the prefix cannot be used in the keyspace.
    #[error(transparent)]
    InvalidKey(#[from] KeyError),
}

/// Builds an [`Executor`]; see [`Executor::builder`].
pub struct ExecutorBuilder {
    etcd: EtcdSettings,
    coordinator: Option<Arc<dyn Coordinator>>,
    id: Option<ExecutorId>,
    prefix: String,
    capacity: Option<u32>,
    lease_ttl: Duration,
    drain_grace: Duration,
    labels: BTreeMap<String, String>,
    handlers: Vec<(String, Arc<dyn Job>)>,
    /// Params types declared with `handler_with_params` (over the job's own).
    declared_params: BTreeMap<String, ParamsSchema>,
    handler_capacity: Vec<(String, u32)>,
    linger: Duration,
    cancel_grace: Option<Duration>,
}

impl Executor {
    /// Starts configuring an executor.
    ///
    /// Defaults: id `{hostname}-{pid}`, capacity = number of CPUs, lease TTL
    /// 10 s, drain grace 30 s, prefix `/nightshift/`.
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder {
            etcd: EtcdSettings::default(),
            coordinator: None,
            id: None,
            prefix: keyspace::DEFAULT_PREFIX.to_owned(),
            capacity: None,
            lease_ttl: Duration::from_secs(10),
            drain_grace: Duration::from_secs(30),
            labels: BTreeMap::new(),
            handlers: Vec::new(),
            declared_params: BTreeMap::new(),
            handler_capacity: Vec::new(),
            linger: Duration::from_millis(25),
            cancel_grace: None,
        }
    }

    /// This executor's id.
    pub fn id(&self) -> &ExecutorId {
        &self.config.id
    }

    /// Counters of what this executor did, live while it runs.
    pub fn stats(&self) -> crate::StatsHandle {
        crate::StatsHandle(self.stats.clone())
    }
}

impl ExecutorBuilder {
    /// Connect to these etcd endpoints (`http://host:2379`, ...).
    pub fn etcd<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.etcd.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }

    /// Use an existing coordination backend instead of connecting to etcd
    /// (the in-process backend of `nightshift dev`, or a shared client).
    pub fn coordinator(mut self, coordinator: Arc<dyn Coordinator>) -> Self {
        self.coordinator = Some(coordinator);
        self
    }

    /// etcd user and password.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.etcd.credentials = Some((user.into(), password.into()));
        self
    }

    /// TLS files for etcd.
    pub fn tls(mut self, tls: TlsFiles) -> Self {
        self.etcd.tls = Some(tls);
        self
    }

    /// Deadline of each etcd request (default 2 s), retries on other etcd
    /// members included: how long a member that lost its raft leader can
    /// hold a renewal or a result batch before it is retried elsewhere or
    /// reported. Raise it only for a slow etcd.
    pub fn etcd_request_timeout(mut self, timeout: Duration) -> Self {
        self.etcd.request_timeout = Some(timeout);
        self
    }

    /// Executor id (default `{hostname}-{pid}`). Give a stable one when the
    /// process is managed (a pod name): it shows up in the console.
    pub fn id(mut self, id: impl Into<ExecutorId>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Adds a label, published in the executor's registration.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Most items run at once across all jobs (default: number of CPUs).
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Registers a handler whose params decode into `P`, and publishes
    /// `P`'s JSON Schema with the registration: `nightshift apply`,
    /// `nightshift validate --against` and the leader then refuse a job
    /// whose params would not decode. In the handler, read them with
    /// `ctx.params::<P>()`.
    ///
    /// ```
    /// use nightshift_executor::{job_fn, Executor, ItemContext, ItemOutcome, JobError, JsonSchema};
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize, JsonSchema)]
    /// #[schemars(crate = "nightshift_executor::schemars")]
    /// #[serde(deny_unknown_fields)] // a misspelt key is refused at apply
    /// struct AccrualParams {
    ///     rate_table: String,
    ///     #[serde(default)]
    ///     dry_run: bool,
    /// }
    ///
    /// let builder = Executor::builder().handler_with_params::<AccrualParams>(
    ///     "interest-accrual",
    ///     job_fn(|ctx: ItemContext| async move {
    ///         let params: AccrualParams = ctx.params()?;
    ///         let _ = (params.rate_table, params.dry_run);
    ///         Ok::<_, JobError>(ItemOutcome::Succeeded)
    ///     }),
    /// );
    /// # let _ = builder;
    /// ```
    pub fn handler_with_params<P: schemars::JsonSchema>(
        mut self,
        name: impl Into<String>,
        job: impl Job,
    ) -> Self {
        let name = name.into();
        self.declared_params
            .insert(name.clone(), ParamsSchema::of::<P>());
        self.handler(name, job)
    }

    /// Registers the handler that runs the items of jobs naming `name`.
    /// Its params are checked before runs only if the job declares a type
    /// ([`Job::params_schema`]; or use [`handler_with_params`](Self::handler_with_params)).
    pub fn handler(mut self, name: impl Into<String>, job: impl Job) -> Self {
        self.handlers.push((name.into(), Arc::new(job)));
        self
    }

    /// Registers a program handler: items of jobs naming `name` run
    /// `program` (see [`crate::program`]). The same as `.handler(name, program)`.
    #[cfg(target_os = "linux")]
    pub fn program(self, name: impl Into<String>, program: crate::program::ProgramJob) -> Self {
        self.handler(name, program)
    }

    /// Most items of handler `name` run at once (within [`Self::capacity`]):
    /// a slow handler (a partner that answers slowly) then cannot take every
    /// slot from the others. Published in the registration, so the
    /// scheduler weighs this executor by it for that handler's jobs.
    pub fn handler_capacity(mut self, name: impl Into<String>, limit: u32) -> Self {
        self.handler_capacity.push((name.into(), limit));
        self
    }

    /// TTL of the executor's lease (default 10 s, at least 2 s): how long
    /// after a crash its items wait before moving to another executor.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Key prefix in etcd (default `/nightshift/`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a shutdown waits for running items (default 30 s).
    pub fn drain_grace(mut self, grace: Duration) -> Self {
        self.drain_grace = grace;
        self
    }

    /// How long a cancelled item's handler may go on before the executor
    /// drops its future (default TTL/6). Whatever it is, a handler is never
    /// polled once the lease could expire unrenewed (see the crate docs,
    /// "Ownership").
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = Some(grace);
        self
    }

    /// How long a finished item's outcome may wait for others to share an
    /// etcd write (default 25 ms). Larger: fewer writes; smaller: fresher.
    pub fn batch_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Checks the configuration and makes the executor.
    pub fn build(self) -> Result<Executor, BuildError> {
        if self.handlers.is_empty() {
            return Err(BuildError::NoHandler);
        }
        let mut handlers = BTreeMap::new();
        let mut params_schemas = BTreeMap::new();
        for (name, job) in self.handlers {
            keyspace::validate_segment("handler name", &name)?;
            let declared = self.declared_params.get(&name).cloned();
            if let Some(schema) = declared.or_else(|| job.params_schema()) {
                if !schema.fits() {
                    return Err(BuildError::ParamsSchemaTooLarge {
                        bytes: schema.encoded_len(),
                        handler: name,
                    });
                }
                params_schemas.insert(HandlerName::new(name.clone()), schema.into_json());
            }
            if handlers
                .insert(HandlerName::new(name.clone()), job)
                .is_some()
            {
                return Err(BuildError::DuplicateHandler(name));
            }
        }
        let capacity = self.capacity.unwrap_or_else(default_capacity);
        if capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        let mut handler_capacity = BTreeMap::new();
        for (name, limit) in self.handler_capacity {
            let handler = HandlerName::new(name.clone());
            if !handlers.contains_key(&handler) {
                return Err(BuildError::UnknownHandlerCapacity(name));
            }
            if limit == 0 {
                return Err(BuildError::ZeroCapacity);
            }
            handler_capacity.insert(handler, limit);
        }
        if self.lease_ttl < MIN_LEASE_TTL {
            return Err(BuildError::LeaseTtlTooShort(self.lease_ttl));
        }
        let id = self.id.unwrap_or_else(default_id);
        keyspace::validate_segment("executor id", id.as_str())?;
        let prefix = keyspace::normalize_prefix(&self.prefix)?;
        let source = match self.coordinator {
            Some(c) => Source::Coordinator(c),
            None if !self.etcd.endpoints.is_empty() => Source::Etcd(self.etcd),
            None => return Err(BuildError::NoCoordinator),
        };
        let config = Config {
            id,
            prefix,
            capacity,
            lease_ttl: self.lease_ttl,
            drain_grace: self.drain_grace,
            labels: self.labels,
            handlers,
            handler_capacity,
            params_schemas,
            linger: self.linger,
            progress_interval: Duration::from_secs(1),
            cancel_grace: self.cancel_grace,
        };
        Ok(Executor {
            config: Arc::new(config),
            source,
            stats: Arc::default(),
        })
    }
}

fn default_capacity() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

/// `{hostname}-{pid}`, with characters a key segment cannot hold replaced.
fn default_id() -> ExecutorId {
    let raw = format!("{}-{}", crate::host::hostname(), std::process::id());
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(keyspace::MAX_SEGMENT_LEN)
        .collect();
    ExecutorId::new(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::Noop;

    fn base() -> ExecutorBuilder {
        Executor::builder()
            .etcd(["http://127.0.0.1:2379"])
            .handler("noop", Noop)
    }

    #[test]
    fn rejects_half_configured_executors() {
        let err = |b: ExecutorBuilder| b.build().err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            err(Executor::builder().etcd(["http://x:1"])),
            BuildError::NoHandler.to_string()
        );
        assert_eq!(err(base().capacity(0)), "capacity must be at least 1");
        assert!(err(base().lease_ttl(Duration::from_secs(1))).contains("too short"));
        assert!(err(base().id("a/b")).starts_with("invalid executor id `a/b`"));
        assert!(err(base().handler("noop", Noop)).contains("registered twice"));
        assert!(err(Executor::builder().handler("noop", Noop)).contains("no coordination service"));
        assert!(err(base().prefix("")).contains("invalid key prefix"));
        assert!(err(base().handler_capacity("sleep", 2)).contains("not a registered handler"));
        assert_eq!(
            err(base().handler_capacity("noop", 0)),
            "capacity must be at least 1"
        );
        let limited = base().handler_capacity("noop", 2).build().unwrap();
        assert_eq!(limited.config.handler_capacity.len(), 1);
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Declared {
        rate_table: String,
    }

    /// A job whose declared params schema is too large to publish.
    struct Bloated;

    #[async_trait::async_trait]
    impl Job for Bloated {
        async fn run(
            &self,
            _ctx: crate::ItemContext,
        ) -> Result<crate::ItemOutcome, crate::JobError> {
            Ok(crate::ItemOutcome::Succeeded)
        }

        fn params_schema(&self) -> Option<ParamsSchema> {
            let big = "x".repeat(keyspace::MAX_PARAMS_SCHEMA_BYTES);
            Some(ParamsSchema::from_json(
                serde_json::json!({ "enum": [big] }),
            ))
        }
    }

    #[test]
    fn declared_params_schemas_are_published_per_handler() {
        let executor = base()
            .handler_with_params::<Declared>("accrue", Noop)
            .handler("sleep", crate::builtin::Sleep)
            .build()
            .unwrap();
        let schemas = &executor.config.params_schemas;
        let names: Vec<&str> = schemas.keys().map(HandlerName::as_str).collect();
        // `noop` declares nothing; `sleep` declares through `Job::params_schema`.
        assert_eq!(names, ["accrue", "sleep"]);
        assert_eq!(
            schemas[&HandlerName::new("accrue")]["required"],
            serde_json::json!(["rate_table"])
        );
        assert_eq!(
            schemas[&HandlerName::new("sleep")]["additionalProperties"],
            serde_json::json!(false)
        );
        let err = base().handler("big", Bloated).build().err();
        assert!(
            matches!(&err, Some(BuildError::ParamsSchemaTooLarge { handler, .. }) if handler == "big"),
            "{err:?}"
        );
    }

    #[test]
    fn defaults_are_usable() {
        let executor = base().build().unwrap();
        keyspace::validate_segment("executor id", executor.id().as_str()).unwrap();
        assert!(executor.config.capacity >= 1);
        assert_eq!(executor.config.lease_ttl, Duration::from_secs(10));
        assert_eq!(executor.config.drain_grace, Duration::from_secs(30));
        assert_eq!(executor.config.prefix, "/nightshift/");
    }

    #[test]
    fn the_etcd_request_deadline_is_kept_for_the_connection() {
        let builder = Executor::builder().etcd(["http://e:2379"]);
        assert_eq!(builder.etcd.request_timeout, None, "the client's default");
        let builder = builder.etcd_request_timeout(Duration::from_secs(4));
        assert_eq!(builder.etcd.request_timeout, Some(Duration::from_secs(4)));
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let settings = EtcdSettings {
            credentials: Some(("root".into(), "hunter2".into())),
            ..Default::default()
        };
        let shown = format!("{settings:?}");
        assert!(
            shown.contains("root") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}

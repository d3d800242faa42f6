//! Coordinator decorators: a coordinator that wraps another and changes a
//! few of its operations (fails a renewal, loses a txn's answer, records
//! what was read, snapshots after a write) while passing every other one
//! through.
//!
//! Why this shape: a decorator written as a plain `impl Coordinator` must
//! forward every method of the trait by hand, so each one repeats the whole
//! trait and each method added to [`Coordinator`] means editing every
//! decorator. Here a decorator implements [`Intercept`], whose methods all
//! default to forwarding to [`Intercept::inner`], and overrides only the
//! ones it changes; [`Decorated`] turns it into a [`Coordinator`]. A new
//! `Coordinator` method needs one forwarding default in `Intercept` and one
//! line in `Decorated`'s impl (which the compiler asks for), nothing in the
//! decorators.
//!
//! This module must not hold a decorator itself: the ones Nightshift has
//! are test instruments or belong to their caller (`nightshift dev`'s
//! snapshots).

use crate::api::{
    CoordError, Coordinator, KeyValue, LeaseId, PrefixPage, Revision, Txn, TxnResponse, WatchStream,
};
use async_trait::async_trait;
use std::ops::Deref;
use std::time::Duration;

/// The operations of a [`Coordinator`] that a decorator may change, each
/// forwarding to [`inner`](Self::inner) unless overridden. Wrap the
/// implementation in [`Decorated`] to use it as a `Coordinator`.
///
/// [`Coordinator::get_prefix_paged`] is not here: [`Decorated`] keeps the
/// trait's provided read, built from
/// [`get_prefix_page`](Self::get_prefix_page), so a decorator that changes
/// page reads sees every page of a paged read too.
///
/// # Example
///
/// A coordinator that counts transactions and passes everything else
/// through:
///
/// ```
/// use nightshift_coord::memory::MemoryCoordinator;
/// use nightshift_coord::{CoordError, Coordinator, Decorated, Intercept, Txn, TxnResponse};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// #[derive(Default)]
/// struct CountTxns {
///     inner: MemoryCoordinator,
///     txns: AtomicU64,
/// }
///
/// #[async_trait::async_trait]
/// impl Intercept for CountTxns {
///     fn inner(&self) -> &dyn Coordinator {
///         &self.inner
///     }
///     async fn txn(&self, txn: Txn) -> Result<TxnResponse, CoordError> {
///         self.txns.fetch_add(1, Ordering::SeqCst);
///         self.inner.txn(txn).await
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let coord = Decorated::new(CountTxns::default());
/// coord.put("/k", b"v".to_vec(), None).await?;
/// coord.txn(Txn::default()).await?;
/// // Fields of the decorator are reached through `Decorated`.
/// assert_eq!(coord.txns.load(Ordering::SeqCst), 1);
/// assert_eq!(coord.get("/k").await?.map(|kv| kv.value), Some(b"v".to_vec()));
/// # Ok::<(), CoordError>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait Intercept: Send + Sync + 'static {
    /// The coordinator every operation not overridden goes to.
    fn inner(&self) -> &dyn Coordinator;

    /// [`Coordinator::grant_lease`].
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, CoordError> {
        self.inner().grant_lease(ttl).await
    }
    /// [`Coordinator::keep_alive`].
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, CoordError> {
        self.inner().keep_alive(lease).await
    }
    /// [`Coordinator::revoke_lease`].
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), CoordError> {
        self.inner().revoke_lease(lease).await
    }
    /// [`Coordinator::lease_time_to_live`].
    async fn lease_time_to_live(&self, lease: LeaseId) -> Result<Option<Duration>, CoordError> {
        self.inner().lease_time_to_live(lease).await
    }
    /// [`Coordinator::put`].
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, CoordError> {
        self.inner().put(key, value, lease).await
    }
    /// [`Coordinator::get`].
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, CoordError> {
        self.inner().get(key).await
    }
    /// [`Coordinator::get_prefix`].
    async fn get_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), CoordError> {
        self.inner().get_prefix(prefix).await
    }
    /// [`Coordinator::get_prefix_page`].
    async fn get_prefix_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<PrefixPage, CoordError> {
        self.inner()
            .get_prefix_page(prefix, after, limit, revision)
            .await
    }
    /// [`Coordinator::delete`].
    async fn delete(&self, key: &str) -> Result<i64, CoordError> {
        self.inner().delete(key).await
    }
    /// [`Coordinator::delete_prefix`].
    async fn delete_prefix(&self, prefix: &str) -> Result<i64, CoordError> {
        self.inner().delete_prefix(prefix).await
    }
    /// [`Coordinator::txn`].
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, CoordError> {
        self.inner().txn(txn).await
    }
    /// [`Coordinator::current_revision`].
    async fn current_revision(&self) -> Result<Revision, CoordError> {
        self.inner().current_revision().await
    }
    /// [`Coordinator::watch_prefix`].
    async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: Option<Revision>,
    ) -> Result<WatchStream, CoordError> {
        self.inner().watch_prefix(prefix, start_revision).await
    }
}

/// An [`Intercept`] implementation used as a [`Coordinator`]. It derefs to
/// the decorator, so the decorator's own fields and methods (the switches
/// a test flips, the counters it reads) stay reachable.
///
/// A wrapper rather than a blanket `impl<H: Intercept> Coordinator for H`:
/// with the blanket impl, a type would have both traits' `put`, `get`, …
/// and every call on it with both traits in scope would be ambiguous.
#[derive(Debug, Default)]
pub struct Decorated<H>(H);

impl<H: Intercept> Decorated<H> {
    /// Wraps the decorator `hooks`.
    pub fn new(hooks: H) -> Self {
        Decorated(hooks)
    }
}

impl<H> Deref for Decorated<H> {
    type Target = H;

    fn deref(&self) -> &H {
        &self.0
    }
}

// Every line calls the `Intercept` method by path: `H` may have inherent
// methods of the same names.
#[async_trait]
impl<H: Intercept> Coordinator for Decorated<H> {
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, CoordError> {
        Intercept::grant_lease(&self.0, ttl).await
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, CoordError> {
        Intercept::keep_alive(&self.0, lease).await
    }
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), CoordError> {
        Intercept::revoke_lease(&self.0, lease).await
    }
    async fn lease_time_to_live(&self, lease: LeaseId) -> Result<Option<Duration>, CoordError> {
        Intercept::lease_time_to_live(&self.0, lease).await
    }
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, CoordError> {
        Intercept::put(&self.0, key, value, lease).await
    }
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, CoordError> {
        Intercept::get(&self.0, key).await
    }
    async fn get_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), CoordError> {
        Intercept::get_prefix(&self.0, prefix).await
    }
    async fn get_prefix_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<PrefixPage, CoordError> {
        Intercept::get_prefix_page(&self.0, prefix, after, limit, revision).await
    }
    async fn delete(&self, key: &str) -> Result<i64, CoordError> {
        Intercept::delete(&self.0, key).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<i64, CoordError> {
        Intercept::delete_prefix(&self.0, prefix).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, CoordError> {
        Intercept::txn(&self.0, txn).await
    }
    async fn current_revision(&self) -> Result<Revision, CoordError> {
        Intercept::current_revision(&self.0).await
    }
    async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: Option<Revision>,
    ) -> Result<WatchStream, CoordError> {
        Intercept::watch_prefix(&self.0, prefix, start_revision).await
    }
}

#[cfg(test)]
mod tests {
    use super::{Decorated, Intercept};
    use crate::memory::MemoryCoordinator;
    use crate::{CoordError, Coordinator, PrefixPage, Revision};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts page reads, changes nothing.
    #[derive(Default)]
    struct CountPages {
        inner: MemoryCoordinator,
        pages: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Intercept for CountPages {
        fn inner(&self) -> &dyn Coordinator {
            &self.inner
        }
        async fn get_prefix_page(
            &self,
            prefix: &str,
            after: Option<&str>,
            limit: usize,
            revision: Option<Revision>,
        ) -> Result<PrefixPage, CoordError> {
            self.pages.fetch_add(1, Ordering::SeqCst);
            self.inner
                .get_prefix_page(prefix, after, limit, revision)
                .await
        }
    }

    #[tokio::test]
    async fn forwards_what_it_does_not_change_and_a_paged_read_goes_through_the_pages() {
        let coord = Decorated::new(CountPages::default());
        for i in 0..5 {
            coord.put(&format!("/p/{i}"), vec![i], None).await.unwrap();
        }
        assert_eq!(coord.get("/p/3").await.unwrap().unwrap().value, vec![3]);
        let (kvs, _) = coord.get_prefix_paged("/p/", 2).await.unwrap();
        assert_eq!(kvs.len(), 5);
        assert_eq!(coord.pages.load(Ordering::SeqCst), 3, "pages of 2, 2, 1");
        assert_eq!(coord.delete_prefix("/p/").await.unwrap(), 5);
        assert_eq!(coord.inner.get("/p/0").await.unwrap(), None);
    }
}

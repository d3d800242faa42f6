//! Paged prefix reads: every page at the first page's revision, so a
//! prefix of any size is read as one consistent snapshot.

use crate::backend::Backend;
use anyhow::ensure;
use async_trait::async_trait;
use nightshift_coord::{
    CoordError, Coordinator, Decorated, Intercept, KeyValue, PrefixPage, Revision,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

/// 24 keys under `/pg/` (the last one `/pg/\x7f`, near the range end),
/// and neighbours that sort right before and after the prefix (`/pf…`,
/// `/pg` itself, `/pg.`, `/pg0`, `/ph`) so a range end off by one shows.
async fn fill(c: &dyn Coordinator) -> anyhow::Result<Vec<String>> {
    for key in ["/pf/z", "/pg", "/pg0", "/ph/a", "/pg."] {
        c.put(key, b"outside".to_vec(), None).await?;
    }
    c.put("/pg/\u{7f}", b"last".to_vec(), None).await?;
    let mut keys = Vec::new();
    for i in 0..23 {
        let key = format!("/pg/{i:02}");
        c.put(&key, key.as_bytes().to_vec(), None).await?;
        keys.push(key);
    }
    keys.push("/pg/\u{7f}".to_owned());
    keys.sort();
    Ok(keys)
}

fn names(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter().map(|kv| kv.key.clone()).collect()
}

pub async fn paged_read_of_a_prefix_larger_than_a_page(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    let keys = fill(c.as_ref()).await?;
    let (whole, rev) = c.get_prefix("/pg/").await?;
    ensure!(names(&whole) == keys, "unpaged listing {:?}", names(&whole));

    // Page by page: 7 + 7 + 7 + 3, `more` on all but the last.
    let first = c.get_prefix_page("/pg/", None, 7, None).await?;
    ensure!(first.revision == rev, "first page at {}", first.revision);
    ensure!(first.more && names(&first.kvs) == keys[..7], "{first:?}");
    let mut seen = first.kvs;
    let mut pages = 1;
    loop {
        let after = seen.last().map(|kv| kv.key.clone());
        let page = c
            .get_prefix_page("/pg/", after.as_deref(), 7, Some(rev))
            .await?;
        ensure!(page.revision == rev && page.kvs.len() <= 7, "{page:?}");
        pages += 1;
        seen.extend(page.kvs);
        if !page.more {
            break;
        }
    }
    ensure!(pages == 4, "{pages} pages for 24 keys of 7");
    ensure!(
        seen == whole,
        "pages {:?} differ from the listing",
        names(&seen)
    );

    // The provided whole-prefix read, at several page sizes.
    for page_keys in [1, 5, 24, 1000] {
        let (paged, at) = c.get_prefix_paged("/pg/", page_keys).await?;
        ensure!(at == rev, "paged read at {at}, store at {rev}");
        ensure!(paged == whole, "page size {page_keys}: {:?}", names(&paged));
    }
    // An exactly full last page says no more; an empty prefix is one page.
    let full = c.get_prefix_page("/pg/", None, 24, None).await?;
    ensure!(!full.more && full.kvs.len() == 24, "{full:?}");
    let (none, _) = c.get_prefix_paged("/nothing/", 3).await?;
    ensure!(none.is_empty());
    Ok(())
}

pub async fn write_between_pages_does_not_show(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    fill(c.as_ref()).await?;
    let (before, rev) = c.get_prefix("/pg/").await?;
    let paused = Paused::new(c.clone());
    let (read, changed) = tokio::join!(paused.coord.get_prefix_paged("/pg/", 5), async {
        let resume = paused.wait().await?;
        // A key of a later page changed, one deleted, one created, one
        // created before the cursor.
        c.put("/pg/20", b"changed".to_vec(), None).await?;
        c.delete("/pg/21").await?;
        c.put("/pg/12a", b"new".to_vec(), None).await?;
        c.put("/pg/00a", b"new".to_vec(), None).await?;
        let _ = resume.send(());
        anyhow::Ok(())
    });
    changed?;
    let (kvs, at) = read?;
    ensure!(at == rev, "read at {at}, pinned at {rev}");
    ensure!(
        kvs == before,
        "a write between pages shows: {:?}",
        names(&kvs)
    );
    let (after, _) = c.get_prefix_paged("/pg/", 5).await?;
    ensure!(after.len() == before.len() + 1, "{:?}", names(&after));
    Ok(())
}

pub async fn page_at_a_compacted_revision_is_compacted(b: &dyn Backend) -> anyhow::Result<()> {
    let c = b.coord();
    fill(c.as_ref()).await?;
    let (_, old) = c.get_prefix("/pg/").await?;
    c.put("/pg/05", b"later".to_vec(), None).await?;
    let now = c.current_revision().await?;
    b.compact(now).await?;
    match c.get_prefix_page("/pg/", None, 5, Some(old)).await {
        Err(CoordError::Compacted { .. }) => {}
        other => anyhow::bail!("read at compacted revision {old}: {other:?}"),
    }
    let page = c.get_prefix_page("/pg/", None, 30, Some(now)).await?;
    ensure!(
        page.kvs.iter().any(|kv| kv.value == b"later"),
        "read at the compaction revision"
    );
    Ok(())
}

pub async fn paged_read_starts_over_when_compacted_between_pages(
    b: &dyn Backend,
) -> anyhow::Result<()> {
    let c = b.coord();
    fill(c.as_ref()).await?;
    let paused = Paused::new(c.clone());
    let (read, changed) = tokio::join!(paused.coord.get_prefix_paged("/pg/", 5), async {
        let resume = paused.wait().await?;
        c.put("/pg/20", b"changed".to_vec(), None).await?;
        let now = c.current_revision().await?;
        b.compact(now).await?;
        let _ = resume.send(());
        anyhow::Ok(now)
    });
    let now = changed?;
    let (kvs, at) = read?;
    ensure!(at >= now, "read at {at}, compacted at {now}");
    let (fresh, _) = c.get_prefix("/pg/").await?;
    ensure!(kvs == fresh, "not a fresh snapshot: {:?}", names(&kvs));
    ensure!(kvs.iter().any(|kv| kv.value == b"changed"));
    Ok(())
}

/// A coordinator that stops before the first page pinned to a revision
/// (a read's second page) until the test says go: the test writes or
/// compacts in between. Pauses once.
struct Paused {
    coord: Arc<dyn Coordinator>,
    reached: Mutex<mpsc::Receiver<oneshot::Sender<()>>>,
}

struct Pausing {
    inner: Arc<dyn Coordinator>,
    reached: Mutex<Option<mpsc::Sender<oneshot::Sender<()>>>>,
}

impl Paused {
    fn new(inner: Arc<dyn Coordinator>) -> Self {
        let (tx, rx) = mpsc::channel(1);
        Paused {
            coord: Arc::new(Decorated::new(Pausing {
                inner,
                reached: Mutex::new(Some(tx)),
            })),
            reached: Mutex::new(rx),
        }
    }

    /// Waits until the read is between pages; send on the answer to resume.
    async fn wait(&self) -> anyhow::Result<oneshot::Sender<()>> {
        let mut reached = self.reached.lock().await;
        tokio::time::timeout(crate::support::SOON, reached.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the read never reached a second page"))
    }
}

#[async_trait]
impl Intercept for Pausing {
    fn inner(&self) -> &dyn Coordinator {
        self.inner.as_ref()
    }
    async fn get_prefix_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<PrefixPage, CoordError> {
        if revision.is_some() {
            let reached = self.reached.lock().await.take();
            if let Some(reached) = reached {
                let (resume, resumed) = oneshot::channel();
                if reached.send(resume).await.is_ok() {
                    let _ = resumed.await;
                }
            }
        }
        self.inner
            .get_prefix_page(prefix, after, limit, revision)
            .await
    }
}

pub async fn keys_only_read_has_every_key_and_revision_but_no_value(
    b: &dyn Backend,
) -> anyhow::Result<()> {
    let c = b.coord();
    let keys = fill(c.as_ref()).await?;
    let lease = c.grant_lease(Duration::from_secs(30)).await?;
    c.put("/pg/leased", b"v".to_vec(), Some(lease)).await?;
    let (whole, rev) = c.get_prefix("/pg/").await?;
    let (bare, at) = c.get_prefix_keys("/pg/").await?;
    ensure!(at == rev, "keys read at {at}, store at {rev}");
    let mut expected = keys;
    expected.push("/pg/leased".to_owned());
    expected.sort();
    ensure!(names(&bare) == expected, "{:?}", names(&bare));
    for (k, full) in bare.iter().zip(&whole) {
        ensure!(k.value.is_empty(), "{} has a value", k.key);
        ensure!(
            (k.mod_revision, k.create_revision, k.version, k.lease)
                == (
                    full.mod_revision,
                    full.create_revision,
                    full.version,
                    full.lease
                ),
            "{k:?} vs {full:?}"
        );
    }
    ensure!(bare.iter().any(|k| k.lease == Some(lease)));
    let (none, _) = c.get_prefix_keys("/nothing/").await?;
    ensure!(none.is_empty());
    Ok(())
}

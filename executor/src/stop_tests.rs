use super::*;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

const RULES: StopRules = StopRules {
    margin: Duration::from_secs(1),
    grace: Duration::from_secs(1),
};

fn alive(until: Instant) -> LeaseStatus {
    LeaseStatus::Alive {
        confirmed_until: until,
    }
}

/// A stubborn handler: counts a step every 100 ms, ignoring cancellation.
async fn stubborn(steps: Arc<AtomicU32>) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        steps.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_stubborn_handler_is_dropped_at_the_lease_deadline_less_the_margin() {
    let t0 = Instant::now();
    let (_tx, rx) = watch::channel(alive(t0 + Duration::from_secs(6)));
    let clock = Arc::new(StopClock::leased(CancellationToken::new(), rx, RULES));
    let steps = Arc::new(AtomicU32::new(0));
    let ended = guarded(stubborn(steps.clone()), clock).await;
    assert_eq!(ended, Err(StopReason::LeaseDeadline));
    assert_eq!(Instant::now() - t0, Duration::from_secs(5));
    let done = steps.load(Ordering::SeqCst);
    assert!((49..=50).contains(&done), "{done}");
    // Dropped, not merely left unpolled: nothing counts any more.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(steps.load(Ordering::SeqCst), done);
}

#[tokio::test(start_paused = true)]
async fn renewals_move_the_deadline_until_the_item_is_cancelled() {
    let t0 = Instant::now();
    let (tx, rx) = watch::channel(alive(t0 + Duration::from_secs(6)));
    let cancel = CancellationToken::new();
    let clock = Arc::new(StopClock::leased(cancel.clone(), rx, RULES));
    let renewer = tokio::spawn(async move {
        for k in 1..=5u64 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            tx.send_replace(alive(t0 + Duration::from_secs(6 + 2 * k)));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        cancel.cancel();
        tx
    });
    let ended = guarded(stubborn(Arc::new(AtomicU32::new(0))), clock).await;
    // Renewed up to 16 s, cancelled at 11 s: stopped at the end of the grace.
    assert_eq!(ended, Err(StopReason::Grace));
    assert_eq!(Instant::now() - t0, Duration::from_secs(12));
    drop(renewer.await);
}

#[tokio::test(start_paused = true)]
async fn a_lost_lease_stops_the_handler_at_once() {
    let t0 = Instant::now();
    let (tx, rx) = watch::channel(alive(t0 + Duration::from_secs(60)));
    let clock = Arc::new(StopClock::leased(CancellationToken::new(), rx, RULES));
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        tx.send_replace(LeaseStatus::Lost);
        std::future::pending::<()>().await;
    });
    let ended = guarded(stubborn(Arc::new(AtomicU32::new(0))), clock).await;
    assert_eq!(ended, Err(StopReason::LeaseLost));
    assert_eq!(Instant::now() - t0, Duration::from_millis(1_500));
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_returns_in_time_keeps_its_result() {
    let t0 = Instant::now();
    let (_tx, rx) = watch::channel(alive(t0 + Duration::from_secs(6)));
    let cancel = CancellationToken::new();
    cancel.cancel();
    let clock = Arc::new(StopClock::leased(cancel, rx, RULES));
    let ended = guarded(
        async {
            tokio::time::sleep(Duration::from_millis(900)).await;
            7
        },
        clock,
    )
    .await;
    assert_eq!(ended, Ok(7));
}

/// A process resumed after SIGSTOP finds its handler's wake-up and the
/// deadline both due: the handler must not be polled even once.
#[tokio::test]
async fn a_past_deadline_is_checked_before_the_first_poll() {
    let now = Instant::now();
    let (_tx, rx) = watch::channel(alive(now + Duration::from_millis(500)));
    let clock = Arc::new(StopClock::leased(CancellationToken::new(), rx, RULES));
    let polled = Arc::new(AtomicBool::new(false));
    let p = polled.clone();
    let handler = std::future::poll_fn(move |_| {
        p.store(true, Ordering::SeqCst);
        Poll::Ready(())
    });
    assert_eq!(
        guarded(handler, clock).await,
        Err(StopReason::LeaseDeadline)
    );
    assert!(!polled.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn blocking_work_past_its_deadline_is_an_overrun_and_finished_work_is_not() {
    let t0 = Instant::now();
    let (_tx, rx) = watch::channel(alive(t0 + Duration::from_secs(60)));
    let flag = Arc::new(AtomicBool::new(false));
    let cancel = CancellationToken::new();
    let clock = Arc::new(
        StopClock::leased(cancel.clone(), rx, RULES).with_overrun(Overrun::Flag(flag.clone())),
    );
    // The item's handler, whose wrapper sees the cancellation as it happens.
    let item = tokio::spawn(guarded(
        stubborn(Arc::new(AtomicU32::new(0))),
        clock.clone(),
    ));
    let (finished_tx, finished) = oneshot::channel();
    let (stuck_tx, stuck) = oneshot::channel::<()>();
    clock.watch_blocking(finished, "finished work".into());
    drop(finished_tx);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cancel.cancel();
    tokio::time::sleep(Duration::from_millis(900)).await;
    // Started while cancelled: bounded by the same grace, from the cancel.
    clock.watch_blocking(stuck, "stuck work".into());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !flag.load(Ordering::SeqCst),
        "the finished work is no overrun"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(flag.load(Ordering::SeqCst), "still running after the grace");
    assert_eq!(item.await.ok(), Some(Err(StopReason::Grace)));
    drop(stuck_tx);
}

#[tokio::test(start_paused = true)]
async fn an_ended_item_bounds_what_it_left_behind() {
    let flag = Arc::new(AtomicBool::new(false));
    let clock = Arc::new(
        StopClock::unleased(CancellationToken::new(), Duration::from_secs(1))
            .with_overrun(Overrun::Flag(flag.clone())),
    );
    let (_left_tx, left) = oneshot::channel::<()>();
    clock.watch_blocking(left, "left-behind work".into());
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!flag.load(Ordering::SeqCst), "no bound while the item runs");
    clock.item_ended();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(flag.load(Ordering::SeqCst));
}

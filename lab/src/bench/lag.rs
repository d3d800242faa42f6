//! How late this process's async runtime runs a task that asked to wake at
//! a given instant — the delay every timer-driven task of the in-process
//! executors (lease renewals first) suffers on top of etcd's answer. A
//! probe task sleeps [`TICK`] at a time and records by how much each wake-up
//! overshot; the bench reports the p99 and the maximum.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often the probe wakes.
const TICK: Duration = Duration::from_millis(20);
/// Samples kept at most (over an hour of 20 ms ticks).
const MAX_SAMPLES: usize = 200_000;

/// A running probe; [`finish`](Self::finish) stops it and summarises.
pub struct LagProbe {
    samples: Arc<Mutex<Vec<u64>>>,
    task: JoinHandle<()>,
}

/// Wake-up lateness of the runtime over the probe's life.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Lag {
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

impl LagProbe {
    /// Starts probing on the current runtime.
    pub fn start() -> LagProbe {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let out = samples.clone();
        let task = tokio::spawn(async move {
            loop {
                let due = Instant::now() + TICK;
                tokio::time::sleep_until(due).await;
                let late = Instant::now().saturating_duration_since(due);
                let late = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
                // A poisoned lock only means a panic elsewhere; the samples
                // are still numbers.
                let mut s = out.lock().unwrap_or_else(|p| p.into_inner());
                if s.len() < MAX_SAMPLES {
                    s.push(late);
                }
            }
        });
        LagProbe { samples, task }
    }

    /// Stops the probe; the lateness it saw.
    pub fn finish(self) -> Lag {
        self.task.abort();
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        summarise(&samples)
    }
}

/// p99 and max of `micros`, in ms (zero without samples).
fn summarise(micros: &[u64]) -> Lag {
    if micros.is_empty() {
        return Lag::default();
    }
    let mut sorted = micros.to_vec();
    sorted.sort_unstable();
    let rank = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
    let ms = |us: u64| us as f64 / 1000.0;
    Lag {
        p99_ms: ms(sorted[rank]),
        max_ms: ms(sorted[sorted.len() - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_and_max_of_the_samples() {
        let mut us: Vec<u64> = (1..=100).map(|n| n * 1000).collect();
        us.reverse();
        assert_eq!(
            summarise(&us),
            Lag {
                p99_ms: 99.0,
                max_ms: 100.0
            }
        );
        assert_eq!(summarise(&[]), Lag::default());
    }
}

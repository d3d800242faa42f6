//! "Slower than usual": the pure rule lives in `nightshift_core::slow`
//! (the console draws the same median and threshold on the DAG page);
//! re-exported here so the leader keeps calling `crate::slow::…`.

pub use nightshift_core::slow::{is_slow, slow_after_ms, BASELINE_RUNS, MIN_BASELINE_RUNS};

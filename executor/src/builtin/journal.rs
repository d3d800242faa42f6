//! Reading back the journals of [`super::Sleep::journaling_into`]: one line
//! per step, `run job item attempt executor step unix_ms`, appended by every
//! executor that ran the item. The real-process tests and `nightshift chaos`
//! read them to check what the attempt history alone cannot show: that two
//! owners of one item never *ran* at the same time.

use std::collections::BTreeMap;
use std::path::Path;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalStep {
    /// Run id.
    pub run: String,
    /// Job name.
    pub job: String,
    /// Item index.
    pub item: u32,
    /// Attempt number of the owner that took the step.
    pub attempt: u32,
    /// Executor that took the step.
    pub executor: String,
    /// Step number, from 1.
    pub step: u32,
    /// Wall-clock time the step ended, in Unix milliseconds.
    pub at_ms: i64,
}

impl JournalStep {
    /// Who took the step: an owner is one attempt on one executor.
    pub fn owner(&self) -> (u32, &str) {
        (self.attempt, &self.executor)
    }

    fn parse(line: &str) -> Option<JournalStep> {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 7 {
            return None;
        }
        Some(JournalStep {
            run: f[0].to_owned(),
            job: f[1].to_owned(),
            item: f[2].parse().ok()?,
            attempt: f[3].parse().ok()?,
            executor: f[4].to_owned(),
            step: f[5].parse().ok()?,
            at_ms: f[6].parse().ok()?,
        })
    }
}

/// Every well-formed line of a journal's text. A malformed line (a process
/// killed in the middle of a write cannot make one: each line is one
/// `write`) is skipped.
pub fn parse(text: &str) -> Vec<JournalStep> {
    text.lines().filter_map(JournalStep::parse).collect()
}

/// The steps journaled in the file at `path`; none when it does not exist
/// (no step was taken yet).
pub fn read(path: &Path) -> std::io::Result<Vec<JournalStep>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// `(run, job, item)`: the key of an item's steps.
type ItemKey<'a> = (&'a str, &'a str, u32);

/// `(attempt, executor)`: who took a step.
type Owner<'a> = (u32, &'a str);

/// An owner with the times of its first and last steps.
type Span<'a> = (Owner<'a>, i64, i64);

/// Each item's owners with the time span of their steps, first owner first.
fn spans(steps: &[JournalStep]) -> BTreeMap<ItemKey<'_>, Vec<Span<'_>>> {
    let mut by_item: BTreeMap<ItemKey<'_>, BTreeMap<Owner<'_>, (i64, i64)>> = BTreeMap::new();
    for s in steps {
        let span = by_item
            .entry((s.run.as_str(), s.job.as_str(), s.item))
            .or_default()
            .entry(s.owner())
            .or_insert((s.at_ms, s.at_ms));
        span.0 = span.0.min(s.at_ms);
        span.1 = span.1.max(s.at_ms);
    }
    by_item
        .into_iter()
        .map(|(item, owners)| {
            let mut list: Vec<_> = owners
                .into_iter()
                .map(|(owner, (first, last))| (owner, first, last))
                .collect();
            list.sort_by_key(|&(owner, first, _)| (first, owner));
            (item, list)
        })
        .collect()
}

/// Steps of two different owners of one item that interleave in time: one
/// owner stepped after another owner's first step and before its last.
/// Each violation names the item, both owners and their spans; empty when
/// every item's owners ran one after another.
pub fn interleavings(steps: &[JournalStep]) -> Vec<String> {
    let mut out = Vec::new();
    for ((run, job, item), owners) in spans(steps) {
        for pair in owners.windows(2) {
            let ((a_attempt, a_exec), a_first, a_last) = pair[0];
            let ((b_attempt, b_exec), b_first, b_last) = pair[1];
            // Sorted by first step: b started after a; a must be done by then.
            if b_first <= a_last {
                out.push(format!(
                    "run {run} job {job} item {item}: attempt {a_attempt} on {a_exec} stepped \
                     {a_first}..{a_last} ms, attempt {b_attempt} on {b_exec} stepped {b_first}..{b_last} ms"
                ));
            }
        }
    }
    out
}

/// Items whose steps were taken by more than one owner (they moved while
/// running, or were retried after some steps).
pub fn items_with_several_owners(steps: &[JournalStep]) -> usize {
    spans(steps).values().filter(|o| o.len() > 1).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(item: u32, attempt: u32, executor: &str, step: u32, at_ms: i64) -> String {
        format!("r1 stubborn {item} {attempt} {executor} {step} {at_ms}\n")
    }

    #[test]
    fn lines_are_parsed_and_torn_ones_skipped() {
        let text = format!(
            "{}r1 stubborn 0 1\n{}",
            line(0, 1, "e1", 1, 100),
            line(0, 1, "e1", 2, 200)
        );
        let steps = parse(&text);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1].owner(), (1, "e1"));
        assert_eq!((steps[1].step, steps[1].at_ms), (2, 200));
        assert!(read(Path::new("/nonexistent/journal")).unwrap().is_empty());
    }

    #[test]
    fn owners_one_after_another_do_not_interleave() {
        let text = [
            line(0, 1, "e1", 1, 100),
            line(0, 1, "e1", 2, 200),
            line(0, 2, "e2", 1, 300),
            line(1, 1, "e2", 1, 150),
            line(0, 2, "e2", 2, 400),
        ]
        .concat();
        let steps = parse(&text);
        assert!(interleavings(&steps).is_empty());
        assert_eq!(items_with_several_owners(&steps), 1);
    }

    #[test]
    fn a_late_step_of_the_old_owner_is_an_interleaving() {
        let text = [
            line(0, 1, "e1", 1, 100),
            line(0, 2, "e2", 1, 300),
            line(0, 1, "e1", 2, 350),
            line(0, 2, "e2", 2, 400),
        ]
        .concat();
        let v = interleavings(&parse(&text));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("on e1") && v[0].contains("on e2"), "{v:?}");
    }

    proptest! {
        /// Owners that each step inside their own time slot never
        /// interleave; moving one step of an owner into the next owner's
        /// slot always does.
        #[test]
        fn interleaving_is_found_exactly_when_slots_overlap(
            owners in prop::collection::vec(1usize..5, 2..5),
            intrude in any::<prop::sample::Index>(),
        ) {
            let mut steps = Vec::new();
            for (o, &n) in owners.iter().enumerate() {
                let base = 1_000 * i64::try_from(o).unwrap();
                for k in 0..n {
                    let at = base + 10 * i64::try_from(k).unwrap();
                    steps.extend(parse(&line(0, u32::try_from(o).unwrap() + 1, &format!("e{o}"), 1, at)));
                }
            }
            prop_assert!(interleavings(&steps).is_empty());
            // A step of owner o taken late, inside owner o+1's slot.
            let o = intrude.index(owners.len() - 1);
            let late = 1_000 * i64::try_from(o + 1).unwrap() + 5;
            steps.extend(parse(&line(0, u32::try_from(o).unwrap() + 1, &format!("e{o}"), 9, late)));
            prop_assert!(!interleavings(&steps).is_empty());
        }
    }
}

//! "Did you mean …?" — the closest known spelling to a typo.
//!
//! Used for unknown keys, enum values, job names in `depends_on`, time zones
//! and calendars, so that a typo is both rejected and easy to fix.

/// The candidate closest to `typo`, if one is close enough to be a likely
/// typo: at most one edit per three characters (and at least one), ignoring
/// case and treating `-` and `_` alike.
pub(crate) fn closest<'c, I>(typo: &str, candidates: I) -> Option<&'c str>
where
    I: IntoIterator<Item = &'c str>,
{
    let typo_norm = normalise(typo);
    let limit = (typo.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != typo)
        .map(|c| (distance(&typo_norm, &normalise(c)), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// ` (did you mean `x`?)`, or an empty string when nothing is close.
pub(crate) fn did_you_mean<'c, I>(typo: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'c str>,
{
    closest(typo, candidates).map_or_else(String::new, |c| format!(" (did you mean `{c}`?)"))
}

fn normalise(s: &str) -> Vec<char> {
    s.chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Levenshtein distance.
fn distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_only() {
        let keys = ["shards", "shard_params", "strategy", "retries"];
        assert_eq!(closest("shard", keys), Some("shards"));
        assert_eq!(closest("retires", keys), Some("retries"));
        assert_eq!(closest("shard-params", keys), Some("shard_params"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(
            closest("round-robin", ["sticky", "round_robin"]),
            Some("round_robin")
        );
        assert_eq!(did_you_mean("xyz", keys), "");
    }
}

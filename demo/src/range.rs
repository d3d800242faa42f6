//! How shard items partition the accounts: item `i` of `n` owns the
//! contiguous id range `[1 + total·i/n, 1 + total·(i+1)/n)`. Pure, so that
//! the property "every account belongs to exactly one item" is tested
//! without a database.

/// Half-open id range `[start, end)` of item `item` of `items` over
/// accounts `1..=total`. Empty when there are more items than accounts.
pub fn account_range(item: u32, items: u32, total: i64) -> (i64, i64) {
    let items = i64::from(items.max(1));
    let item = i64::from(item).min(items);
    let total = total.max(0);
    // i128: total·item cannot overflow for any i64 total.
    let bound = |i: i64| 1 + ((i128::from(total) * i128::from(i)) / i128::from(items)) as i64;
    (bound(item), bound(item + 1).min(total + 1).max(bound(item)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn items_cover_every_account_exactly_once(total in 0i64..5000, items in 1u32..64) {
            let mut next = 1;
            for item in 0..items {
                let (start, end) = account_range(item, items, total);
                prop_assert_eq!(start, next, "ranges are contiguous");
                prop_assert!(end >= start);
                next = end;
            }
            prop_assert_eq!(next, total + 1, "the last range ends after the last account");
        }
    }

    #[test]
    fn splits_evenly() {
        assert_eq!(account_range(0, 4, 100), (1, 26));
        assert_eq!(account_range(3, 4, 100), (76, 101));
    }
}

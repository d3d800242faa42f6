//! Turning a cron string as people write it into what the `cron` crate reads.
//!
//! The `cron` crate (0.17) wants six or seven fields and numbers the days of
//! the week 1 = Sunday … 7 = Saturday, which silently shifts every numeric
//! weekday of a crontab line by one day (`1-5` would mean Sunday–Thursday).
//! This module accepts the crontab dialect — five fields, or six with seconds
//! first; weekday numbers 0–7 with 0 and 7 = Sunday; weekday names; the usual
//! `@daily`-style macros — and rewrites it into the crate's dialect. It also
//! applies the crontab rule for day-of-month *and* day-of-week (see
//! [`normalise`]). It does no time arithmetic.

/// Weekday names accepted in the day-of-week field, with crontab numbers.
const WEEKDAY_NAMES: [(&str, u32); 17] = [
    ("sun", 0),
    ("sunday", 0),
    ("mon", 1),
    ("monday", 1),
    ("tue", 2),
    ("tues", 2),
    ("tuesday", 2),
    ("wed", 3),
    ("wednesday", 3),
    ("thu", 4),
    ("thur", 4),
    ("thurs", 4),
    ("thursday", 4),
    ("fri", 5),
    ("friday", 5),
    ("sat", 6),
    ("saturday", 6),
];

/// A cron expression rewritten for the `cron` crate: one six-field expression,
/// or two whose fire times are to be merged (day-of-month OR day-of-week).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Normalised {
    /// Six-field expressions in the crate's dialect; the schedule fires at the
    /// union of their fire times.
    pub arms: Vec<String>,
}

/// Rewrites a crontab-dialect expression into the `cron` crate's dialect.
///
/// Rules:
/// - `@yearly`/`@annually`, `@monthly`, `@weekly` (Sunday), `@daily`/`@midnight`
///   and `@hourly` expand to their usual meaning at second 0.
/// - 5 fields get a leading seconds field `0`; 6 fields are taken as is; any
///   other count is rejected. The crate's optional 7th (year) field is refused
///   on purpose: crontab has no year, and a schedule that ends in some year is
///   better expressed by removing the DAG.
/// - Day-of-week numbers are crontab numbers (0 and 7 = Sunday, 1 = Monday),
///   names are case-insensitive; ranges (`1-5`, `FRI-SUN`), lists and steps
///   (`*/2` = Sun, Tue, Thu, Sat) are expanded to an explicit day list.
/// - As in Vixie cron and cronie, when *both* day-of-month and day-of-week are
///   restricted (neither starts with `*` or `?`), a day matches if *either*
///   matches (`0 0 1,15 * MON` = the 1st, the 15th and every Monday). When one
///   of them starts with `*`, both must match, as in cronie.
/// - An expression that can never fire (`0 0 30 2 *`) is rejected.
pub(crate) fn normalise(expr: &str) -> Result<Normalised, String> {
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err("empty cron expression".to_owned());
    }
    let expanded;
    let text = if let Some(name) = trimmed.strip_prefix('@') {
        expanded = expand_macro(name)?;
        expanded.as_str()
    } else {
        trimmed
    };
    let mut fields: Vec<&str> = text.split_whitespace().collect();
    match fields.len() {
        5 => fields.insert(0, "0"),
        6 => {}
        7 => {
            return Err("7 fields (with a year) are not supported: use 5 fields \
                 (minute hour day-of-month month day-of-week) or 6 (seconds first)"
                .to_owned())
        }
        n => {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) \
                 or 6 (seconds first), found {n}"
            ))
        }
    }
    let dow_field = fields[5];
    let days = parse_weekdays(dow_field).map_err(|e| format!("day-of-week {dow_field:?}: {e}"))?;
    let dow = weekday_list(days);
    let dom = fields[3];
    let both_restricted = is_restricted(dom) && is_restricted(dow_field);
    let arm = |dom: &str, dow: &str| {
        format!(
            "{} {} {} {} {} {}",
            fields[0], fields[1], fields[2], dom, fields[4], dow
        )
    };
    let arms = if both_restricted {
        vec![arm(dom, "*"), arm("*", &dow)]
    } else {
        vec![arm(dom, &dow)]
    };
    let mut fires_ever = false;
    for a in &arms {
        match a.parse::<cron::Schedule>() {
            Ok(s) => fires_ever |= s.after(&chrono::DateTime::UNIX_EPOCH).next().is_some(),
            Err(e) => return Err(describe_crate_error(&fields, &e.to_string())),
        }
    }
    if !fires_ever {
        // E.g. `0 0 30 2 *`: valid fields, but no such date.
        return Err("never fires (no date matches the day and month fields)".to_owned());
    }
    Ok(Normalised { arms })
}

/// Whether a day field restricts days, in the Vixie-cron sense (it does not
/// start with `*` or `?`).
fn is_restricted(field: &str) -> bool {
    !(field.starts_with('*') || field.starts_with('?'))
}

fn expand_macro(name: &str) -> Result<String, String> {
    let six = match name.to_ascii_lowercase().as_str() {
        "yearly" | "annually" => "0 0 0 1 1 *",
        "monthly" => "0 0 0 1 * *",
        "weekly" => "0 0 0 * * 0",
        "daily" | "midnight" => "0 0 0 * * *",
        "hourly" => "0 0 * * * *",
        _ => {
            return Err(format!(
                "unknown macro @{name} (expected @yearly, @annually, @monthly, \
                 @weekly, @daily, @midnight or @hourly)"
            ))
        }
    };
    Ok(six.to_owned())
}

/// The crate's parse errors do not say which field is wrong; find the first
/// field that fails on its own and name it.
fn describe_crate_error(fields: &[&str], crate_message: &str) -> String {
    const NAMES: [&str; 5] = ["second", "minute", "hour", "day-of-month", "month"];
    for (i, name) in NAMES.iter().enumerate() {
        let mut probe = ["0", "0", "0", "*", "*", "*"];
        probe[i] = fields[i];
        if probe.join(" ").parse::<cron::Schedule>().is_err() {
            return format!("{name} field {:?} is invalid", fields[i]);
        }
    }
    format!("invalid cron expression: {}", crate_message.trim())
}

/// Parses a crontab day-of-week field into a set of days, bit 0 = Sunday.
fn parse_weekdays(field: &str) -> Result<u8, String> {
    let mut days = 0u8;
    for item in field.split(',') {
        if item.is_empty() {
            return Err("empty list item".to_owned());
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("step {s:?} is not a number"))?;
                if !(1..=7).contains(&step) {
                    return Err(format!("step {step} is out of range 1-7"));
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (0, 7)
        } else if let Some((a, b)) = range.split_once('-') {
            let lo = weekday_value(a, false)?;
            let hi = weekday_value(b, lo > 0)?;
            if lo > hi {
                return Err(format!(
                    "range {range} runs backwards (write it as two ranges, e.g. 5-7,0-1)"
                ));
            }
            (lo, hi)
        } else {
            let v = weekday_value(range, false)?;
            // `N/step` runs from N to the end of the week, as in cronie.
            (v, if step.is_some() { 7 } else { v })
        };
        let step = step.unwrap_or(1) as usize;
        for v in (lo..=hi).step_by(step) {
            days |= 1 << (v % 7);
        }
    }
    Ok(days)
}

/// A weekday number or name as a crontab number 0–7. Sunday given by name is
/// 7 when it ends a range that starts later in the week (`FRI-SUN`).
fn weekday_value(text: &str, sunday_is_seven: bool) -> Result<u32, String> {
    if let Ok(n) = text.parse::<u32>() {
        if n > 7 {
            return Err(format!("{n} is not a weekday (0-7, 0 and 7 = Sunday)"));
        }
        return Ok(n);
    }
    let lower = text.to_ascii_lowercase();
    match WEEKDAY_NAMES.iter().find(|(name, _)| *name == lower) {
        Some((_, 0)) if sunday_is_seven => Ok(7),
        Some((_, n)) => Ok(*n),
        None => Err(format!("{text:?} is not a weekday number (0-7) or name")),
    }
}

/// The crate's spelling of a weekday set: `*` for every day, else a list of
/// the crate's ordinals, which number Sunday 1 … Saturday 7 (bit + 1).
fn weekday_list(days: u8) -> String {
    if days == 0x7f {
        return "*".to_owned();
    }
    (0..7)
        .filter(|bit| days & (1 << bit) != 0)
        .map(|bit| (bit + 1).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(field: &str) -> Vec<u32> {
        let set = parse_weekdays(field).unwrap();
        (0..7).filter(|b| set & (1 << b) != 0).collect()
    }

    #[test]
    fn crontab_weekday_numbers_and_names() {
        assert_eq!(days("0"), vec![0]);
        assert_eq!(days("7"), vec![0]);
        assert_eq!(days("1-5"), vec![1, 2, 3, 4, 5]);
        assert_eq!(days("5-7"), vec![0, 5, 6]);
        assert_eq!(days("*/2"), vec![0, 2, 4, 6]);
        assert_eq!(days("1-5/2"), vec![1, 3, 5]);
        assert_eq!(days("MON-FRI"), days("1-5"));
        assert_eq!(days("fri-sun"), vec![0, 5, 6]);
        assert_eq!(days("sun-sat"), vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(days("mon,3,Sunday"), vec![0, 1, 3]);
    }

    #[test]
    fn bad_weekday_fields_are_rejected() {
        for bad in ["8", "5-1", "*/0", "*/9", "mon/x", "funday", "1,,2", ""] {
            assert!(parse_weekdays(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn five_fields_get_a_seconds_field_and_crate_weekdays() {
        let n = normalise("30 2 * * 1-5").unwrap();
        assert_eq!(n.arms, vec!["0 30 2 * * 2,3,4,5,6".to_owned()]);
    }

    #[test]
    fn both_day_fields_restricted_gives_two_arms() {
        let n = normalise("0 0 1,15 * 1").unwrap();
        assert_eq!(
            n.arms,
            vec!["0 0 0 1,15 * *".to_owned(), "0 0 0 * * 2".to_owned()]
        );
        let n = normalise("0 0 */2 * 1").unwrap();
        assert_eq!(n.arms.len(), 1);
    }

    #[test]
    fn wrong_field_counts_and_macros_are_rejected_with_a_reason() {
        assert!(normalise("* * * *").unwrap_err().contains("found 4"));
        assert!(normalise("0 0 0 1 1 * 2030")
            .unwrap_err()
            .contains("7 fields"));
        assert!(normalise("@reboot").unwrap_err().contains("unknown macro"));
        assert!(normalise("61 * * * *")
            .unwrap_err()
            .contains("minute field"));
    }
}

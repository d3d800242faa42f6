//! The first error line of a failed attempt: what an alert and a run
//! summary say about *why* something failed, in one line.
//!
//! Pure: the leader calls it when it absorbs a failed result.

/// Longest first error line kept, in bytes (cut at a character boundary).
pub const MAX_FIRST_ERROR: usize = 200;

/// The first non-blank line of the attempt's error message; without one,
/// the message of the first `ERROR` line of its log (the SDK's log lines
/// are `TIMESTAMP LEVEL message`). Cut to [`MAX_FIRST_ERROR`] bytes with a
/// trailing `…`.
pub fn first_error_line(error: Option<&str>, log: Option<&str>) -> Option<String> {
    let from_error = error.and_then(|e| e.lines().map(str::trim).find(|l| !l.is_empty()));
    let from_log = || {
        log?.lines().find_map(|line| {
            let mut parts = line.splitn(3, ' ');
            let (_at, level, message) = (parts.next()?, parts.next()?, parts.next()?);
            (level == "ERROR")
                .then(|| message.trim())
                .filter(|m| !m.is_empty())
        })
    };
    from_error.or_else(from_log).map(cut)
}

/// What a failed job's error says: how many items failed, and the first
/// error line (`item N: line`) when one is known.
pub fn job_failure(failed_items: u64, first_error: Option<&str>) -> String {
    match first_error {
        Some(first) => format!("{failed_items} item(s) failed; first: {first}"),
        None => format!("{failed_items} item(s) failed"),
    }
}

fn cut(line: &str) -> String {
    if line.len() <= MAX_FIRST_ERROR {
        return line.to_owned();
    }
    let mut end = MAX_FIRST_ERROR;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_message_first_line_wins() {
        assert_eq!(
            first_error_line(
                Some("\n  disk full: /var/x  \nat line 3"),
                Some("x ERROR other")
            ),
            Some("disk full: /var/x".to_owned())
        );
    }

    #[test]
    fn without_a_message_the_first_error_log_line_is_used() {
        let log = "2024-01-31T00:00:00.000Z INFO  started\n\
                   2024-01-31T00:00:01.000Z ERROR cannot reach the ledger\n\
                   2024-01-31T00:00:02.000Z ERROR second\n";
        assert_eq!(
            first_error_line(None, Some(log)),
            Some("cannot reach the ledger".to_owned())
        );
        assert_eq!(
            first_error_line(Some("  \n"), Some(log)).as_deref(),
            Some("cannot reach the ledger")
        );
        assert_eq!(first_error_line(None, Some("a INFO  fine\n")), None);
        assert_eq!(first_error_line(None, None), None);
    }

    #[test]
    fn job_failures_name_the_first_error_when_known() {
        assert_eq!(
            job_failure(2, Some("item 3: boom")),
            "2 item(s) failed; first: item 3: boom"
        );
        assert_eq!(job_failure(1, None), "1 item(s) failed");
    }

    #[test]
    fn long_lines_are_cut_at_a_char_boundary() {
        let long = "é".repeat(MAX_FIRST_ERROR);
        let line = first_error_line(Some(&long), None).unwrap();
        assert!(line.ends_with('…'));
        assert!(line.len() <= MAX_FIRST_ERROR + '…'.len_utf8());
        assert!(line.starts_with("éé"));
    }
}

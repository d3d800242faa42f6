//! Small HTML building blocks. Every value that comes from outside the
//! console's own code (names, messages, parameters — anything from SQL,
//! etcd or the request) goes through [`esc`] before it is written.

use crate::time::utc;
use chrono::{SecondsFormat, TimeZone, Utc};
use std::fmt::Write as _;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a value for a URL query or path segment.
pub fn url(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A coloured state label.
pub fn badge(state: &str) -> String {
    let s = esc(state);
    format!("<span class=\"badge st-{s}\">{s}</span>")
}

/// An instant as `<time datetime="RFC 3339" data-ms="…">UTC text</time>`,
/// or `-`. The page script rewrites the text in the zone the operator
/// picked (see [`layout`]); without the script it reads in UTC, as the
/// header says.
pub fn time_html(ms: Option<i64>) -> String {
    zoned_time_html(ms, None)
}

/// [`time_html`] of an instant about one DAG, with its `zone` (the
/// header's "DAG zone" choice shows it in that zone).
pub fn zoned_time_html(ms: Option<i64>, zone: Option<&str>) -> String {
    let zone = zone
        .map(|z| format!(" data-zone=\"{}\"", esc(z)))
        .unwrap_or_default();
    match ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single()) {
        Some(t) => format!(
            "<time datetime=\"{}\" data-ms=\"{}\"{zone}>{}</time>",
            t.to_rfc3339_opts(SecondsFormat::Millis, true),
            t.timestamp_millis(),
            esc(&utc(t.timestamp_millis()))
        ),
        None => "-".to_owned(),
    }
}

/// A duration, or `-`.
pub fn took(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_owned(), crate::time::duration)
}

/// A progress bar with a segment per state, widths in percent of `total`.
/// Drawn as SVG rectangles: the Content Security Policy forbids `style`
/// attributes, SVG geometry attributes are not styles.
pub fn bar(total: u64, segments: &[(&str, u64)]) -> String {
    let mut out = String::from(
        "<div class=\"bar\"><svg viewBox=\"0 0 100 1\" preserveAspectRatio=\"none\" aria-hidden=\"true\">",
    );
    if total > 0 {
        let mut x = 0.0;
        for (state, n) in segments {
            if *n > 0 {
                let pct = (*n as f64) * 100.0 / total as f64;
                let _ = write!(
                    out,
                    "<rect class=\"st-{}\" x=\"{x:.2}\" width=\"{pct:.2}\" height=\"1\"/>",
                    esc(state)
                );
                x += pct;
            }
        }
    }
    out.push_str("</svg>");
    let done: u64 = segments
        .iter()
        .filter(|(s, _)| *s != "running")
        .map(|(_, n)| n)
        .sum();
    let _ = write!(out, "<em>{done}/{total}</em></div>");
    out
}

/// A button that POSTs to an API path (after `confirm()` when `confirm` is
/// given). Disabled on a read-only console.
pub fn action(label: &str, path: &str, confirm: Option<&str>, read_only: bool) -> String {
    let confirm = confirm
        .map(|c| format!(" data-confirm=\"{}\"", esc(c)))
        .unwrap_or_default();
    let disabled = if read_only {
        " disabled title=\"read-only console\""
    } else {
        ""
    };
    format!(
        "<button class=\"act\" data-path=\"{}\"{confirm}{disabled}>{}</button>",
        esc(path),
        esc(label)
    )
}

/// A form whose named fields are sent as a JSON body to an API path.
/// Fields with `data-json` are parsed as JSON, `type=number` ones as numbers;
/// empty fields are left out.
pub fn action_form(
    path: &str,
    confirm: Option<&str>,
    read_only: bool,
    fields: &str,
    submit: &str,
) -> String {
    let confirm = confirm
        .map(|c| format!(" data-confirm=\"{}\"", esc(c)))
        .unwrap_or_default();
    let disabled = if read_only {
        " disabled title=\"read-only console\""
    } else {
        ""
    };
    format!(
        "<form class=\"act\" data-path=\"{}\"{confirm}>{fields}<button type=\"submit\"{disabled}>{}</button></form>",
        esc(path),
        esc(submit)
    )
}

/// [`action`], disabled with the reason shown (as its title and, when
/// `visible`, as text after it) when `why_not` says the action cannot apply
/// (see [`crate::api::applicable`]).
pub fn action_unless(
    label: &str,
    path: &str,
    confirm: Option<&str>,
    read_only: bool,
    why_not: Option<&str>,
    visible: bool,
) -> String {
    match why_not {
        None => action(label, path, confirm, read_only),
        Some(why) => {
            let note = if visible {
                format!("<span class=\"why\">{}</span>", esc(why))
            } else {
                String::new()
            };
            format!(
                "<button class=\"act\" data-path=\"{}\" disabled title=\"{}\" data-why-not=\"{}\">{}</button>{note}",
                esc(path),
                esc(why),
                esc(why),
                esc(label)
            )
        }
    }
}

/// [`action_form`], its button disabled with the reason as its title when
/// `why_not` says the action cannot apply.
pub fn action_form_unless(
    path: &str,
    confirm: Option<&str>,
    read_only: bool,
    fields: &str,
    submit: &str,
    why_not: Option<&str>,
) -> String {
    match why_not {
        None => action_form(path, confirm, read_only, fields, submit),
        Some(why) => format!(
            "<form class=\"act\" data-path=\"{}\">{fields}<button type=\"submit\" disabled title=\"{}\" data-why-not=\"{}\">{}</button></form>",
            esc(path),
            esc(why),
            esc(why),
            esc(submit)
        ),
    }
}

/// The time-zone choice of the header: hidden until the page script shows
/// it (it does nothing without the script), when the note saying times are
/// in UTC is hidden instead. The script fills in the zones' names and
/// remembers the choice in `localStorage`; "DAG zone" is the `data-zone`
/// of the time's nearest element that has one (the `<time>` itself on a
/// list about several DAGs, else the page's `<body>` on a page about one).
const ZONE_CHOICE: &str = "<span id=\"tz-note\" class=\"tz\">times in UTC</span>\
<label id=\"tz-choice\" class=\"tz\" hidden>Times in <select id=\"tz\">\
<option value=\"utc\">UTC</option><option value=\"dag\">DAG zone</option>\
<option value=\"browser\">browser zone</option></select></label>";

/// The page around `body`.
pub fn layout(title: &str, read_only: bool, body_attrs: &str, body: &str) -> String {
    let mode = if read_only {
        "<span class=\"ro\">read-only</span>"
    } else {
        ""
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{} · Nightshift</title><link rel=\"stylesheet\" href=\"/assets/console.css\"></head>\
<body{body_attrs}><header><a class=\"brand\" href=\"/\">Nightshift</a><nav>\
<a href=\"/\">Overview</a><a href=\"/executors\">Executors</a><a href=\"/alerts\">Alerts</a>\
<a href=\"/events\">Events</a></nav>{mode}{ZONE_CHOICE}<span id=\"live\" class=\"live\">○ live</span>\
<button id=\"logout\" type=\"button\">Log out</button></header>\
<main>{body}</main><div id=\"toast\" role=\"status\"></div>\
<script src=\"/assets/console.js\"></script></body></html>\n",
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_markup_and_attributes() {
        assert_eq!(
            esc("<script>alert('x')</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
        );
        assert_eq!(esc("a\" onmouseover=\"x"), "a&quot; onmouseover=&quot;x");
        assert_eq!(esc("Tom & Jerry"), "Tom &amp; Jerry");
        assert_eq!(url("a b/c?d"), "a%20b%2Fc%3Fd");
    }

    #[test]
    fn instants_are_time_elements_in_utc() {
        assert_eq!(
            time_html(Some(1_711_850_400_250)),
            "<time datetime=\"2024-03-31T02:00:00.250Z\" data-ms=\"1711850400250\">2024-03-31 02:00:00Z</time>"
        );
        assert_eq!(time_html(None), "-");
        assert_eq!(
            zoned_time_html(Some(0), Some("Europe/Paris")),
            "<time datetime=\"1970-01-01T00:00:00.000Z\" data-ms=\"0\" data-zone=\"Europe/Paris\">1970-01-01 00:00:00Z</time>"
        );
        assert_eq!(time_html(Some(i64::MAX)), "-");
        let page = layout("t", false, "", "");
        assert!(
            page.contains("<span id=\"tz-note\" class=\"tz\">times in UTC</span>")
                && page.contains("<select id=\"tz\">"),
            "{page}"
        );
    }

    #[test]
    fn bars_are_proportional() {
        let html = bar(4, &[("succeeded", 1), ("running", 1), ("failed", 0)]);
        assert!(
            html.contains("st-succeeded\" x=\"0.00\" width=\"25.00\""),
            "{html}"
        );
        assert!(
            html.contains("st-running\" x=\"25.00\" width=\"25.00\""),
            "{html}"
        );
        assert!(!html.contains("style="), "{html}");
        assert!(!html.contains("st-failed"), "{html}");
        assert!(html.contains("<em>1/4</em>"), "{html}");
    }
}

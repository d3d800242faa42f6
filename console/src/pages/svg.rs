//! Inline SVG pictures: the DAG's job graph (laid out by
//! [`super::dag_layout`]) and a Gantt chart of jobs from their start and end.

use super::dag_layout::layout;
use super::html::esc;
use super::timeline::{chart, Axis, Bar, Lane};
use crate::time::{duration, utc};
use std::fmt::Write as _;

/// One job to draw: name, upstream jobs, state (for the colour), where it
/// links to and its trigger rule when not the default.
#[derive(Debug, Clone)]
pub struct Node {
    /// Job name.
    pub name: String,
    /// Upstream job names.
    pub depends_on: Vec<String>,
    /// State in the selected run (`pending` when none).
    pub state: String,
    /// Where a click goes (already a path; escaped when written).
    pub href: String,
    /// The trigger rule, when it is not the default `all_success`.
    pub rule: Option<String>,
}

/// Longest name drawn whole in a box; longer ones are cut with `…` (the
/// box's tooltip has the whole name).
const NAME_CHARS: usize = 22;

fn short_name(name: &str) -> String {
    if name.chars().count() <= NAME_CHARS {
        name.to_owned()
    } else {
        let mut s: String = name.chars().take(NAME_CHARS - 1).collect();
        s.push('…');
        s
    }
}

/// The job graph, left to right by layer ([`super::dag_layout`]): each
/// edge ends in an arrowhead at its downstream job, each job is a link,
/// and a job with a trigger rule other than `all_success` shows it.
pub fn dag_graph(nodes: &[Node]) -> String {
    let jobs: Vec<(String, Vec<String>)> = nodes
        .iter()
        .map(|n| (n.name.clone(), n.depends_on.clone()))
        .collect();
    let l = layout(&jobs);
    let (width, height) = (l.width.ceil(), l.height.ceil());
    let mut out = format!(
        "<svg class=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"job graph\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerUnits=\"userSpaceOnUse\" \
         markerWidth=\"9\" markerHeight=\"9\" orient=\"auto\"><path class=\"arrowhead\" d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>"
    );
    for e in &l.edges {
        let mut d = String::new();
        for (i, (x, y)) in e.points.iter().enumerate() {
            let _ = write!(d, "{}{x:.1},{y:.1}", if i == 0 { "M" } else { " L" });
        }
        let _ = write!(
            out,
            "<path class=\"edge\" data-from=\"{}\" data-to=\"{}\" marker-end=\"url(#arrow)\" d=\"{d}\"/>",
            esc(&nodes[e.from].name),
            esc(&nodes[e.to].name)
        );
    }
    for (node, r) in nodes.iter().zip(&l.nodes) {
        let (name, state) = (esc(&node.name), esc(&node.state));
        let shown = esc(&short_name(&node.name));
        let (tx, ty) = (
            r.x + 8.0,
            r.y + if node.rule.is_some() { 17.0 } else { 25.0 },
        );
        let rule = node.rule.as_deref().map_or_else(String::new, |rule| {
            format!(
                "<text class=\"rule\" x=\"{tx:.1}\" y=\"{:.1}\">{}</text>",
                r.y + 32.0,
                esc(rule)
            )
        });
        let rule_title = node
            .rule
            .as_deref()
            .map_or_else(String::new, |rule| format!(", trigger rule {}", esc(rule)));
        let _ = write!(
            out,
            "<a href=\"{}\"><g class=\"node st-{state}\" data-job=\"{name}\"><title>{name}: {state}{rule_title}</title>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"5\"/>\
             <text x=\"{tx:.1}\" y=\"{ty:.1}\">{shown}</text>{rule}</g></a>",
            esc(&node.href),
            r.x,
            r.y,
            r.w,
            r.h
        );
    }
    out.push_str("</svg>");
    out
}

/// One bar of the Gantt chart.
#[derive(Debug, Clone)]
pub struct Span {
    /// Row label.
    pub label: String,
    /// State (colour).
    pub state: String,
    /// Start, epoch ms; rows without a start are drawn empty.
    pub start_ms: Option<i64>,
    /// End, epoch ms; open spans end at `now_ms`.
    pub end_ms: Option<i64>,
}

/// A Gantt chart of spans on a common time axis, with time ticks (drawn by
/// [`super::timeline::chart`], like the other charts of the pages): from
/// the first start to the last end (open spans end at `now_ms`).
pub fn gantt(spans: &[Span], now_ms: i64) -> String {
    let from = spans
        .iter()
        .filter_map(|s| s.start_ms)
        .min()
        .unwrap_or(now_ms);
    let to = spans
        .iter()
        .filter_map(|s| s.start_ms.map(|_| s.end_ms.unwrap_or(now_ms)))
        .max()
        .unwrap_or(now_ms);
    let lanes: Vec<Lane> = spans
        .iter()
        .map(|span| Lane {
            label: span.label.clone(),
            bars: span
                .start_ms
                .map(|start| {
                    let end = span.end_ms.unwrap_or(now_ms).max(start);
                    Bar {
                        state: span.state.clone(),
                        start_ms: start,
                        end_ms: span.end_ms,
                        title: format!(
                            "{}: {}, {} from {}",
                            span.label,
                            span.state,
                            duration(end - start),
                            utc(start)
                        ),
                        href: None,
                    }
                })
                .into_iter()
                .collect(),
            ..Lane::default()
        })
        .collect();
    let axis = Axis {
        label: "Gantt chart of the jobs".to_owned(),
        from_ms: from,
        to_ms: to,
        zone: None,
        now_ms: Some(now_ms),
        row_h: 22,
    };
    chart(&axis, &lanes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_and_gantt_escape_names() {
        let nodes = vec![
            Node {
                name: "<a>".into(),
                depends_on: vec![],
                state: "running".into(),
                href: "/runs/r?job=%3Ca%3E#items".into(),
                rule: None,
            },
            Node {
                name: "b".into(),
                depends_on: vec!["<a>".into()],
                state: "pending".into(),
                href: "#job-b".into(),
                rule: Some("<all_done>".into()),
            },
        ];
        let svg = dag_graph(&nodes);
        assert!(svg.contains("&lt;a&gt;") && !svg.contains("<a>"), "{svg}");
        assert!(svg.contains("class=\"edge\""), "{svg}");
        assert!(svg.contains("marker-end=\"url(#arrow)\""), "{svg}");
        assert!(svg.contains("<a href=\"#job-b\">"), "{svg}");
        assert!(svg.contains(">&lt;all_done&gt;</text>"), "{svg}");
        assert_eq!(svg.matches("class=\"rule\"").count(), 1, "{svg}");
        assert_eq!(
            short_name("abcdefghijklmnopqrstuvwxyz").chars().count(),
            NAME_CHARS
        );
        let g = gantt(
            &[Span {
                label: "<b>".into(),
                state: "running".into(),
                start_ms: Some(0),
                end_ms: None,
            }],
            1000,
        );
        assert!(g.contains("&lt;b&gt;") && !g.contains("<b>"), "{g}");
    }

    #[test]
    fn the_gantt_has_time_ticks_and_bars_where_their_times_are() {
        // 2024-03-31 01:00:00Z, jobs over 10 minutes.
        let t0 = 1_711_846_800_000;
        let span = |label: &str, state: &str, start: Option<i64>, end: Option<i64>| Span {
            label: label.into(),
            state: state.into(),
            start_ms: start,
            end_ms: end,
        };
        let g = gantt(
            &[
                span("extract", "succeeded", Some(t0), Some(t0 + 120_000)),
                span("settle", "running", Some(t0 + 120_000), None),
                span("report", "pending", None, None),
            ],
            t0 + 600_000,
        );
        // Ticks every minute, labelled in UTC, with their instants.
        for (minute, label) in [(0, "01:00"), (5, "01:05"), (10, "01:10")] {
            assert!(
                g.contains(&format!(
                    "data-ms=\"{}\" data-fmt=\"hm\">{label}</text>",
                    t0 + minute * 60_000
                )),
                "{label}: {g}"
            );
        }
        assert!(g.contains(">UTC</text>"), "{g}");
        // One bar per started job; the pending one has a row, no bar.
        assert_eq!(g.matches("<rect").count(), 2, "{g}");
        assert!(g.contains(">report</text>"), "{g}");
        assert!(
            g.contains("<title>extract: succeeded, 2m 0s from 2024-03-31 01:00:00Z</title>"),
            "{g}"
        );
        assert!(
            g.contains("<title>settle: running, 8m 0s from 2024-03-31 01:02:00Z</title>"),
            "{g}"
        );
    }
}

//! Inline SVG pictures: the DAG's job graph (a layered layout from the
//! topological order) and a Gantt chart of jobs from their start and end.

use super::html::esc;
use super::timeline::{chart, Axis, Bar, Lane};
use crate::time::{duration, utc};
use std::collections::HashMap;
use std::fmt::Write as _;

/// One job to draw: name, upstream jobs, state (for the colour).
#[derive(Debug, Clone)]
pub struct Node {
    /// Job name.
    pub name: String,
    /// Upstream job names.
    pub depends_on: Vec<String>,
    /// State in the selected run (`pending` when none).
    pub state: String,
}

/// The layer of each job: 0 for jobs without upstreams, else one more than
/// the deepest upstream. `jobs` must be in topological order; an upstream
/// that is not listed counts as layer 0.
pub fn layers(jobs: &[(String, Vec<String>)]) -> Vec<usize> {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(jobs.len());
    for (name, deps) in jobs {
        let layer = deps
            .iter()
            .filter_map(|d| by_name.get(d.as_str()))
            .map(|l| l + 1)
            .max()
            .unwrap_or(0);
        by_name.insert(name.as_str(), layer);
        out.push(layer);
    }
    out
}

const NODE_W: usize = 150;
const NODE_H: usize = 34;
const GAP_X: usize = 60;
const GAP_Y: usize = 18;

/// The job graph, left to right by layer.
pub fn dag_graph(nodes: &[Node]) -> String {
    let pairs: Vec<(String, Vec<String>)> = nodes
        .iter()
        .map(|n| (n.name.clone(), n.depends_on.clone()))
        .collect();
    let layer = layers(&pairs);
    let mut row_in_layer: HashMap<usize, usize> = HashMap::new();
    let mut pos: HashMap<&str, (usize, usize)> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let row = row_in_layer.entry(layer[i]).or_insert(0);
        let x = 10 + layer[i] * (NODE_W + GAP_X);
        let y = 10 + *row * (NODE_H + GAP_Y);
        *row += 1;
        pos.insert(node.name.as_str(), (x, y));
    }
    let width = 20 + (layer.iter().max().map_or(0, |l| l + 1)) * (NODE_W + GAP_X);
    let height = 20 + row_in_layer.values().max().copied().unwrap_or(0) * (NODE_H + GAP_Y);
    let mut out = format!(
        "<svg class=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"job graph\">"
    );
    for node in nodes {
        let Some(&(x2, y2)) = pos.get(node.name.as_str()) else {
            continue;
        };
        for dep in &node.depends_on {
            if let Some(&(x1, y1)) = pos.get(dep.as_str()) {
                let (sx, sy, ex, ey) = (x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2);
                let mx = (sx + ex) / 2;
                let _ = write!(
                    out,
                    "<path class=\"edge\" d=\"M{sx},{sy} C{mx},{sy} {mx},{ey} {ex},{ey}\"/>"
                );
            }
        }
    }
    for node in nodes {
        let Some(&(x, y)) = pos.get(node.name.as_str()) else {
            continue;
        };
        let (name, state) = (esc(&node.name), esc(&node.state));
        let _ = write!(
            out,
            "<g class=\"node st-{state}\"><title>{name}: {state}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"5\"/>\
             <text x=\"{}\" y=\"{}\">{name}</text></g>",
            x + 8,
            y + 22
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
    use proptest::prelude::*;

    proptest! {
        /// Every edge goes from a lower layer to a higher one, and each job
        /// sits exactly one layer after its deepest upstream.
        #[test]
        fn layers_follow_every_edge(deps in proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..4), 1..30)) {
            // Job i may depend only on jobs before it: a topological order.
            let jobs: Vec<(String, Vec<String>)> = deps.iter().enumerate().map(|(i, ds)| {
                let ups = if i == 0 { Vec::new() } else { ds.iter().map(|d| format!("j{}", d.index(i))).collect() };
                (format!("j{i}"), ups)
            }).collect();
            let layer = layers(&jobs);
            for (i, (_, ups)) in jobs.iter().enumerate() {
                let idx: Vec<usize> = ups.iter().map(|u| u[1..].parse().unwrap()).collect();
                for &u in &idx {
                    prop_assert!(layer[u] < layer[i]);
                }
                let expected = idx.iter().map(|&u| layer[u] + 1).max().unwrap_or(0);
                prop_assert_eq!(layer[i], expected);
            }
        }
    }

    #[test]
    fn graph_and_gantt_escape_names() {
        let nodes = vec![
            Node {
                name: "<a>".into(),
                depends_on: vec![],
                state: "running".into(),
            },
            Node {
                name: "b".into(),
                depends_on: vec!["<a>".into()],
                state: "pending".into(),
            },
        ];
        let svg = dag_graph(&nodes);
        assert!(svg.contains("&lt;a&gt;") && !svg.contains("<a>"), "{svg}");
        assert!(svg.contains("class=\"edge\""), "{svg}");
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

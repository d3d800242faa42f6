//! A layered ("Sugiyama") layout of a DAG's job graph, as a pure function
//! from jobs and their upstreams to node rectangles and edge polylines.
//!
//! Why not straight lines between columns of nodes: an edge that skips a
//! layer then runs under the nodes of the layers it crosses (in
//! `dags/nightly-settlement.toml`, `fx-revaluation → reconciliation` ran
//! under `ledger-postings`), and the reader cannot tell which job it ends
//! at. Here:
//!
//! 1. each job's layer is one more than its deepest upstream's (longest
//!    path from a job without upstreams), so every edge points right;
//! 2. an edge spanning several layers gets a *virtual point* in each layer
//!    in between, which takes a thin slot of its own in that layer's
//!    column, so the edge crosses the column through a gap between nodes;
//! 3. within a layer, jobs and virtual points are ordered by the
//!    barycenter of their neighbours (alternating down and up sweeps), and
//!    the order with the fewest edge crossings is kept.
//!
//! Inside a column an edge is horizontal (in its own slot); between columns
//! there are no nodes. So no edge crosses a node other than its own two
//! ends, which the property tests check on random DAGs.

use std::collections::HashMap;

/// Width of a job's box.
pub const NODE_W: f64 = 170.0;
/// Height of a job's box (room for the name and a trigger rule tag).
pub const NODE_H: f64 = 40.0;
/// Horizontal gap between two columns (where edges change height).
const GAP_X: f64 = 70.0;
/// Vertical gap between two slots of a column.
const GAP_Y: f64 = 16.0;
/// Height of a virtual point's slot.
const VIRTUAL_H: f64 = 6.0;
/// Blank border around the drawing.
const MARGIN: f64 = 10.0;
/// Barycenter sweeps (down and up alternately).
const SWEEPS: usize = 8;

/// An axis-aligned rectangle (SVG user units, y down).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

/// One edge's route: from the upstream job's right side to the downstream
/// job's left side.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeRoute {
    /// Index of the upstream job (in the input order).
    pub from: usize,
    /// Index of the downstream job.
    pub to: usize,
    /// The polyline, left to right.
    pub points: Vec<(f64, f64)>,
}

/// Where everything goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Width of the drawing.
    pub width: f64,
    /// Height of the drawing.
    pub height: f64,
    /// Each job's box, in the input order.
    pub nodes: Vec<Rect>,
    /// Each edge (an upstream listed in `depends_on`), deduplicated.
    pub edges: Vec<EdgeRoute>,
}

/// The layer of each job: 0 for jobs without upstreams, else one more than
/// the deepest upstream. `jobs` must be in topological order; an upstream
/// that is not listed before its job is ignored.
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

/// The edges `(upstream, downstream)` by index: upstreams listed before
/// their job (the topological order), each pair once.
fn edges(jobs: &[(String, Vec<String>)]) -> Vec<(usize, usize)> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, (name, deps)) in jobs.iter().enumerate() {
        for dep in deps {
            if let Some(&u) = index.get(dep.as_str()) {
                if !out.contains(&(u, i)) {
                    out.push((u, i));
                }
            }
        }
        index.entry(name.as_str()).or_insert(i);
    }
    out
}

/// Edge crossings between two adjacent layers: `segments` are pairs of
/// positions (upper layer, lower layer).
fn crossings_between(segments: &[(usize, usize)]) -> usize {
    let mut n = 0;
    for (i, &(a1, b1)) in segments.iter().enumerate() {
        for &(a2, b2) in &segments[i + 1..] {
            if (a1 < a2 && b1 > b2) || (a1 > a2 && b1 < b2) {
                n += 1;
            }
        }
    }
    n
}

/// The layered graph the ordering works on: items are jobs (`0..jobs`)
/// then virtual points; `chains[e]` is edge `e`'s items, one per layer.
struct Layered {
    layer_of: Vec<usize>,
    chains: Vec<Vec<usize>>,
    /// Neighbours of each item in the layer above / below.
    up: Vec<Vec<usize>>,
    down: Vec<Vec<usize>>,
}

impl Layered {
    fn new(layer: &[usize], edges: &[(usize, usize)]) -> Self {
        let mut layer_of = layer.to_vec();
        let mut chains = Vec::with_capacity(edges.len());
        for &(u, v) in edges {
            let mut chain = vec![u];
            for l in layer[u] + 1..layer[v] {
                layer_of.push(l);
                chain.push(layer_of.len() - 1);
            }
            chain.push(v);
            chains.push(chain);
        }
        let mut up = vec![Vec::new(); layer_of.len()];
        let mut down = vec![Vec::new(); layer_of.len()];
        for chain in &chains {
            for pair in chain.windows(2) {
                down[pair[0]].push(pair[1]);
                up[pair[1]].push(pair[0]);
            }
        }
        Layered {
            layer_of,
            chains,
            up,
            down,
        }
    }

    /// Total crossings of `order` (items per layer, top to bottom).
    fn crossings(&self, order: &[Vec<usize>]) -> usize {
        let pos = positions(order, self.layer_of.len());
        let mut per_layer: Vec<Vec<(usize, usize)>> = vec![Vec::new(); order.len()];
        for chain in &self.chains {
            for pair in chain.windows(2) {
                per_layer[self.layer_of[pair[0]]].push((pos[pair[0]], pos[pair[1]]));
            }
        }
        per_layer.iter().map(|s| crossings_between(s)).sum()
    }

    /// Reorders layer `l` by the mean position of each item's neighbours
    /// (`up` or `down`); an item without any keeps its position as its key.
    fn sort_layer(&self, order: &mut [Vec<usize>], l: usize, use_up: bool) {
        let pos = positions(order, self.layer_of.len());
        let key = |item: usize| {
            let nbrs = if use_up {
                &self.up[item]
            } else {
                &self.down[item]
            };
            if nbrs.is_empty() {
                pos[item] as f64
            } else {
                nbrs.iter().map(|&n| pos[n] as f64).sum::<f64>() / nbrs.len() as f64
            }
        };
        let mut keyed: Vec<(f64, usize)> = order[l].iter().map(|&i| (key(i), i)).collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        order[l] = keyed.into_iter().map(|(_, i)| i).collect();
    }
}

/// Each item's index within its layer.
fn positions(order: &[Vec<usize>], items: usize) -> Vec<usize> {
    let mut pos = vec![0; items];
    for layer in order {
        for (p, &item) in layer.iter().enumerate() {
            pos[item] = p;
        }
    }
    pos
}

/// Lays out `jobs` (name, upstream names), in topological order, left to
/// right by layer.
pub fn layout(jobs: &[(String, Vec<String>)]) -> Layout {
    let layer = layers(jobs);
    let edges = edges(jobs);
    let g = Layered::new(&layer, &edges);
    let layer_count = layer.iter().max().map_or(0, |l| l + 1);

    // Order: the input order first, then barycenter sweeps; keep the best.
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); layer_count];
    for (item, &l) in g.layer_of.iter().enumerate() {
        order[l].push(item);
    }
    let mut best = (g.crossings(&order), order.clone());
    for sweep in 0..SWEEPS {
        if best.0 == 0 {
            break;
        }
        if sweep % 2 == 0 {
            for l in 1..layer_count {
                g.sort_layer(&mut order, l, true);
            }
        } else {
            for l in (0..layer_count.saturating_sub(1)).rev() {
                g.sort_layer(&mut order, l, false);
            }
        }
        let c = g.crossings(&order);
        if c < best.0 {
            best = (c, order.clone());
        }
    }
    let order = best.1;

    // Coordinates: one column per layer, slots stacked top to bottom and
    // each column centred on the tallest.
    let slot_h = |item: usize| if item < jobs.len() { NODE_H } else { VIRTUAL_H };
    let column_h = |items: &[usize]| -> f64 {
        let slots: f64 = items.iter().map(|&i| slot_h(i)).sum();
        slots + GAP_Y * items.len().saturating_sub(1) as f64
    };
    let tallest = order.iter().map(|c| column_h(c)).fold(0.0, f64::max);
    let mut top = vec![0.0; g.layer_of.len()];
    for column in &order {
        let mut y = MARGIN + (tallest - column_h(column)) / 2.0;
        for &item in column {
            top[item] = y;
            y += slot_h(item) + GAP_Y;
        }
    }
    let column_x = |l: usize| MARGIN + l as f64 * (NODE_W + GAP_X);
    let nodes: Vec<Rect> = (0..jobs.len())
        .map(|i| Rect {
            x: column_x(layer[i]),
            y: top[i],
            w: NODE_W,
            h: NODE_H,
        })
        .collect();
    // The height at which an edge leaves or reaches an item: virtual points
    // are one line; a job spreads its edges over its side, ordered by the
    // height of the other end so that they do not cross at the box.
    let centre = |item: usize| top[item] + slot_h(item) / 2.0;
    let mut out_port = vec![0.0; edges.len()];
    let mut in_port = vec![0.0; edges.len()];
    for (job, node) in nodes.iter().enumerate() {
        let mut outs: Vec<(f64, usize)> = (0..edges.len())
            .filter(|&e| edges[e].0 == job)
            .map(|e| (centre(g.chains[e][1]), e))
            .collect();
        outs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (k, &(_, e)) in outs.iter().enumerate() {
            out_port[e] = node.y + NODE_H * (k + 1) as f64 / (outs.len() + 1) as f64;
        }
        let mut ins: Vec<(f64, usize)> = (0..edges.len())
            .filter(|&e| edges[e].1 == job)
            .map(|e| (centre(g.chains[e][g.chains[e].len() - 2]), e))
            .collect();
        ins.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (k, &(_, e)) in ins.iter().enumerate() {
            in_port[e] = node.y + NODE_H * (k + 1) as f64 / (ins.len() + 1) as f64;
        }
    }
    let routes = edges
        .iter()
        .enumerate()
        .map(|(e, &(u, v))| {
            let chain = &g.chains[e];
            let mut points = vec![(column_x(layer[u]) + NODE_W, out_port[e])];
            for &virt in &chain[1..chain.len() - 1] {
                let (x, y) = (column_x(g.layer_of[virt]), centre(virt));
                points.push((x, y));
                points.push((x + NODE_W, y));
            }
            points.push((column_x(layer[v]), in_port[e]));
            EdgeRoute {
                from: u,
                to: v,
                points,
            }
        })
        .collect();
    Layout {
        width: 2.0 * MARGIN
            + layer_count as f64 * NODE_W
            + layer_count.saturating_sub(1) as f64 * GAP_X,
        height: 2.0 * MARGIN + tallest,
        nodes,
        edges: routes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    type Point = (f64, f64);

    /// Edge crossings of a layout's routes (segments that properly cross),
    /// counted pairwise.
    fn crossing_count(layout: &Layout) -> usize {
        let segs: Vec<(Point, Point, usize)> = layout
            .edges
            .iter()
            .enumerate()
            .flat_map(|(e, r)| r.points.windows(2).map(move |p| (p[0], p[1], e)))
            .collect();
        let mut n = 0;
        for (i, a) in segs.iter().enumerate() {
            for b in &segs[i + 1..] {
                if a.2 != b.2 && segments_cross(a.0, a.1, b.0, b.1) {
                    n += 1;
                }
            }
        }
        n
    }

    /// Whether two segments cross at a point inside both (not at an end).
    fn segments_cross(p1: (f64, f64), p2: (f64, f64), q1: (f64, f64), q2: (f64, f64)) -> bool {
        let cross = |o: (f64, f64), a: (f64, f64), b: (f64, f64)| {
            (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
        };
        let d1 = cross(q1, q2, p1);
        let d2 = cross(q1, q2, p2);
        let d3 = cross(p1, p2, q1);
        let d4 = cross(p1, p2, q2);
        d1 * d2 < 0.0 && d3 * d4 < 0.0
    }

    /// Whether the segment `a`–`b` meets the closed rectangle `r`
    /// (Liang–Barsky clipping).
    fn segment_meets_rect(a: (f64, f64), b: (f64, f64), r: &Rect) -> bool {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let mut t0: f64 = 0.0;
        let mut t1: f64 = 1.0;
        for (p, q) in [
            (-dx, a.0 - r.x),
            (dx, r.x + r.w - a.0),
            (-dy, a.1 - r.y),
            (dy, r.y + r.h - a.1),
        ] {
            if p == 0.0 {
                if q < 0.0 {
                    return false;
                }
            } else {
                let t = q / p;
                if p < 0.0 {
                    t0 = t0.max(t);
                } else {
                    t1 = t1.min(t);
                }
                if t0 > t1 {
                    return false;
                }
            }
        }
        true
    }

    /// A random DAG in topological order: job `i` may depend only on jobs
    /// before it.
    fn dag() -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
        proptest::collection::vec(
            proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
            1..28,
        )
        .prop_map(|deps| {
            deps.iter()
                .enumerate()
                .map(|(i, ds)| {
                    let ups = if i == 0 {
                        Vec::new()
                    } else {
                        ds.iter().map(|d| format!("j{}", d.index(i))).collect()
                    };
                    (format!("j{i}"), ups)
                })
                .collect()
        })
    }

    fn overlap(a: &Rect, b: &Rect) -> bool {
        a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
    }

    /// The three promises of the layout, on any DAG.
    fn check(jobs: &[(String, Vec<String>)], l: &Layout) -> Result<(), TestCaseError> {
        prop_assert_eq!(l.nodes.len(), jobs.len());
        for r in &l.nodes {
            prop_assert!(r.x >= 0.0 && r.y >= 0.0);
            prop_assert!(r.x + r.w <= l.width && r.y + r.h <= l.height);
        }
        // (c) nodes never overlap.
        for (i, a) in l.nodes.iter().enumerate() {
            for b in &l.nodes[i + 1..] {
                prop_assert!(!overlap(a, b), "{:?} overlaps {:?}", a, b);
            }
        }
        for e in &l.edges {
            let (from, to) = (&l.nodes[e.from], &l.nodes[e.to]);
            // (a) strictly left to right, from the upstream's right side to
            // the downstream's left side.
            prop_assert!(e.points.len() >= 2);
            for p in e.points.windows(2) {
                prop_assert!(p[0].0 < p[1].0, "edge {:?} goes back", e);
            }
            let (first, last) = (e.points[0], e.points[e.points.len() - 1]);
            prop_assert_eq!(first.0, from.x + from.w);
            prop_assert!(first.1 > from.y && first.1 < from.y + from.h);
            prop_assert_eq!(last.0, to.x);
            prop_assert!(last.1 > to.y && last.1 < to.y + to.h);
            // (b) no segment meets another job's box.
            for seg in e.points.windows(2) {
                for (n, r) in l.nodes.iter().enumerate() {
                    if n != e.from && n != e.to {
                        prop_assert!(
                            !segment_meets_rect(seg[0], seg[1], r),
                            "edge {} -> {} crosses {}",
                            jobs[e.from].0,
                            jobs[e.to].0,
                            jobs[n].0
                        );
                    }
                }
            }
        }
        Ok(())
    }

    proptest! {
        /// Every edge goes from a lower layer to a higher one, and each job
        /// sits exactly one layer after its deepest upstream.
        #[test]
        fn layers_follow_every_edge(jobs in dag()) {
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

        /// Edges go left to right, pass no other job's box, and boxes never
        /// overlap; one route per distinct dependency.
        #[test]
        fn routes_avoid_other_nodes_and_nodes_never_overlap(jobs in dag()) {
            let l = layout(&jobs);
            check(&jobs, &l)?;
            let distinct: usize = jobs.iter().map(|(_, ups)| {
                let mut u = ups.clone();
                u.sort();
                u.dedup();
                u.len()
            }).sum();
            prop_assert_eq!(l.edges.len(), distinct);
        }

        /// The sweeps keep the order with the fewest crossings, so they
        /// never do worse than the input order.
        #[test]
        fn ordering_never_adds_crossings(jobs in dag()) {
            let layer = layers(&jobs);
            let e = edges(&jobs);
            let g = Layered::new(&layer, &e);
            let count = layer.iter().max().map_or(0, |l| l + 1);
            let mut input: Vec<Vec<usize>> = vec![Vec::new(); count];
            for (item, &l) in g.layer_of.iter().enumerate() {
                input[l].push(item);
            }
            let before = g.crossings(&input);
            prop_assert!(crossing_count(&layout(&jobs)) <= before);
        }
    }

    #[test]
    fn segments_and_rects() {
        let r = Rect {
            x: 10.0,
            y: 10.0,
            w: 10.0,
            h: 10.0,
        };
        assert!(segment_meets_rect((0.0, 15.0), (30.0, 15.0), &r));
        assert!(segment_meets_rect((0.0, 0.0), (30.0, 30.0), &r));
        assert!(segment_meets_rect((12.0, 12.0), (13.0, 13.0), &r), "inside");
        assert!(!segment_meets_rect((0.0, 0.0), (30.0, 0.0), &r));
        assert!(!segment_meets_rect((0.0, 25.0), (25.0, 30.0), &r));
        assert!(!segment_meets_rect((0.0, 0.0), (9.0, 30.0), &r));
    }

    #[test]
    fn a_skipping_edge_goes_around_the_job_in_between() {
        // a -> b -> c and a -> c: the long edge gets a virtual point in
        // b's column, in a slot of its own.
        let jobs = vec![
            ("a".to_owned(), vec![]),
            ("b".to_owned(), vec!["a".to_owned()]),
            ("c".to_owned(), vec!["a".to_owned(), "b".to_owned()]),
        ];
        let l = layout(&jobs);
        let long = l.edges.iter().find(|e| e.from == 0 && e.to == 2).unwrap();
        assert_eq!(long.points.len(), 4, "{long:?}");
        let b = l.nodes[1];
        assert!(long.points[1].1 < b.y || long.points[1].1 > b.y + b.h);
    }

    /// The repository's own DAGs, loaded with core's loader: every promise
    /// holds, and the settlement DAG's long edge no longer runs under
    /// `ledger-postings`.
    #[test]
    fn the_shipped_dags_lay_out_cleanly() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dags");
        let report = nightshift_core::dag::load_dags(&[dir]);
        assert!(!report.has_errors(), "{:?}", report.diagnostics);
        assert!(report.dags.len() >= 3, "{}", report.dags.len());
        for dag in report.dags.iter().map(|loaded| &loaded.spec) {
            let jobs: Vec<(String, Vec<String>)> = dag
                .topo_order()
                .iter()
                .filter_map(|n| dag.job(n))
                .map(|j| {
                    (
                        j.name.to_string(),
                        j.depends_on.iter().map(ToString::to_string).collect(),
                    )
                })
                .collect();
            let l = layout(&jobs);
            check(&jobs, &l).unwrap_or_else(|e| panic!("{}: {e}", dag.name));
            assert_eq!(crossing_count(&l), 0, "{}: {l:?}", dag.name);
            if dag.name.as_str() == "nightly-settlement" {
                let at = |n: &str| jobs.iter().position(|j| j.0 == n).unwrap();
                let fx = l
                    .edges
                    .iter()
                    .find(|e| e.from == at("fx-revaluation") && e.to == at("reconciliation"))
                    .expect("the fx-revaluation edge");
                // It spans four layers: three virtual points, two points each.
                assert_eq!(fx.points.len(), 8, "{fx:?}");
            }
        }
    }
}

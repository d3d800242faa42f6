//! DAG-wide checks that need every job at once: `depends_on` naming a job
//! that does not exist, and dependency cycles.
//!
//! A cycle is reported once per strongly connected component, as the
//! shortest cycle through the component's first job (in file order), at that
//! job's `depends_on` entry that starts the cycle.

use super::job::JobDraft;
use super::suggest::did_you_mean;
use super::values::Reader;
use crate::ids::JobName;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Reports unknown dependencies and cycles among `jobs`.
pub(crate) fn check_graph(reader: &mut Reader<'_>, jobs: &[JobDraft]) {
    // Edges point from a job to the jobs it depends on.
    let mut graph: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..jobs.len()).map(|i| graph.add_node(i)).collect();
    let index: BTreeMap<&JobName, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (&j.spec.name, i))
        .collect();

    for (i, job) in jobs.iter().enumerate() {
        for (dep, span) in &job.deps {
            match index.get(dep) {
                Some(&d) => {
                    graph.add_edge(nodes[i], nodes[d], ());
                }
                None => {
                    let hint =
                        did_you_mean(dep.as_str(), jobs.iter().map(|j| j.spec.name.as_str()));
                    reader.error(
                        span.clone(),
                        format!(
                            "job `{}` depends on unknown job `{dep}`{hint}",
                            job.spec.name
                        ),
                    );
                }
            }
        }
    }

    let mut cycles: Vec<Vec<usize>> = tarjan_scc(&graph)
        .into_iter()
        .filter(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]))
        .filter_map(|scc| shortest_cycle(&graph, &scc))
        .collect();
    cycles.sort();
    for cycle in cycles {
        let first = &jobs[cycle[0]];
        // A job depending on itself is a cycle of one.
        let next = &jobs[*cycle.get(1).unwrap_or(&cycle[0])].spec.name;
        let chain: Vec<&str> = cycle
            .iter()
            .chain(std::iter::once(&cycle[0]))
            .map(|&i| jobs[i].spec.name.as_str())
            .collect();
        let span = first
            .deps
            .iter()
            .find(|(d, _)| d == next)
            .map_or(0..0, |(_, s)| s.clone());
        reader.error(
            span,
            format!(
                "dependency cycle: {} (each job depends on the next)",
                chain.join(" -> ")
            ),
        );
    }
}

/// The shortest cycle through the lowest-numbered job of `scc`, as job
/// indices starting with that job (the closing repeat left out).
fn shortest_cycle(graph: &DiGraph<usize, ()>, scc: &[NodeIndex]) -> Option<Vec<usize>> {
    let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
    let start = *scc.iter().min_by_key(|n| graph[**n])?;
    let mut parent: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        // Visit neighbours in job order so the reported cycle is stable.
        let mut next: Vec<NodeIndex> = graph
            .neighbors(node)
            .filter(|n| members.contains(n))
            .collect();
        next.sort_by_key(|n| graph[*n]);
        for n in next {
            if n == start {
                let mut path = vec![graph[node]];
                let mut cur = node;
                while let Some(&p) = parent.get(&cur) {
                    path.push(graph[p]);
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            if let std::collections::btree_map::Entry::Vacant(e) = parent.entry(n) {
                e.insert(node);
                queue.push_back(n);
            }
        }
    }
    None
}

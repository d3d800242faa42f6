//! Graph queries on a validated DAG: topological order, upstream and
//! downstream jobs.
//!
//! The graph is rebuilt with petgraph on each call rather than stored in
//! [`DagSpec`], so the spec stays a plain serializable value; DAGs have tens
//! of jobs, so this costs nothing that matters.

use super::model::{DagSpec, JobSpec};
use crate::ids::JobName;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

impl DagSpec {
    /// The DAG's schedule in its zone, restricted to its business day of the
    /// month when it has one; `None` for a DAG that only runs when triggered.
    pub fn cron_schedule(
        &self,
    ) -> Option<Result<crate::schedule::Schedule, crate::schedule::ScheduleError>> {
        let expr = self.schedule.as_deref()?;
        Some(
            crate::schedule::Schedule::new(expr, self.timezone).map(|s| {
                match self.schedule_business_day {
                    Some(n) => s.on_business_day_of_month(n),
                    None => s,
                }
            }),
        )
    }

    /// The next `n` schedule instants strictly after `after`, each with the
    /// business date its run is for (under the DAG's `business_date` policy
    /// and calendar); empty for a DAG without a schedule. `nightshift plan`
    /// and the console's DAG page show these.
    pub fn next_fires(
        &self,
        after: chrono::DateTime<chrono::Utc>,
        n: usize,
    ) -> Vec<(chrono::DateTime<chrono::Utc>, chrono::NaiveDate)> {
        let Some(Ok(schedule)) = self.cron_schedule() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(n);
        let mut cursor = after;
        while out.len() < n {
            let Some(fire) = schedule.next_business_after(cursor, self.calendar.as_ref()) else {
                break;
            };
            let day = crate::schedule::business_date_for(
                fire,
                self.timezone,
                self.business_date,
                self.calendar.as_ref(),
            );
            out.push((fire, day));
            cursor = fire;
        }
        out
    }

    /// The job named `name`.
    pub fn job(&self, name: &JobName) -> Option<&JobSpec> {
        self.jobs.iter().find(|j| j.name == *name)
    }

    /// Every job after all of its upstream jobs; among jobs that are ready
    /// at the same time, file order. (A spec from [`super::parse_dag`] has no
    /// cycle; on a hand-built cyclic spec, the jobs of the cycle and those
    /// after them are left out.)
    pub fn topo_order(&self) -> Vec<JobName> {
        let graph = self.graph();
        let mut pending: Vec<usize> = graph
            .node_indices()
            .map(|n| graph.neighbors_directed(n, Direction::Incoming).count())
            .collect();
        let mut ready: BinaryHeap<Reverse<usize>> = pending
            .iter()
            .enumerate()
            .filter(|(_, &p)| p == 0)
            .map(|(i, _)| Reverse(i))
            .collect();
        let mut order = Vec::with_capacity(self.jobs.len());
        while let Some(Reverse(i)) = ready.pop() {
            order.push(self.jobs[i].name.clone());
            for next in graph.neighbors_directed(NodeIndex::new(i), Direction::Outgoing) {
                let slot = &mut pending[next.index()];
                *slot -= 1;
                if *slot == 0 {
                    ready.push(Reverse(next.index()));
                }
            }
        }
        order
    }

    /// The jobs `job` depends on directly, in file order.
    pub fn upstream(&self, job: &JobName) -> Vec<JobName> {
        self.neighbours(job, Direction::Incoming)
    }

    /// The jobs that depend directly on `job`, in file order.
    pub fn downstream(&self, job: &JobName) -> Vec<JobName> {
        self.neighbours(job, Direction::Outgoing)
    }

    /// Jobs with no upstream job: the ones a run starts with.
    pub fn roots(&self) -> Vec<JobName> {
        self.jobs
            .iter()
            .filter(|j| j.depends_on.is_empty())
            .map(|j| j.name.clone())
            .collect()
    }

    /// Total shard items over all jobs.
    pub fn total_items(&self) -> u64 {
        self.jobs.iter().map(|j| u64::from(j.shards)).sum()
    }

    /// The name of the calendar, if any.
    pub fn calendar_name(&self) -> Option<&str> {
        self.calendar.as_ref().map(|c| c.name.as_str())
    }

    fn neighbours(&self, job: &JobName, direction: Direction) -> Vec<JobName> {
        let Some(i) = self.jobs.iter().position(|j| j.name == *job) else {
            return Vec::new();
        };
        let graph = self.graph();
        let mut found: Vec<usize> = graph
            .neighbors_directed(NodeIndex::new(i), direction)
            .map(NodeIndex::index)
            .collect();
        found.sort_unstable();
        found.dedup();
        found
            .into_iter()
            .map(|n| self.jobs[n].name.clone())
            .collect()
    }

    /// Node `i` is `jobs[i]`; edges run from upstream to downstream.
    /// Dependencies on unknown jobs (impossible after validation) are ignored.
    fn graph(&self) -> DiGraph<(), ()> {
        let mut graph = DiGraph::with_capacity(self.jobs.len(), self.jobs.len());
        for _ in &self.jobs {
            graph.add_node(());
        }
        for (i, job) in self.jobs.iter().enumerate() {
            for dep in &job.depends_on {
                if let Some(d) = self.jobs.iter().position(|j| j.name == *dep) {
                    graph.update_edge(NodeIndex::new(d), NodeIndex::new(i), ());
                }
            }
        }
        graph
    }
}

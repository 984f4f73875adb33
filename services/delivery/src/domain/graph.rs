//! The requirement dependency graph of one program: an edge `(a, b)` means
//! requirement `a` depends on requirement `b`. The graph is kept acyclic
//! ([`cycle_through`] is asked before every new edge) so that it always has
//! a planning order ([`plan`], Kahn's algorithm). Pure functions over edge
//! lists the store loaded; deterministic for equal input.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, VecDeque};

use super::Error;
use uuid::Uuid;

/// A dependency edge: `.0` depends on `.1`.
pub type Edge = (Uuid, Uuid);

/// Ids of a cycle listed in ErrorInfo metadata at most: each id is 37 bytes
/// and gRPC trailers are limited to 16 KiB by common clients (hyper's
/// default), so a longer cycle is listed by its first ids and flagged.
pub const MAX_CYCLE_IDS: usize = 256;

/// The cycle that adding `requirement → depends_on` would close, if any:
/// the ids in dependency order starting with `requirement`, each depending
/// on the next and the last on `requirement` (so `[a, b]` for the edge a→b
/// when b→a exists). The shortest such cycle (breadth-first search,
/// neighbours visited in id order).
pub fn cycle_through(edges: &[Edge], requirement: Uuid, depends_on: Uuid) -> Option<Vec<Uuid>> {
    if requirement == depends_on {
        return Some(vec![requirement]);
    }
    let mut deps: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for &(a, b) in edges {
        deps.entry(a).or_default().push(b);
    }
    for list in deps.values_mut() {
        list.sort_unstable();
    }
    // Search from depends_on along "depends on" for requirement.
    let mut parent: HashMap<Uuid, Uuid> = HashMap::new();
    let mut queue = VecDeque::from([depends_on]);
    parent.insert(depends_on, depends_on);
    while let Some(n) = queue.pop_front() {
        if n == requirement {
            // Walk back: requirement, …, depends_on; reversed, each of these
            // depends on the next. The new edge closes it from requirement.
            let mut path = vec![n];
            let mut cur = n;
            while cur != depends_on {
                cur = parent[&cur];
                path.push(cur);
            }
            path.reverse();
            path.pop();
            let mut cycle = Vec::with_capacity(path.len() + 1);
            cycle.push(requirement);
            cycle.extend(path);
            return Some(cycle);
        }
        for &next in deps.get(&n).map(Vec::as_slice).unwrap_or_default() {
            if let Entry::Vacant(e) = parent.entry(next) {
                e.insert(n);
                queue.push_back(next);
            }
        }
    }
    None
}

/// The `FAILED_PRECONDITION` refusing an edge that closes `cycle`. The
/// message names the cycle (abbreviated when long); ErrorInfo metadata
/// carries `cycle` (the ids, comma separated, in dependency order, at most
/// [`MAX_CYCLE_IDS`]), `cycle_length` and, when cut, `cycle_truncated`.
pub fn cycle_error(cycle: &[Uuid]) -> Error {
    let ids: Vec<String> = cycle.iter().map(Uuid::to_string).collect();
    let shown = if ids.len() <= 6 {
        ids.join(" -> ")
    } else {
        format!(
            "{} -> {} -> {} -> ... -> {}",
            ids[0],
            ids[1],
            ids[2],
            ids[ids.len() - 1]
        )
    };
    let closing = ids.first().cloned().unwrap_or_default();
    let mut e = Error::failed_precondition(
        "DEPENDENCY_CYCLE",
        format!(
            "the dependency would close a cycle of {} requirement(s): {shown} -> {closing} \
             (every id in order in ErrorInfo metadata `cycle`)",
            ids.len()
        ),
    )
    .with_metadata("cycle_length", ids.len().to_string());
    if ids.len() > MAX_CYCLE_IDS {
        e = e.with_metadata("cycle_truncated", "true");
    }
    e.with_metadata(
        "cycle",
        ids.iter()
            .take(MAX_CYCLE_IDS)
            .cloned()
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// A requirement's place in a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planned {
    /// The requirement.
    pub id: Uuid,
    /// Its wave: 0 without dependencies, else one more than the highest
    /// level among what it depends on.
    pub level: u32,
}

/// A planning order of `nodes` (each with its tie-break rank, lower first)
/// under `edges`: Kahn's algorithm, wave by wave. Each wave holds the nodes
/// whose dependencies all sit in earlier waves, sorted by `(rank, id)`; the
/// order is the waves one after the other, so every node comes after
/// everything it depends on, and equal input gives equal output. Edges
/// naming unknown nodes are ignored. A cycle (which the service never
/// stores) is `Err` with the nodes that could not be placed.
pub fn plan<R: Ord + Copy>(nodes: &[(Uuid, R)], edges: &[Edge]) -> Result<Vec<Planned>, Vec<Uuid>> {
    let rank: HashMap<Uuid, R> = nodes.iter().copied().collect();
    let mut waiting_on: HashMap<Uuid, usize> = nodes.iter().map(|(id, _)| (*id, 0)).collect();
    let mut dependents: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for &(a, b) in edges {
        if a == b || !rank.contains_key(&a) || !rank.contains_key(&b) {
            continue;
        }
        *waiting_on.entry(a).or_default() += 1;
        dependents.entry(b).or_default().push(a);
    }
    let mut wave: Vec<(R, Uuid)> = waiting_on
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| (rank[id], *id))
        .collect();
    let mut out = Vec::with_capacity(nodes.len());
    let mut level = 0u32;
    wave.sort_unstable();
    while !wave.is_empty() {
        // The next wave, kept in `(rank, id)` order as it fills.
        let mut next: BTreeSet<(R, Uuid)> = BTreeSet::new();
        for &(_, id) in &wave {
            out.push(Planned { id, level });
            for d in dependents.get(&id).map(Vec::as_slice).unwrap_or_default() {
                if let Some(n) = waiting_on.get_mut(d) {
                    *n -= 1;
                    if *n == 0 {
                        next.insert((rank[d], *d));
                    }
                }
            }
        }
        wave = next.into_iter().collect();
        level += 1;
    }
    if out.len() == waiting_on.len() {
        Ok(out)
    } else {
        let mut stuck: Vec<Uuid> = waiting_on
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(id, _)| id)
            .collect();
        stuck.sort_unstable();
        Err(stuck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<Uuid> {
        let mut v: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn a_direct_back_edge_is_a_cycle_of_two() {
        let r = ids(2);
        let edges = [(r[1], r[0])];
        assert_eq!(cycle_through(&edges, r[0], r[1]), Some(vec![r[0], r[1]]));
        assert_eq!(
            cycle_through(&edges, r[1], r[0]),
            None,
            "the edge exists already, no cycle"
        );
        assert_eq!(cycle_through(&[], r[0], r[0]), Some(vec![r[0]]));
    }

    #[test]
    fn closing_a_long_chain_names_every_requirement_in_order() {
        let r = ids(200);
        // r[i] depends on r[i + 1].
        let edges: Vec<Edge> = r.windows(2).map(|w| (w[0], w[1])).collect();
        // r[199] depending on r[0] closes the ring.
        let cycle = cycle_through(&edges, r[199], r[0]).expect("cycle");
        let mut expected = vec![r[199]];
        expected.extend(&r[..199]);
        assert_eq!(cycle, expected);
        // Each depends on the next, and the last on the first.
        for w in cycle.windows(2) {
            assert!(edges.contains(&(w[0], w[1])) || (w[0], w[1]) == (r[199], r[0]));
        }
        assert!(edges.contains(&(cycle[199], cycle[0])));
        // Adding the edge the other way round is harmless.
        assert_eq!(cycle_through(&edges, r[0], r[199]), None);
    }

    #[test]
    fn the_shortest_cycle_is_reported_in_a_diamond() {
        let r = ids(4);
        // 0 → 1 → 3, 0 → 2 → 3 (a diamond), and 3 → 0 closes two cycles
        // of three; the one through the smaller id is named.
        let edges = [(r[0], r[1]), (r[0], r[2]), (r[1], r[3]), (r[2], r[3])];
        assert_eq!(
            cycle_through(&edges, r[3], r[0]),
            Some(vec![r[3], r[0], r[1]])
        );
        assert_eq!(cycle_through(&edges, r[3], r[1]), Some(vec![r[3], r[1]]));
        assert_eq!(cycle_through(&edges, r[0], r[3]), None);
    }

    #[test]
    fn the_cycle_error_names_it_within_the_trailer_budget() {
        let r = ids(300);
        let e = cycle_error(&r);
        assert_eq!(e.reason(), "DEPENDENCY_CYCLE");
        assert!(e.message().contains(&r[0].to_string()));
        assert!(e.message().contains("300 requirement"));
        let status: tonic::Status = foundry_platform::Error::from(e).into();
        use tonic_types::StatusExt;
        let info = status
            .get_error_details()
            .error_info()
            .cloned()
            .expect("info");
        assert_eq!(info.metadata["cycle_length"], "300");
        assert_eq!(info.metadata["cycle_truncated"], "true");
        assert_eq!(info.metadata["cycle"].split(',').count(), MAX_CYCLE_IDS);
        // Sent base64-encoded in a trailer; clients cap trailers at 16 KiB.
        assert!(
            status.details().len() * 4 / 3 < 15 * 1024,
            "{}",
            status.details().len()
        );
    }

    fn respects(order: &[Planned], edges: &[Edge]) -> bool {
        let pos: HashMap<Uuid, usize> = order.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        edges.iter().all(|(a, b)| pos[b] < pos[a])
    }

    #[test]
    fn kahn_orders_dependencies_first_with_levels_and_ties_by_rank_then_id() {
        let r = ids(6);
        // 0 and 1 depend on 2; 2 depends on 3; 4 and 5 stand alone.
        let edges = [(r[0], r[2]), (r[1], r[2]), (r[2], r[3])];
        let nodes: Vec<(Uuid, u8)> = vec![
            (r[0], 1),
            (r[1], 0),
            (r[2], 2),
            (r[3], 2),
            (r[4], 1),
            (r[5], 0),
        ];
        let order = plan(&nodes, &edges).expect("acyclic");
        let got: Vec<(Uuid, u32)> = order.iter().map(|p| (p.id, p.level)).collect();
        assert_eq!(
            got,
            vec![
                (r[5], 0), // rank 0
                (r[4], 0), // rank 1
                (r[3], 0), // rank 2
                (r[2], 1),
                (r[1], 2), // rank 0 before rank 1
                (r[0], 2),
            ]
        );
        assert!(respects(&order, &edges));
        assert_eq!(plan(&nodes, &edges).expect("again"), order, "deterministic");
    }

    #[test]
    fn kahn_respects_every_edge_of_a_random_dag() {
        let r = ids(300);
        // Edges only from a later to an earlier id: acyclic by construction.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut edges = Vec::new();
        for _ in 0..1500 {
            let a = (next() % 300) as usize;
            let b = (next() % 300) as usize;
            if a > b {
                edges.push((r[a], r[b]));
            }
        }
        edges.sort_unstable();
        edges.dedup();
        let nodes: Vec<(Uuid, u8)> = r.iter().map(|id| (*id, (next() % 4) as u8)).collect();
        let order = plan(&nodes, &edges).expect("acyclic");
        assert_eq!(order.len(), 300);
        assert!(respects(&order, &edges));
        let level: HashMap<Uuid, u32> = order.iter().map(|p| (p.id, p.level)).collect();
        for p in &order {
            let deps: Vec<u32> = edges
                .iter()
                .filter(|(a, _)| *a == p.id)
                .map(|(_, b)| level[b])
                .collect();
            assert_eq!(p.level, deps.iter().max().map_or(0, |m| m + 1));
        }
    }

    #[test]
    fn kahn_reports_what_a_cycle_leaves_unplaced() {
        let r = ids(3);
        let edges = [(r[0], r[1]), (r[1], r[0])];
        let nodes: Vec<(Uuid, u8)> = r.iter().map(|id| (*id, 0)).collect();
        assert_eq!(plan(&nodes, &edges), Err(vec![r[0], r[1]]));
    }
}

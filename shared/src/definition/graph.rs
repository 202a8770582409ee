//! Graph facts about a definition, computed once at registration: which steps are reachable,
//! which can reach an end, and which edges close loops.

/// A directed graph over step indexes, edges listed per source in definition order.
pub(super) struct Graph<'a> {
    /// `(from, to)` of every edge, by edge index.
    pub edges: &'a [(usize, usize)],
    /// Edge indexes leaving each step, in definition order.
    pub outgoing: &'a [Vec<usize>],
}

impl Graph<'_> {
    /// Steps reachable from `start`, following every edge.
    pub(super) fn reachable_from(&self, start: usize) -> Vec<bool> {
        let mut seen = vec![false; self.outgoing.len()];
        let mut stack = vec![start];
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            stack.extend(self.outgoing[n].iter().map(|&e| self.edges[e].1));
        }
        seen
    }

    /// Steps from which some step in `ends` can be reached (ends included).
    pub(super) fn can_reach(&self, ends: &[bool]) -> Vec<bool> {
        let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); self.outgoing.len()];
        for &(from, to) in self.edges {
            incoming[to].push(from);
        }
        let mut ok = ends.to_vec();
        let mut stack: Vec<usize> = (0..ends.len()).filter(|&n| ends[n]).collect();
        while let Some(n) = stack.pop() {
            for &p in &incoming[n] {
                if !std::mem::replace(&mut ok[p], true) {
                    stack.push(p);
                }
            }
        }
        ok
    }

    /// Strongly connected components: `comp[s]` is the same for steps that lie on a common
    /// cycle (Kosaraju's two walks, iterative so that no definition can overflow the stack).
    pub(super) fn components(&self) -> Vec<usize> {
        let n = self.outgoing.len();
        // Steps by the time a depth-first walk finishes with them.
        let mut order = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        for root in 0..n {
            if std::mem::replace(&mut seen[root], true) {
                continue;
            }
            let mut path: Vec<(usize, usize)> = vec![(root, 0)];
            while let Some(&mut (node, ref mut next)) = path.last_mut() {
                if let Some(&e) = self.outgoing[node].get(*next) {
                    *next += 1;
                    let to = self.edges[e].1;
                    if !std::mem::replace(&mut seen[to], true) {
                        path.push((to, 0));
                    }
                } else {
                    order.push(node);
                    path.pop();
                }
            }
        }
        // Walk the reversed edges, latest finished first: each walk is one component.
        let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(from, to) in self.edges {
            incoming[to].push(from);
        }
        let mut comp = vec![usize::MAX; n];
        let mut count = 0;
        for &root in order.iter().rev() {
            if comp[root] != usize::MAX {
                continue;
            }
            comp[root] = count;
            let mut stack = vec![root];
            while let Some(node) = stack.pop() {
                for &p in &incoming[node] {
                    if comp[p] == usize::MAX {
                        comp[p] = count;
                        stack.push(p);
                    }
                }
            }
            count += 1;
        }
        comp
    }

    /// Edges that close a cycle: in a depth-first walk from `start` (edges taken in definition
    /// order, so the answer is deterministic), an edge to a step still on the walk's path.
    /// Removing them leaves a DAG; joins wait only on the remaining (forward) edges.
    pub(super) fn back_edges(&self, start: usize) -> Vec<bool> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut mark = vec![Mark::New; self.outgoing.len()];
        let mut back = vec![false; self.edges.len()];
        // Iterative DFS: (node, index of the next outgoing edge to look at).
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::OnPath;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(&e) = self.outgoing[node].get(*next) {
                *next += 1;
                let to = self.edges[e].1;
                match mark[to] {
                    Mark::OnPath => back[e] = true,
                    Mark::New => {
                        mark[to] = Mark::OnPath;
                        path.push((to, 0));
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                path.pop();
            }
        }
        back
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: usize, edges: &[(usize, usize)]) -> (Vec<(usize, usize)>, Vec<Vec<usize>>) {
        let mut out = vec![Vec::new(); n];
        for (i, &(f, _)) in edges.iter().enumerate() {
            out[f].push(i);
        }
        (edges.to_vec(), out)
    }

    #[test]
    fn loop_edge_is_the_one_back_to_the_path() {
        // 0 -> 1 -> 2 -> 1 (loop), 2 -> 3
        let (edges, out) = graph(4, &[(0, 1), (1, 2), (2, 1), (2, 3)]);
        let g = Graph {
            edges: &edges,
            outgoing: &out,
        };
        assert_eq!(g.back_edges(0), vec![false, false, true, false]);
        assert_eq!(g.reachable_from(0), vec![true; 4]);
        let ends = [false, false, false, true];
        assert_eq!(g.can_reach(&ends), vec![true; 4]);
    }

    #[test]
    fn components_group_the_steps_of_a_cycle() {
        // 0 -> 1 -> 2 -> 1, 2 -> 3, 3 -> 3
        let (edges, out) = graph(4, &[(0, 1), (1, 2), (2, 1), (2, 3), (3, 3)]);
        let g = Graph {
            edges: &edges,
            outgoing: &out,
        };
        let c = g.components();
        assert_eq!(c[1], c[2]);
        assert_ne!(c[0], c[1]);
        assert_ne!(c[3], c[1]);
        assert_ne!(c[0], c[3]);
    }

    #[test]
    fn diamond_has_no_back_edge_and_cycle_without_exit_reaches_no_end() {
        let (edges, out) = graph(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]);
        let g = Graph {
            edges: &edges,
            outgoing: &out,
        };
        assert_eq!(g.back_edges(0), vec![false; 4]);
        let (edges, out) = graph(3, &[(0, 1), (1, 2), (2, 1)]);
        let g = Graph {
            edges: &edges,
            outgoing: &out,
        };
        assert_eq!(g.can_reach(&[false, false, false]), vec![false; 3]);
    }
}

//! `--find-capacity`: which class counts to try, and what the answer is.
//!
//! The count doubles from `--classes` while every SLO holds (capped at `--max-classes`). At the
//! first count that misses one, the search narrows by bisection between the last count that held
//! and the first that missed, until they are adjacent. The answer is the largest count that held
//! (`None` when even the first missed). Each step is a fresh run, so a step never inherits the
//! load of the one before.

/// The state of a capacity search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacitySearch {
    max: u32,
    /// Largest count that held.
    held: Option<u32>,
    /// Smallest count that missed an SLO.
    missed: Option<u32>,
    next: Option<u32>,
    /// Every step so far: (classes, held).
    steps: Vec<(u32, bool)>,
}

impl CapacitySearch {
    /// A search starting at `start` classes, never above `max`.
    pub fn new(start: u32, max: u32) -> Self {
        let start = start.max(1);
        Self {
            max: max.max(start),
            held: None,
            missed: None,
            next: Some(start),
            steps: Vec::new(),
        }
    }

    /// The class count to run next, `None` when the search is over.
    pub fn next(&self) -> Option<u32> {
        self.next
    }

    /// Records the outcome of a run of `classes`, choosing the next count.
    pub fn record(&mut self, classes: u32, held: bool) {
        self.steps.push((classes, held));
        if held {
            self.held = Some(self.held.map_or(classes, |h| h.max(classes)));
        } else {
            self.missed = Some(self.missed.map_or(classes, |m| m.min(classes)));
        }
        self.next = match (self.held, self.missed) {
            // Nothing held yet: the first count missed, there is nothing below to try.
            (None, _) => None,
            (Some(h), None) if h >= self.max => None,
            (Some(h), None) => Some(h.saturating_mul(2).min(self.max)),
            (Some(h), Some(m)) if m <= h + 1 => None,
            (Some(h), Some(m)) => Some(h + (m - h) / 2),
        };
    }

    /// The largest class count that held every SLO.
    pub fn capacity(&self) -> Option<u32> {
        self.held
    }

    /// Whether the search stopped at `--max-classes` without missing an SLO.
    pub fn hit_max(&self) -> bool {
        self.missed.is_none() && self.held == Some(self.max)
    }

    pub fn steps(&self) -> &[(u32, bool)] {
        &self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a server that holds up to `true_capacity` classes.
    fn search(start: u32, max: u32, true_capacity: u32) -> CapacitySearch {
        let mut s = CapacitySearch::new(start, max);
        let mut guard = 0;
        while let Some(n) = s.next() {
            s.record(n, n <= true_capacity);
            guard += 1;
            assert!(guard < 64, "search does not end: {:?}", s.steps());
        }
        s
    }

    #[test]
    fn doubles_then_bisects_to_the_exact_capacity() {
        let s = search(1, 50, 6);
        let tried: Vec<u32> = s.steps().iter().map(|(n, _)| *n).collect();
        // 1, 2, 4 hold, 8 misses; then 6 holds, 7 misses.
        assert_eq!(tried, [1, 2, 4, 8, 6, 7]);
        assert_eq!(s.capacity(), Some(6));
        assert!(!s.hit_max());
        for cap in 1..=40 {
            assert_eq!(search(1, 50, cap).capacity(), Some(cap), "capacity {cap}");
            assert_eq!(search(3, 50, cap.max(3)).capacity(), Some(cap.max(3)));
        }
    }

    #[test]
    fn stops_at_the_maximum() {
        let s = search(4, 10, 100);
        let tried: Vec<u32> = s.steps().iter().map(|(n, _)| *n).collect();
        assert_eq!(tried, [4, 8, 10]);
        assert_eq!(s.capacity(), Some(10));
        assert!(s.hit_max());
    }

    #[test]
    fn nothing_holds() {
        let s = search(2, 10, 1);
        assert_eq!(s.steps(), [(2, false)]);
        assert_eq!(s.capacity(), None);
        assert_eq!(CapacitySearch::new(0, 0).next(), Some(1));
    }
}

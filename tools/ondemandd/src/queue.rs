// SPDX-License-Identifier: GPL-2.0
//! The job queue of the worker threads (pure bookkeeping): first come, first served, except
//! that at most `cap` jobs of one blob run at once, so a slow blob cannot take every worker and
//! leave the READs of other blobs waiting. Jobs without a blob (OPENs) are never held back.

use std::collections::{HashMap, VecDeque};

pub struct Queue<J> {
    jobs: VecDeque<(Option<Vec<u8>>, J)>,
    running: HashMap<Vec<u8>, usize>,
    cap: usize,
}

impl<J> Queue<J> {
    /// A queue letting at most `cap` (at least 1) jobs of a blob run at once.
    pub fn new(cap: usize) -> Queue<J> {
        Queue {
            jobs: VecDeque::new(),
            running: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// Queues `job`, counted against blob `key` if any.
    pub fn push(&mut self, key: Option<Vec<u8>>, job: J) {
        self.jobs.push_back((key, job));
    }

    /// The oldest job that may run now; it counts as running until [`Queue::finish`].
    pub fn take(&mut self) -> Option<(Option<Vec<u8>>, J)> {
        let i = self.jobs.iter().position(|(k, _)| {
            k.as_ref()
                .is_none_or(|k| self.running.get(k).copied().unwrap_or(0) < self.cap)
        })?;
        let (k, j) = self.jobs.remove(i)?;
        if let Some(k) = &k {
            *self.running.entry(k.clone()).or_insert(0) += 1;
        }
        Some((k, j))
    }

    /// A job taken with key `key` is done.
    pub fn finish(&mut self, key: Option<&[u8]>) {
        if let Some(k) = key {
            if let Some(n) = self.running.get_mut(k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.running.remove(k);
                }
            }
        }
    }

    /// Jobs waiting (not running).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.jobs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn fifo_with_a_cap_per_blob() {
        let mut q = Queue::new(2);
        for i in 0..4 {
            q.push(k("slow"), i);
        }
        q.push(k("fast"), 10);
        q.push(None, 20);
        assert_eq!(q.take(), Some((k("slow"), 0)));
        assert_eq!(q.take(), Some((k("slow"), 1)));
        // slow is at its cap: the others pass it
        assert_eq!(q.take(), Some((k("fast"), 10)));
        assert_eq!(q.take(), Some((None, 20)));
        assert_eq!(q.take(), None);
        assert_eq!(q.len(), 2);
        q.finish(Some(b"slow"));
        assert_eq!(q.take(), Some((k("slow"), 2)));
        assert_eq!(q.take(), None);
        q.finish(Some(b"fast"));
        q.finish(None);
        q.finish(Some(b"slow"));
        q.finish(Some(b"slow"));
        assert_eq!(q.take(), Some((k("slow"), 3)));
        q.finish(Some(b"slow"));
        q.finish(Some(b"slow")); // one too many: harmless
        assert!(q.running.is_empty() && q.len() == 0);
        // a cap of 0 means 1
        let mut q = Queue::new(0);
        q.push(k("a"), 1);
        q.push(k("a"), 2);
        assert_eq!(q.take(), Some((k("a"), 1)));
        assert_eq!(q.take(), None);
    }
}

// SPDX-License-Identifier: GPL-2.0
//! Coalescing READs into fetches (pure bookkeeping, no I/O).
//!
//! A READ needs a page-aligned range of its object's blob in the cache file. If fetches of that
//! object already in flight cover part of it, the READ waits for them instead of fetching that
//! part again; only the parts nobody is fetching yet become new fetches (the first widened to
//! the `--window`, but never into a fetch already in flight). A READ is completed once every
//! fetch it waits for is done, each READ with its own completion. Overlapping and duplicate
//! READs therefore cost one fetch.
//!
//! Objects are identified by a serial number of the daemon's (not the kernel's object id,
//! which a later OPEN may reuse); fetches by an id handed out here.

use std::collections::HashMap;

/// A fetch to start: `[start, end)` of object `obj`'s blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewFetch {
    pub id: u64,
    pub start: u64,
    pub end: u64,
}

/// What [`Coalescer::add`] decided for a READ.
#[derive(Debug, PartialEq, Eq)]
pub struct Added {
    /// Fetches the caller must start now (and report with [`Coalescer::done`]).
    pub new: Vec<NewFetch>,
    /// Fetches already in flight that the READ waits for too.
    pub joined: usize,
}

struct Fetch {
    obj: u64,
    start: u64,
    end: u64,
    /// Requests waiting for this fetch (keys of `Coalescer::reqs`).
    waiters: Vec<u64>,
}

struct Req<R> {
    data: R,
    /// Fetches still to finish before the request can be completed.
    pending: usize,
    /// Did every finished fetch succeed?
    ok: bool,
}

/// The fetches in flight and the READs waiting for them. `R` is the caller's data about a READ
/// (its msg_id, when it arrived...), handed back when the READ can be completed.
pub struct Coalescer<R> {
    next_fetch: u64,
    next_req: u64,
    fetches: HashMap<u64, Fetch>,
    /// Fetch ids in flight per object.
    by_obj: HashMap<u64, Vec<u64>>,
    reqs: HashMap<u64, Req<R>>,
}

impl<R> Default for Coalescer<R> {
    fn default() -> Self {
        Coalescer {
            next_fetch: 1,
            next_req: 1,
            fetches: HashMap::new(),
            by_obj: HashMap::new(),
            reqs: HashMap::new(),
        }
    }
}

impl<R> Coalescer<R> {
    /// A READ of object `obj` needing `[start, end)` (non-empty) of a blob of `size` bytes; new
    /// fetches are widened to end at least at `start + window` (clipped to `size`). If nothing
    /// new needs fetching (`new` empty) the READ joined fetches in flight.
    pub fn add(
        &mut self,
        obj: u64,
        data: R,
        start: u64,
        end: u64,
        size: u64,
        window: u64,
    ) -> Added {
        let rid = self.next_req;
        self.next_req += 1;
        let ids = self.by_obj.entry(obj).or_default();
        // In-flight fetches of this object overlapping the need, by start.
        let mut over: Vec<(u64, u64, u64)> = ids
            .iter()
            .filter_map(|id| self.fetches.get(id).map(|f| (f.start, f.end, *id)))
            .filter(|&(s, e, _)| s < end && start < e)
            .collect();
        over.sort_unstable();
        let joined = over.len();
        // The gaps of [start, end) that no fetch in flight covers.
        let mut gaps = Vec::new();
        let mut pos = start;
        for &(s, e, _) in &over {
            if s > pos {
                gaps.push((pos, s));
            }
            pos = pos.max(e);
        }
        if pos < end {
            gaps.push((pos, end));
        }
        let mut new = Vec::new();
        for (i, &(gs, ge)) in gaps.iter().enumerate() {
            // Widen the first gap only, and never into a fetch in flight.
            let mut fe = ge;
            if i == 0 {
                let limit = ids
                    .iter()
                    .filter_map(|id| self.fetches.get(id))
                    .map(|f| f.start)
                    .filter(|&s| s >= ge)
                    .min()
                    .unwrap_or(u64::MAX);
                fe = ge.max(gs.saturating_add(window).min(size)).min(limit);
            }
            let id = self.next_fetch;
            self.next_fetch += 1;
            ids.push(id);
            self.fetches.insert(
                id,
                Fetch {
                    obj,
                    start: gs,
                    end: fe,
                    waiters: vec![rid],
                },
            );
            new.push(NewFetch {
                id,
                start: gs,
                end: fe,
            });
        }
        for &(_, _, id) in &over {
            if let Some(f) = self.fetches.get_mut(&id) {
                f.waiters.push(rid);
            }
        }
        self.reqs.insert(
            rid,
            Req {
                data,
                pending: joined + new.len(),
                ok: true,
            },
        );
        Added { new, joined }
    }

    /// A fetch of `[start, end)` of object `obj` that no READ asked for (a prefetch piece),
    /// registered so that READs of that range arriving while it runs wait for it instead of
    /// fetching it again. None (nothing registered) if a fetch in flight overlaps the range:
    /// the caller should try again once that one is done. Report it with [`Coalescer::done`].
    pub fn begin(&mut self, obj: u64, start: u64, end: u64) -> Option<u64> {
        let busy = self.by_obj.get(&obj).is_some_and(|ids| {
            ids.iter()
                .filter_map(|id| self.fetches.get(id))
                .any(|f| f.start < end && start < f.end)
        });
        if busy {
            return None;
        }
        let id = self.next_fetch;
        self.next_fetch += 1;
        self.by_obj.entry(obj).or_default().push(id);
        self.fetches.insert(
            id,
            Fetch {
                obj,
                start,
                end,
                waiters: Vec::new(),
            },
        );
        Some(id)
    }

    /// Fetch `id` finished (`ok`: its data is in the cache file). Returns the READs that no
    /// longer wait for anything, each with whether all their fetches succeeded.
    pub fn done(&mut self, id: u64, ok: bool) -> Vec<(R, bool)> {
        let Some(f) = self.fetches.remove(&id) else {
            return Vec::new();
        };
        if let Some(ids) = self.by_obj.get_mut(&f.obj) {
            ids.retain(|&x| x != id);
            if ids.is_empty() {
                self.by_obj.remove(&f.obj);
            }
        }
        let mut ready = Vec::new();
        for rid in f.waiters {
            let Some(r) = self.reqs.get_mut(&rid) else {
                continue;
            };
            r.ok &= ok;
            r.pending = r.pending.saturating_sub(1);
            if r.pending == 0 {
                if let Some(r) = self.reqs.remove(&rid) {
                    ready.push((r.data, r.ok));
                }
            }
        }
        ready
    }

    /// Fetches in flight.
    #[cfg(test)]
    pub fn fetches(&self) -> usize {
        self.fetches.len()
    }

    /// READs waiting.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.reqs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;
    const P: u64 = 4096;

    fn f(id: u64, start: u64, end: u64) -> NewFetch {
        NewFetch { id, start, end }
    }

    #[test]
    fn one_read_one_fetch_widened() {
        let mut c = Coalescer::default();
        let a = c.add(1, "r1", 0, P, 10 * M, M);
        assert_eq!(
            a,
            Added {
                new: vec![f(1, 0, M)],
                joined: 0
            }
        );
        // widening stops at the blob's end
        let a = c.add(2, "r2", 9 * M + P, 9 * M + 5000, 9 * M + 5000, M);
        assert_eq!(a.new, vec![f(2, 9 * M + P, 9 * M + 5000)]);
        assert_eq!((c.fetches(), c.waiting()), (2, 2));
        assert_eq!(c.done(1, true), vec![("r1", true)]);
        assert_eq!(c.done(2, false), vec![("r2", false)]);
        assert_eq!(c.done(2, true), vec![], "unknown fetch ids are ignored");
        assert_eq!((c.fetches(), c.waiting()), (0, 0));
    }

    #[test]
    fn duplicates_and_contained_reads_join() {
        let mut c = Coalescer::default();
        assert_eq!(c.add(7, 1, 0, P, 10 * M, M).new, vec![f(1, 0, M)]);
        // the same range again, and a range inside the widened fetch: no new fetch
        assert_eq!(
            c.add(7, 2, 0, P, 10 * M, M),
            Added {
                new: vec![],
                joined: 1
            }
        );
        assert_eq!(
            c.add(7, 3, 8 * P, 9 * P, 10 * M, M),
            Added {
                new: vec![],
                joined: 1
            }
        );
        // another object with the same range is not coalesced
        assert_eq!(c.add(8, 4, 0, P, 10 * M, M).new, vec![f(2, 0, M)]);
        let mut got = c.done(1, true);
        got.sort();
        assert_eq!(got, vec![(1, true), (2, true), (3, true)]);
        assert_eq!(c.done(2, true), vec![(4, true)]);
    }

    #[test]
    fn partial_overlap_fetches_only_the_rest() {
        let mut c = Coalescer::default();
        // window 0: fetches are exactly the need
        assert_eq!(
            c.add(1, 'a', 4 * P, 8 * P, M, 0).new,
            vec![f(1, 4 * P, 8 * P)]
        );
        // [2P, 10P): the parts before and after the fetch in flight
        let a = c.add(1, 'b', 2 * P, 10 * P, M, 0);
        assert_eq!(
            a,
            Added {
                new: vec![f(2, 2 * P, 4 * P), f(3, 8 * P, 10 * P)],
                joined: 1
            }
        );
        assert_eq!(c.done(2, true), vec![]);
        assert_eq!(c.done(1, true), vec![('a', true)]);
        assert_eq!(c.done(3, true), vec![('b', true)]);

        // a failed fetch fails every READ waiting for it, even if its other fetches worked
        assert_eq!(c.add(1, 'c', 0, 2 * P, M, 0).new, vec![f(4, 0, 2 * P)]);
        assert_eq!(c.add(1, 'd', P, 3 * P, M, 0).new, vec![f(5, 2 * P, 3 * P)]);
        assert_eq!(c.done(4, false), vec![('c', false)]);
        assert_eq!(c.done(5, true), vec![('d', false)]);
    }

    #[test]
    fn widening_stops_at_a_fetch_in_flight() {
        let mut c = Coalescer::default();
        assert_eq!(
            c.add(1, 1, 4 * P, 5 * P, M, 0).new,
            vec![f(1, 4 * P, 5 * P)]
        );
        // window 1 MiB from 0 would run into [4P, 5P): it stops there
        assert_eq!(c.add(1, 2, 0, P, M, M).new, vec![f(2, 0, 4 * P)]);
        // a READ spanning both gets the gap after them, the first gap widened
        let a = c.add(1, 3, 0, 8 * P, M, M);
        assert_eq!(
            a,
            Added {
                new: vec![f(3, 5 * P, M)],
                joined: 2
            }
        );
        assert_eq!(c.done(3, true), vec![]);
        assert_eq!(c.done(2, true), vec![(2, true)]);
        assert_eq!(c.done(1, true), vec![(1, true), (3, true)]);
        assert_eq!((c.fetches(), c.waiting()), (0, 0));
    }

    #[test]
    fn reads_join_a_fetch_begun_without_a_read() {
        let mut c = Coalescer::default();
        let p = c.begin(1, 0, 1 << 20).unwrap();
        assert_eq!(c.begin(1, 4096, 8192), None, "overlaps the piece in flight");
        // Another object, and the rest of this one, are free.
        let q = c.begin(2, 0, 4096).unwrap();
        assert!(c.done(q, true).is_empty());
        // A READ inside the piece only waits for it; one across its end fetches the rest.
        let a = c.add(1, 'a', 4096, 8192, 4 << 20, 1 << 20);
        assert_eq!((a.new.len(), a.joined), (0, 1));
        let b = c.add(1, 'b', (1 << 20) - 4096, (1 << 20) + 4096, 4 << 20, 0);
        assert_eq!(b.joined, 1);
        assert_eq!(b.new.len(), 1);
        assert_eq!((b.new[0].start, b.new[0].end), (1 << 20, (1 << 20) + 4096));
        assert_eq!(c.done(p, true), vec![('a', true)]);
        assert_eq!(c.done(b.new[0].id, true), vec![('b', true)]);
        assert_eq!((c.fetches(), c.waiting()), (0, 0));
        assert_eq!(c.begin(1, 4096, 8192).map(|_| ()), Some(()));
    }

    #[test]
    fn no_overflow_at_the_top() {
        let mut c = Coalescer::default();
        let top = u64::MAX - P;
        assert_eq!(
            c.add(1, 1, top, u64::MAX, u64::MAX, u64::MAX).new,
            vec![f(1, top, u64::MAX)]
        );
    }
}

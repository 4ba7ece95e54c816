//! The frontier-gated stash every stateful operator uses: input is held by timely time and handed
//! over only once the input frontier has passed that time.
//!
//! This is the invariant the engine's determinism and checkpoints rest on: an operator's state at
//! a frontier `T` reflects exactly the input at times `< T`, whatever order messages arrived in
//! and however many workers sent them.

use std::collections::BTreeMap;

use timely::dataflow::operators::{Capability, InputCapability};
use timely::progress::frontier::MutableAntichain;

use crate::series::EventTime;

/// Input batches held until their time is complete.
pub struct Stash<D> {
    pending: BTreeMap<EventTime, (Capability<EventTime>, Vec<D>)>,
}

impl<D> Default for Stash<D> {
    fn default() -> Self {
        Stash {
            pending: BTreeMap::new(),
        }
    }
}

impl<D> Stash<D> {
    /// Holds `data` (drained) under the time of `cap`, retaining a capability for output port
    /// `port` so the operator can still emit at that time or later.
    pub fn hold(&mut self, cap: &InputCapability<EventTime>, data: &mut Vec<D>, port: usize) {
        if data.is_empty() {
            return;
        }
        if let Some(cap) = cap.retain_least(port) {
            let time = *cap.time();
            self.pending
                .entry(time)
                .or_insert_with(|| (cap, Vec::new()))
                .1
                .append(data);
        }
    }

    /// Removes and returns, in time order, every batch whose time the frontier has passed.
    pub fn take_complete(
        &mut self,
        frontier: &MutableAntichain<EventTime>,
    ) -> Vec<(Capability<EventTime>, Vec<D>)> {
        let mut ready = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if frontier.less_equal(entry.key()) {
                break;
            }
            ready.push(entry.remove());
        }
        ready
    }

    /// Holds each record at its own time (which must not be earlier than `cap`'s), as
    /// differential dataflow's update streams need: their batches carry a lower bound of the
    /// times inside.
    pub fn hold_at(
        &mut self,
        cap: &InputCapability<EventTime>,
        data: impl IntoIterator<Item = (D, EventTime)>,
        port: usize,
    ) {
        for (d, t) in data {
            let t = cap.least().map_or(t, |l| t.max(*l));
            self.pending
                .entry(t)
                .or_insert_with(|| (cap.delayed(&t, port), Vec::new()))
                .1
                .push(d);
        }
    }

    /// Removes and returns, in time order, every batch whose time is before `limit` (for
    /// operators with several inputs, whose common limit is the least of their frontiers).
    pub fn take_before(&mut self, limit: EventTime) -> Vec<(Capability<EventTime>, Vec<D>)> {
        let mut ready = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() >= limit {
                break;
            }
            ready.push(entry.remove());
        }
        ready
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The earliest time the frontier still allows (`u64::MAX` once the input has ended): everything
/// strictly before it is complete.
pub fn frontier_limit(frontier: &MutableAntichain<EventTime>) -> EventTime {
    frontier
        .frontier()
        .iter()
        .min()
        .copied()
        .unwrap_or(EventTime::MAX)
}

/// Timers: capabilities held at future times, each with the keys to act on then.
pub struct Timers<K> {
    due: BTreeMap<EventTime, (Capability<EventTime>, Vec<K>)>,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            due: BTreeMap::new(),
        }
    }
}

impl<K> Timers<K> {
    /// Schedules `key` at `time`, deriving the capability from `cap` (which must not be later).
    pub fn schedule(&mut self, cap: &Capability<EventTime>, time: EventTime, key: K) {
        self.due
            .entry(time)
            .or_insert_with(|| (cap.delayed(&time), Vec::new()))
            .1
            .push(key);
    }

    /// Removes and returns, in time order, every timer whose time the frontier has passed.
    pub fn take_due(
        &mut self,
        frontier: &MutableAntichain<EventTime>,
    ) -> Vec<(Capability<EventTime>, Vec<K>)> {
        let limit = frontier_limit(frontier);
        std::iter::from_fn(|| self.pop_before(limit)).collect()
    }

    /// Removes and returns the earliest timer if its time is before `limit`.
    pub fn pop_before(&mut self, limit: EventTime) -> Option<(Capability<EventTime>, Vec<K>)> {
        let entry = self.due.first_entry()?;
        (*entry.key() < limit).then(|| entry.remove())
    }

    /// The earliest scheduled time, if any.
    pub fn next_time(&self) -> Option<EventTime> {
        self.due.keys().next().copied()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    /// Every pending (time, key), for checkpoints.
    pub fn pending(&self) -> impl Iterator<Item = (EventTime, &K)> {
        self.due
            .iter()
            .flat_map(|(t, (_, keys))| keys.iter().map(move |k| (*t, k)))
    }
}

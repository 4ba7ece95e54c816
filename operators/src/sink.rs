//! The ordered sink: gathers a stream's records on worker 0 and hands them to a writer time by
//! time, each time's records sorted by a key, once the frontier has passed that time.
//!
//! Records of one timely time can arrive from any worker in any order; sorting them by a key that
//! identifies them makes the written output byte-identical for any number of workers.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use timely::dataflow::channels::pact::Exchange as ExchangePact;
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;

use crate::series::EventTime;
use crate::stash::frontier_limit;

/// Adds the ordered sink to a stream.
pub trait OrderedSinkExt<R> {
    /// Writes the stream's records on worker 0: `write(time, records)` is called once per time,
    /// in time order, with the records sorted by `order`. On other workers `write` is never
    /// called. `progress` is set, after each activation, to the time before which everything
    /// has been written.
    fn ordered_sink<K, O, W>(self, name: &str, progress: Rc<Cell<EventTime>>, order: O, write: W)
    where
        K: Ord,
        O: FnMut(&R) -> K + 'static,
        W: FnMut(EventTime, Vec<R>) + 'static;
}

impl<'scope, R> OrderedSinkExt<R> for StreamVec<'scope, EventTime, R>
where
    R: Serialize + DeserializeOwned + Send + 'static,
{
    fn ordered_sink<K, O, W>(
        self,
        name: &str,
        progress: Rc<Cell<EventTime>>,
        mut order: O,
        mut write: W,
    ) where
        K: Ord,
        O: FnMut(&R) -> K + 'static,
        W: FnMut(EventTime, Vec<R>) + 'static,
    {
        let mut pending: BTreeMap<EventTime, Vec<R>> = BTreeMap::new();
        self.sink(
            ExchangePact::new(|_: &R| 0u64),
            name,
            move |(input, frontier)| {
                input.for_each(|cap, data| {
                    if let Some(t) = cap.least() {
                        pending.entry(*t).or_default().append(data);
                    }
                });
                while let Some(entry) = pending.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (time, mut records) = entry.remove_entry();
                    records.sort_by_cached_key(&mut order);
                    write(time, records);
                }
                progress.set(frontier_limit(frontier));
            },
        );
    }
}

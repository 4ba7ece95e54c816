//! The peer operator: compares, per window end, each series with its peers (same metric and
//! labels, another value of the peer label: the same service on other hosts) and reports the
//! members that stay apart from them ([`PeerGroup`]).
//!
//! Window features are exchanged by the peer group's stable id (the series id of the key without
//! the peer label), so one worker owns each group; series outside the comparison are spread by
//! their own id and dropped when their time is applied. Features of one window end share one
//! timely time, and a time is applied only once the frontier has passed it
//! ([`crate::per_time`]), so every member has arrived; members are then taken in peer-label
//! order, whatever the arrival order.
//!
//! An outlying member becomes a [`Detection`] of its own series' key plus the label
//! `comparison="peers"`, so the alert stage keeps it apart from the series' own alert (a host can
//! be apart from its peers while its own history finds nothing new, and the reverse) and
//! handles it like any series: opened, updated and resolved.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::StreamVec;

use crate::models::peers::{
    PeerConfig, PeerGroup, PeerOutlier, COMPARISON_LABEL, MIN_MEMBERS, PEERS_DETECTOR,
};
use crate::per_time::{per_complete_time, PerTimeState};
use crate::records::{Detection, WindowFeatures};
use crate::rules::Direction;
use crate::series::{series_id, EventTime, SeriesId, SeriesKey};

/// Peer-comparison state of one worker: one [`PeerGroup`] per group it owns.
#[derive(Serialize, Deserialize)]
pub struct PeerState {
    config: Arc<PeerConfig>,
    groups: HashMap<SeriesId, PeerGroup>,
    /// Everything before this time has been applied.
    #[serde(skip)]
    progress: EventTime,
}

impl PeerState {
    /// Empty state.
    pub fn new(config: Arc<PeerConfig>) -> Self {
        PeerState {
            config,
            groups: HashMap::new(),
            progress: 0,
        }
    }

    /// Time before which all input has been applied.
    pub fn progress(&self) -> EventTime {
        self.progress
    }

    /// The settings this state was built for (a checkpoint must match them).
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// Number of groups with state.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Compares one group's members at one window end; `members` sorted by member name.
    fn observe(
        &mut self,
        group: SeriesId,
        end: EventTime,
        members: &[(&str, &WindowFeatures, f64)],
    ) -> Vec<Detection> {
        let cfg = &self.config;
        let values: Vec<(&str, f64)> = members.iter().map(|(m, _, v)| (*m, *v)).collect();
        if values.len() < MIN_MEMBERS {
            // A lone series keeps no state. A group that has been judged keeps its typical
            // spread through windows with members missing (a late or restarting host), so it
            // is not judged on single windows' spreads again when they return.
            match self.groups.get_mut(&group) {
                Some(g) if g.remembers_spread() => {
                    g.observe(cfg, end, &values);
                }
                _ => {
                    self.groups.remove(&group);
                }
            }
            return Vec::new();
        }
        let state = self.groups.entry(group).or_default();
        let outliers = state.observe(cfg, end, &values);
        outliers
            .iter()
            .filter_map(|o| {
                let (_, f, _) = members.iter().find(|(m, _, _)| *m == o.member)?;
                Some(detection(cfg, f, o))
            })
            .collect()
    }
}

/// The group a series compares with (the id of its key without the peer label) and its member
/// name; `None` for series the comparison does not cover.
pub fn peer_group<'a>(cfg: &PeerConfig, key: &'a SeriesKey) -> Option<(SeriesId, &'a str)> {
    if cfg.metrics.as_ref().is_some_and(|m| !m.matches(&key.name)) {
        return None;
    }
    let member = key.label(&cfg.peer_label)?;
    let rest = key
        .labels
        .iter()
        .filter(|(k, _)| *k != cfg.peer_label)
        .map(|(k, v)| (k.as_str(), v.as_str()));
    Some((series_id(&key.name, rest), member))
}

/// The detection reported for member window `f`, apart from its peers as `o` says.
fn detection(cfg: &PeerConfig, f: &WindowFeatures, o: &PeerOutlier) -> Detection {
    let labels = f
        .key
        .labels
        .iter()
        .cloned()
        .chain([(COMPARISON_LABEL.to_string(), PEERS_DETECTOR.to_string())]);
    let key = SeriesKey::new(f.key.name.clone(), labels);
    let score = cfg.score(o.score);
    let deviation = o.actual - o.expected;
    let feature = cfg.feature_of(&f.key.name);
    Detection {
        series: key.id(),
        key: Arc::new(key),
        start: f.start,
        end: f.end,
        score,
        confidence: 1.0,
        actual: o.actual,
        expected: o.expected,
        // The value at which this member would just reach the threshold, the MAD score being
        // proportional to the distance from the group's median.
        threshold: o.expected + deviation * cfg.threshold / o.score,
        direction: if deviation >= 0.0 {
            Direction::Up
        } else {
            Direction::Down
        },
        shape: None,
        detectors: vec![(PEERS_DETECTOR.to_string(), score)],
        affected_features: vec![format!("{}:{}", f.window, feature.name())],
    }
}

impl PerTimeState for PeerState {
    type Input = WindowFeatures;
    type Output = Detection;

    fn keeps(&self, f: &WindowFeatures) -> bool {
        *f.window == *self.config.window
    }

    fn apply(&mut self, batch: &[WindowFeatures], give: &mut impl FnMut(Detection)) {
        // Group by (group, window end), members in name order.
        type Members<'a> = Vec<(&'a str, &'a WindowFeatures, f64)>;
        let mut groups: BTreeMap<(SeriesId, EventTime), Members<'_>> = BTreeMap::new();
        for f in batch {
            let Some((group, member)) = peer_group(&self.config, &f.key) else {
                continue;
            };
            let value = self
                .config
                .feature_of(&f.key.name)
                .of(&f.values)
                .unwrap_or(f64::NAN);
            groups
                .entry((group, f.end))
                .or_default()
                .push((member, f, value));
        }
        for ((group, end), mut members) in groups {
            members.sort_by(|a, b| a.0.cmp(b.0));
            for d in self.observe(group, end, &members) {
                give(d);
            }
        }
    }

    fn applied_until(&mut self, time: EventTime) {
        self.progress = time;
    }
}

/// Adds the peer operator to a stream of window features.
pub trait PeerCompareExt<'scope> {
    /// Compares each series with its peers at each window end; `state` is shared for
    /// checkpoints.
    fn peer_compare(self, state: Rc<RefCell<PeerState>>)
        -> StreamVec<'scope, EventTime, Detection>;
}

impl<'scope> PeerCompareExt<'scope> for StreamVec<'scope, EventTime, WindowFeatures> {
    fn peer_compare(
        self,
        state: Rc<RefCell<PeerState>>,
    ) -> StreamVec<'scope, EventTime, Detection> {
        let cfg = state.borrow().config.clone();
        let route = move |f: &WindowFeatures| {
            peer_group(&cfg, &f.key).map_or(f.series.0, |(group, _)| group.0)
        };
        per_complete_time(self, Exchange::new(route), "PeerCompare", state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::window_stats::FeatureValues;

    fn features(host: &str, end: EventTime, value: f64) -> WindowFeatures {
        let key = SeriesKey::new(
            "latency",
            [
                ("host".to_string(), host.to_string()),
                ("service".to_string(), "api".to_string()),
            ],
        );
        WindowFeatures {
            series: key.id(),
            key: Arc::new(key),
            window: "1m".into(),
            start: end - 60_000,
            end,
            values: FeatureValues::single(value),
        }
    }

    /// Feeds `hosts` at window `t`, each at 100 plus a small fixed offset.
    fn feed(state: &mut PeerState, group: SeriesId, t: u64, hosts: &[&str]) {
        let fs: Vec<WindowFeatures> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| features(h, (t + 1) * 60_000, 100.0 + (i + t as usize % 3) as f64))
            .collect();
        let members: Vec<(&str, &WindowFeatures, f64)> = hosts
            .iter()
            .zip(&fs)
            .map(|(h, f)| (*h, f, f.values.mean))
            .collect();
        state.observe(group, (t + 1) * 60_000, &members);
    }

    #[test]
    fn a_lone_series_keeps_no_state_but_a_judged_group_keeps_its_spread_through_a_gap() {
        let mut state = PeerState::new(Arc::new(PeerConfig::default()));
        let group = SeriesId(7);
        for t in 0..5 {
            feed(&mut state, group, t, &["h1", "h2"]);
        }
        assert_eq!(state.group_count(), 0, "two members are no group");
        for t in 5..30 {
            feed(&mut state, group, t, &["h1", "h2", "h3"]);
        }
        // One window with a member missing (a late host) keeps the group's spread memory.
        feed(&mut state, group, 30, &["h1", "h2"]);
        assert_eq!(state.group_count(), 1);
        assert!(state.groups[&group].remembers_spread());
    }
}

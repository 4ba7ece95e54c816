//! Deduplication and flap detection of alerts, and their muting marks, as a plain state machine.
//!
//! * Alerts are identified by a fingerprint over configurable identifying labels: by default
//!   every label except `severity` and the configured volatile ones (a pod name, an instance),
//!   so series that differ only in a volatile label make one alert whose `count` and
//!   `occurrences` add up.
//! * An alert that resolves and re-fires `flap_count` times within `flap_window_ms` is
//!   *flapping*: it stays open (marked `flapping`) and stops notifying until it has been quiet
//!   for a whole window.
//! * An alert becomes a correlation *node* once confirmed (a member persisted
//!   `confirm_windows` windows, see the alert policy) and stops being one when it resolves:
//!   [`DedupOutput::Node`] carries those insertions and retractions.
//! * Mutes (silences, inhibition) are recomputed over the open alerts whenever something changes;
//!   an alert whose mute changes gets an `updated` event.
//!
//! Memory is bounded by the open alerts plus the fingerprints resolved within the flap window.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::models::matchers::MuteRules;
use crate::models::ModelError;
use crate::records::{AlertEvent, AlertRecord, AlertStatus, AnomalyType};
use crate::series::{stable_hash, EventTime};

/// Deduplication settings (from `rules/correlation.toml`, `[dedup]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DedupConfig {
    /// When not empty, only these labels identify an alert.
    pub identify_by: Vec<String>,
    /// Volatile labels left out of the identity (default: none).
    pub ignore_labels: Vec<String>,
    /// Re-fires within the window that make an alert flapping (default 3).
    pub flap_count: u32,
    /// Flap window (default 1 h).
    pub flap_window_ms: u64,
    /// Anomalous windows that confirm an alert for correlation (default 2).
    pub confirm_windows: u64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            identify_by: Vec::new(),
            ignore_labels: Vec::new(),
            flap_count: 3,
            flap_window_ms: 3_600_000,
            confirm_windows: 2,
        }
    }
}

impl DedupConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.flap_count == 0 {
            return Err(ModelError::InvalidParameter {
                name: "flap_count",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// The identifying labels of `labels`.
    pub fn identity(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        labels
            .iter()
            .filter(|(k, _)| {
                k.as_str() != "severity"
                    && !self.ignore_labels.contains(k)
                    && (self.identify_by.is_empty() || self.identify_by.contains(k))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The fingerprint of `labels` (16 hex digits).
    pub fn fingerprint(&self, labels: &BTreeMap<String, String>) -> String {
        let mut bytes = Vec::new();
        for (k, v) in self.identity(labels) {
            bytes.extend_from_slice(k.as_bytes());
            bytes.push(0xFE);
            bytes.extend_from_slice(v.as_bytes());
            bytes.push(0xFF);
        }
        format!("{:016x}", stable_hash(&bytes))
    }
}

/// Identity of one alert occurrence in the correlation dataflow: fingerprint and onset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeKey {
    /// Onset (ms since the epoch); first so keys sort by time.
    pub onset: EventTime,
    /// Deduplicated fingerprint.
    pub fingerprint: String,
}

/// What correlation knows about a confirmed alert. Immutable while the alert is open, so its
/// retraction matches its insertion exactly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertNode {
    /// Identity.
    pub key: NodeKey,
    /// Entity (service or host).
    pub entity: String,
    /// Whether the value moved up (`false`: down).
    pub up: bool,
    /// Anomaly type.
    pub anomaly_type: AnomalyType,
    /// Identifying labels.
    pub labels: BTreeMap<String, String>,
}

/// What the book emits.
// Alerts are most of the output: boxing them would cost an allocation each to shrink the rarer
// node messages.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum DedupOutput {
    /// A deduplicated alert event.
    Alert(AlertRecord),
    /// A correlation node enters (+1) or leaves (−1).
    Node(AlertNode, isize),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Open {
    onset: EventTime,
    /// Open raw alerts (by raw fingerprint) and their latest count.
    members: BTreeMap<String, u64>,
    /// Windows counted by members that already resolved.
    done_count: u64,
    occurrences: u32,
    flapping: bool,
    node: Option<AlertNode>,
    muted_by: Option<String>,
    seq: u32,
    last: AlertRecord,
    /// Flapping alerts resolve at this deadline once their members are quiet.
    deadline: Option<EventTime>,
}

/// Deduplicated alerts of the correlation worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DedupBook {
    open: BTreeMap<String, Open>,
    /// Resolve times of recently resolved fingerprints (within the flap window), for flapping.
    refires: BTreeMap<String, VecDeque<EventTime>>,
    last_resolved: BTreeMap<String, EventTime>,
    /// When the flap history was last pruned: once per time is enough, and pruning on every
    /// raw event cost time proportional to the history for each event.
    #[serde(default)]
    pruned_at: EventTime,
    /// Raw fingerprint → deduplicated fingerprint of open raw alerts.
    raw_to_dedup: BTreeMap<String, String>,
}

impl DedupBook {
    /// Open deduplicated alerts.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Entries held in total (open alerts plus flap history), for memory checks.
    pub fn state_len(&self) -> usize {
        self.open.len() + self.refires.len() + self.last_resolved.len() + self.raw_to_dedup.len()
    }

    /// Labels of every open alert.
    pub fn open_labels(&self) -> impl Iterator<Item = &BTreeMap<String, String>> + Clone {
        self.open.values().map(|o| &o.last.labels)
    }

    /// Applies one raw alert event at `now`. Returns outputs and, for a flapping alert that just
    /// went quiet, a deadline (fingerprint, time) the caller must fire with [`Self::on_deadline`].
    pub fn on_raw(
        &mut self,
        cfg: &DedupConfig,
        raw: &AlertRecord,
        now: EventTime,
        out: &mut Vec<DedupOutput>,
    ) -> Option<(String, EventTime)> {
        self.forget_old(cfg, now);
        match raw.event {
            AlertEvent::Resolved => self.on_raw_resolved(cfg, raw, now, out),
            _ => {
                self.on_raw_firing(cfg, raw, now, out);
                None
            }
        }
    }

    fn on_raw_firing(
        &mut self,
        cfg: &DedupConfig,
        raw: &AlertRecord,
        now: EventTime,
        out: &mut Vec<DedupOutput>,
    ) {
        let fp = cfg.fingerprint(&raw.labels);
        self.raw_to_dedup
            .insert(raw.fingerprint.clone(), fp.clone());
        let confirmed = raw.count >= cfg.confirm_windows;
        if let Some(open) = self.open.get_mut(&fp) {
            let was_quiet = open.members.is_empty();
            let is_new_member = !open.members.contains_key(&raw.fingerprint);
            open.members.insert(raw.fingerprint.clone(), raw.count);
            open.deadline = None;
            if is_new_member {
                open.occurrences += 1;
            }
            open.last = raw.clone();
            if confirmed && open.node.is_none() {
                let node = node_of(&fp, open.onset, raw, cfg);
                out.push(DedupOutput::Node(node.clone(), 1));
                open.node = Some(node);
            }
            // A flapping alert's re-fire is counted, not notified.
            if !(was_quiet && open.flapping) || raw.event != AlertEvent::Opened {
                let rec = emit(&fp, open, AlertEvent::Updated, now);
                out.push(DedupOutput::Alert(rec));
            }
            return;
        }
        // A re-fire of a recently resolved alert counts towards flapping.
        let mut flapping = false;
        if self.last_resolved.contains_key(&fp) {
            let q = self.refires.entry(fp.clone()).or_default();
            q.push_back(now);
            flapping = q.len() as u32 >= cfg.flap_count;
        }
        let mut open = Open {
            onset: now,
            members: BTreeMap::from([(raw.fingerprint.clone(), raw.count)]),
            done_count: 0,
            occurrences: 1,
            flapping,
            node: None,
            muted_by: None,
            seq: 0,
            last: raw.clone(),
            deadline: None,
        };
        if confirmed {
            let node = node_of(&fp, now, raw, cfg);
            out.push(DedupOutput::Node(node.clone(), 1));
            open.node = Some(node);
        }
        let rec = emit(&fp, &mut open, AlertEvent::Opened, now);
        out.push(DedupOutput::Alert(rec));
        self.open.insert(fp, open);
    }

    fn on_raw_resolved(
        &mut self,
        cfg: &DedupConfig,
        raw: &AlertRecord,
        now: EventTime,
        out: &mut Vec<DedupOutput>,
    ) -> Option<(String, EventTime)> {
        let fp = self
            .raw_to_dedup
            .remove(&raw.fingerprint)
            .unwrap_or_else(|| cfg.fingerprint(&raw.labels));
        let open = self.open.get_mut(&fp)?;
        if let Some(c) = open.members.remove(&raw.fingerprint) {
            open.done_count += c.max(raw.count);
        }
        open.last = AlertRecord {
            ends_at: raw.ends_at.clone(),
            ..raw.clone()
        };
        if !open.members.is_empty() {
            return None;
        }
        if open.flapping {
            let at = now + cfg.flap_window_ms;
            open.deadline = Some(at);
            return Some((fp, at));
        }
        self.resolve(&fp, now, out);
        None
    }

    /// A flapping alert's quiet deadline fired at `now`: resolves it if nothing re-fired.
    pub fn on_deadline(&mut self, fp: &str, now: EventTime, out: &mut Vec<DedupOutput>) {
        let due = self
            .open
            .get(fp)
            .is_some_and(|o| o.members.is_empty() && o.deadline == Some(now));
        if due {
            self.resolve(fp, now, out);
        }
    }

    fn resolve(&mut self, fp: &str, now: EventTime, out: &mut Vec<DedupOutput>) {
        let Some(mut open) = self.open.remove(fp) else {
            return;
        };
        if let Some(node) = open.node.take() {
            out.push(DedupOutput::Node(node, -1));
        }
        let rec = emit(fp, &mut open, AlertEvent::Resolved, now);
        out.push(DedupOutput::Alert(rec));
        self.last_resolved.insert(fp.to_string(), now);
    }

    /// Recomputes every open alert's mute at `now`; alerts whose mute changed get an `updated`
    /// event.
    pub fn refresh_mutes(&mut self, rules: &MuteRules, now: EventTime, out: &mut Vec<DedupOutput>) {
        if rules.inhibit.is_empty() && rules.silences.is_empty() {
            return;
        }
        let firing: Vec<BTreeMap<String, String>> = self
            .open
            .values()
            .filter(|o| !o.members.is_empty())
            .map(|o| o.last.labels.clone())
            .collect();
        let fps: Vec<String> = self.open.keys().cloned().collect();
        for fp in fps {
            let Some(open) = self.open.get_mut(&fp) else {
                continue;
            };
            let muted = rules.muted_by(&open.last.labels, now, firing.iter());
            if muted != open.muted_by {
                open.muted_by = muted;
                // An alert already notified at this time carries its mute in that event rather
                // than in a second one (an alert opened inside a silence opens muted).
                let mut patched = false;
                for o in out.iter_mut() {
                    if let DedupOutput::Alert(a) = o {
                        if a.fingerprint == fp && a.event_time == now {
                            a.muted_by = open.muted_by.clone();
                            patched = true;
                        }
                    }
                }
                if !patched {
                    let rec = emit(&fp, open, AlertEvent::Updated, now);
                    out.push(DedupOutput::Alert(rec));
                }
            }
        }
    }

    /// The mute of an open alert.
    pub fn muted_by(&self, fp: &str) -> Option<&str> {
        self.open.get(fp).and_then(|o| o.muted_by.as_deref())
    }

    fn forget_old(&mut self, cfg: &DedupConfig, now: EventTime) {
        if now == self.pruned_at {
            return;
        }
        self.pruned_at = now;
        let horizon = now.saturating_sub(cfg.flap_window_ms);
        self.last_resolved.retain(|_, t| *t >= horizon);
        self.refires.retain(|_, q| {
            while q.front().is_some_and(|t| *t < horizon) {
                q.pop_front();
            }
            !q.is_empty()
        });
    }
}

fn node_of(fp: &str, onset: EventTime, raw: &AlertRecord, cfg: &DedupConfig) -> AlertNode {
    AlertNode {
        key: NodeKey {
            onset,
            fingerprint: fp.to_string(),
        },
        entity: raw.entity.clone(),
        up: raw.deviation >= 0.0,
        anomaly_type: raw.anomaly_type,
        labels: cfg.identity(&raw.labels),
    }
}

fn emit(fp: &str, open: &mut Open, event: AlertEvent, now: EventTime) -> AlertRecord {
    let id_input = format!("{fp}|{}|{event:?}|{}", open.onset, open.seq);
    open.seq += 1;
    let resolved = event == AlertEvent::Resolved;
    AlertRecord {
        id: format!("{:016x}", stable_hash(id_input.as_bytes())),
        fingerprint: fp.to_string(),
        event,
        status: if resolved {
            AlertStatus::Resolved
        } else {
            AlertStatus::Firing
        },
        starts_at: crate::time_format::rfc3339_millis(open.onset),
        ends_at: if resolved {
            open.last
                .ends_at
                .clone()
                .or_else(|| Some(crate::time_format::rfc3339_millis(now)))
        } else {
            None
        },
        count: open.done_count + open.members.values().sum::<u64>(),
        occurrences: Some(open.occurrences),
        flapping: open.flapping,
        muted_by: open.muted_by.clone(),
        event_time: now,
        ..open.last.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn raw(
        labels: &[(&str, &str)],
        event: AlertEvent,
        count: u64,
        at: EventTime,
    ) -> AlertRecord {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let fp = DedupConfig::default().fingerprint(&labels);
        AlertRecord {
            status: AlertStatus::Firing,
            count,
            ..AlertRecord::sample(labels, fp, event, "carts".into(), at)
        }
    }

    fn alerts(out: &[DedupOutput]) -> Vec<(AlertEvent, u64, bool)> {
        out.iter()
            .filter_map(|o| match o {
                DedupOutput::Alert(a) => Some((a.event, a.count, a.flapping)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn volatile_labels_merge_series_into_one_alert() {
        let cfg = DedupConfig {
            ignore_labels: vec!["pod".into()],
            ..DedupConfig::default()
        };
        let mut book = DedupBook::default();
        let mut out = Vec::new();
        let a = raw(
            &[("service", "carts"), ("pod", "a")],
            AlertEvent::Opened,
            1,
            10,
        );
        let b = raw(
            &[("service", "carts"), ("pod", "b")],
            AlertEvent::Opened,
            3,
            20,
        );
        book.on_raw(&cfg, &a, 10, &mut out);
        book.on_raw(&cfg, &b, 20, &mut out);
        assert_eq!(book.open_count(), 1);
        let recs: Vec<&AlertRecord> = out
            .iter()
            .filter_map(|o| match o {
                DedupOutput::Alert(a) => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(recs[1].occurrences, Some(2));
        assert_eq!(recs[1].count, 4);
        assert_eq!(recs[0].fingerprint, recs[1].fingerprint);
        // Confirmed by b (count 3 ≥ 2): one node insertion.
        assert_eq!(
            out.iter()
                .filter(|o| matches!(o, DedupOutput::Node(_, 1)))
                .count(),
            1
        );
    }

    #[test]
    fn flapping_alert_stays_open_then_resolves_after_a_quiet_window() {
        let cfg = DedupConfig {
            flap_count: 2,
            flap_window_ms: 1000,
            ..DedupConfig::default()
        };
        let mut book = DedupBook::default();
        let l = [("service", "carts")];
        let mut out = Vec::new();
        let mut t = 0;
        let mut deadline = None;
        for _ in 0..4 {
            book.on_raw(&cfg, &raw(&l, AlertEvent::Opened, 1, t), t, &mut out);
            deadline = book.on_raw(
                &cfg,
                &raw(&l, AlertEvent::Resolved, 1, t + 10),
                t + 10,
                &mut out,
            );
            t += 100;
        }
        let events = alerts(&out);
        // Opened, resolved, opened, resolved, then the second re-fire makes it flapping: it
        // opens flapping and stays open through the next resolve and re-fire.
        assert_eq!(events[0], (AlertEvent::Opened, 1, false));
        assert_eq!(events[1].0, AlertEvent::Resolved);
        assert_eq!(events[4], (AlertEvent::Opened, 1, true));
        assert!(!events[5..].iter().any(|e| e.0 == AlertEvent::Resolved));
        let (fp, at) = deadline.expect("a quiet deadline");
        out.clear();
        book.on_deadline(&fp, at, &mut out);
        assert_eq!(alerts(&out), vec![(AlertEvent::Resolved, 2, true)]);
        assert_eq!(book.open_count(), 0);
    }
}

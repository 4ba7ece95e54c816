//! Peer comparison: is one member of a group of like series (the same metric of the same
//! service on different hosts) behaving differently from the others right now? This is
//! Datadog's "outlier monitor" idea: no history of the member itself is needed, only its peers
//! at the same time, so it sees what a per-series detector cannot (a host that degrades slowly,
//! or that fails to follow its peers through a change they all make).
//!
//! A group keeps the last `span` window values of each member present at the latest window end.
//! With at least [`MIN_MEMBERS`] members holding a full span, each window's values are scored as
//! modified z-scores (distance from the members' median in MADs, Iglewicz & Hoaglin), which one
//! odd member among three or more cannot drag. A member is outlying when each of its last `span`
//! values scores above the threshold, on the same side: a brief glitch on one host is not an
//! outlier, a host that stays apart from its peers is.
//!
//! The MAD is computed here rather than with augurs' MAD detector: augurs splits the spread into
//! a lower and an upper MAD over the pooled values, and with the handful of hosts a service
//! usually runs each half holds two or three values, so the odd member inflates its own half. On
//! five hosts over three windows, one host at four times its peers scored 2.3 there (below the
//! 3.5 cut-off); the symmetric MAD of each window scores it above 100.
//!
//! The spread of one window of a few members is itself noisy: the MAD of three values is the
//! middle one's distance from the median, often a small fraction of the members' usual spread,
//! and the third member then scores far above the cut-off by chance. Each window is therefore
//! judged against the larger of its own spread and the group's typical spread (the median of
//! the last [`SPREAD_MEMORY`] windows' spreads): a window whose members happen to agree closely
//! does not make ordinary noise an outlier, while a change every member makes (a wider spread)
//! is still judged on its own spread.
//!
//! A member apart from its peers for longer than `accept_after` windows is taken as different by
//! nature (a bigger machine, a canary with other settings) and reported no more until it rejoins
//! them; otherwise one odd host would hold an alert open for ever.

use std::collections::BTreeMap;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::models::detector_set::FeatureChoice;
use crate::models::window_stats::Feature;
use crate::models::ModelError;
use crate::rules::MetricPattern;
use crate::series::EventTime;

/// 1 / Φ⁻¹(3/4): the MAD of normal noise times this is its σ.
const MAD_TO_SIGMA: f64 = 1.4826;

/// Label added to the key of a series reported as apart from its peers (its value is
/// [`PEERS_DETECTOR`]), so the alert differs from the series' own.
pub const COMPARISON_LABEL: &str = "comparison";

/// Detector name of peer comparison in alerts' `detectors`.
pub const PEERS_DETECTOR: &str = "peers";

/// Fewest members with a full span before a group is judged: with two, neither is the odd one.
pub const MIN_MEMBERS: usize = 3;

/// Windows whose spreads make a group's typical spread (an hour of 1-minute windows).
pub const SPREAD_MEMORY: usize = 60;

/// Spreads remembered before the typical spread is used: fewer say little about it.
const MIN_SPREADS: usize = 10;

/// Settings of peer comparison (`[peers]` in the config; absent: off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerConfig {
    /// Window spec whose closed windows are compared (default `1m`).
    pub window: String,
    /// Feature compared (default: the counter rate for counters, else the mean).
    pub feature: Option<Feature>,
    /// Metrics compared, an anchored regular expression over the name (default: every metric).
    pub metrics: Option<MetricPattern>,
    /// Label whose values tell peers apart (default `host`): series equal in name and in every
    /// other label are peers. Series without it are not compared.
    pub peer_label: String,
    /// Consecutive windows a member must stay apart, on one side, before it is outlying
    /// (default 3).
    pub span: usize,
    /// Score above which a value is apart: its distance from the members' median in σ of their
    /// spread (1.4826 × MAD, or the group's typical spread when larger; default 3.5, Iglewicz
    /// & Hoaglin's cut-off for modified z-scores).
    pub threshold: f64,
    /// Windows after which a member that stays apart is taken as different by nature and no
    /// longer reported (default 60; 0: never).
    pub accept_after: usize,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            window: "1m".into(),
            feature: None,
            metrics: None,
            peer_label: "host".into(),
            span: 3,
            threshold: 3.5,
            accept_after: 60,
        }
    }
}

impl PeerConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let span = self.span;
        ModelError::require(
            (1..=1000).contains(&span),
            "span",
            "between 1 and 1000",
            span as f64,
        )?;
        let t = self.threshold;
        ModelError::require(t.is_finite() && t > 0.0, "threshold", "positive", t)?;
        if self.peer_label.is_empty() {
            return Err(ModelError::InvalidParameter {
                name: "peer_label",
                reason: "must name a label".into(),
            });
        }
        Ok(())
    }

    /// The feature compared on series `metric`.
    pub fn feature_of(&self, metric: &str) -> Feature {
        self.feature
            .map_or(FeatureChoice::Auto, FeatureChoice::Fixed)
            .resolve(metric)
    }

    /// Maps a member's MAD score to the fused-score scale: the threshold scores 0.5 (the
    /// shipped alert level), twice it 0.67, ten times 0.91.
    pub fn score(&self, mad_score: f64) -> f64 {
        mad_score / (mad_score + self.threshold)
    }
}

/// An outlying member at one window.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerOutlier {
    /// The member (the peer label's value).
    pub member: String,
    /// Its latest value.
    pub actual: f64,
    /// The median of the group's latest values.
    pub expected: f64,
    /// Its smallest score over the span (distance from the median in σ of the spread used):
    /// how far apart it has stayed.
    pub score: f64,
}

/// One member's recent values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Member {
    values: VecDeque<f64>,
    /// Window end of its latest value.
    last_end: EventTime,
    /// Consecutive windows it has been outlying.
    apart_for: usize,
}

/// Median of `values` (reordered) and their spread as a normal σ (1.4826 × MAD); `None`
/// when the MAD is zero.
fn median_and_scale(values: &mut [f64]) -> Option<(f64, f64)> {
    let median = middle(values);
    for v in values.iter_mut() {
        *v = (*v - median).abs();
    }
    let mad = middle(values);
    (mad > 0.0).then_some((median, MAD_TO_SIGMA * mad))
}

/// The median of `values` (reordered; the mean of the two middle values for an even count).
fn middle(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Recent values of one peer group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerGroup {
    members: BTreeMap<String, Member>,
    /// The spread (σ from the MAD) of each recent window with enough members, oldest first;
    /// absent from checkpoints written before it existed (they start with none).
    #[serde(default)]
    spreads: VecDeque<f64>,
}

impl PeerGroup {
    /// Adds the values of the members present at window end `end` and returns the members
    /// outlying now. A member absent at `end` is forgotten (its span would mix times); one that
    /// returns starts a new span.
    pub fn observe(
        &mut self,
        cfg: &PeerConfig,
        end: EventTime,
        values: &[(&str, f64)],
    ) -> Vec<PeerOutlier> {
        if values.len() < MIN_MEMBERS {
            // Too few present to judge anyone, and the absent ones would be forgotten below:
            // only the typical spread is worth keeping (a lone series never has one).
            self.members.clear();
            return Vec::new();
        }
        for &(name, value) in values {
            if !self.members.contains_key(name) {
                self.members.insert(name.to_string(), Member::default());
            }
            let Some(m) = self.members.get_mut(name) else {
                continue;
            };
            if !value.is_finite() {
                // An undefined value breaks the span rather than joining it.
                m.values.clear();
                m.last_end = end;
                continue;
            }
            if m.values.len() == cfg.span {
                m.values.pop_front();
            }
            m.values.push_back(value);
            m.last_end = end;
        }
        self.members.retain(|_, m| m.last_end == end);
        let apart = self.apart(cfg);
        self.remember_spread();
        let mut out = Vec::new();
        for (name, m) in &mut self.members {
            match apart.iter().find(|o| o.member == *name) {
                Some(o) => {
                    m.apart_for += 1;
                    if cfg.accept_after == 0 || m.apart_for <= cfg.accept_after {
                        out.push(o.clone());
                    }
                }
                None => m.apart_for = 0,
            }
        }
        out
    }

    /// Adds the spread of the members' latest values to the group's memory (none when too few
    /// are present or they do not differ).
    fn remember_spread(&mut self) {
        let mut latest: Vec<f64> = self
            .members
            .values()
            .filter_map(|m| m.values.back().copied())
            .collect();
        if latest.len() < MIN_MEMBERS {
            return;
        }
        if let Some((_, spread)) = median_and_scale(&mut latest) {
            if self.spreads.len() == SPREAD_MEMORY {
                self.spreads.pop_front();
            }
            self.spreads.push_back(spread);
        }
    }

    /// The group's typical spread: the median of the remembered spreads (0 until
    /// [`MIN_SPREADS`] are held).
    fn typical_spread(&self) -> f64 {
        if self.spreads.len() < MIN_SPREADS {
            return 0.0;
        }
        let mut s: Vec<f64> = self.spreads.iter().copied().collect();
        middle(&mut s)
    }

    /// Members whose every value in the span scores above the threshold on the same side
    /// (empty with fewer than [`MIN_MEMBERS`] full members). A window where the members have no
    /// spread (all equal but the odd one, e.g. zero errors everywhere else) judges nobody: the
    /// per-series detectors already see such a value as a change of that series.
    fn apart(&self, cfg: &PeerConfig) -> Vec<PeerOutlier> {
        let full: Vec<(&String, &VecDeque<f64>)> = self
            .members
            .iter()
            .filter(|(_, m)| m.values.len() == cfg.span)
            .map(|(name, m)| (name, &m.values))
            .collect();
        if full.len() < MIN_MEMBERS {
            return Vec::new();
        }
        // Signed modified z-scores of every member at every window of the span; the members'
        // spans end at the same window, so position `i` is one window end for all of them.
        let mut lowest: Vec<f64> = vec![f64::INFINITY; full.len()];
        let mut sign: Vec<f64> = vec![0.0; full.len()];
        let mut median = 0.0;
        let mut column: Vec<f64> = Vec::with_capacity(full.len());
        let typical = self.typical_spread();
        for i in 0..cfg.span {
            column.clear();
            column.extend(full.iter().map(|(_, v)| v[i]));
            let Some((m, spread)) = median_and_scale(&mut column) else {
                return Vec::new();
            };
            let scale = spread.max(typical);
            median = m;
            for (k, (_, v)) in full.iter().enumerate() {
                let z = (v[i] - m) / scale;
                if i == 0 {
                    sign[k] = z.signum();
                } else if z.signum() != sign[k] {
                    sign[k] = 0.0;
                }
                lowest[k] = lowest[k].min(z.abs());
            }
        }
        full.iter()
            .enumerate()
            .filter(|&(k, _)| sign[k] != 0.0 && lowest[k] > cfg.threshold)
            .map(|(k, (name, v))| PeerOutlier {
                member: (*name).clone(),
                actual: v[v.len() - 1],
                expected: median,
                score: lowest[k],
            })
            .collect()
    }

    /// Whether the group has a spread memory: it has been judged with enough members.
    pub fn remembers_spread(&self) -> bool {
        !self.spreads.is_empty()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: [(&str, f64); 5] = [
        ("h1", 10.0),
        ("h2", 10.5),
        ("h3", 9.8),
        ("h4", 10.2),
        ("h5", 10.1),
    ];

    /// Feeds windows `0..n` of the five hosts, `odd(host, t)` overriding a host's value.
    fn feed(
        cfg: &PeerConfig,
        g: &mut PeerGroup,
        windows: std::ops::Range<u64>,
        odd: impl Fn(&str, u64) -> Option<f64>,
    ) -> Vec<Vec<PeerOutlier>> {
        windows
            .map(|t| {
                let values: Vec<(&str, f64)> = HOSTS
                    .iter()
                    .map(|&(h, base)| (h, odd(h, t).unwrap_or(base + 0.1 * t as f64)))
                    .collect();
                g.observe(cfg, t * 60_000, &values)
            })
            .collect()
    }

    #[test]
    fn the_host_that_stays_apart_from_its_peers_is_outlying() {
        let cfg = PeerConfig::default();
        let mut g = PeerGroup::default();
        let out = feed(&cfg, &mut g, 0..8, |h, t| {
            (h == "h3" && t >= 3).then_some(40.0)
        });
        // Windows 3 and 4 are apart but the span (3) is not yet: no outlier before window 5.
        assert!(out[..5].iter().all(Vec::is_empty), "{out:?}");
        for o in &out[5..] {
            assert_eq!(o.len(), 1, "{o:?}");
            assert_eq!(o[0].member, "h3");
            assert_eq!(o[0].actual, 40.0);
            assert!(o[0].expected < 11.0 && o[0].score > cfg.threshold);
        }
    }

    #[test]
    fn three_alike_noisy_peers_are_not_outliers_but_a_drifting_one_is() {
        // Three hosts with the same noise (σ 3 around 100, seeded): a window's MAD of three
        // values is often a small fraction of σ, and judged on it alone ordinary noise kept one
        // host apart for a whole span in 8 of these 20,000 windows.
        let cfg = PeerConfig::default();
        let mut g = PeerGroup::default();
        let mut state = 99u64;
        let mut normal = || {
            let mut uniform = || {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            let (u1, u2) = (uniform(), uniform());
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        };
        let mut false_outliers = 0;
        for t in 0..20_000u64 {
            let values: Vec<(&str, f64)> = ["h1", "h2", "h3"]
                .iter()
                .map(|h| (*h, 100.0 + 3.0 * normal()))
                .collect();
            false_outliers += g.observe(&cfg, t * 60_000, &values).len();
        }
        assert!(
            false_outliers <= 1,
            "{false_outliers} windows called noise an outlier"
        );
        // Then h2 climbs 3 per window: 5 σ above its peers by window 5, reported soon after.
        let mut found = None;
        for k in 0..20u64 {
            let values: Vec<(&str, f64)> = ["h1", "h2", "h3"]
                .iter()
                .map(|h| {
                    let drift = if *h == "h2" { 3.0 * k as f64 } else { 0.0 };
                    (*h, 100.0 + drift + 3.0 * normal())
                })
                .collect();
            let out = g.observe(&cfg, (20_000 + k) * 60_000, &values);
            if found.is_none() && out.iter().any(|o| o.member == "h2") {
                found = Some(k);
            }
        }
        assert!(
            found.is_some_and(|k| k <= 10),
            "drift reported at {found:?}"
        );
    }

    #[test]
    fn a_glitch_shorter_than_the_span_or_a_move_of_every_peer_is_not() {
        let cfg = PeerConfig::default();
        let mut g = PeerGroup::default();
        let glitch = feed(&cfg, &mut g, 0..10, |h, t| {
            (h == "h2" && t == 5).then_some(40.0)
        });
        assert!(glitch.iter().all(Vec::is_empty), "{glitch:?}");
        let together = feed(&cfg, &mut g, 10..20, |h, t| {
            let base = HOSTS.iter().find(|x| x.0 == h).map_or(0.0, |x| x.1);
            (t >= 13).then_some(base * 3.0)
        });
        assert!(together.iter().all(Vec::is_empty), "{together:?}");
    }

    #[test]
    fn a_member_apart_for_longer_than_accept_after_is_accepted_until_it_rejoins() {
        let cfg = PeerConfig {
            accept_after: 4,
            ..PeerConfig::default()
        };
        let mut g = PeerGroup::default();
        let out = feed(&cfg, &mut g, 0..20, |h, t| {
            (h == "h1" && (2..12).contains(&t)).then_some(99.0)
        });
        let reported: Vec<u64> = (0..20).filter(|&t| !out[t as usize].is_empty()).collect();
        assert_eq!(
            reported,
            vec![4, 5, 6, 7],
            "outlying from window 4, accepted after 4"
        );
        // It rejoined at window 12; apart again later, it is reported again.
        let again = feed(&cfg, &mut g, 20..26, |h, t| {
            (h == "h1" && t >= 20).then_some(99.0)
        });
        assert_eq!(again[2].len(), 1, "{again:?}");
    }

    #[test]
    fn too_few_peers_uniform_values_or_absent_members_give_nothing() {
        let cfg = PeerConfig::default();
        let mut g = PeerGroup::default();
        for t in 0..5 {
            g.observe(&cfg, t, &[("a", 1.0), ("b", 100.0)]);
        }
        assert!(g.observe(&cfg, 5, &[("a", 1.0), ("b", 100.0)]).is_empty());
        assert!(
            g.observe(&cfg, 6, &[("a", 1.0), ("b", 100.0), ("c", 1.0)])
                .is_empty(),
            "c's span is not full"
        );
        // All equal but one: no spread to judge against.
        let mut flat = PeerGroup::default();
        for t in 0..5 {
            let o = flat.observe(&cfg, t, &[("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 5.0)]);
            assert!(o.is_empty());
        }
        // A member that stops reporting is forgotten; with fewer than three present the group
        // keeps nothing.
        let three = [("a", 0.0), ("b", 0.0), ("c", 0.0)];
        assert!(flat.observe(&cfg, 5, &three).is_empty());
        assert_eq!(flat.len(), 3);
        assert!(flat.observe(&cfg, 6, &three[..2]).is_empty());
        assert!(flat.is_empty());
    }

    #[test]
    fn a_restored_group_continues_as_the_original() {
        let cfg = PeerConfig::default();
        let odd = |h: &str, t: u64| (h == "h5" && t >= 4).then_some(70.0);
        let mut g = PeerGroup::default();
        feed(&cfg, &mut g, 0..5, odd);
        let json = serde_json::to_string(&g).expect("serialize");
        let mut restored: PeerGroup = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(restored, g);
        let original = feed(&cfg, &mut g, 5..12, odd);
        assert_eq!(feed(&cfg, &mut restored, 5..12, odd), original);
        assert!(original.iter().any(|o| !o.is_empty()));
    }

    #[test]
    fn the_score_maps_the_threshold_to_the_alert_level() {
        let cfg = PeerConfig::default();
        assert!((cfg.score(cfg.threshold) - 0.5).abs() < 1e-12);
        assert!(cfg.score(10.0 * cfg.threshold) > 0.9);
    }
}

//! Peer comparison: is one member of a group of like series (the same metric of the same
//! service on different hosts) behaving differently from the others right now?
//!
//! A group keeps the last `span` window values of each member. When at least three members have
//! a full span, augurs' MAD outlier detector (a double-MAD test over the pooled values, robust to
//! a minority of outliers) scores each member at the latest window; members whose score exceeds
//! the threshold are outlying. This is Datadog's "outlier monitor" idea: no history of the member
//! itself is needed, only its peers at the same time.

use std::collections::BTreeMap;
use std::collections::VecDeque;

use augurs::outlier::{MADDetector, OutlierDetector};
use serde::{Deserialize, Serialize};

use crate::models::ModelError;

/// Settings of peer comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerConfig {
    /// Label whose values tell peers apart (default `host`): series equal in every other label
    /// and in name are peers.
    pub peer_label: String,
    /// Recent windows compared (default 5: a brief glitch on one host is not yet an outlier).
    pub span: usize,
    /// MAD score above which a member is outlying (default 3.5, Iglewicz & Hoaglin's cut-off for
    /// modified z-scores).
    pub threshold: f64,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            peer_label: "host".into(),
            span: 5,
            threshold: 3.5,
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
        ModelError::require(t.is_finite() && t > 0.0, "threshold", "positive", t)
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
    /// Its MAD score at the latest window (mean over the span).
    pub score: f64,
}

/// Recent values of one peer group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerGroup {
    members: BTreeMap<String, VecDeque<f64>>,
}

impl PeerGroup {
    /// Adds a member's window value.
    pub fn push(&mut self, cfg: &PeerConfig, member: &str, value: f64) {
        if !value.is_finite() {
            return;
        }
        let q = self.members.entry(member.to_string()).or_default();
        if q.len() == cfg.span {
            q.pop_front();
        }
        q.push_back(value);
    }

    /// Members outlying over the last span (empty with fewer than three full members or when
    /// the group is too uniform for a MAD).
    pub fn outliers(&self, cfg: &PeerConfig) -> Vec<PeerOutlier> {
        let full: Vec<(&String, Vec<f64>)> = self
            .members
            .iter()
            .filter(|(_, q)| q.len() == cfg.span)
            .map(|(m, q)| (m, q.iter().copied().collect()))
            .collect();
        if full.len() < 3 {
            return Vec::new();
        }
        let rows: Vec<&[f64]> = full.iter().map(|(_, v)| v.as_slice()).collect();
        let detector = MADDetector::with_threshold(cfg.threshold);
        // augurs' errors are not Send; a group it cannot judge (zero MAD) has no outlier.
        let Ok(pre) = detector.preprocess(&rows) else {
            return Vec::new();
        };
        let Ok(out) = detector.detect(&pre) else {
            return Vec::new();
        };
        let mut latest: Vec<f64> = full.iter().map(|(_, v)| v[v.len() - 1]).collect();
        latest.sort_by(f64::total_cmp);
        let median = latest[latest.len() / 2];
        full.iter()
            .zip(out.series_results.iter())
            .filter(|(_, r)| r.is_outlier)
            .map(|((m, v), r)| {
                let finite: Vec<f64> = r.scores.iter().copied().filter(|s| s.is_finite()).collect();
                PeerOutlier {
                    member: (*m).clone(),
                    actual: v[v.len() - 1],
                    expected: median,
                    score: finite.iter().sum::<f64>() / finite.len().max(1) as f64,
                }
            })
            .collect()
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

    #[test]
    fn the_host_that_differs_from_its_peers_is_outlying() {
        let cfg = PeerConfig::default();
        let mut g = PeerGroup::default();
        for t in 0..5 {
            for (h, base) in [
                ("h1", 10.0),
                ("h2", 10.5),
                ("h3", 9.8),
                ("h4", 10.2),
                ("h5", 10.1),
            ] {
                let v = if h == "h3" && t >= 2 {
                    40.0
                } else {
                    base + 0.1 * t as f64
                };
                g.push(&cfg, h, v);
            }
        }
        let out = g.outliers(&cfg);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].member, "h3");
        assert!(out[0].actual > out[0].expected);
    }

    #[test]
    fn too_few_peers_or_uniform_values_give_nothing() {
        let cfg = PeerConfig::default();
        let mut g = PeerGroup::default();
        for _ in 0..5 {
            g.push(&cfg, "a", 1.0);
            g.push(&cfg, "b", 100.0);
        }
        assert!(g.outliers(&cfg).is_empty());
        g.push(&cfg, "c", 1.0);
        assert!(g.outliers(&cfg).is_empty(), "c's span is not full");
    }
}

//! Escalation policies: an incident's escalation level from how long it has been open
//! (escalating repeat intervals: by default 1 h, then 4 h, then every day), and from rules on
//! severity, alert count and duration that set a minimum level at once.

use serde::{Deserialize, Serialize};

use crate::models::ModelError;
use crate::records::Severity;
use crate::series::EventTime;

/// A rule: when every condition it states holds, the level is at least `level`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationRule {
    /// Name shown in the escalation reason.
    pub name: String,
    /// Level it sets.
    pub level: u32,
    /// Condition: the incident's severity is at least this.
    pub min_severity: Option<Severity>,
    /// Condition: the incident has at least this many alerts.
    pub min_alerts: Option<usize>,
    /// Condition: the incident has been open this long.
    pub after_ms: Option<u64>,
}

/// The policy (from `rules/escalation.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationPolicy {
    /// While an incident stays open it escalates one level after each interval; the last
    /// interval repeats (default 1 h, 4 h, 1 d).
    pub repeat_intervals_ms: Vec<u64>,
    /// Rules, any order.
    pub rules: Vec<EscalationRule>,
}

impl Default for EscalationPolicy {
    fn default() -> Self {
        EscalationPolicy {
            repeat_intervals_ms: vec![3_600_000, 4 * 3_600_000, 24 * 3_600_000],
            rules: Vec::new(),
        }
    }
}

/// Levels above this are not counted further (a month of daily repeats).
const MAX_LEVEL: u32 = 32;

impl EscalationPolicy {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.repeat_intervals_ms.contains(&0) {
            return Err(ModelError::InvalidParameter {
                name: "repeat_intervals_secs",
                reason: "intervals must be positive".into(),
            });
        }
        Ok(())
    }

    /// Level of an incident opened at `opened`, at `now`, with its severity and alert count;
    /// with the reason of the deciding rule or interval.
    pub fn level(
        &self,
        opened: EventTime,
        now: EventTime,
        severity: Severity,
        alerts: usize,
    ) -> (u32, Option<String>) {
        let elapsed = now.saturating_sub(opened);
        let mut level = 0;
        let mut reason = None;
        let mut at = 0u64;
        for k in 0..MAX_LEVEL {
            let step = match self.repeat_intervals_ms.get(k as usize) {
                Some(s) => *s,
                None => match self.repeat_intervals_ms.last() {
                    Some(s) => *s,
                    None => break,
                },
            };
            at = at.saturating_add(step);
            if at > elapsed {
                break;
            }
            level = k + 1;
            reason = Some(format!("open for {} min", elapsed / 60_000));
        }
        for r in &self.rules {
            let holds = r.min_severity.is_none_or(|s| severity >= s)
                && r.min_alerts.is_none_or(|n| alerts >= n)
                && r.after_ms.is_none_or(|d| elapsed >= d);
            if holds && r.level > level {
                level = r.level;
                reason = Some(format!("rule {}", r.name));
            }
        }
        (level, reason)
    }

    /// The next time after `now` at which the level of an incident opened at `opened` can rise
    /// without any alert changing.
    pub fn next_deadline(&self, opened: EventTime, now: EventTime) -> Option<EventTime> {
        let mut best: Option<EventTime> = None;
        let mut at = opened;
        for k in 0..MAX_LEVEL as usize {
            let step = self
                .repeat_intervals_ms
                .get(k)
                .or(self.repeat_intervals_ms.last())
                .copied()?;
            at = at.saturating_add(step);
            if at > now {
                best = Some(at);
                break;
            }
        }
        for r in &self.rules {
            if let Some(d) = r.after_ms {
                let t = opened.saturating_add(d);
                if t > now && best.is_none_or(|b| t < b) {
                    best = Some(t);
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeat_intervals_escalate_one_level_each() {
        let p = EscalationPolicy::default();
        let h = 3_600_000;
        assert_eq!(p.level(0, h - 1, Severity::Low, 2).0, 0);
        assert_eq!(p.level(0, h, Severity::Low, 2).0, 1);
        assert_eq!(p.level(0, 5 * h, Severity::Low, 2).0, 2);
        assert_eq!(p.level(0, 29 * h, Severity::Low, 2).0, 3);
        assert_eq!(p.level(0, 53 * h, Severity::Low, 2).0, 4);
        assert_eq!(p.next_deadline(0, 0), Some(h));
        assert_eq!(p.next_deadline(0, h), Some(5 * h));
        assert_eq!(p.next_deadline(0, 29 * h), Some(53 * h));
    }

    #[test]
    fn rules_set_a_minimum_level() {
        let p = EscalationPolicy {
            repeat_intervals_ms: vec![3_600_000],
            rules: vec![EscalationRule {
                name: "critical".into(),
                level: 2,
                min_severity: Some(Severity::Critical),
                min_alerts: Some(3),
                after_ms: None,
            }],
        };
        assert_eq!(p.level(0, 0, Severity::Critical, 2).0, 0);
        let (level, reason) = p.level(0, 0, Severity::Critical, 3);
        assert_eq!(level, 2);
        assert_eq!(reason.as_deref(), Some("rule critical"));
        assert!(p.validate().is_ok());
        assert!(EscalationPolicy {
            repeat_intervals_ms: vec![0],
            rules: vec![]
        }
        .validate()
        .is_err());
    }
}

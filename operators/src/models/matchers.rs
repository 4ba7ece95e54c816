//! Alertmanager's muting semantics: label matchers (`=`, `!=`, `=~`, `!~`, regexes fully
//! anchored), inhibition rules (a firing source alert mutes target alerts that carry the same
//! values for the `equal` labels; an alert never inhibits itself) and silences (matchers plus a
//! time window). Muted alerts are marked with the reason, never dropped.

use std::collections::BTreeMap;

use regex::Regex;

use crate::series::EventTime;

/// How a matcher compares a label's value.
#[derive(Debug, Clone)]
pub enum MatchOp {
    /// Equal (a missing label is the empty string, as in Alertmanager).
    Eq(String),
    /// Not equal.
    Ne(String),
    /// Matches the anchored regex.
    Re(Regex),
    /// Does not match the anchored regex.
    NotRe(Regex),
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub label: String,
    /// Comparison.
    pub op: MatchOp,
}

impl Matcher {
    /// Parses `name="value"`, `name!="value"`, `name=~"re"` or `name!~"re"` (quotes optional).
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let t = text.trim();
        let ops = ["!~", "=~", "!=", "="];
        let (pos, op) = ops
            .iter()
            .filter_map(|op| t.find(op).map(|p| (p, *op)))
            .min_by_key(|(p, op)| (*p, std::cmp::Reverse(op.len())))
            .ok_or_else(|| format!("matcher {t:?} has no operator (=, !=, =~, !~)"))?;
        let label = t[..pos].trim();
        if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("matcher {t:?}: {label:?} is not a label name"));
        }
        let raw = t[pos + op.len()..].trim();
        let value = raw
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(raw)
            .to_string();
        let regex = |v: &str| {
            crate::rules::anchored_regex(v)
                .map_err(|e| format!("matcher {t:?}: invalid regular expression: {e}"))
        };
        let op = match op {
            "=" => MatchOp::Eq(value),
            "!=" => MatchOp::Ne(value),
            "=~" => MatchOp::Re(regex(&value)?),
            _ => MatchOp::NotRe(regex(&value)?),
        };
        Ok(Matcher {
            label: label.to_string(),
            op,
        })
    }

    /// Whether `labels` satisfy the matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.label).map(String::as_str).unwrap_or("");
        match &self.op {
            MatchOp::Eq(x) => v == x,
            MatchOp::Ne(x) => v != x,
            MatchOp::Re(r) => r.is_match(v),
            MatchOp::NotRe(r) => !r.is_match(v),
        }
    }
}

/// Whether every matcher matches.
pub fn all_match(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// An inhibition rule: while an alert matching `source` fires, alerts matching `target` with the
/// same values of the `equal` labels are muted.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    /// Name shown in `muted_by` (`inhibited:<name>`).
    pub name: String,
    /// Matchers of the muting alert.
    pub source: Vec<Matcher>,
    /// Matchers of the muted alerts.
    pub target: Vec<Matcher>,
    /// Labels whose values must agree.
    pub equal: Vec<String>,
}

/// A silence: alerts matching `matchers` are muted between `starts_at` and `ends_at`.
#[derive(Debug, Clone)]
pub struct Silence {
    /// Name shown in `muted_by` (`silence:<name>`).
    pub name: String,
    /// Matchers.
    pub matchers: Vec<Matcher>,
    /// Start (ms since the epoch, inclusive).
    pub starts_at: EventTime,
    /// End (ms since the epoch, exclusive).
    pub ends_at: EventTime,
}

/// Every muting rule.
#[derive(Debug, Clone, Default)]
pub struct MuteRules {
    /// Inhibition rules, in file order.
    pub inhibit: Vec<InhibitRule>,
    /// Silences, in file order.
    pub silences: Vec<Silence>,
}

impl MuteRules {
    /// Why `labels` are muted at `now` given the labels of every firing alert (`firing`, which
    /// may include `labels` itself), or `None`. Silences are checked first, then inhibition;
    /// the first matching rule names the reason.
    pub fn muted_by<'a>(
        &self,
        labels: &BTreeMap<String, String>,
        now: EventTime,
        firing: impl Iterator<Item = &'a BTreeMap<String, String>> + Clone,
    ) -> Option<String> {
        for s in &self.silences {
            if s.starts_at <= now && now < s.ends_at && all_match(&s.matchers, labels) {
                return Some(format!("silence:{}", s.name));
            }
        }
        for rule in &self.inhibit {
            if !all_match(&rule.target, labels) {
                continue;
            }
            let inhibited = firing.clone().any(|src| {
                !std::ptr::eq(src, labels)
                    && src != labels
                    && all_match(&rule.source, src)
                    && rule.equal.iter().all(|l| src.get(l) == labels.get(l))
            });
            if inhibited {
                return Some(format!("inhibited:{}", rule.name));
            }
        }
        None
    }

    /// Times at which a silence starts or ends (where muting can change without any alert).
    pub fn boundaries(&self) -> Vec<EventTime> {
        let mut out: Vec<EventTime> = self
            .silences
            .iter()
            .flat_map(|s| [s.starts_at, s.ends_at])
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matchers_parse_and_match_like_alertmanager() {
        let l = labels(&[("service", "carts"), ("severity", "high")]);
        assert!(Matcher::parse("service=\"carts\"").unwrap().matches(&l));
        assert!(Matcher::parse("service!=orders").unwrap().matches(&l));
        assert!(Matcher::parse("severity=~\"high|critical\"")
            .unwrap()
            .matches(&l));
        // Anchored: "car" does not match "carts".
        assert!(!Matcher::parse("service=~car").unwrap().matches(&l));
        assert!(Matcher::parse("service!~car").unwrap().matches(&l));
        // A missing label is the empty string.
        assert!(Matcher::parse("host=\"\"").unwrap().matches(&l));
        assert!(Matcher::parse("no operator").is_err());
        assert!(Matcher::parse("x=~\"(\"").is_err());
    }

    #[test]
    fn inhibition_needs_equal_labels_and_never_self_inhibits() {
        let rules = MuteRules {
            inhibit: vec![InhibitRule {
                name: "host-down".into(),
                source: vec![Matcher::parse("metric=host_down").unwrap()],
                target: vec![Matcher::parse("metric!=host_down").unwrap()],
                equal: vec!["host".into()],
            }],
            silences: vec![],
        };
        let src = labels(&[("metric", "host_down"), ("host", "h1")]);
        let same_host = labels(&[("metric", "latency"), ("host", "h1")]);
        let other_host = labels(&[("metric", "latency"), ("host", "h2")]);
        let firing = [src.clone(), same_host.clone(), other_host.clone()];
        assert_eq!(
            rules.muted_by(&same_host, 0, firing.iter()).as_deref(),
            Some("inhibited:host-down")
        );
        assert_eq!(rules.muted_by(&other_host, 0, firing.iter()), None);
        assert_eq!(rules.muted_by(&src, 0, firing.iter()), None);
    }

    #[test]
    fn silences_apply_inside_their_window() {
        let rules = MuteRules {
            inhibit: vec![],
            silences: vec![Silence {
                name: "maintenance".into(),
                matchers: vec![Matcher::parse("service=orders-db").unwrap()],
                starts_at: 100,
                ends_at: 200,
            }],
        };
        let l = labels(&[("service", "orders-db")]);
        assert_eq!(rules.muted_by(&l, 99, std::iter::empty()), None);
        assert_eq!(
            rules.muted_by(&l, 100, std::iter::empty()).as_deref(),
            Some("silence:maintenance")
        );
        assert_eq!(rules.muted_by(&l, 200, std::iter::empty()), None);
        assert_eq!(rules.boundaries(), vec![100, 200]);
    }
}

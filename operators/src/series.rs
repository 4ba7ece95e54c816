//! The data model every stage shares: a series key (metric name plus sorted labels), its stable
//! 64-bit id, a point (series id, event time, value), and how a series maps to its entity.
//!
//! Keys are hashed once, when a source first meets a series; after that the dataflow moves only the
//! 8-byte [`SeriesId`] with each point and looks the full key up where it needs labels (alerts,
//! features). The hash is xxh3 over a canonical encoding, so ids are stable across runs, workers
//! and machines: exchange routing, alert fingerprints and checkpoints may all rely on them.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Stable identifier of a series: the xxh3 hash of its canonical key encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesId(pub u64);

impl fmt::Display for SeriesId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Event time in milliseconds since the Unix epoch; also the timely timestamp type.
pub type EventTime = u64;

/// One observation of one series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Which series the value belongs to.
    pub series: SeriesId,
    /// Event time in milliseconds since the epoch.
    pub time: EventTime,
    /// The observed value (always finite: parsers reject NaN and infinities).
    pub value: f64,
}

/// A series' identity: metric name plus labels sorted by label name (names unique).
/// Serialized as `{"name": ..., "labels": {...}}`, the shape of the input format.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    /// Metric name, e.g. `http_latency_p99_ms`.
    pub name: String,
    /// Labels sorted by name; no two share a name.
    #[serde(with = "labels_as_map")]
    pub labels: Vec<(String, String)>,
}

/// Labels as a JSON object (in name order) rather than a list of pairs.
mod labels_as_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(labels: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(labels.iter().map(|(k, v)| (k, v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        // A map has unique keys and BTreeMap iterates in order: the sorted form SeriesKey needs.
        Ok(BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

/// Separator bytes of the canonical encoding. They cannot occur in valid UTF-8, so no two
/// different keys encode to the same byte string.
const FIELD_SEP: u8 = 0xFF;
const PAIR_SEP: u8 = 0xFE;

impl SeriesKey {
    /// Builds a key, sorting the labels by name. When a label name repeats, the last value wins,
    /// as in a JSON object with a repeated field.
    pub fn new(
        name: impl Into<String>,
        labels: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let mut labels: Vec<(String, String)> = labels.into_iter().collect();
        // Stable sort keeps input order among equal names, so `dedup` can keep the last one.
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let mut deduped: Vec<(String, String)> = Vec::with_capacity(labels.len());
        for pair in labels {
            match deduped.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => deduped.push(pair),
            }
        }
        SeriesKey {
            name: name.into(),
            labels: deduped,
        }
    }

    /// The stable id of this key.
    pub fn id(&self) -> SeriesId {
        series_id(
            &self.name,
            self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].1.as_str())
    }

    /// The entity this series belongs to: the value of the first of `entity_labels` it carries, or
    /// the metric name when it carries none (a lone series is its own entity, as in NAB files).
    pub fn entity<'a>(&'a self, entity_labels: &[String]) -> &'a str {
        entity_labels
            .iter()
            .find_map(|l| self.label(l))
            .unwrap_or(&self.name)
    }
}

impl fmt::Display for SeriesKey {
    /// Prometheus notation: `name{a="1",b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.labels.is_empty() {
            f.write_str("{")?;
            for (i, (k, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{k}={v:?}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

/// Hashes a key given as borrowed parts; `labels` must already be sorted by name and unique.
/// Parsers call this on borrowed input so the hot path allocates nothing for known series.
pub fn series_id<'a>(name: &str, labels: impl Iterator<Item = (&'a str, &'a str)>) -> SeriesId {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(name.as_bytes());
    for (k, v) in labels {
        hasher.update(&[FIELD_SEP]);
        hasher.update(k.as_bytes());
        hasher.update(&[PAIR_SEP]);
        hasher.update(v.as_bytes());
    }
    SeriesId(hasher.digest())
}

/// A key shared between the places that need it (interner, window state, alerts).
pub type SharedKey = Arc<SeriesKey>;

/// Stable 64-bit hash of arbitrary bytes, for ids and fingerprints derived from strings.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// A 64-bit mixing function (SplitMix64's finaliser, Steele, Lea & Flood 2014): consecutive
/// inputs give unrelated outputs, so `mix64(n) % k` picks one input in `k` with no period.
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, labels: &[(&str, &str)]) -> SeriesKey {
        SeriesKey::new(
            name,
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn label_order_does_not_change_identity() {
        let a = key("cpu", &[("host", "h1"), ("service", "carts")]);
        let b = key("cpu", &[("service", "carts"), ("host", "h1")]);
        assert_eq!(a, b);
        assert_eq!(a.id(), b.id());
    }

    #[test]
    fn distinct_keys_get_distinct_ids() {
        // The separators keep `a="bc"` apart from `ab="c"` and names apart from labels.
        let ids = [
            key("m", &[("a", "bc")]).id(),
            key("m", &[("ab", "c")]).id(),
            key("ma", &[("", "bc")]).id(),
            key("m", &[]).id(),
            key("m", &[("a", "b"), ("c", "d")]).id(),
        ];
        for i in 0..ids.len() {
            for j in i + 1..ids.len() {
                assert_ne!(ids[i], ids[j], "{i} vs {j}");
            }
        }
    }

    #[test]
    fn id_is_stable_across_versions() {
        // Guards the canonical encoding: changing it would re-key checkpoints and fingerprints.
        assert_eq!(
            key("cpu", &[("host", "h1")]).id(),
            SeriesId(xxhash_rust::xxh3::xxh3_64(b"cpu\xffhost\xfeh1"))
        );
    }

    #[test]
    fn repeated_label_keeps_last_value() {
        let k = key("m", &[("a", "1"), ("a", "2")]);
        assert_eq!(k.labels, vec![("a".to_string(), "2".to_string())]);
    }

    #[test]
    fn entity_prefers_configured_order_then_name() {
        let labels = vec!["service".to_string(), "host".to_string()];
        assert_eq!(
            key("m", &[("host", "h1"), ("service", "s")]).entity(&labels),
            "s"
        );
        assert_eq!(key("m", &[("host", "h1")]).entity(&labels), "h1");
        assert_eq!(key("m", &[]).entity(&labels), "m");
    }

    #[test]
    fn serializes_labels_as_an_object_and_back() {
        let k = key("m", &[("b", "2"), ("a", "1")]);
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, r#"{"name":"m","labels":{"a":"1","b":"2"}}"#);
        assert_eq!(serde_json::from_str::<SeriesKey>(&json).unwrap(), k);
    }

    #[test]
    fn display_is_prometheus_notation() {
        assert_eq!(
            key("m", &[("b", "2"), ("a", "1")]).to_string(),
            r#"m{a="1",b="2"}"#
        );
    }
}

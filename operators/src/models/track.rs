//! The history of one watched feature of one series, and the feature vectors built from it.
//!
//! Several detectors look at the same stream of values (the mean of a series' 1-minute windows,
//! or the rows of a CSV column): the track keeps that stream's recent values once, in a ring,
//! and each detector reads what it needs from it. Values learned by the track are the values
//! *before* the one being scored, so nothing a detector reads can leak the present into the
//! baseline it is judged against.
//!
//! The vector detectors (isolation forest, one-class SVM) see a window of context rather than a
//! value: [`VectorSpec`] describes it — a shingle of the last values (as AWS Random Cut Forest
//! shingles its input), means and deviations over several window lengths, the latest change, and
//! hour-of-day / day-of-week encodings when the timestamps are real.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::models::ModelError;
use crate::series::EventTime;

/// Which features a vector detector sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VectorSpec {
    /// Number of most recent values, the current one included (default 4).
    pub shingle: usize,
    /// Window lengths whose mean and standard deviation are included (default 4, 16, 64: short,
    /// medium and long context, each four times the previous).
    pub windows: Vec<usize>,
    /// Include hour-of-day and day-of-week as points on a circle (sin, cos), so 23:59 and 00:00
    /// are close. Ignored when the timestamps are synthetic (row numbers). Default false: the
    /// vector models learn from a reservoir of a few hundred recent windows, which rarely spans
    /// a week (or, at 1-minute windows, a day), and a phase the reservoir has never held makes
    /// every vector look novel. Turn it on with reservoirs longer than the cycles.
    pub time_encoding: bool,
}

impl Default for VectorSpec {
    fn default() -> Self {
        VectorSpec {
            shingle: 4,
            windows: vec![4, 16, 64],
            time_encoding: false,
        }
    }
}

impl VectorSpec {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let s = self.shingle;
        ModelError::require(
            (1..=256).contains(&s),
            "shingle",
            "between 1 and 256",
            s as f64,
        )?;
        if self.windows.iter().any(|w| *w < 2 || *w > 4096) {
            return Err(ModelError::InvalidParameter {
                name: "windows",
                reason: "every window length must be between 2 and 4096".into(),
            });
        }
        Ok(())
    }

    /// History the spec needs (values before the current one).
    pub fn history_needed(&self) -> usize {
        self.windows
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(self.shingle)
    }

    /// Width of the vectors built with `time` encodings on or off.
    pub fn width(&self, time: bool) -> usize {
        self.shingle + 2 * self.windows.len() + 1 + if time && self.time_encoding { 4 } else { 0 }
    }
}

/// Recent values of one feature of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    capacity: usize,
    values: VecDeque<f64>,
    last_time: Option<EventTime>,
    seen: u64,
}

impl Track {
    /// An empty track keeping at most `capacity` values (at least 1).
    pub fn new(capacity: usize) -> Self {
        Track {
            capacity: capacity.max(1),
            values: VecDeque::new(),
            last_time: None,
            seen: 0,
        }
    }

    /// Learns a value (after the detectors have scored it). Non-finite values are skipped.
    pub fn push(&mut self, value: f64, time: EventTime) {
        if !value.is_finite() {
            return;
        }
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(value);
        self.last_time = Some(time);
        self.seen += 1;
    }

    /// Most values held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Values learned so far (including those expired from the ring).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The value `lag` steps back (1 = the previous value).
    pub fn lag(&self, lag: usize) -> Option<f64> {
        let n = self.values.len();
        (lag >= 1 && lag <= n).then(|| self.values[n - lag])
    }

    /// The most recent `n` values (fewer if not held), oldest first.
    pub fn recent(&self, n: usize) -> impl Iterator<Item = f64> + '_ {
        let len = self.values.len();
        self.values.range(len - n.min(len)..).copied()
    }

    /// Event time of the last learned value.
    pub fn last_time(&self) -> Option<EventTime> {
        self.last_time
    }

    /// Builds the vector for `value` at `time` into `out` (cleared first); `false` while the
    /// history is too short. `real_time`: whether timestamps are real (time encodings apply).
    pub fn vector(
        &self,
        spec: &VectorSpec,
        value: f64,
        time: EventTime,
        real_time: bool,
        out: &mut Vec<f32>,
    ) -> bool {
        out.clear();
        if self.values.len() < spec.history_needed() || !value.is_finite() {
            return false;
        }
        out.push(value as f32);
        for lag in 1..spec.shingle {
            out.push(self.lag(lag).unwrap_or(value) as f32);
        }
        for &w in &spec.windows {
            // The window includes the current value and the w − 1 before it.
            let (mut sum, mut sq) = (value, value * value);
            for x in self.recent(w - 1) {
                sum += x;
                sq += x * x;
            }
            let n = w as f64;
            let mean = sum / n;
            let var = (sq / n - mean * mean).max(0.0);
            out.push(mean as f32);
            out.push(var.sqrt() as f32);
        }
        out.push((value - self.lag(1).unwrap_or(value)) as f32);
        if real_time && spec.time_encoding {
            let (hour, dow) = hour_and_weekday(time);
            let tau = std::f64::consts::TAU;
            out.push((tau * hour / 24.0).sin() as f32);
            out.push((tau * hour / 24.0).cos() as f32);
            out.push((tau * dow / 7.0).sin() as f32);
            out.push((tau * dow / 7.0).cos() as f32);
        }
        true
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<f64>()
    }
}

/// Fractional hour of day (UTC) and day of week (0 = Monday) of an epoch-milliseconds time.
pub fn hour_and_weekday(time: EventTime) -> (f64, f64) {
    const DAY_MS: u64 = 86_400_000;
    let hour = (time % DAY_MS) as f64 / 3_600_000.0;
    // 1970-01-01 was a Thursday (3 with Monday = 0).
    let dow = ((time / DAY_MS + 3) % 7) as f64;
    (hour, dow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_most_recent_values() {
        let mut t = Track::new(3);
        for (i, v) in [1.0, 2.0, f64::NAN, 3.0, 4.0].into_iter().enumerate() {
            t.push(v, i as u64);
        }
        assert_eq!(t.recent(10).collect::<Vec<_>>(), [2.0, 3.0, 4.0]);
        assert_eq!((t.lag(1), t.lag(3), t.lag(4)), (Some(4.0), Some(2.0), None));
        assert_eq!(t.seen(), 4);
    }

    #[test]
    fn vector_layout() {
        let spec = VectorSpec {
            shingle: 2,
            windows: vec![2],
            time_encoding: true,
        };
        let mut t = Track::new(8);
        let mut v = Vec::new();
        assert!(!t.vector(&spec, 1.0, 0, true, &mut v), "no history yet");
        t.push(1.0, 0);
        t.push(3.0, 1);
        // 2024-01-01T06:00:00Z, a Monday.
        let time = 1_704_088_800_000;
        assert!(t.vector(&spec, 5.0, time, true, &mut v));
        assert_eq!(v.len(), spec.width(true));
        assert_eq!(&v[..5], &[5.0, 3.0, 4.0, 1.0, 2.0]);
        assert!((v[5] - 1.0).abs() < 1e-6, "sin(6h) = 1");
        assert!((v[7]).abs() < 1e-6, "Monday: sin(0) = 0");
        assert!(t.vector(&spec, 5.0, time, false, &mut v));
        assert_eq!(v.len(), spec.width(false));
    }

    #[test]
    fn weekday_of_known_dates() {
        assert_eq!(hour_and_weekday(0), (0.0, 3.0), "1970-01-01 was a Thursday");
        assert_eq!(
            hour_and_weekday(1_704_067_200_000).1,
            0.0,
            "2024-01-01 Monday"
        );
    }
}

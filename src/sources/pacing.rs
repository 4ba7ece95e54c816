//! Pacing: replaying event time at real time × a speed factor, for demos and live-like tests.
//! Unpaced partitions (speed 0) read as fast as the engine consumes.

use std::time::Instant;

use operators::series::EventTime;

/// Holds a partition back until wall-clock time catches up with its event time.
#[derive(Debug, Clone)]
pub struct Pace {
    /// Event-time milliseconds per wall-clock millisecond; 0 means unpaced.
    speed: f64,
    /// First event time seen and the wall-clock instant it was seen at.
    anchor: Option<(EventTime, Instant)>,
}

impl Pace {
    /// A pace of `speed` × real time (0 or less: as fast as possible).
    pub fn new(speed: f64) -> Self {
        Pace {
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                0.0
            },
            anchor: None,
        }
    }

    /// Whether pacing is on.
    pub fn is_paced(&self) -> bool {
        self.speed > 0.0
    }

    /// Whether a partition whose latest event time is `latest` may read more now.
    pub fn may_read(&mut self, latest: Option<EventTime>) -> bool {
        if self.speed == 0.0 {
            return true;
        }
        let Some(latest) = latest else { return true };
        let (t0, w0) = *self.anchor.get_or_insert((latest, Instant::now()));
        let allowed = t0 as f64 + w0.elapsed().as_secs_f64() * 1000.0 * self.speed;
        (latest as f64) < allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaced_always_reads() {
        let mut p = Pace::new(0.0);
        assert!(!p.is_paced());
        assert!(p.may_read(Some(u64::MAX / 2)));
    }

    #[test]
    fn paced_holds_back_far_future() {
        let mut p = Pace::new(1.0);
        assert!(p.may_read(None));
        // The first event time anchors the clock; an hour later is not due yet at 1× speed.
        p.may_read(Some(0));
        assert!(!p.may_read(Some(3_600_000)));
    }
}

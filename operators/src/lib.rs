//! Harbinger's analytics: the timely dataflow operators (one per file: windows, detection,
//! alerting, ...) and, under [`models`], the plain-Rust algorithms they run.
//!
//! Every stateful operator follows one rule: it acts on timely time `t` only once its input
//! frontier has passed `t` (see [`stash`]). Timely time is event time in milliseconds, so
//! results depend on event time alone, never on wall-clock time, arrival order or worker count.
#![deny(missing_docs)]

pub mod alerting;
pub mod correlate;
pub mod detect;
pub mod entity;
pub mod forecast;
pub mod models;
pub mod optimize;
pub mod peer_compare;
pub mod per_time;
pub mod records;
pub mod rules;
pub mod series;
pub mod sink;
pub mod stash;
pub mod time_format;
pub mod window;

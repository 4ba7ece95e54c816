//! Plain-Rust algorithms with no dataflow types: each model is an unfitted config that validates
//! its parameters and fits (or starts) into a fitted state that scores or predicts, and every
//! fitted state is serde-serializable so checkpoints can save it.

pub mod error;
pub mod isolation_forest;
pub mod one_class_svm;
pub mod quantile_sketch;
pub mod robust_z;
pub mod window_stats;

pub use error::ModelError;
pub mod alert_lifecycle;
pub mod cel_rule;
pub mod dedup;
pub mod detector_set;
pub mod escalation;
pub mod grouping;
pub mod incidents;
pub mod matchers;
pub mod root_cause;
pub mod topology;

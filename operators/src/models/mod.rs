//! Plain-Rust algorithms with no dataflow types: each model is an unfitted config that validates
//! its parameters and fits (or starts) into a fitted state that scores or predicts, and every
//! fitted state is serde-serializable so checkpoints can save it.
//!
//! Detection is layered: scalar detectors ([`robust_z`], [`iqr`], [`ewma`], [`cusum`],
//! [`seasonal`], [`changepoint`], [`forecast_residual`], [`contextual`]) and vector detectors ([`forest_detector`], [`svm_detector`], [`knn_detector`] over
//! [`isolation_forest`] and [`one_class_svm`]) report deviations ([`ewma`] and [`cusum`] keep
//! their reference in [`moments`]); [`calibration`] turns each into a
//! tail probability; [`detector_set`] fuses them per series and [`entity_set`] per entity;
//! [`damping`] quiets repeats; [`shape`] names the anomaly; [`peers`] compares an entity with its
//! peers; [`scorer`] runs the same code row by row for `harbinger score`.

pub mod alert_lifecycle;
pub mod calibration;
pub mod capacity;
pub mod cel_rule;
pub mod changepoint;
pub mod contextual;
pub mod cusum;
pub mod damping;
pub mod dedup;
pub mod detector_set;
pub mod deviation;
pub mod entity_set;
pub mod error;
pub mod escalation;
pub mod ewma;
pub mod forecast;
pub mod forecast_residual;
pub mod forest_detector;
pub mod grouping;
pub mod incidents;
pub mod iqr;
pub mod isolation_forest;
pub mod knn_detector;
pub mod matchers;
pub mod moments;
pub mod one_class_svm;
pub mod optimize;
pub mod peers;
pub mod quantile_sketch;
pub mod rec_context;
pub mod rec_rules;
pub mod reservoir;
pub mod robust_z;
pub mod root_cause;
pub mod scorer;
pub mod screen;
pub mod seasonal;
pub mod shape;
pub mod svm_detector;
#[cfg(test)]
mod test_noise;
pub mod topology;
pub mod track;
pub mod trend;
pub mod window_stats;

pub use error::ModelError;

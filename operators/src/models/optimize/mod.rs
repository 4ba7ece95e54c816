//! The optimizer's machine-learned recommenders (issue 6), as plain-Rust models with no dataflow
//! types: each is fed observations incrementally (event time in ms, value), keeps a serde state
//! that checkpoints can save, and answers `recommend(...)` with a [`RecommendationDraft`] — the
//! numbers, confidence and evidence of a recommendation, which the optimizer operator turns into a
//! `RecommendationRecord` (id, title, priority, dedup and expiry are its business, not the models').
//!
//! * [`vpa`]: the Kubernetes VPA recommender, implemented from its documented defaults, as the
//!   baseline for right-sizing.
//! * [`right_sizing`]: our right-sizing recommender — VPA's decaying percentiles taken of what a
//!   robust trend + daily season forecast does not explain, so the request follows the coming peak.
//! * [`capacity_scaling`]: scale-out (how much, by when) from the forecast stage's capacity
//!   prediction.
//! * [`threshold_tuning`]: the static threshold that still fires on every labelled incident with
//!   the fewest false alerts, under a Prometheus-style `for` clause.
//! * [`detector_tuning`]: per-entity sensitivity changes when alerts keep resolving quickly
//!   without an incident.
//! * [`evaluation`]: simulated workloads with known true demand, and the rolling comparison of
//!   right-sizing against VPA that issue 6's "Done when" asks for.
//!
//! * [`recommenders`]: the models above as the optimizer's plug-ins (`Recommender`).
//!
//! Shared pieces: [`draft`] (the output), [`decaying_histogram`] (VPA's histogram) and
//! [`confidence`] (how confidences are computed from counts and history lengths).

pub mod capacity_scaling;
pub mod confidence;
pub mod decaying_histogram;
pub mod detector_tuning;
pub mod draft;
pub mod evaluation;
pub mod recommenders;
pub mod right_sizing;
pub mod threshold_tuning;
pub mod vpa;

pub use draft::RecommendationDraft;

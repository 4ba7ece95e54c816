//! The records that flow between stages and out of the engine. Output records serialize to the
//! JSON contracts in `ARCHITECTURE.md`; field names there are part of the contract.

pub mod alert;
pub mod dead_letter;
pub mod detection;
pub mod features;
pub mod forecast;
pub mod incident;
pub mod recommendation;

pub use alert::{AlertEvent, AlertRecord, AlertStatus, AnomalyType, Severity};
pub use dead_letter::{DeadLetter, DeadLetterReason, SourcePosition};
pub use detection::Detection;
pub use features::WindowFeatures;
pub use forecast::{CapacityForecast, ForecastRecord, ForecastStep, LimitDirection};
pub use incident::{ImpactAssessment, IncidentRecord, RootCauseCandidate};
pub use recommendation::{Level, RecommendationCategory, RecommendationRecord};

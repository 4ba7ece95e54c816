//! Harbinger, the application: command line, configuration, sources, sinks and the engine that
//! runs the dataflow operators of the `operators` crate over them.
//!
//! The binary (`src/main.rs`) is a thin dispatcher over [`commands`]; everything it does is here
//! as library code so integration tests and examples use exactly what users run.
#![deny(missing_docs)]

pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod evaluate;
pub mod incident_eval;
pub mod ingest;
pub mod parse;
pub mod sinks;
pub mod sources;
pub mod telemetry;

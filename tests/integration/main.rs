//! Harbinger's integration tests: one test binary with a module per area, so the crate is linked
//! once. Shared helpers live in `common`.

mod alertmanager;
mod cli;
mod common;
mod determinism;
mod forecast;
mod forecast_stream;
mod golden;
#[cfg(feature = "kafka-tests")]
mod kafka;
mod malformed;
mod optimize;
mod parsers;
mod peers;
mod score;
mod simulation;

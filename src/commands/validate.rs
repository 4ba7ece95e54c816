//! `harbinger validate`: check a config and its rules, print every error with file:line:col, and
//! exit non-zero (78) on any.

use std::path::Path;

use crate::commands::{Failure, Outcome};
use crate::config;

/// Validates `config` (the embedded default when `None`) with rules from `rules`.
pub fn validate(config: Option<&Path>, rules: Option<&Path>) -> Outcome {
    let plan = config::load(config, rules).map_err(Failure::config)?;
    // A recommendation rule with a bad CEL expression only warns at run time (the other rules
    // keep running), but validation exists to catch it.
    if !plan.optimize.rejected.is_empty() {
        return Err(Failure::config(plan.optimize.rejected.join("\n")));
    }
    println!(
        "OK: {} source(s), {} window(s), {} detector(s), {} recommendation rule(s), rules from {}.",
        plan.sources.len(),
        plan.windows.len(),
        plan.ensemble.detectors.len(),
        plan.optimize.rules.len(),
        plan.rules_dir.as_ref().map_or_else(
            || "the shipped defaults".to_string(),
            |d| d.display().to_string()
        )
    );
    Ok(())
}

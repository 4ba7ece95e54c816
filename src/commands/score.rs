//! `harbinger score [--train TRAIN.csv] --input FILE.csv --output FILE.csv`: a per-row anomaly
//! score in [0, 1] for a univariate or wide CSV, computed by the streaming detection path with no
//! look-ahead.
//!
//! Every column is a series with the configured detectors (the same [`DetectorSet`] the engine
//! runs per series), fed one row at a time as a window of one point; a wide file is one entity,
//! so its rows also feed the entity detectors. `--train` first streams known-normal history of
//! the same shape through the detectors (nothing is written for it), as the SMD/ASD benchmarks
//! provide. See [`crate::parse::table`] for the accepted layouts, including headerless wide files
//! without a timestamp (row numbers become timestamps).
//!
//! [`DetectorSet`]: operators::models::detector_set::DetectorSet

use std::io::{BufWriter, Write};
use std::path::Path;

use operators::models::entity_set::EntityPlan;
use operators::models::scorer::RowScorer;

use crate::commands::{Failure, Outcome};
use crate::config;
use crate::parse::table::Table;

/// Runs the command.
pub fn score(
    train: Option<&Path>,
    input: &Path,
    output: &Path,
    config_path: Option<&Path>,
    rules: Option<&Path>,
    row_step_ms: u64,
) -> Outcome {
    let plan = config::load(config_path, rules).map_err(Failure::config)?;
    let table = Table::read(input, row_step_ms)
        .map_err(|e| Failure::runtime(format!("{}: {e}", input.display())))?;
    let train = train
        .map(|p| {
            Table::read(p, row_step_ms)
                .map_err(|e| Failure::runtime(format!("{}: {e}", p.display())))
        })
        .transpose()?;
    if let Some(t) = &train {
        if t.columns.len() != table.columns.len() {
            return Err(Failure::runtime(format!(
                "the training file has {} value columns, the input {}",
                t.columns.len(),
                table.columns.len()
            )));
        }
    }
    let ensemble = &plan.ensemble;
    let window = ensemble
        .detectors
        .first()
        .map(|d| d.window.clone())
        .unwrap_or_else(|| "1m".into());
    let entity = plan
        .entity
        .as_deref()
        .cloned()
        .unwrap_or_else(|| EntityPlan {
            window: window.clone(),
            ..EntityPlan::default()
        });
    let mut scorer = RowScorer::new(
        ensemble,
        &window,
        &table.columns,
        Some(entity),
        table.real_time,
    );
    // Training rows come before the input's: shift them so time only moves forward.
    if let Some(t) = &train {
        let offset = match (t.rows.last(), table.rows.first()) {
            (Some(last), Some(first)) if !table.real_time && last.time >= first.time => {
                last.time - first.time + row_step_ms
            }
            _ => 0,
        };
        for row in &t.rows {
            scorer.observe(ensemble, row.time.saturating_sub(offset), &row.values);
        }
    }
    let file = std::fs::File::create(output)
        .map_err(|e| Failure::runtime(format!("{}: {e}", output.display())))?;
    let mut out = BufWriter::new(file);
    let write_err = |e: std::io::Error| Failure::runtime(format!("{}: {e}", output.display()));
    writeln!(out, "{},anomaly_score", table.header_line()).map_err(write_err)?;
    let offset = if train.is_some() && !table.real_time {
        // Synthetic input times continue after the training rows.
        train
            .as_ref()
            .map_or(0, |t| t.rows.len() as u64 * row_step_ms)
    } else {
        0
    };
    for row in &table.rows {
        let s = scorer.observe(ensemble, row.time + offset, &row.values);
        writeln!(out, "{},{s:.6}", row.line).map_err(write_err)?;
    }
    out.flush().map_err(write_err)?;
    Ok(())
}

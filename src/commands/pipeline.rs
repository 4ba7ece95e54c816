//! `harbinger run` and `harbinger replay`: build a plan, open the sinks, run the engine, report.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cli::ClusterArgs;
use crate::commands::{Failure, Outcome};
use crate::config::{self, Plan, SinkPlan, SourcePlan};
use crate::engine::{self, RunOptions, RunReport};
use crate::parse::{Format, Precision};
use crate::sinks::{AlertmanagerSink, JsonlWriter, Outputs, StdoutSummary};
use crate::sources::file::format_from_extension;

/// `harbinger run [--config FILE] [--rules DIR]`.
pub fn run(config: Option<&Path>, rules: Option<&Path>, cluster: &ClusterArgs) -> Outcome {
    let plan = config::load(config, rules).map_err(Failure::config)?;
    execute(plan, cluster, false)
}

/// `harbinger replay --input FILE... --out DIR`.
// One argument per `replay` flag: a struct would only restate the CLI's.
#[allow(clippy::too_many_arguments)]
pub fn replay(
    inputs: &[PathBuf],
    format: Option<Format>,
    config: Option<&Path>,
    rules: Option<&Path>,
    topology: Option<&Path>,
    features: bool,
    out: &Path,
    cluster: &ClusterArgs,
) -> Outcome {
    let mut plan = config::load(config, rules).map_err(Failure::config)?;
    if let Some(path) = topology {
        plan.topology = config::intel::topology_file(path).map_err(Failure::config)?;
        plan.topology_path = Some(path.to_path_buf());
    }
    plan.sources = inputs
        .iter()
        .map(|path| SourcePlan::File {
            name: path.display().to_string(),
            path: path.clone(),
            format: format.unwrap_or_else(|| format_from_extension(path)),
            precision: Precision::Ns,
            speed: 0.0,
        })
        .collect();
    plan.sinks = SinkPlan {
        stdout: false,
        jsonl_dir: Some(out.to_path_buf()),
        features,
        alertmanager: None,
    };
    execute(plan, cluster, std::io::stderr().is_terminal())
}

/// Opens the sinks of `plan` (creating the output directory) and runs it.
fn execute(plan: Plan, cluster: &ClusterArgs, progress_bar: bool) -> Outcome {
    let timely = cluster
        .timely_config(plan.engine.workers)
        .map_err(Failure::config)?;
    let outputs = open_outputs(&plan.sinks).map_err(Failure::runtime)?;
    let out_dir = plan.sinks.jsonl_dir.clone();
    tracing::info!(
        sources = plan.sources.len(),
        windows = plan.windows.len(),
        detectors = plan.detectors.len(),
        "Starting the engine."
    );
    let report = engine::run(
        Arc::new(plan),
        outputs,
        RunOptions {
            timely,
            progress_bar,
        },
    )
    .map_err(Failure::runtime)?;
    print_report(&report, out_dir.as_deref());
    if let Some(dir) = out_dir {
        let text = serde_json::to_string_pretty(&report).map_err(Failure::runtime)?;
        std::fs::write(dir.join("summary.json"), text + "\n").map_err(Failure::runtime)?;
    }
    Ok(())
}

/// Creates the sinks a plan asks for.
pub fn open_outputs(sinks: &SinkPlan) -> std::io::Result<Outputs> {
    let mut outputs = Outputs::default();
    if sinks.stdout {
        outputs.alerts.push(Arc::new(Mutex::new(StdoutSummary)));
        outputs.incidents.push(Arc::new(Mutex::new(StdoutSummary)));
    }
    if let Some(am) = &sinks.alertmanager {
        outputs
            .correlated
            .push(Arc::new(Mutex::new(AlertmanagerSink::new(am))));
    }
    if let Some(dir) = &sinks.jsonl_dir {
        std::fs::create_dir_all(dir)?;
        outputs.alerts.push(Arc::new(Mutex::new(JsonlWriter::create(
            &dir.join("alerts.jsonl"),
            true,
        )?)));
        outputs
            .incidents
            .push(Arc::new(Mutex::new(JsonlWriter::create(
                &dir.join("incidents.jsonl"),
                true,
            )?)));
        outputs
            .dead_letters
            .push(Arc::new(Mutex::new(JsonlWriter::create(
                &dir.join("dead_letters.jsonl"),
                false,
            )?)));
        if sinks.features {
            outputs
                .features
                .push(Arc::new(Mutex::new(JsonlWriter::create(
                    &dir.join("features.jsonl"),
                    false,
                )?)));
        }
    }
    Ok(outputs)
}

fn print_report(r: &RunReport, out: Option<&Path>) {
    let alerts: Vec<String> = r.alerts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    eprintln!(
        "Processed {} points of {} series in {:.1} s ({:.0} points/s, {} worker(s)).",
        r.points, r.series, r.elapsed_secs, r.points_per_sec, r.workers
    );
    eprintln!("Alerts: {}.", alerts.join(", "));
    let incidents: Vec<String> = r
        .incidents
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    eprintln!("Incidents: {}.", incidents.join(", "));
    eprintln!(
        "Dead letters: {} ({} late). State per series: windows {:.0} B, detectors {:.0} B.",
        r.dead_letters, r.late_points, r.window_bytes_per_series, r.detector_bytes_per_series
    );
    if let Some(dir) = out {
        eprintln!("Output written to {}/.", dir.display());
    }
}

//! `harbinger run` and `harbinger replay`: build a plan, open the sinks, run the engine, report.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::cli::{ClusterArgs, KafkaArgs};
use crate::commands::{Failure, Outcome};
use crate::config::{self, KafkaSinkPlan, Plan, SinkPlan, SourcePlan};
use crate::engine::{self, RunOptions, RunReport};
use crate::parse::{Format, Precision};
use crate::sinks::kafka::{ensure_topics, KafkaOutput, KafkaSink};
use crate::sinks::{AlertmanagerSink, JsonlWriter, Outputs, StdoutSummary};
use crate::sources::file::format_from_extension;
use crate::sources::kafka::{KafkaSourceSpec, TopicSpec};

/// `harbinger run [--config FILE] [--rules DIR] [--brokers B --topic T ...] [--checkpoint-dir D]`.
pub fn run(
    config: Option<&Path>,
    rules: Option<&Path>,
    kafka: &KafkaArgs,
    checkpoint_dir: Option<&Path>,
    cluster: &ClusterArgs,
) -> Outcome {
    let mut plan = config::load(config, rules).map_err(Failure::config)?;
    if let Some(brokers) = &kafka.brokers {
        if kafka.topic.is_empty() {
            return Err(Failure::config("--brokers needs at least one --topic"));
        }
        if kafka.format == Format::Csv {
            return Err(Failure::config(
                "Kafka topics carry json, prom-json or influx, not csv",
            ));
        }
        plan.sources = vec![SourcePlan::Kafka(KafkaSourceSpec {
            name: "kafka".into(),
            brokers: brokers.clone(),
            topics: kafka
                .topic
                .iter()
                .map(|t| TopicSpec {
                    name: t.clone(),
                    format: kafka.format,
                    precision: Precision::Ns,
                })
                .collect(),
            group_id: kafka.group_id.clone(),
            properties: Default::default(),
            idle_timeout_ms: 10_000,
            assignment: Default::default(),
        })];
        plan.sinks = SinkPlan {
            stdout: true,
            jsonl_dir: None,
            features: false,
            alertmanager: None,
            kafka: Some(KafkaSinkPlan {
                brokers: brokers.clone(),
                properties: Default::default(),
                alerts_topic: "alerts".into(),
                incidents_topic: "incidents".into(),
                recommendations_topic: "recommendations".into(),
                dead_letters_topic: "dead-letters".into(),
            }),
        };
    }
    if let Some(dir) = checkpoint_dir {
        plan.engine.checkpoint_dir = Some(dir.to_path_buf());
    }
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
        kafka: None,
        alertmanager: None,
    };
    execute(plan, cluster, std::io::stderr().is_terminal())
}

/// Opens the sinks of `plan` (creating the output directory) and runs it.
fn execute(plan: Plan, cluster: &ClusterArgs, progress_bar: bool) -> Outcome {
    let timely = cluster
        .timely_config(plan.engine.workers)
        .map_err(Failure::config)?;
    let outputs = open_outputs(&plan.sinks, plan.forecast.is_some()).map_err(Failure::runtime)?;
    let out_dir = plan.sinks.jsonl_dir.clone();
    tracing::info!(
        sources = plan.sources.len(),
        windows = plan.windows.len(),
        detectors = plan.ensemble.detectors.len(),
        "Starting the engine."
    );
    // SIGINT/SIGTERM stop live sources cleanly; finite ones end by themselves.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).map_err(Failure::runtime)?;
    }
    let options = RunOptions {
        timely,
        progress_bar,
        stop,
    };
    let report = engine::run(Arc::new(plan), outputs, options).map_err(Failure::runtime)?;
    print_report(&report, out_dir.as_deref());
    if let Some(dir) = out_dir {
        let text = serde_json::to_string_pretty(&report).map_err(Failure::runtime)?;
        std::fs::write(dir.join("summary.json"), text + "\n").map_err(Failure::runtime)?;
    }
    Ok(())
}

/// Creates the sinks a plan asks for; `forecasts` adds `forecasts.jsonl` to a JSONL directory.
pub fn open_outputs(sinks: &SinkPlan, forecasts: bool) -> std::io::Result<Outputs> {
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
        outputs
            .recommendations
            .push(Arc::new(Mutex::new(JsonlWriter::create(
                &dir.join("recommendations.jsonl"),
                true,
            )?)));
        if sinks.features {
            outputs
                .features
                .push(Arc::new(Mutex::new(JsonlWriter::create(
                    &dir.join("features.jsonl"),
                    false,
                )?)));
        }
        if forecasts {
            outputs
                .forecasts
                .push(Arc::new(Mutex::new(JsonlWriter::create(
                    &dir.join("forecasts.jsonl"),
                    false,
                )?)));
        }
    }
    if let Some(k) = &sinks.kafka {
        let topics = [
            k.alerts_topic.as_str(),
            k.incidents_topic.as_str(),
            k.recommendations_topic.as_str(),
            k.dead_letters_topic.as_str(),
        ];
        ensure_topics(&k.brokers, &k.properties, &topics, 3).map_err(std::io::Error::other)?;
        let producer =
            KafkaOutput::connect(&k.brokers, &k.properties).map_err(std::io::Error::other)?;
        let alerts = KafkaSink::new(producer.clone(), &k.alerts_topic);
        outputs.alerts.push(Arc::new(Mutex::new(alerts)));
        let incidents = KafkaSink::new(producer.clone(), &k.incidents_topic);
        outputs.incidents.push(Arc::new(Mutex::new(incidents)));
        let recommendations = KafkaSink::new(producer.clone(), &k.recommendations_topic);
        outputs
            .recommendations
            .push(Arc::new(Mutex::new(recommendations)));
        let dead = KafkaSink::new(producer, &k.dead_letters_topic);
        outputs.dead_letters.push(Arc::new(Mutex::new(dead)));
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
    eprintln!("Recommendations: {}.", r.recommendations);
    eprintln!(
        "Dead letters: {} ({} late). State per series: windows {:.0} B, detectors {:.0} B.",
        r.dead_letters, r.late_points, r.window_bytes_per_series, r.detector_bytes_per_series
    );
    if r.forecast_records > 0 {
        eprintln!("Forecasts: {} records.", r.forecast_records);
    }
    if let Some(dir) = out {
        eprintln!("Output written to {}/.", dir.display());
    }
}

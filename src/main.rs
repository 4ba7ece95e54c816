//! The `harbinger` binary: parses the command line and dispatches to the library's commands.
//! Exit codes: 0 success, 1 runtime error, 2 usage error, 78 invalid config or rules.

use std::process::ExitCode;

use clap::Parser;
use harbinger::cli::{parse_duration_ms, Cli, Command, ForecastModel};
use harbinger::commands::{forecast, pipeline, produce, score, simulate, validate, Failure};
use harbinger::sources::simulator::SimulatorConfig;

fn main() -> ExitCode {
    harbinger::telemetry::init_logging();
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Run {
            config,
            rules,
            kafka,
            checkpoint_dir,
            cluster,
        } => pipeline::run(
            config.as_deref(),
            rules.as_deref(),
            kafka,
            checkpoint_dir.as_deref(),
            cluster,
        ),
        Command::Replay {
            input,
            format,
            config,
            rules,
            topology,
            features,
            out,
            cluster,
        } => pipeline::replay(
            input,
            *format,
            config.as_deref(),
            rules.as_deref(),
            topology.as_deref(),
            *features,
            out,
            cluster,
        ),
        Command::Simulate {
            seed,
            duration,
            services,
            replicas,
            incidents,
            overlap,
            step,
            out,
        } => simulate_command(
            SimulatorConfig {
                seed: *seed,
                services: *services,
                replicas: *replicas,
                incidents: *incidents,
                overlap_probability: overlap.clamp(0.0, 1.0),
                ..SimulatorConfig::default()
            },
            duration,
            step,
            out,
        ),
        Command::Score {
            train,
            input,
            output,
            config,
            rules,
            row_step,
        } => parse_duration_ms(row_step)
            .map_err(Failure::config)
            .and_then(|step| {
                score::score(
                    train.as_deref(),
                    input,
                    output,
                    config.as_deref(),
                    rules.as_deref(),
                    step,
                )
            }),
        Command::Forecast {
            input,
            horizon,
            season,
            extra_seasons,
            model,
            threads,
            output,
        } => forecast_command(
            input,
            output,
            *horizon,
            *season,
            extra_seasons,
            *model,
            *threads,
        ),
        Command::Validate { config, rules } => {
            validate::validate(config.as_deref(), rules.as_deref())
        }
        Command::Produce {
            brokers,
            topic,
            input,
            per_message,
            batch_by,
            properties,
        } => produce::produce_command(brokers, topic, input, *per_message, *batch_by, properties),
        Command::Evaluate {
            truth,
            alerts,
            incidents,
            window,
            detect_windows,
        } => evaluate_command(truth, alerts, incidents.as_deref(), window, *detect_windows),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// `harbinger simulate`: `config` with the duration and step parsed from the command line.
fn simulate_command(
    config: SimulatorConfig,
    duration: &str,
    step: &str,
    out: &std::path::Path,
) -> Result<(), Failure> {
    let config = SimulatorConfig {
        duration_ms: parse_duration_ms(duration).map_err(Failure::config)?,
        step_ms: parse_duration_ms(step).map_err(Failure::config)?,
        ..config
    };
    simulate::simulate(config, out)
}

fn forecast_command(
    input: &std::path::Path,
    output: &std::path::Path,
    horizon: u64,
    season: Option<u64>,
    extra_seasons: &[u64],
    model: ForecastModel,
    threads: Option<u64>,
) -> Result<(), Failure> {
    let size = |v: u64| usize::try_from(v).map_err(Failure::usage);
    let config = operators::models::forecast::ForecastConfig {
        horizon: size(horizon)?,
        season: season.map(size).transpose()?,
        extra_seasons: extra_seasons
            .iter()
            .map(|&s| size(s))
            .collect::<Result<_, _>>()?,
        model: model.into(),
        ..Default::default()
    };
    let threads = match threads {
        Some(t) => size(t)?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    forecast::forecast(input, output, &config, threads)
}

fn evaluate_command(
    truth: &std::path::Path,
    alerts: &std::path::Path,
    incidents: Option<&std::path::Path>,
    window: &str,
    detect_windows: u64,
) -> Result<(), Failure> {
    let (truth, alerts) = harbinger::evaluate::load(truth, alerts).map_err(Failure::runtime)?;
    let cfg = harbinger::evaluate::EvalConfig {
        window_ms: parse_duration_ms(window).map_err(Failure::config)?,
        detect_windows,
        ..Default::default()
    };
    let eval = harbinger::evaluate::evaluate(&truth, &alerts, cfg);
    let mut value = serde_json::to_value(&eval).map_err(Failure::runtime)?;
    if let Some(path) = incidents {
        let records = harbinger::incident_eval::load_incidents(path).map_err(Failure::runtime)?;
        let inc = harbinger::incident_eval::evaluate_incidents(&truth, &alerts, &records, cfg);
        value["incident_metrics"] = serde_json::to_value(&inc).map_err(Failure::runtime)?;
    }
    let text = serde_json::to_string_pretty(&value).map_err(Failure::runtime)?;
    println!("{text}");
    Ok(())
}

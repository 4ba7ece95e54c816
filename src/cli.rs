//! The command line: subcommands and their flags (see `ARCHITECTURE.md`, "Commands").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::parse::Format;

/// Harbinger: a streaming engine for operations metrics.
#[derive(Debug, Parser)]
#[command(name = "harbinger", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Timely's cluster settings, passed through (`-h` stays help here: use `--hostfile`).
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Worker threads per process.
    #[arg(short = 'w', long)]
    pub workers: Option<usize>,
    /// Number of processes in the cluster.
    #[arg(short = 'n', long, default_value_t = 1)]
    pub processes: usize,
    /// This process's index in the cluster.
    #[arg(short = 'p', long, default_value_t = 0)]
    pub process: usize,
    /// File listing `host:port` of every process (default: localhost:2101+i).
    #[arg(long)]
    pub hostfile: Option<PathBuf>,
}

/// `harbinger run --brokers HOST:PORT --topic metrics`: read a topic and write the topics
/// `alerts`, `incidents`, `recommendations` and `dead-letters` on the same brokers.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers; replaces the config's sources and sinks with Kafka ones.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Topic(s) to read (with --brokers).
    #[arg(long, requires = "brokers")]
    pub topic: Vec<String>,
    /// Payload format of the topic(s).
    #[arg(long, requires = "brokers", default_value = "json")]
    pub format: Format,
    /// Consumer group.
    #[arg(long, requires = "brokers", default_value = "harbinger")]
    pub group_id: String,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the stream processor (without --config or --brokers: the built-in simulator demo).
    Run {
        /// Config file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Rules directory (overrides the config's `rules_dir`).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Kafka shortcut without a config file.
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Directory for state checkpoints (overrides the config's).
        #[arg(long)]
        checkpoint_dir: Option<PathBuf>,
        /// Cluster settings.
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Write the simulator's metrics, ground truth and topology to a directory.
    Simulate {
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Simulated duration (e.g. 90m, 6h, 2d).
        #[arg(long, default_value = "6h")]
        duration: String,
        /// Number of services.
        #[arg(long, default_value_t = 12)]
        services: usize,
        /// Replicas per service (1–100), each on its own host; 3 or more also injects a
        /// degraded replica every six hours (for peer comparison).
        #[arg(long, default_value_t = 1,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100))]
        replicas: usize,
        /// Number of incidents (default: one per 75 minutes after the first hour).
        #[arg(long)]
        incidents: Option<usize>,
        /// Probability that an incident overlaps the previous one.
        #[arg(long, default_value_t = 0.15)]
        overlap: f64,
        /// Sampling interval (e.g. 10s).
        #[arg(long, default_value = "10s")]
        step: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the whole pipeline over files as fast as possible.
    Replay {
        /// Input files (format from the extension unless --format is given).
        #[arg(long, required = true, num_args = 1..)]
        input: Vec<PathBuf>,
        /// Input format for every file.
        #[arg(long)]
        format: Option<Format>,
        /// Config file for windows, detectors and alerts (its sources and sinks are replaced).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Rules directory.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Topology file (`[[service]] name / calls / runs_on`), overriding the rules' one.
        #[arg(long)]
        topology: Option<PathBuf>,
        /// Also write features.jsonl (every closed window).
        #[arg(long)]
        features: bool,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Cluster settings.
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Load a JSON-lines metrics file into a Kafka topic (demos, benchmarks).
    Produce {
        /// Kafka bootstrap servers.
        #[arg(long)]
        brokers: String,
        /// Topic to write.
        #[arg(long)]
        topic: String,
        /// Metrics file (the JSON input format, one point per line).
        #[arg(long)]
        input: PathBuf,
        /// Most points per message (points of one entity and timestamp share a message).
        #[arg(long, default_value_t = 100)]
        per_message: usize,
        /// What shares a message: one entity's points, or every point bound for one partition.
        #[arg(long, value_enum, default_value_t = crate::commands::produce::BatchBy::Entity)]
        batch_by: crate::commands::produce::BatchBy,
        /// A librdkafka producer property, KEY=VALUE (repeatable; e.g. `linger.ms=5`).
        #[arg(long = "property", value_name = "KEY=VALUE")]
        properties: Vec<String>,
    },
    /// Per-row anomaly scores in [0, 1] for a CSV, by the streaming detection path (no
    /// look-ahead): the input's columns plus `anomaly_score`.
    Score {
        /// Known-normal history of the same shape, streamed through the detectors first.
        #[arg(long)]
        train: Option<PathBuf>,
        /// Input CSV (NAB `timestamp,value`, wide with a timestamp, or headerless wide).
        #[arg(long)]
        input: PathBuf,
        /// Output CSV.
        #[arg(long)]
        output: PathBuf,
        /// Config file for the detectors (default: the embedded default).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Rules directory.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Time between rows of a file without timestamps (e.g. 5m).
        #[arg(long, default_value = "1m")]
        row_step: String,
    },
    /// Forecasts with 80% / 95% intervals for every series of a long-format `unique_id,ds,y`
    /// CSV; writes `unique_id,step,yhat,lo80,hi80,lo95,hi95`.
    Forecast {
        /// Input CSV, long format `unique_id,ds,y` with a header.
        #[arg(long)]
        input: PathBuf,
        /// Steps to forecast per series.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        horizon: u64,
        /// Main season length (ARIMA and seasonal naive); detected per series when absent.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        season: Option<u64>,
        /// Further seasonal periods for MSTL, comma-separated (e.g. 168 beside --season 24).
        #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
        extra_seasons: Vec<u64>,
        /// Model family: chosen per series on a holdout window (auto) or fixed.
        #[arg(long, value_enum, default_value_t = ForecastModel::Auto)]
        model: ForecastModel,
        /// Worker threads (default: the available parallelism).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        threads: Option<u64>,
        /// Output CSV.
        #[arg(long)]
        output: PathBuf,
    },
    /// Score an alerts.jsonl against a simulator truth.json (detection, delay, false alerts).
    Evaluate {
        /// The simulator's ground truth.
        #[arg(long)]
        truth: PathBuf,
        /// Alerts written by a run.
        #[arg(long)]
        alerts: PathBuf,
        /// Incidents written by the same run: adds noise reduction, purity and AC@k.
        #[arg(long)]
        incidents: Option<PathBuf>,
        /// Window length the alerts were computed on (e.g. 1m).
        #[arg(long, default_value = "1m")]
        window: String,
        /// Windows after an incident's start within which it counts as detected.
        #[arg(long, default_value_t = 5)]
        detect_windows: u64,
    },
    /// Check a config and its rules; print every error with file:line:col.
    Validate {
        /// Config file (default: the embedded default).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Rules directory.
        #[arg(long)]
        rules: Option<PathBuf>,
    },
}

/// The model family of `harbinger forecast`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ForecastModel {
    /// Per series: the ARIMA + MSTL/ETS combination, unless one model (or seasonal naive) is
    /// clearly better on a holdout window.
    Auto,
    /// The equal-weight combination of automatic ARIMA and MSTL + ETS.
    Combo,
    /// Automatic seasonal ARIMA.
    Arima,
    /// MSTL decomposition with an ETS trend.
    Mstl,
    /// Seasonal naive.
    Snaive,
}

impl From<ForecastModel> for operators::models::forecast::ModelChoice {
    fn from(m: ForecastModel) -> Self {
        use operators::models::forecast::ModelChoice;
        match m {
            ForecastModel::Auto => ModelChoice::Auto,
            ForecastModel::Combo => ModelChoice::Combination,
            ForecastModel::Arima => ModelChoice::Arima,
            ForecastModel::Mstl => ModelChoice::MstlEts,
            ForecastModel::Snaive => ModelChoice::SeasonalNaive,
        }
    }
}

impl ClusterArgs {
    /// The timely configuration these flags describe; `default_workers` when `-w` is absent.
    pub fn timely_config(&self, default_workers: usize) -> Result<timely::Config, String> {
        let mut args = vec![
            "harbinger".to_string(),
            "-w".to_string(),
            self.workers.unwrap_or(default_workers).max(1).to_string(),
            "-n".to_string(),
            self.processes.to_string(),
            "-p".to_string(),
            self.process.to_string(),
        ];
        if let Some(h) = &self.hostfile {
            args.push("-h".to_string());
            args.push(h.display().to_string());
        }
        timely::Config::from_args(args.into_iter())
    }
}

/// Parses a duration such as `90s`, `30m`, `6h`, `2d` (a bare number is seconds) to milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 30m, 6h or 2d"))?;
    let unit_ms = match unit.trim() {
        "" | "s" => 1_000.0,
        "ms" => 1.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m, h or d)"
            ))
        }
    };
    let ms = value * unit_ms;
    if !(ms.is_finite() && ms > 0.0 && ms < 1e15) {
        return Err(format!("{text:?} is not a positive duration"));
    }
    Ok(ms.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("6h"), Ok(21_600_000));
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("1.5m"), Ok(90_000));
        assert_eq!(parse_duration_ms("10"), Ok(10_000));
        assert!(parse_duration_ms("6 weeks").is_err());
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("h").is_err());
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

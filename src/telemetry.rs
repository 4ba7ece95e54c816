//! Logging: `tracing` to standard error, filtered by `RUST_LOG` (default `info` for Harbinger,
//! `warn` for libraries). Results go to stdout and files; logs never mix with them.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,harbinger=info,operators=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

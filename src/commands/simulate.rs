//! `harbinger simulate`: write the simulator's metrics (`metrics.jsonl`, the input format), its
//! ground truth (`truth.json`) and its topology (`topology.toml`) to a directory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::commands::{Failure, Outcome};
use crate::sources::simulator::{Simulation, SimulatorConfig};

/// One point as written to `metrics.jsonl` (the input contract).
#[derive(Serialize)]
struct PointLine<'a> {
    name: &'a str,
    labels: Labels<'a>,
    timestamp: u64,
    value: f64,
}

/// Labels as a JSON object in key order.
struct Labels<'a>(&'a [(&'a str, &'a str)]);

impl Serialize for Labels<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Writes a simulation to `out`.
pub fn simulate(config: SimulatorConfig, out: &Path) -> Outcome {
    std::fs::create_dir_all(out).map_err(Failure::runtime)?;
    let mut sim = Simulation::new(config);
    std::fs::write(out.join("topology.toml"), sim.fleet().topology_toml())
        .map_err(Failure::runtime)?;
    let truth = serde_json::to_string_pretty(&sim.truth()).map_err(Failure::runtime)?;
    std::fs::write(out.join("truth.json"), truth + "\n").map_err(Failure::runtime)?;
    let file = File::create(out.join("metrics.jsonl")).map_err(Failure::runtime)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut error = None;
    let mut points = 0u64;
    while sim.next_step(|name, labels, timestamp, value| {
        if error.is_some() {
            return;
        }
        let line = PointLine {
            name,
            labels: Labels(labels),
            timestamp,
            value,
        };
        let r = serde_json::to_writer(&mut w, &line)
            .map_err(std::io::Error::from)
            .and_then(|_| w.write_all(b"\n"));
        match r {
            Ok(()) => points += 1,
            Err(e) => error = Some(e),
        }
    }) {}
    if let Some(e) = error {
        return Err(Failure::runtime(e));
    }
    w.flush().map_err(Failure::runtime)?;
    eprintln!(
        "Wrote {points} points, {} incidents and the topology to {}/.",
        sim.truth().incidents.len(),
        out.display()
    );
    Ok(())
}

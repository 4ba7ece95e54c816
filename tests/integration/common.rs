//! Shared helpers: the cluster arguments of an in-process run on N workers, a replay of one
//! configuration on several worker counts, the faults a simulator run injected, and a decoding
//! harness that drives any decoder through one partition's acceptance rules (the same
//! `DecodeCtx` a source builds), so tests see exactly the points and dead letters a real run
//! would produce.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use harbinger::cli::ClusterArgs;
use harbinger::commands::pipeline::replay;
use harbinger::ingest::{
    Batch, Interner, LabelLimits, PartitionClock, PartitionIngest, PositionKind,
};
use harbinger::parse::{DecodeCtx, Decoder};
use operators::series::SharedKey;

/// One accepted point: metric name, sorted labels, event time (ms) and the value's bits (so
/// `-0.0` and `0.0` differ, and equality means an exact round trip).
pub type Observed = (String, Vec<(String, String)>, u64, u64);

/// One partition's decoding state, fed payload by payload.
pub struct Harness {
    ingest: PartitionIngest,
    interner: Interner,
    /// Every key announced so far: a batch only carries keys new to the worker.
    keys: HashMap<u64, SharedKey>,
}

impl Default for Harness {
    /// Default label limits; lateness `u64::MAX` so that no point is ever late and the decoders'
    /// output is seen whole, whatever order the generated times come in.
    fn default() -> Self {
        Harness {
            ingest: PartitionIngest {
                source: "test".into(),
                position: PositionKind::File("test-input".into()),
                clock: PartitionClock::default(),
                lateness_ms: u64::MAX,
                limits: LabelLimits::default(),
                floor: 0,
            },
            interner: Interner::default(),
            keys: HashMap::new(),
        }
    }
}

impl Harness {
    /// Decodes one payload found on `line` and returns what it produced.
    pub fn feed(&mut self, decoder: &mut dyn Decoder, payload: &[u8], line: u64) -> Batch {
        let mut batch = Batch::default();
        let mut ctx = DecodeCtx {
            ingest: &mut self.ingest,
            interner: &mut self.interner,
            batch: &mut batch,
        };
        decoder.decode(payload, (line, 0), &mut ctx);
        for (id, key) in &batch.keys {
            self.keys.insert(id.0, key.clone());
        }
        batch
    }

    /// The accepted points of `batch` with their series keys resolved, in output order.
    pub fn observed(&self, batch: &Batch) -> Vec<Observed> {
        batch
            .points
            .iter()
            .map(|p| {
                let key = self
                    .keys
                    .get(&p.series.0)
                    .unwrap_or_else(|| panic!("point of unannounced series {:?}", p.series));
                (
                    key.name.clone(),
                    key.labels.clone(),
                    p.time,
                    p.value.to_bits(),
                )
            })
            .collect()
    }
}

/// Cluster arguments for one process with `workers` worker threads.
pub fn cluster(workers: usize) -> ClusterArgs {
    ClusterArgs {
        workers: Some(workers),
        processes: 1,
        process: 0,
        hostfile: None,
    }
}

/// Replays `inputs` with `config` once per worker count in `workers`; returns the output
/// directories (`<tag>-<workers>` under `dir`), in the same order.
pub fn replay_on<const N: usize>(
    dir: &Path,
    inputs: &[PathBuf],
    config: &Path,
    tag: &str,
    workers: [usize; N],
) -> [PathBuf; N] {
    workers.map(|w| {
        let out = dir.join(format!("{tag}-{w}"));
        replay(
            inputs,
            None,
            Some(config),
            None,
            None,
            false,
            &out,
            &cluster(w),
        )
        .expect("replay");
        out
    })
}

/// The faults of the given `types` that the simulator run in `sim` injected (its `truth.json`).
pub fn injected_faults(sim: &Path, types: &[&str]) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(sim.join("truth.json")).expect("truth");
    let truth: serde_json::Value = serde_json::from_str(&text).expect("truth json");
    truth["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter(|i| types.iter().any(|t| i["type"] == *t))
        .cloned()
        .collect()
}

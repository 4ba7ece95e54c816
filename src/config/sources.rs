//! `[[sources]]`: files, standard input, the simulator and Kafka, checked type by type (a field that
//! does not apply to a source's type is an error, not silently ignored).

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::checker::Checker;
use super::raw::{RawSource, SourceType};
use super::SourcePlan;
use crate::parse::{timestamp, Format, Precision};
use crate::sources::kafka::{KafkaSourceSpec, TopicSpec};
use crate::sources::simulator::SimulatorConfig;

/// Compiles every source; relative paths go through `resolve`.
pub fn compile_sources(
    c: &mut Checker<'_, '_>,
    raw: &[Spanned<RawSource>],
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Vec<SourcePlan> {
    let mut sources = Vec::new();
    let mut source_names = HashSet::new();
    for (i, s) in raw.iter().enumerate() {
        let span = s.span();
        let s = s.get_ref();
        let kind = *s.kind.get_ref();
        let name = s
            .name
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or_else(|| format!("{}-{}", kind_name(kind), i + 1));
        if !source_names.insert(name.clone()) {
            c.err(span.clone(), format!("source name {name:?} is used twice"));
        }
        compile_source(c, s, kind, name, span, resolve, &mut sources);
    }

    sources
}

/// The type's name as written in configs.
pub fn kind_name(kind: SourceType) -> &'static str {
    match kind {
        SourceType::File => "file",
        SourceType::Stdin => "stdin",
        SourceType::Simulator => "simulator",
        SourceType::Kafka => "kafka",
    }
}

/// Reports every Kafka-only field on a source of another type.
fn reject_kafka_fields(c: &mut Checker<'_, '_>, s: &RawSource, kn: &str) {
    c.not_for(&s.brokers, "brokers", kn);
    c.not_for(&s.topic, "topic", kn);
    c.not_for(&s.topics, "topics", kn);
    c.not_for(&s.group_id, "group_id", kn);
    c.not_for(
        &s.idle_partition_timeout_secs,
        "idle_partition_timeout_secs",
        kn,
    );
    c.not_for(&s.properties, "properties", kn);
    c.not_for(&s.partition_assignment, "partition_assignment", kn);
}

/// Reports every simulator-only field on a source of another type.
fn reject_simulator_fields(c: &mut Checker<'_, '_>, s: &RawSource, kn: &str) {
    for (field, fname) in [
        (&s.seed, "seed"),
        (&s.services, "services"),
        (&s.replicas, "replicas"),
        (&s.incidents, "incidents"),
    ] {
        c.not_for(field, fname, kn);
    }
    c.not_for(&s.duration_secs, "duration_secs", kn);
    c.not_for(&s.step_secs, "step_secs", kn);
    c.not_for(&s.overlap_probability, "overlap_probability", kn);
    c.not_for(&s.start, "start", kn);
}

fn compile_source(
    c: &mut Checker<'_, '_>,
    s: &RawSource,
    kind: SourceType,
    name: String,
    span: Range<usize>,
    resolve: &dyn Fn(&str) -> PathBuf,
    out: &mut Vec<SourcePlan>,
) {
    let kn = kind_name(kind);
    match kind {
        SourceType::File | SourceType::Stdin => {
            reject_simulator_fields(c, s, kn);
            reject_kafka_fields(c, s, kn);
            let speed = c.float(&s.speed, 0.0, 0.0, 1e9, "speed");
            let precision = s
                .influx_precision
                .as_ref()
                .map_or(Precision::Ns, |p| *p.get_ref());
            let paths: Vec<PathBuf> = if kind == SourceType::Stdin {
                c.not_for(&s.path, "path", kn);
                c.not_for(&s.paths, "paths", kn);
                vec![PathBuf::from("-")]
            } else {
                let mut v: Vec<PathBuf> = s.path.iter().map(|p| resolve(p.get_ref())).collect();
                if let Some(ps) = &s.paths {
                    v.extend(ps.get_ref().iter().map(|p| resolve(p)));
                }
                if v.is_empty() {
                    c.err(span, "a `file` source needs `path` or `paths`");
                }
                v
            };
            let many = paths.len() > 1;
            for path in paths {
                let format = s.format.as_ref().map_or_else(
                    || crate::sources::file::format_from_extension(&path),
                    |f| *f.get_ref(),
                );
                out.push(SourcePlan::File {
                    name: if many {
                        format!("{name}:{}", path.display())
                    } else {
                        name.clone()
                    },
                    path,
                    format,
                    precision,
                    speed,
                });
            }
        }
        SourceType::Simulator => {
            reject_kafka_fields(c, s, kn);
            c.not_for(&s.path, "path", kn);
            c.not_for(&s.paths, "paths", kn);
            c.not_for(&s.format, "format", kn);
            c.not_for(&s.influx_precision, "influx_precision", kn);
            let d = SimulatorConfig::default();
            let start_ms = match &s.start {
                None => d.start_ms,
                Some(t) => match timestamp::parse_text(t.get_ref()) {
                    Ok(ms) => ms,
                    Err(_) => {
                        c.err(
                            t.span(),
                            format!("start {:?} is not an RFC 3339 time", t.get_ref()),
                        );
                        d.start_ms
                    }
                },
            };
            let config = SimulatorConfig {
                seed: s.seed.as_ref().map_or(d.seed, |v| *v.get_ref() as u64),
                services: c.int(&s.services, d.services, 3..10_001, "services"),
                duration_ms: c.secs_to_ms(&s.duration_secs, d.duration_ms, "duration_secs", false),
                step_ms: c.secs_to_ms(&s.step_secs, d.step_ms, "step_secs", false),
                start_ms,
                incidents: s
                    .incidents
                    .as_ref()
                    .map(|_| c.int(&s.incidents, 0, 0..100_001, "incidents")),
                overlap_probability: c.float(
                    &s.overlap_probability,
                    d.overlap_probability,
                    0.0,
                    1.0,
                    "overlap_probability",
                ),
                speed: c.float(&s.speed, 0.0, 0.0, 1e9, "speed"),
                replicas: c.int(&s.replicas, d.replicas, 1..101, "replicas"),
            };
            out.push(SourcePlan::Simulator { name, config });
        }
        SourceType::Kafka => {
            reject_simulator_fields(c, s, kn);
            c.not_for(&s.path, "path", kn);
            c.not_for(&s.paths, "paths", kn);
            c.not_for(&s.speed, "speed", kn);
            let brokers = match &s.brokers {
                Some(b) if !b.get_ref().trim().is_empty() => b.get_ref().clone(),
                _ => {
                    c.err(
                        span.clone(),
                        "a `kafka` source needs `brokers` (host:port, comma-separated)",
                    );
                    String::new()
                }
            };
            let default_format = s.format.as_ref().map_or(Format::Json, |f| *f.get_ref());
            let default_precision = s
                .influx_precision
                .as_ref()
                .map_or(Precision::Ns, |p| *p.get_ref());
            let mut topics: Vec<TopicSpec> = s
                .topic
                .iter()
                .map(|t| TopicSpec {
                    name: t.get_ref().clone(),
                    format: default_format,
                    precision: default_precision,
                })
                .collect();
            if let Some(list) = &s.topics {
                for t in list.get_ref() {
                    topics.push(TopicSpec {
                        name: t.name.get_ref().clone(),
                        format: t.format.as_ref().map_or(default_format, |f| *f.get_ref()),
                        precision: t
                            .influx_precision
                            .as_ref()
                            .map_or(default_precision, |p| *p.get_ref()),
                    });
                }
            }
            if topics.is_empty() {
                c.err(span, "a `kafka` source needs `topic` or `topics`");
            }
            if topics.iter().any(|t| t.format == Format::Csv) {
                let at = s.format.as_ref().map_or(s.kind.span(), |f| f.span());
                c.err(at, "Kafka topics carry json, prom-json or influx, not csv");
            }
            let properties = s
                .properties
                .as_ref()
                .map(|p| p.get_ref().clone())
                .unwrap_or_default();
            for key in ["bootstrap.servers", "group.id", "enable.auto.commit"] {
                if properties.contains_key(key) {
                    let span = s.properties.as_ref().map_or(s.kind.span(), |p| p.span());
                    c.err(
                        span,
                        format!("set `{key}` with the source's own field; Harbinger manages it"),
                    );
                }
            }
            out.push(SourcePlan::Kafka(KafkaSourceSpec {
                name,
                brokers,
                topics,
                group_id: s
                    .group_id
                    .as_ref()
                    .map_or_else(|| "harbinger".to_string(), |g| g.get_ref().clone()),
                properties,
                idle_timeout_ms: c.secs_to_ms(
                    &s.idle_partition_timeout_secs,
                    10_000,
                    "idle_partition_timeout_secs",
                    false,
                ),
                assignment: s
                    .partition_assignment
                    .as_ref()
                    .map_or_else(Default::default, |a| *a.get_ref()),
            }));
        }
    }
}

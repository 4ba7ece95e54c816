//! `[[sinks]]`: where results go (stdout, JSON-lines files, Kafka topics). Fields that do not apply
//! to a sink's type are errors.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::checker::Checker;
use super::raw::{RawSink, SinkType};
use super::{KafkaSinkPlan, SinkPlan};
use crate::sinks::AlertmanagerSettings;

/// Compiles the sinks.
pub fn compile_sinks(c: &mut Checker<'_, '_>, raw: &[Spanned<RawSink>]) -> SinkPlan {
    let mut sinks = SinkPlan::default();
    for spanned in raw {
        let span = spanned.span();
        let s = spanned.get_ref();
        let kind = *s.kind.get_ref();
        let name = match kind {
            SinkType::Stdout => "stdout",
            SinkType::Jsonl => "jsonl",
            SinkType::Kafka => "kafka",
            SinkType::Alertmanager => "alertmanager",
        };
        let not_for =
            |c: &mut Checker<'_, '_>, present: Option<std::ops::Range<usize>>, field: &str| {
                if let Some(at) = present {
                    c.err(at, format!("`{field}` does not apply to a `{name}` sink"));
                }
            };
        if kind != SinkType::Jsonl {
            not_for(c, s.dir.as_ref().map(|d| d.span()), "dir");
            not_for(c, s.features.as_ref().map(|f| f.span()), "features");
        }
        if kind != SinkType::Kafka {
            not_for(c, s.brokers.as_ref().map(|b| b.span()), "brokers");
            not_for(c, s.properties.as_ref().map(|p| p.span()), "properties");
            for (field, name) in [
                (&s.alerts_topic, "alerts_topic"),
                (&s.incidents_topic, "incidents_topic"),
                (&s.recommendations_topic, "recommendations_topic"),
                (&s.dead_letters_topic, "dead_letters_topic"),
            ] {
                not_for(c, field.as_ref().map(|f| f.span()), name);
            }
        }
        if kind != SinkType::Alertmanager {
            not_for(c, s.url.as_ref().map(|u| u.span()), "url");
            not_for(c, s.uncorrelated.as_ref().map(|u| u.span()), "uncorrelated");
            not_for(c, s.resend_secs.as_ref().map(|r| r.span()), "resend_secs");
        }
        match kind {
            SinkType::Stdout => sinks.stdout = true,
            SinkType::Alertmanager => {
                let Some(url) = &s.url else {
                    c.err(
                        span,
                        "an `alertmanager` sink needs `url` (e.g. \"http://127.0.0.1:9093\")",
                    );
                    continue;
                };
                if !url.get_ref().starts_with("http://") {
                    c.err(
                        url.span(),
                        "`url` must start with http:// (this build posts plain HTTP; put a \
                         TLS proxy in front of an https Alertmanager)",
                    );
                    continue;
                }
                // Alertmanager's default resolve_timeout is 5 min: re-sending every minute
                // keeps alerts firing with four misses to spare, as Prometheus does.
                let resend = c.int(&s.resend_secs, 60, 1..86_401, "resend_secs");
                sinks.alertmanager = Some(AlertmanagerSettings {
                    url: url.get_ref().clone(),
                    uncorrelated: s.uncorrelated.as_ref().is_some_and(|u| *u.get_ref()),
                    resend: Duration::from_secs(resend as u64),
                });
            }
            SinkType::Jsonl => {
                sinks.jsonl_dir = Some(s.dir.as_ref().map_or_else(
                    || PathBuf::from("harbinger-out"),
                    |d| PathBuf::from(d.get_ref()),
                ));
                sinks.features = s.features.as_ref().is_some_and(|f| *f.get_ref());
            }
            SinkType::Kafka => {
                let brokers = match &s.brokers {
                    Some(b) if !b.get_ref().trim().is_empty() => b.get_ref().clone(),
                    _ => {
                        c.err(
                            span,
                            "a `kafka` sink needs `brokers` (host:port, comma-separated)",
                        );
                        String::new()
                    }
                };
                let topic = |t: &Option<Spanned<String>>, default: &str| {
                    t.as_ref()
                        .map_or_else(|| default.to_string(), |t| t.get_ref().clone())
                };
                sinks.kafka = Some(KafkaSinkPlan {
                    brokers,
                    properties: s
                        .properties
                        .as_ref()
                        .map(|p| p.get_ref().clone())
                        .unwrap_or_default(),
                    alerts_topic: topic(&s.alerts_topic, "alerts"),
                    incidents_topic: topic(&s.incidents_topic, "incidents"),
                    recommendations_topic: topic(&s.recommendations_topic, "recommendations"),
                    dead_letters_topic: topic(&s.dead_letters_topic, "dead-letters"),
                });
            }
        }
    }
    sinks
}

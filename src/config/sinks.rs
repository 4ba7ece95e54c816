//! `[[sinks]]`: where results go.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::checker::Checker;
use super::raw::{RawSink, SinkType};
use super::SinkPlan;
use crate::sinks::AlertmanagerSettings;

/// Compiles the sinks.
pub fn compile_sinks(c: &mut Checker<'_, '_>, raw: &[Spanned<RawSink>]) -> SinkPlan {
    let mut sinks = SinkPlan::default();
    for spanned in raw {
        let s = spanned.get_ref();
        if *s.kind.get_ref() != SinkType::Alertmanager {
            for (name, span) in [
                ("url", s.url.as_ref().map(|v| v.span())),
                ("uncorrelated", s.uncorrelated.as_ref().map(|v| v.span())),
                ("resend_secs", s.resend_secs.as_ref().map(|v| v.span())),
            ] {
                if let Some(span) = span {
                    c.err(
                        span,
                        format!("`{name}` applies only to an `alertmanager` sink"),
                    );
                }
            }
        }
        match s.kind.get_ref() {
            SinkType::Alertmanager => {
                for (name, span) in [
                    ("dir", s.dir.as_ref().map(|v| v.span())),
                    ("features", s.features.as_ref().map(|v| v.span())),
                ] {
                    if let Some(span) = span {
                        c.err(
                            span,
                            format!("`{name}` does not apply to an `alertmanager` sink"),
                        );
                    }
                }
                let Some(url) = &s.url else {
                    c.err(
                        spanned.span(),
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
            SinkType::Stdout => {
                if let Some(d) = &s.dir {
                    c.err(d.span(), "`dir` does not apply to a `stdout` sink");
                }
                sinks.stdout = true;
            }
            SinkType::Jsonl => {
                sinks.jsonl_dir = Some(s.dir.as_ref().map_or_else(
                    || PathBuf::from("harbinger-out"),
                    |d| PathBuf::from(d.get_ref()),
                ));
                sinks.features = s.features.as_ref().is_some_and(|f| *f.get_ref());
            }
        }
    }

    sinks
}

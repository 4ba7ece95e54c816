//! `[[sinks]]`: where results go.

use std::path::PathBuf;

use toml::Spanned;

use super::checker::Checker;
use super::raw::{RawSink, SinkType};
use super::SinkPlan;

/// Compiles the sinks.
pub fn compile_sinks(c: &mut Checker<'_, '_>, raw: &[Spanned<RawSink>]) -> SinkPlan {
    let mut sinks = SinkPlan::default();
    for s in raw {
        let s = s.get_ref();
        match s.kind.get_ref() {
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

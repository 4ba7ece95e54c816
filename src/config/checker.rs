//! The error collector validation uses: every check records its error with the value's position
//! and returns a usable default, so one pass finds every error in a file.

use std::ops::Range;

use toml::Spanned;

use super::error::{ConfigError, SourceText};

/// Collects errors against one file.
pub struct Checker<'a, 'b> {
    /// The file being checked.
    pub src: &'a SourceText<'a>,
    /// Errors found so far.
    pub errors: &'b mut Vec<ConfigError>,
}

impl Checker<'_, '_> {
    /// Records an error at `span`.
    pub fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.errors.push(self.src.error(span, msg));
    }

    /// A positive duration in seconds, as milliseconds (`default_ms` when absent or invalid).
    pub fn secs_to_ms(
        &mut self,
        v: &Option<Spanned<f64>>,
        default_ms: u64,
        what: &str,
        allow_zero: bool,
    ) -> u64 {
        let Some(v) = v else { return default_ms };
        let secs = *v.get_ref();
        let ok = secs.is_finite() && (secs > 0.0 || (allow_zero && secs == 0.0)) && secs < 1e9;
        if !ok {
            let bound = if allow_zero { "≥ 0" } else { "> 0" };
            self.err(
                v.span(),
                format!("{what} must be a number of seconds {bound}, got {secs}"),
            );
            return default_ms;
        }
        (secs * 1000.0).round() as u64
    }

    /// An integer within `range`.
    pub fn int(
        &mut self,
        v: &Option<Spanned<i64>>,
        default: usize,
        range: Range<i64>,
        what: &str,
    ) -> usize {
        let Some(v) = v else { return default };
        let x = *v.get_ref();
        if !range.contains(&x) {
            self.err(
                v.span(),
                format!(
                    "{what} must be between {} and {}, got {x}",
                    range.start,
                    range.end - 1
                ),
            );
            return default;
        }
        x as usize
    }

    /// A float within [lo, hi].
    pub fn float(
        &mut self,
        v: &Option<Spanned<f64>>,
        default: f64,
        lo: f64,
        hi: f64,
        what: &str,
    ) -> f64 {
        let Some(v) = v else { return default };
        let x = *v.get_ref();
        if !(x.is_finite() && x >= lo && x <= hi) {
            self.err(
                v.span(),
                format!("{what} must be between {lo} and {hi}, got {x}"),
            );
            return default;
        }
        x
    }

    /// Reports a field given for a source type it does not apply to.
    pub fn not_for<T>(&mut self, field: &Option<Spanned<T>>, name: &str, kind: &str) {
        if let Some(f) = field {
            self.err(
                f.span(),
                format!("`{name}` does not apply to a `{kind}` source"),
            );
        }
    }
}

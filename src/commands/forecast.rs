//! `harbinger forecast --input FILE.csv --horizon H [--season M] --output FILE.csv`: batch
//! forecasts with 80% and 95% prediction intervals for every series of a long-format CSV.
//!
//! Input: a header naming the columns `unique_id`, `ds` and `y` (in any order; other columns are
//! ignored), then one row per observation. Rows of a series may come in any order and interleave
//! with other series: each series is sorted by `ds`, numerically when every `ds` of the file is a
//! number, else as text (so ISO 8601 times sort by time). An empty `y` or `NA` / `NaN` is a
//! missing value (the models interpolate it); any other unparseable field, a short row or a
//! repeated `ds` within a series is an error naming its line.
//!
//! Each series gets the per-series model choice of [`operators::models::forecast`]: automatic
//! seasonal ARIMA, MSTL + ETS, their combination or seasonal naive, picked on a holdout window.
//! `--season` fixes the main season (ARIMA's and seasonal naive's period; without it the season
//! is detected per series), `--extra-seasons` adds further MSTL periods (168 beside 24 for
//! hourly data). Series are independent, so they are spread over `--threads` threads; the output
//! holds `unique_id,step,yhat,lo80,hi80,lo95,hi95` rows in the input's series order whatever the
//! thread count, and each series' forecast is deterministic.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use operators::models::forecast::{forecast as forecast_series, Forecast, ForecastConfig};

use crate::commands::{Failure, Outcome};

/// Header of the output file.
pub const OUTPUT_HEADER: &str = "unique_id,step,yhat,lo80,hi80,lo95,hi95";

/// One input series: its id and its values in `ds` order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The `unique_id` column.
    pub id: String,
    /// Observations sorted by `ds`; missing values are NaN.
    pub values: Vec<f64>,
}

/// Runs the command: reads `input`, forecasts every series with `config` on `threads` threads
/// (at least one), writes `output` and prints a one-line summary to stderr.
pub fn forecast(input: &Path, output: &Path, config: &ForecastConfig, threads: usize) -> Outcome {
    if config.horizon == 0 {
        return Err(Failure::usage("--horizon must be at least 1"));
    }
    if config.season == Some(0) || config.extra_seasons.contains(&0) {
        return Err(Failure::usage("season lengths must be at least 1"));
    }
    let file = std::fs::File::open(input)
        .map_err(|e| Failure::runtime(format!("{}: {e}", input.display())))?;
    let series =
        read_series(file).map_err(|e| Failure::runtime(format!("{}:{e}", input.display())))?;
    let started = Instant::now();
    let forecasts = forecast_all(&series, config, threads)?;
    let out = std::fs::File::create(output)
        .map_err(|e| Failure::runtime(format!("{}: {e}", output.display())))?;
    let mut w = BufWriter::new(out);
    write_forecasts(&mut w, &series, &forecasts)
        .and_then(|()| w.flush())
        .map_err(|e| Failure::runtime(format!("{}: {e}", output.display())))?;
    eprintln!(
        "forecast: {} series, horizon {}, {:.1} s wall on {} thread(s)",
        series.len(),
        config.horizon,
        started.elapsed().as_secs_f64(),
        threads.max(1)
    );
    Ok(())
}

/// A parse error: 1-based line number and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the input (the header is line 1).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for LineError {}

/// One row as read, before sorting: where it came from and its `ds` as text.
struct Row {
    line: usize,
    ds: String,
    y: f64,
}

/// Reads a long-format `unique_id,ds,y` CSV into series, in order of each id's first row, each
/// sorted by `ds` (see the module docs for the rules). Errors name the offending line.
pub fn read_series(input: impl Read) -> Result<Vec<Series>, LineError> {
    let mut lines = BufReader::new(input).lines();
    let header = match lines.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(line_error(1, e)),
        None => {
            return Err(line_error(
                1,
                "empty input: expected a header unique_id,ds,y",
            ))
        }
    };
    let names: Vec<&str> = header.split(',').map(unquote).collect();
    let column = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| line_error(1, format!("header has no `{name}` column: {header}")))
    };
    let (id_col, ds_col, y_col) = (column("unique_id")?, column("ds")?, column("y")?);
    let needed = id_col.max(ds_col).max(y_col) + 1;

    let mut order: Vec<String> = Vec::new();
    let mut rows: HashMap<String, Vec<Row>> = HashMap::new();
    let mut numeric_ds = true;
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        let line = line.map_err(|e| line_error(line_no, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(unquote).collect();
        if fields.len() < needed {
            return Err(line_error(
                line_no,
                format!(
                    "expected {} fields as in the header, found {}: {line}",
                    names.len(),
                    fields.len()
                ),
            ));
        }
        let id = fields[id_col];
        if id.is_empty() {
            return Err(line_error(line_no, "empty unique_id"));
        }
        let ds = fields[ds_col];
        if ds.is_empty() {
            return Err(line_error(line_no, "empty ds"));
        }
        numeric_ds &= ds.parse::<f64>().is_ok_and(f64::is_finite);
        let y = parse_value(fields[y_col]).map_err(|r| line_error(line_no, r))?;
        let entry = rows.entry(id.to_string()).or_insert_with(|| {
            order.push(id.to_string());
            Vec::new()
        });
        entry.push(Row {
            line: line_no,
            ds: ds.to_string(),
            y,
        });
    }

    order
        .into_iter()
        .map(|id| {
            let mut series_rows = rows.remove(&id).unwrap_or_default();
            if numeric_ds {
                // Every ds parsed above, so the fallback is never taken.
                let key = |r: &Row| r.ds.parse::<f64>().unwrap_or(f64::NAN);
                series_rows.sort_by(|a, b| key(a).total_cmp(&key(b)).then(a.line.cmp(&b.line)));
                if let Some(pair) = series_rows.windows(2).find(|p| key(&p[0]) == key(&p[1])) {
                    return Err(repeated_ds(&id, &pair[0], &pair[1]));
                }
            } else {
                series_rows.sort_by(|a, b| a.ds.cmp(&b.ds).then(a.line.cmp(&b.line)));
                if let Some(pair) = series_rows.windows(2).find(|p| p[0].ds == p[1].ds) {
                    return Err(repeated_ds(&id, &pair[0], &pair[1]));
                }
            }
            Ok(Series {
                id,
                values: series_rows.into_iter().map(|r| r.y).collect(),
            })
        })
        .collect()
}

fn line_error(line: usize, reason: impl std::fmt::Display) -> LineError {
    LineError {
        line,
        reason: reason.to_string(),
    }
}

fn repeated_ds(id: &str, first: &Row, second: &Row) -> LineError {
    let (early, late) = if first.line < second.line {
        (first, second)
    } else {
        (second, first)
    };
    line_error(
        late.line,
        format!(
            "series {id} repeats ds {} (first on line {})",
            late.ds, early.line
        ),
    )
}

/// Trims a field and drops one pair of surrounding double quotes.
fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|g| g.strip_suffix('"'))
        .unwrap_or(f)
}

/// A `y` value: a number, or missing (empty, `NA`, `NaN`) as NaN.
fn parse_value(text: &str) -> Result<f64, String> {
    if text.is_empty() || text.eq_ignore_ascii_case("na") || text.eq_ignore_ascii_case("nan") {
        return Ok(f64::NAN);
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("y is not finite: {text}")),
        Err(_) => Err(format!("y is not a number: {text}")),
    }
}

/// Forecasts every series with `config` on `threads` threads (at least one). Threads take the
/// next unclaimed series, so a slow series does not hold back a whole chunk; results come back
/// in input order. A series that cannot be forecast (no finite value) is an error naming it.
pub fn forecast_all(
    series: &[Series],
    config: &ForecastConfig,
    threads: usize,
) -> Result<Vec<Forecast>, Failure> {
    let threads = threads.clamp(1, series.len().max(1));
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<Forecast, String>>>> = Mutex::new(vec![None; series.len()]);
    let worker = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(s) = series.get(i) else { break };
        let result = forecast_series(&s.values, config).map_err(|e| e.to_string());
        // A poisoned lock means another worker panicked; its join reports that below.
        if let Ok(mut guard) = slots.lock() {
            guard[i] = Some(result);
        }
    };
    let panicked = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| h.join())
            .filter(Result::is_err)
            .count()
    });
    if panicked > 0 {
        return Err(Failure::runtime("a forecasting thread panicked"));
    }
    let slots = slots
        .into_inner()
        .map_err(|_| Failure::runtime("a forecasting thread panicked"))?;
    series
        .iter()
        .zip(slots)
        .map(|(s, slot)| match slot {
            Some(Ok(f)) => Ok(f),
            Some(Err(e)) => Err(Failure::runtime(format!("series {}: {e}", s.id))),
            None => Err(Failure::runtime(format!("series {}: not forecast", s.id))),
        })
        .collect()
}

/// Writes the header and one row per series and step (steps from 1), in `series` order.
pub fn write_forecasts(
    w: &mut impl Write,
    series: &[Series],
    forecasts: &[Forecast],
) -> std::io::Result<()> {
    writeln!(w, "{OUTPUT_HEADER}")?;
    for (s, f) in series.iter().zip(forecasts) {
        for h in 0..f.point.len() {
            writeln!(
                w,
                "{},{},{},{},{},{},{}",
                s.id,
                h + 1,
                f.point[h],
                f.lo80[h],
                f.hi80[h],
                f.lo95[h],
                f.hi95[h]
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_sorts_interleaved_series() {
        let csv = "unique_id,ds,y\nb,2,20\na,2,2\nb,1,10\na,1,1\na,3,\n";
        let s = read_series(csv.as_bytes()).expect("parses");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].id, "b");
        assert_eq!(s[0].values, vec![10.0, 20.0]);
        assert_eq!(s[1].values[..2], [1.0, 2.0]);
        assert!(s[1].values[2].is_nan());
    }

    #[test]
    fn text_ds_sorts_as_text_and_columns_may_move() {
        let csv = "y,unique_id,ds\n3,x,2024-01-03\n1,x,2024-01-01\n2,x,2024-01-02\n";
        let s = read_series(csv.as_bytes()).expect("parses");
        assert_eq!(s[0].values, vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn errors_name_the_line() {
        let bad_y = "unique_id,ds,y\na,1,1\na,2,oops\n";
        assert_eq!(read_series(bad_y.as_bytes()).unwrap_err().line, 3);
        let short = "unique_id,ds,y\na,1,1\na,2\n";
        assert_eq!(read_series(short.as_bytes()).unwrap_err().line, 3);
        let repeated = "unique_id,ds,y\na,1,1\nb,1,1\na,1,2\n";
        assert_eq!(read_series(repeated.as_bytes()).unwrap_err().line, 4);
        let header = "id,ds,y\na,1,1\n";
        assert_eq!(read_series(header.as_bytes()).unwrap_err().line, 1);
    }
}

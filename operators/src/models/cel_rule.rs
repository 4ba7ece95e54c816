//! Correlation-rule conditions written in CEL (the Common Expression Language, `cel` crate), for
//! users who want their own grouping: a rule links two alerts when its condition holds.
//!
//! The condition sees two variables, `a` and `b`, each a map with `labels` (map of strings),
//! `entity`, `anomaly_type`, `up` (bool) and `onset_ms` (int); for example
//! `a.labels.cluster == b.labels.cluster && a.anomaly_type == b.anomaly_type`. A condition that
//! fails to evaluate (a missing label, a type error) does not link.
//!
//! [`CelExpr`] is the general form the optimizer's recommendation rules use: any expression over
//! named variables, with compile errors and unknown-field checks that say where in the
//! expression they are, so the rule loader can point at file:line:col.

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::{Context, Env, Program, Value};

use crate::models::dedup::AlertNode;

/// A compiled condition.
pub struct CelCondition {
    env: Arc<Env>,
    program: Program,
}

impl std::fmt::Debug for CelCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CelCondition")
    }
}

impl CelCondition {
    /// Compiles `source`; the error says where the expression is wrong.
    pub fn compile(source: &str) -> Result<Self, String> {
        let env = shared_env();
        let program = env.compile(source).map_err(|e| e.to_string())?;
        Ok(CelCondition { env, program })
    }

    /// Whether the condition holds for the pair (false when it cannot be evaluated or is not a
    /// boolean).
    pub fn holds(&self, a: &AlertNode, b: &AlertNode) -> bool {
        let mut ctx = Context::with_env(self.env.clone());
        if ctx.add_variable("a", view(a)).is_err() || ctx.add_variable("b", view(b)).is_err() {
            return false;
        }
        matches!(self.program.execute(&ctx), Ok(Value::Bool(true)))
    }
}

/// The standard CEL environment, built once per thread and shared by every expression compiled
/// on it (building one registers the whole standard library).
pub fn shared_env() -> Arc<Env> {
    thread_local! {
        static ENV: Arc<Env> = Arc::new(Env::stdlib());
    }
    ENV.with(Arc::clone)
}

/// A compile or check error of a [`CelExpr`]: what is wrong and where, as a character offset
/// into the expression's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CelError {
    /// Character offset into the expression (0-based).
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// A compiled CEL expression of any type, with its source kept for messages.
pub struct CelExpr {
    source: String,
    program: Program,
}

impl std::fmt::Debug for CelExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CelExpr({:?})", self.source)
    }
}

impl CelExpr {
    /// Compiles `source`, reporting the first syntax error with its offset.
    pub fn compile(source: &str) -> Result<Self, CelError> {
        match shared_env().compile(source) {
            Ok(program) => Ok(CelExpr {
                source: source.to_string(),
                program,
            }),
            Err(errors) => {
                let (offset, message) = errors.errors.first().map_or_else(
                    || (0, "invalid expression".to_string()),
                    |e| (offset_of(source, e.pos.0, e.pos.1), e.msg.clone()),
                );
                Err(CelError { offset, message })
            }
        }
    }

    /// The expression's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the expression in `ctx`.
    pub fn eval(&self, ctx: &Context<'_, '_>) -> Result<Value, cel::ExecutionError> {
        self.program.execute(ctx)
    }

    /// Every variable path the expression reads (`a.b.c` as `["a", "b", "c"]`, with the offset
    /// of its first character), leaving out variables bound inside macros (`x` in
    /// `l.exists(x, x > 1)`). Map indexing (`m["k"]`) ends a path.
    pub fn paths(&self) -> Vec<(Vec<String>, usize)> {
        let mut out = Vec::new();
        let mut bound = Vec::new();
        collect_paths(
            self.program.expression(),
            self.program.source_info(),
            &mut bound,
            &mut out,
        );
        out
    }
}

/// Converts a 1-based line and a column (as the parser reports them) into a character offset.
fn offset_of(source: &str, line: isize, col: isize) -> usize {
    let line = usize::try_from(line.max(1) - 1).unwrap_or(0);
    let col = usize::try_from(col.max(0)).unwrap_or(0);
    let before: usize = source
        .split_inclusive('\n')
        .take(line)
        .map(|l| l.chars().count())
        .sum();
    before + col
}

fn collect_paths(
    e: &cel::IdedExpr,
    info: &cel::common::ast::SourceInfo,
    bound: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) {
    use cel::common::ast::{EntryExpr, Expr};
    // A chain of selections on an identifier is one path.
    let mut segments = Vec::new();
    let mut cur = e;
    loop {
        match &cur.expr {
            Expr::Select(s) if !s.test => {
                segments.push(s.field.clone());
                cur = &s.operand;
            }
            Expr::Ident(name) => {
                if !bound.contains(name) {
                    segments.push(name.clone());
                    segments.reverse();
                    let offset = info.offset_for(cur.id).map_or(0, |(s, _)| s as usize);
                    out.push((segments, offset));
                }
                return;
            }
            _ => break,
        }
    }
    match &cur.expr {
        Expr::Select(s) => collect_paths(&s.operand, info, bound, out),
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                collect_paths(t, info, bound, out);
            }
            for a in &c.args {
                collect_paths(a, info, bound, out);
            }
        }
        Expr::Comprehension(c) => {
            collect_paths(&c.iter_range, info, bound, out);
            collect_paths(&c.accu_init, info, bound, out);
            let n = bound.len();
            bound.push(c.iter_var.clone());
            if let Some(v) = &c.iter_var2 {
                bound.push(v.clone());
            }
            bound.push(c.accu_var.clone());
            collect_paths(&c.loop_cond, info, bound, out);
            collect_paths(&c.loop_step, info, bound, out);
            collect_paths(&c.result, info, bound, out);
            bound.truncate(n);
        }
        Expr::List(l) => {
            for x in &l.elements {
                collect_paths(x, info, bound, out);
            }
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    collect_paths(&me.key, info, bound, out);
                    collect_paths(&me.value, info, bound, out);
                }
            }
        }
        Expr::Struct(st) => {
            for entry in &st.entries {
                if let EntryExpr::StructField(f) = &entry.expr {
                    collect_paths(&f.value, info, bound, out);
                }
            }
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

#[derive(serde::Serialize)]
struct NodeView<'a> {
    labels: &'a BTreeMap<String, String>,
    entity: &'a str,
    anomaly_type: &'static str,
    up: bool,
    onset_ms: i64,
}

fn view(n: &AlertNode) -> NodeView<'_> {
    NodeView {
        labels: &n.labels,
        entity: &n.entity,
        anomaly_type: n.anomaly_type.as_str(),
        up: n.up,
        onset_ms: n.key.onset as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::dedup::NodeKey;
    use crate::records::AnomalyType;

    fn node(cluster: &str, t: AnomalyType) -> AlertNode {
        AlertNode {
            key: NodeKey {
                onset: 0,
                fingerprint: "f".into(),
            },
            entity: "x".into(),
            up: true,
            anomaly_type: t,
            labels: [("cluster".to_string(), cluster.to_string())].into(),
        }
    }

    #[test]
    fn conditions_see_both_alerts() {
        let c = CelCondition::compile(
            "a.labels.cluster == b.labels.cluster && a.anomaly_type == b.anomaly_type",
        )
        .unwrap();
        let x = node("eu", AnomalyType::LatencySpike);
        assert!(c.holds(&x, &node("eu", AnomalyType::LatencySpike)));
        assert!(!c.holds(&x, &node("us", AnomalyType::LatencySpike)));
        assert!(!c.holds(&x, &node("eu", AnomalyType::CpuOverload)));
        // A missing label does not link (and does not panic).
        let missing = CelCondition::compile("a.labels.zone == b.labels.zone").unwrap();
        assert!(!missing.holds(&x, &x));
        assert!(CelCondition::compile("a.labels. ==").is_err());
    }

    #[test]
    fn expressions_report_where_they_are_wrong() {
        let e = CelExpr::compile("window.p95 >").unwrap_err();
        assert!(e.offset >= 10, "{e:?}");
        let ok =
            CelExpr::compile("window.p95 > 80.0 && [1].exists(x, x > hours.p50) && m[\"k\"].z")
                .unwrap();
        let paths: Vec<Vec<String>> = ok.paths().into_iter().map(|(p, _)| p).collect();
        assert!(paths.contains(&vec!["window".to_string(), "p95".to_string()]));
        assert!(paths.contains(&vec!["hours".to_string(), "p50".to_string()]));
        assert!(paths.contains(&vec!["m".to_string()]));
        assert!(!paths.iter().any(|p| p[0] == "x"), "{paths:?}");
        let (_, at) = ok
            .paths()
            .into_iter()
            .find(|(p, _)| p[0] == "hours")
            .unwrap();
        assert_eq!(at, "window.p95 > 80.0 && [1].exists(x, x > ".len());
    }

    #[test]
    fn mixed_numbers_compare() {
        let e = CelExpr::compile("x > 1 && x < 3.0 && x * 2.0 == 4.0").unwrap();
        let mut ctx = Context::with_env(shared_env());
        ctx.add_variable_from_value("x", 2.0);
        assert_eq!(e.eval(&ctx), Ok(Value::Bool(true)));
    }
}

//! The Alertmanager sink against a real Alertmanager: the test starts the binary named by
//! `HARBINGER_ALERTMANAGER` (scripts/test.sh installs Debian's `prometheus-alertmanager` and
//! sets it) on a free loopback port, with a route grouping by `incident_id`, sends it the
//! correlation stage's output for two unrelated faults, and checks through Alertmanager's own
//! API that it holds two groups, one per incident, each with its alerts and root cause, and that
//! resolving clears them. Without the variable the test says so loudly and passes; with it, any
//! misbehaviour fails.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harbinger::config;
use harbinger::engine::correlate_only::correlate_alerts;
use harbinger::sinks::{AlertmanagerSettings, AlertmanagerSink, RecordSink};
use operators::correlate::CorrelateOut;
use operators::time_format::rfc3339_millis;
use serde_json::Value;

use crate::golden::{record, InputAlert, BASE_MS};

/// Kills the Alertmanager this test started when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

fn get(url: &str) -> Option<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    let mut resp = agent.get(url).call().ok()?;
    let text = resp.body_mut().read_to_string().ok()?;
    serde_json::from_str(&text).ok()
}

/// Polls `probe` until it returns `Some` or `limit` passes.
fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_alertmanager(binary: &Path, dir: &Path) -> (Running, String) {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\n  group_by: ['incident_id']\n  group_wait: 1s\n\
         receivers:\n  - name: blackhole\n",
    )
    .expect("write alertmanager.yml");
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("alertmanager.log")).expect("log file"),
        ))
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let running = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    let ready = wait_for(Duration::from_secs(30), || {
        get(&format!("{base}/api/v2/status")).map(|_| ())
    });
    if ready.is_none() {
        let log = std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default();
        panic!("Alertmanager did not answer on {base} within 30 s; its log:\n{log}");
    }
    (running, base)
}

/// Two faults on unrelated parts of the graph: carts (and front-end, its caller) and payment
/// (and orders, its caller).
const TOPOLOGY: &str = r#"
[[service]]
name = "front-end"
calls = ["carts"]
[[service]]
name = "carts"
[[service]]
name = "orders"
calls = ["payment"]
[[service]]
name = "payment"
"#;

const INPUT: &str = r#"
{"t": 60, "event": "opened", "service": "carts", "metric": "latency_p99", "count": 1}
{"t": 60, "event": "opened", "service": "payment", "metric": "errors", "count": 1, "type": "error_rate_spike"}
{"t": 120, "event": "updated", "service": "carts", "metric": "latency_p99", "count": 2}
{"t": 120, "event": "updated", "service": "payment", "metric": "errors", "count": 2, "type": "error_rate_spike"}
{"t": 120, "event": "opened", "service": "front-end", "metric": "latency_p99", "count": 1}
{"t": 120, "event": "opened", "service": "orders", "metric": "errors", "count": 1, "type": "error_rate_spike"}
{"t": 180, "event": "updated", "service": "front-end", "metric": "latency_p99", "count": 2}
{"t": 180, "event": "updated", "service": "orders", "metric": "errors", "count": 2, "type": "error_rate_spike"}
{"t": 900, "event": "resolved", "service": "carts", "metric": "latency_p99", "count": 5}
{"t": 900, "event": "resolved", "service": "payment", "metric": "errors", "count": 5, "type": "error_rate_spike"}
{"t": 960, "event": "resolved", "service": "front-end", "metric": "latency_p99", "count": 4}
{"t": 960, "event": "resolved", "service": "orders", "metric": "errors", "count": 4, "type": "error_rate_spike"}
"#;

/// The correlation stage's output for [`INPUT`], by time.
fn correlated(dir: &Path) -> BTreeMap<u64, Vec<CorrelateOut>> {
    let topo = dir.join("topology.toml");
    std::fs::write(&topo, TOPOLOGY).expect("write topology");
    let topology = config::intel::topology_file(&topo).expect("topology");
    let plan = config::load(None, None).expect("default plan");
    let mut onsets: BTreeMap<String, u64> = BTreeMap::new();
    let input = INPUT
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut a = record(serde_json::from_str::<InputAlert>(l).expect("input line"));
            let onset = *onsets.entry(a.fingerprint.clone()).or_insert(a.event_time);
            a.starts_at = rfc3339_millis(onset);
            a
        })
        .collect();
    let (alerts, incidents) = correlate_alerts(Arc::clone(&plan.correlate), &topology, input);
    let mut by_time: BTreeMap<u64, Vec<CorrelateOut>> = BTreeMap::new();
    for a in alerts {
        by_time
            .entry(a.event_time)
            .or_default()
            .push(CorrelateOut::Alert(a));
    }
    for i in incidents {
        by_time
            .entry(i.event_time)
            .or_default()
            .push(CorrelateOut::Incident(i));
    }
    by_time
}

/// One Alertmanager group: `(incident_id, {service}, {root_cause})`.
type GroupView = (String, BTreeSet<String>, BTreeSet<String>);

/// Every group holding Harbinger alerts.
fn groups(base: &str) -> Option<Vec<GroupView>> {
    let v = get(&format!("{base}/api/v2/alerts/groups"))?;
    let mut out = Vec::new();
    for g in v.as_array()? {
        let id = g["labels"]["incident_id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut services = BTreeSet::new();
        let mut causes = BTreeSet::new();
        for a in g["alerts"].as_array()? {
            services.insert(a["labels"]["service"].as_str()?.to_string());
            causes.insert(a["annotations"]["root_cause"].as_str()?.to_string());
        }
        if !services.is_empty() {
            out.push((id, services, causes));
        }
    }
    out.sort();
    Some(out)
}

#[test]
fn alertmanager_receives_alerts_grouped_by_incident() {
    let Some(binary) = std::env::var_os("HARBINGER_ALERTMANAGER") else {
        eprintln!(
            "\n!!! SKIPPED alertmanager_receives_alerts_grouped_by_incident: \
             HARBINGER_ALERTMANAGER is not set (scripts/test.sh installs \
             prometheus-alertmanager and sets it) !!!\n"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (_am, base) = start_alertmanager(Path::new(&binary), dir.path());

    let by_time = correlated(dir.path());
    let resolve_at = BASE_MS + 900_000;
    let mut sink = AlertmanagerSink::new(&AlertmanagerSettings {
        url: base.clone(),
        uncorrelated: false,
        resend: Duration::from_secs(3600),
    });
    for (t, records) in by_time.range(..resolve_at) {
        sink.write(*t, records).expect("post to Alertmanager");
    }

    let want = |g: &Vec<GroupView>| g.len() == 2 && g.iter().map(|x| x.1.len()).sum::<usize>() == 4;
    let mut last = None;
    let got = wait_for(Duration::from_secs(20), || {
        let g = groups(&base)?;
        let ok = want(&g);
        last = Some(g.clone());
        ok.then_some(g)
    });
    let Some(got) = got else {
        panic!("Alertmanager's groups never became the two incidents; last seen: {last:?}");
    };
    let ids: BTreeSet<&String> = got.iter().map(|g| &g.0).collect();
    assert_eq!(ids.len(), 2, "two distinct incident ids: {got:?}");
    assert!(ids.iter().all(|i| !i.is_empty()), "{got:?}");
    let expect = [
        (["carts", "front-end"], "carts"),
        (["orders", "payment"], "payment"),
    ];
    for (services, cause) in expect {
        let services: BTreeSet<String> = services.iter().map(|s| s.to_string()).collect();
        let g = got
            .iter()
            .find(|g| g.1 == services)
            .unwrap_or_else(|| panic!("no group with {services:?}: {got:?}"));
        assert_eq!(
            g.2,
            BTreeSet::from([cause.to_string()]),
            "root cause of {services:?}"
        );
    }
    assert_eq!(sink.firing(), 4);

    for (t, records) in by_time.range(resolve_at..) {
        sink.write(*t, records).expect("post to Alertmanager");
    }
    assert_eq!(sink.firing(), 0);
    let cleared = wait_for(Duration::from_secs(20), || {
        let v = get(&format!("{base}/api/v2/alerts"))?;
        v.as_array()?.is_empty().then_some(())
    });
    assert!(
        cleared.is_some(),
        "resolved alerts still active in Alertmanager: {:?}",
        get(&format!("{base}/api/v2/alerts"))
    );
}

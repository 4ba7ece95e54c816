//! Runs the correlation stage alone over a list of raw alert events (as the alert lifecycle
//! emits them): what golden tests, the latency bench and `harbinger correlate`-style tooling use.

use std::sync::{Arc, Mutex};

use operators::correlate::{CorrelateExt, CorrelateOut, CorrelatePlan, CorrelateState};
use operators::models::topology::{ServiceSpec, Topology, TopologyEdge};
use operators::records::{AlertRecord, IncidentRecord};
use operators::series::EventTime;
use operators::sink::OrderedSinkExt;
use timely::dataflow::operators::core::Input as _;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::Probe;

/// Correlates `alerts` (sorted by event time) under `plan` and `topology`; returns the annotated
/// alerts and the incident events, in output order.
pub fn correlate_alerts(
    plan: Arc<CorrelatePlan>,
    topology: &[ServiceSpec],
    mut alerts: Vec<AlertRecord>,
) -> (Vec<AlertRecord>, Vec<IncidentRecord>) {
    alerts.sort_by_key(|a| a.event_time);
    let out: Arc<Mutex<Vec<CorrelateOut>>> = Arc::default();
    let sink = out.clone();
    let edges: Vec<TopologyEdge> = Topology::from_services(topology).edges();
    timely::execute_directly(move |worker| {
        let probe = ProbeHandle::new();
        let (mut alert_in, mut edge_in) = worker.dataflow::<EventTime, _, _>(|scope| {
            let (ai, alerts) = scope.new_input::<Vec<AlertRecord>>();
            let (ei, edges) = scope.new_input::<Vec<(TopologyEdge, EventTime, isize)>>();
            let state = std::rc::Rc::new(std::cell::RefCell::new(CorrelateState::default()));
            let sink = sink.clone();
            alerts
                .correlate(edges, plan.clone(), state)
                .probe_with(&probe)
                .ordered_sink(
                    "Collect",
                    Default::default(),
                    |o: &CorrelateOut| format!("{o:?}"),
                    move |_t, records| sink.lock().expect("lock").extend(records),
                );
            (ai, ei)
        });
        for e in edges {
            edge_in.send((e, 0, 1));
        }
        for a in alerts {
            let t = a.event_time;
            if t > *alert_in.time() {
                alert_in.advance_to(t);
                edge_in.advance_to(t);
            }
            alert_in.send(a);
        }
    });
    let out = std::mem::take(&mut *out.lock().expect("lock"));
    let mut alerts = Vec::new();
    let mut incidents = Vec::new();
    for o in out {
        match o {
            CorrelateOut::Alert(a) => alerts.push(a),
            CorrelateOut::Incident(i) => incidents.push(i),
        }
    }
    (alerts, incidents)
}

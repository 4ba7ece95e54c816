use super::*;
use crate::models::test_noise::noise;

fn values(mean: f64) -> FeatureValues {
    FeatureValues::single(mean)
}

fn plan(name: &str, kind: DetectorKind) -> DetectorPlan {
    DetectorPlan {
        name: name.into(),
        window: "1m".into(),
        feature: FeatureChoice::Auto,
        weight: 1.0,
        kind,
        metrics: None,
    }
}

fn ensemble(detectors: Vec<DetectorPlan>) -> Ensemble {
    Ensemble {
        detectors,
        fusion: FusionPolicy::default(),
    }
}

fn all_kinds() -> Vec<DetectorPlan> {
    vec![
        plan("robust_z", DetectorKind::RobustZ(RobustZConfig::default())),
        plan("iqr", DetectorKind::Iqr(IqrConfig::default())),
        plan("ewma", DetectorKind::Ewma(EwmaConfig::default())),
        plan("cusum", DetectorKind::Cusum(CusumConfig::default())),
        plan(
            "seasonal",
            DetectorKind::Seasonal(SeasonalConfig {
                max_period: 200,
                ..SeasonalConfig::default()
            }),
        ),
        plan(
            "changepoint",
            DetectorKind::Changepoint(ChangepointConfig::default()),
        ),
        plan(
            "isolation_forest",
            DetectorKind::IsolationForest(ForestDetectorConfig::default()),
        ),
        plan(
            "one_class_svm",
            DetectorKind::OneClassSvm(SvmDetectorConfig::default()),
        ),
        plan("knn", DetectorKind::Knn(KnnDetectorConfig::default())),
        plan(
            "forecast_residual",
            DetectorKind::ForecastResidual(ForecastResidualConfig::default()),
        ),
        plan(
            "contextual",
            DetectorKind::Contextual(ContextualConfig {
                warmup_len: 30,
                ..ContextualConfig::default()
            }),
        ),
        plan("trend", DetectorKind::Trend(TrendConfig::default())),
    ]
}

#[test]
fn auto_feature_uses_counter_rate_for_counters() {
    assert_eq!(
        FeatureChoice::Auto.resolve("http_requests_total"),
        Feature::CounterRate
    );
    assert_eq!(FeatureChoice::Auto.resolve("latency_ms"), Feature::Mean);
    assert_eq!(
        FeatureChoice::Fixed(Feature::P99).resolve("x_total"),
        Feature::P99
    );
}

#[test]
fn score_mapping_anchors() {
    assert!((z_to_score(4.5, 4.5) - 0.5).abs() < 1e-12);
    assert!((z_to_score(-9.0, 4.5) - 0.9375).abs() < 1e-12);
    assert_eq!(z_to_score(f64::INFINITY, 4.5), 1.0);
}

/// Every detector kind alone, on the same planted spike after a long quiet stretch: each must
/// score the spike far above its worst ordinary window.
#[test]
fn planted_spike_per_detector() {
    for p in all_kinds() {
        let name = p.name.clone();
        let ens = ensemble(vec![p]);
        let mut set = DetectorSet::new(&ens, "latency_ms");
        let mut worst: f64 = 0.0;
        for i in 0..1500 {
            let v = 100.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 60.0).sin() + noise(i);
            if let Some(x) = set.observe(&ens, "1m", &values(v), i as u64 * 60_000, true) {
                if i > 1200 {
                    worst = worst.max(x.fused);
                }
            }
        }
        if name == "changepoint" || name == "cusum" || name == "trend" {
            // Change points only vote on windows the others found suspicious (alone, they
            // abstain), CUSUM accumulates shifts rather than spikes, and a spike is no trend:
            // each has its own planted-anomaly tests (changepoint.rs, cusum.rs, trend.rs and
            // the trend tests below).
            continue;
        }
        let spike = set
            .observe(&ens, "1m", &values(160.0), 1500 * 60_000, true)
            .unwrap_or_else(|| panic!("{name} gave no verdict"));
        // Scalar detectors see the spike's value directly; the vector models see it diluted
        // among the vector's other features, so they only have to rank it first.
        let vector = name == "isolation_forest" || name == "one_class_svm" || name == "knn";
        let (floor, margin) = if vector { (0.25, 0.05) } else { (0.5, 0.2) };
        assert!(
            spike.fused > floor && spike.fused > worst + margin,
            "{name}: spike {} vs worst ordinary {worst}",
            spike.fused
        );
        assert_eq!(spike.direction, Direction::Up, "{name}");
    }
}

#[test]
fn ensemble_verdict_explains_itself() {
    let ens = ensemble(all_kinds());
    let mut set = DetectorSet::new(&ens, "latency_ms");
    for i in 0..600 {
        set.observe(
            &ens,
            "1m",
            &values(10.0 + noise(i)),
            i as u64 * 60_000,
            true,
        );
    }
    // Other windows are ignored.
    assert!(set.observe(&ens, "5m", &values(1e6), 0, true).is_none());
    let v = set
        .observe(&ens, "1m", &values(40.0), 600 * 60_000, true)
        .unwrap();
    assert!(v.score > 0.6, "{v:?}");
    let lead = v.lead.as_ref().expect("explained");
    assert_eq!(lead.feature, "1m:mean");
    assert!((lead.expected - 10.0).abs() < 1.0, "{v:?}");
    assert!(lead.threshold > 10.0 && lead.threshold < 40.0, "{v:?}");
    assert_eq!(v.shape, Some(Shape::Spike));
    assert!(v.findings.len() >= 6, "{:?}", v.findings);
}

#[test]
fn level_shift_is_named_and_its_repeats_damped() {
    let ens = ensemble(all_kinds());
    let mut set = DetectorSet::new(&ens, "latency_ms");
    for i in 0..600 {
        set.observe(
            &ens,
            "1m",
            &values(10.0 + noise(i)),
            i as u64 * 60_000,
            true,
        );
    }
    let mut verdicts = Vec::new();
    for i in 600..612 {
        verdicts.push(
            set.observe(
                &ens,
                "1m",
                &values(20.0 + noise(i)),
                i as u64 * 60_000,
                true,
            )
            .unwrap(),
        );
    }
    assert!(verdicts[0].score > 0.6, "{:?}", verdicts[0]);
    assert!(
        verdicts[3..].iter().all(|v| v.score < verdicts[0].score),
        "repeats are damped"
    );
    assert!(
        verdicts[3..]
            .iter()
            .any(|v| v.shape == Some(Shape::LevelShift)),
        "{:?}",
        verdicts.iter().map(|v| v.shape).collect::<Vec<_>>()
    );
}

#[test]
fn state_round_trips_through_serde() {
    let ens = ensemble(all_kinds());
    let mut set = DetectorSet::new(&ens, "latency_ms");
    for i in 0..400 {
        set.observe(
            &ens,
            "1m",
            &values(10.0 + noise(i)),
            i as u64 * 60_000,
            true,
        );
    }
    let text = serde_json::to_string(&set).unwrap();
    let mut restored: DetectorSet = serde_json::from_str(&text).unwrap();
    for i in 400..420 {
        let v = values(10.0 + noise(i) + if i == 410 { 9.0 } else { 0.0 });
        let a = set.observe(&ens, "1m", &v, i as u64 * 60_000, true);
        let b = restored.observe(&ens, "1m", &v, i as u64 * 60_000, true);
        assert_eq!(a.map(|x| x.score), b.map(|x| x.score), "window {i}");
    }
}

/// The contextual detector's share is fused as it is (no tail calibration): a never-seen level
/// is a share of exactly 1, and a learned cycle exactly 0, whatever its history of shares.
#[test]
fn contextual_scores_bypass_calibration() {
    let ens = ensemble(vec![plan(
        "contextual",
        DetectorKind::Contextual(ContextualConfig {
            warmup_len: 30,
            ..ContextualConfig::default()
        }),
    )]);
    let mut set = DetectorSet::new(&ens, "latency_ms");
    let mut last = None;
    for i in 0..600 {
        let v = 100.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 60.0).sin();
        last = set.observe(&ens, "1m", &values(v), i as u64 * 60_000, true);
    }
    assert_eq!(
        last.map(|x| x.fused),
        Some(0.0),
        "a learned cycle is familiar"
    );
    let spike = set
        .observe(&ens, "1m", &values(500.0), 600 * 60_000, true)
        .expect("verdict");
    assert_eq!(spike.fused, 1.0, "every fact of a new level is new");
}

/// A leak's ramp after a day of ordinary noise: the trend detector reports it within five
/// windows on the series its plan names, and does not run at all on other series.
#[test]
fn trend_watches_only_the_metrics_its_plan_names() {
    let mut p = plan("trend", DetectorKind::Trend(TrendConfig::default()));
    p.metrics = Some(MetricPattern::new(".*memory.*").unwrap());
    let ens = ensemble(vec![p]);
    let start = 1500;
    let leak = |i: usize| 1000.0 + noise(i) + 20.0 * i.saturating_sub(start) as f64;
    for (metric, watched) in [("memory_used_bytes", true), ("latency_ms", false)] {
        let mut set = DetectorSet::new(&ens, metric);
        let mut reported = None;
        for i in 0..start + 20 {
            let verdict = set.observe(&ens, "1m", &values(leak(i)), i as u64 * 60_000, true);
            let Some(v) = verdict else {
                continue;
            };
            assert!(watched, "{metric} was scored");
            if i < start {
                assert!(v.score < 0.5, "window {i} scored {}", v.score);
            } else if v.score >= 0.5 && reported.is_none() {
                reported = Some(i - start);
                assert_eq!(v.lead.as_ref().map(|l| l.detector.as_str()), Some("trend"));
            }
        }
        if watched {
            assert!(reported.is_some_and(|d| d <= 5), "reported at {reported:?}");
        }
    }
}

/// The trend detector sees no spike and abstains: beside it, the robust detector's score on a
/// spike is what it is alone (a quiet vote would pull the fused score down).
#[test]
fn a_quiet_trend_detector_does_not_dilute_the_others() {
    let robust = plan("robust_z", DetectorKind::RobustZ(RobustZConfig::default()));
    let trend = plan("trend", DetectorKind::Trend(TrendConfig::default()));
    let alone = ensemble(vec![robust.clone()]);
    let both = ensemble(vec![robust, trend]);
    let mut a = DetectorSet::new(&alone, "memory_used_bytes");
    let mut b = DetectorSet::new(&both, "memory_used_bytes");
    for i in 0..1500 {
        let v = values(100.0 + noise(i));
        a.observe(&alone, "1m", &v, i as u64 * 60_000, true);
        b.observe(&both, "1m", &v, i as u64 * 60_000, true);
    }
    let spike = values(106.0);
    let sa = a
        .observe(&alone, "1m", &spike, 1500 * 60_000, true)
        .unwrap();
    let sb = b.observe(&both, "1m", &spike, 1500 * 60_000, true).unwrap();
    assert!(sa.fused >= 0.5, "the spike should alert: {}", sa.fused);
    assert_eq!(sa.fused, sb.fused);
    let trend = sb.findings.iter().find(|f| f.detector == "trend");
    assert!(trend.is_some_and(|f| f.score < 0.5), "{:?}", sb.findings);
}

/// The nearest-neighbour detector behind the robust detector's screen: ordinary windows are
/// scored only as calibration samples (every window until its calibration is full, then one in
/// `sample_every`), a suspicious one always, and `sample_every = 1` turns the screen off.
#[test]
fn costly_detectors_score_suspicious_windows_and_a_sample() {
    let detectors = vec![
        plan("robust_z", DetectorKind::RobustZ(RobustZConfig::default())),
        plan("knn", DetectorKind::Knn(KnnDetectorConfig::default())),
    ];
    let screened = ensemble(detectors.clone());
    let mut unscreened = ensemble(detectors);
    unscreened.fusion.screen.sample_every = 1;
    let memory = screened.fusion.calibration.memory as u64;
    let mut s = DetectorSet::new(&screened, "latency_ms");
    let mut u = DetectorSet::new(&unscreened, "latency_ms");
    for i in 0..2000 {
        let v = values(100.0 + noise(i));
        s.observe(&screened, "1m", &v, i as u64 * 60_000, true);
        u.observe(&unscreened, "1m", &v, i as u64 * 60_000, true);
    }
    let learned = |set: &DetectorSet| set.slots[1].calibrator.seen();
    // Learned windows: the first `memory` (give or take the few the ensemble found
    // anomalous), then about one in eight of the remaining ~1,500.
    assert!(
        learned(&s) > memory && learned(&s) < memory + 1500 / 8 + 60,
        "{}",
        learned(&s)
    );
    assert!(learned(&u) > 1900, "{}", learned(&u));
    // Ordinary windows until the next one is not a sample, so only the screen can let the
    // nearest-neighbour detector see the spike.
    let mut i = 2000;
    while screened.fusion.screen.samples(
        learned(&s),
        memory as usize,
        s.tracks[0].track.seen(),
        s.sample_salt,
    ) {
        s.observe(&screened, "1m", &values(100.0), i * 60_000, true);
        i += 1;
    }
    let spike = s
        .observe(&screened, "1m", &values(160.0), i * 60_000, true)
        .expect("verdict");
    assert!(spike.score >= 0.5, "{spike:?}");
    assert!(
        spike.findings.iter().any(|f| f.detector == "knn"),
        "the screen let the spike in: {:?}",
        spike.findings
    );
}

/// A burst the ensemble flags does not become the seasonal baseline's expectation one season
/// later (the detector set holds anomalous windows as gaps in the seasonal history).
#[test]
fn the_seasonal_baseline_forgets_what_the_ensemble_flagged() {
    // One season in the expected value, so a remembered burst would be all of it.
    let seasonal = SeasonalConfig {
        max_period: 100,
        detect_every: 200,
        seasons: 1,
        ..SeasonalConfig::default()
    };
    let ens = ensemble(vec![
        plan("robust_z", DetectorKind::RobustZ(RobustZConfig::default())),
        plan("seasonal", DetectorKind::Seasonal(seasonal)),
    ]);
    let mut set = DetectorSet::new(&ens, "latency_ms");
    let wave = |i: usize| 100.0 + 20.0 * (i as f64 * std::f64::consts::TAU / 50.0).sin() + noise(i);
    let mut feed = |i: usize, v: f64| set.observe(&ens, "1m", &values(v), i as u64 * 60_000, true);
    for i in 0..1000 {
        feed(i, wave(i));
    }
    for i in 1000..1004 {
        let v = feed(i, 400.0).expect("a verdict");
        assert!(v.fused >= 0.5, "the burst is flagged: {v:?}");
    }
    // One season (50 windows) after the burst, ordinary values must stay ordinary.
    let mut worst: f64 = 0.0;
    for i in 1004..1060 {
        let v = feed(i, wave(i));
        if (1048..1056).contains(&i) {
            worst = worst.max(v.map_or(0.0, |v| v.fused));
        }
    }
    assert!(
        worst < 0.5,
        "an ordinary value one season after the burst fused to {worst}"
    );
}

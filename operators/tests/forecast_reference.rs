//! The forecasting models against reference implementations (statsmodels, statsforecast — the
//! latter a port of R's `arima` / `auto.arima`), on seeded synthetic series.
//!
//! The values come from `tests/fixtures/make_forecast_fixtures.py`, run once; see that script for
//! how and with which versions. Tolerances are stated per check: likelihoods and test statistics
//! must agree to rounding, fitted coefficients to optimiser tolerance.

use operators::models::forecast::{
    exact_log_likelihood, kpss_statistic, ndiffs, nsdiffs, seasonal_strength, Arima,
    ArimaCoefficients, ArimaOrder, AutoArima,
};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/forecast_reference.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture file is committed");
    serde_json::from_str(&text).expect("fixture is valid JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect()
}

fn series(fx: &Value, name: &Value) -> Vec<f64> {
    floats(&fx["series"][name.as_str().expect("name")])
}

fn order_of(o: &[usize]) -> ArimaOrder {
    ArimaOrder::new(o[0], o[1], o[2]).seasonal(o[3], o[4], o[5], o[6])
}

fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, want {want} (tolerance {tol})"
    );
}

#[test]
fn exact_likelihood_matches_statsmodels() {
    let fx = fixture();
    for case in fx["loglik"].as_array().expect("cases") {
        let y = series(&fx, &case["series"]);
        let order = order_of(&usizes(&case["order"]));
        let coefs = ArimaCoefficients {
            ar: floats(&case["ar"]),
            ma: floats(&case["ma"]),
            seasonal_ar: floats(&case["sar"]),
            seasonal_ma: floats(&case["sma"]),
            constant: case["constant"].as_f64(),
        };
        let sigma2 = case["sigma2"].as_f64().expect("sigma2");
        let ll = exact_log_likelihood(&y, order, &coefs, Some(sigma2)).expect("stationary");
        // Same likelihood, different state-space forms: agreement to ~1e-8 relative.
        let want = case["loglik"].as_f64().expect("loglik");
        assert_close(&format!("loglik {order}"), ll, want, 1e-6 * want.abs());
        let llc = exact_log_likelihood(&y, order, &coefs, None).expect("stationary");
        let want = case["loglik_concentrated"].as_f64().expect("loglik");
        assert_close(
            &format!("concentrated {order}"),
            llc,
            want,
            1e-6 * want.abs(),
        );
    }
}

#[test]
fn kpss_and_differencing_match_statsmodels() {
    let fx = fixture();
    for case in fx["kpss"].as_array().expect("cases") {
        let x = series(&fx, &case["series"]);
        let stat = kpss_statistic(&x, None).expect("defined");
        let want = case["statistic"].as_f64().expect("statistic");
        assert_close("kpss", stat, want, 1e-10 * want.abs().max(1.0));
        assert_eq!(
            ndiffs(&x, 0.05, 2),
            case["ndiffs"].as_u64().expect("ndiffs") as usize,
            "{}",
            case["series"]
        );
    }
}

#[test]
fn seasonal_strength_matches_statsforecast() {
    let fx = fixture();
    for case in fx["seasonal_strength"].as_array().expect("cases") {
        let x = series(&fx, &case["series"]);
        let m = case["period"].as_u64().expect("period") as usize;
        let s = seasonal_strength(&x, m).expect("long enough");
        let want = case["strength"].as_f64().expect("strength");
        // statsmodels' STL and stlrs are both ports of Cleveland et al.'s Fortran.
        assert_close(&format!("strength {}", case["series"]), s, want, 1e-4);
        assert_eq!(
            nsdiffs(&x, m, 1),
            case["nsdiffs"].as_u64().expect("D") as usize
        );
    }
}

#[test]
fn fitted_models_match_reference_mle() {
    let fx = fixture();
    for case in fx["fits"].as_array().expect("cases") {
        let y = series(&fx, &case["series"]);
        let order = order_of(&usizes(&case["order"]));
        let constant = case["constant"].as_bool().expect("constant");
        let fit = Arima::new(order)
            .with_constant(constant)
            .fit(&y)
            .expect("fit succeeds");
        let name = fit.name();
        // Both optimisers stop at a relative tolerance of ~1e-8 in the objective, which leaves
        // coefficients ~1e-4 apart where the likelihood is flat.
        let want = floats(&case["coef"]);
        let got = fit.coefficients().to_vec();
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(&format!("{name} coef {i}"), *g, *w, 2e-3 * w.abs().max(1.0));
        }
        let ll = case["loglik"].as_f64().expect("loglik");
        assert_close(&format!("{name} loglik"), fit.log_likelihood(), ll, 1e-4);
        let aicc = case["aicc"].as_f64().expect("aicc");
        assert_close(&format!("{name} aicc"), fit.aicc(), aicc, 2e-4);
        let s2 = case["sigma2"].as_f64().expect("sigma2");
        assert_close(&format!("{name} sigma2"), fit.sigma2(), s2, 1e-3 * s2);
        // Forecasts: same coefficients through R's predict.Arima (as ported by statsforecast).
        let h = case["h"].as_u64().expect("h") as usize;
        let pred = fit.predict(h).expect("forecast");
        let mean = floats(&case["mean"]);
        let sd = floats(&case["sd"]);
        for j in 0..h {
            assert_close(
                &format!("{name} mean {j}"),
                pred.point[j],
                mean[j],
                1e-2 * sd[j],
            );
            assert_close(&format!("{name} sd {j}"), pred.sd[j], sd[j], 2e-3 * sd[j]);
        }
    }
}

#[test]
fn standard_errors_match_observed_information() {
    let fx = fixture();
    for case in fx["standard_errors"].as_array().expect("cases") {
        let y = series(&fx, &case["series"]);
        let o = usizes(&case["order"]);
        let fit = Arima::new(ArimaOrder::new(o[0], o[1], o[2]))
            .with_constant(case["constant"].as_bool().expect("constant"))
            .fit(&y)
            .expect("fit succeeds");
        // statsmodels orders [constant, ar, ma]; ours [ar, ma, constant].
        let mut want = floats(&case["bse"]);
        want.rotate_left(1);
        let got = fit.standard_errors().expect("computed");
        for (g, w) in got.iter().zip(&want) {
            // Different finite-difference schemes and the σ² treatment: 5% agreement.
            assert_close("standard error", *g, *w, 0.05 * w);
        }
    }
}

#[test]
fn auto_arima_agrees_with_statsforecast() {
    let fx = fixture();
    for case in fx["auto"].as_array().expect("cases") {
        let name = case["series"].as_str().expect("name");
        let y = series(&fx, &case["series"]);
        let m = case["period"].as_u64().expect("period") as usize;
        let fit = AutoArima::new(m).fit(&y).expect("a model is found");
        let want = order_of(&usizes(&case["order"]));
        let got = fit.order();
        // The differencing tests are deterministic: they must agree everywhere.
        assert_eq!((got.d, got.seasonal_d), (want.d, want.seasonal_d), "{name}");
        let aicc = case["aicc"].as_f64().expect("aicc");
        if case["order_must_match"].as_bool().expect("flag") {
            assert_eq!(got, want, "{name}");
            assert_eq!(
                fit.has_constant(),
                case["constant"].as_bool().expect("c"),
                "{name}"
            );
            assert_close(&format!("{name} aicc"), fit.aicc(), aicc, 1e-3);
        } else {
            // Where the reference's search is steered by its quirks, ours must not end worse.
            assert!(
                fit.aicc() <= aicc + 1e-3,
                "{name}: {} vs {aicc}",
                fit.aicc()
            );
        }
    }
}

//! CDNOW (23,570 real customers, 1997–98): every customer's RFM and BTYD summary equals a plain
//! loop over the raw `CDNOW_master.txt` (a different file and parser from the CSV we feed in).

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::common::*;

struct Expected {
    frequency: i64,
    monetary: f64,
    recency: i64,
    x: i64,
    t_x: i64,
    t: i64,
}

fn independent(as_of: NaiveDate) -> BTreeMap<String, Expected> {
    let text = fs_err::read_to_string(repo().join("data-samples/cdnow/CDNOW_master.txt")).unwrap();
    let mut per: BTreeMap<String, Vec<(NaiveDate, f64)>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 {
            continue;
        }
        let day = NaiveDate::parse_from_str(f[1], "%Y%m%d").unwrap();
        per.entry(f[0].to_string())
            .or_default()
            .push((day, f[3].parse().unwrap()));
    }
    per.into_iter()
        .map(|(c, rows)| {
            let mut days: Vec<NaiveDate> = rows.iter().map(|r| r.0).collect();
            days.sort();
            days.dedup();
            let first = days[0];
            let last = *days.last().unwrap();
            (
                c,
                Expected {
                    frequency: rows.len() as i64,
                    monetary: rows.iter().map(|r| r.1).sum(),
                    recency: (as_of - last).num_days(),
                    x: days.len() as i64 - 1,
                    t_x: (last - first).num_days(),
                    t: (as_of - first).num_days(),
                },
            )
        })
        .collect()
}

#[test]
fn cdnow_features_match_an_independent_computation() {
    let out = tempdir();
    let orders = repo().join("data-samples/cdnow/cdnow_orders.csv");
    run_job(&orders, out.path(), &["--as-of", "1998-06-30"]);
    let t = read_table(&partition(out.path(), "customer_features", "1998-06-30"));
    assert_eq!(t.rows(), 23_570);
    let want = independent(NaiveDate::from_ymd_opt(1998, 6, 30).unwrap());
    assert_eq!(want.len(), 23_570);
    let ids = t.strings("customer_id");
    let (freq, mon, rec) = (
        t.i64s("frequency"),
        t.f64s("monetary"),
        t.i64s("recency_days"),
    );
    let (x, t_x, tt) = (t.i64s("btyd_x"), t.i64s("btyd_t_x"), t.i64s("btyd_T"));
    for i in 0..t.rows() {
        let id = ids[i].clone().unwrap();
        let e = &want[&id];
        assert_eq!(freq[i], Some(e.frequency), "{id} frequency");
        assert!((mon[i].unwrap() - e.monetary).abs() < 1e-6, "{id} monetary");
        assert_eq!(rec[i], Some(e.recency), "{id} recency");
        assert_eq!(
            (x[i], t_x[i], tt[i]),
            (Some(e.x), Some(e.t_x), Some(e.t)),
            "{id} btyd"
        );
    }
    // Customer 00001 bought once on 1997-01-01: T = 545 days at 1998-06-30.
    let row = t.by_customer()["00001"];
    assert_eq!(tt[row], Some(545));

    let m = manifest(out.path(), "1998-06-30");
    assert_eq!(m["inputs"]["orders"]["rows_read"], 69_659);
    assert_eq!(m["inputs"]["orders"]["rows_rejected"], 0);
    let scores = read_table(&partition(out.path(), "churn_scores", "1998-06-30"));
    assert_eq!(scores.rows(), 23_570);
    assert!(scores
        .f64s("p_alive")
        .iter()
        .all(|p| p.is_some_and(|p| (0.0..=1.0).contains(&p))));
}

/// The full CDNOW holdout (calibration to 1997-09-30, 273 days out) with each customer-base
/// model: predicted vs actual repeat purchases, MAE and the AUC of P(no purchase) are the
/// numbers `lifetimes` 0.11.3 gives for the same models (issue table: BG/NBD −14.3%, MBG/NBD
/// −19.1%, Pareto/NBD −12.9%; MAE .819 / .795 / .794; AUC .747 / .755 / .763).
#[test]
fn every_customer_model_reproduces_the_lifetimes_cdnow_holdout() {
    let orders = repo().join("data-samples/cdnow/cdnow_orders.csv");
    for (model, error, mae, auc) in [
        ("bgnbd", -0.143, 0.819, 0.747),
        ("mbgnbd", -0.191, 0.795, 0.755),
        ("pareto_nbd", -0.129, 0.794, 0.763),
    ] {
        let dir = tempdir();
        let out = dir.path().join("out");
        let m = &run_models(
            &orders,
            &out,
            &format!("[models]\ncustomer_model = \"{model}\"\n"),
            "1998-06-30",
            &["--holdout-days", "273"],
        );
        assert_eq!(m["customer_model"], model);
        assert_eq!(m[model]["status"], "ok", "{model}");
        let r = &m["backtest"]["result"];
        let (predicted, actual) = (
            r["predicted_total"].as_f64().unwrap(),
            r["actual_total"].as_f64().unwrap(),
        );
        assert_eq!(actual, 19_684.0);
        let got = predicted / actual - 1.0;
        assert!((got - error).abs() < 0.0005, "{model}: error {got}");
        let got = r["mae"].as_f64().unwrap();
        assert!((got - mae).abs() < 0.0005, "{model}: MAE {got}");
        let got = r["auc_no_purchase_by_p_purchase"].as_f64().unwrap();
        assert!((got - auc).abs() < 0.0005, "{model}: AUC {got}");
        // Every buyer scored, every score finite and in range.
        let scores = read_table(&partition(&out, "churn_scores", "1998-06-30"));
        for (p, e) in scores
            .f64s("p_alive")
            .iter()
            .zip(scores.f64s("expected_purchases"))
        {
            if let (Some(p), Some(e)) = (p, e) {
                assert!(
                    (0.0..=1.0).contains(p) && e.is_finite() && e >= 0.0,
                    "{model}"
                );
            }
        }
    }
}

/// `customer_model = "auto"` chooses from the calibration period alone (rolling origins before
/// the holdout), says why, and backtests every candidate on the holdout; the `backtest` table
/// holds each candidate's rows with the chosen one flagged.
#[test]
fn auto_chooses_from_rolling_origins_and_backtests_every_candidate() {
    let orders = repo().join("data-samples/cdnow/cdnow_orders.csv");
    let dir = tempdir();
    let out = dir.path().join("out");
    let m = &run_models(
        &orders,
        &out,
        "[models]\ncustomer_model = \"auto\"\n",
        "1998-06-30",
        &["--holdout-days", "273"],
    );
    let s = &m["selection"];
    let origins = s["origins"].as_array().unwrap();
    assert_eq!(origins.len(), 3);
    // Every origin ends inside the calibration period (before the holdout's 1997-09-30 start).
    for o in origins {
        assert!(o["window_end"].as_str().unwrap() <= "1997-09-30", "{o}");
    }
    // The third origin has two days of history: skipped, and said so.
    assert_eq!(origins[2]["used"], false);
    let chosen = s["chosen"].as_str().unwrap();
    assert_eq!(m["customer_model"], chosen);
    // The choice is the lowest mean RMSE among the eligible candidates.
    let rmse = |k: &str| s["candidates"][k]["mean_rmse"].as_f64();
    let best = ["bgnbd", "mbgnbd", "pareto_nbd"]
        .into_iter()
        .filter_map(|k| rmse(k).map(|v| (k, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert_eq!(chosen, best.0, "{s}");
    assert!(s["why"].as_str().unwrap().contains(chosen));
    // Every candidate on the holdout, the chosen one's result as the backtest's result.
    let b = &m["backtest"];
    for k in ["bgnbd", "mbgnbd", "pareto_nbd"] {
        assert_eq!(b["candidates"][k]["status"], "ok", "{k}");
        assert!(b["candidates"][k]["result"]["rmse"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(b["result"], b["candidates"][chosen]["result"]);
    let t = read_table(&partition(&out, "backtest", "1998-06-30"));
    let models = t.strings("customer_model");
    let flagged = t.bools("chosen");
    assert_eq!(t.rows(), 3 * 9, "8 buckets and `all` per candidate");
    for (model, flag) in models.iter().zip(&flagged) {
        assert_eq!(*flag, Some(model.as_deref() == Some(chosen)));
    }
}

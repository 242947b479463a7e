//! `models.seasonality = "month_of_year"` on a generated shop with a known seasonal pattern
//! (`generate --seasonal`: January ×0.68 … December ×1.76 of the mean rate), and its refusal on a
//! history shorter than a year and a half.

use crate::common::*;

#[test]
fn a_known_season_is_recovered_and_fixes_the_holdout_total() {
    let dir = tempdir();
    let shop = dir.path().join("shop");
    generate(
        &shop,
        8000,
        &[
            "--days",
            "1096",
            "--start",
            "2022-01-01",
            "--seasonal",
            "--no-clicks",
        ],
    );
    let orders = shop.join("orders.csv");
    let out = dir.path().join("out");
    let m = &run_models(
        &orders,
        &out,
        "[models]\ncustomer_model = \"bgnbd\"\nseasonality = \"month_of_year\"\n",
        "2024-12-31",
        &["--holdout-days", "90"],
    );
    let s = &m["seasonality"];
    assert_eq!(s["status"], "on", "{s}");
    let index = |month: &str| s["index"][month].as_f64().unwrap();
    // The generator's pattern, normalized to a mean of 1: Dec 1.76, Nov 1.46, Jan 0.68.
    assert!(index("dec") > 1.4 && index("nov") > 1.2, "{s}");
    assert!(index("jan") < 0.8 && index("feb") < 0.85, "{s}");
    // The next 90 days are January to March: fewer operational days than calendar days.
    assert!(
        s["operational_horizon_days"].as_f64().unwrap() < 75.0,
        "{s}"
    );
    // On the October–December holdout, the index (estimated before it) closes most of the gap.
    let c = &m["backtest"]["candidates"];
    let error = |k: &str| c[k]["result"]["total_error"].as_f64().unwrap();
    let (plain, seasonal) = (error("bgnbd"), error("bgnbd+seasonal"));
    assert!(
        plain < -0.2,
        "without the index the peak is missed: {plain}"
    );
    assert!(
        seasonal.abs() < 0.15 && seasonal.abs() < plain.abs() / 2.0,
        "{seasonal} vs {plain}"
    );
    assert_eq!(m["backtest"]["customer_model"], "bgnbd+seasonal");
    let t = read_table(&partition(&out, "backtest", "2024-12-31"));
    assert_eq!(t.rows(), 6 * 9, "3 models, with and without the index");
    let seasonal_rows = t
        .bools("seasonal")
        .iter()
        .filter(|b| **b == Some(true))
        .count();
    assert_eq!(seasonal_rows, 3 * 9);

    // Without a holdout, `auto` still reads the orders for its origins and the index.
    let auto = "[models]\ncustomer_model = \"auto\"\nseasonality = \"month_of_year\"\n";
    let m = &run_models(&orders, &dir.path().join("auto"), auto, "2024-12-31", &[]);
    let origins = m["selection"]["origins"].as_array().unwrap();
    assert!(
        origins
            .iter()
            .all(|o| o["customers"].as_u64().unwrap() > 1000),
        "{origins:?}"
    );
    for k in ["bgnbd", "bgnbd+seasonal", "pareto_nbd+seasonal"] {
        assert!(
            m["selection"]["candidates"][k]["mean_rmse"]
                .as_f64()
                .is_some(),
            "{k}"
        );
    }

    // Earlier, the last origin has too little history for an index: the seasonal candidates
    // stay in, and every candidate is compared on the two origins where all of them ran.
    let m = run_models(&orders, &dir.path().join("early"), auto, "2024-02-15", &[]);
    let s = &m["selection"];
    let compared: Vec<bool> = s["origins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["compared"].as_bool().unwrap())
        .collect();
    assert_eq!(compared, [true, true, false], "{s}");
    let c = &s["candidates"];
    assert_eq!(c["bgnbd+seasonal"]["eligible"], true, "{s}");
    assert!(c["bgnbd+seasonal"]["origins"][2]["error"]
        .as_str()
        .unwrap()
        .contains("a year and a half"));
    assert!(
        s["why"]
            .as_str()
            .unwrap()
            .contains("over the 2 origins compared"),
        "{s}"
    );
}

#[test]
fn a_short_history_leaves_seasonality_off_and_says_why() {
    let dir = tempdir();
    let m = run_models(
        &repo().join("data-samples/cdnow/cdnow_orders.csv"),
        &dir.path().join("out"),
        "[models]\nseasonality = \"month_of_year\"\n",
        "1997-09-30",
        &[],
    );
    let s = &m["seasonality"];
    assert_eq!(s["status"], "off");
    assert!(
        s["reason"].as_str().unwrap().contains("a year and a half"),
        "{s}"
    );
}

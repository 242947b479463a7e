//! The output contract: Hive-style partitions, BI-readable types, atomic publication, reruns that
//! replace, and a backtest with a holdout.

use arrow::datatypes::DataType;

use crate::common::*;

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn run_small(out: &std::path::Path, extra: &[&str]) -> String {
    let orders = write(out.parent().unwrap(), "orders.csv", SMALL_ORDERS.as_bytes());
    let mut args = vec!["--no-models"];
    args.extend_from_slice(extra);
    run_job(&orders, out, &args)
}

#[test]
fn tables_have_the_documented_schema() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let stdout = run_small(&out, &[]);
    // Default as-of: the latest valid order day.
    assert!(stdout.contains("as-of 2024-06-10"), "{stdout}");
    let f = read_table(&partition(&out, "customer_features", "2024-06-10"));
    assert!(
        is_string(&f.dtype("customer_id")),
        "{:?}",
        f.dtype("customer_id")
    );
    for c in [
        "frequency",
        "recency_days",
        "tenure_days",
        "btyd_x",
        "btyd_t_x",
        "btyd_T",
        "purchase_days",
    ] {
        assert_eq!(f.dtype(c), DataType::Int64, "{c}");
    }
    for c in [
        "monetary",
        "net_revenue",
        "aov",
        "btyd_m",
        "ipt_mean_days",
        "ipt_cv",
        "refunds",
    ] {
        assert_eq!(f.dtype(c), DataType::Float64, "{c}");
    }
    for c in ["first_order_date", "last_order_date"] {
        assert_eq!(f.dtype(c), DataType::Date32, "{c}");
    }
    // No unsigned and no nanosecond types anywhere.
    for table in [
        "customer_features",
        "segments",
        "segment_summary",
        "rejected",
    ] {
        let t = read_table(&partition(&out, table, "2024-06-10"));
        for field in t.schema.fields() {
            let bad = matches!(
                field.data_type(),
                DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64
            ) || matches!(
                field.data_type(),
                DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, _)
            );
            assert!(!bad, "{table}.{}: {:?}", field.name(), field.data_type());
        }
    }

    // Values: customer a bought on 01-05, twice on 02-05 (one purchase day), and 06-01.
    let i = f.by_customer()["a"];
    assert_eq!(f.i64s("frequency")[i], Some(4));
    assert_eq!(f.i64s("btyd_x")[i], Some(2));
    assert_eq!(f.f64s("btyd_m")[i], Some(27.5));
    assert_eq!(f.i64s("recency_days")[i], Some(9));
    let first = patronage_input_day("2024-01-05");
    assert_eq!(f.dates("first_order_date")[i], Some(first));
    // c's cancelled order does not count; b's returned order nets to zero (by default it is
    // not a purchase either).
    let c = f.by_customer()["c"];
    assert_eq!(f.i64s("frequency")[c], Some(1));
    let b = f.by_customer()["b"];
    assert_eq!(f.i64s("frequency")[b], Some(1));
    assert_eq!(f.f64s("net_revenue")[b], Some(100.0));
    assert!(f.f64s("net_revenue").iter().all(|v| v.unwrap() >= 0.0));

    let s = read_table(&partition(&out, "segments", "2024-06-10"));
    for c in ["r_score", "f_score", "m_score"] {
        assert_eq!(s.dtype(c), DataType::Int64);
        assert!(s
            .i64s(c)
            .iter()
            .all(|v| v.is_some_and(|v| (1..=5).contains(&v))));
    }
    assert!(s.strings("rfm_segment").iter().all(Option::is_some));
    let tiers = s.strings("value_tier");
    assert!(tiers.iter().any(|t| t.as_deref() == Some("top")));

    let summary = read_table(&partition(&out, "segment_summary", "2024-06-10"));
    let dims = summary.strings("dimension");
    let shares = summary.f64s("revenue_share");
    let tier_share: f64 = (0..summary.rows())
        .filter(|i| dims[*i].as_deref() == Some("value_tier"))
        .map(|i| shares[i].unwrap())
        .sum();
    assert!((tier_share - 1.0).abs() < 1e-9);
}

#[test]
fn a_failed_run_leaves_earlier_outputs_and_a_rerun_replaces() {
    let dir = tempdir();
    let out = dir.path().join("out");
    run_small(&out, &["--as-of", "2024-06-30"]);
    let path = partition(&out, "customer_features", "2024-06-30");
    let before = fs_err::read(&path).unwrap();

    // A failing run (bad input) for the same as-of must not touch the published tables.
    let bad = write(dir.path(), "bad.csv", b"customer_id,amount\nx,1\n");
    let o = run_job_output(&bad, &out, &["--as-of", "2024-06-30", "--no-models"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(fs_err::read(&path).unwrap(), before);
    let leftovers: Vec<_> = fs_err::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.') && n != ".patronage")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(
        fs_err::read_dir(out.join(".patronage/staging"))
            .unwrap()
            .count(),
        0
    );

    // A rerun with fewer orders replaces the partition.
    let fewer: String = SMALL_ORDERS
        .lines()
        .take(5)
        .map(|l| format!("{l}\n"))
        .collect();
    let orders = write(dir.path(), "fewer.csv", fewer.as_bytes());
    run_job(&orders, &out, &["--as-of", "2024-06-30", "--no-models"]);
    assert_eq!(read_table(&path).rows(), 1);
    let runs: Vec<_> = fs_err::read_dir(out.join("customer_features"))
        .unwrap()
        .collect();
    assert_eq!(runs.len(), 1);
}

#[test]
fn json_summary_on_stdout_and_glob_inputs() {
    let dir = tempdir();
    let lines: Vec<&str> = SMALL_ORDERS.lines().collect();
    let (head, rows) = (lines[0], &lines[1..]);
    write(
        dir.path(),
        "part-1.csv",
        format!("{head}\n{}\n", rows[..6].join("\n")).as_bytes(),
    );
    write(
        dir.path(),
        "part-2.csv",
        format!("{head}\n{}\n", rows[6..].join("\n")).as_bytes(),
    );
    let out = dir.path().join("out");
    let pattern = format!("{}/part-*.csv", dir.path().display());
    let stdout = patronage_ok(&[
        "run",
        "-q",
        "--json",
        "--orders",
        &pattern,
        "--out",
        out.to_str().unwrap(),
        "--no-models",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(stdout.trim()).expect("stdout is one JSON document");
    assert_eq!(v["rows_read"], 13);
    assert_eq!(v["customers"], 6);
    let m = manifest(&out, v["as_of"].as_str().unwrap());
    assert_eq!(m["inputs"]["orders"]["files"].as_array().unwrap().len(), 2);
}

/// 20,000 generated customers: the calibration fit at 2024-09-02 is one where a BFGS update
/// once lost positive definiteness next to the Gamma-Gamma optimum; the fit must keep its best
/// point and converge.
#[test]
fn generated_shop_with_models_and_backtest() {
    let dir = tempdir();
    let data = dir.path().join("data");
    generate(&data, 20000, &["--seed", "5", "--format", "parquet"]);
    let out = dir.path().join("out");
    run_job(
        &data.join("orders.parquet"),
        &out,
        &["--as-of", "2024-12-31", "--holdout-days", "120"],
    );
    let scores = read_table(&partition(&out, "churn_scores", "2024-12-31"));
    let feats = read_table(&partition(&out, "customer_features", "2024-12-31"));
    assert_eq!(scores.rows(), feats.rows());
    assert!(scores
        .f64s("clv")
        .iter()
        .flatten()
        .all(|v| v.is_finite() && *v >= 0.0));
    let m = manifest(&out, "2024-12-31");
    // Every stage is timed, with its throughput and the process's peak memory when it ended
    // (the peak never goes down from one stage to the next).
    let timings = m["timings_ms"].as_object().unwrap();
    for stage in [
        "ingest", "features", "models", "segments", "clusters", "write",
    ] {
        assert!(timings[stage].as_f64().unwrap() >= 0.0, "{stage}");
    }
    let rate = |stage: &str| m["rows_per_second"][stage].as_f64();
    // Ingest counts input rows (~44k order rows here), the other stages customers (20k).
    let ingest_seconds = timings["ingest"].as_f64().unwrap() / 1e3;
    let rows = m["inputs"]["orders"]["rows_read"].as_f64().unwrap();
    if let Some(r) = rate("ingest") {
        assert!((r - rows / ingest_seconds).abs() <= 1.0 + 1e-6 * r, "{r}");
    }
    if cfg!(target_os = "linux") {
        let peaks: Vec<f64> = ["ingest", "features", "models", "segments", "write"]
            .iter()
            .map(|s| m["peak_memory_mb"][*s].as_f64().unwrap())
            .collect();
        assert!(peaks[0] > 1.0, "{peaks:?}");
        assert!(peaks.windows(2).all(|w| w[0] <= w[1]), "{peaks:?}");
        // Each stage's CPU time, all threads: at least one stage used some (ticks are 10 ms),
        // and the stages together used no more than the machine's cores allow over the stages'
        // wall time (give or take a tick per stage).
        let cpu = m["cpu_ms"].as_object().unwrap();
        assert_eq!(
            cpu.keys().collect::<Vec<_>>(),
            timings.keys().collect::<Vec<_>>()
        );
        let total_cpu: f64 = cpu.values().map(|v| v.as_f64().unwrap()).sum();
        let total_wall: f64 = timings.values().map(|v| v.as_f64().unwrap()).sum();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(total_cpu > 0.0, "{cpu:?}");
        assert!(
            total_cpu <= total_wall * cores + 10.0 * cpu.len() as f64,
            "{cpu:?} {timings:?}"
        );
    }
    let bg = &m["models"]["bgnbd"];
    assert_eq!(bg["converged"], true);
    assert!(bg["unique_rows"].as_u64().unwrap() < bg["customers"].as_f64().unwrap() as u64);
    let bt = read_table(&partition(&out, "backtest", "2024-12-31"));
    let labels = bt.strings("calibration_repeat_purchases");
    let all = labels
        .iter()
        .position(|l| l.as_deref() == Some("all"))
        .unwrap();
    let (pred, act) = (
        bt.f64s("predicted_purchases")[all].unwrap(),
        bt.f64s("actual_purchases")[all].unwrap(),
    );
    // The generator is a BG/NBD process: the holdout prediction lands near the truth.
    assert!(
        (pred / act - 1.0).abs() < 0.25,
        "predicted {pred} vs actual {act}"
    );
    let result = &m["models"]["backtest"]["result"];
    let auc_repeat = result["auc_no_purchase_repeat_customers"].as_f64().unwrap();
    let auc_expected = result["auc_no_purchase_by_expected"].as_f64().unwrap();
    assert!(
        auc_repeat > 0.6,
        "p_alive AUC among repeat customers {auc_repeat}"
    );
    assert!(auc_expected > 0.6, "expected-purchases AUC {auc_expected}");
    // p_purchase is a calibrated probability: the customers it expects to stay away match the
    // count that did, and it ranks one-time buyers too (p_alive cannot).
    let (no_pred, no_act) = (
        result["predicted_no_purchase_customers"].as_f64().unwrap(),
        result["actual_no_purchase_customers"].as_f64().unwrap(),
    );
    assert!(
        (no_pred / no_act - 1.0).abs() < 0.05,
        "predicted {no_pred} vs actual {no_act} customers without a purchase"
    );
    let auc_p = result["auc_no_purchase_by_p_purchase"].as_f64().unwrap();
    let auc_all = result["auc_no_purchase"].as_f64().unwrap();
    assert!(
        auc_p > 0.7 && auc_p > auc_all,
        "p_purchase AUC {auc_p} vs p_alive {auc_all}"
    );
    let p_purchase = scores.f64s("p_purchase");
    let p_alive = scores.f64s("p_alive");
    assert!(p_purchase
        .iter()
        .zip(&p_alive)
        .all(|(p, a)| p.is_none_or(|p| (0.0..=1.0).contains(&p) && p <= a.unwrap())));

    // Rerun without a holdout: the stale backtest partition goes away.
    run_job(
        &data.join("orders.parquet"),
        &out,
        &["--as-of", "2024-12-31"],
    );
    assert!(!partition(&out, "backtest", "2024-12-31").exists());
}

fn patronage_input_day(text: &str) -> i32 {
    let d = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
    (d - chrono::NaiveDate::default()).num_days() as i32
}

/// Promotion sensitivity and category breadth from order lines (`discount_amount`, `category`):
/// a line's discount is what was taken off its amount; an order's categories are those of its
/// purchased lines. Without the columns the features are null, not 0.
#[test]
fn discounts_and_categories_from_order_lines() {
    let dir = tempdir();
    let csv = write(
        dir.path(),
        "orders.csv",
        b"customer_id,order_id,order_ts,amount,status,discount_amount,category\n\
a,1,2024-01-01,45,completed,5,shoes\n\
a,1,2024-01-01,20,completed,,socks\n\
a,2,2024-02-01,30,completed,0,shoes\n\
a,3,2024-03-01,50,cancelled,50,hats\n\
b,4,2024-01-10,10,completed,,\n\
c,5,2024-01-11,10,completed,-1,shoes\n",
    );
    let out = dir.path().join("out");
    run_job(&csv, &out, &["--no-models", "--as-of", "2024-03-31"]);
    let f = read_table(&partition(&out, "customer_features", "2024-03-31"));
    let i = f.by_customer();
    // a: order 1 discounted (5 off 65 + 5 = 70), order 2 not; hats were cancelled.
    assert_eq!(f.f64s("discounted_order_share")[i["a"]], Some(0.5));
    let rate = f.f64s("mean_discount_rate")[i["a"]].unwrap();
    assert!((rate - (5.0 / 70.0) / 2.0).abs() < 1e-9, "{rate}");
    assert_eq!(f.i64s("categories_bought")[i["a"]], Some(2));
    assert_eq!(f.f64s("discounted_order_share")[i["b"]], Some(0.0));
    assert_eq!(f.i64s("categories_bought")[i["b"]], Some(0));
    // A negative discount is refused with its column.
    assert!(!i.contains_key("c"));
    let rej = read_table(&partition(&out, "rejected", "2024-03-31"));
    assert_eq!(
        rej.strings("source_column"),
        [Some("discount_amount".to_string())]
    );

    let plain = dir.path().join("plain");
    let orders = write(dir.path(), "small.csv", SMALL_ORDERS.as_bytes());
    run_job(&orders, &plain, &["--no-models"]);
    let f = read_table(&partition(&plain, "customer_features", "2024-06-10"));
    for c in ["discounted_order_share", "mean_discount_rate"] {
        assert!(f.f64s(c).iter().all(Option::is_none), "{c}");
    }
    assert!(f.i64s("categories_bought").iter().all(Option::is_none));
}

//! Scale-out (#17): the run as `partial` → `fit` → `score` → `publish` over n partitions gives
//! the tables of a single `run`, customer by customer and bit for bit.

use std::path::Path;

use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::common::*;

/// Every row of every part of `table` as text (one string per row, every column), sorted.
fn rows_of(out: &Path, table: &str, as_of: &str) -> Vec<String> {
    let dir = out.join(table).join(format!("run_date={as_of}"));
    let mut parts: Vec<_> = fs_err::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{table}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    parts.sort();
    let mut rows = Vec::new();
    for part in parts {
        let t = read_table(&part);
        let options = FormatOptions::default().with_null("∅");
        let columns: Vec<ArrayFormatter> = t
            .batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..t.rows() {
            let cells: Vec<String> = columns.iter().map(|c| c.value(r).to_string()).collect();
            rows.push(cells.join("|"));
        }
    }
    rows.sort();
    rows
}

#[test]
fn partitioned_phases_give_the_single_runs_tables() {
    let dir = tempdir();
    let data = repo().join("data-samples");
    let path = |f: &str| data.join(f).to_str().unwrap().to_string();
    // A fit sample smaller than the customers, so which customers it holds matters.
    let config = write(
        dir.path(),
        "patronage.toml",
        b"[clusters]\nfit_rows = 200\nsample_rows = 100\n",
    );
    let single = dir.path().join("single");
    let common = |out: &Path| -> Vec<String> {
        [
            "--orders",
            &path("orders.csv"),
            "--customers",
            &path("customers.csv"),
            "--clicks",
            &path("clicks.csv"),
            "--config",
            config.to_str().unwrap(),
            "--as-of",
            "2024-12-30",
            "--holdout-days",
            "90",
            "--out",
            out.to_str().unwrap(),
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let args = |cmd: &str, out: &Path, extra: &[String]| -> Vec<String> {
        let mut a = vec![cmd.to_string()];
        a.extend(common(out));
        a.extend_from_slice(extra);
        a
    };
    let ok = |a: Vec<String>| patronage_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    ok(args("run", &single, &[]));
    let tables = [
        "customer_features",
        "churn_scores",
        "backtest",
        "segments",
        "segment_summary",
        "cluster_profiles",
        "loyalty_stages",
        "rejected",
    ];
    let m = manifest(&single, "2024-12-30");
    assert_eq!(m["clusters"]["fit_rows"], 200, "the fit sample is drawn");
    for n in [1u32, 3, 8] {
        let work = dir.path().join(format!("work-{n}"));
        let out = dir.path().join(format!("out-{n}"));
        let w = vec!["--work".to_string(), work.to_str().unwrap().to_string()];
        let part = |i: u32| [w.clone(), vec!["--partition".into(), format!("{i}/{n}")]].concat();
        let all = [w.clone(), vec!["--partitions".into(), n.to_string()]].concat();
        for i in 0..n {
            ok(args("partial", &out, &part(i)));
        }
        ok(args("fit", &out, &all));
        for i in 0..n {
            ok(args("score", &out, &part(i)));
        }
        ok(args("publish", &out, &all));
        for table in tables {
            let (a, b) = (
                rows_of(&single, table, "2024-12-30"),
                rows_of(&out, table, "2024-12-30"),
            );
            assert!(!a.is_empty(), "{table} has rows");
            assert_eq!(a.len(), b.len(), "{table}, {n} partitions");
            if let Some(k) = (0..a.len()).find(|&k| a[k] != b[k]) {
                panic!(
                    "{table}, {n} partitions: first differing row\n{}\n{}",
                    a[k], b[k]
                );
            }
        }
        let parts = fs_err::read_dir(out.join("segments").join("run_date=2024-12-30"))
            .unwrap()
            .count();
        assert_eq!(parts, n as usize, "one part per partition");
        assert_eq!(manifest(&out, "2024-12-30")["partitions"], n);
    }
}

#[test]
fn phases_refuse_missing_or_mismatched_work() {
    let dir = tempdir();
    let data = repo().join("data-samples");
    let orders = data.join("orders.csv");
    let work = dir.path().join("work");
    let out = dir.path().join("out");
    let base = |cmd: &'static str| {
        vec![
            cmd,
            "--orders",
            orders.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--work",
            work.to_str().unwrap(),
            "--as-of",
            "2024-12-30",
            "-q",
        ]
    };
    // No partials yet.
    let mut fit = base("fit");
    fit.extend(["--partitions", "2"]);
    let r = patronage(&fit);
    assert_eq!(
        r.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(String::from_utf8_lossy(&r.stderr)
        .contains("run `patronage partial` for every partition first"));
    // A partition outside the count.
    let mut bad = base("partial");
    bad.extend(["--partition", "2/2"]);
    assert_eq!(patronage(&bad).status.code(), Some(2));
    // Partials at another as-of than the first.
    let mut p0 = base("partial");
    p0.extend(["--partition", "0/2"]);
    patronage_ok(&p0);
    let mut p1 = base("partial");
    p1.extend(["--partition", "1/2"]);
    p1[8] = "2024-12-01";
    patronage_ok(&p1);
    let r = patronage(&fit);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("give every phase the same --as-of"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

/// `run --partitions N` (#16): the inputs routed once, the customers worked through one
/// partition at a time in one process; the tables and the inputs' counts are a single run's.
#[test]
fn run_in_partitions_gives_the_single_runs_tables() {
    let dir = tempdir();
    // A generated shop with dirt (malformed rows, conflicting duplicates), profiles and clicks.
    let shop = dir.path().join("shop");
    generate(&shop, 1500, &["--malformed-share", "0.02"]);
    let config = write(
        dir.path(),
        "patronage.toml",
        b"[clusters]\nfit_rows = 300\nsample_rows = 150\n[clicks]\nchunk_rows = 500\n",
    );
    let file = |f: &str| shop.join(f).to_str().unwrap().to_string();
    let (orders, customers, clicks) = (
        file("orders.csv"),
        file("customers.csv"),
        file("clicks.csv"),
    );
    let run = |out: &Path, extra: &[&str]| {
        let mut a = vec![
            "run",
            "-q",
            "--orders",
            &orders,
            "--customers",
            &customers,
            "--clicks",
            &clicks,
            "--config",
            config.to_str().unwrap(),
            "--as-of",
            "2024-12-31",
            "--holdout-days",
            "120",
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        patronage_ok(&a);
    };
    let single = dir.path().join("single");
    run(&single, &[]);
    let m1 = manifest(&single, "2024-12-31");
    assert!(m1["inputs"]["orders"]["rows_rejected"].as_i64().unwrap() > 0);
    // The generator writes each customer's orders together, ids in sequence: one pass streams.
    assert_eq!(m1["inputs"]["orders"]["read_in_order"], true);
    assert!(
        m1["inputs"]["orders"]["rejected_by_reason"]["conflicting_duplicate"].as_i64() > Some(0)
    );
    // 2 partitions; 5 with a tiny memory budget on top (the orders routed as they stream); and
    // the budget alone, which chooses the partitions itself.
    for n in ["2", "5", "auto"] {
        let out = dir.path().join(format!("out-{n}"));
        let budget = n != "2";
        let mut extra = if n == "auto" {
            vec![]
        } else {
            vec!["--partitions", n]
        };
        if budget {
            extra.extend(["--memory-budget", "64KiB"]);
        }
        run(&out, &extra);
        for table in [
            "customer_features",
            "churn_scores",
            "backtest",
            "segments",
            "segment_summary",
            "cluster_profiles",
            "loyalty_stages",
            "rejected",
        ] {
            let (a, b) = (
                rows_of(&single, table, "2024-12-31"),
                rows_of(&out, table, "2024-12-31"),
            );
            assert!(!a.is_empty(), "{table} has rows");
            assert_eq!(a.len(), b.len(), "{table}, {n} partitions");
            if let Some(k) = (0..a.len()).find(|&k| a[k] != b[k]) {
                panic!(
                    "{table}, {n} partitions: first differing row\n{}\n{}",
                    a[k], b[k]
                );
            }
        }
        let m = manifest(&out, "2024-12-31");
        if n == "auto" {
            // ~7,000 order rows with their profiles and clicks: some MiB in one pass, far over
            // the 64 KiB budget, so many partitions (a power of two), and the run says why.
            let k = m["partitions"].as_u64().unwrap();
            assert!(k >= 8 && k.is_power_of_two(), "{k}");
            let said = m["warnings"].as_array().unwrap();
            let why = format!("working through {k} customer partitions");
            assert!(
                said.iter().any(|w| w.as_str().unwrap().contains(&why)),
                "{said:?}"
            );
        } else {
            assert_eq!(m["partitions"].as_u64(), Some(n.parse().unwrap()));
        }
        let mut orders = m["inputs"]["orders"].clone();
        // The generated orders are in `order_id` order: routed as they stream, in one pass,
        // whatever the budget (an input out of order is routed in passes: the input crate's
        // tests cover that fall-back and the sink's restart).
        assert_eq!(orders["read_passes"], 1, "{n} partitions, budget {budget}");
        assert_eq!(orders["read_in_order"], true, "{n} partitions");
        for key in ["read_passes", "read_in_order", "memory_budget_bytes"] {
            orders[key] = m1["inputs"]["orders"][key].clone();
        }
        assert_eq!(orders, m1["inputs"]["orders"], "{n} partitions");
        for input in ["customers", "clicks"] {
            assert_eq!(
                m["inputs"][input], m1["inputs"][input],
                "{input}, {n} partitions"
            );
        }
        assert_eq!(m["customers"], m1["customers"]);
        assert!(m["timings_ms"]["route"].as_f64().is_some());
        assert!(
            !out.join(".patronage").join("partitions").exists(),
            "scratch removed"
        );
    }
}

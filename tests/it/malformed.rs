//! Bad input: file-level problems stop the run with exit code 1 and a message naming the file and
//! column; row-level problems land in `rejected` with file, row, column, value and reason, and the
//! manifest proves rows_read = rows_accepted + rows_rejected.

use crate::common::*;

fn run_on(csv: &[u8], extra: &[&str]) -> (tempfile::TempDir, std::process::Output) {
    let dir = tempdir();
    let orders = write(dir.path(), "orders.csv", csv);
    let output = run_job_output(&orders, &dir.path().join("out"), extra);
    (dir, output)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn missing_column_stops_with_file_column_and_columns_found() {
    let (_d, o) = run_on(b"customer_id,order_id,amount\na,1,10\n", &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("orders.csv"), "{e}");
    assert!(e.contains("`order_ts` not found"), "{e}");
    assert!(
        e.contains("columns found: `customer_id`, `order_id`, `amount`"),
        "{e}"
    );
}

#[test]
fn misspelled_column_gets_a_suggestion() {
    let (_d, o) = run_on(
        b"customer_id,order_id,order_tss,amount\na,1,2024-01-01,10\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("did you mean `order_tss`?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn empty_file_and_non_csv_stop_the_run() {
    let (_d, o) = run_on(b"", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("the file is empty"), "{}", stderr(&o));

    let garbage: Vec<u8> = (0u8..=255).cycle().take(4096).collect();
    let (_d, o) = run_on(&garbage, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("orders.csv"), "{}", stderr(&o));
}

#[test]
fn bad_rows_are_quarantined_with_reasons_and_counts_add_up() {
    let mut csv = b"customer_id,order_id,order_ts,amount,status\n".to_vec();
    csv.extend_from_slice(b"a,1,2024-01-01,10.00,completed\n"); // row 1 ok
    csv.extend_from_slice(b"a,2,2024-13-01,10.00,completed\n"); // row 2 bad date
    csv.extend_from_slice(b"a,3,2024-01-03,ten,completed\n"); // row 3 non-numeric
    csv.extend_from_slice(b",4,2024-01-04,1.00,completed\n"); // row 4 missing customer
    csv.extend_from_slice(b"b\xff\xfe,5,2024-01-05,1.00,completed\n"); // row 5 not UTF-8
    csv.extend_from_slice(b"b,6,2024-01-06,5.00,shipped-ish\n"); // row 6 unknown status
    csv.extend_from_slice(b"b,7,2024-01-07,-5.00,completed\n"); // row 7 refund (accepted)
    csv.extend_from_slice(b"b,8,2024-01-08,50.00,completed\n"); // row 8 ok
    csv.extend_from_slice(b"c,9,2024-01-09,20.00,completed\n"); // row 9 conflicting dup
    csv.extend_from_slice(b"d,9,2024-01-09,20.00,completed\n"); // row 10 conflicting dup
    csv.extend_from_slice(b"b,8,2024-01-08,50.00,completed\n"); // row 11 identical dup (collapsed)
    csv.extend_from_slice(b"b,12,2099-01-01,70.00,completed\n"); // row 12 future: kept, ignored
    let (dir, o) = run_on(&csv, &["--as-of", "2024-01-31", "--no-models"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("out");

    let rej = read_table(&partition(&out, "rejected", "2024-01-31"));
    let rows = rej.i64s("source_row");
    let reasons = rej.strings("reason");
    let cols = rej.strings("source_column");
    let got: Vec<(i64, String, String)> = (0..rej.rows())
        .map(|i| {
            (
                rows[i].unwrap(),
                cols[i].clone().unwrap(),
                reasons[i].clone().unwrap(),
            )
        })
        .collect();
    let want = [
        (2, "order_ts", "invalid_timestamp"),
        (3, "amount", "invalid_number"),
        (4, "customer_id", "missing_value"),
        (5, "customer_id", "invalid_utf8"),
        (6, "status", "unknown_status"),
        (9, "customer_id", "conflicting_duplicate"),
        (10, "customer_id", "conflicting_duplicate"),
    ];
    let want: Vec<(i64, String, String)> = want
        .iter()
        .map(|(r, c, s)| (*r, c.to_string(), s.to_string()))
        .collect();
    assert_eq!(got, want);
    assert!(rej
        .strings("source_file")
        .iter()
        .all(|f| f.as_deref().is_some_and(|f| f.ends_with("orders.csv"))));
    assert_eq!(rej.strings("raw_value")[0].as_deref(), Some("2024-13-01"));
    assert!(rej
        .strings("source")
        .iter()
        .all(|s| s.as_deref() == Some("orders")));
    assert!(rej.strings("message")[1]
        .as_deref()
        .unwrap()
        .contains("\"ten\""));

    let m = manifest(&out, "2024-01-31");
    let o = &m["inputs"]["orders"];
    assert_eq!(o["rows_read"], 12);
    assert_eq!(o["rows_rejected"], 7);
    assert_eq!(o["rows_accepted"], 5);
    assert_eq!(o["duplicates_collapsed"], 1);
    assert_eq!(o["orders_after_as_of_ignored"], 1);
    assert_eq!(o["rejected_by_reason"]["conflicting_duplicate"], 2);
    let f = &o["files"][0];
    assert_eq!(
        f["rows_read"].as_i64().unwrap(),
        f["rows_accepted"].as_i64().unwrap() + f["rows_rejected"].as_i64().unwrap()
    );

    let feats = read_table(&partition(&out, "customer_features", "2024-01-31"));
    let idx = feats.by_customer();
    assert_eq!(feats.rows(), 2, "a and b");
    let b = idx["b"];
    // The negative line is a refund: not a purchase, and it reduces net revenue.
    assert_eq!(feats.i64s("frequency")[b], Some(1));
    assert_eq!(feats.f64s("monetary")[b], Some(50.0));
    assert_eq!(feats.f64s("net_revenue")[b], Some(45.0));
}

#[test]
fn bad_config_is_an_error_before_reading_data() {
    let dir = tempdir();
    let cfg = write(dir.path(), "patronage.toml", b"[run]\norderz = 'x.csv'\n");
    let o = patronage(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--orders",
        "nope.csv",
        "--out",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("patronage.toml"), "{}", stderr(&o));
    assert!(stderr(&o).contains("orderz"), "{}", stderr(&o));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(patronage(&["run", "--no-such-flag"]).status.code(), Some(2));
}

/// Data the churn models cannot identify: the rest of the night's work is published, the
/// manifest marks the models failed with the reason, and the exit code (4) tells a scheduler;
/// the message says what to do. The same data runs cleanly with `--no-models`.
#[test]
fn unidentifiable_models_publish_the_rest_and_exit_4() {
    let mut csv = String::from("customer_id,order_id,order_ts,amount\n");
    for i in 0..30 {
        csv.push_str(&format!(
            "c{i},o{i},2024-01-{:02}T10:00:00,{}.50\n",
            1 + i % 28,
            10 + i
        ));
    }
    let (dir, o) = run_on(csv.as_bytes(), &["--as-of", "2024-03-31"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("no customer has a repeat purchase"), "{err}");
    assert!(err.contains("--no-models"), "{err}");
    let out = dir.path().join("out");
    for table in [
        "customer_features",
        "segments",
        "segment_summary",
        "rejected",
    ] {
        assert!(partition(&out, table, "2024-03-31").exists(), "{table}");
    }
    assert!(!partition(&out, "churn_scores", "2024-03-31").exists());
    let m = manifest(&out, "2024-03-31");
    assert_eq!(m["status"], "models_failed");
    assert_eq!(m["models"]["status"], "failed");
    assert_eq!(m["models"]["bgnbd"]["status"], "failed");
    assert!(m["models"]["bgnbd"]["error"]
        .as_str()
        .unwrap()
        .contains("repeat purchase"));
    // Value tiers fall back to net revenue when there is no CLV.
    assert_eq!(m["segments"]["value_tiers"]["by"], "net_revenue");

    let (_d, o) = run_on(csv.as_bytes(), &["--as-of", "2024-03-31", "--no-models"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

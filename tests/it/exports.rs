//! Awkward but realistic exports (issue #12): each case is a file of the kind that once panicked,
//! gave a wrong number or sent the user the wrong way, with what must happen now.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Decimal128Array, Float64Array, Int16Array, Int64Array, MapBuilder, StringArray,
    StringBuilder, StructArray, UInt8Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field};

use crate::common::*;

fn strings(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs on `orders` and returns (exit code, stderr).
fn run_code(orders: &Path, out: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let o = run_job_output(orders, out, extra);
    (o.status.code(), stderr(&o))
}

fn unused_nested_columns(n: usize) -> Vec<(&'static str, ArrayRef)> {
    let mut map = MapBuilder::new(
        None,
        StringBuilder::new(),
        arrow::array::Int64Builder::new(),
    );
    for i in 0..n {
        map.keys().append_value("k");
        map.values().append_value(i as i64);
        map.append(true).unwrap();
    }
    let inner: ArrayRef = Arc::new(Int64Array::from(vec![1i64; n]));
    let nested = StructArray::from(vec![(
        Arc::new(Field::new("x", DataType::Int64, false)),
        inner,
    )]);
    let half: ArrayRef = cast(&Float64Array::from(vec![1.5; n]), &DataType::Float16).unwrap();
    vec![
        (
            "list_price",
            Arc::new(
                Decimal128Array::from(vec![999i128; n])
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
        ),
        ("attributes", Arc::new(map.finish())),
        ("meta", Arc::new(nested)),
        ("weight", half),
    ]
}

/// Spark/Snowflake-style Parquet: decimal amounts, small integer ids, and decimal, map, struct
/// and float16 columns that no stage uses.
#[test]
fn parquet_with_decimals_small_ints_and_unused_nested_columns_reads() {
    let dir = tempdir();
    let path = dir.path().join("orders.parquet");
    let mut cols: Vec<(&str, ArrayRef)> = vec![
        ("customer_id", Arc::new(Int16Array::from(vec![7i16, 7, 8]))),
        ("order_id", Arc::new(UInt8Array::from(vec![1u8, 2, 3]))),
        (
            "order_ts",
            strings(&["2024-01-05", "2024-02-10", "2024-02-11"]),
        ),
        (
            "amount",
            Arc::new(
                Decimal128Array::from(vec![1234i128, 550, 10000])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ),
    ];
    cols.extend(unused_nested_columns(3));
    write_parquet(&path, cols);
    let out = dir.path().join("out");
    run_job(&path, &out, &["--as-of", "2024-03-01", "--no-models"]);
    let f = read_table(&partition(&out, "customer_features", "2024-03-01"));
    let idx = f.by_customer();
    assert_eq!(f.rows(), 2);
    assert_eq!(f.f64s("monetary")[idx["7"]], Some(17.84));
    assert_eq!(f.f64s("monetary")[idx["8"]], Some(100.0));
    let m = manifest(&out, "2024-03-01");
    let unused = &m["inputs"]["orders"]["files"][0]["unused_columns"];
    assert_eq!(unused.as_array().unwrap().len(), 4, "{unused}");
}

/// A mapped column of a type we cannot read is refused with its name and type.
#[test]
fn a_refused_column_type_is_named() {
    let dir = tempdir();
    let path = dir.path().join("orders.parquet");
    let half: ArrayRef = cast(&Float64Array::from(vec![1.5, 2.0]), &DataType::Float16).unwrap();
    write_parquet(
        &path,
        vec![
            ("customer_id", strings(&["a", "b"])),
            ("order_id", strings(&["1", "2"])),
            ("order_ts", strings(&["2024-01-01", "2024-01-02"])),
            ("amount", half),
        ],
    );
    let (code, err) = run_code(&path, &dir.path().join("out"), &["--no-models"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("orders.parquet") && err.contains("`amount`"),
        "{err}"
    );
    assert!(err.contains("Float16") && err.contains("float64"), "{err}");

    let mut cols = unused_nested_columns(2);
    let meta = cols.remove(2).1;
    write_parquet(
        &path,
        vec![
            ("customer_id", meta),
            ("order_id", strings(&["1", "2"])),
            ("order_ts", strings(&["2024-01-01", "2024-01-02"])),
            ("amount", Arc::new(Float64Array::from(vec![1.0, 2.0]))),
        ],
    );
    let (code, err) = run_code(&path, &dir.path().join("out"), &["--no-models"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("`customer_id`") && err.contains("nested"),
        "{err}"
    );
}

/// pandas writes float ids when an id column had a null: `42.0` in Parquet and `42` in CSV are
/// one customer.
#[test]
fn integral_float_ids_are_integer_ids() {
    let dir = tempdir();
    let data = dir.path().join("data");
    fs_err::create_dir_all(&data).unwrap();
    write_parquet(
        &data.join("a.parquet"),
        vec![
            (
                "customer_id",
                Arc::new(Float64Array::from(vec![Some(42.0), Some(43.0), None])),
            ),
            (
                "order_id",
                Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
            ),
            (
                "order_ts",
                strings(&["2024-01-01", "2024-01-02", "2024-01-03"]),
            ),
            (
                "amount",
                Arc::new(Float64Array::from(vec![10.0, 20.0, 30.0])),
            ),
        ],
    );
    write(
        &data,
        "b.csv",
        b"customer_id,order_id,order_ts,amount\n42,4,2024-02-01,5\n43.0,5,2024-02-02,6\n",
    );
    let out = dir.path().join("out");
    run_job(&data, &out, &["--as-of", "2024-03-01", "--no-models"]);
    let f = read_table(&partition(&out, "customer_features", "2024-03-01"));
    let ids: Vec<String> = f.strings("customer_id").into_iter().flatten().collect();
    assert_eq!(ids, ["42", "43"]);
    assert_eq!(f.i64s("frequency"), [Some(2), Some(2)]);
    let rej = read_table(&partition(&out, "rejected", "2024-03-01"));
    assert_eq!(rej.strings("reason"), [Some("missing_value".to_string())]);
}

/// `20240310` is a date, not epoch seconds in 1970; a bare `2024` is refused, not 1970-01-01.
#[test]
fn compact_dates_are_dates_and_small_numbers_are_not_epochs() {
    let dir = tempdir();
    let csv = write(
        dir.path(),
        "orders.csv",
        b"customer_id,order_id,order_ts,amount\na,1,20240310,10\na,2,2024,10\nb,3,1710028800,5\n",
    );
    let out = dir.path().join("out");
    run_job(&csv, &out, &["--as-of", "2024-03-31", "--no-models"]);
    let f = read_table(&partition(&out, "customer_features", "2024-03-31"));
    let march_10 = 19792;
    assert_eq!(
        f.dates("first_order_date"),
        [Some(march_10), Some(march_10)]
    );
    let rej = read_table(&partition(&out, "rejected", "2024-03-31"));
    assert_eq!(rej.i64s("source_row"), [Some(2)]);
    assert_eq!(
        rej.strings("reason"),
        [Some("invalid_timestamp".to_string())]
    );
    assert!(rej.strings("message")[0]
        .as_deref()
        .unwrap()
        .contains("too small"));

    // The same in a typed Parquet column.
    let path = dir.path().join("typed.parquet");
    write_parquet(
        &path,
        vec![
            ("customer_id", strings(&["a"])),
            ("order_id", strings(&["1"])),
            ("order_ts", Arc::new(Int64Array::from(vec![20240310i64]))),
            ("amount", Arc::new(Float64Array::from(vec![1.0]))),
        ],
    );
    let out = dir.path().join("out2");
    run_job(&path, &out, &["--as-of", "2024-03-31", "--no-models"]);
    let f = read_table(&partition(&out, "customer_features", "2024-03-31"));
    assert_eq!(f.dates("first_order_date"), [Some(march_10)]);
}

/// Two 1e308 amounts would sum to inf: such rows are rejected, and every published float is
/// finite.
#[test]
fn huge_amounts_are_rejected_so_sums_stay_finite() {
    let dir = tempdir();
    let csv = write(
        dir.path(),
        "orders.csv",
        b"customer_id,order_id,order_ts,amount\na,1,2024-01-01,1e308\na,2,2024-01-02,1e308\nb,3,2024-01-03,10\n",
    );
    let out = dir.path().join("out");
    run_job(&csv, &out, &["--as-of", "2024-01-31", "--no-models"]);
    let rej = read_table(&partition(&out, "rejected", "2024-01-31"));
    assert_eq!(rej.rows(), 2);
    assert!(rej
        .strings("reason")
        .iter()
        .all(|r| r.as_deref() == Some("invalid_number")));
    let s = read_table(&partition(&out, "segment_summary", "2024-01-31"));
    assert!(s
        .f64s("revenue_share")
        .iter()
        .flatten()
        .all(|v| v.is_finite()));
}

#[test]
fn ambiguous_headers_are_an_error_that_lists_both() {
    let dir = tempdir();
    for (csv, column, both) in [
        (
            "customer_id,order_id,order_ts,amount,amount\na,1,2024-01-01,1,2\n",
            "amount",
            "(`amount`, `amount`)",
        ),
        (
            "Customer ID,customer_id,order_id,order_ts,amount\nx@y.z,a,1,2024-01-01,1\n",
            "customer_id",
            "(`Customer ID`, `customer_id`)",
        ),
    ] {
        let path = write(dir.path(), "orders.csv", csv.as_bytes());
        let (code, err) = run_code(&path, &dir.path().join("out"), &["--no-models"]);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains(both) && err.contains(&format!("`{column}`")),
            "{err}"
        );
    }
    // Mapping one of them resolves it.
    let path = write(
        dir.path(),
        "orders.csv",
        b"Customer ID,customer_id,order_id,order_ts,amount\nx@y.z,a,1,2024-01-01,1\n",
    );
    let cfg = write(
        dir.path(),
        "p.toml",
        b"[orders.columns]\ncustomer_id = \"customer_id\"\n",
    );
    let out = dir.path().join("out");
    run_job(
        &path,
        &out,
        &["--config", cfg.to_str().unwrap(), "--no-models"],
    );
    let f = read_table(&partition(&out, "customer_features", "2024-01-01"));
    assert_eq!(f.strings("customer_id"), [Some("a".to_string())]);
}

#[test]
fn null_markers_are_missing_values() {
    let dir = tempdir();
    let csv = write(
        dir.path(),
        "orders.csv",
        b"customer_id,order_id,order_ts,amount\nNULL,1,2024-01-01,1\n\\N,2,2024-01-01,1\na,3,2024-01-02,NULL\n-,4,2024-01-02,1\na,5,2024-01-03,2\n",
    );
    let out = dir.path().join("out");
    run_job(&csv, &out, &["--no-models"]);
    let rej = read_table(&partition(&out, "rejected", "2024-01-03"));
    assert_eq!(rej.i64s("source_row"), [Some(1), Some(2), Some(3)]);
    assert!(rej
        .strings("reason")
        .iter()
        .all(|r| r.as_deref() == Some("missing_value")));
    // A configured marker replaces the defaults.
    let cfg = write(dir.path(), "p.toml", b"[orders]\nnull_values = [\"-\"]\n");
    let out = dir.path().join("out2");
    run_job(
        &csv,
        &out,
        &["--no-models", "--config", cfg.to_str().unwrap()],
    );
    let f = read_table(&partition(&out, "customer_features", "2024-01-03"));
    assert_eq!(
        f.rows(),
        3,
        "NULL and \\N are ids now: {:?}",
        f.strings("customer_id")
    );
}

/// Exports that cannot be scored say what happened (file, column, an example value) and still
/// leave the rejected rows for the user to read.
#[test]
fn inputs_without_a_valid_order_explain_themselves() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let header_only = write(
        dir.path(),
        "h.csv",
        b"customer_id,order_id,order_ts,amount\n",
    );
    let (code, err) = run_code(&header_only, &out, &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("h.csv: no data rows"), "{err}");
    assert!(!err.contains("later --as-of"), "{err}");

    let empty = dir.path().join("empty.parquet");
    write_parquet(
        &empty,
        vec![
            ("customer_id", strings(&[])),
            ("order_id", strings(&[])),
            ("order_ts", strings(&[])),
            ("amount", Arc::new(Float64Array::from(Vec::<f64>::new()))),
        ],
    );
    let (code, err) = run_code(&empty, &out, &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("empty.parquet: no data rows"), "{err}");

    let mut utf16 = vec![0xff, 0xfe];
    for unit in "customer_id,order_id,order_ts,amount\na,1,2024-01-01,1\n".encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    let path = write(dir.path(), "u16.csv", &utf16);
    let (code, err) = run_code(&path, &out, &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("u16.csv") && err.contains("UTF-16"), "{err}");

    // A wrong timestamp_format: every row rejected, the reason, column and an example, and the
    // rejected rows written where the message says.
    let csv = write(
        dir.path(),
        "orders.csv",
        b"customer_id,order_id,order_ts,amount\na,1,2024-01-05,1\nb,2,2024-01-06,1\n",
    );
    let cfg = write(
        dir.path(),
        "p.toml",
        b"[orders]\ntimestamp_format = \"%d/%m/%Y\"\n",
    );
    let (code, err) = run_code(
        &csv,
        &out,
        &["--config", cfg.to_str().unwrap(), "--as-of", "2024-01-31"],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("every one of the 2 rows was rejected (2 invalid_timestamp)"),
        "{err}"
    );
    assert!(
        err.contains("column `order_ts`") && err.contains("\"2024-01-05\""),
        "{err}"
    );
    let failed = out.join(".patronage/failed/2024-01-31/rejected.parquet");
    assert!(err.contains(failed.to_str().unwrap()), "{err}");
    assert_eq!(read_table(&failed).rows(), 2);
    assert!(
        !out.join("rejected").exists(),
        "a failed run publishes nothing"
    );

    // A timestamp column of a type that cannot hold one.
    let path = dir.path().join("bool.parquet");
    write_parquet(
        &path,
        vec![
            ("customer_id", strings(&["a"])),
            ("order_id", strings(&["1"])),
            (
                "order_ts",
                Arc::new(arrow::array::BooleanArray::from(vec![true])),
            ),
            ("amount", Arc::new(Float64Array::from(vec![1.0]))),
        ],
    );
    let (code, err) = run_code(&path, &out, &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("`order_ts`") && err.contains("Boolean"),
        "{err}"
    );
}

#[test]
fn csv_dialects_blank_lines_long_records_and_gzip() {
    let dir = tempdir();
    let text = "customer_id;order_id;order_ts;amount\na;1;2024-01-01;10\n\nb;2;2024-01-02;20\r\n\r\nc;3;2024-01-03;30;oops\nd;4;2024-01-04;40\n";
    let csv = write(dir.path(), "orders.csv", text.as_bytes());
    let out = dir.path().join("out");
    run_job(&csv, &out, &["--no-models"]);
    let m = manifest(&out, "2024-01-04");
    let f = &m["inputs"]["orders"]["files"][0];
    assert_eq!(f["separator"], ";");
    assert_eq!(f["blank_lines_skipped"], 2);
    assert_eq!(f["rows_read"], 4);
    assert_eq!(f["rows_rejected"], 1);
    let rej = read_table(&partition(&out, "rejected", "2024-01-04"));
    assert_eq!(rej.strings("reason"), [Some("too_many_fields".to_string())]);
    // Record 5 after the header (blank lines count as records): line 6 of the file.
    assert_eq!(rej.i64s("source_row"), [Some(5)]);

    let gz = dir.path().join("orders.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, text.replace(';', "\t").as_bytes()).unwrap();
    fs_err::write(&gz, enc.finish().unwrap()).unwrap();
    let out = dir.path().join("out-gz");
    run_job(&gz, &out, &["--no-models"]);
    let m = manifest(&out, "2024-01-04");
    let f = &m["inputs"]["orders"]["files"][0];
    assert_eq!(f["compression"], "gzip");
    assert_eq!(f["separator"], "\t");
    assert_eq!(f["rows_accepted"], 3);
}

#[test]
fn config_errors_name_the_config_file() {
    let dir = tempdir();
    let csv = write(dir.path(), "orders.csv", SMALL_ORDERS.as_bytes());
    for body in [
        "[orders.status_values]\nshipped = \"delivered\"\n",
        "[orders]\nseparator = \";;\"\n",
        "[run]\nas_of = \"2024-02-30\"\n",
        "[run]\nholdout_days = 0\n",
    ] {
        let cfg = write(dir.path(), "nightly.toml", body.as_bytes());
        let (code, err) = run_code(
            &csv,
            &dir.path().join("out"),
            &["--config", cfg.to_str().unwrap()],
        );
        assert_eq!(code, Some(1), "{body}: {err}");
        assert!(err.contains("nightly.toml"), "{body}: {err}");
    }
}

/// A shop's own status values are explained with the mapping to paste; a status column under
/// its export name is found; unused columns are listed.
#[test]
fn statuses_and_unused_columns_are_explained() {
    let dir = tempdir();
    let csv = write(
        dir.path(),
        "orders.csv",
        b"customer_id,order_id,order_ts,amount,status\na,1,2024-01-01,10,shipped\nb,2,2024-01-02,5,void\nc,3,2024-01-03,7,completed\n",
    );
    let out = dir.path().join("out");
    let (code, err) = run_code(&csv, &out, &["--no-models"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("[orders.status_values]\nshipped = \"completed\"\nvoid = \"cancelled\""),
        "{err}"
    );

    let csv = write(
        dir.path(),
        "orders.csv",
        b"customer_id,order_id,order_ts,amount,OrderStatus,Payment State\na,1,2024-01-01,10,completed,paid\na,2,2024-01-02,5,cancelled,void\n",
    );
    let o = run_job_output(&csv, &out, &["--no-models"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("columns not used: `Payment State`"),
        "{}",
        stderr(&o)
    );
    // The as-of is the last purchase: the cancelled order of 2024-01-02 is none.
    let f = read_table(&partition(&out, "customer_features", "2024-01-01"));
    assert_eq!(
        f.i64s("frequency"),
        [Some(1)],
        "the cancelled order does not count"
    );
    let m = manifest(&out, "2024-01-01");
    let file = &m["inputs"]["orders"]["files"][0];
    assert_eq!(file["columns"]["status"], "OrderStatus");
    assert_eq!(file["unused_columns"][0], "Payment State");
}

/// A returned order nets to zero revenue; whether it counts as a purchase is a setting.
#[test]
fn returned_orders_net_to_zero() {
    let dir = tempdir();
    let csv = write(
        dir.path(),
        "orders.csv",
        b"customer_id,order_id,order_ts,amount,status\na,1,2024-01-01,100,completed\na,2,2024-01-05,40,returned\nb,3,2024-01-06,25,returned\n",
    );
    let out = dir.path().join("out");
    run_job(&csv, &out, &["--no-models", "--as-of", "2024-01-31"]);
    let f = read_table(&partition(&out, "customer_features", "2024-01-31"));
    let i = f.by_customer();
    assert_eq!(f.i64s("frequency")[i["a"]], Some(1));
    assert_eq!(f.f64s("net_revenue")[i["a"]], Some(100.0));
    assert_eq!(f.f64s("net_revenue")[i["b"]], Some(0.0));
    let s = read_table(&partition(&out, "segments", "2024-01-31"));
    let si = s.by_customer();
    assert_eq!(
        s.strings("rfm_segment")[si["b"]].as_deref(),
        Some("no_purchase")
    );
    assert_eq!(s.i64s("r_score")[si["b"]], None);

    let cfg = write(
        dir.path(),
        "p.toml",
        b"[orders]\nreturned_counts_as_purchase = true\n",
    );
    let out = dir.path().join("out2");
    run_job(
        &csv,
        &out,
        &[
            "--no-models",
            "--as-of",
            "2024-01-31",
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    let f = read_table(&partition(&out, "customer_features", "2024-01-31"));
    let i = f.by_customer();
    assert_eq!(f.i64s("frequency")[i["a"]], Some(2));
    assert_eq!(f.f64s("monetary")[i["a"]], Some(140.0));
    assert_eq!(f.f64s("refunds")[i["a"]], Some(40.0));
    assert_eq!(f.f64s("net_revenue")[i["a"]], Some(100.0));
    assert_eq!(f.f64s("net_revenue")[i["b"]], Some(0.0));
}

#[test]
fn flags_and_dates_that_do_not_make_sense_get_clear_messages() {
    let dir = tempdir();
    let csv = write(dir.path(), "orders.csv", SMALL_ORDERS.as_bytes());
    let out = dir.path().join("out");
    let (code, err) = run_code(&csv, &out, &["--no-models", "--as-of", "2099-01-01"]);
    assert_eq!(code, Some(0));
    assert!(
        err.contains("warning: the as-of date 2099-01-01 is in the future"),
        "{err}"
    );
    let (code, err) = run_code(&csv, &out, &["--holdout-days", "800"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--holdout-days 800") && err.contains("use at most"),
        "{err}"
    );
    let (code, _) = run_code(&csv, &out, &["--holdout-days", "0"]);
    assert_eq!(code, Some(2));
    let (code, _) = run_code(&csv, &out, &["--as-of", "2024-13-01"]);
    assert_eq!(code, Some(2));
    let o = patronage(&["run", "--orders", csv.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "missing --out: {}", stderr(&o));
}

#[test]
fn manifest_version_is_the_binary_version() {
    let dir = tempdir();
    let csv = write(dir.path(), "orders.csv", SMALL_ORDERS.as_bytes());
    let out = dir.path().join("out");
    run_job(&csv, &out, &["--no-models"]);
    let version = patronage_ok(&["--version"]);
    let m = manifest(&out, "2024-06-10");
    let recorded = m["engine"]["version"].as_str().unwrap();
    assert_eq!(version.trim(), format!("patronage {recorded}"));
}

/// A small shop whose customers all drop out with the same probability (300 customers, 780
/// orders, as in the report): BG/NBD's a and b run off to infinity. The limit is detected,
/// reported and scored; every number is finite and means what its column says.
#[test]
fn homogeneous_dropout_shop_is_scored_with_the_limit() {
    let dir = tempdir();
    let csv = write(
        dir.path(),
        "orders.csv",
        homogeneous_dropout_shop(1).as_bytes(),
    );
    let out = dir.path().join("out");
    run_job(&csv, &out, &["--as-of", "2024-12-31"]);
    let m = manifest(&out, "2024-12-31");
    let bg = &m["models"]["bgnbd"];
    assert_eq!(bg["converged"], true);
    assert!(
        bg["boundary"]
            .as_str()
            .unwrap()
            .starts_with("homogeneous_dropout"),
        "{bg}"
    );
    let p = bg["params"]["p"].as_f64().unwrap();
    assert!(
        (0.25..0.45).contains(&p),
        "dropout probability {p} (simulated 0.35)"
    );
    let scores = read_table(&partition(&out, "churn_scores", "2024-12-31"));
    for c in [
        "p_alive",
        "p_purchase",
        "expected_purchases",
        "expected_spend",
        "clv",
    ] {
        assert!(
            scores
                .f64s(c)
                .iter()
                .flatten()
                .all(|v| v.is_finite() && *v >= 0.0),
            "{c}"
        );
    }
    let tiers = read_table(&partition(&out, "segments", "2024-12-31")).strings("value_tier");
    assert!(tiers.iter().any(|t| t.as_deref() == Some("top")));
}

/// 300 customers with Gamma-distributed purchase rates (mean 0.02/day) who drop out with
/// probability 0.35 after each repeat purchase, over 2024 (xorshift64*, seeded).
fn homogeneous_dropout_shop(seed: u64) -> String {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    let mut uniform = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64) / (1u64 << 53) as f64
    };
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let mut csv = String::from("customer_id,order_id,order_ts,amount\n");
    let mut order = 0;
    for c in 0..300 {
        let rate = -uniform().ln() * 0.02;
        let first = (uniform() * 300.0) as i64;
        let spend = 20.0 + uniform() * 30.0;
        let mut emit = |day: i64, u: f64| {
            order += 1;
            let date = start + chrono::Duration::days(day);
            csv.push_str(&format!(
                "c{c},o{order},{date},{:.2}\n",
                spend * (0.8 + 0.4 * u)
            ));
        };
        emit(first, uniform());
        let mut t = first as f64;
        loop {
            t += -uniform().ln() / rate;
            if t > 364.0 {
                break;
            }
            emit(t as i64, uniform());
            if uniform() < 0.35 {
                break;
            }
        }
    }
    csv
}

/// The generator's typed Parquet (Int64 ids, a timestamp, Float64 amounts; malformed cells are
/// nulls) and its all-text Parquet are the same shop: the typed path of ingest (integer ids,
/// typed timestamps and amounts) must give every customer the same features, and reject the
/// same rows (as missing values instead of unparsable text).
#[test]
fn typed_and_text_parquet_of_one_shop_give_the_same_features() {
    let dir = tempdir();
    let mut tables = Vec::new();
    let mut rejected = Vec::new();
    for format in ["parquet", "parquet-typed"] {
        let data = dir.path().join(format);
        generate(&data, 3000, &["--seed", "11", "--format", format]);
        let out = dir.path().join(format!("out-{format}"));
        // The clicks and profiles name customers as the orders do (integers beside typed orders);
        // the clickstream is Parquet too (its timestamp typed beside typed orders).
        let (clicks, customers) = (data.join("clicks.parquet"), data.join("customers.csv"));
        run_job(
            &data.join("orders.parquet"),
            &out,
            &[
                "--as-of",
                "2024-12-31",
                "--no-models",
                "--no-clusters",
                "--clicks",
                clicks.to_str().unwrap(),
                "--customers",
                customers.to_str().unwrap(),
            ],
        );
        tables.push(read_table(&partition(
            &out,
            "customer_features",
            "2024-12-31",
        )));
        rejected.push(manifest(&out, "2024-12-31")["inputs"]["orders"]["rows_rejected"].clone());
    }
    let (text, typed) = (&tables[0], &tables[1]);
    assert_eq!(rejected[0], rejected[1]);
    assert!(
        rejected[0].as_i64().unwrap() > 0,
        "the generator writes malformed rows"
    );
    assert_eq!(text.rows(), typed.rows());
    let typed_at = typed.by_customer();
    let text_ids = text.strings("customer_id");
    let columns = [
        "monetary",
        "refunds",
        "aov",
        "btyd_m",
        "mean_discount_rate",
        "bounce_rate",
        "points_balance",
        "switching_cost_index",
    ];
    for (i, id) in text_ids.iter().enumerate() {
        // `C00000042` in text is the integer id 42.
        let id = id.as_deref().unwrap();
        // Prospects (`P…`, profiles without an order) keep their text id on both sides.
        let j = match id.strip_prefix('C') {
            Some(digits) => typed_at[&digits.parse::<i64>().unwrap().to_string()],
            None => typed_at[id],
        };
        for c in [
            "frequency",
            "purchase_days",
            "recency_days",
            "btyd_x",
            "btyd_T",
            "sessions",
            "product_views",
            "visits_since_last_order",
            "membership_tier_rank",
        ] {
            assert_eq!(text.i64s(c)[i], typed.i64s(c)[j], "{c} of {id}");
        }
        for c in columns {
            assert_eq!(text.f64s(c)[i], typed.f64s(c)[j], "{c} of {id}");
        }
    }
    let engaged = typed
        .i64s("sessions")
        .iter()
        .filter(|v| v.is_some())
        .count();
    assert!(
        engaged * 2 > typed.rows(),
        "{engaged} customers with clicks"
    );
}

/// The generator's rate and dropout flags mean what they say: BG/NBD fitted on the shop they
/// make recovers the simulated mean purchase rate and dropout probability.
#[test]
fn generated_purchase_rate_and_dropout_are_recovered_by_the_fit() {
    let dir = tempdir();
    let shop = dir.path().join("shop");
    generate(
        &shop,
        6000,
        &[
            "--format",
            "parquet-typed",
            "--purchase-rate",
            "12",
            "--dropout",
            "0.1",
        ],
    );
    let out = dir.path().join("out");
    run_job(
        &shop.join("orders.parquet"),
        &out,
        &["--as-of", "2024-12-31", "--no-clusters"],
    );
    let m = manifest(&out, "2024-12-31");
    let param = |k: &str| m["models"]["bgnbd"]["params"][k].as_f64().unwrap();
    let (r, alpha, a, b) = (param("r"), param("alpha"), param("a"), param("b"));
    let rate = r / alpha * 365.0;
    let dropout = a / (a + b);
    assert!(
        (9.0..15.0).contains(&rate),
        "purchases per year {rate} (simulated 12)"
    );
    assert!(
        (0.07..0.13).contains(&dropout),
        "dropout {dropout} (simulated 0.1)"
    );
}

/// A young shop (the bundled sample three months in): its BG/NBD fit has a + b < 1, so the
/// expectation's ₂F₁ is negative for one-time buyers with a short history. Every buyer is
/// still scored, with finite numbers (it used to fail the models with NaN expectations).
#[test]
fn a_young_shops_fit_scores_every_buyer() {
    let (_dir, out) = run_sample("orders.csv", &["--as-of", "2024-03-31", "--no-clusters"]);
    let m = manifest(&out, "2024-03-31");
    assert_eq!(m["status"], "ok", "{}", m["models"]["failures"]);
    assert!(
        m["models"]["bgnbd"]["params"]["a"].as_f64().unwrap()
            + m["models"]["bgnbd"]["params"]["b"].as_f64().unwrap()
            < 1.0
    );
    let scores = read_table(&partition(&out, "churn_scores", "2024-03-31"));
    let buyers = scores
        .f64s("p_alive")
        .iter()
        .filter(|v| v.is_some())
        .count();
    assert!(buyers > 100);
    for column in ["expected_purchases", "clv"] {
        let values = scores.f64s(column);
        assert_eq!(
            values.iter().filter(|v| v.is_some()).count(),
            buyers,
            "{column}"
        );
        assert!(
            values.iter().flatten().all(|v| v.is_finite() && *v >= 0.0),
            "{column}"
        );
    }
}

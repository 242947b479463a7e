//! Same inputs and as-of give byte-identical tables; so does any shuffle of the input rows.

use proptest::prelude::*;

use crate::common::*;

const TABLES: &[&str] = &[
    "customer_features",
    "churn_scores",
    "segments",
    "segment_summary",
    "cluster_profiles",
    "loyalty_stages",
    "rejected",
];

/// Runs on `orders_csv` written to a fixed file name inside `dir`, output to a fresh directory.
fn run_bytes(dir: &std::path::Path, orders_csv: &str, as_of: &str) -> Vec<Vec<u8>> {
    run_bytes_with(dir, orders_csv, as_of, &[]).0
}

/// [`run_bytes`] with more flags; also returns the run's manifest.
fn run_bytes_with(
    dir: &std::path::Path,
    orders_csv: &str,
    as_of: &str,
    extra: &[&str],
) -> (Vec<Vec<u8>>, serde_json::Value) {
    let orders = write(dir, "orders.csv", orders_csv.as_bytes());
    let out = tempdir();
    let out = out.path();
    let mut args = vec!["--as-of", as_of];
    args.extend_from_slice(extra);
    run_job(&orders, out, &args);
    let tables = TABLES
        .iter()
        .map(|t| fs_err::read(partition(out, t, as_of)).unwrap())
        .collect();
    (tables, manifest(out, as_of))
}

/// A generated shop with dirt (duplicates, conflicts, bad rows), as text lines.
fn generated_lines() -> (String, Vec<String>) {
    let dir = tempdir();
    generate(
        dir.path(),
        150,
        &["--seed", "11", "--malformed-share", "0.02"],
    );
    let text = fs_err::read_to_string(dir.path().join("orders.csv")).unwrap();
    let mut lines = text.lines().map(str::to_string);
    let header = lines.next().unwrap();
    (header, lines.collect())
}

#[test]
fn two_runs_give_identical_tables() {
    let (header, lines) = generated_lines();
    let csv = format!("{header}\n{}\n", lines.join("\n"));
    let dir = tempdir();
    let first = run_bytes(dir.path(), &csv, "2024-12-31");
    let second = run_bytes(dir.path(), &csv, "2024-12-31");
    for (table, (a, b)) in TABLES.iter().zip(first.iter().zip(&second)) {
        assert!(a == b, "{table} differs between two identical runs");
    }
}

/// A memory budget that forces the orders to be read in many passes changes no byte of any
/// table (the passes split orders by `order_id`, never an order's lines); the same budget over
/// an input in `order_id` order reads it in one streaming pass, with the same tables. (An input
/// whose orders are only together streams too: see the ingest tests.)
#[test]
fn orders_read_in_passes_give_identical_tables() {
    let (header, lines) = generated_lines();
    let in_order = format!("{header}\n{}\n", lines.join("\n"));
    // Reversed, and the first line's order once more at the end (a copy of that line): an
    // order whose lines come apart, so the budget's passes are read.
    let mut reversed: Vec<&str> = lines.iter().rev().map(String::as_str).collect();
    reversed.push(reversed[0]);
    let csv = format!("{header}\n{}\n", reversed.join("\n"));
    let dir = tempdir();
    let one = run_bytes(dir.path(), &csv, "2024-12-31");
    // One partition (the budget alone would partition the customers too): passes only.
    let budget = ["--memory-budget", "2KiB", "--partitions", "1"];
    let (many, m) = run_bytes_with(dir.path(), &csv, "2024-12-31", &budget);
    let passes = m["inputs"]["orders"]["read_passes"].as_u64().unwrap();
    assert!(passes > 5, "{passes} passes");
    // Passes hold their lines and sort them; only one pass streams.
    assert_eq!(m["inputs"]["orders"]["read_in_order"], false);
    for (table, (a, b)) in TABLES.iter().zip(one.iter().zip(&many)) {
        assert!(a == b, "{table} differs when the orders are read in passes");
    }
    // (The rejected rows name their row of the file read: compared with the same file's.)
    let whole = run_bytes(dir.path(), &in_order, "2024-12-31");
    let (streamed, m) = run_bytes_with(dir.path(), &in_order, "2024-12-31", &budget);
    assert_eq!(m["inputs"]["orders"]["read_passes"], 1);
    assert_eq!(m["inputs"]["orders"]["read_in_order"], true);
    for (table, (a, b)) in TABLES.iter().zip(whole.iter().zip(&streamed)) {
        assert!(
            a == b,
            "{table} differs when the orders stream under a budget"
        );
    }
}

/// The number of worker threads changes no table, and one thread is enough: the job runs on
/// polars' pool, and with several order files the next file is read ahead while one is parsed
/// (with a single worker that read must not wait for the worker that waits for it).
#[test]
fn thread_counts_change_no_table() {
    let (header, lines) = generated_lines();
    let dir = tempdir();
    let third = lines.len().div_ceil(3);
    for (k, part) in lines.chunks(third).enumerate() {
        let csv = format!("{header}\n{}\n", part.join("\n"));
        write(dir.path(), &format!("part-{k}.csv"), csv.as_bytes());
    }
    let glob = dir.path().join("part-*.csv");
    let run = |threads: &str| -> Vec<Vec<u8>> {
        let out = tempdir();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_patronage"))
            .args(["run", "-q", "--orders", glob.to_str().unwrap(), "--out"])
            .arg(out.path())
            .args(["--as-of", "2024-12-31"])
            .env("POLARS_MAX_THREADS", threads)
            .env("RAYON_NUM_THREADS", threads)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the patronage binary runs");
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > std::time::Duration::from_secs(300) {
                let _ = child.kill();
                panic!("a run on {threads} thread(s) hung");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert!(status.success(), "a run on {threads} thread(s) failed");
        let m = manifest(out.path(), "2024-12-31");
        assert_eq!(
            m["inputs"]["orders"]["files"].as_array().map(Vec::len),
            Some(3)
        );
        TABLES
            .iter()
            .map(|t| fs_err::read(partition(out.path(), t, "2024-12-31")).unwrap())
            .collect()
    };
    let one = run("1");
    for threads in ["2", "3"] {
        let many = run(threads);
        for (table, (a, b)) in TABLES.iter().zip(one.iter().zip(&many)) {
            assert!(a == b, "{table} differs between 1 and {threads} threads");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn shuffling_input_rows_changes_no_table(perm in Just((0..400usize).collect::<Vec<_>>()).prop_shuffle()) {
        let (header, lines) = generated_lines();
        let lines: Vec<String> = lines.into_iter().take(400).collect();
        let original = format!("{header}\n{}\n", lines.join("\n"));
        let shuffled: Vec<&str> = perm.iter().filter(|i| **i < lines.len()).map(|i| lines[*i].as_str()).collect();
        let shuffled = format!("{header}\n{}\n", shuffled.join("\n"));
        let dir = tempdir();
        let a = run_bytes(dir.path(), &original, "2024-12-31");
        let b = run_bytes(dir.path(), &shuffled, "2024-12-31");
        // The rejected table names row numbers, which a shuffle moves; every other table must
        // be byte-identical.
        for (table, (x, y)) in TABLES.iter().zip(a.iter().zip(&b)).take(6) {
            prop_assert!(x == y, "{} changed when the input rows were shuffled", table);
        }
    }
}

//! `--format delta`: every table a Delta Lake table, the same rows as the Parquet layout, one
//! commit per table per run, reruns replacing their partition, kills completed by the next run.
//! (scripts/delta-readers.sh checks the same tables with delta-rs, DuckDB and polars.)

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use patronage_engine::TABLES;

use crate::common::*;

const AS_OF: &str = "2024-12-30";

/// A table's partition, its live files stacked (either layout).
fn read(out: &Path, table: &str, as_of: &str) -> Option<RecordBatch> {
    let files = patronage_output::partition_files(out, table, as_of).unwrap()?;
    let tables: Vec<Table> = files.iter().map(|f| read_table(f)).collect();
    let schema = tables[0].schema.clone();
    let batches: Vec<RecordBatch> = tables.into_iter().map(|t| t.batch).collect();
    Some(arrow::compute::concat_batches(&schema, &batches).unwrap())
}

/// The commits in a table's log, in order, each as its actions.
fn log(out: &Path, table: &str) -> Vec<Vec<serde_json::Value>> {
    let dir = out.join(table).join("_delta_log");
    let mut names: Vec<PathBuf> = fs_err::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            fs_err::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .collect()
}

fn count(actions: &[serde_json::Value], kind: &str) -> usize {
    actions.iter().filter(|a| a.get(kind).is_some()).count()
}

fn data_files(out: &Path, table: &str, as_of: &str) -> usize {
    fs_err::read_dir(out.join(table).join(format!("run_date={as_of}")))
        .unwrap()
        .count()
}

#[test]
fn delta_tables_hold_the_parquet_layouts_rows_and_reruns_replace_their_partition() {
    let dir = tempdir();
    let (parquet, delta) = (dir.path().join("parquet"), dir.path().join("delta"));
    for (as_of, extra) in [
        (AS_OF, None),
        (AS_OF, Some("--report")),
        ("2024-09-30", None),
    ] {
        let mut flags = vec!["--as-of", as_of, "--holdout-days", "90"];
        flags.extend(extra);
        run_full_sample(&parquet, &flags);
        flags.extend(["--format", "delta"]);
        run_full_sample(&delta, &flags);
    }
    assert_eq!(manifest(&delta, AS_OF)["format"], "delta");
    assert_eq!(manifest(&parquet, AS_OF)["format"], "parquet");
    for table in TABLES {
        assert!(delta.join(table).is_dir(), "{table}");
        for as_of in [AS_OF, "2024-09-30"] {
            let expected = read(&parquet, table, as_of);
            let got = read(&delta, table, as_of);
            assert_eq!(got, expected, "{table} as of {as_of}");
        }
        // Three runs, three commits: the first creates the table, the rerun of the as-of
        // removes its file and adds the new one, the other as-of adds its own.
        let commits = log(&delta, table);
        assert_eq!(commits.len(), 3, "{table}");
        assert_eq!(count(&commits[0], "protocol"), 1, "{table}");
        assert_eq!(count(&commits[0], "metaData"), 1, "{table}");
        assert_eq!(
            [
                count(&commits[1], "remove"),
                count(&commits[1], "add"),
                count(&commits[1], "metaData")
            ],
            [1, 1, 0],
            "{table}: the rerun's commit"
        );
        assert_eq!(count(&commits[2], "remove"), 0, "{table}");
        // The replaced file stays on disk for time travel until a VACUUM.
        assert_eq!(data_files(&delta, table, AS_OF), 2, "{table}");
        // Each column's description is in the table's schema (Delta's `comment`).
        let meta = commits[0].iter().find_map(|a| a.get("metaData")).unwrap();
        let schema: serde_json::Value =
            serde_json::from_str(meta["schemaString"].as_str().unwrap()).unwrap();
        assert_eq!(meta["partitionColumns"], serde_json::json!(["run_date"]));
        for field in schema["fields"].as_array().unwrap() {
            assert!(
                field["metadata"]["comment"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty()),
                "{table}.{}: no description",
                field["name"]
            );
        }
    }
    // The report reads the live files only.
    let report =
        fs_err::read_to_string(delta.join("reports").join(format!("{AS_OF}.html"))).unwrap();
    let twin =
        fs_err::read_to_string(parquet.join("reports").join(format!("{AS_OF}.html"))).unwrap();
    assert_eq!(report, twin);
}

#[test]
fn a_layout_is_never_mixed_and_foreign_delta_features_are_refused() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let orders = write(dir.path(), "orders.csv", SMALL_ORDERS.as_bytes());
    let flags = ["--as-of", "2024-06-30", "--no-models"];
    run_job(
        &orders,
        &out,
        &[&flags[..], &["--format", "delta"]].concat(),
    );
    let o = run_job_output(&orders, &out, &flags);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("is a Delta table") && err.contains("--format delta"),
        "{err}"
    );

    let hive = dir.path().join("hive");
    run_job(&orders, &hive, &flags);
    let o = run_job_output(
        &orders,
        &hive,
        &[&flags[..], &["--format", "delta"]].concat(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("holds Parquet partitions"), "{err}");

    // A writer moved the table to a protocol we do not write (say, deletion vectors).
    let table = out.join("segments").join("_delta_log");
    fs_err::write(
        table.join("00000000000000000001.json"),
        "{\"protocol\":{\"minReaderVersion\":3,\"minWriterVersion\":7}}\n",
    )
    .unwrap();
    let o = run_job_output(
        &orders,
        &out,
        &[&flags[..], &["--format", "delta"]].concat(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("segments") && err.contains("writer version 7"),
        "{err}"
    );
    // Nothing was published: the other tables kept their one commit.
    assert_eq!(log(&out, "customer_features").len(), 1);
}

#[test]
fn a_killed_delta_publish_is_completed_by_the_next_run_with_one_commit_per_table() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let orders = write(dir.path(), "orders.csv", SMALL_ORDERS.as_bytes());
    let flags = ["--as-of", "2024-06-30", "--format", "delta", "--no-models"];
    run_job(&orders, &out, &flags);
    let tables: Vec<&str> = TABLES
        .iter()
        .copied()
        .filter(|t| out.join(t).join("_delta_log").exists())
        .collect();
    assert!(tables.len() >= 4, "{tables:?}");
    let killed = std::process::Command::new(env!("CARGO_BIN_EXE_patronage"))
        .args(["run", "-q", "--orders"])
        .arg(&orders)
        .arg("--out")
        .arg(&out)
        .args(flags)
        .env("PATRONAGE_FAIL_AT", "swap:segments")
        .output()
        .unwrap();
    assert_eq!(killed.status.code(), None, "the run was killed");
    let before: Vec<usize> = tables.iter().map(|t| log(&out, t).len()).collect();
    assert!(
        before.contains(&1) && before.contains(&2),
        "some tables committed, some not: {before:?}"
    );
    let next = run_job_output(
        &orders,
        &out,
        &["--as-of", "2024-05-31", "--format", "delta", "--no-models"],
    );
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    assert!(String::from_utf8_lossy(&next.stderr).contains("completed the publish"));
    for table in &tables {
        let commits = log(&out, table);
        // First run, the killed run's (completed), the next run's: never twice.
        assert_eq!(commits.len(), 3, "{table}");
        let runs: Vec<&str> = commits
            .iter()
            .map(|c| {
                c.iter()
                    .find_map(|a| a["commitInfo"]["patronageRun"].as_str())
                    .unwrap()
            })
            .collect();
        assert!(
            runs[0] != runs[1] && runs[1] != runs[2],
            "{table}: {runs:?}"
        );
        let live = patronage_output::partition_files(&out, table, "2024-06-30").unwrap();
        if *table != "rejected" {
            assert_eq!(live.map(|f| f.len()), Some(1), "{table}");
        }
    }
}

#[test]
fn a_partitioned_delta_run_commits_every_part_at_once() {
    let dir = tempdir();
    let (one, three) = (dir.path().join("one"), dir.path().join("three"));
    run_full_sample(&one, &["--as-of", AS_OF, "--format", "delta"]);
    run_full_sample(
        &three,
        &["--as-of", AS_OF, "--format", "delta", "--partitions", "3"],
    );
    let commits = log(&three, "segments");
    assert_eq!(commits.len(), 1);
    assert_eq!(count(&commits[0], "add"), 3);
    let sorted = |out: &Path| {
        let t = read(out, "churn_scores", AS_OF).unwrap();
        let t = Table {
            schema: t.schema(),
            batch: t,
        };
        let mut rows: Vec<(String, String)> = t
            .strings("customer_id")
            .into_iter()
            .zip(t.f64s("p_alive"))
            .map(|(c, p)| (c.unwrap(), format!("{p:?}")))
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(sorted(&three), sorted(&one));
}

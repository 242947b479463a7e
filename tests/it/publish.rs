//! Publishing is a commit: a run killed at any point of it leaves every table readable (old or
//! new partition, never missing, never doubled, nothing temporary in a table glob), and the next
//! run completes it; a failed swap rolls back; two runs never write one OUT at once.

use std::path::{Path, PathBuf};

use crate::common::*;

const AS_OF: &str = "2024-06-30";
const TABLES: &[&str] = &[
    "customer_features",
    "segments",
    "segment_summary",
    "loyalty_stages",
    "rejected",
];

/// Every file `read_parquet('OUT/*/*/*.parquet')` (DuckDB's glob also matches dot names) and
/// `OUT/<table>/*/*.parquet` would read.
fn glob_depth_3(out: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let dirs = |p: &Path| -> Vec<PathBuf> {
        fs_err::read_dir(p)
            .map(|d| {
                d.map(|e| e.unwrap().path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    for a in dirs(out) {
        for b in dirs(&a) {
            for f in fs_err::read_dir(&b).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|e| e == "parquet") {
                    found.push(f);
                }
            }
        }
    }
    found.sort();
    found
}

fn orders(dir: &Path, rows: usize) -> PathBuf {
    let text: String = SMALL_ORDERS
        .lines()
        .take(rows + 1)
        .map(|l| format!("{l}\n"))
        .collect();
    write(dir, &format!("orders-{rows}.csv"), text.as_bytes())
}

fn customers(out: &Path) -> usize {
    read_table(&partition(out, "customer_features", AS_OF)).rows()
}

#[test]
fn a_publish_killed_at_any_point_is_completed_by_the_next_run() {
    for point in [
        "journal",
        "swap:customer_features",
        "swap:segments",
        "swap:rejected",
        "manifest",
    ] {
        let dir = tempdir();
        let out = dir.path().join("out");
        let (old, new) = (orders(dir.path(), 5), orders(dir.path(), 13));
        run_job(&old, &out, &["--as-of", AS_OF, "--no-models"]);
        assert_eq!(customers(&out), 2);

        let killed = std::process::Command::new(env!("CARGO_BIN_EXE_patronage"))
            .args(["run", "-q", "--no-models", "--as-of", AS_OF, "--orders"])
            .arg(&new)
            .arg("--out")
            .arg(&out)
            .env("PATRONAGE_FAIL_AT", point)
            .output()
            .unwrap();
        assert_eq!(killed.status.code(), None, "{point}: the run was killed");
        // Every table readable, one partition each, nothing temporary in the glob.
        let files = glob_depth_3(&out);
        assert_eq!(files.len(), TABLES.len(), "{point}: {files:?}");
        for table in TABLES {
            let t = read_table(&partition(&out, table, AS_OF));
            assert!(t.rows() > 0 || *table == "rejected", "{point}: {table}");
        }

        // The next run (another as-of, even) completes the interrupted publish first.
        let next = run_job_output(&old, &out, &["--as-of", "2024-06-29", "--no-models"]);
        assert!(next.status.success(), "{point}");
        let err = String::from_utf8_lossy(&next.stderr);
        assert!(
            err.contains("completed the publish of run date 2024-06-30"),
            "{point}: {err}"
        );
        assert_eq!(
            customers(&out),
            6,
            "{point}: the killed run's tables are published"
        );
        let m = manifest(&out, AS_OF);
        assert_eq!(m["customers"], 6, "{point}");
        assert!(!out.join(".patronage/journal.json").exists());
        assert_eq!(
            fs_err::read_dir(out.join(".patronage/staging"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(glob_depth_3(&out).len(), 2 * TABLES.len(), "{point}");
    }
}

#[test]
fn a_failed_swap_rolls_back_and_leaves_the_previous_run() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let (old, new) = (orders(dir.path(), 5), orders(dir.path(), 13));
    run_job(&old, &out, &["--as-of", AS_OF, "--no-models"]);
    let before = fs_err::read(partition(&out, "customer_features", AS_OF)).unwrap();
    // `segments` can no longer be swapped (root ignores permissions, so a file stands in for a
    // read-only directory).
    fs_err::remove_dir_all(out.join("segments")).unwrap();
    fs_err::write(out.join("segments"), b"in the way").unwrap();
    let o = run_job_output(&new, &out, &["--as-of", AS_OF, "--no-models"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot publish table `segments`") && err.contains("rolled back"),
        "{err}"
    );
    assert_eq!(
        fs_err::read(partition(&out, "customer_features", AS_OF)).unwrap(),
        before,
        "customer_features is the previous run's again"
    );
    assert_eq!(manifest(&out, AS_OF)["customers"], 2);
    assert!(!out.join(".patronage/journal.json").exists());
}

#[test]
fn a_second_run_on_the_same_out_stops_with_exit_5() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let csv = orders(dir.path(), 13);
    run_job(&csv, &out, &["--no-models"]);
    // Hold the lock as a running job would.
    let lock = fs_err::File::open(out.join(".patronage/lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let o = run_job_output(&csv, &out, &["--no-models"]);
    assert_eq!(o.status.code(), Some(5));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("another patronage run is writing here"),
        "{err}"
    );
    drop(lock);
    run_job(&csv, &out, &["--no-models"]);
}

/// Leftovers of an older version's interrupted publish are cleaned up, not read twice.
#[test]
fn leftovers_of_older_versions_are_removed() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let csv = orders(dir.path(), 13);
    run_job(&csv, &out, &["--no-models"]);
    let replaced = out
        .join("segments")
        .join(".replaced-run_date=2024-06-10-123");
    fs_err::create_dir_all(&replaced).unwrap();
    fs_err::copy(
        partition(&out, "segments", "2024-06-10"),
        replaced.join("part-0.parquet"),
    )
    .unwrap();
    fs_err::create_dir_all(out.join(".staging-2024-06-10-99/segments")).unwrap();
    let o = run_job_output(&csv, &out, &["--no-models"]);
    assert!(o.status.success());
    assert!(!replaced.exists());
    assert!(!out.join(".staging-2024-06-10-99").exists());
    assert_eq!(glob_depth_3(&out).len(), TABLES.len());
}

//! Helpers: run the binary, read tables with arrow-rs, small CSV fixtures.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Float64Type, Int64Type, SchemaRef,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The checkout under test: cargo's run-time `CARGO_MANIFEST_DIR` first (a test binary reused
/// from a shared target directory may have been built from another checkout's path).
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Writes `columns` as one Parquet file (row groups of `row_group_rows` when given).
pub fn write_parquet_groups(
    path: &Path,
    columns: Vec<(&str, ArrayRef)>,
    row_group_rows: Option<usize>,
) {
    let batch = RecordBatch::try_from_iter(columns.into_iter().map(|(n, a)| (n.to_string(), a)))
        .expect("batch");
    let file = fs_err::File::create(path).unwrap().into_parts().0;
    let props = row_group_rows.map(|n| {
        parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(n))
            .build()
    });
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), props).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

/// Writes `columns` as one Parquet file.
pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    write_parquet_groups(path, columns, None);
}

pub fn patronage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patronage"))
        .args(args)
        .output()
        .expect("the patronage binary runs")
}

/// Runs and asserts success; returns stdout.
pub fn patronage_ok(args: &[&str]) -> String {
    let out = patronage(args);
    assert!(
        out.status.success(),
        "patronage {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// `patronage generate --customers N --out OUT EXTRA...` (asserting success); returns stdout.
pub fn generate(out: &Path, customers: usize, extra: &[&str]) -> String {
    let customers = customers.to_string();
    let mut args = vec![
        "generate",
        "--customers",
        customers.as_str(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    patronage_ok(&args)
}

/// `patronage run -q --orders ORDERS --out OUT EXTRA...`; returns the process output.
pub fn run_job_output(orders: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "-q",
        "--orders",
        orders.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    patronage(&args)
}

/// `patronage run` on a bundled file (`data-samples/<sample>`) into a fresh directory's `out`:
/// the directory (removed when dropped) and OUT.
pub fn run_sample(sample: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    let out = dir.path().join("out");
    run_job(&repo().join("data-samples").join(sample), &out, extra);
    (dir, out)
}

/// `patronage run -q` on the whole bundled sample (orders, profiles, clicks) into OUT, with
/// `extra` flags; returns stdout.
pub fn run_full_sample(out: &Path, extra: &[&str]) -> String {
    let data = repo().join("data-samples");
    let path = |f: &str| data.join(f).to_str().unwrap().to_string();
    let (orders, customers, clicks) = (
        path("orders.csv"),
        path("customers.csv"),
        path("clicks.csv"),
    );
    let mut args = vec![
        "run",
        "-q",
        "--orders",
        &orders,
        "--customers",
        &customers,
        "--clicks",
        &clicks,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    patronage_ok(&args)
}

/// `patronage run -q` on ORDERS into OUT as of AS_OF without clusters and loyalty stages, with a
/// config holding `toml` (written beside OUT) and `extra` flags, asserting success; returns the
/// manifest's `models` section.
pub fn run_models(
    orders: &Path,
    out: &Path,
    toml: &str,
    as_of: &str,
    extra: &[&str],
) -> serde_json::Value {
    let config = out.with_extension("toml");
    fs_err::write(&config, toml).expect("write the config");
    let mut flags = vec![
        "--as-of",
        as_of,
        "--no-clusters",
        "--no-loyalty",
        "--config",
        config.to_str().unwrap(),
    ];
    flags.extend_from_slice(extra);
    run_job(orders, out, &flags);
    manifest(out, as_of)["models"].clone()
}

/// Like [`run_job_output`], asserting success; returns stdout.
pub fn run_job(orders: &Path, out: &Path, extra: &[&str]) -> String {
    let o = run_job_output(orders, out, extra);
    assert!(
        o.status.success(),
        "run on {} failed: {}",
        orders.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

pub fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs_err::write(&p, content).expect("write fixture");
    p
}

pub fn partition(out: &Path, table: &str, as_of: &str) -> PathBuf {
    out.join(table)
        .join(format!("run_date={as_of}"))
        .join("part-0.parquet")
}

pub struct Table {
    pub schema: SchemaRef,
    pub batch: RecordBatch,
}

pub fn read_table(path: &Path) -> Table {
    let file = fs_err::File::open(path)
        .expect("table file exists")
        .into_parts()
        .0;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("valid parquet");
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect();
    let batch = concat_batches(&schema, &batches).expect("concat");
    Table { schema, batch }
}

impl Table {
    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    fn col(&self, name: &str) -> &ArrayRef {
        self.batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("column {name} missing"))
    }

    pub fn dtype(&self, name: &str) -> DataType {
        self.col(name).data_type().clone()
    }

    pub fn strings(&self, name: &str) -> Vec<Option<String>> {
        let a = cast(self.col(name), &DataType::Utf8).expect("cast to utf8");
        let a = a.as_string::<i32>();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
            .collect()
    }

    /// Values of a primitive column (nulls as `None`).
    fn primitive<T: ArrowPrimitiveType>(&self, name: &str) -> Vec<Option<T::Native>> {
        self.col(name).as_primitive::<T>().iter().collect()
    }

    pub fn i64s(&self, name: &str) -> Vec<Option<i64>> {
        self.primitive::<Int64Type>(name)
    }

    pub fn f64s(&self, name: &str) -> Vec<Option<f64>> {
        self.primitive::<Float64Type>(name)
    }

    pub fn bools(&self, name: &str) -> Vec<Option<bool>> {
        self.col(name).as_boolean().iter().collect()
    }

    pub fn dates(&self, name: &str) -> Vec<Option<i32>> {
        self.primitive::<Date32Type>(name)
    }

    /// Row index by `customer_id`.
    pub fn by_customer(&self) -> HashMap<String, usize> {
        self.strings("customer_id")
            .into_iter()
            .enumerate()
            .map(|(i, c)| (c.expect("customer_id is never null"), i))
            .collect()
    }
}

pub fn manifest(out: &Path, as_of: &str) -> serde_json::Value {
    let text = fs_err::read_to_string(out.join("manifests").join(format!("{as_of}.json")))
        .expect("manifest");
    serde_json::from_str(&text).expect("manifest is JSON")
}

/// A small, clean orders CSV: three customers over a year.
pub const SMALL_ORDERS: &str = "\
customer_id,order_id,order_ts,amount,status
a,1,2024-01-05,10.00,completed
a,2,2024-02-05T10:00:00,20.00,completed
a,3,2024-02-05T18:00:00,5.00,completed
a,4,2024-06-01,30.00,completed
b,5,2024-03-01,100.00,completed
b,6,2024-03-15,40.00,returned
c,7,2024-05-20,15.50,
c,8,2024-05-21,99.00,cancelled
d,9,2024-04-01,7.00,completed
d,10,2024-04-11,8.00,completed
e,11,2024-02-01,60.00,completed
e,12,2024-05-01,60.00,completed
f,13,2024-06-10,12.00,completed
";

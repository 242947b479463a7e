//! Loaders never panic, whatever the bytes: arbitrary CSV bytes, mutated Parquet files and
//! arbitrary config text give a result or an error that names the file (proptest, a bounded
//! number of cases so CI time stays fixed; `PROPTEST_CASES` raises it).

use std::path::PathBuf;

use proptest::prelude::*;

use crate::common::*;

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn ingest(path: &PathBuf) {
    let schema = patronage_input::OrdersSchema::default();
    if let Err(e) = patronage_input::ingest_orders(std::slice::from_ref(path), &schema, None) {
        // Every error names the file (or is about the config, which is not in play here).
        let text = e.to_string();
        assert!(
            text.contains(&path.display().to_string())
                || matches!(e, patronage_input::InputError::Io(_)),
            "{text}"
        );
    }
}

/// CSV-ish bytes: a valid header, then fragments that are often almost valid.
fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
    let cell = prop_oneof![
        Just(b"a".to_vec()),
        Just(b"2024-01-01".to_vec()),
        Just(b"20240101".to_vec()),
        Just(b"12.5".to_vec()),
        Just(b"-1e308".to_vec()),
        Just(b"NULL".to_vec()),
        Just(b"\"q,\"\"x\"".to_vec()),
        Just(b",".to_vec()),
        Just(b";".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\"".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(cell, 0..60).prop_map(|cells| {
        let mut out = b"customer_id,order_id,order_ts,amount,status\n".to_vec();
        for c in cells {
            out.extend_from_slice(&c);
        }
        out
    })
}

proptest! {
    #![proptest_config(cases(96))]

    #[test]
    fn csv_loader_never_panics(bytes in csv_bytes(), raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        let dir = tempdir();
        ingest(&write(dir.path(), "orders.csv", &bytes));
        ingest(&write(dir.path(), "raw.csv", &raw));
    }

    #[test]
    fn parquet_loader_never_panics(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let dir = tempdir();
        let good = parquet_sample(dir.path());
        let bytes = fs_err::read(&good).unwrap();
        let mut mutated = bytes.clone();
        for (at, value) in &flips {
            let i = at.index(mutated.len());
            mutated[i] ^= value | 1;
        }
        ingest(&write(dir.path(), "flipped.parquet", &mutated));
        let truncated = &bytes[..cut.index(bytes.len()).max(4)];
        ingest(&write(dir.path(), "truncated.parquet", truncated));
    }

    #[test]
    fn config_loader_never_panics(text in "[\\[\\]a-z_.= \"0-9\n\\-]{0,200}") {
        let dir = tempdir();
        let path = write(dir.path(), "p.toml", text.as_bytes());
        if let Ok(config) = patronage_engine::Config::from_file(&path) {
            let flags = patronage_engine::Flags {
                orders: Some("x.csv".into()),
                out: Some("out".into()),
                ..Default::default()
            };
            let _ = config.into_options(Some(&path), flags, 20_000);
        }
    }
}

/// A small valid Parquet export, written by the binary's own generator.
fn parquet_sample(dir: &std::path::Path) -> PathBuf {
    let out = dir.join("gen");
    generate(&out, 20, &["--format", "parquet"]);
    out.join("orders.parquet")
}

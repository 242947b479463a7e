//! The repository's documents agree with the code that cites them.

use crate::common::repo;

/// Every `docs/design.md §n` a source file or document cites is a section of docs/design.md.
#[test]
fn cited_design_sections_exist() {
    let root = repo();
    let design = fs_err::read_to_string(root.join("docs/design.md")).unwrap();
    let sections: Vec<String> = design
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|l| l.split_once('.').map(|(n, _)| n.to_string()))
        .collect();
    assert!(sections.len() >= 8, "{sections:?}");
    let mut cited = 0;
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" && name != "data-samples" {
                    stack.push(path);
                }
                continue;
            }
            if !["rs", "md", "py", "sh"]
                .iter()
                .any(|e| name.ends_with(&format!(".{e}")))
            {
                continue;
            }
            let text = fs_err::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("docs/design.md §") {
                let n: String = text[at + "docs/design.md §".len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if n.is_empty() {
                    continue; // this file's own mentions
                }
                assert!(
                    sections.contains(&n),
                    "{} cites docs/design.md §{n}, which does not exist",
                    path.display()
                );
                cited += 1;
            }
        }
    }
    assert!(cited >= 15, "only {cited} citations found");
}

/// Every column of every table a run writes carries its description in the Parquet file (the
/// field's `description` metadata) and every file its table's (`patronage.table`, `.grain`);
/// `docs/tables.md` is those descriptions, rendered. After changing a description in the code,
/// `PATRONAGE_UPDATE_DOCS=1 cargo test --test it docs` rewrites the document.
#[test]
fn data_dictionary_travels_in_every_file_and_matches_docs_tables_md() {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let dir = crate::common::tempdir();
    let out = dir.path().join("out");
    crate::common::run_full_sample(&out, &["--as-of", "2024-12-30", "--holdout-days", "90"]);
    let mut doc = String::from(
        "# Tables\n\n\
         Generated from the Parquet files a run writes (`tests/it/docs.rs`, on the bundled sample \
         with profiles, clicks and a holdout): every column's description is stored in the files \
         themselves, as the Arrow field's `description` metadata (pyarrow: \
         `pq.read_schema(f).field(c).metadata`), and each table's in the file's key-value \
         metadata (`patronage.table`, `patronage.grain`). Every per-customer table is keyed by \
         `customer_id` and partitioned by `run_date`. The `loyalty_stages` evidence columns are \
         those of the stage file in use (here the shipped one); `cluster_profiles` has a \
         `median_<feature>` per clustering feature.\n",
    );
    for table in [
        "customer_features",
        "churn_scores",
        "segments",
        "loyalty_stages",
        "segment_summary",
        "cluster_profiles",
        "backtest",
        "rejected",
    ] {
        let file = crate::common::partition(&out, table, "2024-12-30");
        let reader = fs_err::File::open(&file).unwrap().into_parts().0;
        let builder = ParquetRecordBatchReaderBuilder::try_new(reader).unwrap();
        let kv = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned()
            .unwrap_or_default();
        let key = |k: &str| {
            kv.iter()
                .find(|e| e.key == k)
                .and_then(|e| e.value.clone())
                .unwrap_or_else(|| panic!("{table}: no `{k}` in the file's metadata"))
        };
        doc.push_str(&format!(
            "\n## `{table}`\n\nOne row per {}. {}\n\n| column | type | description |\n|---|---|---|\n",
            key("patronage.grain"),
            key("patronage.table")
        ));
        for field in builder.schema().fields() {
            let description = field
                .metadata()
                .get("description")
                .unwrap_or_else(|| panic!("{table}.{} has no description", field.name()));
            assert!(!description.trim().is_empty(), "{table}.{}", field.name());
            let kind = match field.data_type() {
                arrow::datatypes::DataType::Utf8
                | arrow::datatypes::DataType::LargeUtf8
                | arrow::datatypes::DataType::Utf8View => "string".to_string(),
                arrow::datatypes::DataType::Int64 => "integer".into(),
                arrow::datatypes::DataType::Float64 => "double".into(),
                arrow::datatypes::DataType::Boolean => "boolean".into(),
                arrow::datatypes::DataType::Date32 => "date".into(),
                other => other.to_string(),
            };
            doc.push_str(&format!(
                "| `{}` | {kind} | {} |\n",
                field.name(),
                description.replace('|', "\\|")
            ));
        }
    }
    let docs = repo().join("docs/tables.md");
    if std::env::var("PATRONAGE_UPDATE_DOCS").is_ok() {
        fs_err::write(&docs, &doc).unwrap();
    }
    let committed = fs_err::read_to_string(&docs).unwrap_or_default();
    assert!(
        committed == doc,
        "docs/tables.md is not what the code says: rerun with PATRONAGE_UPDATE_DOCS=1 and commit it"
    );
}

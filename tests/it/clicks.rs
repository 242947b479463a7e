//! The clickstream input: events validated like orders (bad rows to `rejected` with
//! `source = clicks`), visitors linked to the customer any of their events names, sessions by
//! given id or 30-minute gap, the engagement columns in `customer_features`; shuffling the rows
//! or splitting them across files changes nothing.

use crate::common::*;

const HEADER: &str = "ts,user_id,anonymous_id,event,page,category,session_id";

/// A hand-checked stream (as-of 2024-06-30).
const EVENTS: &[&str] = &[
    // a (via visitor v1 for the cart and the shipping page): one session that ends on the
    // shipping page without a purchase.
    "2024-06-01T10:00:00,a,v1,product_view,product,shoes,",
    "2024-06-01T10:05:00,,v1,addtocart,cart,,",
    "2024-06-01T10:07:00,,v1,shipping_details,,,",
    // a again the next day across midnight: one session, cart then purchase.
    "2024-06-01T23:50:00,a,,add_to_cart,cart,socks,",
    "2024-06-02T00:10:00,a,,purchase,checkout,,",
    // zed browses three products and leaves: a prospect who did not find what he wanted.
    "2024-06-03T09:00:00,zed,,product_view,product,hats,",
    "2024-06-03T09:01:00,zed,,product_view,product,hats,",
    "2024-06-03T09:02:00,zed,,product_view,product,caps,",
    // zed's given session id groups two events an hour apart; then a bounce.
    "2024-06-10T09:00:00,zed,,page_view,home,,s-9",
    "2024-06-10T10:00:00,zed,,search,search,,s-9",
    "2024-06-20T09:00:00,zed,,wishlist,product,,",
    // anonymous traffic, a bad timestamp, an event naming nobody.
    "2024-06-02T09:00:00,,v9,page_view,home,,",
    "not-a-date,a,,page_view,,,",
    "2024-06-04T09:00:00,,,page_view,,,",
];

const CONFIG: &str = "[clicks.events]\naddtocart = \"add_to_cart\"\nshipping_details = { event = \"page_view\", page = \"shipping\" }\n";

fn run(dir: &std::path::Path, clicks: &std::path::Path, out: &std::path::Path) {
    run_with(dir, clicks, out, "");
}

fn run_with(dir: &std::path::Path, clicks: &std::path::Path, out: &std::path::Path, config: &str) {
    let orders = write(dir, "orders.csv", SMALL_ORDERS.as_bytes());
    let cfg = write(dir, "p.toml", format!("{config}{CONFIG}").as_bytes());
    run_job(
        &orders,
        out,
        &[
            "--no-models",
            "--as-of",
            "2024-06-30",
            "--config",
            cfg.to_str().unwrap(),
            "--clicks",
            clicks.to_str().unwrap(),
        ],
    );
}

#[test]
fn engagement_columns_match_the_hand_count() {
    let dir = tempdir();
    let text = format!("{HEADER}\n{}\n", EVENTS.join("\n"));
    let clicks = write(dir.path(), "clicks.csv", text.as_bytes());
    let out = dir.path().join("out");
    run(dir.path(), &clicks, &out);
    let f = read_table(&partition(&out, "customer_features", "2024-06-30"));
    let i = f.by_customer();
    let (a, z) = (i["a"], i["zed"]);
    assert_eq!(f.i64s("sessions")[a], Some(2));
    assert_eq!(f.i64s("sessions")[z], Some(3));
    assert_eq!(f.f64s("bounce_rate")[z], Some(1.0 / 3.0));
    assert_eq!(f.f64s("cart_abandonment_rate")[a], Some(0.5));
    assert_eq!(f.f64s("cart_to_purchase_rate")[a], Some(0.5));
    assert_eq!(f.f64s("price_page_exit_rate")[a], Some(0.5));
    assert_eq!(f.f64s("view_to_cart_rate")[a], Some(2.0));
    assert_eq!(f.i64s("browse_no_buy_sessions")[z], Some(1));
    assert_eq!(f.i64s("product_views")[z], Some(3));
    assert_eq!(f.i64s("categories_viewed")[z], Some(2));
    assert_eq!(f.i64s("days_since_last_visit")[z], Some(10));
    assert_eq!(f.i64s("sessions_30d")[z], Some(3));
    assert_eq!(f.f64s("events_per_session")[z], Some(2.0));
    // a's last order was 2024-06-01 (SMALL_ORDERS): the session starting that day is not after
    // it; zed never ordered, so both... all his sessions count.
    assert_eq!(f.i64s("visits_since_last_order")[a], Some(0));
    assert_eq!(f.i64s("visits_since_last_order")[z], Some(3));
    // Customers without clicks have null engagement; zed is a prospect.
    assert_eq!(f.i64s("sessions")[i["b"]], None);
    assert_eq!(f.i64s("frequency")[z], None);
    let s = read_table(&partition(&out, "segments", "2024-06-30"));
    assert_eq!(
        s.strings("rfm_segment")[s.by_customer()["zed"]].as_deref(),
        Some("prospect")
    );

    let rej = read_table(&partition(&out, "rejected", "2024-06-30"));
    let click_rows: Vec<(i64, String)> = (0..rej.rows())
        .filter(|&k| rej.strings("source")[k].as_deref() == Some("clicks"))
        .map(|k| {
            (
                rej.i64s("source_row")[k].unwrap(),
                rej.strings("reason")[k].clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        click_rows,
        [
            (13, "invalid_timestamp".to_string()),
            (14, "missing_value".to_string())
        ]
    );
    let m = manifest(&out, "2024-06-30");
    let c = &m["inputs"]["clicks"];
    assert_eq!(c["rows_read"], 14);
    assert_eq!(c["rows_accepted"], 12);
    assert_eq!(c["anonymous_events"], 1);
    assert_eq!(c["events_linked_by_visitor"], 2);
    assert_eq!(c["unknown_event_names"]["wishlist"], 1);
}

/// Shuffled rows split across two files give byte-identical tables.
#[test]
fn shuffling_and_splitting_events_changes_nothing() {
    let dir = tempdir();
    let text = format!("{HEADER}\n{}\n", EVENTS.join("\n"));
    let one = write(dir.path(), "clicks.csv", text.as_bytes());
    let out_one = dir.path().join("one");
    run(dir.path(), &one, &out_one);

    let parts = dir.path().join("parts");
    fs_err::create_dir_all(&parts).unwrap();
    let mut rows: Vec<&str> = EVENTS.to_vec();
    rows.reverse();
    rows.swap(1, 7);
    let (x, y) = rows.split_at(5);
    write(
        &parts,
        "a.csv",
        format!("{HEADER}\n{}\n", x.join("\n")).as_bytes(),
    );
    write(
        &parts,
        "b.csv",
        format!("{HEADER}\n{}\n", y.join("\n")).as_bytes(),
    );
    let out_two = dir.path().join("two");
    run(dir.path(), &parts, &out_two);
    for table in ["customer_features", "segments"] {
        assert_eq!(
            fs_err::read(partition(&out_one, table, "2024-06-30")).unwrap(),
            fs_err::read(partition(&out_two, table, "2024-06-30")).unwrap(),
            "{table}"
        );
    }
}

/// Read from Parquet row groups a few rows at a time — the visitor's events in a chunk before
/// the one that links the visitor, a session cut by a chunk boundary, timestamps typed — the
/// tables equal those of the whole CSV: each chunk is folded into mergeable partials.
#[test]
fn parquet_read_in_small_chunks_gives_the_same_tables() {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, TimeUnit};
    use std::sync::Arc;

    let dir = tempdir();
    // The rows that parse (a Parquet timestamp column holds no "not-a-date").
    let good: Vec<&str> = EVENTS
        .iter()
        .copied()
        .filter(|e| !e.starts_with("not-a-date"))
        .collect();
    let csv = write(
        dir.path(),
        "clicks.csv",
        format!("{HEADER}\n{}\n", good.join("\n")).as_bytes(),
    );
    let out_csv = dir.path().join("csv");
    run(dir.path(), &csv, &out_csv);

    // Visitor-only rows first, the linking row last; a's midnight session split apart.
    let mut rows: Vec<&str> = good.clone();
    rows.sort_by_key(|r| (!r.contains(",,v1,"), r.contains(",a,v1,")));
    let at_midnight = rows
        .iter()
        .position(|r| r.starts_with("2024-06-02T00:10"))
        .unwrap();
    let moved = rows.remove(at_midnight);
    rows.push(moved);
    let column = |k: usize| -> Vec<Option<&str>> {
        rows.iter()
            .map(|r| r.split(',').nth(k).filter(|v| !v.is_empty()))
            .collect()
    };
    let text = |k: usize| -> ArrayRef { Arc::new(StringArray::from(column(k))) };
    let ts =
        arrow::compute::cast(&text(0), &DataType::Timestamp(TimeUnit::Microsecond, None)).unwrap();
    let names: Vec<&str> = HEADER.split(',').collect();
    let mut columns = vec![(names[0], ts)];
    for (k, name) in names.iter().enumerate().skip(1) {
        columns.push((name, text(k)));
    }
    let parquet = dir.path().join("clicks.parquet");
    write_parquet_groups(&parquet, columns, Some(2));
    let out_parquet = dir.path().join("parquet");
    run_with(
        dir.path(),
        &parquet,
        &out_parquet,
        "[clicks]\nchunk_rows = 3\n",
    );

    for table in ["customer_features", "segments"] {
        assert_eq!(
            read_table(&partition(&out_csv, table, "2024-06-30")).batch,
            read_table(&partition(&out_parquet, table, "2024-06-30")).batch,
            "{table}"
        );
    }
    let m = manifest(&out_parquet, "2024-06-30");
    let c = &m["inputs"]["clicks"];
    assert_eq!(c["rows_read"], good.len());
    assert_eq!(c["rows_rejected"], 1, "the event naming nobody");
    assert_eq!(c["events_linked_by_visitor"], 2);
    assert_eq!(c["anonymous_events"], 1);
}

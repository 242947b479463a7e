//! CDNOW (23,570 real customers, 1997–98): every customer's RFM and BTYD summary equals a plain
//! loop over the raw `CDNOW_master.txt` (a different file and parser from the CSV we feed in).

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::common::*;

struct Expected {
    frequency: i64,
    monetary: f64,
    recency: i64,
    x: i64,
    t_x: i64,
    t: i64,
}

fn independent(as_of: NaiveDate) -> BTreeMap<String, Expected> {
    let text = fs_err::read_to_string(repo().join("data-samples/cdnow/CDNOW_master.txt")).unwrap();
    let mut per: BTreeMap<String, Vec<(NaiveDate, f64)>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 {
            continue;
        }
        let day = NaiveDate::parse_from_str(f[1], "%Y%m%d").unwrap();
        per.entry(f[0].to_string())
            .or_default()
            .push((day, f[3].parse().unwrap()));
    }
    per.into_iter()
        .map(|(c, rows)| {
            let mut days: Vec<NaiveDate> = rows.iter().map(|r| r.0).collect();
            days.sort();
            days.dedup();
            let first = days[0];
            let last = *days.last().unwrap();
            (
                c,
                Expected {
                    frequency: rows.len() as i64,
                    monetary: rows.iter().map(|r| r.1).sum(),
                    recency: (as_of - last).num_days(),
                    x: days.len() as i64 - 1,
                    t_x: (last - first).num_days(),
                    t: (as_of - first).num_days(),
                },
            )
        })
        .collect()
}

#[test]
fn cdnow_features_match_an_independent_computation() {
    let out = tempdir();
    let orders = repo().join("data-samples/cdnow/cdnow_orders.csv");
    run_job(&orders, out.path(), &["--as-of", "1998-06-30"]);
    let t = read_table(&partition(out.path(), "customer_features", "1998-06-30"));
    assert_eq!(t.rows(), 23_570);
    let want = independent(NaiveDate::from_ymd_opt(1998, 6, 30).unwrap());
    assert_eq!(want.len(), 23_570);
    let ids = t.strings("customer_id");
    let (freq, mon, rec) = (
        t.i64s("frequency"),
        t.f64s("monetary"),
        t.i64s("recency_days"),
    );
    let (x, t_x, tt) = (t.i64s("btyd_x"), t.i64s("btyd_t_x"), t.i64s("btyd_T"));
    for i in 0..t.rows() {
        let id = ids[i].clone().unwrap();
        let e = &want[&id];
        assert_eq!(freq[i], Some(e.frequency), "{id} frequency");
        assert!((mon[i].unwrap() - e.monetary).abs() < 1e-6, "{id} monetary");
        assert_eq!(rec[i], Some(e.recency), "{id} recency");
        assert_eq!(
            (x[i], t_x[i], tt[i]),
            (Some(e.x), Some(e.t_x), Some(e.t)),
            "{id} btyd"
        );
    }
    // Customer 00001 bought once on 1997-01-01: T = 545 days at 1998-06-30.
    let row = t.by_customer()["00001"];
    assert_eq!(tt[row], Some(545));

    let m = manifest(out.path(), "1998-06-30");
    assert_eq!(m["inputs"]["orders"]["rows_read"], 69_659);
    assert_eq!(m["inputs"]["orders"]["rows_rejected"], 0);
    let scores = read_table(&partition(out.path(), "churn_scores", "1998-06-30"));
    assert_eq!(scores.rows(), 23_570);
    assert!(scores
        .f64s("p_alive")
        .iter()
        .all(|p| p.is_some_and(|p| (0.0..=1.0).contains(&p))));
}

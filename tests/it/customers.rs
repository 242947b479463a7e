//! The customers (profiles) input: customers known only from a profile are prospects with null
//! order features, profile columns join `customer_features` by key, bad profile rows land in
//! `rejected` with `source = customers`, and rows read = accepted + rejected per file.

use crate::common::*;

const PROFILES: &str = "\
customer_id,signup_date,tier,points,subscribed,saved_payment_methods,email_opt_in,referrals,reviews,notes
a,2023-05-01,gold,1200,yes,2,true,1,3,x
p1,2024-02-01,bronze,50,n,1,1,0,0,
p2,,,,,,,,,
bad,2024-02-01,platinum,10,y,1,1,0,0,
worse,2024-02-01,gold,10,maybe,1,1,0,0,
late,2030-01-01,gold,1,y,1,1,1,1,
a,2023-05-01,gold,1200,yes,2,true,1,3,x
b,2024-01-01,silver,5,no,0,false,0,0,
b,2024-01-02,silver,5,no,0,false,0,0,
";

#[test]
fn profiles_add_prospects_and_columns_by_key() {
    let dir = tempdir();
    let orders = write(dir.path(), "orders.csv", SMALL_ORDERS.as_bytes());
    let profiles = write(dir.path(), "profiles.csv", PROFILES.as_bytes());
    let cfg = write(
        dir.path(),
        "p.toml",
        b"[customers]\ntier_order = [\"bronze\", \"silver\", \"gold\"]\n",
    );
    let out = dir.path().join("out");
    let stdout = run_job(
        &orders,
        &out,
        &[
            "--customers",
            profiles.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--as-of",
            "2024-06-30",
            "--no-models",
        ],
    );
    assert!(stdout.contains("2 prospects without an order"), "{stdout}");
    let f = read_table(&partition(&out, "customer_features", "2024-06-30"));
    let i = f.by_customer();
    // SMALL_ORDERS has customers a..f; p1 and p2 are prospects; `late` signs up after the
    // as-of; `bad`, `worse` and both `b` rows are rejected.
    assert_eq!(f.rows(), 8);
    assert_eq!(f.i64s("frequency")[i["p1"]], None);
    assert_eq!(f.f64s("monetary")[i["p2"]], None);
    assert_eq!(
        f.strings("membership_tier")[i["a"]].as_deref(),
        Some("gold")
    );
    assert_eq!(f.i64s("membership_tier_rank")[i["a"]], Some(3));
    assert_eq!(f.f64s("points_balance")[i["p1"]], Some(50.0));
    assert_eq!(
        f.i64s("membership_tier_rank")[i["c"]],
        None,
        "c has no profile"
    );
    assert!(!i.contains_key("late"));
    // Switching costs: facets from whatever is known, null where nothing is.
    for facet in [
        "switching_cost_procedural",
        "switching_cost_financial",
        "switching_cost_relational",
        "switching_cost_index",
    ] {
        let v = f.f64s(facet);
        assert_eq!(v[i["p2"]], None, "{facet}: p2 knows nothing");
        assert!(
            v.iter().flatten().all(|x| (0.0..=1.0).contains(x)),
            "{facet}"
        );
    }
    // a: tier gold = top of bronze/silver/gold, subscribed, the highest points → financial 1.
    assert_eq!(f.f64s("switching_cost_financial")[i["a"]], Some(1.0));
    // c has orders but no profile: procedural from tenure alone, no financial facet.
    assert!(f.f64s("switching_cost_procedural")[i["c"]].is_some());
    assert_eq!(f.f64s("switching_cost_financial")[i["c"]], None);
    let s = read_table(&partition(&out, "segments", "2024-06-30"));
    let si = s.by_customer();
    assert_eq!(
        s.strings("rfm_segment")[si["p1"]].as_deref(),
        Some("prospect")
    );

    let rej = read_table(&partition(&out, "rejected", "2024-06-30"));
    let got: Vec<(String, i64, String)> = (0..rej.rows())
        .filter(|&k| rej.strings("source")[k].as_deref() == Some("customers"))
        .map(|k| {
            (
                rej.strings("reason")[k].clone().unwrap(),
                rej.i64s("source_row")[k].unwrap(),
                rej.strings("source_column")[k].clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("unknown_value".to_string(), 4, "tier".to_string()),
            ("invalid_boolean".to_string(), 5, "subscribed".to_string()),
            (
                "conflicting_duplicate".to_string(),
                8,
                "customer_id".to_string()
            ),
            (
                "conflicting_duplicate".to_string(),
                9,
                "customer_id".to_string()
            ),
        ]
    );
    let m = manifest(&out, "2024-06-30");
    let c = &m["inputs"]["customers"];
    assert_eq!(c["rows_read"], 9);
    assert_eq!(c["rows_rejected"], 4);
    assert_eq!(c["rows_accepted"], 5);
    assert_eq!(c["files"][0]["duplicates_collapsed"], 1);
    assert_eq!(c["files"][0]["unused_columns"][0], "notes");
    assert_eq!(c["prospects"], 2);
    let fed = &m["features"]["switching_cost_inputs"];
    assert_eq!(
        fed["switching_cost_financial"],
        serde_json::json!([
            "points_balance",
            "membership_tier_rank",
            "subscription_active"
        ])
    );
    assert!(c["columns_present"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v != "saved_addresses"));
}

/// `patronage generate` writes profiles consistent with its orders, and the job reads both.
#[test]
fn generated_profiles_run_with_the_orders() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let out_text = generate(&data, 300, &[]);
    assert!(
        out_text.contains("360 profiles (60 prospects"),
        "{out_text}"
    );
    let out = dir.path().join("out");
    run_job(
        &data.join("orders.csv"),
        &out,
        &[
            "--customers",
            data.join("customers.csv").to_str().unwrap(),
            "--clicks",
            data.join("clicks.csv").to_str().unwrap(),
            "--as-of",
            "2024-12-31",
        ],
    );
    let m = manifest(&out, "2024-12-31");
    assert_eq!(m["inputs"]["customers"]["rows_rejected"], 0);
    let f = read_table(&partition(&out, "customer_features", "2024-12-31"));
    let buyers = f.i64s("frequency").iter().filter(|v| v.is_some()).count();
    let with_profile = f
        .strings("membership_tier")
        .iter()
        .filter(|v| v.is_some())
        .count();
    assert_eq!(
        with_profile,
        f.rows(),
        "every customer and prospect has a profile"
    );
    assert!(f.rows() > buyers, "prospects join the index");
    // Generated orders carry discounts and categories, so those features are exercised.
    let share = f.f64s("discounted_order_share");
    assert!(share.iter().flatten().any(|v| *v > 0.0));
    assert!(f
        .i64s("categories_bought")
        .iter()
        .zip(f.i64s("frequency"))
        .all(|(c, n)| n.is_none_or(|n| n == 0) || c.is_some_and(|c| c >= 1)));
    // The generated clickstream exercises every engagement signal.
    let m = manifest(&out, "2024-12-31");
    assert_eq!(m["inputs"]["clicks"]["rows_rejected"], 0);
    assert!(
        m["inputs"]["clicks"]["anonymous_visitors"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert!(
        m["inputs"]["clicks"]["events_linked_by_visitor"]
            .as_i64()
            .unwrap()
            > 0
    );
    for c in [
        "price_page_exit_rate",
        "cart_abandonment_rate",
        "bounce_rate",
    ] {
        assert!(f.f64s(c).iter().flatten().any(|v| *v > 0.0), "{c}");
    }
    assert!(f
        .i64s("browse_no_buy_sessions")
        .iter()
        .flatten()
        .any(|v| *v > 0));
    assert!(
        f.i64s("sessions").iter().all(Option::is_some),
        "every customer and prospect browses"
    );
    // Scores for buyers only; a prospect's are null.
    let scores = read_table(&partition(&out, "churn_scores", "2024-12-31"));
    assert_eq!(scores.rows(), f.rows());
    let scored = scores
        .f64s("p_alive")
        .iter()
        .filter(|v| v.is_some())
        .count();
    assert!(scored <= buyers && scored > 0);
    // A profile's signup is on or before the customer's first order.
    let (signup, first) = (f.dates("signup_date"), f.dates("first_order_date"));
    assert!((0..f.rows()).all(|k| match (signup[k], first[k]) {
        (Some(s), Some(o)) => s <= o,
        _ => true,
    }));
}

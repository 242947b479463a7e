//! `patronage rules check`: presets pass; gaps and shadowed rules fail with exit code 1.

use crate::common::*;

#[test]
fn shipped_presets_pass_the_check() {
    for preset in ["default", "simple"] {
        let out = patronage_ok(&["rules", "check", preset]);
        assert!(out.contains("ok: all 125"), "{out}");
    }
    let list = patronage_ok(&["rules", "list"]);
    assert!(list.contains("default") && list.contains("simple"));
}

#[test]
fn a_table_with_gaps_and_dead_rules_fails() {
    let dir = tempdir();
    let table = write(
        dir.path(),
        "rules.toml",
        b"name = 'broken'\n[[rule]]\nid = 'recent'\nsegment = 'Recent'\nr = '4-5'\n[[rule]]\nid = 'top'\nsegment = 'Top'\nr = '5'\nf = '5'\n",
    );
    let o = patronage(&["rules", "check", table.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("unmatched cell R=1 F=1 M=1"), "{stdout}");
    assert!(stdout.contains("unreachable rule `top`"), "{stdout}");
}

#[test]
fn a_custom_rule_table_drives_the_segments() {
    let dir = tempdir();
    let _table = write(dir.path(), "two.toml", b"name = 'two'\n[[rule]]\nid = 'recent'\nsegment = 'Recent'\nr = '3-5'\n[[rule]]\nid = 'older'\nsegment = 'Older'\nr = '1-2'\n");
    let cfg = write(
        dir.path(),
        "patronage.toml",
        b"[segments]\nrules = 'two.toml'\n[models]\nenabled = false\n",
    );
    let orders = write(dir.path(), "orders.csv", SMALL_ORDERS.as_bytes());
    let out = dir.path().join("out");
    run_job(
        &orders,
        &out,
        &["--config", cfg.to_str().unwrap(), "--as-of", "2024-06-30"],
    );
    let s = read_table(&partition(&out, "segments", "2024-06-30"));
    let segs = s.strings("rfm_segment");
    assert!(segs
        .iter()
        .all(|v| matches!(v.as_deref(), Some("Recent" | "Older"))));
    let m = manifest(&out, "2024-06-30");
    assert!(m["segments"]["rules"]["source"]
        .as_str()
        .unwrap()
        .ends_with("two.toml"));
}

/// Issue #15 item 6: the lowest values score 1 even when they are most of the base, so the
/// F = 1 rules fire on real data. CDNOW: 51% of customers buy on one day only.
#[test]
fn cdnow_one_time_buyers_score_f1_and_the_f1_rules_fire() {
    let dir = tempdir();
    let orders = repo().join("data-samples/cdnow/cdnow_orders.csv");
    for as_of in ["1997-03-31", "1998-06-30"] {
        let out = dir.path().join(as_of);
        run_job(
            &orders,
            &out,
            &["--as-of", as_of, "--no-models", "--no-clusters"],
        );
        let f = read_table(&partition(&out, "customer_features", as_of));
        let s = read_table(&partition(&out, "segments", as_of));
        let (freq, fs) = (f.i64s("frequency"), s.i64s("f_score"));
        let min_freq = freq.iter().flatten().min().copied().unwrap();
        for (q, score) in freq.iter().zip(&fs) {
            if *q == Some(min_freq) {
                assert_eq!(*score, Some(1), "{as_of}: the lowest frequency scores 1");
            }
        }
        let m = manifest(&out, as_of);
        let fired = &m["segments"]["rules"]["customers_per_rule"];
        if as_of == "1997-03-31" {
            // The acquisition quarter: recent one-time buyers are New.
            assert!(fired["new"].as_i64().unwrap() > 0, "{fired}");
            let segment = s.strings("rfm_segment");
            let recency = s.i64s("r_score");
            for i in 0..s.rows() {
                if segment[i].as_deref() == Some("New") {
                    assert_eq!((recency[i], fs[i]), (Some(5), Some(1)));
                }
            }
        }
        assert!(
            fired["promising"].as_i64().unwrap() + fired["about_to_sleep"].as_i64().unwrap() > 0,
            "{as_of}: {fired}"
        );
    }
}

//! Loyalty stages, cross-checks and control groups (issue #15) on the bundled sample (orders,
//! profiles, clicks) and on CDNOW (orders only: the click conditions are skipped and said so).

use crate::common::*;

const STAGES: [&str; 6] = [
    "prospect",
    "insufficient_history",
    "cognitive",
    "affective",
    "conative",
    "action",
];

#[test]
fn every_stage_is_populated_on_the_sample_with_its_evidence() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let sample = repo().join("data-samples");
    run_job(
        &sample.join("orders.csv"),
        &out,
        &[
            "--customers",
            sample.join("customers.csv").to_str().unwrap(),
            "--clicks",
            sample.join("clicks.csv").to_str().unwrap(),
        ],
    );
    let l = read_table(&partition(&out, "loyalty_stages", "2024-12-30"));
    let stage = l.strings("loyalty_stage");
    assert_eq!(l.rows(), 600, "one row per customer of the index");
    for s in STAGES {
        assert!(
            stage.iter().any(|x| x.as_deref() == Some(s)),
            "stage {s} is empty"
        );
    }
    assert!(stage
        .iter()
        .all(|s| STAGES.contains(&s.as_deref().unwrap())));
    // Evidence columns: one per condition, and an action customer meets every action gate.
    let gates = ["action_tenure_one_year", "action_steady_or_rising"];
    for g in gates {
        let col = l.bools(g);
        for (s, v) in stage.iter().zip(&col) {
            if s.as_deref() == Some("action") {
                assert_eq!(*v, Some(true), "{g}");
            }
        }
    }
    // Below action, the gap names the next stage's unmet conditions.
    let gap = l.strings("next_stage_gap");
    for (s, g) in stage.iter().zip(&gap) {
        match s.as_deref() {
            Some("cognitive") => assert!(g.as_deref().unwrap().contains("affective_")),
            Some("action") | Some("prospect") => assert!(g.is_none()),
            _ => {}
        }
    }
    let m = manifest(&out, "2024-12-30");
    assert_eq!(
        m["loyalty"]["skipped_conditions"].as_array().unwrap().len(),
        0
    );
    let summary = read_table(&partition(&out, "segment_summary", "2024-12-30"));
    let dims = summary.strings("dimension");
    assert!(dims.iter().any(|d| d.as_deref() == Some("loyalty_stage")));
    assert!(dims
        .iter()
        .any(|d| d.as_deref() == Some("loyalty_stage_x_rfm_segment")));
}

#[test]
fn orders_only_skips_the_click_conditions_and_control_groups_hold_their_share() {
    let (dir, out) = run_sample(
        "cdnow/cdnow_orders.csv",
        &["--as-of", "1998-06-30", "--no-clusters"],
    );
    let m = manifest(&out, "1998-06-30");
    let skipped: Vec<&str> = m["loyalty"]["skipped_conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        skipped.contains(&"cognitive.price_page_exits"),
        "{skipped:?}"
    );
    assert!(
        skipped.contains(&"affective.returns_to_browse"),
        "{skipped:?}"
    );
    let l = read_table(&partition(&out, "loyalty_stages", "1998-06-30"));
    assert_eq!(l.rows(), 23_570);
    assert!(l
        .schema
        .field_with_name("cognitive_price_page_exits")
        .is_err());
    let cells = l.strings("reinartz_kumar");
    assert!(
        cells.iter().all(|c| c.is_some()),
        "every CDNOW customer bought"
    );

    // Control group: 10% of every large segment, the same customers on a rerun.
    let s = read_table(&partition(&out, "segments", "1998-06-30"));
    let (segment, control) = (s.strings("rfm_segment"), s.bools("control_group"));
    let mut per: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for (g, c) in segment.iter().zip(&control) {
        let e = per.entry(g.clone().unwrap()).or_default();
        e.0 += 1;
        e.1 += usize::from(c.unwrap());
    }
    // The hash is a fair coin per customer: each segment's share is binomial around 10%, within
    // 4.5 standard deviations (a false alarm about once in 150,000 segments); the whole base
    // within 1 point.
    for (g, (n, c)) in &per {
        let share = *c as f64 / *n as f64;
        let sd = (0.1 * 0.9 / *n as f64).sqrt();
        assert!((share - 0.10).abs() <= 4.5 * sd, "{g}: {share} of {n}");
    }
    let all: usize = per.values().map(|v| v.1).sum();
    assert!((all as f64 / 23_570.0 - 0.10).abs() < 0.01);
    let again = dir.path().join("again");
    // A rerun (without loyalty stages, even) holds out the same customers.
    run_job(
        &repo().join("data-samples/cdnow/cdnow_orders.csv"),
        &again,
        &["--as-of", "1998-06-30", "--no-clusters", "--no-loyalty"],
    );
    let s2 = read_table(&partition(&again, "segments", "1998-06-30"));
    assert_eq!(control, s2.bools("control_group"));
    assert!(!partition(&again, "loyalty_stages", "1998-06-30").exists());
    assert_eq!(
        manifest(&again, "1998-06-30")["control_group"]["share"],
        0.1
    );
}

#[test]
fn rules_check_reads_stage_files() {
    assert!(patronage_ok(&["rules", "check", "oliver"]).contains("ok"));
    let dir = tempdir();
    let bad = write(
        dir.path(),
        "stages.toml",
        br#"name = "bad"
[[stage]]
name = "cognitive"
conditions = [
  { id = "a", feature = "frequency", op = ">=", value = 5, role = "gate" },
  { id = "b", feature = "frequency", op = "<=", value = 3, role = "gate" },
  { id = "c", feature = "shoe_size", op = ">=", value = 1 },
]
"#,
    );
    let o = patronage(&["rules", "check", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("unknown feature") && text.contains("shoe_size"),
        "{text}"
    );
    assert!(text.contains("contradictory thresholds"), "{text}");
}

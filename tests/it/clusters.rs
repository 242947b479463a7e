//! Behavioural clusters on CDNOW (issue #14): every cluster holds ≥ 5% of the customers, the
//! chosen solution is stable under bootstrap, ids survive a rerun a week later, and the same
//! inputs give the same assignments.

use crate::common::*;

fn cdnow() -> std::path::PathBuf {
    repo().join("data-samples/cdnow/cdnow_orders.csv")
}

fn ids(out: &std::path::Path, as_of: &str) -> Vec<(String, Option<i64>)> {
    let s = read_table(&partition(out, "segments", as_of));
    let ids = s.strings("customer_id");
    let clusters = s.i64s("cluster_id");
    ids.into_iter().map(Option::unwrap).zip(clusters).collect()
}

#[test]
fn cdnow_clusters_are_sizable_stable_and_keep_their_ids_a_week_later() {
    let dir = tempdir();
    let out = dir.path().join("out");
    run_job(&cdnow(), &out, &["--as-of", "1998-06-30"]);
    let m = manifest(&out, "1998-06-30");
    let c = &m["clusters"];
    assert_eq!(c["status"], "ok");
    let k = c["k"].as_u64().unwrap() as usize;
    assert!((3..=8).contains(&k));
    // Every k of the range was scored, the chosen one is admissible.
    let scores = c["indices_per_k"].as_array().unwrap();
    assert_eq!(scores.len(), 6);
    let chosen = scores.iter().find(|s| s["k"] == k as u64).unwrap();
    assert_eq!(chosen["admissible"], true);
    assert!(
        c["bootstrap_ari"]["mean"].as_f64().unwrap() >= 0.95,
        "{}",
        c["bootstrap_ari"]
    );

    let p = read_table(&partition(&out, "cluster_profiles", "1998-06-30"));
    assert_eq!(p.rows(), k);
    let shares = p.f64s("share");
    assert!(shares.iter().all(|s| s.unwrap() >= 0.05), "{shares:?}");
    let total: i64 = p.i64s("customers").iter().map(|n| n.unwrap()).sum();
    assert_eq!(
        total, 23_570,
        "every CDNOW customer bought, so every one is clustered"
    );
    let names = p.strings("cluster_name");
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), k, "names are unique: {names:?}");
    let revenue: f64 = p.f64s("revenue_share").iter().map(|r| r.unwrap()).sum();
    assert!((revenue - 1.0).abs() < 1e-9);
    assert!(out.join("models/clusters/1998-06-30.json").exists());

    // A week later nobody bought (CDNOW ends 1998-06-30): ids carry over for ≥ 95%.
    run_job(&cdnow(), &out, &["--as-of", "1998-07-07"]);
    let before = ids(&out, "1998-06-30");
    let after = ids(&out, "1998-07-07");
    assert_eq!(before.len(), after.len());
    let same = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a.0 == b.0 && a.1 == b.1)
        .count();
    assert!(
        same as f64 >= 0.95 * before.len() as f64,
        "{same} of {} kept their cluster",
        before.len()
    );
    let m2 = manifest(&out, "1998-07-07");
    assert_eq!(m2["clusters"]["warm_start"]["from"], "1998-06-30");
}

#[test]
fn same_inputs_same_clusters_and_k_can_be_forced() {
    let dir = tempdir();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run_job(
        &cdnow(),
        &a,
        &["--as-of", "1997-12-31", "--no-models", "--k", "5"],
    );
    run_job(
        &cdnow(),
        &b,
        &["--as-of", "1997-12-31", "--no-models", "--k", "5"],
    );
    assert_eq!(ids(&a, "1997-12-31"), ids(&b, "1997-12-31"));
    let m = manifest(&a, "1997-12-31");
    assert_eq!(m["clusters"]["k"], 5);
    assert!(m["clusters"]["chosen_by"]
        .as_str()
        .unwrap()
        .starts_with("forced"));
    // Without models p_alive is not a default feature.
    let features: Vec<&str> = m["clusters"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(!features.contains(&"p_alive"), "{features:?}");
    // --no-clusters: no profiles (nothing stale left from before), cluster columns null.
    run_job(
        &cdnow(),
        &a,
        &["--as-of", "1997-12-31", "--no-models", "--no-clusters"],
    );
    assert!(!partition(&a, "cluster_profiles", "1997-12-31").exists());
    let s = read_table(&partition(&a, "segments", "1997-12-31"));
    assert!(s.i64s("cluster_id").iter().all(Option::is_none));
}

/// `--clusterer gmm`: a Gaussian mixture with the same k, every clustered customer with a
/// membership probability in (0, 1], k-means customers without one.
#[test]
fn a_gaussian_mixture_gives_membership_probabilities() {
    let dir = tempdir();
    let out = dir.path().join("out");
    run_job(
        &cdnow(),
        &out,
        &["--as-of", "1998-06-30", "--no-models", "--clusterer", "gmm"],
    );
    let m = manifest(&out, "1998-06-30");
    assert_eq!(m["clusters"]["clusterer"], "gmm", "{}", m["clusters"]);
    let s = read_table(&partition(&out, "segments", "1998-06-30"));
    let p = s.f64s("cluster_probability");
    let id = s.i64s("cluster_id");
    assert!(id.iter().all(Option::is_some));
    assert!(p
        .iter()
        .all(|p| p.is_some_and(|p| p > 0.0 && p <= 1.0 + 1e-12)));
    let k = m["clusters"]["k"].as_u64().unwrap() as i64;
    let mut seen: Vec<i64> = id.iter().flatten().copied().collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len() as i64, k);

    let km = dir.path().join("km");
    run_job(&cdnow(), &km, &["--as-of", "1998-06-30", "--no-models"]);
    let s = read_table(&partition(&km, "segments", "1998-06-30"));
    assert!(s.f64s("cluster_probability").iter().all(Option::is_none));
}

//! The analyst's report (#18): one self-contained HTML file per run, every chart drawn.

use std::path::Path;

use crate::common::*;

/// The charts of `html`: each `<svg>…</svg>` with the shapes it draws (rects, circles and
/// polyline points with a non-zero size).
fn charts(html: &str) -> Vec<(String, usize)> {
    html.split("<svg")
        .skip(1)
        .map(|s| {
            let svg = &s[..s.find("</svg>").expect("closed svg")];
            let title = svg
                .split("<title>")
                .nth(1)
                .and_then(|t| t.split("</title>").next())
                .unwrap_or_default()
                .to_string();
            let drawn = svg
                .split("<rect ")
                .skip(1)
                .filter(|r| !r.contains("width=\"0.0\"") && !r.contains("height=\"0.0\""))
                .count()
                + svg.matches("<circle ").count()
                + svg.matches("<polyline points=\"").count();
            (title, drawn)
        })
        .collect()
}

fn report(out: &Path, as_of: &str) -> String {
    fs_err::read_to_string(out.join("reports").join(format!("{as_of}.html"))).unwrap()
}

#[test]
fn report_draws_every_section_and_the_migration_since_the_previous_run() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let run = |as_of: &str, extra: &[&str]| {
        let mut a = vec!["--as-of", as_of];
        a.extend_from_slice(extra);
        run_full_sample(&out, &a)
    };
    run("2024-09-30", &[]);
    let stdout = run("2024-12-30", &["--holdout-days", "90", "--report"]);
    assert!(stdout.contains("reports/2024-12-30.html"), "{stdout}");
    let html = report(&out, "2024-12-30");
    for section in [
        "Segments",
        "Recency × frequency",
        "Churn risk",
        "Backtest calibration",
        "Value concentration",
        "Loyalty stages",
        "Behavioural clusters",
        "Trends and migration",
    ] {
        assert!(
            html.contains(&format!("<h2>{section}</h2>")),
            "{section} missing"
        );
    }
    let drawn = charts(&html);
    assert!(drawn.len() >= 9, "{drawn:?}");
    for (title, shapes) in &drawn {
        assert!(*shapes > 0, "chart `{title}` draws nothing");
    }
    // Self-contained: no script, no stylesheet or image from elsewhere.
    assert!(!html.contains("<script"));
    // The notes name the model behind the scores and the backtest.
    assert!(html.contains("BG/NBD fitted without the last 90 days"));
    assert!(!html
        .replace("http://www.w3.org/2000/svg", "")
        .contains("http"));
    // The migration counts customers whose segment changed between the two runs.
    let moved: usize = html
        .split("Since the previous run (2024-09-30): ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .map(|n| n.replace(',', "").parse().unwrap())
        .expect("a migration note");
    let segments = |as_of: &str| {
        let t = read_table(&partition(&out, "segments", as_of));
        let ids = t.strings("customer_id");
        let segs = t.strings("rfm_segment");
        ids.into_iter()
            .zip(segs)
            .map(|(i, s)| (i.unwrap(), s.unwrap()))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let (before, after) = (segments("2024-09-30"), segments("2024-12-30"));
    let expected = after
        .iter()
        .filter(|(id, seg)| before.get(*id).is_some_and(|b| b != *seg))
        .count();
    assert_eq!(moved, expected);
    // The headline's customers are the run's.
    assert!(html.contains(&format!(
        "<div class=\"n\">{}</div><div class=\"k\">customers</div>",
        manifest(&out, "2024-12-30")["customers"]
    )));

    // `patronage report` on its own: the latest run by default, or the one asked for.
    let printed = patronage_ok(&[
        "report",
        "--out",
        out.to_str().unwrap(),
        "--as-of",
        "2024-09-30",
    ]);
    assert!(printed.trim().ends_with("2024-09-30.html"));
    let first = report(&out, "2024-09-30");
    assert!(first.contains("One run date in this output so far"));
    assert!(
        !first.contains("Backtest calibration"),
        "no holdout in that run"
    );

    // Nothing to report on: a clear error.
    let empty = dir.path().join("empty");
    let r = patronage(&["report", "--out", empty.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("no run to report on"));
}

#[test]
fn report_renders_cdnow() {
    let (_dir, out) = run_sample(
        "cdnow/cdnow_orders.csv",
        &["--as-of", "1998-06-30", "--report"],
    );
    let html = report(&out, "1998-06-30");
    let drawn = charts(&html);
    assert!(drawn.len() >= 6, "{drawn:?}");
    assert!(drawn.iter().all(|(_, n)| *n > 0), "{drawn:?}");
    assert!(html.contains("<div class=\"k\">customers</div>"));
}

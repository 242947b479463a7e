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

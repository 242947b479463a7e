//! Named RFM segments as data: an ordered rule table in TOML where the first matching rule wins.
//!
//! ```toml
//! name = "default"
//! [[rule]]
//! id = "champions"        # stable id written next to the segment name
//! segment = "Champions"
//! r = "4-5"               # "lo-hi" or "d"; an omitted score matches 1-5
//! f = "4-5"
//! m = "4-5"
//! ```
//! [`RuleTable::check`] proves the table is total (all 125 (R, F, M) cells matched) and has no
//! unreachable rule (one whose every cell is taken by earlier rules).

use serde::Deserialize;

/// Shipped rule tables: (name, TOML text). The first is the default.
pub const PRESETS: &[(&str, &str)] = &[
    ("default", include_str!("../presets/default.toml")),
    ("simple", include_str!("../presets/simple.toml")),
];

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{source_name}: invalid rule table: {message}")]
    Parse {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: rule `{rule}`, score `{score}`: {message}")]
    InvalidRange {
        source_name: String,
        rule: String,
        score: &'static str,
        message: String,
    },
    #[error("{source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
    #[error("unknown preset `{0}` (shipped presets: {1})")]
    UnknownPreset(String, String),
}

/// An inclusive range of scores within 1..=5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreRange {
    pub lo: u8,
    pub hi: u8,
}

impl ScoreRange {
    const ANY: ScoreRange = ScoreRange { lo: 1, hi: 5 };

    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (lo, hi) = match text.split_once('-') {
            Some((lo, hi)) => (lo.trim(), hi.trim()),
            None => (text, text),
        };
        let digit = |s: &str| -> Result<u8, String> {
            match s.parse::<u8>() {
                Ok(d @ 1..=5) => Ok(d),
                _ => Err(format!("`{text}` is not a score range (expected `lo-hi` with 1 ≤ lo ≤ hi ≤ 5, e.g. `4-5`)")),
            }
        };
        let (lo, hi) = (digit(lo)?, digit(hi)?);
        if lo > hi {
            return Err(format!(
                "`{text}`: the lower bound is above the upper bound"
            ));
        }
        Ok(ScoreRange { lo, hi })
    }

    fn contains(&self, score: u8) -> bool {
        (self.lo..=self.hi).contains(&score)
    }
}

/// One rule of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub segment: String,
    pub r: ScoreRange,
    pub f: ScoreRange,
    pub m: ScoreRange,
}

impl Rule {
    pub fn matches(&self, r: u8, f: u8, m: u8) -> bool {
        self.r.contains(r) && self.f.contains(f) && self.m.contains(m)
    }
}

/// A validated, ordered rule table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTable {
    pub name: String,
    pub description: String,
    pub rules: Vec<Rule>,
    /// Index of the first matching rule for cell (r-1)*25 + (f-1)*5 + (m-1).
    lookup: Vec<Option<u16>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    segment: String,
    r: Option<String>,
    f: Option<String>,
    m: Option<String>,
}

/// Result of [`RuleTable::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellCheck {
    /// (R, F, M) cells that no rule matches.
    pub unmatched: Vec<(u8, u8, u8)>,
    /// Ids of rules that never fire because earlier rules take all their cells.
    pub unreachable: Vec<String>,
    /// Cells won by each rule, in table order.
    pub cells_per_rule: Vec<(String, usize)>,
}

impl CellCheck {
    pub fn is_ok(&self) -> bool {
        self.unmatched.is_empty() && self.unreachable.is_empty()
    }
}

fn cell(r: u8, f: u8, m: u8) -> usize {
    (r as usize - 1) * 25 + (f as usize - 1) * 5 + (m as usize - 1)
}

fn all_cells() -> impl Iterator<Item = (u8, u8, u8)> {
    (1..=5u8).flat_map(|r| (1..=5u8).flat_map(move |f| (1..=5u8).map(move |m| (r, f, m))))
}

impl RuleTable {
    /// Parses a rule table; `source_name` (a path or `preset:NAME`) is used in errors.
    /// Checks syntax, ranges and unique ids; coverage is checked by [`RuleTable::check`].
    pub fn from_toml(text: &str, source_name: &str) -> Result<Self, RuleError> {
        let raw: RawTable = toml::from_str(text).map_err(|e| RuleError::Parse {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        if raw.rule.is_empty() {
            return Err(RuleError::Invalid {
                source_name: source_name.to_string(),
                message: "the table has no [[rule]]".into(),
            });
        }
        let mut rules = Vec::with_capacity(raw.rule.len());
        for raw_rule in raw.rule {
            if rules.iter().any(|r: &Rule| r.id == raw_rule.id) {
                return Err(RuleError::Invalid {
                    source_name: source_name.to_string(),
                    message: format!("rule id `{}` appears twice", raw_rule.id),
                });
            }
            let range = |value: &Option<String>, score: &'static str| match value {
                None => Ok(ScoreRange::ANY),
                Some(text) => ScoreRange::parse(text).map_err(|message| RuleError::InvalidRange {
                    source_name: source_name.to_string(),
                    rule: raw_rule.id.clone(),
                    score,
                    message,
                }),
            };
            rules.push(Rule {
                r: range(&raw_rule.r, "r")?,
                f: range(&raw_rule.f, "f")?,
                m: range(&raw_rule.m, "m")?,
                id: raw_rule.id,
                segment: raw_rule.segment,
            });
        }
        let lookup = all_cells()
            .map(|(r, f, m)| {
                rules
                    .iter()
                    .position(|rule| rule.matches(r, f, m))
                    .map(|i| i as u16)
            })
            .collect();
        Ok(RuleTable {
            name: raw.name,
            description: raw.description,
            rules,
            lookup,
        })
    }

    /// Loads a shipped preset by name.
    pub fn preset(name: &str) -> Result<Self, RuleError> {
        match PRESETS.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => Self::from_toml(text, &format!("preset:{n}")),
            None => Err(RuleError::UnknownPreset(
                name.to_string(),
                PRESETS.iter().map(|p| p.0).collect::<Vec<_>>().join(", "),
            )),
        }
    }

    /// Total-coverage and reachability check over the 125 cells.
    pub fn check(&self) -> CellCheck {
        let mut unmatched = Vec::new();
        let mut wins = vec![0usize; self.rules.len()];
        for (r, f, m) in all_cells() {
            match self.lookup[cell(r, f, m)] {
                Some(i) => wins[i as usize] += 1,
                None => unmatched.push((r, f, m)),
            }
        }
        CellCheck {
            unmatched,
            unreachable: self
                .rules
                .iter()
                .zip(&wins)
                .filter(|(_, w)| **w == 0)
                .map(|(r, _)| r.id.clone())
                .collect(),
            cells_per_rule: self
                .rules
                .iter()
                .zip(wins)
                .map(|(r, w)| (r.id.clone(), w))
                .collect(),
        }
    }

    /// The rule that fires for a cell, if any.
    pub fn classify(&self, r: i64, f: i64, m: i64) -> Option<&Rule> {
        let ok = |s: i64| (1..=5).contains(&s);
        if !(ok(r) && ok(f) && ok(m)) {
            return None;
        }
        self.lookup[cell(r as u8, f as u8, m as u8)].map(|i| &self.rules[i as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_presets_cover_every_cell_and_have_no_dead_rule() {
        for (name, _) in PRESETS {
            let table = RuleTable::preset(name).unwrap();
            let check = table.check();
            assert!(check.is_ok(), "{name}: {check:?}");
            assert_eq!(check.cells_per_rule.iter().map(|c| c.1).sum::<usize>(), 125);
        }
    }

    #[test]
    fn first_match_wins() {
        let t = RuleTable::preset("default").unwrap();
        assert_eq!(t.classify(5, 5, 5).unwrap().id, "champions");
        assert_eq!(t.classify(5, 5, 1).unwrap().id, "loyal");
        assert_eq!(t.classify(1, 5, 5).unwrap().id, "cant_lose");
        assert_eq!(t.classify(1, 1, 1).unwrap().id, "lost");
        assert!(t.classify(0, 1, 1).is_none());
    }

    #[test]
    fn gaps_and_shadowed_rules_are_reported() {
        let text = r#"
            name = "broken"
            [[rule]]
            id = "recent"
            segment = "Recent"
            r = "3-5"
            [[rule]]
            id = "very_recent"
            segment = "Very recent"
            r = "5"
        "#;
        let check = RuleTable::from_toml(text, "broken.toml").unwrap().check();
        assert_eq!(check.unmatched.len(), 50);
        assert_eq!(check.unreachable, vec!["very_recent".to_string()]);
    }

    #[test]
    fn bad_ranges_and_unknown_keys_are_errors() {
        let bad = "name='x'\n[[rule]]\nid='a'\nsegment='A'\nr='6'\n";
        let err = RuleTable::from_toml(bad, "x.toml").unwrap_err().to_string();
        assert!(err.contains("rule `a`, score `r`"), "{err}");
        let typo = "name='x'\n[[rule]]\nid='a'\nsegment='A'\nrr='5'\n";
        assert!(RuleTable::from_toml(typo, "x.toml").is_err());
    }
}

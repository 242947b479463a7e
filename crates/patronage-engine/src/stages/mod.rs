//! The pipeline stages, one module each, in run order: [`ingest`] → [`features`] → [`models`] →
//! [`segments`] → [`clusters`] → [`loyalty`] → [`write`]. A stage takes what earlier stages produced and returns its tables
//! (name and frame, in output order) and its own manifest section; the job only sequences them.
//! Adding a table is one place: the stage that makes it (and its name in [`crate::TABLES`], so a
//! rerun that no longer writes it removes the stale partition).

pub(crate) mod clusters;
pub(crate) mod features;
pub(crate) mod ingest;
pub(crate) mod loyalty;
pub(crate) mod models;
pub(crate) mod segments;
pub(crate) mod write;

use polars::prelude::DataFrame;

/// Pipeline stages, reported to the caller as they start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Ingest,
    Features,
    Models,
    Segments,
    Clusters,
    Loyalty,
    Write,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Features => "features",
            Stage::Models => "models",
            Stage::Segments => "segments",
            Stage::Clusters => "clusters",
            Stage::Loyalty => "loyalty",
            Stage::Write => "write",
        }
    }
}

/// What a run tells its caller as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A stage starts.
    Stage(Stage),
    /// A step of a partitioned run starts (`route`, `partial 2/8`, `fit`...); the stages that
    /// follow belong to it.
    Phase(&'a str),
    /// Something the user should know that does not stop the run (also in the manifest).
    Warning(&'a str),
}

/// Tables a stage hands to the write stage, in output order.
pub(crate) type Tables = Vec<(&'static str, DataFrame)>;

/// Warnings for the user: told to the caller as they happen, kept for the manifest.
pub(crate) struct Warnings<'a> {
    report: &'a dyn Fn(Event),
    pub list: Vec<String>,
}

impl<'a> Warnings<'a> {
    pub fn new(report: &'a dyn Fn(Event)) -> Self {
        Warnings {
            report,
            list: Vec::new(),
        }
    }

    pub fn warn(&mut self, w: String) {
        (self.report)(Event::Warning(&w));
        self.list.push(w);
    }
}

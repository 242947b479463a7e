//! Engine errors: user/data errors (bad input, bad config) apart from internal failures.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Input(#[from] patronage_input::InputError),
    #[error(transparent)]
    Rules(#[from] patronage_segments::RuleError),
    #[error("{path}: invalid config: {message}")]
    InvalidConfig { path: String, message: String },
    /// A wrong or missing command-line flag (exit code 2).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    InvalidOptions(String),
    #[error("nothing to score for as-of {as_of}: {explanation}")]
    NoData { as_of: String, explanation: String },
    #[error("{0}")]
    Model(patronage_models::ModelError),
    #[error(transparent)]
    Output(#[from] patronage_output::OutputError),
    /// A stage asked for a feature the table does not hold: a bug in how stages are wired.
    #[error("internal error: {0}")]
    Feature(#[from] patronage_features::FeatureError),
    #[error("internal error building table `{table}`: {message}")]
    Internal { table: String, message: String },
}

impl EngineError {
    /// True for errors caused by the user's data or configuration (exit code 1), false for bugs
    /// and I/O failures of the machine.
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            EngineError::Internal { .. }
                | EngineError::Feature(_)
                | EngineError::Output(patronage_output::OutputError::NonFinite { .. })
        )
    }

    /// True for a wrong or missing flag (exit code 2).
    pub fn is_usage_error(&self) -> bool {
        matches!(self, EngineError::Usage(_))
    }

    /// True when another run holds the output directory (exit code 5: retry later).
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            EngineError::Output(patronage_output::OutputError::Busy { .. })
        )
    }
}

//! Engine errors: user/data errors (bad input, bad config) apart from internal failures.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Input(#[from] patronage_input::InputError),
    #[error(transparent)]
    Rules(#[from] patronage_segments::RuleError),
    #[error("{path}: invalid config: {message}")]
    InvalidConfig { path: String, message: String },
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    #[error("no valid order on or before the as-of date {as_of}: nothing to score ({hint})")]
    NoData { as_of: String, hint: String },
    #[error("{0}")]
    Model(patronage_models::ModelError),
    #[error(transparent)]
    Output(#[from] patronage_output::OutputError),
    #[error("internal error building table `{table}`: {message}")]
    Internal { table: String, message: String },
}

impl EngineError {
    /// True for errors caused by the user's data or configuration (exit code 1), false for bugs
    /// and I/O failures of the machine.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, EngineError::Internal { .. })
    }
}

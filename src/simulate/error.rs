//! What can go wrong in `celery-scaler simulate`, and the exit code of each.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid scenario: {message}")]
    Scenario { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("JSON output: {0}")]
    Json(#[from] serde_json::Error),
}

impl SimError {
    /// 64: the scenario or a trace it names is unreadable or invalid (limits included);
    /// 73: an output file (`--csv`, `--svg`) cannot be written; 70: an internal error.
    pub fn exit_code(&self) -> u8 {
        match self {
            SimError::Io { .. } | SimError::Scenario { .. } => 64,
            SimError::Output { .. } => 73,
            SimError::Json(_) => 70,
        }
    }
}

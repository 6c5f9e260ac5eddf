//! The one error type of the SDK, mirroring the WIT `plugin-error` variant.
//!
//! The host maps each case to an HTTP status (`invalid-input` → 422, `invalid-config` → 400,
//! `internal` → 500) and shows the message to the caller, so messages should say what was wrong
//! in terms the caller understands (the column, the config key, the offending value).

use std::fmt;

use arrow_schema::ArrowError;

/// A plugin failure, converted by the export macros into the WIT `plugin-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The data cannot be processed (malformed CSV, missing column, bad fitted state...).
    InvalidInput(String),
    /// The configuration is wrong (unknown key, unparsable value, missing required key).
    InvalidConfig(String),
    /// The plugin failed for a reason of its own.
    Internal(String),
}

/// `Result` with the SDK's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The input data cannot be processed.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// The configuration is wrong.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::InvalidConfig(message.into())
    }

    /// The plugin failed for a reason of its own.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// The message without the kind prefix.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidInput(m) | Self::InvalidConfig(m) | Self::Internal(m) => m,
        }
    }

    /// The WIT case name: `invalid-input`, `invalid-config` or `internal`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "invalid-input",
            Self::InvalidConfig(_) => "invalid-config",
            Self::Internal(_) => "internal",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for Error {}

/// Arrow errors almost always come from data the plugin was given (bad IPC, schema mismatch,
/// unparsable values), so they map to [`Error::InvalidInput`]. Use [`Error::internal`] explicitly
/// where an Arrow failure is the plugin's own fault.
impl From<ArrowError> for Error {
    fn from(e: ArrowError) -> Self {
        Self::InvalidInput(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_and_display() {
        let e = Error::invalid_input("bad row 3");
        assert_eq!(e, Error::InvalidInput("bad row 3".into()));
        assert_eq!(e.to_string(), "invalid-input: bad row 3");
        assert_eq!(Error::invalid_config("x").kind(), "invalid-config");
        assert_eq!(Error::internal("boom").message(), "boom");
    }

    #[test]
    fn arrow_error_is_invalid_input() {
        let e: Error = ArrowError::ParseError("nope".into()).into();
        assert!(matches!(e, Error::InvalidInput(m) if m.contains("nope")));
    }
}

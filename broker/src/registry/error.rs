//! Registry errors, with the HTTP status and Confluent error code each maps to.

/// Why a registry request failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No such subject.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// No such version.
    #[error("Version not found.")]
    VersionNotFound,
    /// No such schema.
    #[error("Schema not found")]
    SchemaNotFound,
    /// The schema text did not parse.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// A version that is neither a positive number nor `latest`.
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    /// An unknown compatibility level.
    #[error("Invalid compatibility level: {0}")]
    InvalidCompatibility(String),
    /// The request body is not what the endpoint takes.
    #[error("Unprocessable request: {0}")]
    BadRequest(String),
    /// The subject has no subject-level compatibility.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    NoSubjectCompatibility(String),
    /// Refused by the compatibility check.
    #[error("Schema being registered is incompatible with an earlier schema for subject: {0}")]
    Incompatible(String),
    /// The durable state could not be read or written.
    #[error("Error in the backend data store: {0}")]
    Storage(String),
}

impl RegistryError {
    /// (HTTP status, Confluent error code).
    pub fn codes(&self) -> (u16, u32) {
        match self {
            Self::SubjectNotFound(_) => (404, 40401),
            Self::VersionNotFound => (404, 40402),
            Self::SchemaNotFound => (404, 40403),
            Self::NoSubjectCompatibility(_) => (404, 40408),
            Self::InvalidSchema(_) => (422, 42201),
            Self::InvalidVersion(_) => (422, 42202),
            Self::InvalidCompatibility(_) => (422, 42203),
            Self::BadRequest(_) => (422, 422),
            Self::Incompatible(_) => (409, 409),
            Self::Storage(_) => (500, 50001),
        }
    }
}

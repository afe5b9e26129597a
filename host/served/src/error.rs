//! What can go wrong talking to a served model. Every variant names the model, the endpoint and
//! the request.

use ponder_plugin_runtime::capability::ModelAccessError;

/// Why a served model could not be set up or did not answer a request.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ServedError {
    /// `api_key_env` names an environment variable that is not set (or not Unicode).
    #[error(
        "models.{model}: the environment variable `{variable}` (api_key_env) is not set; export \
         the API key in it, or remove api_key_env for a server without one"
    )]
    MissingApiKey {
        /// The model's name in `[models]`.
        model: String,
        /// The variable.
        variable: String,
    },
    /// No reply within the request's timeout.
    #[error(
        "served model `{model}` ({endpoint}), {request}: no reply within {timeout_ms} ms \
         (models.{model}.timeout_ms)"
    )]
    Timeout {
        /// The model's name in `[models]`.
        model: String,
        /// The URL posted to.
        endpoint: String,
        /// Which request of the call.
        request: String,
        /// The timeout applied.
        timeout_ms: u64,
    },
    /// The server could not be reached, on every attempt.
    #[error(
        "served model `{model}` ({endpoint}), {request}: cannot reach the server after \
         {attempts} attempt(s): {message}"
    )]
    Connection {
        /// The model's name in `[models]`.
        model: String,
        /// The URL posted to.
        endpoint: String,
        /// Which request of the call.
        request: String,
        /// Attempts made.
        attempts: u32,
        /// The last connection error.
        message: String,
    },
    /// The server answered with an error status (after retries, for 429 and 5xx).
    #[error(
        "served model `{model}` ({endpoint}), {request}: HTTP {status} after {attempts} \
         attempt(s): {body}"
    )]
    Status {
        /// The model's name in `[models]`.
        model: String,
        /// The URL posted to.
        endpoint: String,
        /// Which request of the call.
        request: String,
        /// The HTTP status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The start of the reply's body (the server's error message).
        body: String,
    },
    /// The reply is not what the API promises: not JSON, or JSON of another shape.
    #[error(
        "served model `{model}` ({endpoint}), {request}: malformed reply: {message}; the reply \
         begins {start:?}"
    )]
    Malformed {
        /// The model's name in `[models]`.
        model: String,
        /// The URL posted to.
        endpoint: String,
        /// Which request of the call.
        request: String,
        /// What is wrong with it.
        message: String,
        /// The first characters of the reply.
        start: String,
    },
    /// The server did not come up (after a reload) within the time given.
    #[error(
        "served model `{model}` ({endpoint}): not answering after {waited_s} s (last: {last}); \
         is the server running, and did the reload command start it?"
    )]
    NotReady {
        /// The model's name in `[models]`.
        model: String,
        /// The URL polled.
        endpoint: String,
        /// How long it was waited for.
        waited_s: u64,
        /// The last answer (a status or a connection error).
        last: String,
    },
    /// The reply's body broke off before its end.
    #[error("served model `{model}` ({endpoint}), {request}: the reply was cut off: {message}")]
    Truncated {
        /// The model's name in `[models]`.
        model: String,
        /// The URL posted to.
        endpoint: String,
        /// Which request of the call.
        request: String,
        /// The read error.
        message: String,
    },
}

impl From<ServedError> for ModelAccessError {
    fn from(error: ServedError) -> Self {
        ModelAccessError::Failed(error.to_string())
    }
}

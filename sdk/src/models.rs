//! Host models behind a trait (WIT interface `models`), so judge logic runs natively against a
//! test double and inside a component against the host. The request and error types are the
//! contract's (`ponder-contract`), re-exported here.
//!
//! Every function takes a batch: send one call with the work of all requests of a `judge` call.

pub use ponder_contract::{
    ChoiceRequest, GenerateRequest, ModelAccessError, RewardRequest, Sampling,
};

/// The former name of [`ModelAccessError`] (renamed: `ModelError` is also the model core's own
/// error in the host).
#[deprecated(note = "renamed `ModelAccessError`")]
pub type ModelError = ModelAccessError;

/// The models a judge may call, by the names of the manifest's `[models.NAME]` tables.
///
/// Inside a component the export macro passes the host's implementation; in native unit tests,
/// pass a test double.
pub trait Models {
    /// One reply per request, in order, without the prompt.
    fn generate(
        &self,
        model: &str,
        requests: &[GenerateRequest],
    ) -> Result<Vec<String>, ModelAccessError>;

    /// Per request, the total natural-log probability of each choice, in the order of `choices`.
    fn choice_logprobs(
        &self,
        model: &str,
        requests: &[ChoiceRequest],
    ) -> Result<Vec<Vec<f64>>, ModelAccessError>;

    /// A reward model's scalar per request.
    fn reward(&self, model: &str, requests: &[RewardRequest])
    -> Result<Vec<f64>, ModelAccessError>;
}

/// A [`Models`] that grants nothing: every call is [`ModelAccessError::NotGranted`]. For judges that
/// need no model, in tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoModels;

impl Models for NoModels {
    fn generate(&self, _: &str, _: &[GenerateRequest]) -> Result<Vec<String>, ModelAccessError> {
        Err(ModelAccessError::NotGranted)
    }

    fn choice_logprobs(
        &self,
        _: &str,
        _: &[ChoiceRequest],
    ) -> Result<Vec<Vec<f64>>, ModelAccessError> {
        Err(ModelAccessError::NotGranted)
    }

    fn reward(&self, _: &str, _: &[RewardRequest]) -> Result<Vec<f64>, ModelAccessError> {
        Err(ModelAccessError::NotGranted)
    }
}

//! The capability through which granted plugins reach models: the `models` host interface of the
//! WIT, as a plain Rust trait. The model core implements it (an adapter in the CLI/pipeline side);
//! this crate only routes plugin calls to it, so it needs no model code and no burn.
//!
//! The request and error types are the contract's (`ponder-contract`), re-exported here.
//! [`ModelAccessError::NotGranted`] never reaches the trait: the runtime decides it from the
//! manifest's grants before a call is forwarded, and implementations do not return it.

pub use ponder_contract::{
    ChoiceRequest, GenerateRequest, Message, ModelAccessError, RewardRequest, Sampling,
};

/// Batched access to the models a manifest names. Implementations must be usable from several
/// threads; each function receives all requests of one plugin call at once.
pub trait ModelAccess: Send + Sync {
    /// One reply per request, in request order, without the prompt.
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

    /// The reward model's scalar for each request.
    fn reward(&self, model: &str, requests: &[RewardRequest])
    -> Result<Vec<f64>, ModelAccessError>;
}

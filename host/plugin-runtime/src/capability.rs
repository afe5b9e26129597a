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

use std::fmt;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// Which budget of a plugin call its model work ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetExceeded {
    /// The call's wall-clock time, model calls included (`limits.call_timeout_ms`).
    Time {
        /// The limit, in milliseconds.
        call_timeout_ms: u64,
    },
    /// The tokens generated for the call (`limits.generated_tokens`).
    Tokens {
        /// The limit.
        generated_tokens: u64,
    },
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetExceeded::Time { call_timeout_ms } => write!(
                f,
                "the call ran longer than its {call_timeout_ms} ms of wall-clock time, model \
                 calls included (limits.call_timeout_ms)"
            ),
            BudgetExceeded::Tokens { generated_tokens } => write!(
                f,
                "the call's model requests needed more than its {generated_tokens} generated \
                 tokens (limits.generated_tokens)"
            ),
        }
    }
}

/// What one plugin call may still spend on model work. The runtime makes one per call and hands
/// it to every [`ModelAccess`] function; implementations count each generated token with
/// [`ModelBudget::spend_token`], look at the clock with [`ModelBudget::check_time`] between
/// other units of work (a scoring batch, say), and stop as soon as either breaks. The runtime
/// then interrupts the plugin call, whatever the implementation returned.
#[derive(Debug, Clone)]
pub struct ModelBudget {
    deadline: Instant,
    call_timeout_ms: u64,
    token_limit: u64,
    tokens_used: u64,
    exceeded: Option<BudgetExceeded>,
}

impl ModelBudget {
    /// A budget ending at `started + call_timeout` with `token_limit` generated tokens.
    pub fn new(started: Instant, call_timeout: Duration, token_limit: u64) -> Self {
        let call_timeout_ms = u64::try_from(call_timeout.as_millis()).unwrap_or(u64::MAX);
        ModelBudget {
            // A timeout too large to represent is no deadline.
            deadline: started
                .checked_add(call_timeout)
                .unwrap_or_else(|| started + Duration::from_secs(u32::MAX.into())),
            call_timeout_ms,
            token_limit,
            tokens_used: 0,
            exceeded: None,
        }
    }

    /// A budget that never runs out in practice (for tools and tests outside a plugin call).
    pub fn unlimited() -> Self {
        ModelBudget::new(
            Instant::now(),
            Duration::from_secs(u32::MAX.into()),
            u64::MAX,
        )
    }

    /// Counts one generated token; breaks when the call has no tokens or time left.
    pub fn spend_token(&mut self) -> ControlFlow<BudgetExceeded> {
        if self.tokens_used >= self.token_limit {
            return self.exceed(BudgetExceeded::Tokens {
                generated_tokens: self.token_limit,
            });
        }
        self.tokens_used += 1;
        self.check_time()
    }

    /// Breaks when the call's wall-clock time is used up.
    pub fn check_time(&mut self) -> ControlFlow<BudgetExceeded> {
        if let Some(exceeded) = self.exceeded {
            return ControlFlow::Break(exceeded);
        }
        if Instant::now() >= self.deadline {
            return self.exceed(BudgetExceeded::Time {
                call_timeout_ms: self.call_timeout_ms,
            });
        }
        ControlFlow::Continue(())
    }

    fn exceed(&mut self, exceeded: BudgetExceeded) -> ControlFlow<BudgetExceeded> {
        self.exceeded = Some(exceeded);
        ControlFlow::Break(exceeded)
    }

    /// The budget that ran out, if one did.
    pub fn exceeded(&self) -> Option<BudgetExceeded> {
        self.exceeded
    }

    /// Tokens generated so far.
    pub fn tokens_used(&self) -> u64 {
        self.tokens_used
    }

    /// Tokens the call may still generate: what a model served elsewhere may be asked for at
    /// most, since its work cannot be counted token by token as it runs.
    pub fn tokens_left(&self) -> u64 {
        self.token_limit.saturating_sub(self.tokens_used)
    }

    /// Wall-clock time the call has left (zero once the deadline has passed): the longest a
    /// request to a model served elsewhere may wait.
    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Batched access to the models a manifest names. Implementations must be usable from several
/// threads; each function receives all requests of one `models` call at once, already checked
/// against the plugin's caps (batch size, choices, `max-new-tokens`), and the call's
/// [`ModelBudget`], which they must honour as they go. They split the work into batches the host
/// can hold.
pub trait ModelAccess: Send + Sync {
    /// One reply per request, in request order, without the prompt.
    fn generate(
        &self,
        model: &str,
        requests: &[GenerateRequest],
        budget: &mut ModelBudget,
    ) -> Result<Vec<String>, ModelAccessError>;

    /// Per request, the total natural-log probability of each choice, in the order of `choices`.
    fn choice_logprobs(
        &self,
        model: &str,
        requests: &[ChoiceRequest],
        budget: &mut ModelBudget,
    ) -> Result<Vec<Vec<f64>>, ModelAccessError>;

    /// The reward model's scalar for each request.
    fn reward(
        &self,
        model: &str,
        requests: &[RewardRequest],
        budget: &mut ModelBudget,
    ) -> Result<Vec<f64>, ModelAccessError>;
}

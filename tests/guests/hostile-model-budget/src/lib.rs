//! Hostile judge for the runtime's model budgets (granted `models`). The second response of an
//! `attack` request names the attack:
//! - `generate-forever`: `models.generate` with 64 requests of 64 new tokens, in an endless loop
//!   (only the call's wall time or token budget can stop it);
//! - `huge-max-new-tokens`: one request asking for 1,000,000 new tokens;
//! - `many-choices`: one `choice-logprobs` request with 200,000 choices;
//! - `huge-batch`: 5,000 generate requests in one call;
//! - `many-requests`: generate calls of 100 requests each, until the host refuses one.
//!
//! A refused model call comes back as the plugin's `failed` error carrying the host's message.

guest_support::hostile_judge!();

use ponder::plugin::models::{self, ChoiceRequest, GenerateRequest, ModelError, Sampling};

fn user(content: &str) -> Vec<ponder::plugin::types::Message> {
    vec![ponder::plugin::types::Message {
        role: "user".to_string(),
        content: content.to_string(),
    }]
}

fn generation(max_new_tokens: u32, count: usize) -> Vec<GenerateRequest> {
    (0..count)
        .map(|index| GenerateRequest {
            messages: user(&format!("Count to {index}.")),
            sampling: Sampling {
                temperature: 0.8,
                top_p: 0.95,
                max_new_tokens,
                seed: index as u64,
                stop: Vec::new(),
            },
        })
        .collect()
}

fn refused(error: ModelError) -> PluginError {
    PluginError::Failed(match error {
        ModelError::InvalidRequest(message) => format!("invalid-request: {message}"),
        other => format!("{other:?}"),
    })
}

fn attack(request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    let which = request.responses.get(1).map(String::as_str).unwrap_or("");
    match which {
        "generate-forever" => loop {
            models::generate("judge", &generation(64, 64)).map_err(refused)?;
        },
        "huge-max-new-tokens" => {
            models::generate("judge", &generation(1_000_000, 1)).map_err(refused)?;
        }
        "many-choices" => {
            let choices = (0..200_000).map(|index| index.to_string()).collect();
            let choice = ChoiceRequest {
                messages: user("Pick a number."),
                prefix: String::new(),
                choices,
            };
            models::choice_logprobs("judge", &[choice]).map_err(refused)?;
        }
        "huge-batch" => {
            models::generate("judge", &generation(8, 5_000)).map_err(refused)?;
        }
        "many-requests" => loop {
            models::generate("judge", &generation(8, 100)).map_err(refused)?;
        },
        other => return Err(PluginError::Failed(format!("unknown attack `{other}`"))),
    }
    Ok(lengths(request))
}

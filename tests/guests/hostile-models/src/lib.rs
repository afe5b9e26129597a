//! Hostile judge for the runtime's tests: calls `models.generate` (granted or not); scores are the reply lengths.
//! Behaves (scores each response by its length) unless the first response of a request is
//! `attack`.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "judge",
});

use exports::ponder::plugin::judging::{Guest, JudgeRequest};
use ponder::plugin::types::PluginError;

struct Hostile;

fn lengths(request: &JudgeRequest) -> Vec<Option<f64>> {
    request
        .responses
        .iter()
        .map(|response| Some(response.len() as f64))
        .collect()
}

impl Guest for Hostile {
    fn configure(_config: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn judge(requests: Vec<JudgeRequest>) -> Vec<Result<Vec<Option<f64>>, PluginError>> {
        requests
            .iter()
            .map(|request| {
                if request
                    .responses
                    .first()
                    .is_some_and(|first| first == "attack")
                {
                    attack(request)
                } else {
                    Ok(lengths(request))
                }
            })
            .collect()
    }
}

export!(Hostile);

fn attack(request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    use ponder::plugin::models::{self, GenerateRequest, Sampling};
    let requests: Vec<GenerateRequest> = request
        .responses
        .iter()
        .map(|response| GenerateRequest {
            messages: vec![ponder::plugin::types::Message {
                role: "user".to_string(),
                content: response.clone(),
            }],
            sampling: Sampling {
                temperature: 0.0,
                top_p: 1.0,
                max_new_tokens: 8,
                seed: 1,
                stop: Vec::new(),
            },
        })
        .collect();
    let replies = models::generate("judge", &requests).expect("models.generate");
    Ok(replies
        .iter()
        .map(|reply| Some(reply.len() as f64))
        .collect())
}

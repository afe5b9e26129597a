//! Hostile judge for the runtime's tests: calls `models.generate` (granted or not); scores are the reply lengths.
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!();

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

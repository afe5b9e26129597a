//! A judge that fails whole calls on marked rows, for the pipeline's row-failure tests: a call
//! traps (`unreachable`) when any request's instruction contains `[trap]`, and returns one score too
//! few for a request whose instruction contains `[short]` (output that breaks the contract, so
//! the host refuses the whole call). Every other request scores each response by its length.

guest_support::wit_bindgen::generate!({
    path: "../../../wit/v0.1.0",
    world: "judge",
    runtime_path: "::guest_support::wit_bindgen::rt",
});

use exports::ponder::plugin::judging::{Guest, JudgeRequest};
use ponder::plugin::types::PluginError;

struct MarkedJudge;

/// Whether any message of the request's instruction contains `marker`.
fn is_marked(request: &JudgeRequest, marker: &str) -> bool {
    request
        .instruction
        .iter()
        .any(|message| message.content.contains(marker))
}

impl Guest for MarkedJudge {
    fn configure(_config: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn judge(requests: Vec<JudgeRequest>) -> Vec<Result<Vec<Option<f64>>, PluginError>> {
        if requests.iter().any(|request| is_marked(request, "[trap]")) {
            core::arch::wasm32::unreachable()
        }
        requests
            .iter()
            .map(|request| {
                let mut scores: Vec<Option<f64>> = request
                    .responses
                    .iter()
                    .map(|response| Some(response.len() as f64))
                    .collect();
                if is_marked(request, "[short]") {
                    scores.pop();
                }
                Ok(scores)
            })
            .collect()
    }
}

export!(MarkedJudge);

//! Probe judge for the runtime's tests: reads `wasi:random` (which must be a stream seeded by
//! the host).
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

fn attack(_request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    // The top 52 bits, so the value is exact as an f64.
    let secure = wasip2::random::random::get_random_u64() >> 12;
    let insecure = wasip2::random::insecure::get_insecure_random_u64() >> 12;
    Ok(vec![Some(secure as f64), Some(insecure as f64)])
}

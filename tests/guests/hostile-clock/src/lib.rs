//! Probe judge for the runtime's tests: reads the wall clock and measures a busy loop with the
//! monotonic clock (both must be fixed in the sandbox).
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
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs_f64())
        .unwrap_or(-1.0);
    let started = std::time::Instant::now();
    let mut spin: u64 = 0;
    for step in 0..1_000_000u64 {
        spin = std::hint::black_box(spin.wrapping_add(step));
    }
    let elapsed = started.elapsed().as_nanos() as f64;
    Ok(vec![Some(wall), Some(elapsed)])
}

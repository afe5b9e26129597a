//! Hostile judge for the runtime's tests: opens a TCP connection.
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
    let stream = std::net::TcpStream::connect("127.0.0.1:80").expect("connecting to 127.0.0.1:80");
    std::hint::black_box(&stream);
    Ok(vec![Some(1.0)])
}

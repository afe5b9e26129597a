//! What the guests of the runtime's tests share: the bindings, the export and a judge that
//! behaves (scores each response by its length) unless the first response of a request is
//! `attack` (each hostile crate keeps only its misbehaviour, the `attack` function); and a plain
//! thought template for the contract-version tests (`template-v*` crates).

/// Re-exported so that the guests' bindings need no `wit-bindgen` dependency of their own.
pub use wit_bindgen;

/// Generates the `judge` world's bindings and exports a judge that scores each response by its
/// length, except for requests whose first response is `attack`: those go to the invoking crate's
/// `fn attack(request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError>`.
///
/// The bindings come from the repository's frozen `wit/v0.1.0/` (the guest crates sit three
/// levels below `wit/`), so the hostile judges are also 0.1.0 components the host must keep
/// loading;
/// `hostile_judge!(wit: "path")` names another WIT directory, relative to the guest crate.
/// `JudgeRequest`, `PluginError`, the generated `ponder` module and `fn lengths(&JudgeRequest)`
/// (the well-behaved scores) are in scope for `attack`.
#[macro_export]
macro_rules! hostile_judge {
    () => {
        $crate::hostile_judge!(wit: "../../../wit/v0.1.0");
    };
    (wit: $wit:tt) => {
        $crate::wit_bindgen::generate!({
            path: $wit,
            world: "judge",
            runtime_path: "::guest_support::wit_bindgen::rt",
        });

        use exports::ponder::plugin::judging::{Guest, JudgeRequest};
        use ponder::plugin::types::PluginError;

        struct Hostile;

        /// The well-behaved scores: each response's length.
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
    };
}

/// Generates the `thought-template` world's bindings from the WIT directory `wit` (relative to the
/// guest crate) and exports a plain template: `render` puts `Think, then answer after "Answer:".`
/// and a blank line in front of the last user message; `parse` splits at the first `Answer:`
/// (the thought is what comes before, both trimmed; no `Answer:` or an empty response is a parse
/// failure). Further items of the `Guest` impl (the functions a newer contract adds) follow the
/// path.
#[macro_export]
macro_rules! plain_template {
    (wit: $wit:tt $(, $($guest_items:tt)*)?) => {
        $crate::wit_bindgen::generate!({
            path: $wit,
            world: "thought-template",
            runtime_path: "::guest_support::wit_bindgen::rt",
        });

        use exports::ponder::plugin::template::{Guest, Parsed, Split};
        use ponder::plugin::types::{Message, PluginError};

        struct Plain;

        impl Guest for Plain {
            fn configure(_config: String) -> Result<(), PluginError> {
                Ok(())
            }

            fn render(mut instruction: Vec<Message>) -> Result<Vec<Message>, PluginError> {
                let last_user = instruction
                    .iter_mut()
                    .rev()
                    .find(|message| message.role == "user")
                    .ok_or_else(|| PluginError::InvalidInput("no user message".to_string()))?;
                last_user.content =
                    format!("Think, then answer after \"Answer:\".\n\n{}", last_user.content);
                Ok(instruction)
            }

            fn parse(output: String) -> Parsed {
                match output.split_once("Answer:") {
                    Some((thought, response)) if !response.trim().is_empty() => Parsed::Ok(Split {
                        thought: thought.trim().to_string(),
                        response: response.trim().to_string(),
                    }),
                    Some(_) => Parsed::Failure("the response is empty".to_string()),
                    None => Parsed::Failure("`Answer:` is missing".to_string()),
                }
            }

            $($($guest_items)*)?
        }

        export!(Plain);
    };
}

//! What the hostile judges of the runtime's tests share: the bindings, the export and a judge that
//! behaves (scores each response by its length) unless the first response of a request is
//! `attack`. Each hostile crate keeps only its misbehaviour, the `attack` function.

/// Re-exported so that the guests' bindings need no `wit-bindgen` dependency of their own.
pub use wit_bindgen;

/// Generates the `judge` world's bindings and exports a judge that scores each response by its
/// length, except for requests whose first response is `attack`: those go to the invoking crate's
/// `fn attack(request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError>`.
///
/// The bindings come from the repository's `wit/` (the guest crates sit three levels below it);
/// `hostile_judge!(wit: "path")` names another WIT directory, relative to the guest crate.
/// `JudgeRequest`, `PluginError`, the generated `ponder` module and `fn lengths(&JudgeRequest)`
/// (the well-behaved scores) are in scope for `attack`.
#[macro_export]
macro_rules! hostile_judge {
    () => {
        $crate::hostile_judge!(wit: "../../../wit");
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

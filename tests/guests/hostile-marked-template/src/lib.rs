//! A thought template whose `parse` traps on some outputs, for the pipeline's row-failure tests:
//! it traps (`unreachable`) on an output whose length in bytes is a multiple of 5 (a rule the test can check
//! against the sampled outputs of a random model). Every other output is all response, no
//! thought; `render` leaves the instruction as it is.

guest_support::wit_bindgen::generate!({
    path: "../../../wit/v0.1.0",
    world: "thought-template",
    runtime_path: "::guest_support::wit_bindgen::rt",
});

use exports::ponder::plugin::template::{Guest, Parsed, Split};
use ponder::plugin::types::{Message, PluginError};

struct MarkedTemplate;

impl Guest for MarkedTemplate {
    fn configure(_config: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn render(instruction: Vec<Message>) -> Result<Vec<Message>, PluginError> {
        Ok(instruction)
    }

    fn parse(output: String) -> Parsed {
        if output.len().is_multiple_of(5) {
            core::arch::wasm32::unreachable()
        }
        Parsed::Ok(Split {
            thought: String::new(),
            response: output,
        })
    }
}

export!(MarkedTemplate);

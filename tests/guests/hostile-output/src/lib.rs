//! Hostile thought template for the runtime's tests: `render` returns a multi-gigabyte message
//! when the instruction is `attack`.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "thought-template",
});

use exports::ponder::plugin::template::{Guest, Parsed, Split};
use ponder::plugin::types::{Message, PluginError};

struct Hostile;

impl Guest for Hostile {
    fn configure(_config: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn render(instruction: Vec<Message>) -> Result<Vec<Message>, PluginError> {
        if instruction
            .first()
            .is_some_and(|first| first.content == "attack")
        {
            let huge = "x".repeat(3 << 30);
            return Ok(vec![Message {
                role: "user".to_string(),
                content: huge,
            }]);
        }
        Ok(instruction)
    }

    fn parse(output: String) -> Parsed {
        Parsed::Ok(Split {
            thought: String::new(),
            response: output,
        })
    }
}

export!(Hostile);

//! Hostile thought template for the runtime's tests: `render` returns a message of almost 2 GiB
//! when the instruction is `attack`.

wit_bindgen::generate!({
    path: "../../../wit/v0.1.0",
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
            // Grows towards 2 GiB (the largest allocation wasm32 allows) a mebibyte at a time.
            let chunk = "x".repeat(1 << 20);
            let mut huge = String::new();
            while huge.len() + chunk.len() < isize::MAX as usize {
                huge.push_str(&chunk);
            }
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

//! Loads a model (Hugging Face directory or GGUF file) and prints its configuration, tensor
//! count, special tokens and how long loading took.
//!
//! `cargo run --release -p ponder-checkpoint --example inspect -- models/SmolLM2-135M-Instruct.Q4_1.gguf`

use std::time::Instant;

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: inspect <model dir or .gguf>");
        std::process::exit(2);
    };
    let start = Instant::now();
    let checkpoint = match ponder_checkpoint::Checkpoint::load(path.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let elapsed = start.elapsed();
    let parameters: usize = checkpoint.weights.iter().map(|(_, t)| t.numel()).sum();
    println!("{:#?}", checkpoint.config);
    println!(
        "tensors: {}, parameters: {parameters}",
        checkpoint.weights.len()
    );
    println!(
        "special tokens: {:?}",
        checkpoint.tokenizer.special_tokens()
    );
    println!("end of turn: {:?}", checkpoint.end_of_turn_id());
    println!("chat template: {}", checkpoint.chat_template.is_some());
    println!("loaded in {:.3} s", elapsed.as_secs_f64());
}

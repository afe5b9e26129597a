//! The `ponder` binary. `main` only parses the command line and dispatches: every subcommand
//! group lives in its own module under `commands/`.
//!
//! To add a subcommand: write `commands/<name>.rs` with an `Args` struct (clap `Args` or
//! `Subcommand`) and a `run(args) -> anyhow::Result<()>` function, declare it in
//! `commands/mod.rs`, and add one variant plus one match arm below.

mod commands;
mod model_access;

use clap::{Parser, Subcommand};

/// Tensor code allocates and frees many large buffers per step; the system allocator hands them
/// back to the kernel and faults them in again (zeroed) on the next step, which cost about a fifth
/// of a DPO step. mimalloc keeps them for reuse (see [`keep_freed_memory`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (libmimalloc-sys names only some).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to return freed memory to the kernel: a training step frees its
/// activations at the end and allocates the same amounts again right away, and each purged
/// page would be faulted in and zeroed again (a quarter of a step's time, measured).
/// `MIMALLOC_PURGE_DELAY` in the environment (mimalloc's own setting) still wins.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets a process-wide allocator option; valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// ponder trains language models to think before they answer, with Thought Preference
/// Optimization (TPO). Policies (thought templates, judges, pair selectors) are sandboxed
/// WebAssembly plugins named in a TOML manifest.
#[derive(Parser, Debug)]
#[command(name = "ponder", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Thought Preference Optimization: sample, judge, select pairs and train with DPO, for the
    /// manifest's iterations; resumable.
    Train(commands::train::TrainArgs),
    /// Check, run and scaffold plugins.
    #[command(subcommand)]
    Plugins(commands::plugins::PluginsCommand),
    /// Sample from a model (K samples per prompt, batched).
    Generate(commands::model::GenerateArgs),
    /// Talk to a model on stdin, one user turn per line.
    Chat(commands::model::ChatArgs),
    /// Print token ids of a text as JSON.
    Tokenize(commands::model::TokenizeArgs),
    /// Print the most likely next tokens after a text.
    Logits(commands::model::LogitsArgs),
    /// Write a trained model's weights into the layout of the GGUF it was trained from, for a
    /// GGUF engine (llama.cpp's server; see `[sample] engine`).
    ExportGguf(commands::model::ExportGgufArgs),
    /// Direct Preference Optimization of a model on a preference-pairs file.
    Dpo(commands::dpo::DpoArgs),
    /// Compare model A with model B on held-out instructions (win rate, length-controlled win
    /// rate, bootstrap intervals; thoughts hidden from the judge) and measure IFEval's
    /// accuracies; prints a table and writes the result as JSON.
    Eval(Box<commands::eval::EvalArgs>),
    /// The paper's Table 1 in miniature: train every arm of an experiment manifest (e.g. TPO and
    /// the direct-response baseline), evaluate every iteration against the seed model, write
    /// the table; resumable.
    Experiment(commands::experiment::ExperimentArgs),
    /// Rebuild a run directory's report.html: plots of every iteration's figures and sample
    /// outputs before and after training (`ponder train` rebuilds it after each phase).
    Report(commands::report::ReportArgs),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Instruction sets: generate the built-in verifiable and open-ended sets, check a file.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
}

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Train(args) => commands::train::run(args),
        Command::Plugins(command) => commands::plugins::run(command),
        Command::Dpo(args) => commands::dpo::run(args),
        Command::Eval(args) => commands::eval::run(*args),
        Command::Experiment(args) => commands::experiment::run(args),
        Command::Bench(command) => commands::bench::run(command),
        Command::Report(args) => commands::report::run(args),
        Command::Generate(args) => commands::model::run_generate(args),
        Command::Chat(args) => commands::model::run_chat(args),
        Command::Tokenize(args) => commands::model::run_tokenize(args),
        Command::Logits(args) => commands::model::run_logits(args),
        Command::ExportGguf(args) => commands::model::run_export_gguf(args),
        Command::Data(command) => commands::data::run(command),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

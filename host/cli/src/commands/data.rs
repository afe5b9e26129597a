//! `ponder data ...`: write the built-in instruction sets (verifiable, open-ended) and check an
//! instruction file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use ponder_data::{BUILTIN_SEED, Instruction};

/// A data subcommand.
#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Generate instructions with verifiable IFEval-style constraints (metadata for the
    /// judge-constraints plugin), deterministically from a seed: COUNT of them, or the
    /// train/validation/eval splits with --splits.
    Verifiable(VerifiableArgs),
    /// Write the built-in open-ended instructions (no constraints; for LLM judges).
    OpenEnded(OpenEndedArgs),
    /// Read an instruction file (JSONL or Parquet) and print its rows per category, or what is
    /// wrong with it and where.
    Check(CheckArgs),
}

/// Arguments of `ponder data verifiable`.
#[derive(Args, Debug)]
pub struct VerifiableArgs {
    /// The seed; the same seed writes the same bytes.
    #[arg(long, default_value_t = BUILTIN_SEED)]
    pub seed: u64,
    /// How many instructions to write (ids verifiable-0001...).
    #[arg(long, required_unless_present = "splits", conflicts_with = "splits")]
    pub count: Option<usize>,
    /// The JSONL file to write (default: standard output).
    #[arg(long, conflicts_with = "splits")]
    pub out: Option<PathBuf>,
    /// Write the disjoint splits DIR/train.jsonl, DIR/validation.jsonl and DIR/eval.jsonl
    /// instead (the built-in set is `--splits data/verifiable` with the default seed).
    #[arg(long, value_name = "DIR")]
    pub splits: Option<PathBuf>,
}

/// Arguments of `ponder data open-ended`.
#[derive(Args, Debug)]
pub struct OpenEndedArgs {
    /// The JSONL file to write (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `ponder data check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The instruction file: .jsonl / .json (one object per line) or .parquet.
    pub file: PathBuf,
}

/// Runs a data subcommand.
pub fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Verifiable(args) => match (args.splits, args.count) {
            (Some(directory), _) => write_splits(&directory, args.seed),
            (None, Some(count)) => emit(
                args.out.as_deref(),
                &ponder_data::verifiable(args.seed, count),
            ),
            (None, None) => anyhow::bail!("give --count N or --splits DIR"),
        },
        DataCommand::OpenEnded(args) => emit(args.out.as_deref(), &ponder_data::open_ended()),
        DataCommand::Check(args) => check(&args.file),
    }
}

/// Writes the instructions as JSONL to `out` (atomically) or to standard output.
fn emit(out: Option<&Path>, instructions: &[Instruction]) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            ponder_data::write_jsonl(path, instructions)?;
            eprintln!(
                "wrote {} instructions to {}",
                instructions.len(),
                path.display()
            );
        }
        None => std::io::stdout()
            .lock()
            .write_all(ponder_data::to_jsonl(instructions).as_bytes())
            .context("cannot write to standard output")?,
    }
    Ok(())
}

fn write_splits(directory: &Path, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(directory)
        .with_context(|| format!("cannot create {}", directory.display()))?;
    let splits = ponder_data::verifiable_splits(seed);
    for (name, instructions) in [
        ("train", &splits.train),
        ("validation", &splits.validation),
        ("eval", &splits.eval),
    ] {
        emit(Some(&directory.join(format!("{name}.jsonl"))), instructions)?;
    }
    Ok(())
}

fn check(file: &Path) -> anyhow::Result<()> {
    let instructions = ponder_data::read_instructions(file)?;
    let mut per_category: BTreeMap<&str, usize> = BTreeMap::new();
    for instruction in &instructions {
        let category = instruction.category.as_deref().unwrap_or("(no category)");
        *per_category.entry(category).or_default() += 1;
    }
    println!("{}: {} instructions", file.display(), instructions.len());
    let width = per_category
        .keys()
        .map(|name| name.len())
        .max()
        .unwrap_or(0);
    for (category, count) in per_category {
        println!("  {category:<width$}  {count:>6}");
    }
    Ok(())
}

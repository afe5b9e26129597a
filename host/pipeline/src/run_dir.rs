//! The run directory: where every phase of every iteration leaves its files, written atomically
//! (temp file + rename), so that a file that exists is complete.
//!
//! ```text
//! RUN/
//!   run.json                    settings the finished work was done with
//!   metrics.jsonl               one record per finished iteration
//!   report.html                 plots and samples of the run so far (`report`)
//!   iter-N/
//!     instructions.jsonl        this iteration's fresh slice of the training instructions
//!     samples.jsonl             K outputs per instruction   (samples.parts/ while partial)
//!     judgments.jsonl           parsed outputs and scores   (judgments.parts/ while partial)
//!     pairs.jsonl               preference pairs, the format `ponder dpo` reads
//!     dpo/                      the DPO run (reference log-probs, checkpoints, metrics)
//!     validation/step-S.jsonl   validation outputs and scores at each epoch end
//!     model/                    M_{N+1}, a Hugging Face directory
//!     eval.json                 M_{N+1} against the seed model (with the manifest's `[eval]`)
//!     timings.jsonl             wall-clock seconds of each phase run (not deterministic)
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::PipelineError;

/// A phase of an iteration, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Thought prompt and K samples per instruction.
    Sample,
    /// Thought/response split and judging of the responses.
    Judge,
    /// Preference pairs.
    Select,
    /// Reference log-probs, DPO, validation and the iteration's model.
    Dpo,
    /// The iteration's model against the seed model (only with the manifest's `[eval]`).
    Eval,
}

impl Phase {
    /// Every phase in order.
    pub const ALL: [Phase; 5] = [
        Phase::Sample,
        Phase::Judge,
        Phase::Select,
        Phase::Dpo,
        Phase::Eval,
    ];

    /// The phase's name in files, messages and `--restart-from`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Sample => "sample",
            Phase::Judge => "judge",
            Phase::Select => "select",
            Phase::Dpo => "dpo",
            Phase::Eval => "eval",
        }
    }

    /// The phase named `name`.
    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|phase| phase.name() == name)
    }
}

/// Paths of one run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root` (not created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `run.json`.
    pub fn settings_file(&self) -> PathBuf {
        self.root.join("run.json")
    }

    /// `metrics.jsonl`.
    pub fn metrics_file(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `iter-N/` (1-based).
    pub fn iteration(&self, iteration: u32) -> PathBuf {
        self.root.join(format!("iter-{iteration}"))
    }

    /// The file a finished phase leaves (its presence marks the phase done).
    pub fn phase_output(&self, iteration: u32, phase: Phase) -> PathBuf {
        let dir = self.iteration(iteration);
        match phase {
            Phase::Sample => dir.join("samples.jsonl"),
            Phase::Judge => dir.join("judgments.jsonl"),
            Phase::Select => dir.join("pairs.jsonl"),
            Phase::Dpo => dir.join("model"),
            Phase::Eval => dir.join("eval.json"),
        }
    }

    /// Every path a phase writes, finished or partial (what `--restart-from` removes).
    pub fn phase_paths(&self, iteration: u32, phase: Phase) -> Vec<PathBuf> {
        let dir = self.iteration(iteration);
        let mut paths = vec![self.phase_output(iteration, phase)];
        match phase {
            Phase::Sample => {
                paths.push(dir.join("instructions.jsonl"));
                paths.push(dir.join("samples.parts"));
            }
            Phase::Judge => paths.push(dir.join("judgments.parts")),
            Phase::Select | Phase::Eval => {}
            Phase::Dpo => {
                paths.push(dir.join("dpo"));
                paths.push(dir.join("validation"));
            }
        }
        paths
    }

    /// Whether a phase left anything behind, finished or not.
    pub fn phase_started(&self, iteration: u32, phase: Phase) -> bool {
        self.phase_paths(iteration, phase)
            .iter()
            .any(|path| path.exists())
    }

    /// Whether a phase finished.
    pub fn phase_done(&self, iteration: u32, phase: Phase) -> bool {
        self.phase_output(iteration, phase).exists()
    }

    /// Removes the chunk directories (`*.parts`) of iteration `iteration`'s finished phases: a
    /// run killed after joining a phase's chunks and before removing them leaves them behind,
    /// and a resumed run skips that phase.
    pub fn remove_finished_leftovers(&self, iteration: u32) -> Result<(), PipelineError> {
        for phase in [Phase::Sample, Phase::Judge] {
            let output = self.phase_output(iteration, phase);
            let parts = ChunkedOutput::new(output.clone()).parts;
            if output.is_file() && parts.exists() {
                remove_path(&parts)?;
            }
        }
        Ok(())
    }

    /// `iter-N/timings.jsonl`.
    pub fn timings_file(&self, iteration: u32) -> PathBuf {
        self.iteration(iteration).join("timings.jsonl")
    }
}

/// Writes `bytes` to `path` so that readers see either no file or the complete one (the
/// trainer's atomic write: one implementation for every artifact of a run).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    Ok(ponder_trainer::io::write_atomic(path, bytes)?)
}

/// One JSON line per row.
pub fn to_jsonl<T: Serialize>(rows: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        // Serialising our own plain records cannot fail (string keys, no maps of non-strings).
        if serde_json::to_writer(&mut out, row).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// Writes rows as JSONL, atomically.
pub fn write_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), PipelineError> {
    write_atomic(path, &to_jsonl(rows))
}

/// Reads a JSONL file this crate wrote; a malformed line is an error naming it.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))?;
    parse_jsonl(path, &text)
}

/// Parses the JSONL `text` read from `path`; a malformed line is an error naming it.
pub fn parse_jsonl<T: DeserializeOwned>(path: &Path, text: &str) -> Result<Vec<T>, PipelineError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|e| PipelineError::RunFile {
                path: path.to_path_buf(),
                line: index + 1,
                message: format!("{e} (was the run directory written by another ponder version?)"),
            })
        })
        .collect()
}

/// Removes a file or a directory tree if it exists.
pub fn remove_path(path: &Path) -> Result<(), PipelineError> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else if path.exists() {
        std::fs::remove_file(path)
    } else {
        Ok(())
    };
    result.map_err(|e| PipelineError::io(path, e))
}

/// A phase whose work is split into numbered chunks of fixed composition, each written as its
/// own file under `PARTS/` once done; when all are there they become one file and `PARTS/` goes.
/// A killed phase keeps its finished chunks; a chunk is redone whole, with the same inputs, so
/// the result does not depend on where the phase was interrupted.
pub struct ChunkedOutput {
    parts: PathBuf,
    output: PathBuf,
}

impl ChunkedOutput {
    /// The chunked output `output` (parts in `output` with `.parts` for its extension).
    pub fn new(output: PathBuf) -> Self {
        ChunkedOutput {
            parts: output.with_extension("parts"),
            output,
        }
    }

    fn part(&self, chunk: usize) -> PathBuf {
        self.parts.join(format!("chunk-{chunk:05}.jsonl"))
    }

    /// Whether chunk `chunk` is done.
    pub fn has(&self, chunk: usize) -> bool {
        self.part(chunk).is_file()
    }

    /// Writes chunk `chunk`'s rows.
    pub fn write<T: Serialize>(&self, chunk: usize, rows: &[T]) -> Result<(), PipelineError> {
        write_jsonl(&self.part(chunk), rows)
    }

    /// Joins chunks `0..chunks` into the output and removes the parts.
    pub fn finish(&self, chunks: usize) -> Result<(), PipelineError> {
        let mut bytes = Vec::new();
        for chunk in 0..chunks {
            let part = self.part(chunk);
            bytes.extend(std::fs::read(&part).map_err(|e| PipelineError::io(&part, e))?);
        }
        write_atomic(&self.output, &bytes)?;
        remove_path(&self.parts)
    }
}

/// Appends one JSON line in a single write (logs such as timings, and journals whose last line a
/// kill may cut off).
pub fn append_jsonl<T: Serialize>(path: &Path, row: &T) -> Result<(), PipelineError> {
    let mut line = serde_json::to_vec(row).map_err(|e| PipelineError::RunFile {
        path: path.to_path_buf(),
        line: 0,
        message: e.to_string(),
    })?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| PipelineError::io(path, e))?;
    file.write_all(&line)
        .map_err(|e| PipelineError::io(path, e))
}

/// Makes `target` a copy of the directory `source` (subdirectories included, such as a model's
/// `adapter/`) whose files are hard links (no data copied; falls back to a copy across file
/// systems), atomically: `target` appears complete or not at all.
pub fn link_dir(source: &Path, target: &Path) -> Result<(), PipelineError> {
    let name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dir".into());
    let parent = target.parent().unwrap_or(Path::new("."));
    if parent.is_dir() {
        ponder_checkpoint::remove_write_leftovers(parent, &name)
            .map_err(|e| PipelineError::io(parent, e))?;
    }
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    remove_path(&tmp)?;
    link_tree(source, &tmp)?;
    std::fs::rename(&tmp, target).map_err(|e| PipelineError::io(target, e))
}

/// Fills the new directory `to` with hard links to (or copies of) the files under `from`.
fn link_tree(from: &Path, to: &Path) -> Result<(), PipelineError> {
    std::fs::create_dir_all(to).map_err(|e| PipelineError::io(to, e))?;
    let entries = std::fs::read_dir(from).map_err(|e| PipelineError::io(from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| PipelineError::io(from, e))?;
        let source = entry.path();
        let destination = to.join(entry.file_name());
        if source.is_dir() {
            link_tree(&source, &destination)?;
        } else if source.is_file() && std::fs::hard_link(&source, &destination).is_err() {
            std::fs::copy(&source, &destination).map_err(|e| PipelineError::io(&destination, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_phases_lose_their_leftover_parts_and_unfinished_ones_keep_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = RunDir::new(dir.path());
        let iteration = run.iteration(1);
        std::fs::create_dir_all(iteration.join("samples.parts")).expect("parts");
        std::fs::write(iteration.join("samples.parts/chunk-00000.jsonl"), "{}\n").expect("chunk");
        std::fs::write(run.phase_output(1, Phase::Sample), "{}\n").expect("samples");
        std::fs::create_dir_all(iteration.join("judgments.parts")).expect("parts");
        run.remove_finished_leftovers(1).expect("sweep");
        assert!(!iteration.join("samples.parts").exists());
        assert!(
            iteration.join("judgments.parts").exists(),
            "judging is not finished"
        );
        // A fresh iteration has nothing to sweep.
        run.remove_finished_leftovers(2).expect("nothing to sweep");
    }
}

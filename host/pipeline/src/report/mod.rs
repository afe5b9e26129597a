//! `report.html`: one self-contained page about a run directory, rebuilt by `ponder train` after
//! every phase and by `ponder report RUN_DIR`. Per iteration: judge scores of the chosen,
//! rejected and all samples; the win rate and IFEval accuracy against the seed model (with
//! `[eval]`); response and thought lengths of chosen and rejected outputs; the parse-failure
//! rate; DPO loss and reward margin (per iteration and per step); phase timings; and sample
//! instructions with thought and response before and after training.
//!
//! The figures are the run's own records ([`IterationMetrics`], computed from the iteration's
//! files as `metrics.jsonl` is, so an iteration in progress shows what its finished phases give;
//! [`StepMetrics`]; [`EvalReport`]). The plots are inline SVG drawn by plotters; the page has no
//! script and loads nothing: every model text in it is escaped.

mod html;
mod plots;

use std::path::{Path, PathBuf};

use ponder_trainer::metrics::StepMetrics;

use crate::PipelineError;
use crate::eval::EvalReport;
use crate::metrics::{IterationMetrics, dpo_steps, read_eval, record_from_files};
use crate::records::{InstructionRecord, JudgedOutput, JudgmentRecord, SampleRecord};
use crate::run_dir::{Phase, RunDir, read_jsonl, write_atomic};
use crate::settings::RunSettings;

/// The report's file name in the run directory.
pub const FILE: &str = "report.html";

/// How many instructions the sample tables show.
const SAMPLE_ROWS: usize = 5;

/// Everything the report shows, read from a run directory.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run directory.
    pub root: PathBuf,
    /// `run.json`: the settings the work was done with.
    pub settings: RunSettings,
    /// Every iteration that has a directory, in order.
    pub iterations: Vec<IterationReport>,
    /// The sample instructions, before and after training.
    pub samples: Samples,
}

/// One iteration's part of the report.
#[derive(Debug, Clone)]
pub struct IterationReport {
    /// 1-based iteration.
    pub iteration: u32,
    /// Its finished phases, in order.
    pub done: Vec<Phase>,
    /// Its figures, once its samples exist (the finished phases' figures while it runs).
    pub metrics: Option<IterationMetrics>,
    /// Its DPO steps so far.
    pub steps: Vec<StepMetrics>,
    /// Its evaluation against the seed model (with `[eval]`).
    pub eval: Option<EvalReport>,
}

impl IterationReport {
    /// Whether `phase` finished.
    pub fn has(&self, phase: Phase) -> bool {
        self.done.contains(&phase)
    }
}

/// One model output in a sample table.
#[derive(Debug, Clone, PartialEq)]
pub struct ShownOutput {
    /// The thought (`None`: the output did not parse).
    pub thought: Option<String>,
    /// The response (`None`: the output did not parse).
    pub response: Option<String>,
    /// The whole output, shown when it did not parse.
    pub text: String,
    /// Why it did not parse.
    pub parse_failure: Option<String>,
    /// The judge's score (training samples only).
    pub score: Option<f64>,
}

/// One instruction of a sample table.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRow {
    /// The instruction's id.
    pub id: String,
    /// The instruction's text (`None`: its file could not be read).
    pub instruction: Option<String>,
    /// The outputs, one per column of the table.
    pub outputs: Vec<ShownOutput>,
    /// The judge's preference for the trained model, in [0, 1] (evaluations with a judge).
    pub preference: Option<f64>,
}

/// The sample instructions of the report.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// From the latest `iter-N/eval.json`: the seed model and iteration N's model on the same
    /// held-out instructions.
    Eval {
        /// The iteration whose model was evaluated.
        iteration: u32,
        /// The instruction file of the evaluation.
        data: PathBuf,
        /// How many instructions it evaluated.
        instructions: usize,
        /// Sampling temperature of the evaluation (0: greedy).
        temperature: f32,
        /// The first rows: outputs of the seed model, then of iteration N's model.
        rows: Vec<SampleRow>,
    },
    /// Without an evaluation: the first output of some training instructions of iteration 1
    /// (sampled from the seed model) and of the latest judged iteration (sampled from the model
    /// trained before it), on different instructions: data is not reused across iterations.
    Training {
        /// Iteration 1's samples, from the seed model.
        seed: Vec<SampleRow>,
        /// The latest later judged iteration and its samples (`None` before iteration 2 is judged).
        latest: Option<(u32, Vec<SampleRow>)>,
    },
}

impl RunReport {
    /// Reads the run directory `run`.
    ///
    /// # Errors
    /// A directory without `run.json` (not a run directory), or one with no finished phase yet
    /// ([`PipelineError::Report`]); an unreadable file, or a line of one that is not what this
    /// version of ponder writes (naming the file and line).
    pub fn read(run: &RunDir) -> Result<RunReport, PipelineError> {
        let root = run.root().to_path_buf();
        if !root.is_dir() {
            return Err(PipelineError::Report {
                path: root,
                message: "no such directory".into(),
            });
        }
        let settings = RunSettings::read(run)?.ok_or_else(|| PipelineError::Report {
            path: root.clone(),
            message: "not a run directory (it has no run.json; `ponder train` writes one)".into(),
        })?;
        let epochs_value = settings.values.get("dpo.epochs");
        let epochs = epochs_value
            .and_then(|value| value.parse::<u32>().ok())
            .ok_or_else(|| PipelineError::RunFile {
                path: run.settings_file(),
                line: 0,
                message: format!("`dpo.epochs` is {epochs_value:?}, not a count of epochs"),
            })?;

        let mut iterations = Vec::new();
        let mut iteration = 1;
        while run.iteration(iteration).is_dir() {
            let done: Vec<Phase> = Phase::ALL
                .into_iter()
                .filter(|phase| run.phase_done(iteration, *phase))
                .collect();
            let metrics = if done.contains(&Phase::Sample) {
                Some(record_from_files(run, iteration, epochs)?)
            } else {
                None
            };
            iterations.push(IterationReport {
                iteration,
                done,
                metrics,
                steps: dpo_steps(run, iteration)?,
                eval: read_eval(run, iteration)?,
            });
            iteration += 1;
        }
        if iterations.iter().all(|i| i.metrics.is_none()) {
            return Err(PipelineError::Report {
                path: root,
                message: "no metrics yet: no iteration has finished its sample phase".into(),
            });
        }
        let samples = samples(run, &iterations)?;
        Ok(RunReport {
            root,
            settings,
            iterations,
            samples,
        })
    }

    /// Whether the run evaluates each iteration against the seed model (`[eval]`).
    pub fn has_eval(&self) -> bool {
        self.settings.values.contains_key("eval.data")
    }

    /// The page.
    ///
    /// # Errors
    /// A plot that plotters could not draw ([`PipelineError::Report`]).
    pub fn to_html(&self) -> Result<String, PipelineError> {
        html::page(self).map_err(|message| PipelineError::Report {
            path: self.root.join(FILE),
            message: format!("drawing a plot: {message}"),
        })
    }
}

/// Writes the report of `run` to `out` (default `RUN_DIR/report.html`) atomically, and returns
/// where.
///
/// # Errors
/// As [`RunReport::read`] and [`RunReport::to_html`]; a file that cannot be written.
pub fn write(run: &RunDir, out: Option<&Path>) -> Result<PathBuf, PipelineError> {
    let report = RunReport::read(run)?;
    let page = report.to_html()?;
    let path = out.map_or_else(|| run.root().join(FILE), Path::to_path_buf);
    write_atomic(&path, page.as_bytes())?;
    Ok(path)
}

/// Rebuilds `RUN_DIR/report.html` during a run; a failure is a warning on stderr, never the
/// run's failure (the report is a view of the run's files, not one of them).
pub fn refresh(run: &RunDir) {
    if let Err(error) = write(run, None) {
        eprintln!("warning: {FILE} not updated: {error}");
    }
}

/// The text of an instruction: its last user message (all messages when none is the user's).
fn instruction_text(messages: &[ponder_contract::Message]) -> String {
    messages
        .iter()
        .rev()
        .find(|message| message.role == "user")
        .map(|message| message.content.clone())
        .unwrap_or_else(|| {
            messages
                .iter()
                .map(|message| message.content.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
}

/// The sample tables: from the latest evaluation when there is one, else from training samples.
fn samples(run: &RunDir, iterations: &[IterationReport]) -> Result<Samples, PipelineError> {
    if let Some(latest) = iterations.iter().rev().find(|i| i.eval.is_some()) {
        let eval = latest.eval.as_ref().expect("found with an evaluation");
        // The evaluation's instruction file is named as the run saw it (perhaps relative to
        // where it ran): without it the table shows ids only.
        let texts: std::collections::BTreeMap<String, String> =
            ponder_data::read_instructions(&eval.data)
                .map(|rows| {
                    rows.into_iter()
                        .map(|row| (row.id.clone(), instruction_text(&row.messages)))
                        .collect()
                })
                .unwrap_or_default();
        let rows = eval
            .per_instruction
            .iter()
            .take(SAMPLE_ROWS)
            .map(|outcome| SampleRow {
                id: outcome.id.clone(),
                instruction: texts.get(&outcome.id).cloned(),
                // `outputs` is in the order of `models`: A (the iteration's model), B (the seed).
                outputs: outcome
                    .outputs
                    .iter()
                    .rev()
                    .map(|output| ShownOutput {
                        thought: output.thought.clone(),
                        response: output.response.clone(),
                        text: output.text.clone(),
                        parse_failure: output.parse_failure.clone(),
                        score: None,
                    })
                    .collect(),
                preference: outcome.preference,
            })
            .collect();
        return Ok(Samples::Eval {
            iteration: latest.iteration,
            data: eval.data.clone(),
            instructions: eval.instructions,
            temperature: eval.temperature,
            rows,
        });
    }
    let judged = |iteration: &&IterationReport| iteration.has(Phase::Judge);
    let seed = match iterations.iter().find(|i| i.iteration == 1).filter(judged) {
        Some(_) => training_rows(run, 1)?,
        None => Vec::new(),
    };
    let latest = match iterations.iter().rev().find(judged) {
        Some(later) if later.iteration > 1 => {
            Some((later.iteration, training_rows(run, later.iteration)?))
        }
        _ => None,
    };
    Ok(Samples::Training { seed, latest })
}

/// The first output of the first instructions of a judged iteration.
fn training_rows(run: &RunDir, iteration: u32) -> Result<Vec<SampleRow>, PipelineError> {
    let dir = run.iteration(iteration);
    let instructions: Vec<InstructionRecord> = read_jsonl(&dir.join("instructions.jsonl"))?;
    let samples: Vec<SampleRecord> = read_jsonl(&run.phase_output(iteration, Phase::Sample))?;
    let judgments: Vec<JudgmentRecord> = read_jsonl(&run.phase_output(iteration, Phase::Judge))?;
    let text_of = |id: &str| {
        instructions
            .iter()
            .find(|row| row.id == id)
            .map(|row| instruction_text(&row.messages))
    };
    let rows = judgments
        .iter()
        .filter(|judgment| judgment.failure.is_none())
        .take(SAMPLE_ROWS)
        .filter_map(|judgment| {
            let candidate: &JudgedOutput = judgment.candidates.first()?;
            let text = samples
                .iter()
                .find(|sample| sample.id == judgment.id)
                .and_then(|sample| sample.outputs.first())
                .map(|output| output.text.clone())
                .unwrap_or_default();
            Some(SampleRow {
                id: judgment.id.clone(),
                instruction: text_of(&judgment.id),
                outputs: vec![ShownOutput {
                    thought: candidate.parsed.then(|| candidate.thought.clone()),
                    response: candidate.parsed.then(|| candidate.response.clone()),
                    text,
                    parse_failure: candidate.parse_failure.clone(),
                    score: candidate.score,
                }],
                preference: None,
            })
        })
        .collect();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::records::Output;
    use crate::run_dir::write_jsonl;

    /// A run directory whose iteration 1 has been sampled and judged (two instructions, two
    /// outputs each, one that did not parse), and nothing more.
    fn judged_run() -> (tempfile::TempDir, RunDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = RunDir::new(dir.path().join("run"));
        std::fs::create_dir_all(run.iteration(1)).expect("mkdir");
        let mut values = BTreeMap::new();
        values.insert("dpo.epochs".to_string(), "2".to_string());
        RunSettings { format: 1, values }
            .write(&run)
            .expect("run.json");
        let ids = ["a", "b"];
        let instructions: Vec<InstructionRecord> = ids
            .iter()
            .map(|id| InstructionRecord {
                id: id.to_string(),
                messages: vec![ponder_contract::Message::new(
                    "user",
                    format!("do {id} <now>"),
                )],
                category: None,
                reference: None,
                metadata: serde_json::json!({}),
            })
            .collect();
        write_jsonl(&run.iteration(1).join("instructions.jsonl"), &instructions).expect("write");
        let output = |text: &str| Output {
            seed: 1,
            text: text.to_string(),
            tokens: 3,
            finish: "stop".into(),
            forced_response: false,
        };
        let samples: Vec<SampleRecord> = ids
            .iter()
            .map(|id| SampleRecord {
                id: id.to_string(),
                prompt: Vec::new(),
                assistant_prefix: String::new(),
                outputs: vec![output("T: x R: y"), output("garbage")],
            })
            .collect();
        write_jsonl(&run.phase_output(1, Phase::Sample), &samples).expect("write");
        let judged = |parsed: bool, score: Option<f64>| JudgedOutput {
            parsed,
            thought: if parsed { "x".into() } else { String::new() },
            response: if parsed { "y".into() } else { String::new() },
            parse_failure: (!parsed).then(|| "no separator".to_string()),
            score,
            response_tokens: u32::from(parsed),
            response_chars: u32::from(parsed),
            thought_tokens: u32::from(parsed),
            thought_chars: u32::from(parsed),
            output_tokens: 3,
        };
        let judgments: Vec<JudgmentRecord> = ids
            .iter()
            .map(|id| JudgmentRecord {
                id: id.to_string(),
                candidates: vec![judged(true, Some(0.5)), judged(false, None)],
                failure: None,
            })
            .collect();
        write_jsonl(&run.phase_output(1, Phase::Judge), &judgments).expect("write");
        (dir, run)
    }

    #[test]
    fn an_iteration_in_progress_reports_its_finished_phases() {
        let (_dir, run) = judged_run();
        let report = RunReport::read(&run).expect("read");
        assert_eq!(report.iterations.len(), 1);
        let iteration = &report.iterations[0];
        assert_eq!(iteration.done, vec![Phase::Sample, Phase::Judge]);
        let metrics = iteration.metrics.as_ref().expect("metrics");
        assert_eq!(metrics.parse_failures, 2);
        assert_eq!(metrics.score_all, Some(0.5));
        assert_eq!(metrics.score_chosen, None);
        assert_eq!(metrics.dpo_loss, None);
        let Samples::Training { seed, latest } = &report.samples else {
            panic!("no evaluation, so training samples: {:?}", report.samples);
        };
        assert!(latest.is_none());
        assert_eq!(seed.len(), 2);
        assert_eq!(seed[0].instruction.as_deref(), Some("do a <now>"));
        assert_eq!(seed[0].outputs[0].response.as_deref(), Some("y"));
        let html = report.to_html().expect("html");
        assert!(html.contains("do a &lt;now&gt;"), "{html}");
        assert!(
            html.contains("iteration 1 is at its select phase"),
            "{html}"
        );
        for id in html::PLOT_IDS.iter().filter(|id| **id != "plot-eval") {
            assert!(html.contains(&format!("id=\"{id}\"")), "{id} is missing");
        }
        assert!(!html.contains("id=\"plot-eval\""));
        let path = write(&run, None).expect("write");
        assert_eq!(path, run.root().join(FILE));
    }

    #[test]
    fn a_half_written_dpo_line_is_left_out_while_dpo_runs() {
        let (_dir, run) = judged_run();
        let dpo = run.iteration(1).join("dpo");
        std::fs::create_dir_all(&dpo).expect("mkdir");
        let step = r#"{"step":1,"epoch":0.5,"loss":0.69,"rewards/chosen":0.0,"rewards/rejected":0.0,"rewards/margins":0.0,"rewards/accuracies":0.5,"logps/chosen":-1.0,"logps/rejected":-1.0,"grad_norm":1.0,"learning_rate":0.001,"tokens_per_second":1.0,"step_seconds":1.0}"#;
        std::fs::write(
            dpo.join("metrics.jsonl"),
            format!("{step}\n{{\"step\":2,\"ep"),
        )
        .expect("write");
        let report = RunReport::read(&run).expect("read");
        assert_eq!(report.iterations[0].steps.len(), 1);
        // Once the phase is done, the same line is corruption, named by file and line.
        std::fs::create_dir_all(run.phase_output(1, Phase::Dpo)).expect("mkdir");
        let error = RunReport::read(&run).expect_err("corrupt");
        assert!(error.to_string().contains("metrics.jsonl:2"), "{error}");
    }

    #[test]
    fn no_run_and_no_metrics_are_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = RunReport::read(&RunDir::new(dir.path())).expect_err("no run.json");
        assert!(error.to_string().contains("not a run directory"), "{error}");
        let run = RunDir::new(dir.path());
        let mut values = BTreeMap::new();
        values.insert("dpo.epochs".to_string(), "1".to_string());
        RunSettings { format: 1, values }
            .write(&run)
            .expect("run.json");
        std::fs::create_dir_all(run.iteration(1)).expect("mkdir");
        let error = RunReport::read(&run).expect_err("nothing yet");
        assert!(error.to_string().contains("no metrics yet"), "{error}");
    }

    #[test]
    fn a_corrupt_line_is_named() {
        let (_dir, run) = judged_run();
        let file = run.phase_output(1, Phase::Judge);
        let text = std::fs::read_to_string(&file).expect("read");
        std::fs::write(&file, format!("{text}not json\n")).expect("write");
        let error = RunReport::read(&run).expect_err("corrupt");
        assert!(error.to_string().contains("judgments.jsonl:3"), "{error}");
    }
}

//! The machine-readable evaluation result: serde types, built from per-instruction outcomes.
//!
//! A pairwise comparison of A (the model evaluated) against B (the baseline) reports the win
//! rate and AlpacaEval 2's length-controlled win rate with bootstrap intervals, the same per
//! category, and the mean response and thought lengths of both sides; an IFEval run reports the
//! four accuracies, per constraint type and per category, and the mean lengths.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bootstrap::{BootstrapOptions, Interval, percentile_interval};
use crate::ifeval::{ConstraintVerdict, IfevalAccuracies, ifeval_accuracies};
use crate::length_controlled::{LengthControlledFit, PreferenceWithLengths, fit_on_rows};
use crate::winrate::{WinRate, check_preferences, mean_percent, win_rate};
use crate::{EvalError, length_controlled_win_rate};

/// The lengths of one output, in characters ([`char_length`](crate::char_length)).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputLengths {
    /// The response the judge saw.
    pub response_chars: usize,
    /// The hidden thought, when the output has one.
    pub thought_chars: Option<usize>,
}

/// Mean lengths over a set of outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeanLengths {
    /// Mean response length in characters.
    pub response_chars: f64,
    /// Mean thought length in characters, over the outputs that have a thought; `None` when
    /// none has.
    pub thought_chars: Option<f64>,
    /// How many outputs have a thought.
    pub with_thought: usize,
}

/// The mean lengths of `outputs` (not empty: the means of nothing are NaN).
pub fn mean_lengths<'a>(outputs: impl ExactSizeIterator<Item = &'a OutputLengths>) -> MeanLengths {
    let count = outputs.len();
    let mut response_total = 0.0;
    let mut thought_total = 0.0;
    let mut with_thought = 0;
    for output in outputs {
        response_total += output.response_chars as f64;
        if let Some(thought) = output.thought_chars {
            thought_total += thought as f64;
            with_thought += 1;
        }
    }
    MeanLengths {
        response_chars: response_total / count as f64,
        thought_chars: (with_thought > 0).then(|| thought_total / with_thought as f64),
        with_thought,
    }
}

/// One instruction's outcome in a comparison of A against B.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparedInstruction {
    /// The instruction's category (its data set's label; empty when it has none).
    pub category: String,
    /// The preference for A in [0, 1] ([`pairwise_preference`](crate::pairwise_preference),
    /// [`pointwise_preference`](crate::pointwise_preference)).
    pub preference: f64,
    /// A's lengths.
    pub a: OutputLengths,
    /// B's lengths.
    pub b: OutputLengths,
}

/// The win rate with its bootstrap interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WinRateWithInterval {
    /// The win rate and its tally.
    #[serde(flatten)]
    pub win_rate: WinRate,
    /// The bootstrap interval of `win_rate_percent`.
    pub interval_percent: Interval,
}

/// The length-controlled win rate with its bootstrap interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LengthControlledWithInterval {
    /// The fit on every instruction.
    #[serde(flatten)]
    pub fit: LengthControlledFit,
    /// The bootstrap interval of `win_rate_percent` (each resample refitted, cross-validation
    /// included); `None` when some resample cannot be fitted (it drew one length difference
    /// only, likely when few instructions differ in length).
    pub interval_percent: Option<Interval>,
}

/// One category's share of a comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoryWinRate {
    /// The win rate within the category, its interval resampling the category's instructions.
    #[serde(flatten)]
    pub win_rate: WinRateWithInterval,
    /// The length-controlled win rate within the category; `None` where it cannot be fitted
    /// (fewer than 5 instructions, or one length difference for all).
    pub length_controlled: Option<LengthControlledWithInterval>,
}

/// The result of comparing A against B.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairwiseReport {
    /// How the intervals were drawn.
    pub bootstrap: BootstrapOptions,
    /// The win rate of A over B.
    pub win_rate: WinRateWithInterval,
    /// AlpacaEval 2's length-controlled win rate of A over B; `None` where it cannot be fitted
    /// (fewer than 5 instructions, or one length difference for all).
    pub length_controlled: Option<LengthControlledWithInterval>,
    /// The same per category.
    pub per_category: BTreeMap<String, CategoryWinRate>,
    /// A's mean lengths.
    pub lengths_a: MeanLengths,
    /// B's mean lengths.
    pub lengths_b: MeanLengths,
}

/// The win rate of `instructions` with its interval.
fn win_rate_with_interval(
    instructions: &[&ComparedInstruction],
    bootstrap: &BootstrapOptions,
) -> Result<WinRateWithInterval, EvalError> {
    let preferences: Vec<f64> = instructions.iter().map(|row| row.preference).collect();
    let win_rate = win_rate(&preferences)?;
    let interval_percent = percentile_interval(preferences.len(), bootstrap, |indices| {
        Ok(mean_percent(indices.iter().map(|&i| preferences[i])))
    })?;
    Ok(WinRateWithInterval {
        win_rate,
        interval_percent,
    })
}

/// The length-controlled win rate of `instructions` with its interval, `None` when the data
/// cannot support the fit.
fn length_controlled_with_interval(
    instructions: &[&ComparedInstruction],
    bootstrap: &BootstrapOptions,
) -> Result<Option<LengthControlledWithInterval>, EvalError> {
    let rows: Vec<PreferenceWithLengths> = instructions
        .iter()
        .map(|row| {
            PreferenceWithLengths::new(row.preference, row.a.response_chars, row.b.response_chars)
        })
        .collect();
    let unfittable = |error: &EvalError| {
        matches!(
            error,
            EvalError::TooFewForCrossValidation { .. } | EvalError::ConstantLengthDifference
        )
    };
    let fit = match length_controlled_win_rate(&rows) {
        Ok(fit) => fit,
        Err(error) if unfittable(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    let interval = percentile_interval(rows.len(), bootstrap, |indices| {
        fit_on_rows(&rows, indices).map(|fit| fit.win_rate_percent)
    });
    let interval_percent = match interval {
        Ok(interval) => Some(interval),
        Err(error) if unfittable(&error) => None,
        Err(error) => return Err(error),
    };
    Ok(Some(LengthControlledWithInterval {
        fit,
        interval_percent,
    }))
}

/// The report of a comparison of A against B over `instructions`.
///
/// # Errors
/// [`EvalError::Empty`] without instructions; [`EvalError::InvalidPreference`];
/// [`EvalError::InvalidBootstrap`] for unusable `bootstrap` options.
pub fn pairwise_report(
    instructions: &[ComparedInstruction],
    bootstrap: &BootstrapOptions,
) -> Result<PairwiseReport, EvalError> {
    if instructions.is_empty() {
        return Err(EvalError::Empty);
    }
    check_preferences(instructions.iter().map(|row| row.preference))?;
    let all: Vec<&ComparedInstruction> = instructions.iter().collect();
    let mut by_category: BTreeMap<&str, Vec<&ComparedInstruction>> = BTreeMap::new();
    for row in instructions {
        by_category
            .entry(row.category.as_str())
            .or_default()
            .push(row);
    }
    let per_category: BTreeMap<String, CategoryWinRate> = by_category
        .into_iter()
        .map(|(category, rows)| {
            let summary = CategoryWinRate {
                win_rate: win_rate_with_interval(&rows, bootstrap)?,
                length_controlled: length_controlled_with_interval(&rows, bootstrap)?,
            };
            Ok((category.to_string(), summary))
        })
        .collect::<Result<_, EvalError>>()?;
    Ok(PairwiseReport {
        bootstrap: bootstrap.clone(),
        win_rate: win_rate_with_interval(&all, bootstrap)?,
        length_controlled: length_controlled_with_interval(&all, bootstrap)?,
        per_category,
        lengths_a: mean_lengths(instructions.iter().map(|row| &row.a)),
        lengths_b: mean_lengths(instructions.iter().map(|row| &row.b)),
    })
}

/// One IFEval prompt's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IfevalPrompt {
    /// The prompt's category (empty when it has none).
    pub category: String,
    /// Its constraints' verdicts on the response.
    pub verdicts: Vec<ConstraintVerdict>,
    /// The output's lengths.
    pub lengths: OutputLengths,
}

/// The result of an IFEval run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IfevalReport {
    /// The accuracies over every prompt.
    pub accuracies: IfevalAccuracies,
    /// The accuracies per category.
    pub per_category: BTreeMap<String, IfevalAccuracies>,
    /// The mean lengths of the outputs.
    pub lengths: MeanLengths,
    /// Bootstrap intervals of the prompt-level accuracies, in percent, resampling prompts
    /// (absent from reports written before they were added).
    #[serde(default)]
    pub prompt_level_intervals_percent: Option<PromptLevelIntervals>,
}

/// Bootstrap intervals of IFEval's prompt-level accuracies, in percent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptLevelIntervals {
    /// Of the strict accuracy.
    pub strict: Interval,
    /// Of the loose accuracy.
    pub loose: Interval,
}

/// The report of an IFEval run over `prompts`, with intervals drawn as `bootstrap` says.
///
/// # Errors
/// [`EvalError::Empty`] without prompts; [`EvalError::PromptWithoutConstraints`];
/// [`EvalError::InvalidBootstrap`] for unusable `bootstrap` options.
pub fn ifeval_report(
    prompts: &[IfevalPrompt],
    bootstrap: &BootstrapOptions,
) -> Result<IfevalReport, EvalError> {
    let accuracies = ifeval_accuracies(prompts.iter().map(|prompt| &prompt.verdicts[..]))?;
    let followed = |strict: bool| -> Vec<f64> {
        prompts
            .iter()
            .map(|prompt| {
                let all = prompt
                    .verdicts
                    .iter()
                    .all(|v| if strict { v.strict } else { v.loose });
                if all { 1.0 } else { 0.0 }
            })
            .collect()
    };
    let interval = |values: Vec<f64>| {
        percentile_interval(values.len(), bootstrap, |indices| {
            Ok(mean_percent(indices.iter().map(|&i| values[i])))
        })
    };
    let prompt_level_intervals_percent = Some(PromptLevelIntervals {
        strict: interval(followed(true))?,
        loose: interval(followed(false))?,
    });
    let mut by_category: BTreeMap<&str, Vec<&[ConstraintVerdict]>> = BTreeMap::new();
    for prompt in prompts {
        by_category
            .entry(prompt.category.as_str())
            .or_default()
            .push(&prompt.verdicts);
    }
    let per_category: BTreeMap<String, IfevalAccuracies> = by_category
        .into_iter()
        .map(|(category, verdicts)| Ok((category.to_string(), ifeval_accuracies(verdicts)?)))
        .collect::<Result<_, EvalError>>()?;
    Ok(IfevalReport {
        accuracies,
        per_category,
        lengths: mean_lengths(prompts.iter().map(|prompt| &prompt.lengths)),
        prompt_level_intervals_percent,
    })
}

/// The whole evaluation result, as `ponder eval` writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// The comparison against the baseline, when one was run.
    pub pairwise: Option<PairwiseReport>,
    /// The IFEval run, when one was run.
    pub ifeval: Option<IfevalReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(response_chars: usize, thought_chars: Option<usize>) -> OutputLengths {
        OutputLengths {
            response_chars,
            thought_chars,
        }
    }

    fn compared(category: &str, preference: f64, a: usize, b: usize) -> ComparedInstruction {
        ComparedInstruction {
            category: category.to_string(),
            preference,
            a: lengths(a, Some(2 * a)),
            b: lengths(b, None),
        }
    }

    #[test]
    fn pairwise_report_by_category_with_lengths() {
        let mut rows = Vec::new();
        for i in 0..12 {
            rows.push(compared(
                "writing",
                [1.0, 0.5, 0.0, 1.0][i % 4],
                100 + 7 * i,
                90 + (i * 13) % 40,
            ));
        }
        rows.push(compared("math", 1.0, 10, 20));
        rows.push(compared("math", 0.0, 30, 20));
        let options = BootstrapOptions {
            resamples: 100,
            seed: 1,
            level: 0.95,
        };
        let report = pairwise_report(&rows, &options).unwrap();

        // 6 wins, 3 ties, 3 losses in writing; 1 and 1 in math: (7 + 1.5) / 14.
        assert!((report.win_rate.win_rate.win_rate_percent - 850.0 / 14.0).abs() < 1e-12);
        let writing = &report.per_category["writing"];
        assert!((writing.win_rate.win_rate.win_rate_percent - 62.5).abs() < 1e-12);
        assert!(writing.length_controlled.is_some());
        let math = &report.per_category["math"];
        assert_eq!(math.win_rate.win_rate.win_rate_percent, 50.0);
        assert!(
            math.length_controlled.is_none(),
            "two instructions cannot be cross-validated"
        );
        let lc = report.length_controlled.as_ref().unwrap();
        let interval = lc.interval_percent.unwrap();
        assert!(interval.lower <= interval.upper);

        // A: responses 100..177 step 7 (mean 138.5) and 10, 30; thoughts twice those.
        let mean_a = (12.0 * 138.5 + 40.0) / 14.0;
        assert!((report.lengths_a.response_chars - mean_a).abs() < 1e-12);
        assert_eq!(report.lengths_a.thought_chars, Some(2.0 * mean_a));
        assert_eq!(
            (report.lengths_a.with_thought, report.lengths_b.with_thought),
            (14, 0)
        );
        assert_eq!(report.lengths_b.thought_chars, None);

        let json = serde_json::to_value(&report).unwrap();
        assert!(json["win_rate"]["win_rate_percent"].is_f64());
        assert!(json["length_controlled"]["inverse_penalty"].is_f64());
        assert!(json["per_category"]["math"]["length_controlled"].is_null());
    }

    #[test]
    fn ifeval_report_per_category() {
        let verdict = |strict, loose| ConstraintVerdict {
            constraint_id: "detectable_format:title".into(),
            strict,
            loose,
        };
        let prompt = |category: &str, verdicts, chars| IfevalPrompt {
            category: category.into(),
            verdicts,
            lengths: lengths(chars, None),
        };
        let prompts = [
            prompt("a", vec![verdict(true, true)], 10),
            prompt("a", vec![verdict(false, true)], 20),
            prompt("b", vec![verdict(false, false)], 60),
        ];
        let report = ifeval_report(&prompts, &BootstrapOptions::default()).unwrap();
        assert_eq!(report.per_category["a"].prompt_level_loose, 1.0);
        assert_eq!(report.per_category["a"].prompt_level_strict, 0.5);
        assert_eq!(report.per_category["b"].instruction_level_loose, 0.0);
        assert!((report.accuracies.prompt_level_loose - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(report.lengths.response_chars, 30.0);
        // Prompts followed loosely: 1, 1, 0; strictly: 1, 0, 0. The intervals lie within what
        // resamples of three prompts can give and contain the point estimates.
        let intervals = report.prompt_level_intervals_percent.unwrap();
        assert!(intervals.loose.lower <= 200.0 / 3.0 && 200.0 / 3.0 <= intervals.loose.upper);
        assert!(intervals.strict.lower >= 0.0 && intervals.strict.upper <= 100.0);
        assert!(intervals.strict.lower <= 100.0 / 3.0 && 100.0 / 3.0 <= intervals.strict.upper);
        let all_followed = [prompt("a", vec![verdict(true, true)], 5)];
        let single = ifeval_report(&all_followed, &BootstrapOptions::default()).unwrap();
        let single = single.prompt_level_intervals_percent.unwrap();
        assert_eq!((single.strict.lower, single.strict.upper), (100.0, 100.0));
        let result = EvalResult {
            pairwise: None,
            ifeval: Some(report),
        };
        let json = serde_json::to_string(&result).unwrap();
        assert!(json.contains("\"per_constraint_group\":{\"detectable_format\""));
    }
}

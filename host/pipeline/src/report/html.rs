//! The page: a header, the per-iteration table, the plots (inline SVG, each in a
//! `<figure class="plot" id="plot-…">`), the sample tables and the run's settings. No script, no
//! external resource; every text from the run (model outputs, instructions, paths) is escaped.

use std::fmt::Write as _;

use super::plots::{
    self, BLUE, GREEN, GREY, Layer, LineChart, ORANGE, PALETTE, PURPLE, RED, Series, StackedBars,
    XAxis,
};
use super::{IterationReport, RunReport, SampleRow, Samples, ShownOutput};
use crate::metrics::IterationMetrics;
use crate::run_dir::Phase;

/// The ids of the plots a report has (`plot-eval` only with `[eval]`), in page order.
pub const PLOT_IDS: [&str; 9] = [
    "plot-scores",
    "plot-eval",
    "plot-response-length",
    "plot-thought-length",
    "plot-parse-failures",
    "plot-dpo",
    "plot-dpo-steps-loss",
    "plot-dpo-steps-margin",
    "plot-timings",
];

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  margin: 24px auto; max-width: 1320px; padding: 0 16px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.sub { color: #555; margin: 0 0 12px; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr)); gap: 14px; }
figure.plot { margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 6px; }
figure.plot svg { display: block; width: 100%; height: auto; }
table { border-collapse: collapse; background: #fff; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 5px 8px; vertical-align: top; }
th { background: #f0f0f0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.samples { width: 100%; table-layout: fixed; margin-bottom: 20px; }
table.samples td { font-size: 13px; }
caption { caption-side: top; text-align: left; color: #444; padding: 6px 0; font-size: 14px; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; max-height: 18em; overflow-y: auto; }
.thought { background: #f3f0fa; border-left: 3px solid #9467bd; padding: 4px 6px; margin-bottom: 6px; }
.response { background: #eef6ee; border-left: 3px solid #2ca02c; padding: 4px 6px; }
.failed { background: #fbeeee; border-left: 3px solid #d62728; padding: 4px 6px; }
.label { display: block; font-size: 11px; text-transform: uppercase; letter-spacing: 0.04em; color: #666; }
.id { color: #666; font-size: 12px; display: block; margin-bottom: 4px; }
.note { color: #555; }
details { margin-top: 8px; }
"#;

/// The whole page.
pub(super) fn page(report: &RunReport) -> Result<String, String> {
    let mut out = String::new();
    let root = std::fs::canonicalize(&report.root).unwrap_or_else(|_| report.root.clone());
    let name = root
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| root.display().to_string());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>ponder run {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&name)
    );
    let _ = writeln!(out, "<h1>ponder run <code>{}</code></h1>", escape(&name));
    let _ = writeln!(
        out,
        "<p class=\"sub\">Thought Preference Optimization run in <code>{}</code>: {}. \
         Rebuilt by <code>ponder train</code> after every phase and by \
         <code>ponder report</code>; ponder {}.</p>",
        escape(&root.display().to_string()),
        escape(&status_line(report)),
        env!("CARGO_PKG_VERSION"),
    );

    out.push_str("<h2 id=\"iterations\">Iterations</h2>\n");
    iteration_table(&mut out, report);

    out.push_str("<h2 id=\"plots\">Plots</h2>\n<div class=\"plots\">\n");
    for (id, svg) in charts(report)? {
        let _ = writeln!(out, "<figure class=\"plot\" id=\"{id}\">\n{svg}</figure>");
    }
    out.push_str("</div>\n");
    if !report.has_eval() {
        out.push_str(
            "<p class=\"note\">No win rate or IFEval accuracy against the seed model: the \
             manifest has no <code>[eval]</code> table.</p>\n",
        );
    }

    out.push_str("<h2 id=\"samples\">Sample instructions, before and after training</h2>\n");
    sample_tables(&mut out, &report.samples);

    out.push_str("<h2 id=\"settings\">Settings</h2>\n");
    out.push_str(
        "<details><summary><code>run.json</code>: the settings the finished work was done \
         with</summary>\n<table>\n<tr><th>key</th><th>value</th></tr>\n",
    );
    for (key, value) in &report.settings.values {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>",
            escape(key),
            escape(value)
        );
    }
    out.push_str("</table>\n</details>\n</body>\n</html>\n");
    Ok(out)
}

/// The phases an iteration runs, `eval` only with `[eval]`.
fn phases(report: &RunReport) -> Vec<Phase> {
    Phase::ALL
        .into_iter()
        .filter(|phase| *phase != Phase::Eval || report.has_eval())
        .collect()
}

/// "iteration 2 of the run is in its dpo phase" and the like.
fn status_line(report: &RunReport) -> String {
    let phases = phases(report);
    let finished = report
        .iterations
        .iter()
        .filter(|i| phases.iter().all(|phase| i.has(*phase)))
        .count();
    let running = report
        .iterations
        .iter()
        .find(|i| !phases.iter().all(|phase| i.has(*phase)));
    let mut line = format!(
        "{finished} iteration{} finished",
        if finished == 1 { "" } else { "s" }
    );
    if let Some(running) = running
        && let Some(next) = phases.iter().find(|phase| !running.has(**phase))
    {
        let _ = write!(
            line,
            "; iteration {} is at its {} phase (or stopped there)",
            running.iteration,
            next.name()
        );
    }
    line
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{v:.decimals$}"))
}

/// The per-iteration figures as a table (the numbers behind the plots).
fn iteration_table(out: &mut String, report: &RunReport) {
    let eval = report.has_eval();
    out.push_str(
        "<table class=\"iterations\">\n<tr><th>iteration</th><th>phases done</th>\
         <th>parse failures</th><th>score chosen</th><th>score rejected</th><th>score all</th>\
         <th>pairs</th><th>DPO loss</th><th>reward margin</th><th>reward accuracy</th>",
    );
    if eval {
        out.push_str("<th>win % vs seed</th><th>IFEval strict (model / seed)</th>");
    }
    out.push_str("<th>minutes</th></tr>\n");
    for iteration in &report.iterations {
        let done: Vec<&str> = iteration.done.iter().map(|phase| phase.name()).collect();
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td>{}</td>",
            iteration.iteration,
            if done.is_empty() {
                "none yet".to_string()
            } else {
                done.join(", ")
            }
        );
        let m = iteration.metrics.as_ref();
        let judged = iteration.has(Phase::Judge);
        let cell = |text: String| format!("<td class=\"num\">{text}</td>");
        let parse = match m {
            Some(m) if judged => format!("{}/{}", m.parse_failures, m.samples),
            _ => "–".into(),
        };
        out.push_str(&cell(parse));
        out.push_str(&cell(number(m.and_then(|m| m.score_chosen), 3)));
        out.push_str(&cell(number(m.and_then(|m| m.score_rejected), 3)));
        out.push_str(&cell(number(m.and_then(|m| m.score_all), 3)));
        let pairs = match m {
            Some(m) if iteration.has(Phase::Select) => m.pairs.to_string(),
            _ => "–".into(),
        };
        out.push_str(&cell(pairs));
        out.push_str(&cell(number(m.and_then(|m| m.dpo_loss), 4)));
        out.push_str(&cell(number(m.and_then(|m| m.reward_margin), 4)));
        out.push_str(&cell(number(m.and_then(|m| m.reward_accuracy), 2)));
        if eval {
            out.push_str(&cell(number(m.and_then(|m| m.eval_win_rate_percent), 1)));
            out.push_str(&cell(format!(
                "{} / {}",
                number(m.and_then(|m| m.eval_ifeval_strict), 3),
                number(m.and_then(|m| m.eval_seed_ifeval_strict), 3)
            )));
        }
        let minutes = m
            .and_then(|m| m.seconds.get("total"))
            .map(|seconds| seconds / 60.0);
        out.push_str(&cell(number(minutes, 1)));
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// Per-iteration values of one figure: `(iteration, value)`.
fn per_iteration(
    report: &RunReport,
    value: impl Fn(&IterationReport, &IterationMetrics) -> Option<f64>,
) -> Vec<(f64, Option<f64>)> {
    report
        .iterations
        .iter()
        .map(|iteration| {
            let y = iteration.metrics.as_ref().and_then(|m| value(iteration, m));
            (f64::from(iteration.iteration), y)
        })
        .collect()
}

fn series(name: &str, color: plotters::style::RGBColor, points: Vec<(f64, Option<f64>)>) -> Series {
    Series {
        name: name.to_string(),
        color,
        dashed: false,
        points,
    }
}

fn dashed(mut series: Series) -> Series {
    series.dashed = true;
    series
}

/// Every chart of the report, with its id, in page order.
fn charts(report: &RunReport) -> Result<Vec<(&'static str, String)>, String> {
    let count = report
        .iterations
        .iter()
        .filter(|i| i.metrics.is_some())
        .map(|i| i.iteration)
        .max()
        .unwrap_or(1);
    let x = || XAxis::Iterations(count);
    let judged = |i: &IterationReport| i.has(Phase::Judge);
    let mut out = Vec::new();

    out.push((
        PLOT_IDS[0],
        plots::line_chart(&LineChart {
            title: "Judge score of the samples",
            x: x(),
            y_desc: "mean judge score",
            series: vec![
                series(
                    "chosen",
                    GREEN,
                    per_iteration(report, |_, m| m.score_chosen),
                ),
                series(
                    "rejected",
                    RED,
                    per_iteration(report, |_, m| m.score_rejected),
                ),
                dashed(series(
                    "all samples",
                    BLUE,
                    per_iteration(report, |_, m| m.score_all),
                )),
            ],
            y_span: None,
            reference: None,
        })?,
    ));

    if report.has_eval() {
        let percent = |value: Option<f64>| value.map(|v| 100.0 * v);
        let win = per_iteration(report, |_, m| m.eval_win_rate_percent);
        let has_win = win.iter().any(|p| p.1.is_some());
        out.push((
            PLOT_IDS[1],
            plots::line_chart(&LineChart {
                title: "Against the seed model (held-out instructions)",
                x: x(),
                y_desc: "percent",
                series: vec![
                    series("win rate over the seed", BLUE, win),
                    series(
                        "IFEval strict, model",
                        GREEN,
                        per_iteration(report, |_, m| percent(m.eval_ifeval_strict)),
                    ),
                    dashed(series(
                        "IFEval strict, seed",
                        GREY,
                        per_iteration(report, |_, m| percent(m.eval_seed_ifeval_strict)),
                    )),
                ],
                y_span: Some((0.0, 100.0)),
                reference: has_win.then_some((50.0, "50 % (tie)")),
            })?,
        ));
    }

    let lengths = |title: &'static str,
                   chosen: fn(&IterationMetrics) -> Option<f64>,
                   rejected: fn(&IterationMetrics) -> Option<f64>| {
        plots::line_chart(&LineChart {
            title,
            x: x(),
            y_desc: "mean tokens",
            // Chosen is drawn last, solid over the dashed rejected line: the two are often equal.
            series: vec![
                dashed(series(
                    "rejected",
                    RED,
                    per_iteration(report, |_, m| rejected(m)),
                )),
                series("chosen", GREEN, per_iteration(report, |_, m| chosen(m))),
            ],
            y_span: Some((0.0, 0.0)),
            reference: None,
        })
    };
    out.push((
        PLOT_IDS[2],
        lengths(
            "Response length, chosen vs rejected",
            |m| m.chosen_response_tokens,
            |m| m.rejected_response_tokens,
        )?,
    ));
    out.push((
        PLOT_IDS[3],
        lengths(
            "Thought length, chosen vs rejected",
            |m| m.chosen_thought_tokens,
            |m| m.rejected_thought_tokens,
        )?,
    ));

    out.push((
        PLOT_IDS[4],
        plots::line_chart(&LineChart {
            title: "Parse failures and forced responses",
            x: x(),
            y_desc: "percent of samples",
            series: vec![
                series(
                    "parse failures",
                    RED,
                    per_iteration(report, |i, m| {
                        judged(i).then_some(100.0 * m.parse_failure_rate)
                    }),
                ),
                dashed(series(
                    "response separator forced",
                    ORANGE,
                    per_iteration(report, |_, m| {
                        (m.samples > 0)
                            .then(|| 100.0 * f64::from(m.forced_responses) / f64::from(m.samples))
                    }),
                )),
            ],
            y_span: Some((0.0, 100.0)),
            reference: None,
        })?,
    ));

    out.push((
        PLOT_IDS[5],
        plots::line_chart(&LineChart {
            title: "DPO, mean over the last epoch",
            x: x(),
            y_desc: "loss / reward margin",
            series: vec![
                series("DPO loss", BLUE, per_iteration(report, |_, m| m.dpo_loss)),
                series(
                    "reward margin",
                    ORANGE,
                    per_iteration(report, |_, m| m.reward_margin),
                ),
            ],
            y_span: Some((0.0, 0.0)),
            reference: None,
        })?,
    ));

    // Steps counted over the run: each iteration's steps follow the previous one's.
    let mut offset = 0.0;
    let mut loss = Vec::new();
    let mut margin = Vec::new();
    for (index, iteration) in report.iterations.iter().enumerate() {
        if iteration.steps.is_empty() {
            continue;
        }
        let color = PALETTE[index % PALETTE.len()];
        let name = format!("iteration {}", iteration.iteration);
        let at = |step: u64| offset + step as f64;
        loss.push(series(
            &name,
            color,
            iteration
                .steps
                .iter()
                .map(|s| (at(s.step), Some(s.loss)))
                .collect(),
        ));
        margin.push(series(
            &name,
            color,
            iteration
                .steps
                .iter()
                .map(|s| (at(s.step), Some(s.rewards_margins)))
                .collect(),
        ));
        offset += iteration.steps.last().map_or(0.0, |s| s.step as f64);
    }
    out.push((
        PLOT_IDS[6],
        plots::line_chart(&LineChart {
            title: "DPO loss per step",
            x: XAxis::Steps(offset),
            y_desc: "loss",
            series: loss,
            y_span: None,
            reference: None,
        })?,
    ));
    out.push((
        PLOT_IDS[7],
        plots::line_chart(&LineChart {
            title: "DPO reward margin per step (chosen − rejected)",
            x: XAxis::Steps(offset),
            y_desc: "reward margin",
            series: margin,
            y_span: Some((0.0, 0.0)),
            reference: None,
        })?,
    ));

    let minutes = |phase: Phase| {
        report
            .iterations
            .iter()
            .filter(|i| i.metrics.is_some())
            .map(|i| {
                i.metrics
                    .as_ref()
                    .and_then(|m| m.seconds.get(phase.name()))
                    .map_or(0.0, |seconds| seconds / 60.0)
            })
            .collect::<Vec<f64>>()
    };
    let colors = [BLUE, GREEN, GREY, ORANGE, PURPLE];
    let layers = phases(report)
        .into_iter()
        .zip(colors)
        .map(|(phase, color)| Layer {
            name: phase.name().to_string(),
            color,
            values: minutes(phase),
        })
        .collect();
    out.push((
        PLOT_IDS[8],
        plots::stacked_bars(&StackedBars {
            title: "Wall-clock time per phase",
            y_desc: "minutes",
            iterations: report
                .iterations
                .iter()
                .filter(|i| i.metrics.is_some())
                .map(|i| i.iteration)
                .collect(),
            layers,
        })?,
    ));

    Ok(out
        .into_iter()
        .map(|(id, svg)| (id, label_svg(&svg, id)))
        .collect())
}

/// The plot's `<svg>` with a class and an accessible name; anything plotters put before the
/// element (an XML declaration) is dropped: the SVG is inline.
fn label_svg(svg: &str, id: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    let svg = &svg[start..];
    match svg.strip_prefix("<svg") {
        Some(rest) => format!("<svg class=\"chart\" role=\"img\" aria-label=\"{id}\"{rest}"),
        None => svg.to_string(),
    }
}

fn output_cell(out: &mut String, output: &ShownOutput) {
    out.push_str("<td>");
    match (&output.thought, &output.response) {
        (Some(thought), Some(response)) => {
            let _ = write!(
                out,
                "<div class=\"thought\"><span class=\"label\">thought</span>\
                 <div class=\"text\">{}</div></div>\
                 <div class=\"response\"><span class=\"label\">response</span>\
                 <div class=\"text\">{}</div></div>",
                escape(thought),
                escape(response)
            );
        }
        _ => {
            let why = output.parse_failure.as_deref().unwrap_or("did not parse");
            let _ = write!(
                out,
                "<div class=\"failed\"><span class=\"label\">did not parse: {}</span>\
                 <div class=\"text\">{}</div></div>",
                escape(why),
                escape(&output.text)
            );
        }
    }
    if let Some(score) = output.score {
        let _ = write!(out, "<span class=\"id\">judge score {score:.3}</span>");
    }
    out.push_str("</td>");
}

fn instruction_cell(out: &mut String, row: &SampleRow) {
    let _ = write!(
        out,
        "<td><span class=\"id\">{}</span><div class=\"text\">{}</div></td>",
        escape(&row.id),
        escape(
            row.instruction
                .as_deref()
                .unwrap_or("(the instruction file is not readable from here)")
        )
    );
}

fn sample_tables(out: &mut String, samples: &Samples) {
    match samples {
        Samples::Eval {
            iteration,
            data,
            instructions,
            temperature,
            rows,
        } => {
            let decoding = if *temperature == 0.0 {
                "greedy decoding".to_string()
            } else {
                format!("temperature {temperature}")
            };
            let _ = write!(
                out,
                "<table class=\"samples\" id=\"samples-eval\">\n<caption>From \
                 <code>iter-{iteration}/eval.json</code>: the seed model (before training) and \
                 iteration {iteration}'s model (after) on the same held-out instructions, the \
                 first {} of {instructions} of <code>{}</code>, {decoding}. Preference: the \
                 judge's preference for the trained model (1 = it wins, 0.5 = tie).</caption>\n\
                 <colgroup><col style=\"width:22%\"><col style=\"width:35%\">\
                 <col style=\"width:35%\"><col style=\"width:8%\"></colgroup>\n\
                 <tr><th>instruction</th><th>seed model (before)</th>\
                 <th>iteration {iteration}'s model (after)</th><th>judge pref.</th></tr>\n",
                rows.len(),
                escape(&data.display().to_string()),
            );
            for row in rows {
                out.push_str("<tr>");
                instruction_cell(out, row);
                for output in &row.outputs {
                    output_cell(out, output);
                }
                let _ = write!(out, "<td class=\"num\">{}</td>", number(row.preference, 2));
                out.push_str("</tr>\n");
            }
            out.push_str("</table>\n");
        }
        Samples::Training { seed, latest } => {
            out.push_str(
                "<p class=\"note\">This run has no evaluation against the seed model \
                 (<code>[eval]</code>), so these are training samples: the first of the K \
                 outputs of the first instructions of an iteration, with the judge's score. \
                 Iterations train on different instructions, so the two tables do not share \
                 instructions.</p>\n",
            );
            training_table(
                out,
                "samples-before",
                "Before training: the seed model's samples in iteration 1",
                seed,
            );
            match latest {
                Some((iteration, rows)) => training_table(
                    out,
                    "samples-after",
                    &format!(
                        "After training: iteration {iteration}'s samples, from the model \
                         iteration {} trained",
                        iteration - 1
                    ),
                    rows,
                ),
                None => out.push_str(
                    "<p class=\"note\">No samples of a trained model yet: they come with \
                     iteration 2's judge phase.</p>\n",
                ),
            }
        }
    }
}

fn training_table(out: &mut String, id: &str, caption: &str, rows: &[SampleRow]) {
    let _ = write!(
        out,
        "<table class=\"samples\" id=\"{id}\">\n<caption>{}</caption>\n\
         <colgroup><col style=\"width:30%\"><col style=\"width:70%\"></colgroup>\n\
         <tr><th>instruction</th><th>output (thought, then response)</th></tr>\n",
        escape(caption)
    );
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"2\">not judged yet</td></tr>\n");
    }
    for row in rows {
        out.push_str("<tr>");
        instruction_cell(out, row);
        for output in &row.outputs {
            output_cell(out, output);
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("plain text, ünïcode"), "plain text, ünïcode");
    }

    #[test]
    fn labels_the_svg_element() {
        let svg = label_svg(
            "<?xml version=\"1.0\"?>\n<svg width=\"1\">x</svg>",
            "plot-x",
        );
        assert_eq!(
            svg,
            "<svg class=\"chart\" role=\"img\" aria-label=\"plot-x\" width=\"1\">x</svg>"
        );
    }

    #[test]
    fn outputs_are_escaped_and_split() {
        let mut out = String::new();
        output_cell(
            &mut out,
            &ShownOutput {
                thought: Some("<b>think</b>".into()),
                response: Some("a < b".into()),
                text: String::new(),
                parse_failure: None,
                score: Some(0.5),
            },
        );
        assert!(out.contains("&lt;b&gt;think&lt;/b&gt;"), "{out}");
        assert!(out.contains("a &lt; b"), "{out}");
        assert!(out.contains("class=\"thought\"") && out.contains("class=\"response\""));
        let mut failed = String::new();
        output_cell(
            &mut failed,
            &ShownOutput {
                thought: None,
                response: None,
                text: "<img src=x onerror=alert(1)>".into(),
                parse_failure: Some("no separator".into()),
                score: None,
            },
        );
        assert!(!failed.contains("<img"), "{failed}");
        assert!(failed.contains("no separator"), "{failed}");
    }
}

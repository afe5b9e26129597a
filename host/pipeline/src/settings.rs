//! What a run's finished work depends on: every manifest value that shapes an artifact, with
//! the first phase it affects. `run.json` keeps the values the work was done with; a rerun whose
//! manifest changed one of them is refused, naming the key, unless `--restart-from` redoes the
//! affected phases on purpose.

use std::collections::BTreeMap;
use std::path::Path;

use ponder_manifest::{Manifest, NamedModel, PluginSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::PipelineError;
use crate::phases::eval::eval_judge_spec;
use crate::run_dir::{Phase, RunDir, read_jsonl, remove_path, write_atomic, write_jsonl};

/// The value of every setting of a run, by dotted manifest key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Format of this file.
    pub format: u32,
    /// Key → value (as text).
    pub values: BTreeMap<String, String>,
}

const FORMAT: u32 = 1;

/// The first phase a changed key invalidates (`None`: the key changes no finished work).
pub fn phase_of(key: &str) -> Option<Phase> {
    let section = key.split('.').next().unwrap_or(key);
    match (section, key) {
        (_, "run.iterations" | "data.eval" | "run.out") => None,
        (_, "run.on_row_failure") => Some(Phase::Judge),
        (_, "data.validation" | "data.validation_size") => Some(Phase::Dpo),
        ("run" | "model" | "data" | "sample", _) => Some(Phase::Sample),
        (_, "plugins.template") => Some(Phase::Sample),
        (_, "plugins.judge") | ("models", _) => Some(Phase::Judge),
        (_, "plugins.selector") => Some(Phase::Select),
        ("dpo", _) => Some(Phase::Dpo),
        ("eval", _) => Some(Phase::Eval),
        _ => Some(Phase::Sample),
    }
}

/// A file's identity for change detection: its path and size (hashing a model each run would
/// cost seconds; a changed file of the same size and path goes unnoticed).
fn file_identity(key: &str, manifest: &Manifest, path: &Path) -> Result<String, PipelineError> {
    let size = path_size(path).map_err(|error| PipelineError::Manifest {
        file: manifest.file.clone(),
        key: key.to_string(),
        message: format!("{}: {error}", path.display()),
    })?;
    Ok(format!("{} ({size} bytes)", path.display()))
}

fn path_size(path: &Path) -> std::io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

/// A plugin's identity: the hash of its code and its configuration.
fn plugin_identity(
    key: &str,
    manifest: &Manifest,
    spec: &PluginSpec,
) -> Result<String, PipelineError> {
    let path = spec.source.path();
    let bytes = std::fs::read(path).map_err(|error| PipelineError::Manifest {
        file: manifest.file.clone(),
        key: key.to_string(),
        message: format!("cannot read the plugin {}: {error}", path.display()),
    })?;
    let digest = Sha256::digest(&bytes);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{} sha256:{hex} config {} grants {:?}",
        path.display(),
        spec.config,
        spec.grants
    ))
}

impl RunSettings {
    /// The settings of `manifest` (which must have a model, data and the three plugins).
    pub fn of(manifest: &Manifest) -> Result<RunSettings, PipelineError> {
        let mut values = BTreeMap::new();
        let mut put = |key: &str, value: String| {
            values.insert(key.to_string(), value);
        };
        let run = &manifest.run;
        put("run.seed", run.seed.to_string());
        put("run.on_row_failure", format!("{:?}", run.on_row_failure));
        if let Some(model) = &manifest.model {
            put(
                "model.path",
                file_identity("model.path", manifest, &model.path)?,
            );
            put("model.device", model.device.clone());
        }
        if let Some(data) = &manifest.data {
            put(
                "data.train",
                file_identity("data.train", manifest, &data.train)?,
            );
            put("data.per_iteration", data.per_iteration.to_string());
            put("data.shuffle", data.shuffle.to_string());
            if let Some(validation) = &data.validation {
                put(
                    "data.validation",
                    file_identity("data.validation", manifest, validation)?,
                );
                put("data.validation_size", data.validation_size.to_string());
            }
        }
        let sample = &manifest.sample;
        put("sample.k", sample.k.to_string());
        put("sample.temperature", sample.temperature.to_string());
        put("sample.top_p", sample.top_p.to_string());
        put("sample.max_new_tokens", sample.max_new_tokens.to_string());
        put("sample.prefill", sample.prefill.to_string());
        put("sample.thought_budget", sample.thought_budget.to_string());
        put("sample.batch_prompts", sample.batch_prompts.to_string());
        // Only with an engine, so runs from before engines existed keep their settings.
        if let Some(engine) = &sample.engine {
            put("sample.engine", engine.clone());
        }
        let dpo = &manifest.dpo;
        put("dpo.beta", dpo.beta.to_string());
        put("dpo.loss", format!("{:?}", dpo.loss));
        put("dpo.nll", dpo.nll.to_string());
        put("dpo.lr", dpo.lr.to_string());
        put("dpo.epochs", dpo.epochs.to_string());
        put("dpo.batch_size", dpo.batch_size.to_string());
        put("dpo.save_every", format!("{:?}", dpo.save_every));
        // Only with LoRA, so runs from before `[dpo.lora]` existed keep their settings.
        if let Some(lora) = &dpo.lora {
            put("dpo.lora", format!("{lora:?}"));
        }
        for spec in manifest.plugins.iter() {
            let key = format!("plugins.{}", spec.role);
            let identity = plugin_identity(&key, manifest, spec)?;
            put(&key, identity);
        }
        if let Some(eval) = &manifest.eval {
            put(
                "eval.data",
                file_identity("eval.data", manifest, &eval.data)?,
            );
            let all_or = |value: Option<u32>, all: &str| {
                value.map_or_else(|| all.to_string(), |value| value.to_string())
            };
            put("eval.limit", all_or(eval.limit, "all"));
            let judge = match eval_judge_spec(eval) {
                Some(spec) => plugin_identity("eval.judge", manifest, &spec)?,
                None => "none".to_string(),
            };
            put("eval.judge", judge);
            put("eval.judge_kind", format!("{:?}", eval.judge_kind));
            let constraints = match crate::phases::eval::constraints_judge(eval) {
                Some(spec) => plugin_identity("eval.constraints_judge", manifest, &spec)?,
                None => "none".to_string(),
            };
            put("eval.constraints_judge", constraints);
            put(
                "eval.max_new_tokens",
                all_or(eval.max_new_tokens, "sample.max_new_tokens"),
            );
            // Only when set, so that runs made before the key existed resume.
            if let Some(batch_prompts) = eval.batch_prompts {
                put("eval.batch_prompts", batch_prompts.to_string());
            }
            put("eval.temperature", eval.temperature.to_string());
            put("eval.top_p", eval.top_p.to_string());
            put("eval.parse_retries", eval.parse_retries.to_string());
            put("eval.resamples", eval.resamples.to_string());
        }
        for (name, model) in &manifest.models {
            let key = format!("models.{name}");
            let identity = match model {
                NamedModel::Local(local) => {
                    let identity = file_identity(&key, manifest, &local.path)?;
                    format!("{identity} on {:?}", local.device)
                }
                // What the server holds under that name is the server's business: only the
                // endpoint and the name are known here.
                NamedModel::Served(served) => format!("{} model {:?}", served.url, served.model),
            };
            put(&key, identity);
        }
        Ok(RunSettings {
            format: FORMAT,
            values,
        })
    }

    /// Reads `run.json` (`None` for a new run).
    pub fn read(run: &RunDir) -> Result<Option<RunSettings>, PipelineError> {
        let path = run.settings_file();
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| PipelineError::io(&path, e))?;
        let settings: RunSettings =
            serde_json::from_str(&text).map_err(|e| PipelineError::RunFile {
                path: path.clone(),
                line: 0,
                message: e.to_string(),
            })?;
        if settings.format != FORMAT {
            return Err(PipelineError::RunFile {
                path,
                line: 0,
                message: format!(
                    "written in format {} by another ponder version; this one reads format {FORMAT}",
                    settings.format
                ),
            });
        }
        Ok(Some(settings))
    }

    /// Writes `run.json`.
    pub fn write(&self, run: &RunDir) -> Result<(), PipelineError> {
        let mut text = serde_json::to_vec_pretty(self).unwrap_or_default();
        text.push(b'\n');
        write_atomic(&run.settings_file(), &text)
    }

    /// Refuses `self` (the manifest now) when it changed a value that finished or partial work
    /// in `run` was done with.
    pub fn check_against(
        &self,
        before: &RunSettings,
        run: &RunDir,
        manifest_file: &Path,
        iterations_present: u32,
    ) -> Result<(), PipelineError> {
        let keys: std::collections::BTreeSet<&String> =
            self.values.keys().chain(before.values.keys()).collect();
        for key in keys {
            let old = before.values.get(key);
            let new = self.values.get(key);
            if old == new {
                continue;
            }
            let Some(phase) = phase_of(key) else {
                continue;
            };
            let affected = (1..=iterations_present).find_map(|iteration| {
                Phase::ALL
                    .into_iter()
                    .filter(|later| *later >= phase)
                    .find(|later| run.phase_started(iteration, *later))
                    .map(|later| (iteration, later))
            });
            if let Some((iteration, started)) = affected {
                let show = |value: Option<&String>| {
                    value.cloned().unwrap_or_else(|| "(not set)".to_string())
                };
                return Err(PipelineError::ManifestChanged(Box::new(
                    crate::error::ManifestChange {
                        file: manifest_file.to_path_buf(),
                        key: key.clone(),
                        before: show(old),
                        after: show(new),
                        done: format!("iteration {iteration}'s `{}` phase ran", started.name()),
                        restart: format!("{iteration}:{}", phase.name()),
                    },
                )));
            }
        }
        Ok(())
    }
}

/// Where `--restart-from` starts over: an iteration and a phase of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPoint {
    /// 1-based iteration.
    pub iteration: u32,
    /// The first phase redone.
    pub phase: Phase,
}

impl std::str::FromStr for RestartPoint {
    type Err = PipelineError;

    /// `N` (iteration N from sampling), `PHASE` (iteration 1) or `N:PHASE`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            PipelineError::Restart(format!(
                "`{text}`: expected ITERATION, PHASE or ITERATION:PHASE, with PHASE one of \
                 sample, judge, select, dpo, eval (e.g. `2`, `judge`, `2:dpo`)"
            ))
        };
        let (iteration, phase) = match text.split_once(':') {
            Some((iteration, phase)) => (Some(iteration), Some(phase)),
            None if text.chars().all(|c| c.is_ascii_digit()) => (Some(text), None),
            None => (None, Some(text)),
        };
        let iteration = match iteration {
            Some(number) => number
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(bad)?,
            None => 1,
        };
        let phase = match phase {
            Some(name) => Phase::from_name(name).ok_or_else(bad)?,
            None => Phase::Sample,
        };
        Ok(RestartPoint { iteration, phase })
    }
}

impl std::fmt::Display for RestartPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.iteration, self.phase.name())
    }
}

/// Removes what `point` and everything after it wrote: that iteration's phases from `point.phase`
/// on, every later iteration, and their metrics records.
pub fn restart(run: &RunDir, point: RestartPoint) -> Result<(), PipelineError> {
    for phase in Phase::ALL.into_iter().filter(|phase| *phase >= point.phase) {
        for path in run.phase_paths(point.iteration, phase) {
            remove_path(&path)?;
        }
    }
    crate::metrics::forget_timings_from(run, point.iteration, point.phase)?;
    let mut later = point.iteration + 1;
    while run.iteration(later).exists() {
        remove_path(&run.iteration(later))?;
        later += 1;
    }
    let metrics = run.metrics_file();
    if metrics.exists() {
        let records: Vec<serde_json::Value> = read_jsonl(&metrics)?;
        let kept: Vec<serde_json::Value> = records
            .into_iter()
            .filter(|record| {
                record
                    .get("iteration")
                    .and_then(serde_json::Value::as_u64)
                    .is_some_and(|iteration| iteration < u64::from(point.iteration))
            })
            .collect();
        write_jsonl(&metrics, &kept)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_points_parse() {
        let parse = |text: &str| text.parse::<RestartPoint>();
        assert_eq!(
            parse("2").unwrap(),
            RestartPoint {
                iteration: 2,
                phase: Phase::Sample
            }
        );
        assert_eq!(
            parse("judge").unwrap(),
            RestartPoint {
                iteration: 1,
                phase: Phase::Judge
            }
        );
        assert_eq!(
            parse("3:dpo").unwrap(),
            RestartPoint {
                iteration: 3,
                phase: Phase::Dpo
            }
        );
        for bad in ["0", "x", "1:x", "", ":judge", "-1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_map_to_the_first_phase_they_change() {
        assert_eq!(phase_of("sample.temperature"), Some(Phase::Sample));
        assert_eq!(phase_of("run.seed"), Some(Phase::Sample));
        assert_eq!(phase_of("plugins.judge"), Some(Phase::Judge));
        assert_eq!(phase_of("models.judge"), Some(Phase::Judge));
        assert_eq!(phase_of("plugins.selector"), Some(Phase::Select));
        assert_eq!(phase_of("dpo.lr"), Some(Phase::Dpo));
        assert_eq!(phase_of("data.validation"), Some(Phase::Dpo));
        assert_eq!(phase_of("run.iterations"), None);
        assert_eq!(phase_of("eval.limit"), Some(Phase::Eval));
        assert_eq!(phase_of("eval.judge"), Some(Phase::Eval));
    }
    #[test]
    fn restart_forgets_the_timings_of_the_phases_it_redoes() {
        let dir = tempfile::tempdir().expect("temporary run directory");
        let run = RunDir::new(dir.path());
        std::fs::create_dir_all(run.iteration(1)).expect("iteration directory");
        let line =
            |phase: &str| format!(r#"{{"phase":"{phase}","seconds":1.0,"host_seconds":0.0}}"#);
        let lines: Vec<String> = ["sample", "judge", "select", "dpo", "sample"]
            .into_iter()
            .map(line)
            .collect();
        std::fs::write(run.timings_file(1), lines.join("\n") + "\n").expect("timings");
        restart(
            &run,
            RestartPoint {
                iteration: 1,
                phase: Phase::Select,
            },
        )
        .expect("restart");
        let kept = std::fs::read_to_string(run.timings_file(1)).expect("timings");
        let phases: Vec<&str> = kept
            .lines()
            .map(|line| {
                if line.contains("\"sample\"") {
                    "sample"
                } else if line.contains("\"judge\"") {
                    "judge"
                } else {
                    "other"
                }
            })
            .collect();
        assert_eq!(phases, ["sample", "judge", "sample"], "{kept}");
    }
}

//! Experiment manifests: `ponder experiment` trains several arms (run manifests) and evaluates
//! every iteration of each against one baseline on held-out instructions (the paper's Table 1).
//!
//! ```toml
//! [experiment]
//! out = "../runs/table1"   # results.md, results.json, evals/, outputs/
//! baseline = "direct"      # the arm whose seed model (iteration 0) every row is compared with
//! seed = 1234              # the evaluation seed (outputs, plugins, bootstrap)
//!
//! [[arms]]
//! name = "direct"
//! manifest = "table1-direct.toml"
//!
//! [[arms]]
//! name = "tpo"
//! manifest = "table1-tpo.toml"
//!
//! [eval]                   # the keys of a run manifest's [eval]
//! data = "../data/verifiable/eval.jsonl"
//! judge = "../target/plugins/judge-constraints.wasm"
//!
//! # [models.judge]         # models an LLM judge granted `models` (eval.judge_grant) calls
//! # path = "../models/judge.gguf"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{
    EvalSection, Manifest, ManifestError, NamedModel, RawEval, RawNamedModel, SampleSection,
    Validator, deserialize,
};

/// A parsed, validated experiment manifest; every path resolved against its directory.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentManifest {
    /// The experiment manifest itself.
    pub file: PathBuf,
    /// Where the results go.
    pub out: PathBuf,
    /// The evaluation seed.
    pub seed: u64,
    /// The arm whose iteration 0 (its seed model through its template) is every row's baseline.
    pub baseline: String,
    /// The arms, in the manifest's order.
    pub arms: Vec<Arm>,
    /// How every model is evaluated. An arm's thought-shaping settings (`sample.prefill`,
    /// `thought_budget`, `batch_prompts`) and template come from its own manifest.
    pub eval: EvalSection,
    /// `[models.NAME]`: the models an evaluation judge granted `models` may call.
    pub models: BTreeMap<String, NamedModel>,
}

/// One arm: a run manifest trained and evaluated under a name.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    /// Its name in the results (letters, digits, `-` and `_`).
    pub name: String,
    /// Its run manifest.
    pub manifest: Manifest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    experiment: RawExperimentSection,
    arms: Vec<RawArm>,
    eval: RawEval,
    #[serde(default)]
    models: BTreeMap<String, RawNamedModel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperimentSection {
    out: PathBuf,
    baseline: String,
    #[serde(default)]
    seed: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArm {
    name: String,
    manifest: PathBuf,
}

impl ExperimentManifest {
    /// Reads, parses and validates an experiment manifest and every arm's run manifest.
    ///
    /// # Errors
    /// An unreadable or malformed file (this one or an arm's), an arm without `[model]` or
    /// `[data]`, arm names that repeat or are not file-name safe, a baseline that names no arm,
    /// two arms writing the same run directory, `eval.max_new_tokens` not above an arm's
    /// `sample.thought_budget`.
    pub fn load(file: &Path) -> Result<ExperimentManifest, ManifestError> {
        let text = std::fs::read_to_string(file).map_err(|source| ManifestError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        let raw: RawExperiment = deserialize(&text, file)?;
        let base = file.parent().unwrap_or(Path::new("")).to_path_buf();
        let validator = Validator { file, base: &base };
        validator.check(!raw.arms.is_empty(), "arms", "name at least one arm")?;
        let mut names = BTreeSet::new();
        let mut outs = BTreeSet::new();
        let mut arms = Vec::with_capacity(raw.arms.len());
        for (index, arm) in raw.arms.into_iter().enumerate() {
            let key = format!("arms[{index}].name");
            let safe = !arm.name.is_empty()
                && arm
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            validator.check(
                safe,
                &key,
                &format!(
                    "`{}`: use letters, digits, `-` and `_` (it names result files)",
                    arm.name
                ),
            )?;
            validator.check(
                names.insert(arm.name.clone()),
                &key,
                &format!("`{}` names two arms", arm.name),
            )?;
            let manifest = Manifest::load(&validator.resolve(&arm.manifest))?;
            let manifest_key = format!("arms[{index}].manifest");
            validator.check(
                manifest.model.is_some() && manifest.data.is_some(),
                &manifest_key,
                &format!(
                    "{} has no [model] or no [data]: an arm is a run `ponder train` can run",
                    manifest.file.display()
                ),
            )?;
            validator.check(
                outs.insert(manifest.run.out.clone()),
                &manifest_key,
                &format!(
                    "{} writes run.out {}, as an earlier arm does",
                    manifest.file.display(),
                    manifest.run.out.display()
                ),
            )?;
            arms.push(Arm {
                name: arm.name,
                manifest,
            });
        }
        let baseline = raw.experiment.baseline;
        validator.check(
            names.contains(&baseline),
            "experiment.baseline",
            &format!("`{baseline}` is not the name of an arm"),
        )?;
        // The thought budget is each arm's: checked against every arm below.
        let unshaped = SampleSection {
            thought_budget: 0,
            ..SampleSection::default()
        };
        let eval = validator.eval(raw.eval, &unshaped)?;
        let models = validator.models(raw.models)?;
        for arm in &arms {
            let budget = arm.manifest.sample.thought_budget;
            let max_new_tokens = eval
                .max_new_tokens
                .unwrap_or(arm.manifest.sample.max_new_tokens);
            validator.check(
                max_new_tokens > budget,
                "eval.max_new_tokens",
                &format!(
                    "must be above arm `{}`'s sample.thought_budget ({budget}) so the response \
                     has room, got {max_new_tokens}",
                    arm.name
                ),
            )?;
        }
        Ok(ExperimentManifest {
            file: file.to_path_buf(),
            out: validator.resolve(&raw.experiment.out),
            seed: raw.experiment.seed,
            baseline,
            arms,
            eval,
            models,
        })
    }

    /// The baseline arm.
    pub fn baseline_arm(&self) -> &Arm {
        self.arms
            .iter()
            .find(|arm| arm.name == self.baseline)
            .unwrap_or(&self.arms[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "[run]\nout = \"runs/NAME\"\n[model]\npath = \"m.gguf\"\n\
                       [data]\ntrain = \"t.jsonl\"\n[sample]\nthought_budget = 64\n";

    fn write_experiment(dir: &Path, experiment: &str) -> PathBuf {
        for name in ["a", "b"] {
            std::fs::write(dir.join(format!("{name}.toml")), RUN.replace("NAME", name)).unwrap();
        }
        std::fs::write(dir.join("same.toml"), RUN.replace("NAME", "a")).unwrap();
        let file = dir.join("experiment.toml");
        std::fs::write(&file, experiment).unwrap();
        file
    }

    const VALID: &str = "[experiment]\nout = \"out\"\nbaseline = \"a\"\nseed = 7\n\
                         [models.judge]\npath = \"j.gguf\"\n\
                         [[arms]]\nname = \"a\"\nmanifest = \"a.toml\"\n\
                         [[arms]]\nname = \"b\"\nmanifest = \"b.toml\"\n\
                         [eval]\ndata = \"e.jsonl\"\nlimit = 5\n";

    #[test]
    fn experiment_loads_arms_and_resolves_paths() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_experiment(dir.path(), VALID);
        let experiment = ExperimentManifest::load(&file).unwrap();
        assert_eq!(experiment.out, dir.path().join("out"));
        assert_eq!(experiment.seed, 7);
        assert_eq!(experiment.arms.len(), 2);
        assert_eq!(
            experiment.arms[1].manifest.run.out,
            dir.path().join("runs/b")
        );
        assert_eq!(experiment.eval.data, dir.path().join("e.jsonl"));
        assert_eq!(experiment.eval.limit, Some(5));
        assert_eq!(experiment.baseline_arm().name, "a");
        assert_eq!(
            experiment.models["judge"].path(),
            Some(dir.path().join("j.gguf").as_path())
        );
    }

    fn load_error(experiment: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = write_experiment(dir.path(), experiment);
        ExperimentManifest::load(&file).unwrap_err().to_string()
    }

    #[test]
    fn experiment_errors_name_the_key() {
        let error = load_error(&VALID.replace("baseline = \"a\"", "baseline = \"c\""));
        assert!(
            error.contains("experiment.baseline") && error.contains("`c`"),
            "{error}"
        );
        let error = load_error(&VALID.replace("name = \"b\"", "name = \"a\""));
        assert!(
            error.contains("arms[1].name") && error.contains("two arms"),
            "{error}"
        );
        let error = load_error(&VALID.replace("name = \"b\"", "name = \"b c\""));
        assert!(error.contains("arms[1].name"), "{error}");
        let error = load_error(&VALID.replace("b.toml", "same.toml"));
        assert!(
            error.contains("arms[1].manifest") && error.contains("run.out"),
            "{error}"
        );
        let error = load_error(&VALID.replace("limit = 5", "max_new_tokens = 64"));
        assert!(
            error.contains("eval.max_new_tokens") && error.contains("arm `a`"),
            "{error}"
        );
        let error = load_error(&VALID.replace("b.toml", "missing.toml"));
        assert!(error.contains("missing.toml"), "{error}");
        let error = load_error(&VALID.replace("seed = 7", "seed = 7\nextra = 1"));
        assert!(error.contains("extra"), "{error}");
        let error = load_error(
            "[experiment]\nout = \"o\"\nbaseline = \"a\"\narms = []\n[eval]\ndata = \"e\"\n",
        );
        assert!(error.contains("arms"), "{error}");
    }
}

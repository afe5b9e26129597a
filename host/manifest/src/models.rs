//! `[models.NAME]`: the models granted plugins may call, each either a model file the host loads
//! (`path`) or a model served elsewhere behind an OpenAI-compatible HTTP API (`url`).
//!
//! ```toml
//! [models.judge]                  # a file the host loads
//! path = "models/judge.gguf"
//! device = "cpu"
//!
//! [models.big-judge]              # a model on a server (vLLM, llama.cpp's llama-server, ...)
//! url = "http://127.0.0.1:8080/v1"  # the API's base: requests go to {url}/chat/completions
//! model = "judge-70b"             # the server's name for it (the request's `model` field)
//! api_key_env = "JUDGE_API_KEY"   # optional: sent as `Authorization: Bearer $JUDGE_API_KEY`
//! timeout_ms = 120000             # per HTTP request (default 120000)
//! concurrency = 4                 # requests in flight at once (default 4)
//! retries = 3                     # retries of a connection error, 429 or 5xx (default 3)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{ManifestError, Validator, deserialize};

/// `[models.NAME]`: a model granted plugins may call.
#[derive(Debug, Clone, PartialEq)]
pub enum NamedModel {
    /// A model file the host loads (`path`).
    Local(LocalModel),
    /// A model behind an OpenAI-compatible endpoint (`url`).
    Served(ServedModel),
}

/// A model file the host loads and runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalModel {
    /// A Hugging Face directory or GGUF file (resolved).
    pub path: PathBuf,
    /// Device; the policy's device when absent.
    pub device: Option<String>,
}

/// A model served behind an OpenAI-compatible HTTP API.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedModel {
    /// The API's base URL, `http://` or `https://`, usually ending in `/v1`; requests go to
    /// `{url}/chat/completions`.
    pub url: String,
    /// The server's name for the model (the requests' `model` field).
    pub model: String,
    /// The environment variable holding the API key, sent as a bearer token; none when absent.
    pub api_key_env: Option<String>,
    /// The longest one HTTP request may take, in milliseconds.
    pub timeout_ms: u64,
    /// Requests in flight at once.
    pub concurrency: u32,
    /// How often a request is retried after a connection error, a 429 or a 5xx reply.
    pub retries: u32,
}

/// Default [`ServedModel::timeout_ms`].
pub const DEFAULT_SERVED_TIMEOUT_MS: u64 = 120_000;
/// Default [`ServedModel::concurrency`].
pub const DEFAULT_SERVED_CONCURRENCY: u32 = 4;
/// Default [`ServedModel::retries`].
pub const DEFAULT_SERVED_RETRIES: u32 = 3;

/// Most requests in flight to one served model.
const MAX_CONCURRENCY: u32 = 1024;
/// Most retries of one request.
const MAX_RETRIES: u32 = 100;

impl NamedModel {
    /// The model file, for a local model.
    pub fn path(&self) -> Option<&Path> {
        match self {
            NamedModel::Local(local) => Some(&local.path),
            NamedModel::Served(_) => None,
        }
    }
}

/// `[models.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNamedModel {
    path: Option<PathBuf>,
    device: Option<String>,
    url: Option<String>,
    model: Option<String>,
    api_key_env: Option<String>,
    timeout_ms: Option<u64>,
    concurrency: Option<u32>,
    retries: Option<u32>,
}

/// A file read for its `[models]` table only; every other table is ignored.
#[derive(Debug, Deserialize)]
struct ModelsOnly {
    #[serde(default)]
    models: BTreeMap<String, RawNamedModel>,
}

/// Reads the `[models]` table of a TOML file (a run manifest, an experiment manifest, or a file
/// holding only `[models.NAME]` tables), validated and with paths resolved against the file's
/// directory. Other tables are not looked at.
pub fn load_models(file: &Path) -> Result<BTreeMap<String, NamedModel>, ManifestError> {
    let text = std::fs::read_to_string(file).map_err(|source| ManifestError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let raw: ModelsOnly = deserialize(&text, file)?;
    let base = file.parent().unwrap_or(Path::new("")).to_path_buf();
    Validator { file, base: &base }.models(raw.models)
}

impl Validator<'_> {
    /// `[models.NAME]` tables: names not empty, exactly one of `path` and `url`, the keys of the
    /// other kind absent, devices known, served settings in range, paths resolved.
    pub(crate) fn models(
        &self,
        raw: BTreeMap<String, RawNamedModel>,
    ) -> Result<BTreeMap<String, NamedModel>, ManifestError> {
        let mut models = BTreeMap::new();
        for (name, model) in raw {
            self.check(!name.is_empty(), "models", "a model name must not be empty")?;
            let model = self.named_model(&name, model)?;
            models.insert(name, model);
        }
        Ok(models)
    }

    fn named_model(&self, name: &str, raw: RawNamedModel) -> Result<NamedModel, ManifestError> {
        let table = format!("models.{name}");
        match (raw.path, raw.url) {
            (Some(_), Some(_)) => Err(self.invalid(
                &table,
                "set either `path` (a model file the host loads) or `url` (an OpenAI-compatible \
                 endpoint), not both",
            )),
            (None, None) => Err(self.invalid(
                &table,
                "missing the model: set `path = \"path/to/model\"` (a Hugging Face directory or \
                 GGUF file) or `url = \"http://HOST:PORT/v1\"` with `model = \"NAME\"` (an \
                 OpenAI-compatible server)",
            )),
            (Some(path), None) => {
                let served_keys = [
                    ("model", raw.model.is_some()),
                    ("api_key_env", raw.api_key_env.is_some()),
                    ("timeout_ms", raw.timeout_ms.is_some()),
                    ("concurrency", raw.concurrency.is_some()),
                    ("retries", raw.retries.is_some()),
                ];
                for (key, present) in served_keys {
                    self.check(
                        !present,
                        &format!("{table}.{key}"),
                        "applies to served models (`url`) only; this one is a file (`path`)",
                    )?;
                }
                if let Some(device) = &raw.device {
                    self.device(&format!("{table}.device"), device)?;
                }
                Ok(NamedModel::Local(LocalModel {
                    path: self.resolve(&path),
                    device: raw.device,
                }))
            }
            (None, Some(url)) => {
                self.check(
                    raw.device.is_none(),
                    &format!("{table}.device"),
                    "a served model runs on its server; `device` applies to files (`path`) only",
                )?;
                self.check(
                    valid_url(&url),
                    &format!("{table}.url"),
                    &format!(
                        "`{url}` is not an http:// or https:// URL with a host (e.g. \
                         \"http://127.0.0.1:8080/v1\")"
                    ),
                )?;
                let model = raw.model.ok_or_else(|| {
                    self.invalid(
                        &format!("{table}.model"),
                        "missing: the server's name for the model (the requests' `model` \
                         field; llama.cpp's server accepts any)",
                    )
                })?;
                self.check(
                    !model.trim().is_empty(),
                    &format!("{table}.model"),
                    "must not be empty",
                )?;
                if let Some(variable) = &raw.api_key_env {
                    let valid = !variable.is_empty()
                        && !variable.starts_with(|c: char| c.is_ascii_digit())
                        && variable
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_');
                    self.check(
                        valid,
                        &format!("{table}.api_key_env"),
                        &format!(
                            "`{variable}` is not an environment variable name (letters, digits \
                             and `_`): name the variable holding the key, not the key"
                        ),
                    )?;
                }
                let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_SERVED_TIMEOUT_MS);
                self.check(
                    timeout_ms >= 1,
                    &format!("{table}.timeout_ms"),
                    "must be at least 1",
                )?;
                let concurrency = raw.concurrency.unwrap_or(DEFAULT_SERVED_CONCURRENCY);
                self.check(
                    (1..=MAX_CONCURRENCY).contains(&concurrency),
                    &format!("{table}.concurrency"),
                    &format!("must be in 1..={MAX_CONCURRENCY}, got {concurrency}"),
                )?;
                let retries = raw.retries.unwrap_or(DEFAULT_SERVED_RETRIES);
                self.check(
                    retries <= MAX_RETRIES,
                    &format!("{table}.retries"),
                    &format!("must be at most {MAX_RETRIES}, got {retries}"),
                )?;
                Ok(NamedModel::Served(ServedModel {
                    url: url.trim_end_matches('/').to_string(),
                    model,
                    api_key_env: raw.api_key_env,
                    timeout_ms,
                    concurrency,
                    retries,
                }))
            }
        }
    }
}

/// `http://` or `https://`, then a host, no whitespace.
fn valid_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !host.starts_with(':') && !url.contains(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(models: &str) -> Result<BTreeMap<String, NamedModel>, ManifestError> {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("m.toml");
        std::fs::write(&file, format!("[run]\nseed = 1\n{models}")).expect("write");
        load_models(&file)
    }

    fn error(models: &str) -> String {
        parse(models).expect_err("invalid").to_string()
    }

    #[test]
    fn served_models_take_defaults_and_local_ones_keep_their_keys() {
        let models = parse(
            "[models.judge]\nurl = \"http://127.0.0.1:8080/v1/\"\nmodel = \"smol\"\n\
             [models.big]\nurl = \"https://example.invalid/v1\"\nmodel = \"m\"\n\
             api_key_env = \"JUDGE_KEY\"\ntimeout_ms = 5\nconcurrency = 16\nretries = 0\n\
             [models.local]\npath = \"j.gguf\"\ndevice = \"cpu\"\n",
        )
        .expect("valid");
        assert_eq!(
            models["judge"],
            NamedModel::Served(ServedModel {
                url: "http://127.0.0.1:8080/v1".into(),
                model: "smol".into(),
                api_key_env: None,
                timeout_ms: DEFAULT_SERVED_TIMEOUT_MS,
                concurrency: DEFAULT_SERVED_CONCURRENCY,
                retries: DEFAULT_SERVED_RETRIES,
            })
        );
        let NamedModel::Served(big) = &models["big"] else {
            panic!("{:?}", models["big"]);
        };
        assert_eq!((big.timeout_ms, big.concurrency, big.retries), (5, 16, 0));
        assert_eq!(big.api_key_env.as_deref(), Some("JUDGE_KEY"));
        let local = models["local"].path().expect("a file");
        assert!(
            local.ends_with("j.gguf") && local.is_absolute(),
            "{local:?}"
        );
        assert_eq!(models["judge"].path(), None);
    }

    #[test]
    fn exactly_one_of_path_and_url() {
        let both = error("[models.j]\npath = \"j.gguf\"\nurl = \"http://h/v1\"\nmodel = \"m\"\n");
        assert!(both.contains("models.j: set either `path`"), "{both}");
        let neither = error("[models.j]\ndevice = \"cpu\"\n");
        assert!(neither.contains("models.j: missing the model"), "{neither}");
    }

    #[test]
    fn keys_of_the_other_kind_are_refused_by_name() {
        let served_key = error("[models.j]\npath = \"j.gguf\"\nconcurrency = 2\n");
        assert!(
            served_key.contains("models.j.concurrency: applies to served models"),
            "{served_key}"
        );
        let device = error("[models.j]\nurl = \"http://h/v1\"\nmodel = \"m\"\ndevice = \"cpu\"\n");
        assert!(device.contains("models.j.device"), "{device}");
        let unknown = error("[models.j]\nurl = \"http://h/v1\"\nmodel = \"m\"\napi_key = \"x\"\n");
        assert!(unknown.contains("models.j"), "{unknown}");
        assert!(unknown.contains("api_key"), "{unknown}");
    }

    #[test]
    fn served_values_are_checked() {
        for (table, key) in [
            ("url = \"127.0.0.1:8080\"\nmodel = \"m\"", "models.j.url"),
            ("url = \"http:///v1\"\nmodel = \"m\"", "models.j.url"),
            ("url = \"http://:80/v1\"\nmodel = \"m\"", "models.j.url"),
            ("url = \"http://h/v1\"", "models.j.model"),
            ("url = \"http://h/v1\"\nmodel = \" \"", "models.j.model"),
            (
                "url = \"http://h/v1\"\nmodel = \"m\"\napi_key_env = \"sk-123\"",
                "models.j.api_key_env",
            ),
            (
                "url = \"http://h/v1\"\nmodel = \"m\"\ntimeout_ms = 0",
                "models.j.timeout_ms",
            ),
            (
                "url = \"http://h/v1\"\nmodel = \"m\"\nconcurrency = 0",
                "models.j.concurrency",
            ),
            (
                "url = \"http://h/v1\"\nmodel = \"m\"\nretries = 1000",
                "models.j.retries",
            ),
        ] {
            let message = error(&format!("[models.j]\n{table}\n"));
            assert!(message.contains(&format!("{key}:")), "{table}: {message}");
        }
    }

    #[test]
    fn other_tables_of_the_file_are_not_read() {
        let models = parse("[whatever]\nx = 1\n[models.j]\npath = \"j.gguf\"\n").expect("valid");
        assert_eq!(models.len(), 1);
    }
}

//! `ponder plugins ...`: check the plugins of a manifest, run one plugin on JSONL input without a
//! model, scaffold a new plugin crate.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ponder_manifest::{Grant, Manifest, PluginSource, PluginSpec, Role};
use ponder_plugin_runtime::capability::ModelAccess;

use crate::commands::model::load_model;
use crate::model_access::ModelRegistry;
use ponder_plugin_runtime::types::{Candidate, JudgeRequest, Message, Parsed};
use ponder_plugin_runtime::{
    CacheOutcome, LogLevel, PluginInfo, PluginRuntime, RuntimeOptions, StderrLog,
};
use serde::Deserialize;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A plugin subcommand.
#[derive(Subcommand, Debug)]
pub enum PluginsCommand {
    /// Load every plugin of a manifest; print role, WIT version, limits and grants. Exits
    /// non-zero if any plugin fails to load or configure.
    Check(CheckArgs),
    /// Run one plugin on JSONL input, without any model (the plugin author's tester). The input
    /// shapes are in sdk/README.md; results are printed as JSONL, one line per input row.
    Run(RunArgs),
    /// Scaffold a new plugin from the SDK's templates: a Rust crate (sdk/templates/ROLE), or
    /// with `--lang python` / `--lang js` a plugin in Python (sdk/python/templates/ROLE) or
    /// JavaScript (sdk/js/templates/ROLE) with its tests and build script.
    New(NewArgs),
}

/// Arguments of `ponder plugins check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The run manifest (TOML).
    pub manifest: PathBuf,
    /// Where compiled components are cached (default: $XDG_CACHE_HOME/ponder/components).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

/// Arguments of `ponder plugins run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The plugin's role: template, judge or selector.
    #[arg(value_parser = parse_role)]
    pub role: Role,
    /// The plugin: a WebAssembly component (`.wasm`), or a native library with --trust-native.
    #[arg(long)]
    pub plugin: PathBuf,
    /// JSONL input, one call argument per line (see sdk/README.md).
    #[arg(long)]
    pub input: PathBuf,
    /// The plugin configuration as a JSON object (what `configure` receives).
    #[arg(long, default_value = "{}")]
    pub config: String,
    /// Allow loading a native library. Native code runs with full process rights: no sandbox,
    /// no limits.
    #[arg(long)]
    pub trust_native: bool,
    /// Linear memory cap in MiB.
    #[arg(long)]
    pub memory_mib: Option<u32>,
    /// Fuel per call.
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Time limit per call in milliseconds (the plugin's own time, model calls excluded).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Wall-clock limit per call in milliseconds, model calls included.
    #[arg(long)]
    pub call_timeout_ms: Option<u64>,
    /// Most tokens the models may generate for one call.
    #[arg(long)]
    pub generated_tokens: Option<u64>,
    /// Where compiled components are cached (default: $XDG_CACHE_HOME/ponder/components).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// A model the plugin may call through the `models` import, as NAME=PATH (a Hugging Face
    /// directory or GGUF file); repeatable. Naming any grants the plugin `models`, as
    /// `grant = ["models"]` does in a manifest.
    #[arg(long = "model", value_name = "NAME=PATH", value_parser = parse_named_model)]
    pub models: Vec<(String, PathBuf)>,
    /// The `[models]` table of this TOML file (a run manifest, or a file of `[models.NAME]`
    /// tables): local models (`path`) and served ones (`url`, `model`: an OpenAI-compatible
    /// endpoint). Grants the plugin `models` like --model, which adds to it.
    #[arg(long, value_name = "FILE")]
    pub models_from: Option<PathBuf>,
    /// Device of the models given with --model: cpu, wgpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Parses a `NAME=PATH` model flag.
pub(crate) fn parse_named_model(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("expected NAME=PATH, got `{text}`")),
    }
}

/// Arguments of `ponder plugins new`.
#[derive(Args, Debug)]
pub struct NewArgs {
    /// The plugin's role: template, judge or selector.
    #[arg(value_parser = parse_role)]
    pub role: Role,
    /// The new crate's name (also its directory).
    pub name: String,
    /// Directory to create the crate in (default: the current directory).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The ponder-sdk directory (default: the one this binary was built from).
    #[arg(long)]
    pub sdk: Option<PathBuf>,
    /// The plugin's language.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
}

/// The language of a scaffolded plugin.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// A Rust crate on `ponder-sdk`, built with cargo for wasm32-wasip2.
    Rust,
    /// A Python module on `sdk/python`, built with componentize-py.
    Python,
    /// A JavaScript module on `sdk/js`, built with componentize-js.
    Js,
}

impl Lang {
    /// The scaffold templates of `role` in this language, under the SDK directory.
    fn template_dir(self, sdk: &Path, role: Role) -> PathBuf {
        match self {
            Lang::Rust => sdk.join("templates").join(role.key()),
            Lang::Python => sdk.join("python/templates").join(role.key()),
            Lang::Js => sdk.join("js/templates").join(role.key()),
        }
    }

    /// What to run after scaffolding, in `dir`.
    fn next_steps(self, dir: &Path, name: &str, sdk: &Path) -> String {
        let dir = dir.display();
        match self {
            Lang::Rust => format!("cd {dir} && cargo build --release --target wasm32-wasip2"),
            Lang::Python => format!(
                "cd {dir} && PYTHONPATH={} python3 -m unittest && ./build.sh   # -> {name}.wasm",
                sdk.join("python").display()
            ),
            Lang::Js => format!("cd {dir} && npm test && ./build.sh   # -> {name}.wasm"),
        }
    }
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::from_key(text)
        .ok_or_else(|| format!("unknown role `{text}`; expected template, judge or selector"))
}

/// Runs one plugin subcommand.
pub fn run(command: PluginsCommand) -> anyhow::Result<()> {
    match command {
        PluginsCommand::Check(args) => check(args),
        PluginsCommand::Run(args) => run_plugin(args),
        PluginsCommand::New(args) => new_plugin(args),
    }
}

/// A runtime that logs plugin output to stderr, with the given cache directory and, for granted
/// plugins, the given models.
pub fn runtime(
    cache_dir: Option<PathBuf>,
    models: Option<Arc<dyn ModelAccess>>,
) -> anyhow::Result<PluginRuntime> {
    let options = RuntimeOptions {
        cache_dir: cache_dir.or_else(ponder_plugin_runtime::cache::default_cache_dir),
        log: Arc::new(StderrLog {
            min_level: LogLevel::Info,
        }),
        models,
        ..RuntimeOptions::default()
    };
    Ok(PluginRuntime::new(options)?)
}

/// Loads the `--model NAME=PATH` models into a registry the runtime serves `models` from.
fn model_registry(args: &RunArgs) -> anyhow::Result<Option<Arc<dyn ModelAccess>>> {
    let Some(file) = &args.models_from else {
        return named_models(&args.models, &args.device);
    };
    let mut registry = ModelRegistry::new();
    for (name, model) in ponder_manifest::load_models(file)? {
        registry
            .add_named(&name, &model)
            .with_context(|| format!("{}: models.{name}", file.display()))?;
    }
    for (name, path) in &args.models {
        let model = load_model(path, &args.device)
            .with_context(|| format!("loading model `{name}` for the plugin"))?;
        registry.insert(name.clone(), model);
    }
    Ok(Some(Arc::new(registry)))
}

/// Loads named models (`NAME=PATH` flags) on `device` into a registry the runtime serves
/// `models` from; `None` without any.
pub(crate) fn named_models(
    models: &[(String, PathBuf)],
    device: &str,
) -> anyhow::Result<Option<Arc<dyn ModelAccess>>> {
    if models.is_empty() {
        return Ok(None);
    }
    let mut registry = ModelRegistry::new();
    for (name, path) in models {
        let model = load_model(path, device)
            .with_context(|| format!("loading model `{name}` for the plugin"))?;
        registry.insert(name.clone(), model);
    }
    Ok(Some(Arc::new(registry)))
}

/// One line describing a loaded plugin, for `check`.
pub fn describe(info: &PluginInfo) -> String {
    let (kind, path) = match &info.source {
        PluginSource::Wasm(path) => ("wasm", path),
        PluginSource::Native(path) => ("native, trusted: full process rights, no sandbox", path),
    };
    let version = match &info.source {
        PluginSource::Wasm(_) => format!(
            "{}@{} (world {})",
            ponder_plugin_runtime::WIT_PACKAGE,
            info.version,
            ponder_plugin_runtime::world_name(info.role)
        ),
        PluginSource::Native(_) => info.version.clone(),
    };
    let limits = match &info.limits {
        Some(limits) if info.grants.contains(&Grant::Models) => format!(
            "memory {} MiB, fuel {}, timeout {} ms; models: {} ms per call, {} tokens, {} \
             requests, batch {}, {} choices, max-new-tokens {}",
            limits.memory_mib,
            limits.fuel,
            limits.timeout_ms,
            limits.call_timeout_ms,
            limits.generated_tokens,
            limits.model_requests,
            limits.model_batch,
            limits.choices,
            limits.max_new_tokens
        ),
        Some(limits) => format!(
            "memory {} MiB, fuel {}, timeout {} ms",
            limits.memory_mib, limits.fuel, limits.timeout_ms
        ),
        None => "none (native)".to_string(),
    };
    let grants = if info.grants.is_empty() {
        "none".to_string()
    } else {
        info.grants
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cache = match info.cache {
        Some(CacheOutcome::Hit) => "; compiled: cache hit",
        Some(CacheOutcome::Compiled) => "; compiled: now (cached)",
        Some(CacheOutcome::Recompiled) => "; compiled: now (stale cache entry replaced)",
        Some(CacheOutcome::Uncached) => "; compiled: now (no cache)",
        None => "",
    };
    format!(
        "{role:<9} {name}: {version}\n          {kind}: {path}\n          limits: {limits}; grants: {grants}{cache}",
        role = info.role.key(),
        name = info.name,
        path = path.display(),
    )
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let manifest = Manifest::load(&args.manifest)?;
    if manifest.plugins.iter().next().is_none() {
        bail!(
            "{}: the manifest names no plugins ([plugins.template], [plugins.judge], [plugins.selector])",
            args.manifest.display()
        );
    }
    let runtime = runtime(args.cache_dir, None)?;
    let mut failures = 0usize;
    for spec in manifest.plugins.iter() {
        match runtime.load(spec) {
            Ok(plugin) => println!("ok   {}", describe(plugin.info())),
            Err(error) => {
                failures += 1;
                println!("FAIL {:<9} {error}", spec.role.to_string());
            }
        }
    }
    if failures > 0 {
        bail!(
            "{failures} plugin(s) of {} failed to load",
            args.manifest.display()
        );
    }
    Ok(())
}

/// Whether a file starts with the WebAssembly magic number.
fn is_wasm(path: &Path) -> anyhow::Result<bool> {
    let mut header = [0u8; 4];
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let read = std::io::Read::read(&mut file, &mut header)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(read == 4 && header == *b"\0asm")
}

fn run_spec(args: &RunArgs) -> anyhow::Result<PluginSpec> {
    let config: serde_json::Value =
        serde_json::from_str(&args.config).context("--config is not valid JSON")?;
    if !config.is_object() {
        bail!("--config must be a JSON object, got {config}");
    }
    let mut spec = PluginSpec::wasm(args.role, &args.plugin);
    spec.config = config;
    if !args.models.is_empty() || args.models_from.is_some() {
        spec.grants.push(Grant::Models);
    }
    if let Some(memory_mib) = args.memory_mib {
        spec.limits.memory_mib = memory_mib;
    }
    if let Some(fuel) = args.fuel {
        spec.limits.fuel = fuel;
    }
    if let Some(timeout_ms) = args.timeout_ms {
        spec.limits.timeout_ms = timeout_ms;
    }
    if let Some(call_timeout_ms) = args.call_timeout_ms {
        spec.limits.call_timeout_ms = call_timeout_ms;
    }
    if let Some(generated_tokens) = args.generated_tokens {
        spec.limits.generated_tokens = generated_tokens;
    }
    if let Err((key, message)) = spec.limits.validate() {
        bail!("--{}: {message}", key.replace('_', "-"));
    }
    if !is_wasm(&args.plugin)? {
        if !args.trust_native {
            bail!(
                "{} is not a WebAssembly component; if it is a native plugin library, pass \
                 --trust-native (native code runs with full process rights: no sandbox, no limits)",
                args.plugin.display()
            );
        }
        spec.source = PluginSource::Native(args.plugin.clone());
    }
    Ok(spec)
}

/// A template row: render an instruction or parse an output.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateRow {
    instruction: Option<Vec<Message>>,
    output: Option<String>,
}

/// A judge row: metadata may be any JSON value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JudgeRow {
    instruction: Vec<Message>,
    responses: Vec<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// A selector row: one group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectorRow {
    candidates: Vec<Candidate>,
}

/// Reads the non-empty lines of a JSONL file as `T`, naming file and line on error.
fn read_rows<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut rows = Vec::new();
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let row = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a valid input row", path.display(), index + 1))?;
        rows.push(row);
    }
    Ok(rows)
}

fn print_line(out: &mut impl Write, value: &serde_json::Value) -> anyhow::Result<()> {
    writeln!(out, "{value}").context("cannot write to stdout")
}

fn run_plugin(args: RunArgs) -> anyhow::Result<()> {
    let spec = run_spec(&args)?;
    let runtime = runtime(args.cache_dir.clone(), model_registry(&args)?)?;
    let mut plugin = runtime.load(&spec)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.role {
        Role::Template => {
            let rows: Vec<TemplateRow> = read_rows(&args.input)?;
            for (index, row) in rows.into_iter().enumerate() {
                let value = match (row.instruction, row.output) {
                    (Some(instruction), None) => match plugin.render(&instruction) {
                        Ok(messages) => serde_json::json!({ "messages": messages }),
                        Err(error) => match &error.cause {
                            ponder_plugin_runtime::Cause::Plugin(failure) => {
                                serde_json::json!({ "error": failure })
                            }
                            _ => return Err(error.into()),
                        },
                    },
                    (None, Some(output)) => match plugin.parse(&output)? {
                        Parsed::Ok(split) => serde_json::json!({
                            "thought": split.thought,
                            "response": split.response,
                        }),
                        Parsed::Failure(why) => serde_json::json!({ "failure": why }),
                    },
                    _ => bail!(
                        "{}: row {}: a template row has exactly one of `instruction` and `output`",
                        args.input.display(),
                        index + 1
                    ),
                };
                print_line(&mut out, &value)?;
            }
        }
        Role::Judge => {
            let rows: Vec<JudgeRow> = read_rows(&args.input)?;
            let requests: Vec<JudgeRequest> = rows
                .into_iter()
                .map(|row| JudgeRequest {
                    instruction: row.instruction,
                    responses: row.responses,
                    reference: row.reference,
                    metadata: row
                        .metadata
                        .map(|value| value.to_string())
                        .unwrap_or_else(|| "{}".to_string()),
                })
                .collect();
            for outcome in plugin.judge(&requests)? {
                let value = match outcome {
                    Ok(scores) => serde_json::json!({ "scores": scores }),
                    Err(failure) => serde_json::json!({ "error": failure }),
                };
                print_line(&mut out, &value)?;
            }
        }
        Role::Selector => {
            let rows: Vec<SelectorRow> = read_rows(&args.input)?;
            let groups: Vec<Vec<Candidate>> = rows.into_iter().map(|row| row.candidates).collect();
            for pairs in plugin.select(&groups)? {
                print_line(&mut out, &serde_json::json!({ "pairs": pairs }))?;
            }
        }
    }
    Ok(())
}

/// The SDK directory this binary was built from.
fn default_sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk")
}

/// Replaces the scaffold placeholders: `{{name}}` / `__NAME__` (the crate name),
/// `{{crate_name}}` / `__CRATE_NAME__` (its Rust identifier), `{{sdk_path}}` / `__SDK_PATH__`
/// (the absolute SDK directory), `{{role}}` / `__ROLE__`.
fn fill_placeholders(text: &str, name: &str, sdk: &Path, role: Role) -> String {
    let crate_name = name.replace('-', "_");
    let sdk = sdk.display().to_string();
    let mut filled = text.to_string();
    for (placeholders, value) in [
        (["{{name}}", "__NAME__"], name),
        (["{{crate_name}}", "__CRATE_NAME__"], crate_name.as_str()),
        (["{{sdk_path}}", "__SDK_PATH__"], sdk.as_str()),
        (["{{role}}", "__ROLE__"], role.key()),
    ] {
        for placeholder in placeholders {
            filled = filled.replace(placeholder, value);
        }
    }
    filled
}

fn copy_template(from: &Path, to: &Path, name: &str, sdk: &Path, role: Role) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let entries =
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        let source = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        // `Cargo.toml.tmpl` keeps the template from being a package inside the SDK; a file
        // name may hold placeholders too (`__CRATE_NAME__.py`).
        let target_name = file_name.strip_suffix(".tmpl").unwrap_or(&file_name);
        let target = to.join(fill_placeholders(target_name, name, sdk, role));
        if source.is_dir() {
            copy_template(&source, &target, name, sdk, role)?;
        } else {
            let text = std::fs::read_to_string(&source)
                .with_context(|| format!("cannot read {}", source.display()))?;
            std::fs::write(&target, fill_placeholders(&text, name, sdk, role))
                .with_context(|| format!("cannot write {}", target.display()))?;
            copy_permissions(&source, &target)?;
        }
    }
    Ok(())
}

/// Gives `to` the permissions of `from` (a template's `build.sh` stays executable).
fn copy_permissions(from: &Path, to: &Path) -> anyhow::Result<()> {
    let permissions = std::fs::metadata(from)
        .with_context(|| format!("cannot read {}", from.display()))?
        .permissions();
    std::fs::set_permissions(to, permissions)
        .with_context(|| format!("cannot set the permissions of {}", to.display()))
}

fn new_plugin(args: NewArgs) -> anyhow::Result<()> {
    let valid_name = !args.name.is_empty()
        && args
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && args.name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid_name {
        bail!(
            "`{}` is not a valid crate name: use lowercase letters, digits, `-` and `_`, starting with a letter",
            args.name
        );
    }
    let sdk = args.sdk.clone().unwrap_or_else(default_sdk_dir);
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("cannot find the SDK at {}", sdk.display()))?;
    let template = args.lang.template_dir(&sdk, args.role);
    if !template.is_dir() {
        bail!(
            "no scaffold template for role {} at {}",
            args.role,
            template.display()
        );
    }
    let target = args.dir.join(&args.name);
    if target.exists() {
        bail!("{} already exists", target.display());
    }
    copy_template(&template, &target, &args.name, &sdk, args.role)?;
    println!(
        "created {} ({} plugin). Test and build it with:\n  {}",
        target.display(),
        args.role,
        args.lang.next_steps(&target, &args.name, &sdk)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled() {
        let text = "name = \"{{name}}\" crate {{crate_name}} sdk = \"__SDK_PATH__\" {{role}}";
        let filled = fill_placeholders(text, "my-judge", Path::new("/sdk"), Role::Judge);
        assert_eq!(
            filled,
            "name = \"my-judge\" crate my_judge sdk = \"/sdk\" judge"
        );
    }

    #[test]
    fn each_language_has_a_template_of_every_role() {
        let sdk = default_sdk_dir();
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for role in Role::ALL {
                let dir = lang.template_dir(&sdk, role);
                assert!(dir.is_dir(), "{lang:?} {role}: {}", dir.display());
            }
        }
    }

    #[test]
    fn role_names_parse() {
        assert_eq!(parse_role("selector"), Ok(Role::Selector));
        assert!(parse_role("judges").is_err());
    }
}

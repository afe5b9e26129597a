//! Hugging Face directory writer: everything goes into a temporary sibling directory first and
//! is renamed into place, so a reader never sees a half-written checkpoint.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::checkpoint::validate_shapes;
use crate::{
    ChatTemplate, CheckpointError, ModelConfig, Tokenizer, Weights, write_safetensors_f32,
};

/// Writes a Hugging Face directory (config.json, model.safetensors in f32, tokenizer.json,
/// tokenizer_config.json with the chat template, generation_config.json) atomically: a
/// temporary directory renamed into place. `transformers.AutoModelForCausalLM.from_pretrained`
/// loads it. An existing directory at `dir` is replaced.
///
/// # Errors
///
/// [`CheckpointError`] when a file cannot be written or the configuration or tokenizer cannot be
/// serialised.
pub fn save_hf_dir(
    dir: &Path,
    config: &ModelConfig,
    weights: &Weights,
    tokenizer: &Tokenizer,
    chat_template: Option<&ChatTemplate>,
) -> Result<(), CheckpointError> {
    save_hf_dir_with(dir, config, weights, tokenizer, chat_template, |_| Ok(()))
}

/// [`save_hf_dir`], with `extra` writing more files into the directory before it is renamed
/// into place (a LoRA adapter beside the merged weights), so that they appear together or not
/// at all.
///
/// # Errors
///
/// As [`save_hf_dir`], and any error of `extra`.
pub fn save_hf_dir_with(
    dir: &Path,
    config: &ModelConfig,
    weights: &Weights,
    tokenizer: &Tokenizer,
    chat_template: Option<&ChatTemplate>,
    extra: impl FnOnce(&Path) -> Result<(), CheckpointError>,
) -> Result<(), CheckpointError> {
    validate_shapes(config, weights).map_err(|e| e.in_file(dir))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dir
        .file_name()
        .ok_or_else(|| CheckpointError::io(dir, std::io::Error::other("not a directory name")))?
        .to_string_lossy()
        .into_owned();
    std::fs::create_dir_all(&parent).map_err(|e| CheckpointError::io(&parent, e))?;
    remove_write_leftovers(&parent, &name).map_err(|e| CheckpointError::io(&parent, e))?;
    let stamp = unique_stamp();
    let tmp = parent.join(format!(".{name}.tmp-{stamp}"));
    std::fs::create_dir(&tmp).map_err(|e| CheckpointError::io(&tmp, e))?;
    let written =
        write_files(&tmp, config, weights, tokenizer, chat_template).and_then(|()| extra(&tmp));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // Renaming onto a non-empty directory fails, so move the old one aside first.
    let old = parent.join(format!(".{name}.old-{stamp}"));
    let had_old = dir.exists();
    if had_old {
        std::fs::rename(dir, &old).map_err(|e| CheckpointError::io(dir, e))?;
    }
    if let Err(e) = std::fs::rename(&tmp, dir) {
        if had_old {
            let _ = std::fs::rename(&old, dir);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(CheckpointError::io(dir, e));
    }
    if had_old {
        std::fs::remove_dir_all(&old).map_err(|e| CheckpointError::io(&old, e))?;
    }
    Ok(())
}

/// Removes what an earlier atomic writer of `name` in `parent`, killed between creating its
/// temporary file or directory and its last rename, left beside it (`.NAME.tmp-*`,
/// `.NAME.old-*`), so that a resumed run's directory holds what an uninterrupted one does. Every
/// atomic writer of ponder names its temporaries this way and calls this first.
///
/// # Errors
/// The directory cannot be read or a leftover cannot be removed.
pub fn remove_write_leftovers(parent: &Path, name: &str) -> std::io::Result<()> {
    let prefixes = [format!(".{name}.tmp-"), format!(".{name}.old-")];
    for entry in std::fs::read_dir(parent)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if prefixes
            .iter()
            .any(|prefix| file_name.starts_with(prefix.as_str()))
        {
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
}

fn unique_stamp() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

fn write_json(path: &Path, value: &Value) -> Result<(), CheckpointError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CheckpointError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text + "\n").map_err(|e| CheckpointError::io(path, e))
}

fn write_files(
    dir: &Path,
    config: &ModelConfig,
    weights: &Weights,
    tokenizer: &Tokenizer,
    chat_template: Option<&ChatTemplate>,
) -> Result<(), CheckpointError> {
    write_json(&dir.join("config.json"), &config.to_hf_json())?;
    let eos = match config.eos_token_ids.as_slice() {
        [] => Value::Null,
        [one] => json!(one),
        many => json!(many),
    };
    write_json(
        &dir.join("generation_config.json"),
        &json!({"bos_token_id": config.bos_token_id, "eos_token_id": eos}),
    )?;
    // A tied head is the embedding matrix; saving it again would be ambiguous.
    let to_save = if config.tie_word_embeddings && weights.contains("lm_head.weight") {
        let mut without_head = weights.clone();
        let _ = without_head.take("lm_head.weight");
        std::borrow::Cow::Owned(without_head)
    } else {
        std::borrow::Cow::Borrowed(weights)
    };
    write_safetensors_f32(&dir.join("model.safetensors"), &to_save)?;
    let tokenizer_path = dir.join("tokenizer.json");
    std::fs::write(&tokenizer_path, tokenizer.to_json()?)
        .map_err(|e| CheckpointError::io(&tokenizer_path, e))?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &tokenizer.tokenizer_config_json(chat_template.map(ChatTemplate::source)),
    )?;
    Ok(())
}

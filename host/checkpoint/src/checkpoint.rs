//! `Checkpoint`: everything a model file provides, loaded from a Hugging Face directory or GGUF.

use std::path::{Path, PathBuf};

use crate::chat::hf_template_source;
use crate::tokenizer::read_tokenizer_config;
use crate::{
    ChatTemplate, CheckpointError, Message, ModelConfig, Tokenizer, Weights, gguf, read_hf_weights,
};

/// A loaded model: configuration, f32 weights under Hugging Face names, tokenizer and chat
/// template.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Architecture hyper-parameters.
    pub config: ModelConfig,
    /// Parameters by Hugging Face name.
    pub weights: Weights,
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// The chat template, when the model has one.
    pub chat_template: Option<ChatTemplate>,
    /// The directory or file this was loaded from.
    pub source: PathBuf,
}

/// Tokens that end an assistant turn, in order of preference.
const END_OF_TURN_TOKENS: [&str; 5] = [
    "<|im_end|>",
    "<|eot_id|>",
    "<end_of_turn>",
    "<|end|>",
    "<|endoftext|>",
];

impl Checkpoint {
    /// Loads a Hugging Face directory or a `.gguf` file.
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] when the path is neither a Hugging Face directory nor a GGUF file, or a
    /// file in it is missing, unreadable or malformed (config, weights, tokenizer, chat template).
    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        if path.is_dir() {
            load_hf_dir(path)
        } else if path.is_file() {
            gguf::load_checkpoint(path)
        } else {
            Err(CheckpointError::MissingFile {
                path: path.to_path_buf(),
                what: "a model (a Hugging Face directory or a .gguf file)".into(),
            })
        }
    }

    /// Prompt ids for a conversation: chat template applied once, BOS added exactly once.
    ///
    /// # Errors
    /// The model has no chat template, or the template or the tokenizer fails on the messages.
    pub fn encode_chat(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, CheckpointError> {
        let text = self.render_chat(messages, add_generation_prompt)?;
        self.encode_prompt_text(&text)
    }

    /// Prompt ids for a conversation whose assistant turn has already begun with
    /// `assistant_prefix`: the chat template with its generation prompt, then the prefix, encoded
    /// as one text (so the prefix tokenises as it would inside the turn).
    ///
    /// # Errors
    /// As [`Checkpoint::encode_chat`].
    pub fn encode_chat_with_prefix(
        &self,
        messages: &[Message],
        assistant_prefix: &str,
    ) -> Result<Vec<u32>, CheckpointError> {
        let mut text = self.render_chat(messages, true)?;
        text.push_str(assistant_prefix);
        self.encode_prompt_text(&text)
    }

    fn render_chat(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, CheckpointError> {
        let template = self
            .chat_template
            .as_ref()
            .ok_or(CheckpointError::NoChatTemplate)?;
        template.render(messages, add_generation_prompt)
    }

    fn encode_prompt_text(&self, text: &str) -> Result<Vec<u32>, CheckpointError> {
        let mut ids = self.tokenizer.encode(text)?;
        if self.tokenizer.special_tokens().add_bos_token
            && let Some(bos) = self.tokenizer.bos_token_id()
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    /// The token that ends an assistant turn (`<|im_end|>` for SmolLM2/Qwen2, `<|eot_id|>` for
    /// Llama 3): what the trainer appends to completions and the sampler stops on.
    pub fn end_of_turn_id(&self) -> Option<u32> {
        let in_template = |token: &str| {
            self.chat_template
                .as_ref()
                .is_none_or(|t| t.source().contains(token))
        };
        END_OF_TURN_TOKENS
            .iter()
            .filter(|token| in_template(token))
            .find_map(|token| self.tokenizer.token_to_id(token))
            .or_else(|| self.tokenizer.eos_token_id())
            .or_else(|| self.config.eos_token_ids.first().copied())
    }

    /// Ids that stop generation: the end-of-turn token and every configured EOS id.
    pub fn stop_token_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.end_of_turn_id().into_iter().collect();
        crate::config::push_unique(&mut ids, self.config.eos_token_ids.iter().copied());
        crate::config::push_unique(&mut ids, self.tokenizer.eos_token_id());
        ids
    }
}

fn read_text(path: &Path) -> Result<String, CheckpointError> {
    std::fs::read_to_string(path).map_err(|e| CheckpointError::io(path, e))
}

fn load_hf_dir(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(CheckpointError::MissingFile {
            path: config_path,
            what: "the model configuration (config.json)".into(),
        });
    }
    let mut config = ModelConfig::from_hf_json(&read_text(&config_path)?)
        .map_err(|e| e.in_file(&config_path))?;
    let generation_path = dir.join("generation_config.json");
    if generation_path.is_file() {
        config
            .merge_generation_config(&read_text(&generation_path)?)
            .map_err(|e| e.in_file(&generation_path))?;
    }
    let weights = read_hf_weights(dir)?;
    let mut tokenizer = Tokenizer::from_hf_dir(dir)?;
    fill_special_tokens_from_config(&mut tokenizer, &config);
    let tokenizer_config = read_tokenizer_config(dir)?;
    let chat_template = match hf_template_source(dir, &tokenizer_config)? {
        Some(source) => Some(chat_template_for(source, &tokenizer).map_err(|e| e.in_file(dir))?),
        None => None,
    };
    let checkpoint = Checkpoint {
        config,
        weights,
        tokenizer,
        chat_template,
        source: dir.to_path_buf(),
    };
    validate_shapes(&checkpoint.config, &checkpoint.weights).map_err(|e| e.in_file(dir))?;
    Ok(checkpoint)
}

/// Uses the config's BOS/EOS ids for the tokenizer's special tokens it does not name itself.
pub(crate) fn fill_special_tokens_from_config(tokenizer: &mut Tokenizer, config: &ModelConfig) {
    let bos = config.bos_token_id.and_then(|id| tokenizer.id_to_token(id));
    let eos = config
        .eos_token_ids
        .first()
        .and_then(|&id| tokenizer.id_to_token(id));
    let special = tokenizer.special_tokens_mut();
    if special.bos.is_none() {
        special.bos = bos;
    }
    if special.eos.is_none() {
        special.eos = eos;
    }
}

/// Compiles a template with the tokenizer's BOS/EOS strings.
pub(crate) fn chat_template_for(
    source: String,
    tokenizer: &Tokenizer,
) -> Result<ChatTemplate, CheckpointError> {
    let special = tokenizer.special_tokens();
    ChatTemplate::new(source, special.bos.as_deref(), special.eos.as_deref())
}

/// Checks that every tensor the architecture needs is present with the shape the config implies.
/// The configuration is validated first and the expected tensors are produced one at a time,
/// so a configuration claiming billions of layers is an error, not a loop that allocates.
pub(crate) fn validate_shapes(
    config: &ModelConfig,
    weights: &Weights,
) -> Result<(), CheckpointError> {
    config.validate()?;
    for (name, shape) in config.expected_tensors() {
        let tensor = weights
            .get(&name)
            .ok_or_else(|| CheckpointError::MissingTensor(name.clone()))?;
        if tensor.shape != shape {
            return Err(CheckpointError::ShapeMismatch {
                name,
                actual: tensor.shape.clone(),
                expected: shape,
            });
        }
    }
    Ok(())
}

/// Fails when a file holding `available` tensors cannot be a checkpoint of `config`: what a GGUF
/// loader checks before dequantising anything sized by the configuration.
pub(crate) fn check_tensor_count(
    config: &ModelConfig,
    available: usize,
) -> Result<(), CheckpointError> {
    let needed = config.expected_tensor_count();
    if available < needed {
        return Err(CheckpointError::InvalidConfig(format!(
            "{} layers need {needed} tensors, but the checkpoint holds only {available}",
            config.num_hidden_layers
        )));
    }
    Ok(())
}

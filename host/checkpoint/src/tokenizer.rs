//! `Tokenizer`: a `tokenizers::Tokenizer` plus the special-token facts the chat template, the
//! BOS rule and the Hugging Face writer need. Built from `tokenizer.json` or from GGUF metadata.

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::CheckpointError;
use crate::gguf::StringArray;

/// Special tokens of a tokenizer, by text, and whether the model expects a BOS token first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpecialTokens {
    /// Beginning-of-sequence token.
    pub bos: Option<String>,
    /// End-of-sequence token.
    pub eos: Option<String>,
    /// Unknown token.
    pub unk: Option<String>,
    /// Padding token.
    pub pad: Option<String>,
    /// Whether a prompt starts with `bos` (added once by `Checkpoint::encode_chat` when the chat
    /// template did not write it).
    pub add_bos_token: bool,
}

/// A text tokenizer with its special tokens.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    special: SpecialTokens,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("special", &self.special)
            .finish()
    }
}

fn tok_err(e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Tokenizer(e.to_string())
}

/// A special token in `tokenizer_config.json`: a string or an object with `content`.
fn special_token_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

impl Tokenizer {
    /// Wraps a built `tokenizers::Tokenizer`.
    pub fn new(inner: tokenizers::Tokenizer, special: SpecialTokens) -> Self {
        Tokenizer { inner, special }
    }

    /// Parses the text of a `tokenizer.json`.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Tokenizer`] when the text is not a tokenizer this library loads.
    pub fn from_json_str(json: &str, special: SpecialTokens) -> Result<Self, CheckpointError> {
        let inner: tokenizers::Tokenizer = json.parse().map_err(tok_err)?;
        Ok(Tokenizer { inner, special })
    }

    /// Loads `tokenizer.json` and, when present, the special tokens of `tokenizer_config.json`
    /// from a Hugging Face directory.
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] when `tokenizer.json` is missing or unreadable, or a config is malformed.
    pub fn from_hf_dir(dir: &Path) -> Result<Self, CheckpointError> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(CheckpointError::MissingFile {
                path,
                what: "the tokenizer (tokenizer.json)".into(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| CheckpointError::io(&path, e))?;
        let mut tokenizer =
            Self::from_json_str(&text, SpecialTokens::default()).map_err(|e| e.in_file(&path))?;
        let config = read_tokenizer_config(dir)?;
        let adds_bos_by_default = |t: &Tokenizer| t.post_processor_adds_bos();
        let special = &mut tokenizer.special;
        special.bos = special_token_text(config.get("bos_token"));
        special.eos = special_token_text(config.get("eos_token"));
        special.unk = special_token_text(config.get("unk_token"));
        special.pad = special_token_text(config.get("pad_token"));
        // Without an explicit add_bos_token the BOS rule lives in tokenizer.json's
        // post-processor.
        let explicit = config.get("add_bos_token").and_then(Value::as_bool);
        if let Some(explicit) = explicit {
            special.add_bos_token = explicit;
        } else {
            tokenizer.special.add_bos_token = adds_bos_by_default(&tokenizer);
        }
        Ok(tokenizer)
    }

    /// Whether encoding with special tokens puts the BOS token first (tokenizer.json's
    /// post-processor, the way Llama 3 tokenizers declare it).
    fn post_processor_adds_bos(&self) -> bool {
        let Some(bos_id) = self.bos_token_id() else {
            return false;
        };
        self.inner
            .encode("", true)
            .map(|enc| enc.get_ids().first() == Some(&bos_id))
            .unwrap_or(false)
    }

    /// Token ids of `text`. Special tokens written in the text become single tokens; BOS and
    /// EOS are never added.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Tokenizer`] when the tokenizer fails on the text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, CheckpointError> {
        let encoding = self.inner.encode(text, false).map_err(tok_err)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Tokenizer`] when the tokenizer fails on the ids.
    pub fn decode(
        &self,
        ids: &[u32],
        skip_special_tokens: bool,
    ) -> Result<String, CheckpointError> {
        self.inner.decode(ids, skip_special_tokens).map_err(tok_err)
    }

    /// The id of a token given by its vocabulary string.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary string of a token id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of tokens, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// A `tokenizer.json` that Hugging Face tokenizers and transformers load.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Tokenizer`] when the tokenizer cannot be serialised.
    pub fn to_json(&self) -> Result<String, CheckpointError> {
        self.inner.to_string(true).map_err(tok_err)
    }

    /// The special tokens.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// Mutable special tokens (e.g. to fill them from a model config).
    pub fn special_tokens_mut(&mut self) -> &mut SpecialTokens {
        &mut self.special
    }

    /// The BOS token's id, when there is a BOS token.
    pub fn bos_token_id(&self) -> Option<u32> {
        self.special
            .bos
            .as_deref()
            .and_then(|t| self.token_to_id(t))
    }

    /// The EOS token's id, when there is an EOS token.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.special
            .eos
            .as_deref()
            .and_then(|t| self.token_to_id(t))
    }

    /// The underlying Hugging Face tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The `tokenizer_config.json` the writer saves next to `tokenizer.json`.
    pub fn tokenizer_config_json(&self, chat_template: Option<&str>) -> Value {
        let mut config = Map::new();
        config.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
        config.insert("clean_up_tokenization_spaces".into(), json!(false));
        config.insert("add_bos_token".into(), json!(self.special.add_bos_token));
        config.insert("add_eos_token".into(), json!(false));
        config.insert(
            "model_max_length".into(),
            json!(1_000_000_000_000_000_000u64),
        );
        for (key, value) in [
            ("bos_token", &self.special.bos),
            ("eos_token", &self.special.eos),
            ("unk_token", &self.special.unk),
            ("pad_token", &self.special.pad),
        ] {
            if let Some(v) = value {
                config.insert(key.into(), json!(v));
            }
        }
        if let Some(template) = chat_template {
            config.insert("chat_template".into(), json!(template));
        }
        Value::Object(config)
    }
}

/// `tokenizer_config.json` of a directory as a JSON object (empty when the file is absent).
pub(crate) fn read_tokenizer_config(dir: &Path) -> Result<Map<String, Value>, CheckpointError> {
    let path = dir.join("tokenizer_config.json");
    if !path.is_file() {
        return Ok(Map::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| CheckpointError::io(&path, e))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(CheckpointError::Json {
            path,
            message: "expected a JSON object".into(),
        }),
        Err(e) => Err(CheckpointError::Json {
            path,
            message: e.to_string(),
        }),
    }
}

/// Token kinds of GGUF's `tokenizer.ggml.token_type`.
pub(crate) mod token_type {
    /// A control token (`<|im_start|>`, `<|endoftext|>`).
    pub const CONTROL: i32 = 3;
    /// A user-defined token, matched literally in text.
    pub const USER_DEFINED: i32 = 4;
}

/// The vocabulary of a byte-level BPE tokenizer as GGUF stores it.
pub(crate) struct ByteLevelBpeVocab<'a> {
    /// Token strings by id (byte-level alphabet).
    pub tokens: &'a StringArray,
    /// Merges as `"left right"`, highest priority first.
    pub merges: &'a StringArray,
    /// Token kinds by id (empty when the file has none).
    pub token_types: &'a [i32],
    /// `tokenizer.ggml.pre`.
    pub pre: &'a str,
}

const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn byte_level(use_regex: bool) -> Value {
    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex})
}

fn regex_split_then_bytes(pattern: &str) -> Value {
    json!({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false},
        byte_level(false),
    ]})
}

/// The pre-tokenizer (as tokenizer.json) named by GGUF's `tokenizer.ggml.pre`, and whether BPE
/// ignores merges for whole-word vocabulary hits (the Llama 3 convention).
fn pre_tokenizer_for(pre: &str) -> Result<(Value, bool), CheckpointError> {
    match pre {
        // SmolLM: every numeric character is its own piece, then GPT-2 byte-level BPE. The
        // `Digits` pre-tokenizer tests `char::is_numeric`, i.e. Unicode \p{N}.
        "smollm" => Ok((
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                byte_level(true),
            ]}),
            false,
        )),
        "gpt2" | "default" | "" => Ok((byte_level(true), false)),
        "llama3" | "llama-bpe" | "llama-v3" | "smaug-bpe" => {
            Ok((regex_split_then_bytes(LLAMA3_PATTERN), true))
        }
        "qwen2" => Ok((regex_split_then_bytes(QWEN2_PATTERN), false)),
        other => Err(CheckpointError::Unsupported(format!(
            "GGUF pre-tokenizer {other:?} (supported: smollm, gpt2, default, llama3, llama-bpe, qwen2)"
        ))),
    }
}

/// Builds a byte-level BPE tokenizer from GGUF vocabulary metadata.
pub(crate) fn byte_level_bpe(
    vocab: &ByteLevelBpeVocab<'_>,
    special: SpecialTokens,
) -> Result<Tokenizer, CheckpointError> {
    let (pre_tokenizer, ignore_merges) = pre_tokenizer_for(vocab.pre)?;
    let mut vocab_map = Map::with_capacity(vocab.tokens.len());
    let mut added_tokens = Vec::new();
    for (id, token) in vocab.tokens.iter().enumerate() {
        // A duplicated string keeps its first id, as a map-based vocabulary must.
        if !vocab_map.contains_key(token) {
            vocab_map.insert(token.to_string(), json!(id));
        }
        let kind = vocab.token_types.get(id).copied().unwrap_or(1);
        if kind == token_type::CONTROL || kind == token_type::USER_DEFINED {
            added_tokens.push(json!({
                "id": id, "content": token, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true,
            }));
        }
    }
    let mut merges = Vec::with_capacity(vocab.merges.len());
    for (i, merge) in vocab.merges.iter().enumerate() {
        let (left, right) = merge.split_once(' ').ok_or_else(|| {
            CheckpointError::Tokenizer(format!("merge {i} ({merge:?}) is not two tokens"))
        })?;
        merges.push(json!([left, right]));
    }
    let post_processor = match special.bos.as_deref() {
        Some(bos) if special.add_bos_token => {
            let bos_id = vocab.tokens.iter().position(|t| t == bos).ok_or_else(|| {
                CheckpointError::Tokenizer(format!("BOS token {bos:?} is not in the vocabulary"))
            })?;
            json!({"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}})
        }
        _ => json!({"type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {}}),
    };
    let tokenizer_json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": ignore_merges, "vocab": vocab_map, "merges": merges,
        },
    });
    let inner: tokenizers::Tokenizer = serde_json::from_value(tokenizer_json).map_err(tok_err)?;
    Ok(Tokenizer { inner, special })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_pre_tokenizer_is_an_error() {
        let mut tokens = StringArray::default();
        tokens.push("a");
        let vocab = ByteLevelBpeVocab {
            tokens: &tokens,
            merges: &StringArray::default(),
            token_types: &[],
            pre: "mystery",
        };
        let err = byte_level_bpe(&vocab, SpecialTokens::default()).unwrap_err();
        assert!(err.to_string().contains("mystery"), "{err}");
    }
}

//! GGUF v3 byte images built in the tests, byte by byte from the format: small enough to
//! mutate, truncate and fuzz.

/// ggml type ids the tests write.
pub const F32: u32 = 0;
/// 8-bit blocks of 32 with a scale.
pub const Q8_0: u32 = 8;

/// Metadata value type ids.
const U8: u32 = 0;
const U32: u32 = 4;
const F32_VALUE: u32 = 6;
const STRING: u32 = 8;
const ARRAY: u32 = 9;
const U64: u32 = 10;

/// Builds a GGUF v3 byte image.
#[derive(Default, Clone)]
pub struct Builder {
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
}

/// Appends a GGUF string: u64 length, then the bytes.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

impl Builder {
    fn key(&mut self, key: &str, type_id: u32) -> &mut Vec<u8> {
        string(&mut self.kv, key);
        self.kv.extend(type_id.to_le_bytes());
        self.n_kv += 1;
        &mut self.kv
    }

    /// A `uint32` value.
    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.key(key, U32).extend(v.to_le_bytes());
        self
    }

    /// A `uint64` value.
    pub fn kv_u64(&mut self, key: &str, v: u64) -> &mut Self {
        self.key(key, U64).extend(v.to_le_bytes());
        self
    }

    /// A `float32` value.
    pub fn kv_f32(&mut self, key: &str, v: f32) -> &mut Self {
        self.key(key, F32_VALUE).extend(v.to_le_bytes());
        self
    }

    /// A `string` value.
    pub fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        string(self.key(key, STRING), v);
        self
    }

    /// An array of strings.
    pub fn kv_str_array(&mut self, key: &str, items: &[&str]) -> &mut Self {
        let out = self.key(key, ARRAY);
        out.extend(STRING.to_le_bytes());
        out.extend((items.len() as u64).to_le_bytes());
        for item in items {
            string(out, item);
        }
        self
    }

    /// An array of `uint8`.
    pub fn kv_u8_array(&mut self, key: &str, items: &[u8]) -> &mut Self {
        let out = self.key(key, ARRAY);
        out.extend(U8.to_le_bytes());
        out.extend((items.len() as u64).to_le_bytes());
        out.extend(items);
        self
    }

    /// Adds a tensor whose data is `bytes`, placed at the next 32-byte boundary. `dims` are in
    /// ggml order (fastest-varying first).
    pub fn tensor(&mut self, name: &str, dims: &[u64], type_id: u32, bytes: &[u8]) -> &mut Self {
        while !self.data.len().is_multiple_of(32) {
            self.data.push(0);
        }
        string(&mut self.infos, name);
        self.infos.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(type_id.to_le_bytes());
        self.infos.extend((self.data.len() as u64).to_le_bytes());
        self.data.extend(bytes);
        self.n_tensors += 1;
        self
    }

    /// An f32 tensor of `dims` (ggml order) filled with a small deterministic pattern.
    pub fn f32_tensor(&mut self, name: &str, dims: &[u64]) -> &mut Self {
        let n: u64 = dims.iter().product();
        let values: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
        self.tensor(name, dims, F32, &f32_bytes(&values))
    }

    /// The file's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.infos);
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        out.extend(&self.data);
        out
    }
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Sizes of [`tiny_model`].
pub const HIDDEN: u64 = 8;
/// MLP width of [`tiny_model`].
pub const FFN: u64 = 16;
/// Query heads of [`tiny_model`] (head dimension 4).
pub const HEADS: u32 = 2;
/// Key/value heads of [`tiny_model`].
pub const KV_HEADS: u32 = 1;

/// The metadata of a complete one-layer llama model with a three-token byte-level BPE
/// vocabulary and a chat template, without tensors: tests add or change keys, then call
/// [`add_tiny_tensors`].
pub fn tiny_model_metadata() -> Builder {
    let mut builder = Builder::default();
    builder
        .kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", 1)
        .kv_u32("llama.context_length", 64)
        .kv_u32("llama.embedding_length", HIDDEN as u32)
        .kv_u32("llama.feed_forward_length", FFN as u32)
        .kv_u32("llama.attention.head_count", HEADS)
        .kv_u32("llama.attention.head_count_kv", KV_HEADS)
        .kv_f32("llama.rope.freq_base", 10000.0)
        .kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .kv_str("tokenizer.ggml.model", "gpt2")
        .kv_str("tokenizer.ggml.pre", "smollm")
        .kv_str_array("tokenizer.ggml.tokens", &["a", "b", "ab"])
        .kv_str_array("tokenizer.ggml.merges", &["a b"])
        .kv_u32("tokenizer.ggml.eos_token_id", 2)
        .kv_str(
            "tokenizer.chat_template",
            "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}",
        );
    builder
}

/// Adds the tensors of the model [`tiny_model_metadata`] describes.
pub fn add_tiny_tensors(builder: &mut Builder) -> &mut Builder {
    let kv_width = HIDDEN / u64::from(HEADS) * u64::from(KV_HEADS);
    builder
        .f32_tensor("token_embd.weight", &[HIDDEN, 3])
        .f32_tensor("output_norm.weight", &[HIDDEN])
        .f32_tensor("blk.0.attn_norm.weight", &[HIDDEN])
        .f32_tensor("blk.0.ffn_norm.weight", &[HIDDEN])
        .f32_tensor("blk.0.attn_q.weight", &[HIDDEN, HIDDEN])
        .f32_tensor("blk.0.attn_k.weight", &[HIDDEN, kv_width])
        .f32_tensor("blk.0.attn_v.weight", &[HIDDEN, kv_width])
        .f32_tensor("blk.0.attn_output.weight", &[HIDDEN, HIDDEN])
        .f32_tensor("blk.0.ffn_gate.weight", &[HIDDEN, FFN])
        .f32_tensor("blk.0.ffn_up.weight", &[HIDDEN, FFN])
        .f32_tensor("blk.0.ffn_down.weight", &[FFN, HIDDEN])
}

/// A complete, loadable one-layer llama model.
pub fn tiny_model() -> Vec<u8> {
    let mut builder = tiny_model_metadata();
    add_tiny_tensors(&mut builder).build()
}

/// [`tiny_model`] with an explicit `attention.key_length` and a `rope_freqs.weight` tensor of
/// llama3 factors (all 1 at this head dimension): the paths a llama 3.1 file takes.
pub fn tiny_llama3_model() -> Vec<u8> {
    let mut builder = tiny_model_metadata();
    builder
        .kv_u32(
            "llama.attention.key_length",
            (HIDDEN / u64::from(HEADS)) as u32,
        )
        .tensor("rope_freqs.weight", &[2], F32, &f32_bytes(&[1.0, 1.0]));
    add_tiny_tensors(&mut builder).build()
}

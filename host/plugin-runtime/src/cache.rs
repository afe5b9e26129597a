//! On-disk cache of compiled components. A component is compiled once per content and engine:
//! the key hashes the `.wasm` bytes together with `Engine::precompile_compatibility_hash`, so a
//! different wasmtime version or engine configuration never reads a stale artifact. Writes are
//! atomic (temporary file + rename); an entry that fails to deserialize is recompiled and
//! replaced, never fatal.
//!
//! An entry is [`ENTRY_MAGIC`], the SHA-256 of the artifact, then the artifact
//! (`Engine::precompile_component`'s output). `Component::deserialize` trusts the machine code
//! it is given: wasmtime checks the header and the engine, not the code, so an entry damaged on
//! disk (a zeroed range, a bit flip) would run as damaged code and crash the process. The hash
//! is checked before the bytes reach wasmtime; an entry that fails it is recompiled and
//! replaced like any other unusable entry. (The hash guards against damage, not against
//! someone who can write the cache directory: they could store a matching hash with any code.)

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialized from the cache.
    Hit,
    /// Compiled and stored (first use).
    Compiled,
    /// The cached entry was unusable; compiled again and replaced.
    Recompiled,
    /// No cache directory: compiled in memory only.
    Uncached,
}

/// Feeds `Hash` output into SHA-256 so that the key is stable across processes (std's
/// `DefaultHasher` is randomly keyed).
struct ShaHasher<'a>(&'a mut Sha256);

impl Hasher for ShaHasher<'_> {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The cache key of a component for an engine, as lowercase hex.
pub fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut sha = Sha256::new();
    sha.update(b"ponder-component-v1\0");
    sha.update((wasm.len() as u64).to_le_bytes());
    sha.update(wasm);
    engine
        .precompile_compatibility_hash()
        .hash(&mut ShaHasher(&mut sha));
    sha.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The default cache directory: `$XDG_CACHE_HOME/ponder/components`, else
/// `$HOME/.cache/ponder/components`, else none.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|value| !value.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        })?;
    Some(base.join("ponder").join("components"))
}

/// The cache file of a key.
pub fn entry_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.cwasm"))
}

/// The first four bytes of every WebAssembly binary (module or component).
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Compiles `wasm`, or deserializes it from `dir` when cached. Errors are compile errors (the
/// bytes are not a valid component); cache I/O problems only cost a recompile.
///
/// Only the binary format is accepted. wasmtime would also assemble WebAssembly text, and its
/// syntax error quotes the offending line, so a manifest naming some text file by mistake would
/// print that file's content in the error.
pub fn load_component(
    engine: &Engine,
    dir: Option<&Path>,
    wasm: &[u8],
) -> wasmtime::Result<(Component, CacheOutcome)> {
    if !wasm.starts_with(WASM_MAGIC) {
        return Err(wasmtime::Error::msg(
            "not a WebAssembly component: the file does not start with the WebAssembly magic \
             bytes `\\0asm` (is it a text file, or the wrong file?)",
        ));
    }
    let Some(dir) = dir else {
        return Ok((Component::new(engine, wasm)?, CacheOutcome::Uncached));
    };
    let path = entry_path(dir, &cache_key(engine, wasm));
    let mut outcome = CacheOutcome::Compiled;
    // Read into memory rather than `Component::deserialize_file`: that one maps the file, and a
    // cache file truncated or rewritten in place by someone else while mapped would fault the
    // process (SIGBUS) instead of giving an error.
    if let Ok(entry) = std::fs::read(&path) {
        outcome = CacheOutcome::Recompiled;
        if let Some(artifact) = verified_artifact(&entry) {
            // SAFETY: the bytes come from ponder's own cache directory, written by
            // `precompile_component` below, and are exactly what was written (their SHA-256
            // matches the one stored with them); wasmtime checks their header and engine
            // compatibility, and bytes that fail those checks are recompiled.
            if let Ok(component) = unsafe { Component::deserialize(engine, artifact) } {
                return Ok((component, CacheOutcome::Hit));
            }
        }
    }
    let artifact = engine.precompile_component(wasm)?;
    // A failed write only means the next load compiles again.
    let _ = write_atomically(dir, &path, &entry_bytes(&artifact));
    // Deserialize what was just compiled instead of compiling twice.
    // SAFETY: `artifact` was produced by this engine's `precompile_component` a moment ago.
    let component = unsafe { Component::deserialize(engine, &artifact)? };
    Ok((component, outcome))
}

/// The first bytes of a cache entry: format version 2 (version 1 entries held the bare artifact
/// and are recompiled).
pub const ENTRY_MAGIC: &[u8; 16] = b"ponder-cwasm-v2\0";

/// Bytes of the SHA-256 stored after [`ENTRY_MAGIC`].
const DIGEST_LEN: usize = 32;

/// The cache entry of `artifact`: [`ENTRY_MAGIC`], its SHA-256, the artifact.
fn entry_bytes(artifact: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(ENTRY_MAGIC.len() + DIGEST_LEN + artifact.len());
    entry.extend_from_slice(ENTRY_MAGIC);
    entry.extend_from_slice(&Sha256::digest(artifact));
    entry.extend_from_slice(artifact);
    entry
}

/// The artifact of a cache entry when the entry is whole: the right magic, and an artifact
/// whose SHA-256 is the stored one. `None` for anything else (an older format, a truncated,
/// zeroed or otherwise damaged file).
fn verified_artifact(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(ENTRY_MAGIC.as_slice())?;
    if rest.len() < DIGEST_LEN {
        return None;
    }
    let (digest, artifact) = rest.split_at(DIGEST_LEN);
    (Sha256::digest(artifact).as_slice() == digest).then_some(artifact)
}

/// Distinguishes temporary files of concurrent writers in one process.
static TEMPORARY_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        TEMPORARY_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&temporary, bytes)?;
    if let Err(error) = std::fs::rename(&temporary, path) {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::Store;
    use wasmtime::component::Linker;

    /// A real component, in the binary format the cache accepts (assembled from this text with
    /// `wat::parse_str`; the runtime has no text assembler of its own):
    ///
    /// ```wat
    /// (component
    ///   (core module $m
    ///     (func (export "answer") (result i32)
    ///       (i32.mul (i32.const 6) (i32.const 7))))
    ///   (core instance $i (instantiate $m))
    ///   (func (export "answer") (result s32) (canon lift (core func $i "answer"))))
    /// ```
    const COMPONENT: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0x01, 0x35, 0x00, 0x61, 0x73, 0x6d, 0x01,
        0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, 0x03, 0x02, 0x01, 0x00, 0x07,
        0x0a, 0x01, 0x06, 0x61, 0x6e, 0x73, 0x77, 0x65, 0x72, 0x00, 0x00, 0x0a, 0x09, 0x01, 0x07,
        0x00, 0x41, 0x06, 0x41, 0x07, 0x6c, 0x0b, 0x00, 0x09, 0x04, 0x6e, 0x61, 0x6d, 0x65, 0x00,
        0x02, 0x01, 0x6d, 0x02, 0x04, 0x01, 0x00, 0x00, 0x00, 0x07, 0x05, 0x01, 0x40, 0x00, 0x00,
        0x7a, 0x06, 0x0c, 0x01, 0x00, 0x00, 0x01, 0x00, 0x06, 0x61, 0x6e, 0x73, 0x77, 0x65, 0x72,
        0x08, 0x06, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x0c, 0x01, 0x00, 0x06, 0x61, 0x6e,
        0x73, 0x77, 0x65, 0x72, 0x01, 0x00, 0x00, 0x00, 0x1f, 0x0e, 0x63, 0x6f, 0x6d, 0x70, 0x6f,
        0x6e, 0x65, 0x6e, 0x74, 0x2d, 0x6e, 0x61, 0x6d, 0x65, 0x01, 0x06, 0x00, 0x11, 0x01, 0x00,
        0x01, 0x6d, 0x01, 0x06, 0x00, 0x12, 0x01, 0x00, 0x01, 0x69,
    ];

    fn engine() -> Engine {
        Engine::default()
    }

    fn wasm() -> Vec<u8> {
        COMPONENT.to_vec()
    }

    /// Instantiates `component` and calls `answer`.
    fn answer(engine: &Engine, component: &Component) -> i32 {
        let mut store = Store::new(engine, ());
        let instance = Linker::new(engine)
            .instantiate(&mut store, component)
            .expect("instantiates");
        let answer = instance
            .get_typed_func::<(), (i32,)>(&mut store, "answer")
            .expect("exports answer");
        answer.call(&mut store, ()).expect("runs").0
    }

    fn only_entry(dir: &Path) -> PathBuf {
        let entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("cache dir")
            .map(|entry| entry.expect("entry").path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries[0].clone()
    }

    #[test]
    fn an_entry_with_a_zeroed_range_is_recompiled_and_replaced() {
        let cache = tempfile::tempdir().expect("cache dir");
        let (engine, wasm) = (engine(), wasm());
        let (component, outcome) = load_component(&engine, Some(cache.path()), &wasm).unwrap();
        assert_eq!(outcome, CacheOutcome::Compiled);
        assert_eq!(answer(&engine, &component), 42);
        let (_, outcome) = load_component(&engine, Some(cache.path()), &wasm).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);

        // Zero a range in the middle of the entry (where the compiled code is), as a damaged
        // disk would: header and engine checks still pass, only the hash can tell.
        let path = only_entry(cache.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        let range = middle - bytes.len() / 8..middle + bytes.len() / 8;
        assert!(bytes[range.clone()].iter().any(|&b| b != 0));
        bytes[range].fill(0);
        std::fs::write(&path, &bytes).unwrap();

        let (component, outcome) = load_component(&engine, Some(cache.path()), &wasm).unwrap();
        assert_eq!(outcome, CacheOutcome::Recompiled);
        assert_eq!(answer(&engine, &component), 42);
        // replaced: the next load is a hit again
        let (component, outcome) = load_component(&engine, Some(cache.path()), &wasm).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
        assert_eq!(answer(&engine, &component), 42);
        assert_eq!(only_entry(cache.path()), path);
    }

    #[test]
    fn text_is_refused_without_echoing_it() {
        let text = "(component) ;; private first line\n";
        let error =
            load_component(&engine(), None, text.as_bytes()).expect_err("text is not a component");
        let message = format!("{error:#}");
        assert!(
            message.starts_with("not a WebAssembly component"),
            "{message}"
        );
        assert!(!message.contains("private"), "{message}");
    }

    #[test]
    fn truncated_old_format_and_foreign_entries_are_recompiled() {
        let (engine, wasm) = (engine(), wasm());
        let artifact = engine.precompile_component(&wasm).unwrap();
        let whole = entry_bytes(&artifact);
        assert_eq!(verified_artifact(&whole), Some(artifact.as_slice()));
        let damaged: Vec<Vec<u8>> = vec![
            // version 1: the bare artifact
            artifact.to_vec(),
            whole[..whole.len() - 1].to_vec(),
            whole[..ENTRY_MAGIC.len() + 3].to_vec(),
            Vec::new(),
            b"corrupt cache entry".to_vec(),
        ];
        for bytes in damaged {
            assert_eq!(verified_artifact(&bytes), None);
            let cache = tempfile::tempdir().expect("cache dir");
            let path = entry_path(cache.path(), &cache_key(&engine, &wasm));
            std::fs::write(&path, &bytes).unwrap();
            let (component, outcome) = load_component(&engine, Some(cache.path()), &wasm).unwrap();
            assert_eq!(outcome, CacheOutcome::Recompiled);
            assert_eq!(answer(&engine, &component), 42);
            assert_eq!(std::fs::read(&path).unwrap(), whole);
        }
    }
}

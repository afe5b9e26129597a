//! On-disk cache of compiled components. A component is compiled once per content and engine:
//! the key hashes the `.wasm` bytes together with `Engine::precompile_compatibility_hash`, so a
//! different wasmtime version or engine configuration never reads a stale artifact. Writes are
//! atomic (temporary file + rename); an entry that fails to deserialize is recompiled and
//! replaced, never fatal.

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

/// Compiles `wasm`, or deserializes it from `dir` when cached. Errors are compile errors (the
/// bytes are not a valid component); cache I/O problems only cost a recompile.
pub fn load_component(
    engine: &Engine,
    dir: Option<&Path>,
    wasm: &[u8],
) -> wasmtime::Result<(Component, CacheOutcome)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, wasm)?, CacheOutcome::Uncached));
    };
    let path = entry_path(dir, &cache_key(engine, wasm));
    let mut outcome = CacheOutcome::Compiled;
    // Read into memory rather than `Component::deserialize_file`: that one maps the file, and a
    // cache file truncated or rewritten in place by someone else while mapped would fault the
    // process (SIGBUS) instead of giving an error.
    if let Ok(bytes) = std::fs::read(&path) {
        // SAFETY: the bytes come from ponder's own cache directory, written by
        // `precompile_component` below; wasmtime checks their header and engine compatibility,
        // and bytes that fail those checks are recompiled.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => return Ok((component, CacheOutcome::Hit)),
            Err(_) => outcome = CacheOutcome::Recompiled,
        }
    }
    let artifact = engine.precompile_component(wasm)?;
    // A failed write only means the next load compiles again.
    let _ = write_atomically(dir, &path, &artifact);
    // Deserialize what was just compiled instead of compiling twice.
    // SAFETY: `artifact` was produced by this engine's `precompile_component` a moment ago.
    let component = unsafe { Component::deserialize(engine, &artifact)? };
    Ok((component, outcome))
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

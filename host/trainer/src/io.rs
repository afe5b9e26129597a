//! Atomic file writes (temp file in the same directory + rename).

use std::io::Write;
use std::path::Path;

use crate::error::TrainError;

/// Writes `bytes` to `path` so that readers see either the old file or the complete new one.
///
/// # Errors
///
/// [`TrainError::Io`] when the directory, the temporary file or the rename fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_string());
    ponder_checkpoint::remove_write_leftovers(dir, &file_name)
        .map_err(|e| TrainError::io(dir, e))?;
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(TrainError::io(path, e));
    }
    Ok(())
}

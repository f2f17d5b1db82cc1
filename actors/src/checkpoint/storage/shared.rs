//! Files shared by several checkpoints (incremental snapshots): their
//! reference count. Each subtask lists the shared files its state refers to
//! in `chk-<n>/<state>.refs`; when a completed checkpoint is discarded, the
//! shared files no remaining checkpoint directory lists are deleted.
//! Discarding a checkpoint that never completed releases none (a later
//! checkpoint may already refer to one), so an aborted checkpoint may leave an
//! unreferenced file.

use super::{io, StorageError};
use crate::checkpoint::layout::CheckpointPaths;
use crate::location;

const REFS_SUFFIX: &str = ".refs";

/// The name of the file listing the shared files of state file `name`.
pub(super) fn refs_file_name(name: &str) -> String {
    format!("{name}{REFS_SUFFIX}")
}

/// The shared files the subtask states of checkpoint `checkpoint` refer to.
pub(super) fn refs_of(
    paths: &CheckpointPaths,
    checkpoint: u64,
) -> Result<Vec<String>, StorageError> {
    let dir = paths.checkpoint_dir(checkpoint);
    let entries = match location::list(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(StorageError::Io {
                action: "cannot list",
                path: dir,
                source: e,
            })
        }
    };
    let mut refs = Vec::new();
    for entry in entries {
        if !entry.is_dir && entry.name.ends_with(REFS_SUFFIX) {
            let path = dir.join(&entry.name);
            let text = location::read_to_string(&path).map_err(io("cannot read", &path))?;
            refs.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
        }
    }
    Ok(refs)
}

/// Deletes the shared files of `released` that no checkpoint directory
/// (complete or still being written) refers to any more.
pub(super) fn delete_unreferenced(
    paths: &CheckpointPaths,
    released: Vec<String>,
) -> Result<(), StorageError> {
    let job_dir = paths.job_dir();
    let mut referenced = std::collections::HashSet::new();
    let ids = paths.checkpoint_ids().map_err(io("cannot list", job_dir))?;
    for (id, _) in ids {
        referenced.extend(refs_of(paths, id)?);
    }
    let shared = paths.shared_dir();
    for name in released {
        if referenced.contains(&name) || name.contains('/') || name.contains("..") {
            continue;
        }
        let path = shared.join(&name);
        match location::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StorageError::Io {
                    action: "cannot delete",
                    path,
                    source: e,
                })
            }
        }
    }
    Ok(())
}

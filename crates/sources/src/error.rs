//! The error type of the sources crate.

use std::path::PathBuf;

/// What went wrong in a source, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Listing the manifest directory failed.
    #[error("reading manifest directory {path}: {source}")]
    ReadManifestDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Setting up the file watcher on the manifest directory failed (the source falls back to polling).
    #[error("watching manifest directory {path}: {source}")]
    WatchManifestDir {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

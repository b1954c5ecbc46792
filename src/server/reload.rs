//! Configuration reload: on SIGHUP, and when the configuration file's
//! contents change (Kubernetes updates a mounted ConfigMap by swapping a
//! symlink, so the file is polled by content rather than watched by inode).
//!
//! A reload validates the new file completely and builds the new state
//! (keys read, provider discovered) before swapping it in atomically. If
//! anything fails, the running configuration keeps serving and the failure
//! is logged and counted (`cimd_proxy_config_reloads_total{result="failure"}`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{ServeError, Shared};
use crate::config::ConfigError;
use crate::metrics::METRICS;

/// How often the configuration file is checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The new state could not be built (keys, provider).
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Loads `path` and, if everything in it is good, puts it in force.
pub async fn reload(shared: &Shared, path: &Path) -> Result<(), ReloadError> {
    let outcome = async {
        let config = crate::preflight::load_config(path)?;
        let next = shared.current().reloaded(config).await?;
        shared.replace(next);
        Ok(())
    }
    .await;
    let result = if outcome.is_ok() {
        "success"
    } else {
        "failure"
    };
    METRICS.config_reloads.with_label_values(&[result]).inc();
    match &outcome {
        Ok(()) => tracing::info!(path = %path.display(), "configuration reloaded"),
        Err(error) => tracing::error!(
            path = %path.display(),
            %error,
            "configuration reload refused; the running configuration stays in force"
        ),
    }
    outcome
}

/// Reloads on SIGHUP and on every change of the file's contents, forever.
pub async fn watch(shared: Arc<Shared>, path: PathBuf) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reloading on file changes only");
            None
        }
    };
    let mut seen = tokio::fs::read(&path).await.ok();
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let signalled = tokio::select! {
            Some(()) = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
            _ = ticks.tick() => false,
        };
        let contents = tokio::fs::read(&path).await.ok();
        if signalled || (contents.is_some() && contents != seen) {
            // Remember the attempt either way: a bad file is reported once,
            // not every two seconds, and a fixed one is picked up.
            seen = contents;
            let _ = reload(&shared, &path).await;
        }
    }
}

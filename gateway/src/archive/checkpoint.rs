//! Signed checkpoints: a statement of every source's chain head, signed with the configured SM2
//! (or Ed25519) key and stored; then sent to each witness (`[[archive.witnesses]]`), oldest
//! first, each witness's progress kept in the store so that a witness that was down gets what
//! it missed. `gateway run` signs every `every_minutes` as the cluster job `archive:checkpoint`
//! (one instance at a time); `gateway archive checkpoint` signs on demand.

use super::Statement;
use crate::config::archive::{ArchiveConfig, WitnessConfig};
use crate::crypto::keys::SigningKey;
use crate::runtime::cluster::{run_under_lease, LeaseTimings};
use crate::runtime::state::Runtime;
use crate::shutdown::Shutdown;
use crate::store::archive::{ArchiveStore, NewCheckpoint, StoredCheckpoint};
use crate::store::StoreError;
use chrono::Utc;
use serde::Serialize;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What went wrong making a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key.
    #[error(transparent)]
    Key(#[from] crate::crypto::keys::KeyError),
}

/// The JSON form of a checkpoint, as witnesses receive it and receipts carry it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointJson<'a> {
    /// Always `ganzhi-archive-checkpoint/1`.
    pub format: &'static str,
    /// The stored checkpoint.
    #[serde(flatten)]
    pub checkpoint: &'a StoredCheckpoint,
}

impl<'a> CheckpointJson<'a> {
    /// The JSON form of `checkpoint`.
    pub fn of(checkpoint: &'a StoredCheckpoint) -> CheckpointJson<'a> {
        CheckpointJson {
            format: super::CHECKPOINT_TAG,
            checkpoint,
        }
    }
}

/// Sign the current chain heads now and store the checkpoint. With `only_if_changed`, nothing
/// is signed when the heads are those of the latest checkpoint (answers `None`).
pub async fn sign_now(
    store: &dyn ArchiveStore,
    key: &SigningKey,
    instance: &str,
    only_if_changed: bool,
) -> Result<Option<StoredCheckpoint>, CheckpointError> {
    let heads: Vec<_> = store.chain_heads().await?.into_iter().filter(|h| h.seq > 0).collect();
    if only_if_changed {
        if let Some(latest) = store.checkpoint_latest().await? {
            if Statement::parse(&latest.statement).is_some_and(|s| s.heads == heads) {
                return Ok(None);
            }
        }
    }
    let public = key.public_key();
    let statement = Statement {
        signed_at: Utc::now(),
        instance: instance.to_string(),
        algorithm: key.algorithm().name().to_string(),
        key_id: public.key_id(),
        heads: heads.clone(),
    };
    let text = statement.text();
    let signature = key.sign(text.as_bytes())?;
    let new = NewCheckpoint {
        signed_at: statement.signed_at,
        instance: statement.instance.clone(),
        algorithm: statement.algorithm.clone(),
        public_key: public.to_pem(),
        statement: text,
        signature,
        heads,
    };
    let id = store.checkpoint_insert(&new).await?;
    tracing::info!(
        checkpoint = id,
        sources = new.heads.len(),
        algorithm = %new.algorithm,
        "archive checkpoint signed"
    );
    Ok(Some(StoredCheckpoint {
        id,
        signed_at: new.signed_at,
        instance: new.instance,
        algorithm: new.algorithm,
        public_key: new.public_key,
        statement: new.statement,
        signature: hex::encode(&new.signature),
    }))
}

/// How one witness fared in a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WitnessOutcome {
    /// The witness.
    pub name: String,
    /// Checkpoints it acknowledged in this round.
    pub sent: usize,
    /// Its error, when it failed (what it did not get is sent again next round).
    pub error: Option<String>,
}

/// Attempts per checkpoint within one round, with a pause of 1 s, then 2 s between them.
const ATTEMPTS: u32 = 3;

/// Send every checkpoint each witness has not acknowledged yet, oldest first.
pub async fn send_to_witnesses(
    store: &dyn ArchiveStore,
    config: &ArchiveConfig,
    base: &Path,
    metrics: Option<&crate::telemetry::metrics::Metrics>,
) -> Vec<WitnessOutcome> {
    let mut outcomes = Vec::new();
    for witness in &config.witnesses {
        let outcome = send_to(store, witness, base).await;
        if let Some(error) = &outcome.error {
            tracing::error!(witness = %witness.name, error = %error, "archive checkpoints could not be sent to a witness; retried next round");
            if let Some(m) = metrics {
                m.witness_failed(&witness.name);
            }
        }
        outcomes.push(outcome);
    }
    outcomes
}

async fn send_to(store: &dyn ArchiveStore, witness: &WitnessConfig, base: &Path) -> WitnessOutcome {
    let mut outcome = WitnessOutcome {
        name: witness.name.clone(),
        sent: 0,
        error: None,
    };
    let mut through = match store.witness_state(&witness.name).await {
        Ok(state) => state.delivered_through,
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    loop {
        let pending = match store.checkpoints(through, 100).await {
            Ok(p) => p,
            Err(e) => {
                outcome.error = Some(e.to_string());
                return outcome;
            }
        };
        if pending.is_empty() {
            return outcome;
        }
        for checkpoint in &pending {
            let mut last_error = None;
            for attempt in 0..ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
                }
                match deliver(witness, checkpoint, base).await {
                    Ok(()) => {
                        last_error = None;
                        break;
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            if let Some(error) = last_error {
                let message = format!("checkpoint {}: {error}", checkpoint.id);
                if let Err(e) = store.witness_record(&witness.name, through, Some(&message)).await {
                    tracing::warn!(witness = %witness.name, error = %e, "cannot record the witness's failure");
                }
                outcome.error = Some(message);
                return outcome;
            }
            through = checkpoint.id;
            outcome.sent += 1;
            if let Err(e) = store.witness_record(&witness.name, through, None).await {
                outcome.error = Some(e.to_string());
                return outcome;
            }
        }
    }
}

/// Send one checkpoint to one witness.
async fn deliver(witness: &WitnessConfig, checkpoint: &StoredCheckpoint, base: &Path) -> Result<(), String> {
    let json = serde_json::to_string(&CheckpointJson::of(checkpoint)).map_err(|e| e.to_string())?;
    match witness.kind.as_str() {
        "file" => {
            let path = witness.path.as_deref().ok_or("no path")?;
            let full = if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            };
            let line = format!("{json}\n");
            tokio::task::spawn_blocking(move || -> Result<(), String> {
                if let Some(dir) = full.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&full)
                    .map_err(|e| format!("{}: {e}", full.display()))?;
                file.write_all(line.as_bytes())
                    .and_then(|_| file.sync_data())
                    .map_err(|e| format!("{}: {e}", full.display()))
            })
            .await
            .map_err(|e| e.to_string())?
        }
        "rest" => {
            let url = witness.url.as_deref().ok_or("no url")?;
            let token = adapters::common::secret::SecretSource {
                name: "token",
                inline: None,
                env: witness.token_env.as_deref(),
                file: witness.token_file.as_deref(),
            }
            .resolve(base)?;
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(witness.timeout_seconds.max(1)))
                .build()
                .map_err(|e| e.to_string())?;
            let mut request = client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json);
            if let Some(token) = token {
                request = request.bearer_auth(token.expose());
            }
            let response = request.send().await.map_err(|e| format!("POST {url}: {e}"))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("POST {url}: HTTP {}", response.status()))
            }
        }
        other => Err(format!("unknown witness kind {other:?}")),
    }
}

/// `gateway run`: sign every `every_minutes` (when the heads moved) and send to the witnesses,
/// on the one instance holding the lease `archive:checkpoint`. Nothing runs when no signing key
/// is configured or `every_minutes` is 0.
pub async fn keep_signing(runtime: Runtime, shutdown: Shutdown) {
    let config = &runtime.resolved.config;
    let every = config.archive.checkpoints.every_minutes;
    if every == 0 || !config.archive.checkpoints.enabled() {
        return;
    }
    let key = match config.archive.checkpoints.signing_key(&config.base_dir) {
        Ok(Some(key)) => Arc::new(key),
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "archive checkpoints not signed: the signing key cannot be read");
            return;
        }
    };
    let every = Duration::from_secs(every * 60);
    let timings = LeaseTimings::from_config(&config.cluster);
    let job_runtime = runtime.clone();
    run_under_lease(
        runtime.clone(),
        Arc::clone(&runtime.instance),
        "archive:checkpoint".to_string(),
        timings,
        shutdown,
        move |lease, stop| {
            let runtime = job_runtime.clone();
            let key = Arc::clone(&key);
            async move {
                let config = &runtime.resolved.config;
                while lease.valid() && !stop.is_triggered() {
                    // Due when the latest checkpoint (by any instance) is older than the period.
                    let due = match runtime.store.archive().checkpoint_latest().await {
                        Ok(Some(latest)) => (Utc::now() - latest.signed_at).to_std().unwrap_or_default() >= every,
                        Ok(None) => true,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the latest archive checkpoint");
                            false
                        }
                    };
                    if due {
                        match sign_now(runtime.store.archive(), &key, &runtime.instance.id, true).await {
                            Ok(Some(_)) => runtime.metrics.checkpoint_signed(),
                            Ok(None) => {}
                            Err(e) => tracing::error!(error = %e, "archive checkpoint could not be signed"),
                        }
                    }
                    send_to_witnesses(
                        runtime.store.archive(),
                        &config.archive,
                        &config.base_dir,
                        Some(&runtime.metrics),
                    )
                    .await;
                    tokio::select! {
                        _ = stop.wait() => return,
                        _ = tokio::time::sleep(Duration::from_secs(60).min(every)) => {}
                    }
                }
            }
        },
    )
    .await;
}

//! The fetcher: claims due attachments from the store (several instances share the work
//! without taking the same row), streams each into the object store and records the outcome.
//! A failed fetch is retried with a growing wait (and shown with its error) until
//! `fetch_max_attempts`, then `failed` (an operator can retry it); an attachment over
//! `max_bytes` or of a media type not allowed is `refused` at once.

use super::objects::{key_of, Objects, ObjectsError, Stored};
use super::spec::{decode_base64, plain_file_name};
use crate::config::attachments::AttachmentsConfig;
use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::store::attachments::{AttachmentRow, FetchFailure, ObjectRow};
use crate::store::{Store, StoreError};
use crate::telemetry::AttachmentMetrics;
use adapters::sources::PullSource;
use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};
use futures_util::stream::{self, BoxStream, StreamExt};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why one fetch did not store its attachment.
#[derive(Debug, Clone, PartialEq)]
pub struct NotStored {
    /// What went wrong, in Chinese and English.
    pub message: String,
    /// Never retried (over a limit, media type not allowed, nowhere to fetch from).
    pub refused: bool,
}

impl NotStored {
    fn retry(message: impl Into<String>) -> NotStored {
        NotStored {
            message: message.into(),
            refused: false,
        }
    }

    fn refuse(message: impl Into<String>) -> NotStored {
        NotStored {
            message: message.into(),
            refused: true,
        }
    }
}

impl From<ObjectsError> for NotStored {
    fn from(e: ObjectsError) -> Self {
        match e {
            ObjectsError::TooLarge { .. } => NotStored::refuse(e.to_string()),
            other => NotStored::retry(other.to_string()),
        }
    }
}

/// What one round of the fetcher did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Stored.
    pub stored: usize,
    /// Failed, to be retried.
    pub retried: usize,
    /// Out of attempts or refused.
    pub given_up: usize,
}

/// Fetches attachments into the object store.
pub struct Fetcher {
    store: Arc<dyn Store>,
    objects: Objects,
    config: AttachmentsConfig,
    pulls: HashMap<String, Arc<dyn PullSource>>,
    drop_dirs: HashMap<String, PathBuf>,
    metrics: Option<AttachmentMetrics>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("objects", &self.objects)
            .finish_non_exhaustive()
    }
}

fn media_type_of_name(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "pdf" => "application/pdf",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "ofd" => "application/ofd",
        "txt" => "text/plain",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "avi" => "video/x-msvideo",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "amr" => "audio/amr",
        "m4a" => "audio/mp4",
        _ => return None,
    })
}

fn backoff(config: &AttachmentsConfig, attempts: i32, random: f64) -> Duration {
    let exp = 2f64.powi(attempts.saturating_sub(1).clamp(0, 30));
    let secs = (config.fetch_retry_initial_seconds * exp).min(config.fetch_retry_max_seconds);
    // ±20 % so that instances and rows do not come back in step.
    Duration::from_secs_f64((secs * (0.8 + 0.4 * random)).max(0.0))
}

type Content = BoxStream<'static, Result<Bytes, String>>;

impl Fetcher {
    /// A fetcher for the configured sources: REST/SOAP sources fetch URLs with their own
    /// connection (credentials, TLS, allowed hosts); drop folders give files from their
    /// `attachments/` folder.
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        objects: Objects,
        metrics: Option<AttachmentMetrics>,
        systems: &adapters::sources::SystemClients,
    ) -> Fetcher {
        let mut pulls = HashMap::new();
        let mut drop_dirs = HashMap::new();
        for s in &config.sources {
            if let Some(table) = s.pull_table() {
                let system = s.system_id().map(|id| (id, systems));
                match adapters::sources::build_in(&s.id, &s.kind, &table, &config.base_dir, system) {
                    Ok(p) => {
                        pulls.insert(s.id.clone(), p);
                    }
                    Err(e) => {
                        tracing::warn!(source = %s.id, error = %e, "no connection for attachment URLs of this source")
                    }
                }
            }
            if let Some(dir) = &s.directory {
                drop_dirs.insert(s.id.clone(), config.path(dir).join("attachments"));
            }
        }
        Fetcher {
            store,
            objects,
            config: config.attachments.clone(),
            pulls,
            drop_dirs,
            metrics,
        }
    }

    /// The object store.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    async fn content(&self, row: &AttachmentRow) -> Result<(Content, Option<String>), NotStored> {
        match row.origin.as_str() {
            "url" => {
                let Some(pull) = self.pulls.get(&row.source_id) else {
                    return Err(NotStored::refuse(format!(
                        "来源 {} 不是拉取型来源，无法按其连接取附件地址 / source {} is not a REST/SOAP source: an attachment URL is fetched only with a pull source's own connection",
                        row.source_id, row.source_id
                    )));
                };
                let Some(client) = pull.client() else {
                    return Err(NotStored::refuse(
                        "来源没有 HTTP 连接 / the source has no HTTP connection",
                    ));
                };
                let url = reqwest::Url::parse(&row.origin_ref).map_err(|e| {
                    NotStored::refuse(format!("附件地址无效 / bad attachment URL {:?}: {e}", row.origin_ref))
                })?;
                let timeout = Duration::from_secs(24 * 3600);
                let response = client
                    .open(|c| c.get(url.clone()).timeout(timeout))
                    .await
                    .map_err(|e| NotStored::retry(format!("取附件失败 / fetch failed: {e}")))?;
                if let Some(len) = response.content_length() {
                    if len > self.config.max_bytes {
                        return Err(NotStored::refuse(format!(
                            "附件 {len} 字节，超过上限 {} 字节 / the attachment has {len} bytes, over the limit of {}",
                            self.config.max_bytes, self.config.max_bytes
                        )));
                    }
                }
                let media = response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.split(';').next().unwrap_or_default().trim().to_string())
                    .filter(|v| !v.is_empty());
                let body = stream::unfold(Some(response), |state| async move {
                    let mut response = state?;
                    match response.chunk().await {
                        Ok(Some(chunk)) => Some((Ok(chunk), Some(response))),
                        Ok(None) => None,
                        Err(e) => Some((Err(format!("读取应答失败 / reading the answer failed: {e}")), None)),
                    }
                });
                Ok((body.boxed(), media))
            }
            "inline" => {
                let (_, versions) = self
                    .store
                    .case_by_code(&row.code)
                    .await
                    .map_err(|e| NotStored::retry(e.to_string()))?;
                let record = versions
                    .iter()
                    .find(|v| v.version == row.version && v.status != "stale")
                    .map(|v| &v.record)
                    .ok_or_else(|| {
                        NotStored::refuse(format!("案件版本 {} 不存在 / no version {}", row.version, row.version))
                    })?;
                let text = record
                    .pointer(&format!("/attachments/{}/content_base64", row.position))
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| NotStored::refuse("记录中没有附件内容 / no content_base64 in the record"))?;
                let bytes = decode_base64(text).map_err(|e| {
                    NotStored::refuse(format!(
                        "附件内容不是有效的 Base64 / content_base64 is not valid base64: {e}"
                    ))
                })?;
                Ok((stream::once(async move { Ok(Bytes::from(bytes)) }).boxed(), None))
            }
            "file" => {
                let Some(dir) = self.drop_dirs.get(&row.source_id) else {
                    return Err(NotStored::refuse(format!(
                        "来源 {} 不是投递目录，无附件文件夹 / source {} is not a drop folder: it has no attachments/ folder",
                        row.source_id, row.source_id
                    )));
                };
                if !plain_file_name(&row.origin_ref) {
                    return Err(NotStored::refuse(format!(
                        "附件文件名 {:?} 不是单纯的文件名 / {:?} is not a plain file name",
                        row.origin_ref, row.origin_ref
                    )));
                }
                let path = dir.join(&row.origin_ref);
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| NotStored::retry(format!("无法打开附件文件 / cannot open {}: {e}", path.display())))?;
                let body = stream::unfold(Some(file), |state| async move {
                    use tokio::io::AsyncReadExt;
                    let mut file = state?;
                    let mut buf = vec![0u8; 1 << 20];
                    match file.read(&mut buf).await {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            Some((Ok(Bytes::from(buf)), Some(file)))
                        }
                        Err(e) => Some((Err(format!("读取附件文件失败 / reading the file failed: {e}")), None)),
                    }
                });
                Ok((body.boxed(), None))
            }
            other => Err(NotStored::refuse(format!("未知附件来源 / unknown origin {other:?}"))),
        }
    }

    /// Fetch and store one claimed attachment: the object's row to record.
    pub async fn fetch(&self, row: &AttachmentRow) -> Result<ObjectRow, NotStored> {
        if row.origin == "held" {
            return match self.store.attachments().attachment_object(&row.origin_ref).await {
                Ok(Some(object)) => Ok(object),
                Ok(None) => Err(NotStored::retry(format!(
                    "网关尚未保存 SHA-256 为 {} 的内容 / no content with SHA-256 {} is held yet",
                    row.origin_ref, row.origin_ref
                ))),
                Err(e) => Err(NotStored::retry(e.to_string())),
            };
        }
        let (content, answered_type) = self.content(row).await?;
        let media_type = row
            .media_type
            .clone()
            .or(answered_type)
            .or_else(|| {
                row.file_name
                    .as_deref()
                    .and_then(media_type_of_name)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "application/octet-stream".to_string());
        if !self.config.allows_media_type(&media_type) {
            return Err(NotStored::refuse(format!(
                "附件媒体类型 {media_type} 不在允许范围内 / media type {media_type} is not allowed (allowed_media_types)"
            )));
        }
        let Stored { sha256, bytes, key, .. } = self.objects.put_stream(content, self.config.max_bytes).await?;
        if let Some(m) = &self.metrics {
            m.stored(bytes);
        }
        Ok(ObjectRow {
            sha256,
            bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
            media_type,
            storage_key: key,
            first_seen: Utc::now(),
        })
    }

    /// Claim what is due and fetch it (at most `fetch_concurrency` at once).
    pub async fn round(&self) -> Result<FetchReport, StoreError> {
        let now = Utc::now();
        let lease = Duration::from_secs_f64(self.config.fetch_lease_seconds);
        let lease_until = (now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)).trunc_subsecs(3);
        let claimed = self
            .store
            .attachments()
            .claim_attachments(self.config.fetch_concurrency, now, lease_until)
            .await?;
        let outcomes = futures_util::future::join_all(claimed.iter().map(|row| self.fetch(row))).await;
        let mut report = FetchReport::default();
        for (row, outcome) in claimed.iter().zip(outcomes) {
            self.settle(row, outcome, lease_until, &mut report).await?;
        }
        Ok(report)
    }

    async fn settle(
        &self,
        row: &AttachmentRow,
        outcome: Result<ObjectRow, NotStored>,
        lease_until: DateTime<Utc>,
        report: &mut FetchReport,
    ) -> Result<(), StoreError> {
        let attachments = self.store.attachments();
        match outcome {
            Ok(object) => {
                tracing::info!(code = %row.code, version = row.version, position = row.position,
                    origin = %row.origin, sha256 = %object.sha256, bytes = object.bytes, "attachment stored");
                attachments.attachment_stored(row.id, &object, lease_until).await?;
                report.stored += 1;
            }
            Err(not) => {
                if let Some(m) = &self.metrics {
                    m.fetch_failed(&row.source_id);
                }
                let attempts = row.attempts.saturating_add(1);
                let out_of_attempts = u32::try_from(attempts).unwrap_or(u32::MAX) >= self.config.fetch_max_attempts;
                let status = match (not.refused, out_of_attempts) {
                    (true, _) => "refused",
                    (false, true) => "failed",
                    (false, false) => "pending",
                };
                let wait = backoff(&self.config, attempts, fastrand::f64());
                let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                tracing::warn!(code = %row.code, version = row.version, position = row.position,
                    origin = %row.origin, attempts, status, error = %not.message, "attachment not stored");
                attachments
                    .attachment_not_stored(
                        &FetchFailure {
                            id: row.id,
                            status,
                            attempts,
                            error: not.message,
                            next_try_at: next.trunc_subsecs(3),
                        },
                        lease_until,
                    )
                    .await?;
                if status == "pending" {
                    report.retried += 1;
                } else {
                    report.given_up += 1;
                }
            }
        }
        Ok(())
    }

    /// Rounds until nothing is due now (a batch that stored nothing new ends it too).
    pub async fn drain(&self) -> Result<FetchReport, StoreError> {
        let mut total = FetchReport::default();
        loop {
            let r = self.round().await?;
            total.stored += r.stored;
            total.retried += r.retried;
            total.given_up += r.given_up;
            if r == FetchReport::default() || r.stored == 0 {
                return Ok(total);
            }
        }
    }

    /// Fetch until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let poll = Duration::from_secs_f64(self.config.poll_seconds);
        tracing::info!(store = self.objects.kind(), "attachment fetcher started");
        while !shutdown.is_triggered() {
            let busy = match self.round().await {
                Ok(r) => r != FetchReport::default(),
                Err(e) => {
                    tracing::error!(error = %e, "attachments not readable");
                    false
                }
            };
            if !busy {
                let deadline = tokio::time::Instant::now() + poll;
                while tokio::time::Instant::now() < deadline && !shutdown.is_triggered() {
                    tokio::time::sleep(Duration::from_millis(100).min(poll)).await;
                }
            }
        }
    }
}

/// The key of a stored content (re-exported for the download route).
pub fn storage_key(sha256: &str) -> String {
    key_of(sha256)
}

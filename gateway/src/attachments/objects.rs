//! The object store holding attachment contents: a local folder (the embedded default) or any
//! S3-compatible service, through the `object_store` crate. Contents are streamed in parts
//! (multipart upload) into a temporary key while their SHA-256 is computed, then moved to
//! `sha256/<hash>`; content already there is not stored twice.

use crate::config::attachments::AttachmentsConfig;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// Size of the parts uploaded (S3 needs at least 5 MiB but for the last).
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts in flight at once: what a transfer holds in memory is about this many parts.
const PARTS_IN_FLIGHT: usize = 2;

/// Why the object store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// The configuration cannot give a store.
    #[error("附件存储配置无效 / attachment store settings: {0}")]
    Settings(String),
    /// The object store failed.
    #[error("附件存储出错 / attachment store error: {0}")]
    Store(#[from] object_store::Error),
    /// The content is larger than allowed.
    #[error("附件超过 {max} 字节上限 / the attachment is larger than the limit of {max} bytes")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// Reading the content failed.
    #[error("读取附件内容失败 / reading the content failed: {0}")]
    Read(String),
}

/// What was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// SHA-256 (hex).
    pub sha256: String,
    /// Size.
    pub bytes: u64,
    /// Key in the store.
    pub key: String,
    /// False when the same content was already stored (nothing new was kept).
    pub new: bool,
}

/// The configured object store.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    kind: &'static str,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").field("kind", &self.kind).finish()
    }
}

/// The key of a content.
pub fn key_of(sha256: &str) -> String {
    format!("sha256/{sha256}")
}

impl Objects {
    /// Open the store `[attachments]` configures (`base`: the config file's folder). A local
    /// folder is created when missing.
    pub fn open(config: &AttachmentsConfig, base: &Path) -> Result<Objects, ObjectsError> {
        match config.store.as_str() {
            "s3" => {
                let bucket = config
                    .bucket
                    .clone()
                    .ok_or_else(|| ObjectsError::Settings("s3 需要 bucket / s3 needs a bucket".into()))?;
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(config.region.clone())
                    .with_allow_http(config.allow_http);
                if let Some(e) = &config.endpoint {
                    builder = builder.with_endpoint(e.clone());
                }
                if let Some((id, secret)) = config.s3_keys(base).map_err(ObjectsError::Settings)? {
                    builder = builder
                        .with_access_key_id(id.expose())
                        .with_secret_access_key(secret.expose());
                }
                Ok(Objects {
                    store: Arc::new(builder.build()?),
                    kind: "s3",
                })
            }
            _ => {
                let dir = config.local_path(base);
                std::fs::create_dir_all(&dir).map_err(|e| ObjectsError::Settings(format!("{}: {e}", dir.display())))?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)?.with_automatic_cleanup(true);
                Ok(Objects {
                    store: Arc::new(local),
                    kind: "local",
                })
            }
        }
    }

    /// `local` or `s3`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Stream `content` into the store, at most `max_bytes` of it: hashed on the way, kept
    /// under `sha256/<hash>` (once: a second copy of the same content is dropped). Holds about
    /// [`PARTS_IN_FLIGHT`] parts of 8 MiB in memory, whatever the size.
    pub async fn put_stream<S, E>(&self, mut content: S, max_bytes: u64) -> Result<Stored, ObjectsError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(|e| ObjectsError::Read(e.to_string()))?;
        let temp = StorePath::from(format!("tmp/{}", hex::encode(random)));
        let upload = self.store.put_multipart(&temp).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut hasher = Sha256::new();
        let mut total: u64 = 0;
        while let Some(chunk) = content.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(ObjectsError::Read(e.to_string()));
                }
            };
            total = total.saturating_add(chunk.len() as u64);
            if total > max_bytes {
                let _ = writer.abort().await;
                return Err(ObjectsError::TooLarge { max: max_bytes });
            }
            hasher.update(&chunk);
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                return Err(ObjectsError::Store(e));
            }
            writer.put(chunk);
        }
        writer.finish().await?;
        let sha256 = hex::encode(hasher.finalize());
        let key = key_of(&sha256);
        let target = StorePath::from(key.clone());
        let new = match self.store.head(&target).await {
            Ok(_) => false,
            Err(object_store::Error::NotFound { .. }) => true,
            Err(e) => {
                let _ = self.store.delete(&temp).await;
                return Err(e.into());
            }
        };
        if new {
            self.store.rename(&temp, &target).await?;
        } else {
            self.store.delete(&temp).await?;
        }
        Ok(Stored {
            sha256,
            bytes: total,
            key,
            new,
        })
    }

    /// Whether the content of `key` is there (its size when it is).
    pub async fn size(&self, key: &str) -> Result<Option<u64>, ObjectsError> {
        match self.store.head(&StorePath::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The content of `key`, as a stream of parts.
    pub async fn read(
        &self,
        key: &str,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<Bytes, object_store::Error>>, ObjectsError> {
        Ok(self.store.get(&StorePath::from(key)).await?.into_stream())
    }
}

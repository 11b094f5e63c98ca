//! Delivery gating: a case version goes to the sinks only once its required attachments are
//! stored. A held delivery stays `pending` (no attempt used) with the reason as its
//! `last_error` and is looked at again shortly; optional attachments never hold. When a
//! required attachment is `failed` (out of attempts) or `refused`, the delivery is made `dead`
//! with the reason (it would otherwise wait for ever and hold the case's later versions):
//! an operator retries the attachment and re-drives the delivery. What goes is
//! given each stored attachment's `sha256`, `bytes`, `media_type` and, as `uri`, a signed
//! download link; inline content (`content_base64`) is not sent on.

use super::link::LinkSigner;
use super::spec::{listed, specs};
use crate::store::attachments::AttachmentRow;
use crate::store::{Claimed, DeliveryStatus, Settlement, Store};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Holds deliveries until their attachments are stored, and fills in what sinks get.
#[derive(Clone)]
pub struct DeliveryGate {
    store: Arc<dyn Store>,
    signer: LinkSigner,
    recheck: Duration,
}

impl std::fmt::Debug for DeliveryGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryGate").field("recheck", &self.recheck).finish()
    }
}

/// The prefix of a held delivery's `last_error`.
pub const HELD: &str = "等待附件入库 / awaiting attachments";

/// The prefix of the `last_error` of a delivery made dead because a required attachment is
/// `failed` (out of attempts) or `refused`: retry the attachment, then re-drive the delivery.
pub const NOT_STORED: &str = "必需附件无法入库 / a required attachment could not be stored";

impl DeliveryGate {
    /// A gate on `store`'s attachments; held deliveries are looked at again after `recheck`.
    pub fn new(store: Arc<dyn Store>, signer: LinkSigner, recheck: Duration) -> DeliveryGate {
        DeliveryGate { store, signer, recheck }
    }

    /// Why a version with these declared attachments and stored rows cannot go yet (`None`: it
    /// can), and whether a required attachment will not come without an operator (`failed` or
    /// `refused`).
    fn hold_reason(record: &Value, rows: &[&AttachmentRow]) -> Option<(String, bool)> {
        let mut waiting = Vec::new();
        let mut required = 0;
        let mut stuck = false;
        for s in specs(record).into_iter().filter(|s| !s.optional) {
            required += 1;
            let row = rows
                .iter()
                .find(|r| usize::try_from(r.position).ok() == Some(s.position));
            match row {
                Some(r) if r.status == "stored" => {}
                Some(r) => {
                    stuck |= r.status == "failed" || r.status == "refused";
                    waiting.push(format!(
                        "#{} {} {}{}",
                        s.position,
                        s.file_name.as_deref().or(s.title.as_deref()).unwrap_or(&s.kind),
                        r.status,
                        r.last_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
                    ))
                }
                None => waiting.push(format!("#{} pending", s.position)),
            }
        }
        (!waiting.is_empty()).then(|| {
            let head = if stuck { NOT_STORED } else { HELD };
            (
                format!(
                    "{head}: {}/{required} 已入库 / stored; {}",
                    required - waiting.len(),
                    waiting.join("; ")
                ),
                stuck,
            )
        })
    }

    /// Give the record what sinks get of its attachments (see the module docs).
    fn fill_in(&self, record: &mut Value, rows: &[&AttachmentRow], now: i64) {
        let Some(items) = record.get_mut("attachments").and_then(Value::as_array_mut) else {
            return;
        };
        for (position, item) in items.iter_mut().enumerate() {
            let Some(obj) = item.as_object_mut() else { continue };
            obj.remove("content_base64");
            let row = rows.iter().find(|r| usize::try_from(r.position).ok() == Some(position));
            let Some(row) = row.filter(|r| r.status == "stored") else {
                continue;
            };
            let Some(sha256) = &row.sha256 else { continue };
            obj.insert("sha256".into(), Value::String(sha256.clone()));
            if let Some(bytes) = row.bytes {
                obj.insert("bytes".into(), Value::from(bytes));
            }
            if let Some(m) = &row.media_type {
                obj.insert("media_type".into(), Value::String(m.clone()));
            }
            obj.insert("uri".into(), Value::String(self.signer.link(sha256, now).0));
        }
    }

    /// Split a claimed batch: what may go (records filled in), and the settlements of those
    /// held (pending, no attempt used, due again after the recheck wait). A version's
    /// attachments not yet listed (the commit's listing was lost) are listed now. When the
    /// store cannot be read, everything with attachments is held.
    pub async fn split(&self, claimed: Vec<Claimed>, now: DateTime<Utc>) -> (Vec<Claimed>, Vec<Settlement>) {
        let mut go = Vec::with_capacity(claimed.len());
        let mut held = Vec::new();
        let recheck = now + chrono::Duration::from_std(self.recheck).unwrap_or(chrono::Duration::MAX);
        for mut c in claimed {
            let has = c
                .delivery
                .record
                .get("attachments")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if !has {
                go.push(c);
                continue;
            }
            if c.delivery.withdrawn {
                // A withdrawal never waits for attachments; inline content is not sent on.
                self.fill_in(&mut c.delivery.record, &[], now.timestamp());
                go.push(c);
                continue;
            }
            let reason: Option<(String, bool)> = match self.rows_of(&c).await {
                Ok(rows) => {
                    let mine: Vec<&AttachmentRow> = rows.iter().filter(|r| r.version == c.delivery.version).collect();
                    match Self::hold_reason(&c.delivery.record, &mine) {
                        None => {
                            self.fill_in(&mut c.delivery.record, &mine, now.timestamp());
                            None
                        }
                        Some(r) => Some(r),
                    }
                }
                Err(e) => Some((format!("{HELD}: {e}"), false)),
            };
            match reason {
                None => go.push(c),
                // Waiting could last for ever and would keep later versions of the case from
                // this sink: dead, for an operator to re-drive once the attachment is stored.
                Some((reason, true)) => held.push(Settlement {
                    id: c.delivery.outbox_id,
                    status: DeliveryStatus::Dead,
                    attempts: c.attempts,
                    next_attempt_at: None,
                    last_error: Some(reason),
                    delivered_at: None,
                }),
                Some((reason, false)) => held.push(Settlement {
                    id: c.delivery.outbox_id,
                    status: DeliveryStatus::Pending,
                    attempts: c.attempts,
                    next_attempt_at: Some(recheck),
                    last_error: Some(reason),
                    delivered_at: None,
                }),
            }
        }
        (go, held)
    }

    /// The case's attachment rows, listing this version's first when none are.
    async fn rows_of(&self, c: &Claimed) -> Result<Vec<AttachmentRow>, crate::store::StoreError> {
        let d = &c.delivery;
        let attachments = self.store.attachments();
        let rows = attachments.attachments_of_case(&d.unified_code).await?;
        if rows.iter().any(|r| r.version == d.version) {
            return Ok(rows);
        }
        let source = self
            .store
            .case_by_code(&d.unified_code)
            .await?
            .1
            .into_iter()
            .find(|v| v.version == d.version)
            .map(|v| v.source_id)
            .unwrap_or_default();
        let new = listed(&d.unified_code, d.version, &source, &d.record);
        if !new.is_empty() {
            attachments.enqueue_attachments(&new).await?;
        }
        attachments.attachments_of_case(&d.unified_code).await
    }
}

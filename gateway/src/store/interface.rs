//! The store's interface: everything the gateway keeps, behind one trait for both backends.

use super::catalogue;
use super::console::{AuditFilter, RecordFate, RecordFilter};
use super::error::StoreResult;
use super::types::*;
use async_trait::async_trait;

/// Everything the gateway keeps, behind one interface for both backends.
#[async_trait]
pub trait Store: Send + Sync {
    /// Which backend this is (`sqlite` or `postgres`).
    fn backend(&self) -> &'static str;

    /// Whether this store keeps payloads and canonical records compressed: the pipeline then
    /// compresses them while preparing ([`IncomingRecord::compress_for_store`]), off the commit.
    fn keeps_compressed(&self) -> bool {
        false
    }

    /// The supervision-item catalogue kept by this store.
    fn catalogue(&self) -> &dyn catalogue::CatalogueStore;

    /// The officer registry (执法人员名录) kept by this store.
    fn officers(&self) -> &dyn super::officers::OfficerStore;

    /// The raw archive's hash chains, signed checkpoints and witnesses.
    fn archive(&self) -> &dyn super::archive::ArchiveStore;

    /// Re-sealing of stored personal data under the current key.
    fn sealed(&self) -> &dyn super::sealed::SealedStore;

    /// The store's instances and job leases.
    fn cluster(&self) -> &dyn super::cluster::ClusterStore;

    /// Cases awaiting supplement (待补录) and the values departments supplied.
    fn supplements(&self) -> &dyn super::supplement::SupplementStore;

    /// Penalties' publicity (双公示): deadlines, publications, withholdings.
    fn publicity(&self) -> &dyn super::publicity::PublicityStore;
    /// Evidence attachments (证据附件): stored objects, each case version's attachments and their fetch state.
    fn attachments(&self) -> &dyn super::attachments::AttachmentStore;
    /// Reconciliation counts and claims, cases off the platform, alerts (对账与告警).
    fn oversight(&self) -> &dyn super::oversight::OversightStore;

    /// The numbers of the inspection plans held (records of kind `plan`, not withdrawn), for
    /// `rule.plan_unknown`.
    async fn plan_numbers(&self) -> StoreResult<Vec<String>>;
    /// Joint inspections found among the store's inspection cases.
    fn joint(&self) -> &dyn super::joint::JointStore;

    /// Apply pending schema migrations; returns the names of those applied now.
    async fn migrate(&self) -> StoreResult<Vec<String>>;

    /// Commit a batch of normalised records in one transaction (see the module docs).
    /// On error nothing of the batch is written.
    async fn commit_batch(&self, batch: &CommitBatch) -> StoreResult<Vec<RecordResult>>;

    /// The source's persisted cursor (watermark), if any.
    async fn cursor(&self, source_id: &str) -> StoreResult<Option<String>>;

    /// One raw archived payload.
    async fn raw_record(&self, id: i64) -> StoreResult<RawRecord>;

    /// Quarantine entries matching the filter, newest first.
    async fn quarantine_list(&self, filter: &QuarantineFilter) -> StoreResult<Vec<QuarantineEntry>>;

    /// How many entries match the filter in all (paging ignored: `before_id`, `offset`, `limit`).
    async fn quarantine_count(&self, filter: &QuarantineFilter) -> StoreResult<i64>;

    /// Mark every open entry matching the filter ignored with `reason` (paging ignored);
    /// answers how many were.
    async fn quarantine_ignore_matching(&self, filter: &QuarantineFilter, reason: &str) -> StoreResult<u64>;

    /// One quarantine entry.
    async fn quarantine_get(&self, id: i64) -> StoreResult<QuarantineEntry>;

    /// Entries of `status` counted per source and per (source, rule).
    async fn quarantine_counts(&self, status: QuarantineStatus) -> StoreResult<QuarantineCounts>;

    /// Mark a quarantine entry ignored (with a reason) or replayed.
    async fn quarantine_set_status(&self, id: i64, status: QuarantineStatus, note: Option<&str>) -> StoreResult<()>;

    /// Record that a replay of an entry failed again, with the violations it has now.
    async fn quarantine_update_violations(&self, id: i64, violations: &[normalizer::Violation]) -> StoreResult<()>;

    /// Cases matching the filter, in id order, from `after_id` on, at most `limit`.
    async fn cases(&self, filter: &CaseFilter) -> StoreResult<Vec<CaseRow>>;

    /// One case by unified code, with all its versions.
    async fn case_by_code(&self, code: &str) -> StoreResult<(CaseRow, Vec<CaseVersionRow>)>;

    /// The unified code of the case with this business key, if any.
    async fn case_code_by_key(&self, key: &BusinessKey) -> StoreResult<Option<String>>;

    /// Cases whose target identifier (`/target/id_number`: credit code or ID number) is
    /// `id_number` in any version: (case id, unified code) in id order, after `after_id`, at
    /// most `limit`.
    async fn case_codes_by_target(
        &self,
        id_number: &str,
        after_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<(i64, String)>>;

    /// Cases whose agency case number is `number` (normalised as stored), whatever their agency
    /// and type: (case id, unified code) in id order, after `after_id`, at most `limit`.
    async fn case_codes_by_number(
        &self,
        number: &str,
        after_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<(i64, String)>>;

    /// Outbox rows for a case version set (for lineage and tests).
    async fn outbox_for_case(&self, case_id: i64) -> StoreResult<Vec<OutboxRow>>;

    /// Counts of cases, versions, quarantine entries and raw records (for summaries and tests).
    async fn stats(&self) -> StoreResult<StoreStats>;

    /// Append an entry to the audit log.
    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()>;

    /// The newest audit entries first.
    async fn audit_log(&self, limit: i64) -> StoreResult<Vec<AuditRecord>>;

    /// A page of the audit log (newest first) and how many entries the filter selects in all.
    async fn audit_search(&self, filter: &AuditFilter) -> StoreResult<(Vec<AuditRecord>, i64)>;

    /// A page of received records (newest first) with what became of each, and how many the
    /// filter selects in all.
    async fn record_fates(&self, filter: &RecordFilter) -> StoreResult<(Vec<RecordFate>, i64)>;

    /// How many cases the filter selects (paging ignored).
    async fn case_count(&self, filter: &CaseFilter) -> StoreResult<i64>;
}

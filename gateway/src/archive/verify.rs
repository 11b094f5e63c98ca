//! `gateway archive verify`: re-hash every archived payload of each source's chain (or from a
//! date), check every link against its predecessor, the chain head, each checkpoint's signature
//! (by a trusted key) and that each checkpoint's heads lie on the chain. The first broken link
//! of each source is named with its raw id, what was expected and what was found.

use super::Statement;
use crate::crypto::chain::{hash_of_bytes, HashAlg, Link, GENESIS};
use crate::crypto::keys::{PublicKey, SignAlg};
use crate::store::archive::{ArchiveStore, ChainRow};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Links read per query.
const PAGE: i64 = 1000;

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this source (default: every source with a chain).
    pub source: Option<String>,
    /// Only links received from this time on (the link before is taken as stored).
    pub from: Option<DateTime<Utc>>,
}

/// The first broken link of a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// `link_mismatch` (payload or link data changed), `gap` (a link missing),
    /// `head_mismatch` (the head row disagrees with the last link), `unknown_algorithm`,
    /// `payload_unreadable`.
    pub kind: &'static str,
    /// The position concerned.
    pub seq: i64,
    /// The raw row concerned (none for a link missing at the end).
    pub raw_id: Option<i64>,
    /// What the chain requires here.
    pub expected: String,
    /// What the store holds.
    pub found: String,
    /// Chinese explanation.
    pub message_zh: String,
    /// English explanation.
    pub message_en: String,
}

/// One source's result.
#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    /// The source.
    pub source_id: String,
    /// The first position checked.
    pub from_seq: i64,
    /// Links re-hashed and found intact.
    pub links_checked: i64,
    /// The head as stored.
    pub head_seq: i64,
    /// Raw rows of the source without a link (archived before the chain began, or while
    /// `chain = false`).
    pub unchained_rows: i64,
    /// The first broken link, if any.
    pub first_break: Option<Break>,
}

/// A checkpoint that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointProblem {
    /// The checkpoint.
    pub checkpoint_id: i64,
    /// `signature` (does not verify), `untrusted_key` (signed by a key not configured),
    /// `statement_unreadable`, `head_not_on_chain` (a stated head is not the stored link),
    /// `differs_from_witness`, `missing_in_store` (a witness's copy and the store disagree).
    pub kind: &'static str,
    /// The source of a head not on the chain.
    pub source_id: Option<String>,
    /// Chinese explanation.
    pub message_zh: String,
    /// English explanation.
    pub message_en: String,
}

/// The whole result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether everything holds.
    pub ok: bool,
    /// Per source.
    pub sources: Vec<SourceReport>,
    /// Checkpoints whose signature and heads were checked.
    pub checkpoints_checked: i64,
    /// Checkpoints that do not hold (the store's, and witnesses' copies).
    pub checkpoint_problems: Vec<CheckpointProblem>,
    /// Checkpoint copies from witness files checked (`--witness`).
    pub witness_copies_checked: i64,
}

fn break_of(kind: &'static str, row: Option<&ChainRow>, seq: i64, expected: String, found: String) -> Break {
    let raw_id = row.map(|r| r.raw_id);
    let raw = raw_id.map(|id| id.to_string()).unwrap_or_else(|| "-".into());
    let (zh, en) = match kind {
        "link_mismatch" => (
            format!("第 {seq} 环（原始记录 {raw}）的哈希与重新计算的不符：载荷或其接收信息已被改动"),
            format!("link {seq} (raw record {raw}) does not match its recomputed hash: the payload or its receipt data was changed"),
        ),
        "gap" => (
            format!("第 {seq} 环缺失（其后为原始记录 {raw}）：记录已被删除"),
            format!("link {seq} is missing (next: raw record {raw}): a record was deleted"),
        ),
        "head_mismatch" => (
            format!("链头与最后一环不符（第 {seq} 环）"),
            format!("the chain head disagrees with the last link (link {seq})"),
        ),
        "unknown_algorithm" => (
            format!("第 {seq} 环（原始记录 {raw}）的算法编号未知"),
            format!("link {seq} (raw record {raw}) has an unknown algorithm code"),
        ),
        _ => (
            format!("第 {seq} 环（原始记录 {raw}）的载荷无法读取"),
            format!("the payload of link {seq} (raw record {raw}) cannot be read"),
        ),
    };
    Break {
        kind,
        seq,
        raw_id,
        expected,
        found,
        message_zh: zh,
        message_en: en,
    }
}

/// Recompute one stored link from its data and the previous link's stored hash; `Err` names
/// the break.
pub fn check_row(row: &ChainRow, prev: &[u8; 32]) -> Result<[u8; 32], Box<Break>> {
    let Some(alg) = HashAlg::of_code(row.alg_code) else {
        return Err(Box::new(break_of(
            "unknown_algorithm",
            Some(row),
            row.seq,
            "1 (sm3) | 2 (sha256)".into(),
            row.alg_code.to_string(),
        )));
    };
    let payload = match &row.payload {
        Ok(p) => p,
        Err(e) => {
            return Err(Box::new(break_of(
                "payload_unreadable",
                Some(row),
                row.seq,
                "a readable payload".into(),
                e.clone(),
            )))
        }
    };
    let link = Link {
        alg,
        source_id: &row.source_id,
        seq: row.seq,
        raw_id: row.raw_id,
        received_at: row.received_at,
        payload_digest: alg.digest(payload),
        prev: *prev,
    };
    let computed = link.hash();
    if computed.as_slice() != row.hash.as_slice() {
        return Err(Box::new(break_of(
            "link_mismatch",
            Some(row),
            row.seq,
            hex::encode(computed),
            hex::encode(&row.hash),
        )));
    }
    Ok(computed)
}

/// The stored link at `seq` of `source`.
async fn link_at(store: &dyn ArchiveStore, source: &str, seq: i64) -> Result<Option<ChainRow>, StoreError> {
    Ok(store
        .chain_rows(source, seq - 1, 1)
        .await?
        .into_iter()
        .next()
        .filter(|r| r.seq == seq))
}

async fn verify_source(
    store: &dyn ArchiveStore,
    source: &str,
    head_seq: i64,
    head_hash: &str,
    from: Option<DateTime<Utc>>,
) -> Result<SourceReport, StoreError> {
    let mut report = SourceReport {
        source_id: source.to_string(),
        from_seq: 1,
        links_checked: 0,
        head_seq,
        unchained_rows: store.unchained_count(source).await?,
        first_break: None,
    };
    let start = match from {
        Some(t) => match store.chain_seq_from(source, t).await? {
            Some(seq) => seq,
            None => head_seq + 1,
        },
        None => 1,
    };
    report.from_seq = start;
    let mut prev = GENESIS;
    if start > 1 && start <= head_seq {
        match link_at(store, source, start - 1).await? {
            Some(row) => prev = hash_of_bytes(&row.hash).unwrap_or(GENESIS),
            None => {
                report.first_break = Some(break_of(
                    "gap",
                    None,
                    start - 1,
                    format!("link {}", start - 1),
                    "none".into(),
                ));
                return Ok(report);
            }
        }
    }
    let mut expected_seq = start;
    let mut after = start - 1;
    'pages: loop {
        let rows = store.chain_rows(source, after, PAGE).await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            if row.seq != expected_seq {
                report.first_break = Some(break_of(
                    "gap",
                    Some(row),
                    expected_seq,
                    format!("link {expected_seq}"),
                    format!("link {} (raw record {})", row.seq, row.raw_id),
                ));
                break 'pages;
            }
            match check_row(row, &prev) {
                Ok(_) => {
                    prev = hash_of_bytes(&row.hash).unwrap_or(GENESIS);
                    report.links_checked += 1;
                    expected_seq += 1;
                }
                Err(b) => {
                    report.first_break = Some(*b);
                    break 'pages;
                }
            }
        }
        after = rows.last().map(|r| r.seq).unwrap_or(after);
    }
    let last = expected_seq - 1;
    if report.first_break.is_none() && start <= head_seq {
        if last < head_seq {
            report.first_break = Some(break_of(
                "gap",
                None,
                last + 1,
                format!("links {}..{head_seq} (the head is at {head_seq})", last + 1),
                format!("the last link is {last}"),
            ));
        } else if last > head_seq || hex::encode(prev) != head_hash {
            report.first_break = Some(break_of(
                "head_mismatch",
                None,
                last,
                format!("seq {last} hash {}", hex::encode(prev)),
                format!("seq {head_seq} hash {head_hash}"),
            ));
        }
    }
    Ok(report)
}

fn problem(
    checkpoint_id: i64,
    kind: &'static str,
    source_id: Option<String>,
    zh: String,
    en: String,
) -> CheckpointProblem {
    CheckpointProblem {
        checkpoint_id,
        kind,
        source_id,
        message_zh: zh,
        message_en: en,
    }
}

/// Check one stored checkpoint: its statement, its signature by a `trusted` key, and (for the
/// sources in `sources`, or all when `None`) that its heads are the stored links.
pub async fn check_checkpoint(
    store: &dyn ArchiveStore,
    checkpoint: &crate::store::archive::StoredCheckpoint,
    trusted: &[PublicKey],
    sources: Option<&str>,
) -> Result<Vec<CheckpointProblem>, StoreError> {
    let id = checkpoint.id;
    let mut problems = Vec::new();
    let Some(statement) = Statement::parse(&checkpoint.statement) else {
        problems.push(problem(
            id,
            "statement_unreadable",
            None,
            format!("检查点 {id} 的声明无法解析"),
            format!("the statement of checkpoint {id} cannot be parsed"),
        ));
        return Ok(problems);
    };
    let key = SignAlg::of_name(&checkpoint.algorithm)
        .filter(|a| a.name() == statement.algorithm)
        .and_then(|a| PublicKey::from_pem(a, &checkpoint.public_key).ok());
    let signature = hex::decode(&checkpoint.signature).unwrap_or_default();
    match key {
        Some(key) if key.key_id() == statement.key_id && key.verify(checkpoint.statement.as_bytes(), &signature) => {
            if !trusted.contains(&key) {
                problems.push(problem(
                    id,
                    "untrusted_key",
                    None,
                    format!("检查点 {id} 由未配置的密钥签名（密钥标识 {}）", key.key_id()),
                    format!(
                        "checkpoint {id} is signed by a key that is not configured (key id {}): neither the signing key nor one of archive.trusted_keys",
                        key.key_id()
                    ),
                ));
            }
        }
        _ => problems.push(problem(
            id,
            "signature",
            None,
            format!("检查点 {id} 的签名验证失败（声明或签名已被改动）"),
            format!("the signature of checkpoint {id} does not verify (the statement or the signature was changed)"),
        )),
    }
    for head in &statement.heads {
        if sources.is_some_and(|s| s != head.source_id) {
            continue;
        }
        let stored = link_at(store, &head.source_id, head.seq).await?;
        let found = stored.as_ref().map(|r| hex::encode(&r.hash));
        if found.as_deref() != Some(head.hash.as_str()) {
            let found = found.unwrap_or_else(|| "none".into());
            problems.push(problem(
                id,
                "head_not_on_chain",
                Some(head.source_id.clone()),
                format!(
                    "检查点 {id} 签署的 {} 第 {} 环哈希 {} 与存储的 {found} 不符",
                    head.source_id, head.seq, head.hash
                ),
                format!(
                    "checkpoint {id} signed link {} of {} with hash {}, the store holds {found}",
                    head.seq, head.source_id, head.hash
                ),
            ));
        }
    }
    Ok(problems)
}

/// Check the copies of checkpoints a witness holds (`[[archive.witnesses]]` of kind `file`:
/// one JSON line each): each must verify on its own (signature, trusted key, heads on the
/// stored chain) and be in the store unchanged. A chain rewritten and re-signed in the store
/// is found here even when the store's own checkpoints agree with it.
pub async fn check_witness_copies(
    store: &dyn ArchiveStore,
    copies: &[crate::store::archive::StoredCheckpoint],
    trusted: &[PublicKey],
    sources: Option<&str>,
) -> Result<Vec<CheckpointProblem>, StoreError> {
    let mut problems = Vec::new();
    for copy in copies {
        let id = copy.id;
        problems.extend(check_checkpoint(store, copy, trusted, sources).await?);
        let stored = store.checkpoints(id - 1, 1).await?.into_iter().find(|c| c.id == id);
        match stored {
            Some(c) if c.statement == copy.statement && c.signature == copy.signature => {}
            Some(_) => problems.push(problem(
                id,
                "differs_from_witness",
                None,
                format!("存储中的检查点 {id} 与见证所持副本不同"),
                format!("checkpoint {id} in the store differs from the witness's copy"),
            )),
            None => problems.push(problem(
                id,
                "missing_in_store",
                None,
                format!("见证持有的检查点 {id} 在存储中不存在"),
                format!("checkpoint {id} held by the witness is missing from the store"),
            )),
        }
    }
    Ok(problems)
}

/// Verify the archive within `scope` against the `trusted` keys.
pub async fn verify(store: &dyn ArchiveStore, scope: &Scope, trusted: &[PublicKey]) -> Result<Report, StoreError> {
    let mut sources = Vec::new();
    for head in store.chain_heads().await? {
        if scope.source.as_deref().is_some_and(|s| s != head.source_id) {
            continue;
        }
        sources.push(verify_source(store, &head.source_id, head.seq, &head.hash, scope.from).await?);
    }
    let mut checkpoints_checked = 0;
    let mut checkpoint_problems = Vec::new();
    let mut after = 0;
    loop {
        let page = store.checkpoints(after, 100).await?;
        if page.is_empty() {
            break;
        }
        for checkpoint in &page {
            checkpoints_checked += 1;
            checkpoint_problems.extend(check_checkpoint(store, checkpoint, trusted, scope.source.as_deref()).await?);
            after = checkpoint.id;
        }
    }
    Ok(Report {
        ok: sources.iter().all(|s| s.first_break.is_none()) && checkpoint_problems.is_empty(),
        sources,
        checkpoints_checked,
        checkpoint_problems,
        witness_copies_checked: 0,
    })
}

impl Report {
    /// The report as text for a terminal (Chinese and English).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for s in &self.sources {
            match &s.first_break {
                None => out.push_str(&format!(
                    "OK    {}: {} 环完好 / links intact (from {}, head {}){}\n",
                    s.source_id,
                    s.links_checked,
                    s.from_seq,
                    s.head_seq,
                    if s.unchained_rows > 0 {
                        format!(
                            "; {} 条早于哈希链 / rows archived without a link (before the chain began)",
                            s.unchained_rows
                        )
                    } else {
                        String::new()
                    }
                )),
                Some(b) => out.push_str(&format!(
                    "BROKEN {}: {} / {}\n       expected {}\n       found    {}\n",
                    s.source_id, b.message_zh, b.message_en, b.expected, b.found
                )),
            }
        }
        out.push_str(&format!(
            "检查点 / checkpoints checked: {} (witness copies: {})\n",
            self.checkpoints_checked, self.witness_copies_checked
        ));
        for p in &self.checkpoint_problems {
            out.push_str(&format!(
                "BROKEN checkpoint {}: {} / {}\n",
                p.checkpoint_id, p.message_zh, p.message_en
            ));
        }
        out.push_str(if self.ok {
            "归档完好 / the archive verifies\n"
        } else {
            "归档校验失败 / the archive does NOT verify\n"
        });
        out
    }
}

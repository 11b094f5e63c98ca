//! Inspection records for the joint-inspection tests (联合检查比对), committed straight into a
//! store: shared by the store conformance tests and the API, delivery and dashboard tests.
#![allow(dead_code)]

use chrono::Utc;
use gateway::store::joint::{GroupFilter, JointFacts, JointGroup};
use gateway::store::*;
use normalizer::standards::CreditCode;
use normalizer::{CaseNumber, CaseType};
use serde_json::json;
use sha2::{Digest, Sha256};

pub const AGENCY_A: &str = "11360100014523152U";
pub const AGENCY_B: &str = "11360400014587316A";
pub const AGENCY_C: &str = "11360100MB00000003";
pub const TARGET: &str = "91360102MA35G7K86A";
pub const OTHER_TARGET: &str = "91360100MA0000001U";

/// An inspection by `agency` of `target` on day `day` of March 2024 (case number `number`).
pub struct Insp {
    number: String,
    agency: &'static str,
    target: &'static str,
    day: u32,
    task: Option<&'static str>,
    participants: Vec<&'static str>,
    delete: bool,
    source: &'static str,
    year: i32,
    region: &'static str,
}

pub fn insp(number: &str, agency: &'static str, target: &'static str, day: u32) -> Insp {
    Insp {
        number: number.to_string(),
        agency,
        target,
        day,
        task: None,
        participants: Vec::new(),
        delete: false,
        source: "nanchang",
        year: 2024,
        region: "360100",
    }
}

impl Insp {
    pub fn task(mut self, task: &'static str) -> Insp {
        self.task = Some(task);
        self
    }
    /// Names these agencies (credit codes) as its joint-inspection participants.
    pub fn participants(mut self, agencies: &[&'static str]) -> Insp {
        self.participants = agencies.to_vec();
        self
    }
    pub fn source(mut self, source: &'static str) -> Insp {
        self.source = source;
        self
    }
    /// Numbered from another counter (year and region of the unified code).
    pub fn numbered(mut self, year: i32, region: &'static str) -> Insp {
        self.year = year;
        self.region = region;
        self
    }
    pub fn delete(mut self) -> Insp {
        self.delete = true;
        self
    }
    pub fn record(&self) -> IncomingRecord {
        let mut inspection = json!({
            "form": "random",
            "result": "no_problem",
            "check_date": format!("2024-03-{:02}", self.day),
        });
        if let Some(t) = self.task {
            inspection["joint_task_id"] = json!(t);
        }
        if !self.participants.is_empty() {
            let ps: Vec<_> = self
                .participants
                .iter()
                .map(|c| json!({"name": "参与部门", "credit_code": c}))
                .collect();
            inspection["joint_participants"] = json!(ps);
        }
        let record = json!({
            "operation": if self.delete { "delete" } else { "insert" },
            "case_type": "inspection",
            "agency": {"credit_code": self.agency, "region": "360100"},
            "case_number": self.number,
            "target": {"id_number": self.target},
            "inspection": inspection,
        });
        let text = record.to_string();
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        IncomingRecord {
            source_id: self.source.to_string(),
            record_key: self.number.clone(),
            payload: text.clone().into_bytes(),
            payload_format: PayloadFormat::Json,
            payload_hash: hash.clone(),
            received_at: Utc::now(),
            mapping_id: "joint-test".into(),
            mapping_version: 1,
            verdict: Verdict::Accept(AcceptedRecord {
                key: BusinessKey {
                    agency_credit_code: CreditCode::parse(self.agency).expect("valid agency code"),
                    case_type: CaseType::Inspection,
                    case_number: CaseNumber::parse(&self.number).expect("case number"),
                },
                year: self.year,
                region: self.region.into(),
                operation: if self.delete {
                    Operation::Delete
                } else {
                    Operation::Insert
                },
                record_json: text,
                target_id: Some(self.target.to_string()),
                record_hash: hash,
                warnings: Vec::new(),
                source_updated_at: None,
                completion: false,
                record_lz4: None,
                joint: JointFacts::of(&record).map(Box::new),
                publicity: None,
            }),
            replay_of: None,
            payload_lz4: None,
            payload_digest: None,
            labels: Default::default(),
        }
    }
}

pub async fn commit(store: &dyn Store, records: Vec<Insp>) -> Vec<String> {
    let batch = CommitBatch {
        records: records.iter().map(Insp::record).collect(),
        cursors: Vec::new(),
        sinks: vec![gateway::store::SinkRoute::all("platform")],
        fence: None,
    };
    store
        .commit_batch(&batch)
        .await
        .expect("commit")
        .into_iter()
        .map(|r| match r {
            RecordResult::Accepted { code }
            | RecordResult::Updated { code, .. }
            | RecordResult::Withdrawn { code, .. }
            | RecordResult::Unchanged { code } => code,
            other => panic!("not committed: {other:?}"),
        })
        .collect()
}

pub async fn groups(store: &dyn Store) -> Vec<JointGroup> {
    let filter = GroupFilter {
        limit: 100,
        ..Default::default()
    };
    store.joint().joint_groups(&filter).await.expect("groups").0
}

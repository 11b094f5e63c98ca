//! Whether each penalty was made public in time (双公示: within 7 working days of its decision).
//!
//! The commit keeps one row per penalty case in `penalty_publicity` (its current version's decision
//! date, deadline and the publicity date the record gives), in the same transaction as the
//! version. A publicity sink's dispatcher marks the row when it delivers the penalty's public
//! record (published) or withholds it (with the reason). The publication day is the earlier of the
//! record's own publicity date and the day (Asia/Shanghai) a publicity sink delivered it.
//! Both backends implement [`PublicityStore`].

use super::error::StoreResult;
use super::plan::{CaseRef, Plan};
pub use super::types::PenaltyFacts;
use super::types::{IncomingRecord, Verdict};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// Where a penalty stands with its publicity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicityStatus {
    /// Public by its deadline.
    OnTime,
    /// Public, after its deadline.
    Late,
    /// Not public and past its deadline.
    Overdue,
    /// Not public yet, deadline still ahead.
    Due,
    /// A publicity sink's rules do not publish it (a natural person's penalty ...).
    Withheld,
    /// The decision date is outside the holiday calendar: no deadline can be computed.
    DeadlineUnknown,
}

impl PublicityStatus {
    /// Every status, in display order.
    pub const ALL: [PublicityStatus; 6] = [
        PublicityStatus::Overdue,
        PublicityStatus::Due,
        PublicityStatus::Late,
        PublicityStatus::OnTime,
        PublicityStatus::Withheld,
        PublicityStatus::DeadlineUnknown,
    ];

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            PublicityStatus::OnTime => "on_time",
            PublicityStatus::Late => "late",
            PublicityStatus::Overdue => "overdue",
            PublicityStatus::Due => "due",
            PublicityStatus::Withheld => "withheld",
            PublicityStatus::DeadlineUnknown => "deadline_unknown",
        }
    }

    /// Parse an API name.
    pub fn parse(s: &str) -> Option<PublicityStatus> {
        PublicityStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The status of a penalty decided with `deadline`, made public on `published` (if it was),
    /// withheld (if it was), on `today`.
    pub fn of(
        deadline: Option<NaiveDate>,
        published: Option<NaiveDate>,
        withheld: bool,
        today: NaiveDate,
    ) -> PublicityStatus {
        match (published, deadline) {
            (Some(p), Some(d)) if p > d => PublicityStatus::Late,
            (Some(_), _) => PublicityStatus::OnTime,
            (None, _) if withheld => PublicityStatus::Withheld,
            (None, None) => PublicityStatus::DeadlineUnknown,
            (None, Some(d)) if today > d => PublicityStatus::Overdue,
            (None, Some(_)) => PublicityStatus::Due,
        }
    }
}

/// Which penalties to list.
#[derive(Debug, Clone, Default)]
pub struct PublicityFilter {
    /// Only this handling agency's (credit code).
    pub agency: Option<String>,
    /// Only penalties whose current version came from one of these sources (a department's scope).
    pub source_ids: Option<Vec<String>>,
    /// Only decisions on or after this day.
    pub decided_from: Option<NaiveDate>,
    /// Only decisions on or before this day.
    pub decided_to: Option<NaiveDate>,
    /// Only this status (on `today`).
    pub status: Option<PublicityStatus>,
    /// Skip this many.
    pub offset: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
}

/// A penalty and its publicity, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicityRow {
    /// Unified code.
    pub code: String,
    /// Handling agency's credit code.
    pub agency_credit_code: String,
    /// Its name.
    pub agency_name: String,
    /// The source of the current version.
    pub source_id: String,
    /// Current version.
    pub version: i32,
    /// Decision date.
    pub decision_date: NaiveDate,
    /// Last day to make it public on.
    pub deadline: Option<NaiveDate>,
    /// The publicity date the record gives.
    pub publicity_date: Option<NaiveDate>,
    /// When a publicity sink first delivered it.
    pub published_at: Option<DateTime<Utc>>,
    /// Which sink.
    pub published_sink: Option<String>,
    /// The day it became public: the earlier of the two.
    pub published_on: Option<NaiveDate>,
    /// Why a publicity sink withheld it.
    pub withheld_reason: Option<String>,
    /// Where it stands on the day asked about.
    pub status: PublicityStatus,
}

/// The penalties of one agency, counted per status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct AgencyPublicity {
    /// Handling agency's credit code.
    pub agency_credit_code: String,
    /// Its name (from its newest penalty).
    pub agency_name: String,
    /// Penalties (not withdrawn).
    pub decided: i64,
    /// Public by the deadline.
    pub on_time: i64,
    /// Public after it.
    pub late: i64,
    /// Not public, past the deadline.
    pub overdue: i64,
    /// Not public, deadline ahead.
    pub due: i64,
    /// Withheld by the publicity rules.
    pub withheld: i64,
    /// No deadline computable.
    pub deadline_unknown: i64,
}

impl AgencyPublicity {
    /// Count `n` penalties of `status`.
    pub fn add(&mut self, status: PublicityStatus, n: i64) {
        self.decided += n;
        *match status {
            PublicityStatus::OnTime => &mut self.on_time,
            PublicityStatus::Late => &mut self.late,
            PublicityStatus::Overdue => &mut self.overdue,
            PublicityStatus::Due => &mut self.due,
            PublicityStatus::Withheld => &mut self.withheld,
            PublicityStatus::DeadlineUnknown => &mut self.deadline_unknown,
        } += n;
    }
}

/// What a publicity sink did with a penalty's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicityMark {
    /// Delivered its public record.
    Published {
        /// Unified code.
        code: String,
        /// The sink.
        sink: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Withheld it, for this reason.
    Withheld {
        /// Unified code.
        code: String,
        /// Why (Chinese / English).
        reason: String,
    },
}

/// The day `at` falls on in China (UTC+8, no daylight saving).
pub fn china_day(at: DateTime<Utc>) -> NaiveDate {
    (at + chrono::Duration::hours(8)).date_naive()
}

/// Today in China.
pub fn china_today() -> NaiveDate {
    china_day(Utc::now())
}

/// Penalties and their publicity, in a store.
#[async_trait]
pub trait PublicityStore: Send + Sync {
    /// Every penalty the filter selects (not withdrawn), with its status on `today`, oldest
    /// decision first; the page asked for and the total.
    async fn publicity(&self, filter: &PublicityFilter, today: NaiveDate) -> StoreResult<(Vec<PublicityRow>, i64)>;

    /// The penalties of each agency counted per status on `today` (within the filter's agency,
    /// sources and decision dates; its status, offset and limit are not used).
    async fn publicity_by_agency(
        &self,
        filter: &PublicityFilter,
        today: NaiveDate,
    ) -> StoreResult<Vec<AgencyPublicity>>;

    /// Penalties not public, not withheld and past their deadline on `today`.
    async fn publicity_overdue(&self, today: NaiveDate) -> StoreResult<i64>;

    /// Record what publicity sinks did.
    async fn mark_publicity(&self, marks: &[PublicityMark]) -> StoreResult<()>;
}

/// The row a batch writes for one penalty case: its final state in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicityWrite<'a> {
    pub case_id: i64,
    /// The case is new in this batch: it has no row yet.
    pub new: bool,
    pub code: &'a str,
    pub agency_credit_code: &'a str,
    pub source_id: &'a str,
    pub version: i32,
    pub facts: &'a PenaltyFacts,
}

/// How a batch changes `penalty_publicity`: penalty cases whose new current version is a
/// withdrawal (to mark), and those whose new current version has a decision date (to write).
/// `case_ids` holds the case id of each of the plan's versions. A batch without penalties writes
/// nothing.
pub(crate) fn publicity_changes<'a>(
    records: &'a [IncomingRecord],
    plan: &'a Plan,
    case_ids: &[i64],
) -> (Vec<i64>, Vec<PublicityWrite<'a>>) {
    let is_penalty = |v: &super::plan::NewVersion| match &records[v.record_index].verdict {
        Verdict::Accept(a) => a.key.case_type.as_str() == "penalty",
        Verdict::Quarantine(_) => false,
    };
    if !plan.versions.iter().any(is_penalty) {
        return (Vec::new(), Vec::new());
    }
    let mut last: HashMap<i64, usize> = HashMap::new();
    for (vi, case_id) in case_ids.iter().enumerate().take(plan.versions.len()) {
        if is_penalty(&plan.versions[vi]) {
            last.insert(*case_id, vi);
        }
    }
    let mut order: Vec<(i64, usize)> = last.into_iter().collect();
    order.sort_unstable();
    let mut withdrawn = Vec::new();
    let mut write = Vec::new();
    for (case_id, vi) in order {
        let v = &plan.versions[vi];
        let record = &records[v.record_index];
        let Verdict::Accept(a) = &record.verdict else { continue };
        if v.withdrawn {
            if matches!(v.case, CaseRef::Existing(_)) {
                withdrawn.push(case_id);
            }
            continue;
        }
        if let Some(facts) = a.publicity.as_deref() {
            write.push(PublicityWrite {
                case_id,
                new: matches!(v.case, CaseRef::New(_)),
                code: &v.code,
                agency_credit_code: a.key.agency_credit_code.as_str(),
                source_id: &record.source_id,
                version: v.version,
                facts,
            });
        }
    }
    (withdrawn, write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn status_follows_publication_withholding_and_the_deadline() {
        let deadline = Some(day("2024-03-12"));
        let today = day("2024-03-20");
        let of = |published: Option<&str>, withheld| PublicityStatus::of(deadline, published.map(day), withheld, today);
        assert_eq!(of(Some("2024-03-12"), false), PublicityStatus::OnTime);
        assert_eq!(of(Some("2024-03-13"), false), PublicityStatus::Late);
        assert_eq!(of(Some("2024-03-13"), true), PublicityStatus::Late);
        assert_eq!(of(None, true), PublicityStatus::Withheld);
        assert_eq!(of(None, false), PublicityStatus::Overdue);
        assert_eq!(
            PublicityStatus::of(deadline, None, false, day("2024-03-12")),
            PublicityStatus::Due
        );
        assert_eq!(
            PublicityStatus::of(None, None, false, today),
            PublicityStatus::DeadlineUnknown
        );
        for s in PublicityStatus::ALL {
            assert_eq!(PublicityStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn penalty_facts_carry_the_deadline_and_the_china_day_is_utc_plus_eight() {
        let record = serde_json::json!({"case_type": "penalty", "agency": {"name": "某局"},
            "penalty": {"decision_date": "2024-03-01", "publicity_date": "2024-03-05"}});
        let facts = PenaltyFacts::of(&record).unwrap();
        assert_eq!(facts.deadline, Some(day("2024-03-12")));
        assert_eq!(facts.publicity_date, Some(day("2024-03-05")));
        assert_eq!(facts.agency_name, "某局");
        assert!(PenaltyFacts::of(&serde_json::json!({"case_type": "inspection"})).is_none());
        let late_evening: DateTime<Utc> = "2024-03-12T16:30:00Z".parse().unwrap();
        assert_eq!(china_day(late_evening), day("2024-03-13"));
    }
}

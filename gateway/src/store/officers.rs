//! The officer registry (执法人员名录) kept by the store: each agency's current list of
//! officers, and every load of it as a numbered version with what it added, removed and
//! changed. Every gateway instance on the store checks records against the same lists (see
//! [`crate::intake::officers`]). Both backends implement [`OfficerStore`].

use super::error::{StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use normalizer::officers::{Officer, OfficerStatus};
use serde::Serialize;
use std::collections::HashMap;

/// One officer as stored and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfficerRow {
    /// The agency's credit code.
    pub agency_credit_code: String,
    /// 执法证号 (normalised).
    pub cert_no: String,
    /// 姓名.
    pub name: String,
    /// First valid day.
    pub valid_from: Option<NaiveDate>,
    /// Last valid day.
    pub valid_to: Option<NaiveDate>,
    /// `active`, `suspended` or `revoked`.
    pub status: OfficerStatus,
    /// The registry version of the agency that last loaded it.
    pub version: i64,
}

impl OfficerRow {
    /// The normaliser's officer.
    pub fn to_officer(&self) -> Officer {
        Officer {
            name: self.name.clone(),
            cert_no: self.cert_no.clone(),
            agency_credit_code: self.agency_credit_code.clone(),
            valid_from: self.valid_from,
            valid_to: self.valid_to,
            status: self.status,
        }
    }
}

/// One load of an agency's registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryVersion {
    /// Store-wide id (increasing: the newest load has the highest).
    pub id: i64,
    /// The agency.
    pub agency_credit_code: String,
    /// The agency's version number (1, 2, ...).
    pub version: i64,
    /// When.
    pub loaded_at: DateTime<Utc>,
    /// Who (token name, `cli:<user>`, `source:<id>`).
    pub loaded_by: String,
    /// From what (file name, `api`, the registry source's id).
    pub origin: String,
    /// Officers in the list after the load.
    pub officers: i64,
    /// Certificates new in this version.
    pub added: i64,
    /// Certificates no longer listed.
    pub removed: i64,
    /// Certificates listed before with other details (name, validity, status).
    pub changed: i64,
}

/// A load: new lists of one or more agencies, each replacing the agency's current list.
#[derive(Debug, Clone)]
pub struct RegistryLoad {
    /// Who loads.
    pub actor: String,
    /// From what.
    pub origin: String,
    /// Each agency's new list (an empty list empties it).
    pub agencies: Vec<(String, Vec<Officer>)>,
}

impl RegistryLoad {
    /// Group officers by agency; `also` names agencies loaded even with nobody listed.
    pub fn grouped(actor: &str, origin: &str, officers: Vec<Officer>, also: Option<&str>) -> RegistryLoad {
        let mut by_agency: std::collections::BTreeMap<String, Vec<Officer>> = std::collections::BTreeMap::new();
        if let Some(a) = also {
            by_agency.entry(a.to_string()).or_default();
        }
        for o in officers {
            by_agency.entry(o.agency_credit_code.clone()).or_default().push(o);
        }
        RegistryLoad {
            actor: actor.to_string(),
            origin: origin.to_string(),
            agencies: by_agency.into_iter().collect(),
        }
    }
}

/// Which officers a list shows.
#[derive(Debug, Clone, Default)]
pub struct OfficerFilter {
    /// Only this agency.
    pub agency: Option<String>,
    /// Name or certificate number containing this.
    pub q: Option<String>,
    /// Only agencies in this scope (department tokens): (credit codes, region-code prefixes).
    pub scope: Option<(Vec<String>, Vec<String>)>,
    /// Skip this many.
    pub offset: i64,
    /// At most this many.
    pub limit: i64,
}

/// (added, removed, changed) from `old` to `new` by certificate number.
pub fn diff(old: &[OfficerRow], new: &[Officer]) -> (i64, i64, i64) {
    let before: HashMap<&str, &OfficerRow> = old.iter().map(|o| (o.cert_no.as_str(), o)).collect();
    let mut added = 0;
    let mut changed = 0;
    for n in new {
        match before.get(n.cert_no.as_str()) {
            None => added += 1,
            Some(o) => {
                if o.to_officer() != *n {
                    changed += 1;
                }
            }
        }
    }
    let now: std::collections::HashSet<&str> = new.iter().map(|o| o.cert_no.as_str()).collect();
    let removed = old.iter().filter(|o| !now.contains(o.cert_no.as_str())).count() as i64;
    (added, removed, changed)
}

/// A stored status name read back.
pub(crate) fn parse_status(s: &str) -> StoreResult<OfficerStatus> {
    s.parse()
        .map_err(|()| StoreError::Corrupt(format!("officer status {s:?}")))
}

/// A stored day read back.
pub(crate) fn parse_day(s: Option<String>) -> StoreResult<Option<NaiveDate>> {
    s.map(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|e| StoreError::Corrupt(format!("day {d:?}: {e}"))))
        .transpose()
}

/// The registry in a store.
#[async_trait]
pub trait OfficerStore: Send + Sync {
    /// Replace the lists of the load's agencies, each as a new version with its counts, in one
    /// transaction; answers the versions written.
    async fn officers_load(&self, load: &RegistryLoad) -> StoreResult<Vec<RegistryVersion>>;

    /// A page of officers (by agency and certificate) and how many the filter selects in all.
    async fn officers_list(&self, filter: &OfficerFilter) -> StoreResult<(Vec<OfficerRow>, i64)>;

    /// Every stored officer (to build the normaliser's registry) and the agencies with a
    /// loaded list (some may list nobody).
    async fn officers_all(&self) -> StoreResult<(Vec<OfficerRow>, Vec<String>)>;

    /// A page of versions, newest first (of one agency or of all), and how many in all.
    async fn officer_versions(
        &self,
        agency: Option<&str>,
        scope: Option<&(Vec<String>, Vec<String>)>,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<RegistryVersion>, i64)>;

    /// The id of the newest version (changes whenever any registry is loaded).
    async fn officers_stamp(&self) -> StoreResult<Option<i64>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn officer(cert: &str, name: &str) -> Officer {
        Officer {
            name: name.into(),
            cert_no: cert.into(),
            agency_credit_code: "11360100014523152U".into(),
            valid_from: None,
            valid_to: None,
            status: OfficerStatus::Active,
        }
    }

    #[test]
    fn a_diff_counts_new_gone_and_changed_certificates() {
        let old: Vec<OfficerRow> = [officer("A1", "张三"), officer("A2", "李四"), officer("A3", "王五")]
            .into_iter()
            .map(|o| OfficerRow {
                agency_credit_code: o.agency_credit_code,
                cert_no: o.cert_no,
                name: o.name,
                valid_from: None,
                valid_to: None,
                status: o.status,
                version: 1,
            })
            .collect();
        let new = vec![officer("A1", "张三"), officer("A2", "李四四"), officer("A4", "赵六")];
        assert_eq!(diff(&old, &new), (1, 1, 1));
    }
}

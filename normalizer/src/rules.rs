//! Cross-field rules: what a JSON Schema cannot say. Every rule here has a stable id
//! (`rule.*`), reads only fields the schema already typed, and skips silently what is
//! absent or malformed (the schema reports that).

use crate::schema::value_text;
use crate::standards::credit_code::CreditCode;
pub(crate) use crate::standards::parse_iso_date;
use crate::standards::region::RegionTable;
use crate::standards::working_days::HolidayCalendar;
use crate::Violation;
use chrono::{Datelike, NaiveDate};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashSet;

pub use crate::catalogue::{Catalogue, CatalogueError};

/// Settings of the rules.
#[derive(Debug, Clone, Default)]
pub struct RuleOptions {
    /// Province the gateway serves: the agency's region code must start with this (e.g. `36`).
    pub agency_region_prefix: Option<String>,
    /// The supervision-item catalogue, when loaded.
    pub catalogue: Option<Catalogue>,
    /// The officer registry (执法人员名录) and the severity of its findings; the officer rules
    /// run only when it is given (see [`crate::officers`]).
    pub officers: Option<crate::officers::OfficerRules>,
    /// Domains (领域) of catalogue items whose inspections need no random-selection plan
    /// (`rule.inspection_without_plan` is not raised); an item's domain matches when it contains
    /// one of these.
    pub exempt_domains: Vec<String>,
    /// The inspection plans the gateway holds, for `rule.plan_unknown` (not checked without).
    pub known_plans: Option<std::sync::Arc<crate::plans::KnownPlans>>,
    /// How `rule.plan_unknown` treats an inspection naming a plan not in `known_plans`.
    pub plan_unknown: crate::plans::PlanCheck,
    /// Values departments supplied for fields their sources cannot (待补录): they fill the same
    /// gap in re-sent records of the case.
    pub supplied: Option<std::sync::Arc<crate::supplement::SuppliedValues>>,
}

/// Every field the rules read. A look-up in `serde_json`'s B-tree map compares the key with up
/// to a dozen others; [`Rec::new`] instead walks each object once and files the fields it meets.
/// The rules name a field by its [`F`], whose number is its position here.
const FIELDS: [&str; 24] = [
    "/case_type",
    "/case_source",
    "/item_code",
    "/implementation_list_code",
    "/closing_date",
    "/archive_date",
    "/officers",
    "/agency/credit_code",
    "/agency/region_code",
    "/entrusted_agency/credit_code",
    "/target/kind",
    "/target/id_type",
    "/penalty/filing_date",
    "/penalty/decision_date",
    "/penalty/publicity_until",
    "/penalty/publicity_date",
    "/penalty/kinds",
    "/penalty/fine_amount",
    "/penalty/confiscation_amount",
    "/coercion/start_date",
    "/coercion/end_date",
    "/inspection/check_date",
    "/inspection/plan_id",
    "/inspection/form",
];

/// A field of [`FIELDS`], named where a rule reads it (no pointer text to look up per record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum F {
    CaseType,
    CaseSource,
    ItemCode,
    ImplementationListCode,
    ClosingDate,
    ArchiveDate,
    Officers,
    AgencyCreditCode,
    AgencyRegionCode,
    EntrustedCreditCode,
    TargetKind,
    TargetIdType,
    PenaltyFilingDate,
    PenaltyDecisionDate,
    PenaltyPublicityUntil,
    PenaltyPublicityDate,
    PenaltyKinds,
    PenaltyFineAmount,
    PenaltyConfiscationAmount,
    CoercionStartDate,
    CoercionEndDate,
    InspectionCheckDate,
    InspectionPlanId,
    InspectionForm,
}

impl F {
    /// The field's JSON pointer, for messages.
    fn pointer(self) -> &'static str {
        FIELDS[self as usize]
    }
}

/// The field `key` of the record's top level.
fn root_field(key: &str) -> Option<F> {
    Some(match key {
        "case_type" => F::CaseType,
        "case_source" => F::CaseSource,
        "item_code" => F::ItemCode,
        "implementation_list_code" => F::ImplementationListCode,
        "closing_date" => F::ClosingDate,
        "archive_date" => F::ArchiveDate,
        "officers" => F::Officers,
        _ => return None,
    })
}

/// The top-level objects holding fields of [`FIELDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parent {
    Agency,
    EntrustedAgency,
    Target,
    Penalty,
    Coercion,
    Inspection,
}

fn parent(key: &str) -> Option<Parent> {
    Some(match key {
        "agency" => Parent::Agency,
        "entrusted_agency" => Parent::EntrustedAgency,
        "target" => Parent::Target,
        "penalty" => Parent::Penalty,
        "coercion" => Parent::Coercion,
        "inspection" => Parent::Inspection,
        _ => return None,
    })
}

/// The field `key` of the top-level object `parent`.
fn child_field(parent: Parent, key: &str) -> Option<F> {
    Some(match parent {
        Parent::Agency => match key {
            "credit_code" => F::AgencyCreditCode,
            "region_code" => F::AgencyRegionCode,
            _ => return None,
        },
        Parent::EntrustedAgency => match key {
            "credit_code" => F::EntrustedCreditCode,
            _ => return None,
        },
        Parent::Target => match key {
            "kind" => F::TargetKind,
            "id_type" => F::TargetIdType,
            _ => return None,
        },
        Parent::Penalty => match key {
            "filing_date" => F::PenaltyFilingDate,
            "decision_date" => F::PenaltyDecisionDate,
            "publicity_until" => F::PenaltyPublicityUntil,
            "publicity_date" => F::PenaltyPublicityDate,
            "kinds" => F::PenaltyKinds,
            "fine_amount" => F::PenaltyFineAmount,
            "confiscation_amount" => F::PenaltyConfiscationAmount,
            _ => return None,
        },
        Parent::Coercion => match key {
            "start_date" => F::CoercionStartDate,
            "end_date" => F::CoercionEndDate,
            _ => return None,
        },
        Parent::Inspection => match key {
            "check_date" => F::InspectionCheckDate,
            "plan_id" => F::InspectionPlanId,
            "form" => F::InspectionForm,
            _ => return None,
        },
    })
}

/// A canonical record being checked, with the value of each of [`FIELDS`] found in one pass.
struct Rec<'r> {
    values: [Option<&'r Value>; FIELDS.len()],
}

impl<'r> Rec<'r> {
    fn new(root: &'r Value) -> Self {
        let mut values = [None; FIELDS.len()];
        if let Value::Object(map) = root {
            for (key, value) in map {
                match parent(key) {
                    None => {
                        if let Some(f) = root_field(key) {
                            values[f as usize] = Some(value);
                        }
                    }
                    Some(p) => {
                        if let Value::Object(inner) = value {
                            for (child, v) in inner {
                                if let Some(f) = child_field(p, child) {
                                    values[f as usize] = Some(v);
                                }
                            }
                        }
                    }
                }
            }
        }
        Rec { values }
    }

    /// The value of field `f`.
    fn at(&self, f: F) -> Option<&'r Value> {
        self.values[f as usize]
    }

    /// The text of field `f`.
    fn text(&self, f: F) -> Option<&'r str> {
        self.at(f).and_then(Value::as_str)
    }
}

/// The dates of one record, each parsed once however many rules compare it.
struct Dates<'a, 'r> {
    record: &'a Rec<'r>,
    parsed: [Option<Option<NaiveDate>>; FIELDS.len()],
}

impl<'a, 'r> Dates<'a, 'r> {
    fn new(record: &'a Rec<'r>) -> Self {
        Dates {
            record,
            parsed: [None; FIELDS.len()],
        }
    }

    fn get(&mut self, f: F) -> Option<NaiveDate> {
        let record = self.record;
        *self.parsed[f as usize].get_or_insert_with(|| record.text(f).and_then(parse_iso_date))
    }
}

/// (earlier, later, Chinese name of the pair): `later` must not be before `earlier`.
const DATE_ORDER: &[(F, F, &str)] = &[
    (
        F::PenaltyFilingDate,
        F::PenaltyDecisionDate,
        "处罚决定日期不能早于立案日期",
    ),
    (
        F::CoercionStartDate,
        F::CoercionEndDate,
        "强制措施结束日期不能早于起始日期",
    ),
    (F::InspectionCheckDate, F::ClosingDate, "结案日期不能早于检查日期"),
    (F::PenaltyDecisionDate, F::ClosingDate, "结案日期不能早于处罚决定日期"),
    (F::CoercionStartDate, F::ClosingDate, "结案日期不能早于强制措施起始日期"),
    (F::ClosingDate, F::ArchiveDate, "归档日期不能早于结案日期"),
    (
        F::PenaltyDecisionDate,
        F::PenaltyPublicityUntil,
        "公示截止期不能早于处罚决定日期",
    ),
    (
        F::PenaltyDecisionDate,
        F::PenaltyPublicityDate,
        "公示日期不能早于处罚决定日期",
    ),
];

/// Run every cross-field rule on a canonical (non-delete) record.
pub fn check(record: &Value, options: &RuleOptions) -> Vec<Violation> {
    let mut out = Vec::new();
    if record.get("case_type").and_then(Value::as_str) == Some("plan") {
        crate::plans::check_plan(record, &mut out);
    }
    let record = &Rec::new(record);
    let mut dates = Dates::new(record);
    date_order(&mut dates, &mut out);
    target_identifier_matches_kind(record, &mut out);
    agency_region(record, options, &mut out);
    officers_distinct(record, &mut out);
    catalogue(record, options, &mut out);
    archive_deadline(&mut dates, &mut out);
    publicity_deadline(&mut dates, &mut out);
    penalty_amounts(record, &mut out);
    inspection_plan(record, options, &mut out);
    plan_reference(record, options, &mut out);
    implementation_list(record, &mut out);
    officers(record, options, &mut dates, &mut out);
    out
}

fn date_order(dates: &mut Dates<'_, '_>, out: &mut Vec<Violation>) {
    for &(earlier, later, zh) in DATE_ORDER {
        if let (Some(a), Some(b)) = (dates.get(earlier), dates.get(later)) {
            if b < a {
                let (earlier, later) = (earlier.pointer(), later.pointer());
                out.push(Violation::error(
                    later,
                    "rule.date_order",
                    Some(b.to_string()),
                    format!("{zh}：{later} = {b}，{earlier} = {a}"),
                    format!("{later} ({b}) is before {earlier} ({a})"),
                ));
            }
        }
    }
}

fn target_identifier_matches_kind(record: &Rec<'_>, out: &mut Vec<Violation>) {
    let (Some(kind), Some(id_type)) = (record.text(F::TargetKind), record.text(F::TargetIdType)) else {
        return;
    };
    let allowed: &[&str] = match kind {
        "legal_person" => &["uscc"],
        "natural_person" => &[
            "resident_id",
            "passport",
            "hk_macao_permit",
            "taiwan_permit",
            "foreign_permanent_resident",
            "other",
        ],
        "individual_business" => &["uscc", "resident_id"],
        _ => return,
    };
    if !allowed.contains(&id_type) {
        out.push(Violation::error(
            "/target/id_type",
            "rule.target_id_kind",
            Some(id_type.to_string()),
            format!(
                "行政相对人类别为 {kind} 时，证件类型不能是 {id_type}（允许：{}）",
                allowed.join("、")
            ),
            format!(
                "a target of kind {kind} cannot be identified by {id_type} (allowed: {})",
                allowed.join(", ")
            ),
        ));
    }
}

fn agency_region(record: &Rec<'_>, options: &RuleOptions, out: &mut Vec<Violation>) {
    let Some(region) = record.text(F::AgencyRegionCode) else {
        return;
    };
    if let Some(prefix) = &options.agency_region_prefix {
        if !region.starts_with(prefix.as_str()) {
            out.push(Violation::error(
                "/agency/region_code",
                "rule.agency_region_province",
                Some(region.to_string()),
                format!("执法部门行政区划代码 {region} 不属于本省（应以 {prefix} 开头）"),
                format!("agency region code {region} is outside this province (must start with {prefix})"),
            ));
        }
    }
    let Some(credit_code) = record.text(F::AgencyCreditCode) else {
        return;
    };
    // Usually the code is valid and normalised already (the schema insists on it): then its
    // region is read in place; otherwise it is parsed as before.
    let parsed;
    let code_region = if CreditCode::is_valid_normalised(credit_code) {
        &credit_code[2..8]
    } else {
        match CreditCode::parse(credit_code) {
            Ok(code) => {
                parsed = code;
                parsed.region_code()
            }
            Err(_) => return,
        }
    };
    if code_region == region {
        return;
    }
    let table = RegionTable::embedded();
    let same_city = code_region.get(..4) == region.get(..4);
    if !table.is_current(code_region) && same_city {
        out.push(Violation::warning(
            "/agency/region_code",
            "rule.agency_region_revoked",
            Some(region.to_string()),
            format!(
                "执法部门统一社会信用代码中的登记机关区划 {code_region} 已撤销，与填报的行政区划代码 {region} 同属一个地级市，请核实"
            ),
            format!(
                "the credit code's region {code_region} is revoked and in the same city as the agency region {region}: please confirm"
            ),
        ));
    } else {
        out.push(Violation::error(
            "/agency/region_code",
            "rule.agency_region_mismatch",
            Some(region.to_string()),
            format!("执法部门行政区划代码 {region} 与其统一社会信用代码第3-8位 {code_region} 不一致"),
            format!("agency region code {region} differs from positions 3-8 of its credit code ({code_region})"),
        ));
    }
}

fn officers_distinct(record: &Rec<'_>, out: &mut Vec<Violation>) {
    let Some(officers) = record.at(F::Officers).and_then(Value::as_array) else {
        return;
    };
    // A record names a handful of officers: a linear scan beats hashing them.
    let mut seen: Vec<Cow<'_, str>> = Vec::with_capacity(officers.len().min(16));
    let mut seen_many: HashSet<Cow<'_, str>> = HashSet::new();
    for (i, officer) in officers.iter().enumerate() {
        let Some(cert) = officer.get("cert_no").and_then(Value::as_str) else {
            continue;
        };
        let key = crate::standards::normalise::normalise_identifier_cow(cert);
        let fresh = if officers.len() <= 16 {
            let fresh = !seen.contains(&key);
            if fresh {
                seen.push(key);
            }
            fresh
        } else {
            seen_many.insert(key)
        };
        if !fresh {
            out.push(Violation::error(
                format!("/officers/{i}/cert_no"),
                "rule.officers_distinct",
                Some(cert.to_string()),
                format!("执法人员重复：执法证号 {cert} 出现多次，至少需要两名不同的执法人员"),
                format!("officer with certificate {cert} is listed twice: at least two distinct officers are required"),
            ));
        }
    }
}

fn catalogue(record: &Rec<'_>, options: &RuleOptions, out: &mut Vec<Violation>) {
    let Some(catalogue) = &options.catalogue else { return };
    if record.text(F::CaseType) != Some("inspection") {
        return;
    }
    let (Some(item), Some(day)) = (
        record.text(F::ItemCode),
        record.text(F::InspectionCheckDate).and_then(parse_iso_date),
    ) else {
        return;
    };
    match catalogue.version_for(day.year()) {
        Some((_, items)) if items.contains(item) => {}
        Some((year, _)) => out.push(Violation::error(
            "/item_code",
            "rule.item_not_in_catalogue",
            Some(item.to_string()),
            format!("监管事项 {item} 不在 {year} 年度监管事项目录清单内（清单之外无检查）"),
            format!("supervision item {item} is not in the {year} supervision-item catalogue (no inspection outside the list)"),
        )),
        None => out.push(Violation::warning(
            "/item_code",
            "rule.catalogue_missing_year",
            Some(item.to_string()),
            format!("没有 {} 年度或更早的监管事项目录清单，无法核对监管事项 {item}", day.year()),
            format!("no supervision-item catalogue for {} or earlier is loaded: item {item} not checked", day.year()),
        )),
    }
}

fn archive_deadline(dates: &mut Dates<'_, '_>, out: &mut Vec<Violation>) {
    let (Some(closed), Some(archived)) = (dates.get(F::ClosingDate), dates.get(F::ArchiveDate)) else {
        return;
    };
    match HolidayCalendar::embedded().archive_deadline(closed) {
        Ok(deadline) if archived > deadline => out.push(Violation::warning(
            "/archive_date",
            "rule.archive_overdue",
            Some(archived.to_string()),
            format!("结案日期 {closed} 后应在15个工作日内（{deadline} 前）立卷归档，实际归档日期 {archived}"),
            format!(
                "archived on {archived}, after the 15-working-day deadline {deadline} following closure on {closed}"
            ),
        )),
        Ok(_) => {}
        Err(e) => out.push(Violation::warning(
            "/archive_date",
            "rule.archive_deadline_unknown",
            Some(archived.to_string()),
            format!("无法计算归档期限：{e}"),
            format!("archive deadline cannot be computed: {e}"),
        )),
    }
}

/// 双公示: a penalty should be public within 7 working days of its decision.
fn publicity_deadline(dates: &mut Dates<'_, '_>, out: &mut Vec<Violation>) {
    let (Some(decided), Some(published)) = (dates.get(F::PenaltyDecisionDate), dates.get(F::PenaltyPublicityDate))
    else {
        return;
    };
    if let Ok(deadline) = crate::publicity::publicity_deadline(decided) {
        if published > deadline {
            let days = crate::publicity::PUBLICITY_WORKING_DAYS;
            out.push(Violation::warning(
                "/penalty/publicity_date",
                "rule.publicity_overdue",
                Some(published.to_string()),
                format!("处罚决定日期 {decided} 后应在{days}个工作日内（{deadline} 前）公示，实际公示日期 {published}"),
                format!(
                    "made public on {published}, after the {days}-working-day deadline {deadline} following the decision on {decided}"
                ),
            ));
        }
    }
}

fn penalty_amounts(record: &Rec<'_>, out: &mut Vec<Violation>) {
    let Some(kinds) = record.at(F::PenaltyKinds).and_then(Value::as_array) else {
        return;
    };
    let has = |k: &str| kinds.iter().any(|v| v.as_str() == Some(k));
    let positive = |f: F| record.at(f).and_then(Value::as_f64).is_some_and(|x| x > 0.0);
    if has("fine") && !positive(F::PenaltyFineAmount) {
        out.push(Violation::error(
            "/penalty/fine_amount",
            "rule.fine_amount_missing",
            record.at(F::PenaltyFineAmount).map(value_text),
            "处罚种类含罚款，但罚款金额缺失或为零",
            "the penalty includes a fine but the fine amount is missing or zero",
        ));
    }
    if (has("confiscate_illegal_gains") || has("confiscate_illegal_property"))
        && !positive(F::PenaltyConfiscationAmount)
    {
        out.push(Violation::warning(
            "/penalty/confiscation_amount",
            "rule.confiscation_amount_missing",
            record.at(F::PenaltyConfiscationAmount).map(value_text),
            "处罚种类含没收，但没收金额缺失或为零",
            "the penalty includes a confiscation but its amount is missing or zero",
        ));
    }
}

fn inspection_plan(record: &Rec<'_>, options: &RuleOptions, out: &mut Vec<Violation>) {
    if record.text(F::CaseType) != Some("inspection") {
        return;
    }
    let has_plan = record.text(F::InspectionPlanId).is_some_and(|s| !s.trim().is_empty());
    let form = record.text(F::InspectionForm);
    let source = record.text(F::CaseSource);
    if form == Some("random") && !has_plan {
        out.push(Violation::error(
            "/inspection/plan_id",
            "rule.random_inspection_without_plan",
            None,
            "双随机抽查必须关联抽查计划ID",
            "a random (双随机) inspection must name its random-selection plan",
        ));
    } else if !has_plan
        && !matches!(form, Some("special") | Some("targeted"))
        && !in_exempt_domain(record, options)
        && !matches!(source, Some("complaint") | Some("referral") | Some("data_monitoring"))
    {
        out.push(Violation::warning(
            "/inspection/plan_id",
            "rule.inspection_without_plan",
            None,
            "行政检查原则上应采用“双随机、一公开”模式：未关联抽查计划，且不是投诉举报、转办交办、数据监测等针对性检查",
            "inspections should follow the random-selection model: this one names no plan and is not a targeted check (complaint, referral, data monitoring)",
        ));
    }
}

/// True when the inspection's item is in a domain exempt from the random-selection model
/// (notice 二: 疫苗、食品药品、特种设备、医疗器械、危化品…), by the catalogue of its year.
fn in_exempt_domain(record: &Rec<'_>, options: &RuleOptions) -> bool {
    let (Some(catalogue), Some(item), Some(day)) = (
        &options.catalogue,
        record.text(F::ItemCode),
        record.text(F::InspectionCheckDate).and_then(parse_iso_date),
    ) else {
        return false;
    };
    catalogue.domain_of(day.year(), item).is_some_and(|domain| {
        options
            .exempt_domains
            .iter()
            .any(|d| !d.is_empty() && domain.contains(d.as_str()))
    })
}

/// The officer registry rules (`rule.officer_*`, see [`crate::officers`]) on the action date.
fn officers(record: &Rec<'_>, options: &RuleOptions, dates: &mut Dates<'_, '_>, out: &mut Vec<Violation>) {
    let Some(rules) = &options.officers else { return };
    let candidates: &[F] = match record.text(F::CaseType) {
        Some("inspection") => &[F::InspectionCheckDate],
        Some("penalty") => &[F::PenaltyDecisionDate, F::PenaltyFilingDate],
        Some("coercion") => &[F::CoercionStartDate],
        _ => &[],
    };
    let (action_date, date_field) = candidates
        .iter()
        .find_map(|&f| dates.get(f).map(|d| (Some(d), f.pointer())))
        .unwrap_or((None, ""));
    let facts = crate::officers::OfficerFacts {
        officers: record.at(F::Officers),
        agency: record.text(F::AgencyCreditCode),
        entrusted: record.text(F::EntrustedCreditCode),
        action_date,
        date_field,
    };
    crate::officers::check(&facts, rules, out);
}

fn plan_reference(record: &Rec<'_>, options: &RuleOptions, out: &mut Vec<Violation>) {
    if record.text(F::CaseType) != Some("inspection") {
        return;
    }
    if let Some(plan_id) = record.text(F::InspectionPlanId) {
        crate::plans::check_plan_reference(plan_id, options.known_plans.as_deref(), options.plan_unknown, out);
    }
}

fn implementation_list(record: &Rec<'_>, out: &mut Vec<Violation>) {
    let (Some(list), Some(agency)) = (record.text(F::ImplementationListCode), record.text(F::AgencyCreditCode)) else {
        return;
    };
    let entrusted = record.text(F::EntrustedCreditCode);
    let prefix = list.get(..18);
    if prefix.is_some() && prefix != Some(agency) && prefix != entrusted {
        out.push(Violation::warning(
            "/implementation_list_code",
            "rule.implementation_list_agency",
            Some(list.to_string()),
            format!("检查实施清单编码前18位应为实施机构的统一社会信用代码 {agency}"),
            format!("positions 1-18 of the implementation-list code should be the implementing agency's credit code {agency}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL_FIELDS: [F; FIELDS.len()] = [
        F::CaseType,
        F::CaseSource,
        F::ItemCode,
        F::ImplementationListCode,
        F::ClosingDate,
        F::ArchiveDate,
        F::Officers,
        F::AgencyCreditCode,
        F::AgencyRegionCode,
        F::EntrustedCreditCode,
        F::TargetKind,
        F::TargetIdType,
        F::PenaltyFilingDate,
        F::PenaltyDecisionDate,
        F::PenaltyPublicityUntil,
        F::PenaltyPublicityDate,
        F::PenaltyKinds,
        F::PenaltyFineAmount,
        F::PenaltyConfiscationAmount,
        F::CoercionStartDate,
        F::CoercionEndDate,
        F::InspectionCheckDate,
        F::InspectionPlanId,
        F::InspectionForm,
    ];

    #[test]
    fn field_table_and_key_matches_agree() {
        for (i, f) in ALL_FIELDS.into_iter().enumerate() {
            assert_eq!(f as usize, i, "{f:?}");
            let pointer = f.pointer();
            let segments: Vec<&str> = pointer[1..].split('/').collect();
            let found = match segments[..] {
                [key] => {
                    assert_eq!(parent(key), None, "{pointer}");
                    root_field(key)
                }
                [p, key] => child_field(parent(p).unwrap_or_else(|| panic!("{pointer}")), key),
                _ => None,
            };
            assert_eq!(found, Some(f), "{pointer}");
        }
        assert_eq!(child_field(Parent::Agency, "name"), None);
    }

    #[test]
    fn collected_fields_are_what_the_pointers_select() {
        let record = json!({
            "case_type": "penalty", "closing_date": "2021-02-08", "officers": [{"cert_no": "1"}],
            "agency": {"credit_code": "11360100014523152U", "region_code": "360100", "name": "x"},
            "target": "not an object", "penalty": {"kinds": ["fine"], "fine_amount": 2000},
            "inspection": [{"form": "random"}], "unknown": {"form": 1}
        });
        let rec = Rec::new(&record);
        for f in ALL_FIELDS {
            assert_eq!(rec.at(f), record.pointer(f.pointer()), "{f:?}");
        }
        for s in [
            "2021-02-08",
            "2021-2-8",
            "2020-02-29",
            "2021-02-29",
            "20210208",
            "2021-02-08 ",
        ] {
            assert_eq!(parse_iso_date(s), NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(), "{s}");
        }
    }
    #[test]
    fn an_inspection_without_plan_in_an_exempt_domain_is_not_flagged() {
        let catalogue = Catalogue::from_csv(
            "year,item_code,name,domain\n2024,36010000100013,食品经营监督检查,食品药品安全\n2024,36010000100012,价格监督检查,市场监管\n",
        )
        .unwrap();
        let options = RuleOptions {
            catalogue: Some(catalogue),
            exempt_domains: crate::catalogue::DEFAULT_EXEMPT_DOMAINS
                .iter()
                .map(|d| d.to_string())
                .collect(),
            ..RuleOptions::default()
        };
        let record = |item: &str| {
            json!({"case_type": "inspection", "item_code": item, "case_source": "other",
                   "inspection": {"check_date": "2024-05-01", "form": "routine"}})
        };
        let rules_of = |v: Vec<Violation>| v.into_iter().map(|v| v.rule).collect::<Vec<_>>();
        assert!(
            !rules_of(check(&record("36010000100013"), &options)).contains(&"rule.inspection_without_plan".to_string())
        );
        assert!(
            rules_of(check(&record("36010000100012"), &options)).contains(&"rule.inspection_without_plan".to_string())
        );
        let no_exemptions = RuleOptions {
            exempt_domains: Vec::new(),
            ..options.clone()
        };
        assert!(rules_of(check(&record("36010000100013"), &no_exemptions))
            .contains(&"rule.inspection_without_plan".to_string()));
        let mut random = record("36010000100013");
        random["inspection"]["form"] = json!("random");
        assert!(
            rules_of(check(&random, &options)).contains(&"rule.random_inspection_without_plan".to_string()),
            "a random inspection still needs its plan"
        );
    }

    #[test]
    fn officer_rules_read_the_action_date_of_each_case_type() {
        use crate::officers::{Officer, OfficerRegistry, OfficerRules, OfficerSeverity, OfficerStatus};
        let agency = "11360100014523152U";
        let registry = OfficerRegistry::from_officers([Officer {
            name: "张三".into(),
            cert_no: "JX0001".into(),
            agency_credit_code: agency.into(),
            valid_from: NaiveDate::from_ymd_opt(2023, 1, 1),
            valid_to: NaiveDate::from_ymd_opt(2024, 6, 30),
            status: OfficerStatus::Active,
        }]);
        let options = RuleOptions {
            officers: Some(OfficerRules {
                registry: std::sync::Arc::new(registry),
                severity: OfficerSeverity::Auto,
            }),
            ..RuleOptions::default()
        };
        let officers = json!([{"name": "张三", "cert_no": "JX0001"}]);
        let penalty = |decided: &str| {
            json!({"case_type": "penalty", "agency": {"credit_code": agency}, "officers": officers,
                   "penalty": {"filing_date": "2024-06-01", "decision_date": decided}})
        };
        let officer_rules = |v: Vec<Violation>| {
            v.into_iter()
                .filter(|v| v.rule.starts_with("rule.officer"))
                .collect::<Vec<_>>()
        };
        assert!(officer_rules(check(&penalty("2024-06-30"), &options)).is_empty());
        let v = officer_rules(check(&penalty("2024-07-01"), &options));
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message_zh.contains("/penalty/decision_date"),
            "{}",
            v[0].message_zh
        );
        let coercion = json!({"case_type": "coercion", "agency": {"credit_code": agency}, "officers": officers,
                              "coercion": {"start_date": "2022-12-31"}});
        assert_eq!(
            officer_rules(check(&coercion, &options))[0].rule,
            "rule.officer_certificate_invalid"
        );
        assert!(
            officer_rules(check(&coercion, &RuleOptions::default())).is_empty(),
            "no registry configured: no officer rule"
        );
    }

    #[test]
    fn a_penalty_made_public_after_seven_working_days_is_flagged() {
        let penalty = |published: &str| {
            json!({"case_type": "penalty",
                   "penalty": {"decision_date": "2024-03-01", "publicity_date": published}})
        };
        let publicity = |v: Vec<Violation>| {
            v.into_iter()
                .filter(|v| v.rule == "rule.publicity_overdue")
                .collect::<Vec<_>>()
        };
        assert!(publicity(check(&penalty("2024-03-12"), &RuleOptions::default())).is_empty());
        let late = publicity(check(&penalty("2024-03-13"), &RuleOptions::default()));
        assert_eq!(late.len(), 1);
        assert!(!late[0].is_error());
        assert!(late[0].message_zh.contains("2024-03-12"), "{}", late[0].message_zh);
        let before = check(&penalty("2024-02-28"), &RuleOptions::default());
        assert!(before
            .iter()
            .any(|v| v.rule == "rule.date_order" && v.pointer == "/penalty/publicity_date"));
    }
}

//! Inspection plans (检查计划, notice 二): the deadlines and sampling rules on a plan record, and
//! whether the plan a 双随机 inspection names is known to the gateway.
//!
//! - An annual plan (年度计划) is filed with the same-level government by the end of February of
//!   its year (`rule.plan_filed_late`, `rule.plan_not_filed`) and entered into the platform by
//!   30 March (`rule.plan_entered_late`).
//! - A special plan (专项计划) states its sampling ratio, a number in (0, 1]
//!   (`rule.special_plan_ratio`).
//! - An inspection naming a plan (`/inspection/plan_id`) the gateway has not received is
//!   flagged (`rule.plan_unknown`), with the severity the deployment chooses ([`PlanCheck`]).

use crate::standards::normalise::normalise_identifier;
use crate::standards::parse_iso_date;
use crate::Violation;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::RwLock;

/// How `rule.plan_unknown` treats an inspection whose plan the gateway does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanCheck {
    /// Not checked.
    Off,
    /// Not checked while the gateway knows no plan at all (plans are not fed to it); a warning
    /// once it knows any.
    #[default]
    Auto,
    /// Always a warning: the record is committed and flagged.
    Warning,
    /// An error: the record is quarantined until its plan arrives (then replay it).
    Error,
}

/// The plan numbers the gateway holds (current, not withdrawn), normalised as identifiers:
/// shared between the store, which fills it, and the rules, which read it.
#[derive(Debug, Default)]
pub struct KnownPlans {
    numbers: RwLock<HashSet<String>>,
}

impl KnownPlans {
    /// An empty set.
    pub fn new() -> KnownPlans {
        KnownPlans::default()
    }

    /// Replace the whole set with `numbers` (as stored; normalised here).
    pub fn replace_all<I: IntoIterator<Item = S>, S: AsRef<str>>(&self, numbers: I) {
        let set: HashSet<String> = numbers.into_iter().map(|n| normalise_identifier(n.as_ref())).collect();
        if let Ok(mut guard) = self.numbers.write() {
            *guard = set;
        }
    }

    /// Add plan numbers (e.g. those a batch just committed).
    pub fn insert_all<I: IntoIterator<Item = S>, S: AsRef<str>>(&self, numbers: I) {
        if let Ok(mut guard) = self.numbers.write() {
            guard.extend(numbers.into_iter().map(|n| normalise_identifier(n.as_ref())));
        }
    }

    /// Whether the plan numbered `number` is known.
    pub fn contains(&self, number: &str) -> bool {
        self.numbers
            .read()
            .map(|set| set.contains(&normalise_identifier(number)))
            .unwrap_or(false)
    }

    /// How many plans are known.
    pub fn len(&self) -> usize {
        self.numbers.read().map(|set| set.len()).unwrap_or(0)
    }

    /// True when no plan is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The last day of February of `year`: annual plans are filed with the government by then.
pub fn filing_deadline(year: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, 3, 1).and_then(|d| d.pred_opt())
}

/// 30 March of `year`: annual plans are entered into the platform by then.
pub fn entry_deadline(year: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, 3, 30)
}

fn date_at(record: &Value, pointer: &str) -> Option<NaiveDate> {
    record.pointer(pointer).and_then(Value::as_str).and_then(parse_iso_date)
}

/// The rules on a plan record (`case_type` = `plan`).
pub(crate) fn check_plan(record: &Value, out: &mut Vec<Violation>) {
    let Some(plan) = record.get("plan") else { return };
    let kind = plan.get("kind").and_then(Value::as_str);
    let year = plan
        .get("year")
        .and_then(Value::as_i64)
        .and_then(|y| i32::try_from(y).ok());
    let number = record.get("case_number").and_then(Value::as_str).unwrap_or_default();
    if let (Some("annual"), Some(year)) = (kind, year) {
        annual_deadlines(record, number, year, out);
    }
    sampling_ratio(plan, kind, number, out);
    if let (Some(start), Some(end)) = (date_at(record, "/plan/start_date"), date_at(record, "/plan/end_date")) {
        if end < start {
            out.push(Violation::error(
                "/plan/end_date",
                "rule.date_order",
                Some(end.to_string()),
                format!("计划结束日期不能早于开始日期：/plan/end_date = {end}，/plan/start_date = {start}"),
                format!("/plan/end_date ({end}) is before /plan/start_date ({start})"),
            ));
        }
    }
}

fn annual_deadlines(record: &Value, number: &str, year: i32, out: &mut Vec<Violation>) {
    if let Some(deadline) = filing_deadline(year) {
        match date_at(record, "/plan/filing_date") {
            Some(filed) if filed > deadline => out.push(Violation::warning(
                "/plan/filing_date",
                "rule.plan_filed_late",
                Some(filed.to_string()),
                format!(
                    "年度计划 {number} 应于 {deadline}（{year}年2月底）前报送同级人民政府备案，实际备案日期 {filed}"
                ),
                format!(
                    "annual plan {number} should be filed with the government by {deadline} (end of February {year}); it was filed on {filed}"
                ),
            )),
            Some(_) => {}
            None if record.pointer("/plan/filing_date").is_none() => out.push(Violation::warning(
                "/plan/filing_date",
                "rule.plan_not_filed",
                None,
                format!("年度计划 {number} 没有报送政府备案日期（应于 {deadline} 前备案）"),
                format!("annual plan {number} has no filing date (it must be filed by {deadline})"),
            )),
            None => {}
        }
    }
    if let (Some(deadline), Some(entered)) = (entry_deadline(year), date_at(record, "/plan/entry_date")) {
        if entered > deadline {
            out.push(Violation::warning(
                "/plan/entry_date",
                "rule.plan_entered_late",
                Some(entered.to_string()),
                format!("年度检查计划 {number} 应于 {deadline}（{year}年3月30日）前录入平台，实际录入日期 {entered}"),
                format!(
                    "annual inspection plan {number} should be entered into the platform by {deadline} (30 March {year}); it was entered on {entered}"
                ),
            ));
        }
    }
}

fn sampling_ratio(plan: &Value, kind: Option<&str>, number: &str, out: &mut Vec<Violation>) {
    let ratio = plan.get("sampling_ratio");
    let value = ratio.and_then(Value::as_f64);
    let in_range = value.is_some_and(|r| r > 0.0 && r <= 1.0);
    let shown = ratio.map(crate::schema::value_text);
    if kind == Some("special") && !in_range {
        let (zh, en) = match (ratio, value) {
            (None, _) => ("缺少抽查比例".to_string(), "has no sampling ratio".to_string()),
            (Some(_), Some(r)) => (
                format!("抽查比例 {r} 不在 (0, 1] 内"),
                format!("has the sampling ratio {r}, outside (0, 1]"),
            ),
            (Some(v), None) => (
                format!("抽查比例 {} 不是数字", crate::schema::value_text(v)),
                format!(
                    "has a sampling ratio {} that is not a number",
                    crate::schema::value_text(v)
                ),
            ),
        };
        out.push(Violation::error(
            "/plan/sampling_ratio",
            "rule.special_plan_ratio",
            shown,
            format!("专项计划 {number} {zh}：专项检查应根据实际情况确定抽查比例，取值大于0且不超过1（如 0.05 表示5%）"),
            format!("special plan {number} {en}: a special plan states the share of targets it inspects, a number greater than 0 and at most 1 (0.05 = 5 %)"),
        ));
    } else if ratio.is_some() && !in_range {
        out.push(Violation::error(
            "/plan/sampling_ratio",
            "rule.plan_sampling_ratio",
            shown.clone(),
            format!(
                "计划 {number} 的抽查比例 {} 应大于0且不超过1（如 0.05 表示5%）",
                shown.as_deref().unwrap_or_default()
            ),
            format!(
                "plan {number}: the sampling ratio {} must be greater than 0 and at most 1 (0.05 = 5 %)",
                shown.as_deref().unwrap_or_default()
            ),
        ));
    }
}

/// `rule.plan_unknown` on an inspection naming `plan_id`.
pub(crate) fn check_plan_reference(
    plan_id: &str,
    known: Option<&KnownPlans>,
    check: PlanCheck,
    out: &mut Vec<Violation>,
) {
    let Some(known) = known else { return };
    if plan_id.trim().is_empty() {
        return;
    }
    let error = match check {
        PlanCheck::Off => return,
        PlanCheck::Auto if known.is_empty() => return,
        PlanCheck::Auto | PlanCheck::Warning => false,
        PlanCheck::Error => true,
    };
    if known.contains(plan_id) {
        return;
    }
    let zh = format!(
        "双随机抽查所属的抽查计划 {plan_id} 在平台（本网关）中不存在：请先报送该计划（记录类型 plan），或核对计划编号"
    );
    let en = format!(
        "the inspection names the plan {plan_id}, which the gateway does not hold: send the plan first (record kind plan) or check the number"
    );
    out.push(if error {
        Violation::error(
            "/inspection/plan_id",
            "rule.plan_unknown",
            Some(plan_id.to_string()),
            zh,
            en,
        )
    } else {
        Violation::warning(
            "/inspection/plan_id",
            "rule.plan_unknown",
            Some(plan_id.to_string()),
            zh,
            en,
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules_of(record: &Value) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        check_plan(record, &mut out);
        out.into_iter().map(|v| (v.rule.clone(), v.is_error())).collect()
    }

    fn annual(filing: Option<&str>, entry: Option<&str>) -> Value {
        let mut plan = json!({"kind": "annual", "year": 2026});
        if let Some(f) = filing {
            plan["filing_date"] = json!(f);
        }
        if let Some(e) = entry {
            plan["entry_date"] = json!(e);
        }
        json!({"case_type": "plan", "case_number": "JXSJ-2026-01", "plan": plan})
    }

    #[test]
    fn annual_plan_filed_on_the_last_day_of_february_is_on_time_and_a_day_later_is_late() {
        assert!(rules_of(&annual(Some("2026-02-28"), Some("2026-03-30"))).is_empty());
        assert_eq!(
            rules_of(&annual(Some("2026-03-01"), Some("2026-03-01"))),
            vec![("rule.plan_filed_late".to_string(), false)]
        );
        // 2028 is a leap year: 29 February is still on time.
        let mut leap = annual(Some("2028-02-29"), None);
        leap["plan"]["year"] = json!(2028);
        assert!(rules_of(&leap).is_empty());
    }

    #[test]
    fn annual_plan_entered_after_30_march_is_flagged_and_one_without_filing_date_too() {
        assert_eq!(
            rules_of(&annual(Some("2026-01-10"), Some("2026-03-31"))),
            vec![("rule.plan_entered_late".to_string(), false)]
        );
        assert_eq!(
            rules_of(&annual(None, Some("2026-03-01"))),
            vec![("rule.plan_not_filed".to_string(), false)]
        );
    }

    #[test]
    fn special_plan_needs_a_ratio_in_zero_to_one_and_has_no_deadlines() {
        let special = |ratio: Option<Value>| {
            let mut plan = json!({"kind": "special", "year": 2026, "entry_date": "2026-09-01"});
            if let Some(r) = ratio {
                plan["sampling_ratio"] = r;
            }
            json!({"case_type": "plan", "case_number": "ZX-1", "plan": plan})
        };
        assert!(rules_of(&special(Some(json!(0.05)))).is_empty());
        assert!(rules_of(&special(Some(json!(1)))).is_empty());
        for bad in [
            None,
            Some(json!(0)),
            Some(json!(1.5)),
            Some(json!(-0.1)),
            Some(json!("5%")),
        ] {
            assert_eq!(
                rules_of(&special(bad.clone())),
                vec![("rule.special_plan_ratio".to_string(), true)],
                "{bad:?}"
            );
        }
        let mut annual_bad = annual(Some("2026-01-05"), None);
        annual_bad["plan"]["sampling_ratio"] = json!(20);
        assert_eq!(
            rules_of(&annual_bad),
            vec![("rule.plan_sampling_ratio".to_string(), true)]
        );
    }

    #[test]
    fn unknown_plan_is_flagged_by_the_configured_severity() {
        let known = KnownPlans::new();
        let run = |check: PlanCheck, known: &KnownPlans| {
            let mut out = Vec::new();
            check_plan_reference("jxsj-2026-01 ", Some(known), check, &mut out);
            out.into_iter().map(|v| v.is_error()).collect::<Vec<_>>()
        };
        assert!(run(PlanCheck::Auto, &known).is_empty(), "auto: no plan known yet");
        assert_eq!(run(PlanCheck::Warning, &known), vec![false]);
        known.insert_all(["OTHER-PLAN"]);
        assert_eq!(run(PlanCheck::Auto, &known), vec![false]);
        assert_eq!(run(PlanCheck::Error, &known), vec![true]);
        assert!(run(PlanCheck::Off, &known).is_empty());
        known.insert_all(["JXSJ-2026-01"]);
        assert!(run(PlanCheck::Error, &known).is_empty(), "numbers compare normalised");
        known.replace_all(Vec::<String>::new());
        assert!(known.is_empty());
    }
}

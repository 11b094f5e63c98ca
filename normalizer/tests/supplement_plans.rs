//! Fields a source cannot supply (`supplement = true`, 待补录) and inspection plans (the fourth
//! record kind) through the whole pipeline: mapping, schema and rules.

use normalizer::mapping::{Mapping, MappingError};
use normalizer::plans::{KnownPlans, PlanCheck};
use normalizer::rules::RuleOptions;
use normalizer::supplement::SuppliedValues;
use normalizer::{Normalizer, Outcome};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// An inspection mapping over a flat source record; `extra` adds fields (e.g. the supplement ones).
fn inspection_mapping(extra: &str) -> Result<Mapping, MappingError> {
    let text = format!(
        r#"
id = "legacy-inspections"
version = 1
description = "a legacy inspection system without item codes or plan numbers"
case_type = "inspection"

[[field]]
target = "agency.name"
from = "bm"
[[field]]
target = "agency.credit_code"
from = "bmdm"
[[field]]
target = "agency.region_code"
from = "qh"
[[field]]
target = "case_number"
from = "ajbh"
[[field]]
target = "case_name"
from = "ajmc"
[[field]]
target = "implementation_list_code"
from = "qdbm"
[[field]]
target = "target.kind"
const = "legal_person"
[[field]]
target = "target.name"
from = "dx"
[[field]]
target = "target.id_type"
const = "uscc"
[[field]]
target = "target.id_number"
from = "dxdm"
[[field]]
target = "legal_basis"
from = "yj"
[[field]]
target = "officers"
each = "ry[*]"
fields = [
  {{ target = "name", from = "xm" }},
  {{ target = "cert_no", from = "zh" }},
]
[[field]]
target = "inspection.form"
from = "xs"
[[field]]
target = "inspection.check_date"
from = "rq"
[[field]]
target = "inspection.result"
from = "jg"
{extra}
"#
    );
    Mapping::from_toml_str(&text, "legacy.toml", Path::new("."))
}

const SUPPLEMENTS: &str = r#"
[[field]]
target = "item_code"
supplement = true
reason = "本系统没有监管事项目录编码"
[[field]]
target = "inspection.plan_id"
from = "jhbh"
supplement = true
reason = "旧系统的双随机任务没有计划编号"
"#;

fn source() -> Value {
    json!({
        "bm": "江西省某某厅", "bmdm": "113600000145000063", "qh": "360000",
        "ajbh": "JC-2024-001", "ajmc": "2024年第一批双随机抽查",
        "qdbm": "1136000001450000631001",
        "dx": "北京某公司", "dxdm": "91110000600037341L", "yj": "《江西省某条例》",
        "ry": [{"xm": "张三", "zh": "36000001"}, {"xm": "李四", "zh": "36000002"}],
        "xs": "random", "rq": "2024-04-02", "jg": "no_problem"
    })
}

fn rules(outcome: &Outcome) -> Vec<(String, bool)> {
    outcome
        .violations
        .iter()
        .map(|v| (format!("{} {}", v.rule, v.pointer), v.is_error()))
        .collect()
}

#[test]
fn record_without_a_supplement_field_is_accepted_as_awaiting_supplement() {
    let mapping = inspection_mapping(SUPPLEMENTS).expect("mapping loads");
    assert_eq!(mapping.supplements().len(), 2);
    let outcome = Normalizer::default().normalize(&mapping, &source());
    assert!(outcome.is_accepted(), "{:?}", outcome.violations);
    assert_eq!(
        rules(&outcome),
        vec![
            ("supplement.missing_field /item_code".to_string(), false),
            ("supplement.missing_field /inspection/plan_id".to_string(), false),
        ]
    );
    assert_eq!(
        outcome.record["supplement"],
        json!({"awaiting": ["/item_code", "/inspection/plan_id"]})
    );
    let warning = &outcome.violations[0];
    assert!(
        warning.message_zh.contains("本系统没有监管事项目录编码"),
        "{}",
        warning.message_zh
    );
    assert!(
        warning.message_en.contains("awaits completion"),
        "{}",
        warning.message_en
    );
}

#[test]
fn without_the_declaration_the_same_record_is_rejected() {
    let mapping = inspection_mapping("").expect("mapping loads");
    let outcome = Normalizer::default().normalize(&mapping, &source());
    assert!(!outcome.is_accepted());
    let found = rules(&outcome);
    assert!(
        found.contains(&("schema.required /item_code".to_string(), true)),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            "rule.random_inspection_without_plan /inspection/plan_id".to_string(),
            true
        )),
        "{found:?}"
    );
}

#[test]
fn a_value_the_source_sends_is_used_and_a_wrong_one_is_still_an_error() {
    let mapping = inspection_mapping(SUPPLEMENTS).expect("mapping loads");
    let mut with_plan = source();
    with_plan["jhbh"] = json!("P2024-01");
    let outcome = Normalizer::default().normalize(&mapping, &with_plan);
    assert_eq!(outcome.record["supplement"], json!({"awaiting": ["/item_code"]}));
    assert_eq!(outcome.record["inspection"]["plan_id"], json!("P2024-01"));
    // A value that is there but wrong is the source's error, not a gap to fill.
    let item_mapping = inspection_mapping(
        r#"
[[field]]
target = "item_code"
from = "sxbm"
supplement = true
reason = "部分记录没有编码"
"#,
    )
    .expect("mapping loads");
    let mut wrong = source();
    wrong["sxbm"] = json!("12-34");
    let outcome = Normalizer::default().normalize(&item_mapping, &wrong);
    assert!(!outcome.is_accepted());
    assert!(rules(&outcome).contains(&("schema.pattern /item_code".to_string(), true)));
}

#[test]
fn supplied_values_fill_re_sent_records_of_the_same_case() {
    let mapping = inspection_mapping(SUPPLEMENTS).expect("mapping loads");
    let supplied = Arc::new(SuppliedValues::new());
    supplied.insert(
        "113600000145000063/inspection/JC-2024-001",
        "/item_code",
        json!("36000000000001"),
    );
    let normalizer = Normalizer::new(RuleOptions {
        supplied: Some(Arc::clone(&supplied)),
        ..Default::default()
    })
    .expect("schemas");
    let outcome = normalizer.normalize(&mapping, &source());
    assert_eq!(outcome.record["item_code"], json!("36000000000001"));
    assert_eq!(
        outcome.record["supplement"],
        json!({"awaiting": ["/inspection/plan_id"], "supplied": ["/item_code"]})
    );
    assert_eq!(
        rules(&outcome),
        vec![("supplement.missing_field /inspection/plan_id".to_string(), false)]
    );
    // Another case of the same source is not filled.
    let mut other = source();
    other["ajbh"] = json!("JC-2024-002");
    let outcome = normalizer.normalize(&mapping, &other);
    assert!(outcome.record.get("item_code").is_none());
}

#[test]
fn completing_a_record_by_hand_lists_the_supplied_fields_and_checks_them() {
    let mapping = inspection_mapping(SUPPLEMENTS).expect("mapping loads");
    let normalizer = Normalizer::default();
    let first = normalizer.normalize(&mapping, &source());
    let completed = normalizer.complete_supplement(
        &first.record,
        mapping.supplements(),
        &[("/item_code".to_string(), json!("36000000000001"))],
    );
    assert!(completed.is_accepted(), "{:?}", completed.violations);
    assert_eq!(
        completed.record["supplement"],
        json!({"awaiting": ["/inspection/plan_id"], "supplied": ["/item_code"]})
    );
    let done = normalizer.complete_supplement(
        &completed.record,
        mapping.supplements(),
        &[("/inspection/plan_id".to_string(), json!("P2024-01"))],
    );
    assert!(done.violations.is_empty(), "{:?}", done.violations);
    assert_eq!(
        done.record["supplement"],
        json!({"supplied": ["/item_code", "/inspection/plan_id"]})
    );
    let bad = normalizer.complete_supplement(
        &first.record,
        mapping.supplements(),
        &[("/item_code".to_string(), json!("not a code"))],
    );
    assert!(!bad.is_accepted());
    assert!(rules(&bad).contains(&("schema.pattern /item_code".to_string(), true)));
}

#[test]
fn supplement_declarations_that_would_hide_a_placeholder_are_load_errors() {
    for (extra, needle) in [
        (
            "[[field]]\ntarget = \"item_code\"\nsupplement = true\n",
            "reason",
        ),
        (
            "[[field]]\ntarget = \"item_code\"\nfrom = \"x\"\ndefault = \"00000000000000\"\nsupplement = true\nreason = \"r\"\n",
            "default",
        ),
        (
            "[[field]]\ntarget = \"item_code\"\nfrom = \"x\"\nrequired = true\nsupplement = true\nreason = \"r\"\n",
            "required",
        ),
        ("[[field]]\ntarget = \"item_code\"\nfrom = \"x\"\nreason = \"r\"\n", "supplement = true"),
    ] {
        let err = inspection_mapping(extra).expect_err(extra);
        let text = format!("{} {}", err.message_zh, err.message_en);
        assert!(text.contains(needle), "{extra}: {text}");
    }
}

fn plan_mapping() -> Mapping {
    let text = r#"
id = "legacy-plans"
version = 1
description = "annual and special inspection plans"
case_type = "plan"

[[field]]
target = "agency.name"
from = "bm"
[[field]]
target = "agency.credit_code"
from = "bmdm"
[[field]]
target = "agency.region_code"
from = "qh"
[[field]]
target = "case_number"
from = "jhbh"
[[field]]
target = "case_name"
from = "jhmc"
[[field]]
target = "plan.kind"
from = "lx"
table = "kinds"
[[field]]
target = "plan.year"
from = "nd"
as = "integer"
[[field]]
target = "plan.filing_date"
from = "barq"
as = "date"
[[field]]
target = "plan.entry_date"
from = "lrrq"
as = "date"
[[field]]
target = "plan.sampling_ratio"
from = "ccbl"
as = "decimal"
[[field]]
target = "plan.items"
each = "sx[*]"
fields = [
  { target = "item_code", from = "bm" },
  { target = "name", from = "mc" },
]

[tables.kinds]
values = { "年度计划" = "annual", "专项计划" = "special" }
"#;
    Mapping::from_toml_str(text, "plans.toml", Path::new(".")).expect("plan mapping loads")
}

fn plan_source(kind: &str) -> Value {
    json!({
        "bm": "江西省某某厅", "bmdm": "113600000145000063", "qh": "360000",
        "jhbh": "赣某厅〔2026〕1号", "jhmc": "2026年度双随机抽查计划", "lx": kind, "nd": "2026",
        "barq": "2026-02-20", "lrrq": "2026-03-10",
        "sx": [{"bm": "36000000000001", "mc": "某某检查"}]
    })
}

#[test]
fn plan_record_maps_to_the_plan_schema_and_is_numbered_in_its_year() {
    let outcome = Normalizer::default().normalize(&plan_mapping(), &plan_source("年度计划"));
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert_eq!(outcome.record["plan"]["year"], json!(2026));
    let facts = outcome.case_facts().expect("a plan has a business key");
    assert_eq!(facts.case_type, normalizer::CaseType::Plan);
    assert_eq!(facts.numbering_year, 2026);
}

#[test]
fn late_annual_plan_is_accepted_with_warnings_and_a_special_plan_needs_its_ratio() {
    let mut late = plan_source("年度计划");
    late["barq"] = json!("2026-03-02");
    late["lrrq"] = json!("2026-04-01");
    let outcome = Normalizer::default().normalize(&plan_mapping(), &late);
    assert!(outcome.is_accepted());
    assert_eq!(
        rules(&outcome),
        vec![
            ("rule.plan_filed_late /plan/filing_date".to_string(), false),
            ("rule.plan_entered_late /plan/entry_date".to_string(), false),
        ]
    );
    let special = Normalizer::default().normalize(&plan_mapping(), &plan_source("专项计划"));
    assert!(!special.is_accepted());
    assert_eq!(
        rules(&special),
        vec![("rule.special_plan_ratio /plan/sampling_ratio".to_string(), true)]
    );
    let mut with_ratio = plan_source("专项计划");
    with_ratio["ccbl"] = json!("0.05");
    let outcome = Normalizer::default().normalize(&plan_mapping(), &with_ratio);
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
}

#[test]
fn inspection_naming_an_unknown_plan_is_flagged_once_plans_are_known() {
    let mapping = inspection_mapping(SUPPLEMENTS).expect("mapping loads");
    let known = Arc::new(KnownPlans::new());
    let with = |check: PlanCheck| {
        Normalizer::new(RuleOptions {
            known_plans: Some(Arc::clone(&known)),
            plan_unknown: check,
            ..Default::default()
        })
        .expect("schemas")
    };
    let mut record = source();
    record["jhbh"] = json!("P2024-09");
    let has_unknown = |o: &Outcome| {
        o.violations
            .iter()
            .find(|v| v.rule == "rule.plan_unknown")
            .map(|v| v.is_error())
    };
    assert_eq!(has_unknown(&with(PlanCheck::Auto).normalize(&mapping, &record)), None);
    known.insert_all(["P2024-01"]);
    assert_eq!(
        has_unknown(&with(PlanCheck::Auto).normalize(&mapping, &record)),
        Some(false)
    );
    let rejected = with(PlanCheck::Error).normalize(&mapping, &record);
    assert_eq!(has_unknown(&rejected), Some(true));
    assert!(!rejected.is_accepted());
    record["jhbh"] = json!("p2024-01");
    assert_eq!(has_unknown(&with(PlanCheck::Error).normalize(&mapping, &record)), None);
}

#[test]
fn an_item_name_the_catalogue_cannot_place_leaves_a_supplement_code_awaiting() {
    let mapping = inspection_mapping(
        r#"
[[field]]
target = "item_name"
from = "sxmc"
[[field]]
target = "item_code"
supplement = true
reason = "台账只记事项名称"
"#,
    )
    .expect("mapping loads");
    let catalogue = normalizer::rules::Catalogue::from_csv(
        "年度,监管事项目录编码,监管事项名称\n2024,36000000000001,产品质量监督抽查\n",
    )
    .expect("catalogue");
    let normalizer = Normalizer::new(RuleOptions {
        catalogue: Some(catalogue),
        ..Default::default()
    })
    .expect("schemas");
    let mut named = source();
    named["xs"] = json!("targeted");
    named["sxmc"] = json!("产品质量监督抽查");
    let outcome = normalizer.normalize(&mapping, &named);
    assert_eq!(outcome.record["item_code"], json!("36000000000001"));
    assert!(outcome.record.get("supplement").is_none(), "{}", outcome.record);
    let mut unknown = named.clone();
    unknown["sxmc"] = json!("没有这个事项");
    let outcome = normalizer.normalize(&mapping, &unknown);
    assert!(outcome.is_accepted(), "{:?}", outcome.violations);
    assert_eq!(
        rules(&outcome),
        vec![
            ("catalogue.item_name_unknown /item_code".to_string(), false),
            ("supplement.missing_field /item_code".to_string(), false),
        ]
    );
    assert_eq!(outcome.record["supplement"], json!({"awaiting": ["/item_code"]}));
}

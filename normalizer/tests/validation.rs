//! Schema and cross-field rule behaviour of `Normalizer::validate`.

use normalizer::rules::{Catalogue, RuleOptions};
use normalizer::{Normalizer, Severity, Violation};
use serde_json::{json, Value};

fn penalty() -> Value {
    json!({
        "case_type": "penalty",
        "operation": "insert",
        "agency": { "name": "江西省某某厅", "credit_code": "113600000145000063", "region_code": "360000" },
        "case_number": "赣罚〔2024〕1号",
        "case_name": "某公司未按规定公示信息案",
        "item_code": "36000000000001",
        "target": { "kind": "legal_person", "name": "北京某公司", "id_type": "uscc", "id_number": "91110000600037341L" },
        "legal_basis": "《中华人民共和国行政处罚法》第九条",
        "officers": [ { "name": "张三", "cert_no": "36000001" }, { "name": "李四", "cert_no": "36000002" } ],
        "case_source": "complaint",
        "closing_date": "2024-03-01",
        "penalty": {
            "decision_number": "赣罚决〔2024〕1号",
            "filing_date": "2024-01-05",
            "decision_date": "2024-02-01",
            "procedure": "ordinary",
            "kinds": ["fine", "warning"],
            "illegal_facts": "未按规定公示年度报告",
            "fine_amount": 2000.0
        }
    })
}

fn inspection() -> Value {
    json!({
        "case_type": "inspection",
        "agency": { "name": "江西省某某厅", "credit_code": "113600000145000063", "region_code": "360000" },
        "case_number": "JC-2024-001",
        "case_name": "2024年第一批双随机抽查",
        "item_code": "36000000000001",
        "implementation_list_code": "1136000001450000631001",
        "target": { "kind": "natural_person", "name": "王五", "id_type": "resident_id", "id_number": "360426199101010071" },
        "legal_basis": "《江西省某条例》",
        "officers": [ { "name": "张三", "cert_no": "36000001" }, { "name": "李四", "cert_no": "36000002" } ],
        "inspection": { "plan_id": "P2024-01", "form": "random", "method": "on_site", "result": "no_problem", "check_date": "2024-04-02" }
    })
}

fn coercion() -> Value {
    json!({
        "case_type": "coercion",
        "agency": { "name": "江西省某某厅", "credit_code": "113600000145000063", "region_code": "360000" },
        "case_number": "QZ-2024-001",
        "case_name": "查封某仓库",
        "item_code": "36000000000002",
        "target": { "kind": "legal_person", "name": "北京某公司", "id_type": "uscc", "id_number": "91110000600037341L" },
        "legal_basis": "《中华人民共和国行政强制法》第九条",
        "officers": [ { "name": "张三", "cert_no": "36000001" }, { "name": "李四", "cert_no": "36000002" } ],
        "coercion": { "kind": "measure", "measure_type": "seal_up", "decision_number": "赣强〔2024〕1号", "illegal_facts": "存放危险化学品", "start_date": "2024-05-01", "end_date": "2024-05-30" }
    })
}

fn rules(violations: &[Violation]) -> Vec<&str> {
    violations.iter().map(|v| v.rule.as_str()).collect()
}

fn errors(v: &[Violation]) -> Vec<&Violation> {
    v.iter().filter(|v| v.severity == Severity::Error).collect()
}

#[test]
fn valid_records_of_all_three_types_have_no_errors() {
    let n = Normalizer::default();
    for record in [penalty(), inspection(), coercion()] {
        let v = n.validate(&record);
        assert!(errors(&v).is_empty(), "{record}\n{v:#?}");
    }
}

#[test]
fn missing_required_field_names_pointer_and_chinese_title() {
    let mut r = penalty();
    r["penalty"].as_object_mut().unwrap().remove("decision_date");
    let v = Normalizer::default().validate(&r);
    let hit = v
        .iter()
        .find(|v| v.rule == "schema.required")
        .expect("required violation");
    assert_eq!(hit.pointer, "/penalty/decision_date");
    assert!(hit.message_zh.contains("处罚决定日期"), "{}", hit.message_zh);
    assert!(hit.message_en.contains("/penalty/decision_date"));
}

#[test]
fn wrong_agency_check_char_is_rejected_naming_expected_char() {
    let mut r = penalty();
    r["agency"]["credit_code"] = json!("113600000145000064");
    let v = Normalizer::default().validate(&r);
    let hit = v
        .iter()
        .find(|v| v.pointer == "/agency/credit_code")
        .expect("violation");
    assert_eq!(hit.rule, "uscc.check_char");
    assert!(hit.message_en.contains('3'), "{}", hit.message_en);
    assert_eq!(hit.value.as_deref(), Some("113600000145000064"));
}

#[test]
fn resident_id_target_is_checked_by_gb11643() {
    let mut r = inspection();
    r["target"]["id_number"] = json!("36042619910102009X");
    let v = Normalizer::default().validate(&r);
    assert!(rules(&v).contains(&"id_number.check_char"), "{v:#?}");
}

#[test]
fn target_kind_and_identifier_type_must_match() {
    let mut r = penalty();
    r["target"]["kind"] = json!("legal_person");
    r["target"]["id_type"] = json!("resident_id");
    r["target"]["id_number"] = json!("360426199101010071");
    let v = Normalizer::default().validate(&r);
    assert!(rules(&v).contains(&"rule.target_id_kind"), "{v:#?}");
}

#[test]
fn agency_region_must_equal_credit_code_region() {
    let mut r = penalty();
    r["agency"]["region_code"] = json!("360100");
    let v = Normalizer::default().validate(&r);
    let hit = v
        .iter()
        .find(|v| v.rule == "rule.agency_region_mismatch")
        .expect("mismatch");
    assert_eq!(hit.severity, Severity::Error);
}

#[test]
fn agency_region_outside_configured_province_is_rejected() {
    let n = Normalizer::new(RuleOptions {
        agency_region_prefix: Some("44".into()),
        catalogue: None,
        ..Default::default()
    })
    .unwrap();
    let v = n.validate(&penalty());
    assert!(rules(&v).contains(&"rule.agency_region_province"), "{v:#?}");
}

#[test]
fn revoked_agency_region_of_same_city_is_a_warning() {
    use normalizer::standards::credit_code::{org_code_check_char, uscc_check_char};
    // An agency registered by the former 上饶县 (361121, revoked 2019), now 广信区 (361104).
    let org = format!("01450000{}", org_code_check_char("01450000").unwrap());
    let body = format!("11361121{org}");
    let code = format!("{body}{}", uscc_check_char(&body).unwrap());
    let mut r = penalty();
    r["agency"]["credit_code"] = json!(code);
    r["agency"]["region_code"] = json!("361104");
    let v = Normalizer::default().validate(&r);
    let hit = v
        .iter()
        .find(|v| v.pointer == "/agency/region_code")
        .expect("region finding");
    assert_eq!(hit.rule, "rule.agency_region_revoked");
    assert_eq!(hit.severity, Severity::Warning);
    assert!(errors(&v).is_empty(), "{v:#?}");
    // A revoked code of another city is an error.
    r["agency"]["region_code"] = json!("360102");
    let v = Normalizer::default().validate(&r);
    assert!(rules(&v).contains(&"rule.agency_region_mismatch"), "{v:#?}");
}

#[test]
fn unknown_agency_region_is_an_error() {
    let mut r = penalty();
    r["agency"]["region_code"] = json!("990000");
    let v = Normalizer::default().validate(&r);
    assert!(
        v.iter().any(|v| v.pointer == "/agency/region_code" && v.is_error()),
        "{v:#?}"
    );
}

#[test]
fn duplicate_officers_are_rejected() {
    let mut r = penalty();
    r["officers"][1]["cert_no"] = json!("36000001");
    let v = Normalizer::default().validate(&r);
    assert!(rules(&v).contains(&"rule.officers_distinct"), "{v:#?}");
}

#[test]
fn single_officer_is_rejected() {
    let mut r = penalty();
    r["officers"].as_array_mut().unwrap().pop();
    let v = Normalizer::default().validate(&r);
    assert!(rules(&v).contains(&"schema.min_items"), "{v:#?}");
}

#[test]
fn end_date_before_start_date_is_rejected() {
    let mut r = coercion();
    r["coercion"]["end_date"] = json!("2024-04-01");
    let v = Normalizer::default().validate(&r);
    let hit = v.iter().find(|v| v.rule == "rule.date_order").expect("date order");
    assert_eq!(hit.pointer, "/coercion/end_date");
}

#[test]
fn inspection_item_outside_catalogue_is_rejected_when_catalogue_loaded() {
    let catalogue = Catalogue::from_csv("year,item_code\n2024,36000000000009\n").unwrap();
    let n = Normalizer::new(RuleOptions {
        agency_region_prefix: None,
        catalogue: Some(catalogue),
        ..Default::default()
    })
    .unwrap();
    let v = n.validate(&inspection());
    assert!(rules(&v).contains(&"rule.item_not_in_catalogue"), "{v:#?}");
    let mut ok = inspection();
    ok["item_code"] = json!("36000000000009");
    assert!(errors(&n.validate(&ok)).is_empty());
}

#[test]
fn late_archive_is_a_warning_not_a_rejection() {
    let mut r = penalty();
    r["closing_date"] = json!("2026-09-28");
    r["archive_date"] = json!("2026-10-26");
    let v = Normalizer::default().validate(&r);
    let hit = v.iter().find(|v| v.rule == "rule.archive_overdue").expect("overdue");
    assert_eq!(hit.severity, Severity::Warning);
    assert!(hit.message_zh.contains("2026-10-23"));
    assert!(errors(&v).is_empty(), "{v:#?}");
    r["archive_date"] = json!("2026-10-23");
    assert!(!rules(&Normalizer::default().validate(&r)).contains(&"rule.archive_overdue"));
}

#[test]
fn fine_without_amount_is_rejected() {
    let mut r = penalty();
    r["penalty"].as_object_mut().unwrap().remove("fine_amount");
    let v = Normalizer::default().validate(&r);
    assert!(rules(&v).contains(&"rule.fine_amount_missing"), "{v:#?}");
}

#[test]
fn unknown_field_is_reported_with_its_pointer() {
    let mut r = penalty();
    r["penalty"]["fine"] = json!(1);
    r["surprise"] = json!(1);
    let v = Normalizer::default().validate(&r);
    let pointers: Vec<&str> = v
        .iter()
        .filter(|v| v.rule == "schema.unknown_field")
        .map(|v| v.pointer.as_str())
        .collect();
    assert!(pointers.contains(&"/penalty/fine"), "{v:#?}");
    assert!(pointers.contains(&"/surprise"), "{v:#?}");
}

#[test]
fn enum_violation_lists_allowed_codes() {
    let mut r = penalty();
    r["penalty"]["procedure"] = json!("fast");
    let v = Normalizer::default().validate(&r);
    let hit = v.iter().find(|v| v.rule == "schema.enum").expect("enum");
    assert_eq!(hit.pointer, "/penalty/procedure");
    assert!(hit.message_zh.contains("处罚程序"));
    assert!(hit.message_en.contains("ordinary"));
}

#[test]
fn random_inspection_without_plan_is_rejected() {
    let mut r = inspection();
    r["inspection"].as_object_mut().unwrap().remove("plan_id");
    let v = Normalizer::default().validate(&r);
    assert!(rules(&v).contains(&"rule.random_inspection_without_plan"), "{v:#?}");
}

#[test]
fn delete_needs_only_the_business_key() {
    let n = Normalizer::default();
    let ok = json!({"case_type": "penalty", "operation": "delete", "agency": {"credit_code": "113600000145000063"}, "case_number": "X1"});
    assert!(n.validate(&ok).is_empty());
    let bad = json!({"case_type": "penalty", "operation": "delete", "agency": {"credit_code": "113600000145000064"}});
    let v = n.validate(&bad);
    assert!(rules(&v).contains(&"uscc.check_char"));
    assert!(v.iter().any(|v| v.pointer == "/case_number"));
}

#[test]
fn unnormalised_credit_code_in_canonical_record_is_rejected() {
    let mut r = penalty();
    r["target"]["id_number"] = json!("91110000600037341l");
    let v = Normalizer::default().validate(&r);
    assert!(rules(&v).contains(&"uscc.not_normalised"), "{v:#?}");
}

#[test]
fn text_of_only_white_space_is_rejected_as_blank_in_both_languages() {
    let mut r = penalty();
    r["agency"]["name"] = json!(" \u{3000}\t");
    r["penalty"]["decision_number"] = json!("\u{3000}");
    let v = Normalizer::default().validate(&r);
    for pointer in ["/agency/name", "/penalty/decision_number"] {
        let hit = v
            .iter()
            .find(|v| v.pointer == pointer && v.rule == "format.non-blank")
            .unwrap_or_else(|| panic!("{pointer}: {v:#?}"));
        assert_eq!(hit.severity, Severity::Error);
        assert!(hit.message_zh.contains("空白"), "{}", hit.message_zh);
        assert!(hit.message_en.contains("white space"), "{}", hit.message_en);
    }
    r["agency"]["name"] = json!(" 江西省某某厅 ");
    r["penalty"]["decision_number"] = json!("赣罚决〔2024〕1号");
    assert!(errors(&Normalizer::default().validate(&r)).is_empty());
}

#[test]
fn dates_that_name_no_real_day_are_rejected_as_dates() {
    for bad in [
        "2024-02-30",
        "2023-02-29",
        "2024-13-01",
        "2024-1-05",
        "2024/01/05",
        "２０２４-01-05",
    ] {
        let mut r = penalty();
        r["penalty"]["filing_date"] = json!(bad);
        let v = Normalizer::default().validate(&r);
        assert!(
            v.iter()
                .any(|v| v.pointer == "/penalty/filing_date" && v.rule == "format.date"),
            "{bad}: {v:#?}"
        );
    }
    let mut r = penalty();
    r["penalty"]["decision_date"] = json!("2024-02-29");
    assert!(errors(&Normalizer::default().validate(&r)).is_empty());
}

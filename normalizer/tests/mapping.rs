//! The mapping engine: file format, conversions, code tables, conditions, arrays, load errors,
//! robustness, and the embedded tests and sample data of the example mappings.

use normalizer::mapping::{Mapping, MappingError, MappingErrorKind};
use normalizer::mapping_tests::run_tests;
use normalizer::xml_tree::{find_records, parse_xml, XmlLimits};
use normalizer::{Normalizer, Severity, Violation};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

// ------------------------------------------------------------------------------------ helpers

const HEADER: &str = r#"
id = "test-mapping"
version = 3
description = "mapping used by the tests"
case_type = "penalty"
"#;

fn example_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mappings").join(name)
}

/// A scratch folder for code-table files, one per test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("normalizer-mapping-tests-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load_in(dir: &Path, body: &str) -> Result<Mapping, MappingError> {
    Mapping::from_toml_str(&format!("{HEADER}{body}"), "test.toml", dir)
}

fn load(body: &str) -> Mapping {
    load_in(Path::new("."), body).unwrap_or_else(|e| panic!("{e}"))
}

fn load_err(body: &str) -> MappingError {
    load_in(Path::new("."), body).expect_err("the mapping should not load")
}

/// The value at `pointer` after applying `m` to `source`, and the violations.
fn map_at(m: &Mapping, source: Value, pointer: &str) -> (Option<Value>, Vec<Violation>) {
    let mapped = m.apply(&source);
    (mapped.record.pointer(pointer).cloned(), mapped.violations)
}

fn rules(violations: &[Violation]) -> Vec<(&str, &str)> {
    violations
        .iter()
        .map(|v| (v.rule.as_str(), v.pointer.as_str()))
        .collect()
}

/// Line (1-based) of the first occurrence of `needle` in the mapping text given to `load_in`.
fn line_of(body: &str, needle: &str) -> usize {
    let text = format!("{HEADER}{body}");
    let pos = text.find(needle).expect("needle in text");
    text[..pos].matches('\n').count() + 1
}

fn column_of(body: &str, needle: &str) -> usize {
    let text = format!("{HEADER}{body}");
    let pos = text.find(needle).expect("needle in text");
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..pos].chars().count() + 1
}

// ------------------------------------------------------------------------------------ dates

const DATE_FIELD: &str = r#"
[[field]]
target = "penalty.decision_date"
from = "d"
as = "date"
"#;

const DATETIME_FIELD: &str = r#"
[[field]]
target = "penalty.decision_date"
from = "d"
as = "datetime"
"#;

#[test]
fn date_in_every_legacy_layout_reads_as_the_same_day() {
    let m = load(DATE_FIELD);
    let inputs = [
        json!("2021-01-22"),
        json!("2021/1/22"),
        json!("2021.1.22"),
        json!("20210122"),
        json!(20210122),
        json!("2021年1月22日"),
        json!("2021年01月22日"),
        json!("2021-01-22 08:30:00"),
        json!("2021-01-22 08:30:00.0"),
        json!("2021-01-22T08:30:00"),
        json!("2021-01-22T08:30:00+08:00"),
        json!("2021-01-22T00:30:00Z"),
        json!("20210122083000"),
        json!("1611275400000"),
        json!(1611275400000u64),
        json!("1611275400"),
        json!(" ２０２１－０１－２２ "),
    ];
    for input in inputs {
        let (v, violations) = map_at(&m, json!({ "d": input.clone() }), "/penalty/decision_date");
        assert_eq!(v, Some(json!("2021-01-22")), "input {input}: {violations:?}");
        assert!(violations.is_empty(), "input {input}: {violations:?}");
    }
}

#[test]
fn date_in_chinese_format_reads_as_shanghai_day() {
    let m = load(DATE_FIELD);
    let (v, _) = map_at(&m, json!({ "d": "2021年1月22日" }), "/penalty/decision_date");
    assert_eq!(v, Some(json!("2021-01-22")));
    let m = load(DATETIME_FIELD);
    let (v, _) = map_at(&m, json!({ "d": "2021年1月22日 8时30分" }), "/penalty/decision_date");
    assert_eq!(v, Some(json!("2021-01-22T08:30:00+08:00")));
}

#[test]
fn utc_time_late_in_the_evening_is_the_next_shanghai_day() {
    let m = load(DATE_FIELD);
    let (v, _) = map_at(&m, json!({ "d": "2021-01-21T16:30:00Z" }), "/penalty/decision_date");
    assert_eq!(v, Some(json!("2021-01-22")));
    let (v, _) = map_at(
        &m,
        json!({ "d": "2021-01-21T23:30:00-01:00" }),
        "/penalty/decision_date",
    );
    assert_eq!(v, Some(json!("2021-01-22")));
    // Epoch 2021-01-21T16:00:00Z is midnight in Shanghai.
    let (v, _) = map_at(&m, json!({ "d": 1611244800000u64 }), "/penalty/decision_date");
    assert_eq!(v, Some(json!("2021-01-22")));
}

#[test]
fn datetime_is_rfc3339_with_the_shanghai_offset() {
    let m = load(DATETIME_FIELD);
    for (input, expected) in [
        (json!("2021-01-22 08:30:00"), "2021-01-22T08:30:00+08:00"),
        (json!("2021-01-22T00:30:00Z"), "2021-01-22T08:30:00+08:00"),
        (json!("2021-01-22"), "2021-01-22T00:00:00+08:00"),
        (json!("1611275400"), "2021-01-22T08:30:00+08:00"),
        (json!(1611275400123u64), "2021-01-22T08:30:00.123+08:00"),
    ] {
        let (v, _) = map_at(&m, json!({ "d": input }), "/penalty/decision_date");
        assert_eq!(v, Some(json!(expected)));
    }
}

#[test]
fn custom_format_overrides_detection() {
    let m = load(
        r#"
[[field]]
target = "penalty.decision_date"
from = "d"
as = "date"
format = "%d/%m/%Y"
"#,
    );
    let (v, _) = map_at(&m, json!({ "d": "22/01/2021" }), "/penalty/decision_date");
    assert_eq!(v, Some(json!("2021-01-22")));
    let (v, violations) = map_at(&m, json!({ "d": "2021-01-22" }), "/penalty/decision_date");
    assert_eq!(v, None);
    assert_eq!(rules(&violations), vec![("mapping.date", "/penalty/decision_date")]);
}

#[test]
fn unparseable_date_is_an_error_naming_field_rule_and_value_in_both_languages() {
    let m = load(DATE_FIELD);
    for bad in [
        "2021-02-30",
        "2021年13月1日",
        "22.01.2021",
        "yesterday",
        "2021-01-22 25:00",
    ] {
        let (v, violations) = map_at(&m, json!({ "d": bad }), "/penalty/decision_date");
        assert_eq!(v, None, "{bad}");
        assert_eq!(violations.len(), 1, "{bad}");
        let violation = &violations[0];
        assert_eq!(violation.rule, "mapping.date");
        assert_eq!(violation.pointer, "/penalty/decision_date");
        assert_eq!(violation.severity, Severity::Error);
        assert_eq!(violation.value.as_deref(), Some(bad));
        assert!(
            violation.message_zh.contains("日期") && violation.message_zh.contains('d'),
            "{violation}"
        );
        assert!(
            violation.message_en.contains("date") && violation.message_en.contains(bad),
            "{violation}"
        );
    }
}

// ------------------------------------------------------------------------------------ numbers

#[test]
fn amounts_in_wan_yuan_become_yuan_as_json_numbers() {
    let m = load(
        r#"
[[field]]
target = "penalty.fine_amount"
from = "fkje"
as = "decimal"
unit = "wan_yuan"
"#,
    );
    for (input, expected) in [
        (json!("0.2"), json!(2000)),
        (json!(0.2), json!(2000)),
        (json!("0.0360"), json!(360)),
        (json!("1.23456"), json!(12345.6)),
        (json!("１．５"), json!(15000)),
        (json!(15), json!(150000)),
        (json!("2000元"), json!(2000)),
    ] {
        let (v, violations) = map_at(&m, json!({ "fkje": input.clone() }), "/penalty/fine_amount");
        assert_eq!(v, Some(expected), "input {input}: {violations:?}");
    }
}

#[test]
fn amounts_with_separators_currency_signs_and_fullwidth_digits_are_read() {
    let m = load(
        r#"
[[field]]
target = "penalty.fine_amount"
from = "fk"
as = "decimal"
"#,
    );
    for (input, expected) in [
        ("1,234.50", json!(1234.5)),
        ("１２３", json!(123)),
        ("¥1,234.50元", json!(1234.5)),
        ("￥ 800", json!(800)),
        ("人民币3000元", json!(3000)),
        ("0.2万元", json!(2000)),
        ("1e3", json!(1000)),
    ] {
        let (v, violations) = map_at(&m, json!({ "fk": input }), "/penalty/fine_amount");
        assert_eq!(v, Some(expected), "input {input}: {violations:?}");
    }
}

#[test]
fn text_that_is_not_an_amount_is_a_number_violation() {
    let m = load(
        r#"
[[field]]
target = "penalty.fine_amount"
from = "fk"
as = "decimal"
"#,
    );
    for bad in ["贰仟元", "1,23", "12.3.4", "abc"] {
        let (v, violations) = map_at(&m, json!({ "fk": bad }), "/penalty/fine_amount");
        assert_eq!(v, None);
        assert_eq!(
            rules(&violations),
            vec![("mapping.number", "/penalty/fine_amount")],
            "{bad}"
        );
        assert_eq!(violations[0].value.as_deref(), Some(bad));
    }
}

#[test]
fn integer_conversion_rejects_fractions() {
    let m = load(
        r#"
[[field]]
target = "penalty.fine_amount"
from = "n"
as = "integer"
"#,
    );
    assert_eq!(
        map_at(&m, json!({ "n": "1,200" }), "/penalty/fine_amount").0,
        Some(json!(1200))
    );
    let (v, violations) = map_at(&m, json!({ "n": "12.5" }), "/penalty/fine_amount");
    assert_eq!(v, None);
    assert_eq!(rules(&violations), vec![("mapping.number", "/penalty/fine_amount")]);
}

// ------------------------------------------------------------------------------------ booleans

#[test]
fn booleans_are_read_from_chinese_digits_and_letters() {
    let m = load(
        r#"
[[field]]
target = "penalty.hearing_held"
from = "b"
as = "boolean"
"#,
    );
    for (input, expected) in [
        (json!("是"), true),
        (json!("否"), false),
        (json!("1"), true),
        (json!(0), false),
        (json!("Y"), true),
        (json!("n"), false),
        (json!("true"), true),
        (json!(false), false),
    ] {
        let (v, _) = map_at(&m, json!({ "b": input.clone() }), "/penalty/hearing_held");
        assert_eq!(v, Some(json!(expected)), "{input}");
    }
    let (v, violations) = map_at(&m, json!({ "b": "不详" }), "/penalty/hearing_held");
    assert_eq!(v, None);
    assert_eq!(rules(&violations), vec![("mapping.boolean", "/penalty/hearing_held")]);
}

// ------------------------------------------------------------------------------------ code tables

fn kinds_mapping(test: &str, policy: &str) -> Mapping {
    let dir = scratch(test);
    std::fs::write(dir.join("kinds.csv"), "source,target,note\n罚款,fine,\n警告,warning,\n").unwrap();
    let body = format!(
        r#"
[tables.kinds]
file = "kinds.csv"
unmapped = {policy}

[[field]]
target = "penalty.kinds"
from = "cflb"
as = "string_array"
table = "kinds"

[[field]]
target = "penalty.procedure"
from = "cx"
table = "kinds"
"#
    );
    load_in(&dir, &body).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn unmapped_code_with_error_policy_is_an_error_naming_field_table_and_value() {
    let m = kinds_mapping("error", r#""error""#);
    let (v, violations) = map_at(&m, json!({ "cflb": "罚款、吊销执照" }), "/penalty/kinds");
    assert_eq!(v, Some(json!(["fine"])));
    assert_eq!(rules(&violations), vec![("mapping.unmapped_code", "/penalty/kinds/1")]);
    let violation = &violations[0];
    assert!(violation.is_error());
    assert_eq!(violation.value.as_deref(), Some("吊销执照"));
    assert!(violation.message_zh.contains("cflb") && violation.message_zh.contains("kinds"));
    assert!(violation.message_en.contains("cflb") && violation.message_en.contains("kinds"));
}

#[test]
fn unmapped_code_with_warn_keep_policy_keeps_the_value_with_a_warning() {
    let m = kinds_mapping("warn_keep", r#""warn_keep""#);
    let (v, violations) = map_at(&m, json!({ "cflb": "罚款、吊销执照" }), "/penalty/kinds");
    assert_eq!(v, Some(json!(["fine", "吊销执照"])));
    assert_eq!(rules(&violations), vec![("mapping.unmapped_code", "/penalty/kinds/1")]);
    assert_eq!(violations[0].severity, Severity::Warning);
}

#[test]
fn unmapped_code_with_null_policy_is_left_out_silently() {
    let m = kinds_mapping("null", r#""null""#);
    let (v, violations) = map_at(&m, json!({ "cflb": "罚款、吊销执照", "cx": "x" }), "/penalty/kinds");
    assert_eq!(v, Some(json!(["fine"])));
    assert!(violations.is_empty());
    assert_eq!(map_at(&m, json!({ "cx": "x" }), "/penalty/procedure").0, None);
}

#[test]
fn unmapped_code_with_default_policy_takes_the_default() {
    let m = kinds_mapping("default", r#"{ default = "other" }"#);
    let (v, violations) = map_at(&m, json!({ "cflb": "罚款，吊销执照" }), "/penalty/kinds");
    assert_eq!(v, Some(json!(["fine", "other"])));
    assert!(violations.is_empty());
}

#[test]
fn inline_table_values_and_steps_before_lookup() {
    let m = load(
        r#"
[tables.ops]
values = { i = "insert", u = "update", d = "delete" }

[[field]]
target = "operation"
from = "op"
steps = ["trim", "lower"]
table = "ops"
default = "insert"
"#,
    );
    assert_eq!(
        map_at(&m, json!({ "op": " D " }), "/operation").0,
        Some(json!("delete"))
    );
    assert_eq!(map_at(&m, json!({}), "/operation").0, Some(json!("insert")));
    let (_, violations) = map_at(&m, json!({ "op": "x" }), "/operation");
    assert_eq!(rules(&violations), vec![("mapping.unmapped_code", "/operation")]);
}

#[test]
fn case_type_computed_through_a_table() {
    let m = Mapping::from_toml_str(
        r#"
id = "t"
version = 1
description = "d"
case_type = { from = "ajlx", table = "types" }

[tables.types]
values = { "01" = "inspection", "03" = "coercion" }

[[field]]
target = "inspection.check_date"
when = { case_type = "inspection" }
from = "d"
as = "date"

[[field]]
target = "coercion.start_date"
when = { case_type = "coercion" }
from = "d"
as = "date"
"#,
        "t.toml",
        Path::new("."),
    )
    .unwrap();
    let mapped = m.apply(&json!({ "ajlx": "03", "d": "20210122" }));
    assert_eq!(
        mapped.record,
        json!({ "case_type": "coercion", "coercion": { "start_date": "2021-01-22" } })
    );
    let mapped = m.apply(&json!({ "ajlx": "09", "d": "20210122" }));
    assert_eq!(mapped.record, json!({}));
    assert_eq!(rules(&mapped.violations), vec![("mapping.unmapped_code", "/case_type")]);
    let mapped = m.apply(&json!({ "d": "20210122" }));
    assert_eq!(rules(&mapped.violations), vec![("mapping.missing", "/case_type")]);
}

// ------------------------------------------------------------------------------------ conditions and sources

#[test]
fn field_whose_condition_fails_is_skipped_so_two_fields_can_share_a_target() {
    let m = load(
        r#"
[[field]]
target = "target.id_type"
when = { path = "xdrlb", equals = "自然人" }
from = "zjlx"

[[field]]
target = "target.id_type"
when = { path = "xdrlb", not_equals = "自然人" }
const = "uscc"
"#,
    );
    assert_eq!(
        map_at(
            &m,
            json!({ "xdrlb": "自然人", "zjlx": "resident_id" }),
            "/target/id_type"
        )
        .0,
        Some(json!("resident_id"))
    );
    assert_eq!(
        map_at(&m, json!({ "xdrlb": "法人", "zjlx": "resident_id" }), "/target/id_type").0,
        Some(json!("uscc"))
    );
    assert_eq!(
        map_at(&m, json!({ "zjlx": "resident_id" }), "/target/id_type").0,
        Some(json!("uscc"))
    );
}

#[test]
fn in_exists_and_list_conditions() {
    let m = load(
        r#"
[[field]]
target = "target.legal_representative"
when = { path = "lb", in = ["1", "3"] }
from = "fr"

[[field]]
target = "remarks"
when = [{ path = "bz", exists = true }, { case_type = "penalty" }]
from = "bz"

[[field]]
target = "case_name"
when = { path = "mc", exists = false }
const = "无名称"
"#,
    );
    let mapped = m.apply(&json!({ "lb": 3, "fr": "王五", "bz": "  " }));
    assert_eq!(
        mapped.record,
        json!({ "case_type": "penalty", "target": { "legal_representative": "王五" }, "case_name": "无名称" })
    );
    let mapped = m.apply(&json!({ "lb": "2", "fr": "王五", "bz": "备注", "mc": "x" }));
    assert_eq!(mapped.record, json!({ "case_type": "penalty", "remarks": "备注" }));
}

#[test]
fn fallback_paths_take_the_first_non_empty_value() {
    let m = load(
        r#"
[[field]]
target = "item_code"
from = ["jgsxbm", "sxbm", "old.code"]
"#,
    );
    assert_eq!(
        map_at(&m, json!({ "jgsxbm": "1", "sxbm": "2" }), "/item_code").0,
        Some(json!("1"))
    );
    assert_eq!(
        map_at(&m, json!({ "jgsxbm": " ", "sxbm": "2" }), "/item_code").0,
        Some(json!("2"))
    );
    assert_eq!(
        map_at(&m, json!({ "jgsxbm": null, "old": { "code": 3 } }), "/item_code").0,
        Some(json!("3"))
    );
    assert_eq!(map_at(&m, json!({}), "/item_code").0, None);
}

#[test]
fn concat_joins_present_parts_with_the_separator() {
    let m = load(
        r#"
[[field]]
target = "case_name"
concat = ["xdrmc", "wfxw", { const = "案" }]
separator = ""

[[field]]
target = "target.address"
concat = ["sheng", "shi", "xiang.xx"]
separator = " "
"#,
    );
    let mapped =
        m.apply(&json!({ "xdrmc": "刘强", "wfxw": "无照经营", "shi": "南昌市", "xiang": { "xx": "八一大道1号" } }));
    assert_eq!(mapped.record["case_name"], json!("刘强无照经营案"));
    assert_eq!(mapped.record["target"]["address"], json!("南昌市 八一大道1号"));
    let mapped = m.apply(&json!({}));
    assert_eq!(mapped.record, json!({ "case_type": "penalty" }));
}

#[test]
fn const_is_written_as_is_and_default_fills_missing_values() {
    let m = load(
        r#"
[[field]]
target = "source_channel"
const = "interface"

[[field]]
target = "penalty.hearing_held"
from = "tz"
as = "boolean"
default = false
"#,
    );
    let mapped = m.apply(&json!({}));
    assert_eq!(
        mapped.record,
        json!({ "case_type": "penalty", "source_channel": "interface", "penalty": { "hearing_held": false } })
    );
    let mapped = m.apply(&json!({ "tz": "是" }));
    assert_eq!(mapped.record["penalty"]["hearing_held"], json!(true));
}

#[test]
fn missing_required_value_is_a_missing_violation() {
    let m = load(
        r#"
[[field]]
target = "case_number"
from = "ajbh"
required = true
"#,
    );
    for source in [
        json!({}),
        json!({ "ajbh": "" }),
        json!({ "ajbh": "  " }),
        json!({ "ajbh": null }),
        json!("not an object"),
    ] {
        let mapped = m.apply(&source);
        assert_eq!(
            rules(&mapped.violations),
            vec![("mapping.missing", "/case_number")],
            "{source}"
        );
        assert!(mapped.violations[0].message_zh.contains("ajbh"));
    }
}

#[test]
fn steps_clean_identifiers_and_text() {
    let m = load(
        r#"
[[field]]
target = "agency.credit_code"
from = "dm"
steps = ["normalise_identifier"]

[[field]]
target = "target.name"
from = "mc"
steps = ["halfwidth", "collapse_spaces"]

[[field]]
target = "case_number"
from = "bh"
steps = ["trim", "upper", "remove_spaces"]
"#,
    );
    let mapped = m
        .apply(&json!({ "dm": " 1136 0100-0145 2315 2u\u{200B}", "mc": " ＡＢＣ　 商贸  公司 ", "bh": " ncsj 0012 " }));
    assert_eq!(mapped.record["agency"]["credit_code"], json!("11360100014523152U"));
    assert_eq!(mapped.record["target"]["name"], json!("ABC 商贸 公司"));
    assert_eq!(mapped.record["case_number"], json!("NCSJ0012"));
}

#[test]
fn the_id_number_18_step_converts_an_old_15_digit_id_number_in_the_mapping() {
    let m = load(
        r#"
[[field]]
target = "target.id_number"
from = "zjhm"
steps = ["id_number_18"]
"#,
    );
    let old = m.apply(&json!({ "zjhm": "360426 910101 007" }));
    assert_eq!(old.record["target"]["id_number"], json!("360426199101010071"));
    assert!(old.violations.is_empty(), "{:?}", old.violations);
    let new = m.apply(&json!({ "zjhm": "360426199101010071" }));
    assert_eq!(new.record["target"]["id_number"], json!("360426199101010071"));
}

#[test]
fn an_object_where_a_value_is_expected_is_a_type_violation() {
    let m = load(
        r#"
[[field]]
target = "case_number"
from = "ajbh"
"#,
    );
    let (v, violations) = map_at(&m, json!({ "ajbh": { "a": 1 } }), "/case_number");
    assert_eq!(v, None);
    assert_eq!(rules(&violations), vec![("mapping.type", "/case_number")]);
    // An XML element with attributes: its text is used.
    let (v, _) = map_at(&m, json!({ "ajbh": { "@lx": "1", "#text": "A-1" } }), "/case_number");
    assert_eq!(v, Some(json!("A-1")));
}

// ------------------------------------------------------------------------------------ arrays

#[test]
fn each_maps_array_elements_with_paths_relative_to_the_element() {
    let m = load(
        r#"
[[field]]
target = "officers"
each = "zfry[*]"
fields = [
  { target = "name", from = "xm", steps = ["remove_spaces"] },
  { target = "cert_no", from = ["zfzh", "$.default_cert"] },
]
"#,
    );
    let mapped = m.apply(&json!({
        "zfry": [{ "xm": "张 三", "zfzh": "36001" }, null, { "xm": "李四" }],
        "default_cert": "99999"
    }));
    assert_eq!(
        mapped.record["officers"],
        json!([{ "name": "张三", "cert_no": "36001" }, { "name": "李四", "cert_no": "99999" }])
    );
}

#[test]
fn each_over_a_single_object_treats_it_as_one_element() {
    let m = load(
        r#"
[[field]]
target = "officers"
each = "zfry.ry[*]"
fields = [{ target = "name", from = "xm" }, { target = "cert_no", from = "@zh" }]
"#,
    );
    let mapped = m.apply(&json!({ "zfry": { "ry": { "@zh": "36001", "xm": "张三" } } }));
    assert_eq!(
        mapped.record["officers"],
        json!([{ "name": "张三", "cert_no": "36001" }])
    );
}

#[test]
fn nested_violations_point_into_the_array_element() {
    let m = load(
        r#"
[[field]]
target = "inspection.joint_participants"
each = "bm[*]"
fields = [{ target = "name", from = "mc", required = true }]
"#,
    );
    let mapped = m.apply(&json!({ "bm": [{ "mc": "甲" }, { "dm": "x" }] }));
    assert_eq!(
        rules(&mapped.violations),
        vec![("mapping.missing", "/inspection/joint_participants/1/name")]
    );
}

#[test]
fn zip_pairs_delimited_strings_into_objects() {
    let m = load(
        r#"
[[field]]
target = "officers"
zip = { name = "jcry", cert_no = "zfzh" }
split = ",，、"
steps = ["trim"]
"#,
    );
    let mapped = m.apply(&json!({ "jcry": "张三,李四、王五", "zfzh": "36001，36002,36003" }));
    assert_eq!(
        mapped.record["officers"],
        json!([
            { "name": "张三", "cert_no": "36001" },
            { "name": "李四", "cert_no": "36002" },
            { "name": "王五", "cert_no": "36003" }
        ])
    );
    assert!(mapped.violations.is_empty());
}

#[test]
fn zip_pairs_parallel_arrays() {
    let m = load(
        r#"
[[field]]
target = "officers"
zip = { name = "ry[*]", cert_no = "zh[*]" }
"#,
    );
    let mapped = m.apply(&json!({ "ry": ["张三", "李四"], "zh": [36001, "36002"] }));
    assert_eq!(
        mapped.record["officers"],
        json!([{ "name": "张三", "cert_no": "36001" }, { "name": "李四", "cert_no": "36002" }])
    );
}

#[test]
fn zip_with_different_counts_is_a_violation() {
    let m = load(
        r#"
[[field]]
target = "officers"
zip = { name = "jcry", cert_no = "zfzh" }
"#,
    );
    let mapped = m.apply(&json!({ "jcry": "张三,李四", "zfzh": "36001" }));
    assert_eq!(rules(&mapped.violations), vec![("mapping.zip_length", "/officers")]);
    assert!(mapped.violations[0].message_en.contains("jcry=2") && mapped.violations[0].message_en.contains("zfzh=1"));
    // A member that is absent altogether is not a count mismatch.
    let mapped = m.apply(&json!({ "jcry": "张三,李四" }));
    assert!(mapped.violations.is_empty());
    assert_eq!(
        mapped.record["officers"],
        json!([{ "name": "张三" }, { "name": "李四" }])
    );
}

#[test]
fn string_array_splits_on_the_configured_separators_and_maps_each_element() {
    let m = load(
        r#"
[tables.kinds]
values = { "罚款" = "fine", "警告" = "warning" }

[[field]]
target = "penalty.kinds"
from = "cflb"
split = "|"
table = "kinds"
distinct = true
"#,
    );
    let (v, _) = map_at(&m, json!({ "cflb": "罚款| 警告 |罚款|" }), "/penalty/kinds");
    assert_eq!(v, Some(json!(["fine", "warning"])));
    // Repeated XML elements arrive as an array: each element is mapped.
    let (v, _) = map_at(&m, json!({ "cflb": ["警告", "罚款"] }), "/penalty/kinds");
    assert_eq!(v, Some(json!(["warning", "fine"])));
}

// ------------------------------------------------------------------------------------ load errors

#[test]
fn unknown_key_is_a_load_error_with_line_and_column() {
    let body = r#"
[[field]]
target = "case_number"
form = "ajbh"
"#;
    let err = load_err(body);
    assert_eq!(err.kind, MappingErrorKind::UnknownKey);
    assert_eq!(err.line, Some(line_of(body, "form")));
    assert_eq!(err.column, Some(1));
    assert!(err.message_zh.contains("form"), "{err}");
    assert!(err.message_en.contains("form"), "{err}");
}

#[test]
fn bad_source_path_is_a_load_error_pointing_into_the_path() {
    let body = r#"
[[field]]
target = "case_number"
from = "zfry[x].xm"
"#;
    let err = load_err(body);
    assert_eq!(err.kind, MappingErrorKind::InvalidPath);
    assert_eq!(err.line, Some(line_of(body, "from =")));
    // Column of `x` inside the quoted path.
    assert_eq!(err.column, Some(column_of(body, "x].xm")));
    for bad in ["a..b", "a[", "a]", "", "a b", "$x"] {
        let err = load_err(&format!("[[field]]\ntarget = \"case_number\"\nfrom = \"{bad}\"\n"));
        assert_eq!(err.kind, MappingErrorKind::InvalidPath, "{bad}: {err}");
    }
}

#[test]
fn missing_table_file_is_a_load_error_at_the_file_key() {
    let body = r#"
[tables.kinds]
file = "no_such_table.csv"
"#;
    let err = load_in(&scratch("missing-table"), body).unwrap_err();
    assert_eq!(err.kind, MappingErrorKind::TableFile);
    assert_eq!(err.line, Some(line_of(body, "file =")));
    assert_eq!(err.column, Some(column_of(body, "\"no_such_table.csv\"")));
    assert!(err.message_en.contains("no_such_table.csv"), "{err}");
}

#[test]
fn malformed_csv_table_is_a_load_error_naming_the_csv_line() {
    let dir = scratch("bad-csv");
    std::fs::write(dir.join("kinds.csv"), "source,target\n罚款,fine\n警告\n").unwrap();
    let err = load_in(&dir, "[tables.kinds]\nfile = \"kinds.csv\"\n").unwrap_err();
    assert_eq!(err.kind, MappingErrorKind::TableFile);
    assert!(err.file.ends_with("kinds.csv"), "{err}");
    assert_eq!(err.line, Some(3));
    std::fs::write(dir.join("kinds.csv"), "code,value\n罚款,fine\n").unwrap();
    let err = load_in(&dir, "[tables.kinds]\nfile = \"kinds.csv\"\n").unwrap_err();
    assert_eq!(err.line, Some(1));
    assert!(err.message_en.contains("source,target"), "{err}");
}

#[test]
fn undeclared_table_is_a_load_error_at_the_table_key() {
    let body = r#"
[tables.kinds]
values = { a = "b" }

[[field]]
target = "penalty.procedure"
from = "cx"
table = "procedures"
"#;
    let err = load_err(body);
    assert_eq!(err.kind, MappingErrorKind::UndeclaredTable);
    assert_eq!(err.line, Some(line_of(body, "table = ")));
    assert_eq!(err.column, Some(column_of(body, "\"procedures\"")));
    assert!(
        err.message_zh.contains("procedures") && err.message_en.contains("kinds"),
        "{err}"
    );
}

#[test]
fn unknown_step_type_and_unit_are_load_errors_with_positions() {
    for (line, value) in [
        (r#"steps = ["trim", "titlecase"]"#, "titlecase"),
        (r#"as = "money""#, "money"),
        (r#"unit = "jiao""#, "jiao"),
    ] {
        let body = format!("[[field]]\ntarget = \"penalty.fine_amount\"\nfrom = \"x\"\n{line}\n");
        let err = load_err(&body);
        assert_eq!(err.kind, MappingErrorKind::InvalidValue, "{err}");
        assert_eq!(err.line, Some(line_of(&body, line)), "{err}");
        assert!(
            err.message_en.contains(value) && err.message_zh.contains(value),
            "{err}"
        );
    }
}

#[test]
fn unknown_target_is_a_load_error_listing_the_known_fields() {
    let body = "[[field]]\ntarget = \"penalty.fine_amout\"\nfrom = \"fkje\"\n";
    let err = load_err(body);
    assert_eq!(err.kind, MappingErrorKind::InvalidTarget);
    assert_eq!(err.line, Some(line_of(body, "target")));
    assert!(err.message_en.contains("fine_amount"), "{err}");
    // Shapes are checked too: an object list needs each or zip.
    let err = load_err("[[field]]\ntarget = \"officers\"\nfrom = \"zfry\"\n");
    assert_eq!(err.kind, MappingErrorKind::InvalidTarget);
    let err = load_err(
        "[[field]]\ntarget = \"officers\"\neach = \"zfry[*]\"\nfields = [{ target = \"nmae\", from = \"xm\" }]\n",
    );
    assert!(err.message_en.contains("cert_no"), "{err}");
}

#[test]
fn a_target_inside_another_target_is_a_load_error() {
    let body = "[[field]]\ntarget = \"agency\"\nconst = { name = \"x\" }\n\n[[field]]\ntarget = \"agency.name\"\nfrom = \"jgmc\"\n";
    let err = load_err(body);
    assert_eq!(err.kind, MappingErrorKind::InvalidTarget);
    assert_eq!(err.line, Some(line_of(body, "target = \"agency.name\"")));
}

#[test]
fn field_without_or_with_two_sources_is_a_load_error() {
    let err = load_err("[[field]]\ntarget = \"case_number\"\nsteps = [\"trim\"]\n");
    assert!(err.message_en.contains("no source"), "{err}");
    let err = load_err("[[field]]\ntarget = \"case_number\"\nfrom = \"a\"\nconst = \"b\"\n");
    assert!(err.message_en.contains("exactly one source"), "{err}");
}

#[test]
fn load_error_display_gives_file_line_column_and_both_languages() {
    let err = load_err("[[field]]\ntarget = \"case_number\"\nfrom = \"a\"\nbogus = 1\n");
    let shown = err.to_string();
    let expected_prefix = format!("test.toml:{}:1: ", HEADER.matches('\n').count() + 4);
    assert!(shown.starts_with(&expected_prefix), "{shown}");
    assert!(
        shown.contains("未知的键 bogus") && shown.contains("unknown field `bogus`"),
        "{shown}"
    );
}

#[test]
fn syntax_errors_and_missing_header_keys_are_load_errors() {
    let err = Mapping::from_toml_str("id = \"x\"\nversion = \n", "m.toml", Path::new(".")).unwrap_err();
    assert_eq!(err.kind, MappingErrorKind::Syntax);
    assert_eq!(err.line, Some(2));
    let err = Mapping::from_toml_str("id = \"x\"\ndescription = \"d\"\n", "m.toml", Path::new(".")).unwrap_err();
    assert_eq!(err.kind, MappingErrorKind::MissingKey);
    assert!(err.message_en.contains("version"), "{err}");
}

#[test]
fn test_with_invalid_input_json_is_a_load_error() {
    let body = "[[test]]\nname = \"t\"\ninput_json = '{\"a\": }'\nexpect_accepted = true\n";
    let err = load_err(body);
    assert_eq!(err.kind, MappingErrorKind::InvalidTest);
    assert_eq!(err.line, Some(line_of(body, "input_json")));
}

#[test]
fn loading_a_missing_file_is_an_io_error() {
    let err = Mapping::load(Path::new("/nonexistent/mapping.toml")).unwrap_err();
    assert_eq!(err.kind, MappingErrorKind::Io);
    assert!(err.to_string().starts_with("/nonexistent/mapping.toml: "));
}

// ------------------------------------------------------------------------------------ metadata and runner

#[test]
fn mapping_exposes_id_version_text_and_a_fingerprint_covering_its_tables() {
    let dir = scratch("fingerprint");
    let body = "[tables.k]\nfile = \"k.csv\"\n";
    std::fs::write(dir.join("k.csv"), "source,target\na,b\n").unwrap();
    let first = load_in(&dir, body).unwrap();
    assert_eq!(first.id(), "test-mapping");
    assert_eq!(first.version(), 3);
    assert_eq!(first.description(), "mapping used by the tests");
    assert_eq!(first.case_type(), Some(normalizer::CaseType::Penalty));
    assert!(first.source_text().contains("[tables.k]"));
    assert!(first.fingerprint().starts_with("fnv1a64:"));
    assert_eq!(first.fingerprint(), load_in(&dir, body).unwrap().fingerprint());
    std::fs::write(dir.join("k.csv"), "source,target\na,c\n").unwrap();
    assert_ne!(first.fingerprint(), load_in(&dir, body).unwrap().fingerprint());
}

#[test]
fn a_mapping_loads_from_an_in_memory_bundle_like_from_its_files() {
    let dir = example_dir("nanchang-amr-penalty");
    let from_files = Mapping::load(&dir.join("mapping.toml")).unwrap();
    let files: std::collections::BTreeMap<String, Vec<u8>> = from_files
        .read_files()
        .map(|(f, b)| (f.to_string(), b.to_vec()))
        .collect();
    assert!(files.contains_key("penalty_kinds.csv"), "{:?}", files.keys());
    let from_bundle = Mapping::from_bundle(from_files.source_text(), "mapping.toml", &files).unwrap();
    assert_eq!(from_bundle.fingerprint(), from_files.fingerprint());
    let normalizer = Normalizer::default();
    assert!(run_tests(&from_bundle, &normalizer).passed());
    let sample: Value = serde_json::from_str(
        std::fs::read_to_string(dir.join("samples/records.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        normalizer.normalize(&from_bundle, &sample).record,
        normalizer.normalize(&from_files, &sample).record
    );
}

#[test]
fn a_bundle_without_a_named_code_table_or_with_a_bad_one_names_the_place() {
    let text = format!("{HEADER}[tables.k]\nfile = \"k.csv\"\n");
    let err = Mapping::from_bundle(&text, "m.toml", &Default::default()).unwrap_err();
    assert_eq!(err.kind, MappingErrorKind::TableFile);
    assert_eq!((err.file.as_str(), err.line), ("m.toml", Some(7)));
    assert!(err.to_string().contains("k.csv"), "{err}");
    let files = [("k.csv".to_string(), b"source,target\na,b\na,c\n".to_vec())].into();
    let err = Mapping::from_bundle(&text, "m.toml", &files).unwrap_err();
    assert_eq!((err.file.as_str(), err.line), ("k.csv", Some(3)), "{err}");
}

#[test]
fn test_runner_reports_failures_with_the_differing_pointers() {
    let m = load(
        r#"
[[field]]
target = "case_number"
from = "ajbh"

[[test]]
name = "passes"
input = { ajbh = "A-1" }
expect = { case_type = "penalty", case_number = "A-1" }
expect_accepted = false

[[test]]
name = "fails"
input = { ajbh = "A-2" }
expect = { case_type = "penalty", case_number = "A-1", case_name = "x" }
expect_violations = [{ rule = "mapping.date", pointer = "/penalty/decision_date" }]
[test.expect_fields]
"/case_number" = "A-3"
"#,
    );
    let report = run_tests(&m, &Normalizer::default());
    assert!(!report.passed());
    assert_eq!(report.cases.len(), 2);
    let failures = report.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].name, "fails");
    let text = report.to_string();
    assert!(text.contains("1 passed, 1 failed"), "{text}");
    assert!(text.contains("/case_number: expected \"A-1\", got \"A-2\""), "{text}");
    assert!(text.contains("/case_name: missing"), "{text}");
    assert!(text.contains("/case_number: expected \"A-3\", got \"A-2\""), "{text}");
    assert!(
        text.contains("expected violation mapping.date at /penalty/decision_date not found"),
        "{text}"
    );
}

// ------------------------------------------------------------------------------------ robustness

/// Arbitrary JSON, nested a few levels.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        "[0-9年月日/.:\\- T+Z万元¥,，、]{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z@#]{1,6}", inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A record shaped like the examples' sources, with arbitrary values in known fields.
fn arb_record() -> impl Strategy<Value = Value> {
    let keys = [
        "ajbh",
        "jgdm",
        "jdrq",
        "larq",
        "fkje",
        "mswfsd",
        "cflb",
        "sftz",
        "zfry",
        "xdrlb",
        "cd_operation",
        "jcry",
        "zfzh",
        "ajlx",
        "@czbs",
        "jcxx",
        "qzxx",
        "cfxx",
        "zfbm",
        "xdr",
        "ajmc",
    ];
    prop::collection::vec((prop::sample::select(keys.to_vec()), arb_json()), 0..16)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

fn examples() -> Vec<Mapping> {
    [
        "nanchang-amr-penalty",
        "jiangxi-ecology-soap",
        "internet-plus-behaviour",
    ]
    .iter()
    .map(|n| Mapping::load(&example_dir(n).join("mapping.toml")).unwrap_or_else(|e| panic!("{e}")))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn applying_to_arbitrary_json_never_panics(source in arb_json(), record in arb_record()) {
        thread_local! {
            static MAPPINGS: Vec<Mapping> = examples();
        }
        MAPPINGS.with(|ms| {
            for m in ms {
                let mapped = m.apply(&source);
                prop_assert!(mapped.record.is_object());
                let mapped = m.apply(&record);
                prop_assert!(mapped.record.is_object());
                for v in &mapped.violations {
                    prop_assert!(v.pointer.starts_with('/'));
                    prop_assert!(v.rule.starts_with("mapping."));
                }
            }
            Ok(())
        })?;
    }
}

// ------------------------------------------------------------------------------------ examples

#[test]
fn nanchang_example_mapping_passes_its_embedded_tests() {
    let mapping =
        Mapping::load(&example_dir("nanchang-amr-penalty").join("mapping.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mapping.id(), "nanchang-amr-penalty");
    assert!(mapping.tests().len() >= 6);
    let report = run_tests(&mapping, &Normalizer::default());
    assert!(report.passed(), "{report}");
}

#[test]
fn ecology_example_mapping_passes_its_embedded_tests() {
    let mapping =
        Mapping::load(&example_dir("jiangxi-ecology-soap").join("mapping.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mapping.id(), "jiangxi-ecology-soap");
    assert!(mapping.tests().len() >= 6);
    let report = run_tests(&mapping, &Normalizer::default());
    assert!(report.passed(), "{report}");
}

/// Samples are described by a note: `合规` (valid) or `缺陷` (defective). Valid samples must pass
/// the whole normaliser without any violation; defective ones must be rejected.
fn check_samples(mapping: &Mapping, samples: Vec<(String, Value)>) {
    assert!(samples.len() >= 20, "only {} samples", samples.len());
    let normalizer = Normalizer::default();
    let mut valid = 0;
    let mut problems = Vec::new();
    for (note, source) in &samples {
        let outcome = normalizer.normalize(mapping, source);
        assert!(outcome.record.is_object());
        if note.starts_with("合规") {
            valid += 1;
            if !outcome.violations.is_empty() {
                problems.push(format!("{note}: {:?}", outcome.violations));
            }
        } else {
            assert!(
                note.starts_with("缺陷"),
                "sample note must start with 合规 or 缺陷: {note}"
            );
            if outcome.is_accepted() {
                problems.push(format!("{note}: accepted, but it is a defective sample"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        valid >= 5 && valid < samples.len(),
        "samples must mix valid and defective records"
    );
}

#[test]
fn nanchang_samples_valid_ones_pass_and_defective_ones_are_rejected() {
    let dir = example_dir("nanchang-amr-penalty");
    let mapping = Mapping::load(&dir.join("mapping.toml")).unwrap();
    let text = std::fs::read_to_string(dir.join("samples/records.jsonl")).unwrap();
    let samples = text
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (v["_sample_note"].as_str().unwrap_or("").to_string(), v)
        })
        .collect();
    check_samples(&mapping, samples);
}

#[test]
fn ecology_samples_in_a_soap_envelope_valid_ones_pass_and_defective_ones_are_rejected() {
    let dir = example_dir("jiangxi-ecology-soap");
    let mapping = Mapping::load(&dir.join("mapping.toml")).unwrap();
    let bytes = std::fs::read(dir.join("samples/records.xml")).unwrap();
    let tree = parse_xml(&bytes, &XmlLimits::default()).unwrap();
    let records = find_records(&tree, "Envelope.Body.queryCasesResponse.return.case");
    // Each <case> follows a comment saying what it is.
    let notes: Vec<String> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("<!-- ")
                .and_then(|l| l.strip_suffix(" -->"))
                .map(str::to_string)
        })
        .collect();
    assert_eq!(notes.len(), records.len());
    check_samples(&mapping, notes.into_iter().zip(records.into_iter().cloned()).collect());
}

#[test]
fn a_loaded_mapping_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Mapping>();
}

// ------------------------------------------------------------------------------------ 互联网+监管 behaviour data

fn internet_plus_behaviour() -> Mapping {
    Mapping::load(&example_dir("internet-plus-behaviour").join("mapping.toml")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn internet_plus_behaviour_mapping_passes_its_embedded_tests() {
    let mapping = internet_plus_behaviour();
    assert_eq!(mapping.id(), "internet-plus-behaviour");
    assert!(mapping.tests().len() >= 12);
    let report = run_tests(&mapping, &Normalizer::default());
    assert!(report.passed(), "{report}");
}

/// Like the other examples' samples; in addition each defective line names, in `_sample_expect`,
/// the violation (`rule`, `pointer`) it must raise, so a sample rejected for another reason fails.
#[test]
fn internet_plus_behaviour_samples_valid_ones_pass_and_defective_ones_are_rejected() {
    let dir = example_dir("internet-plus-behaviour");
    let mapping = internet_plus_behaviour();
    let text = std::fs::read_to_string(dir.join("samples/records.jsonl")).unwrap();
    let samples: Vec<(String, Value)> = text
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (v["_sample_note"].as_str().unwrap_or("").to_string(), v)
        })
        .collect();
    assert!(samples.len() >= 30, "only {} samples", samples.len());
    for kind in ["check", "punish", "force"] {
        for valid in [true, false] {
            assert!(
                samples
                    .iter()
                    .any(|(note, v)| v["behaviour_type"] == kind && note.starts_with("合规") == valid),
                "no {} sample of behaviour type {kind}",
                if valid { "valid" } else { "defective" }
            );
        }
    }
    let normalizer = Normalizer::default();
    let mut problems = Vec::new();
    for (note, source) in &samples {
        let expected = &source["_sample_expect"];
        if note.starts_with("合规") {
            assert!(expected.is_null(), "{note}: a valid sample expects no violation");
            continue;
        }
        let (Some(rule), Some(pointer)) = (expected["rule"].as_str(), expected["pointer"].as_str()) else {
            panic!("{note}: a defective sample names the violation it raises in _sample_expect");
        };
        let outcome = normalizer.normalize(&mapping, source);
        let found = outcome
            .violations
            .iter()
            .any(|v| v.is_error() && v.rule == rule && v.pointer == pointer);
        if !found {
            problems.push(format!(
                "{note}: expected {rule} at {pointer}, got {:?}",
                rules(&outcome.violations)
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    check_samples(&mapping, samples);
}

#[test]
fn internet_plus_behaviour_sample_with_province_rule_keeps_jiangxi_agencies() {
    // The gateway runs with the province set: every valid sample's agency is in Jiangxi (36).
    let dir = example_dir("internet-plus-behaviour");
    let mapping = internet_plus_behaviour();
    let normalizer = Normalizer::new(normalizer::rules::RuleOptions {
        agency_region_prefix: Some("36".to_string()),
        catalogue: None,
        ..Default::default()
    })
    .unwrap();
    let text = std::fs::read_to_string(dir.join("samples/records.jsonl")).unwrap();
    for line in text.lines() {
        let source: Value = serde_json::from_str(line).unwrap();
        let note = source["_sample_note"].as_str().unwrap_or("");
        if note.starts_with("合规") {
            let outcome = normalizer.normalize(&mapping, &source);
            assert!(outcome.violations.is_empty(), "{note}: {:?}", outcome.violations);
        }
    }
}

/// A row shaped like the exchange table, with arbitrary values in the columns the mapping reads.
fn arb_behaviour_row() -> impl Strategy<Value = Value> {
    let keys = [
        "supervise_item_implement_code",
        "supervise_item_check_icode",
        "implement_institution_code",
        "area_number",
        "administrative_cp_na",
        "administrative_cp_ce_type",
        "administrative_cp_ui_code",
        "check_action_code",
        "check_date",
        "check_personnel",
        "check_personnel_code",
        "check_result",
        "penalty_kind",
        "fine_amount",
        "decision_date",
        "force_kind",
        "measure_start",
        "entrust_dept",
        "check_basis",
        "cd_operation",
    ];
    let kind = prop::sample::select(vec!["check", "punish", "force", "other"]);
    (
        kind,
        prop::collection::vec((prop::sample::select(keys.to_vec()), arb_json()), 0..14),
    )
        .prop_map(|(kind, kv)| {
            let mut row: serde_json::Map<String, Value> = kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            row.insert("behaviour_type".to_string(), json!(kind));
            Value::Object(row)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn internet_plus_behaviour_never_panics_on_arbitrary_rows(row in arb_behaviour_row()) {
        thread_local! {
            static MAPPING: Mapping = internet_plus_behaviour();
            static NORMALIZER: Normalizer = Normalizer::default();
        }
        MAPPING.with(|m| NORMALIZER.with(|n| {
            let outcome = n.normalize(m, &row);
            prop_assert!(outcome.record.is_object());
            for v in &outcome.violations {
                prop_assert!(v.pointer.starts_with('/'));
            }
            Ok(())
        }))?;
    }
}

/// The assumed catalogue answer (`mappings/internet-plus-catalogue/samples/catalogue.json`) loaded
/// as the rules' catalogue: every valid inspection sample's item is in it ("清单之外无检查"), and
/// an item that is not is rejected.
#[test]
fn internet_plus_catalogue_sample_covers_the_behaviour_samples() {
    let text = std::fs::read_to_string(example_dir("internet-plus-catalogue").join("samples/catalogue.json")).unwrap();
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["code"], json!("200"));
    let rows = answer["data"]["rows"].as_array().unwrap();
    assert_eq!(answer["data"]["total"].as_u64(), Some(rows.len() as u64));
    let mut catalogue = normalizer::rules::Catalogue::default();
    let codes: Vec<&str> = rows.iter().map(|r| r["catalog_code"].as_str().unwrap()).collect();
    for row in rows {
        let code = row["catalog_code"].as_str().unwrap();
        assert!(code.len() == 14 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        let parent = row["parent_code"].as_str().unwrap();
        assert!(parent.is_empty() || codes.contains(&parent), "{code}: parent {parent}");
        let agency = row["implement_institution_code"].as_str().unwrap();
        let parsed = normalizer::standards::credit_code::CreditCode::parse(agency);
        assert!(parsed.is_ok_and(|c| c.as_str() == agency), "{code}: {agency}");
        if row["status"] == json!("1") {
            catalogue.insert(i32::try_from(row["year"].as_i64().unwrap()).unwrap(), code);
        }
    }
    let normalizer = Normalizer::new(normalizer::rules::RuleOptions {
        agency_region_prefix: Some("36".to_string()),
        catalogue: Some(catalogue),
        ..Default::default()
    })
    .unwrap();
    let mapping = internet_plus_behaviour();
    let samples =
        std::fs::read_to_string(example_dir("internet-plus-behaviour").join("samples/records.jsonl")).unwrap();
    let mut inspections = 0;
    for line in samples.lines() {
        let mut source: Value = serde_json::from_str(line).unwrap();
        let note = source["_sample_note"].as_str().unwrap_or("").to_string();
        if !note.starts_with("合规") {
            continue;
        }
        let outcome = normalizer.normalize(&mapping, &source);
        assert!(outcome.violations.is_empty(), "{note}: {:?}", outcome.violations);
        if source["behaviour_type"] == json!("check") && source["cd_operation"] != json!("d") {
            inspections += 1;
            // 36010000002002 is in the sample answer but disabled (status 0): outside the list.
            source["supervise_item_implement_code"] = json!("36010000002002");
            let outcome = normalizer.normalize(&mapping, &source);
            assert!(!outcome.is_accepted(), "{note}");
            assert!(
                rules(&outcome.violations).contains(&("rule.item_not_in_catalogue", "/item_code")),
                "{note}: {:?}",
                outcome.violations
            );
        }
    }
    assert!(inspections >= 5);
}

/// A mapping whose source names the supervision item instead of coding it: its embedded tests
/// run with a catalogue in the normaliser, which gives the code (or says why not).
#[test]
fn embedded_tests_of_a_mapping_looking_up_items_by_name_run_with_the_catalogue() {
    let dir = example_dir("nanchang-amr-penalty");
    let text = std::fs::read_to_string(dir.join("mapping.toml")).unwrap();
    let fields = text.split("\n[[test]]").next().unwrap();
    let coded = "from = [\"jgsxbm\", \"sxbm\"]         # 2020 年以前的记录用 sxbm\nsteps = [\"remove_spaces\", \"halfwidth\"]\nrequired = true\n";
    assert!(fields.contains(coded));
    let named = fields.replace(
        coded,
        "from = [\"jgsxbm\", \"sxbm\"]\nsteps = [\"remove_spaces\", \"halfwidth\"]\n\n[[field]]\ntarget = \"item_name\"\nfrom = \"sxmc\"\nsteps = [\"trim\"]\n",
    );
    let record = |name: &str| {
        format!(
            "input = {{ ajbh = \"NCSJ-CF-2024-000001\", ajmc = \"测试\", cfjdswh = \"洪市监罚〔2024〕1号\", jgmc = \"南昌市市场监督管理局\", \
             jgdm = \"11360100014523152U\", xzqh = \"360100\", sxmc = \"{name}\", xdrmc = \"南昌赣江商贸有限公司\", \
             xdrlb = \"法人及非法人组织\", xdrzjlx = \"统一社会信用代码\", xdrzjhm = \"91360102MA35G7K86A\", \
             cfyj = \"《中华人民共和国价格法》第十三条\", wfss = \"未按规定明码标价\", cflb = \"警告\", cfnr = \"警告\", \
             cfcx = \"普通程序\", sftz = \"否\", ajly = \"02\", larq = \"2024-01-05\", jdrq = \"2024-01-22\", jarq = \"2024-02-08\", \
             zfry = [{{ xm = \"张三\", zfzh = \"36010020001\" }}, {{ xm = \"李四\", zfzh = \"36010020002\" }}], cd_operation = \"i\" }}\n"
        )
    };
    let mapping_text = format!(
        "{named}\n[[test]]\nname = \"名称查得编码\"\n{}expect_accepted = true\n[test.expect_fields]\n\"/item_code\" = \"36010000100012\"\n\"/item_name\" = \"对《价格监督》的检查\"\n\n\
         [[test]]\nname = \"名称对应多个事项\"\n{}expect_accepted = false\nexpect_violations = [{{ rule = \"catalogue.item_name_ambiguous\", pointer = \"/item_code\" }}]\n",
        record("对《价格监督》的检查"),
        record("计量器具"),
    );
    let mapping = Mapping::from_toml_str(&mapping_text, "mapping.toml", &dir).unwrap_or_else(|e| panic!("{e}"));
    let catalogue = normalizer::rules::Catalogue::from_csv(
        "year,item_code,name\n2024,36010000100012,价格监督检查\n2024,36010000100017,计量器具监督检查\n2024,36010000100018,计量器具强制检定监督检查\n",
    )
    .unwrap();
    let with_catalogue = Normalizer::new(normalizer::rules::RuleOptions {
        catalogue: Some(catalogue),
        ..Default::default()
    })
    .unwrap();
    let report = normalizer::mapping_tests::run_tests(&mapping, &with_catalogue);
    assert!(report.passed(), "{report}");
    let without = normalizer::mapping_tests::run_tests(&mapping, &Normalizer::default());
    assert!(!without.passed(), "without a catalogue no code is found: {without}");
    // A stream normalised into one outcome: each record looks up its own name.
    let mut outcome = normalizer::Outcome::default();
    for (case, code) in mapping.tests().iter().zip([Some("36010000100012"), None]) {
        let mut input = case.input.clone();
        with_catalogue.normalize_into(&mapping, &input, &mut outcome);
        assert_eq!(
            outcome.record.get("item_code").and_then(Value::as_str),
            code,
            "{}",
            case.name
        );
        input["sxmc"] = json!("价格监督检查");
        with_catalogue.normalize_into(&mapping, &input, &mut outcome);
        assert_eq!(outcome.record["item_code"], "36010000100012");
    }
}

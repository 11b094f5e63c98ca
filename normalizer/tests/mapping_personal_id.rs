//! Code tables never carry a person's identifier: a table (CSV or inline, in a mapping or in a
//! fragment it includes) holding a resident ID number is refused at load with rule
//! `mapping.table_personal_id`, naming the table, the file and line, the number masked, and the
//! step `id_number_18` as the fix. Tables of credit codes or 15-digit registration numbers load.

use normalizer::mapping::{Mapping, MappingError, MappingErrorKind};
use std::collections::BTreeMap;

/// A mapping with one CSV table `ids` (file `ids.csv`) used by the target's ID number field.
const MAPPING: &str = r#"id = "t"
version = 1
description = "身份证号码对照表测试"
case_type = "penalty"

[tables.ids]
file = "ids.csv"

[[field]]
target = "target.id_number"
from = "sfzh"
table = "ids"
"#;

fn load(text: &str, files: &[(&str, &str)]) -> Result<Mapping, MappingError> {
    let files: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(name, body)| (name.to_string(), body.as_bytes().to_vec()))
        .collect();
    Mapping::from_bundle(text, "mapping.toml", &files)
}

/// The refusal of a table, with the full numbers it must not show.
fn refused(err: &MappingError, full_numbers: &[&str]) -> String {
    assert_eq!(err.kind, MappingErrorKind::PersonalIdentifier, "{err}");
    assert_eq!(err.kind.rule_id(), Some("mapping.table_personal_id"));
    let text = err.to_string();
    for number in full_numbers {
        assert!(
            !text.contains(number),
            "the full number {number} is in the message: {text}"
        );
    }
    for part in ["mapping.table_personal_id", "id_number_18"] {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
    assert!(
        text.contains("代码表") && text.contains("code table"),
        "bilingual: {text}"
    );
    text
}

#[test]
fn a_lookup_table_from_15_digit_to_18_character_ids_is_refused_with_the_number_masked() {
    let csv = "source,target,note\n\
               360426910101007,360426199101010071,一代证\n";
    let err = load(MAPPING, &[("ids.csv", csv)]).expect_err("refused");
    let text = refused(&err, &["360426910101007", "360426199101010071"]);
    assert_eq!((err.file.as_str(), err.line), ("ids.csv", Some(2)), "{text}");
    assert!(text.contains("3604*******1007"), "{text}");
    assert!(text.contains("ids"), "{text}");
}

#[test]
fn an_18_character_id_as_a_code_table_value_is_refused() {
    let csv = "source,target\n张三,36010219850315202X\n";
    let err = load(MAPPING, &[("ids.csv", csv)]).expect_err("refused");
    let text = refused(&err, &["36010219850315202X"]);
    assert!(text.contains("3601**********202X"), "{text}");
    assert!(text.contains("target"), "{text}");
}

#[test]
fn an_inline_table_holding_an_id_is_refused_at_its_line_in_the_mapping_file() {
    let text = MAPPING.replace(
        "file = \"ids.csv\"",
        "values = { \"360426910101007\" = \"360426199101010071\" }",
    );
    let err = load(&text, &[]).expect_err("refused");
    let shown = refused(&err, &["360426910101007", "360426199101010071"]);
    assert_eq!((err.file.as_str(), err.line), ("mapping.toml", Some(7)), "{shown}");
}

#[test]
fn a_fragments_table_holding_an_id_is_refused_naming_the_fragments_file() {
    let text = MAPPING.replace("[tables.ids]\nfile = \"ids.csv\"\n", "").replace(
        "case_type = \"penalty\"\n",
        "case_type = \"penalty\"\ninclude = [\"shared/common.toml\"]\n",
    );
    let fragment = "description = \"共用\"\n\n[tables.ids]\nfile = \"ids.csv\"\n";
    let csv = "source,target\n1,ok\n36010219850315202x,person\n";
    let err = load(&text, &[("shared/common.toml", fragment), ("shared/ids.csv", csv)]).expect_err("refused");
    let shown = refused(&err, &["36010219850315202x", "36010219850315202X"]);
    assert_eq!((err.file.as_str(), err.line), ("shared/ids.csv", Some(3)), "{shown}");
}

#[test]
fn tables_of_credit_codes_registration_numbers_phones_and_dates_still_load() {
    let text = MAPPING.replace(
        "[tables.ids]\nfile = \"ids.csv\"\n",
        "[tables.ids]\nfile = \"ids.csv\"\n\n[tables.registrations]\nfile = \"registrations.csv\"\n\n[tables.misc]\nvalues = { \"13907910000\" = \"mobile\", \"0791-86123456\" = \"landline\", \"20210122\" = \"2021-01-22\" }\n",
    );
    let credit_codes = "source,target,note\n\
                        91360102MA35G7K86A,91360102MA35G7K86A,企业\n\
                        11360100014523152U,nanchang_amr,机关\n\
                        92360111MA39B6R17J,individual,个体工商户\n";
    // 15-digit business registration numbers (注册号) on their own, some with digits 7-12 that
    // read as a date: not mapped to an 18-character ID, so not a lookup of ID numbers.
    let registrations = "source,target\n\
                         360100210012345,91360102MA35G7K86A\n\
                         360426910101007,registered_before_2015\n\
                         360102850315202,360102\n";
    let mapping = load(
        &text,
        &[("ids.csv", credit_codes), ("registrations.csv", registrations)],
    )
    .unwrap_or_else(|e| panic!("tables without personal identifiers load: {e}"));
    assert_eq!(mapping.id(), "t");
}

#[test]
fn every_example_mapping_still_loads() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&root).expect("mappings/").flatten() {
        let path = entry.path().join("mapping.toml");
        if path.is_file() {
            Mapping::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            loaded += 1;
        }
    }
    assert!(loaded >= 3, "example mappings loaded: {loaded}");
}

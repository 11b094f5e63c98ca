//! Mapping reuse: fragments named in `include` share fields and code tables between the
//! mappings of one system; a mapping's own field or table replaces the fragment's; a bundle
//! (a stored version) carries the fragments and loads to the same mapping.

use normalizer::mapping::{join_relative, Mapping, MappingErrorKind};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A system folder: `common/fields.toml` + `common/target_kinds.csv`, and one mapping per
/// case type under `penalty/` and `coercion/`.
fn system(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("normalizer-include-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["common", "penalty", "coercion"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(
        dir.join("common/fields.toml"),
        r#"
description = "赣州某系统三类案件共用的字段"

[tables.target_kinds]
file = "target_kinds.csv"

[[field]]
target = "agency.name"
from = "ZFZTMC"
required = true

[[field]]
target = "agency.credit_code"
from = "ZFZTDM"
steps = ["normalise_identifier"]

[[field]]
target = "target.kind"
from = "XDRLB"
table = "target_kinds"

[[field]]
target = "target.name"
from = "XDRMC"
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("common/target_kinds.csv"),
        "source,target\n法人,legal_person\n自然人,natural_person\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("penalty/mapping.toml"),
        r#"
id = "gz-penalty"
version = 1
description = "处罚"
case_type = "penalty"
include = ["../common/fields.toml"]

[[field]]
target = "case_number"
from = "AJBH"

[[field]]
target = "target.name"
from = "DSRMC"
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("coercion/mapping.toml"),
        r#"
id = "gz-coercion"
version = 1
description = "强制"
case_type = "coercion"
include = ["../common/fields.toml"]

[tables.target_kinds]
values = { "单位" = "legal_person", "个人" = "natural_person" }

[[field]]
target = "case_number"
from = "QZBH"
"#,
    )
    .unwrap();
    dir
}

#[test]
fn mappings_of_one_system_share_the_fields_and_code_tables_of_an_included_fragment() {
    let dir = system("share");
    let penalty = Mapping::load(&dir.join("penalty/mapping.toml")).unwrap_or_else(|e| panic!("{e}"));
    let record = json!({"ZFZTMC": "赣州市市场监督管理局", "ZFZTDM": "11360700-01450026XX",
        "XDRLB": "法人", "XDRMC": "旧名称", "DSRMC": "赣州某某有限公司", "AJBH": "GZ-1"});
    let mapped = penalty.apply(&record);
    assert_eq!(mapped.record["agency"]["name"], "赣州市市场监督管理局");
    assert_eq!(mapped.record["agency"]["credit_code"], "1136070001450026XX");
    assert_eq!(
        mapped.record["target"]["kind"], "legal_person",
        "the fragment's code table"
    );
    assert_eq!(
        mapped.record["target"]["name"], "赣州某某有限公司",
        "the mapping's own field replaces the fragment's"
    );
    assert_eq!(mapped.record["case_number"], "GZ-1");

    let coercion = Mapping::load(&dir.join("coercion/mapping.toml")).unwrap_or_else(|e| panic!("{e}"));
    let mapped =
        coercion.apply(&json!({"ZFZTMC": "赣州市市场监督管理局", "XDRLB": "单位", "XDRMC": "某公司", "QZBH": "Q-1"}));
    assert_eq!(
        mapped.record["target"]["kind"], "legal_person",
        "the mapping's own table replaces the fragment's"
    );
    assert_eq!(mapped.record["target"]["name"], "某公司", "the fragment's field");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_mapping_with_fragments_loads_from_its_files_in_memory_to_the_same_fingerprint() {
    let dir = system("bundle");
    let from_disk = Mapping::load(&dir.join("penalty/mapping.toml")).unwrap();
    let files: BTreeMap<String, Vec<u8>> = from_disk
        .read_files()
        .map(|(name, bytes)| (name.to_string(), bytes.to_vec()))
        .collect();
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        ["../common/fields.toml", "../common/target_kinds.csv"]
    );
    let from_memory = Mapping::from_bundle(from_disk.source_text(), "mapping.toml", &files).unwrap();
    assert_eq!(from_memory.fingerprint(), from_disk.fingerprint());

    // A change in the fragment changes the fingerprint of every mapping that includes it.
    let mut changed = files.clone();
    changed.insert(
        "../common/target_kinds.csv".into(),
        b"source,target\n\xe6\xb3\x95\xe4\xba\xba,natural_person\n".to_vec(),
    );
    let other = Mapping::from_bundle(from_disk.source_text(), "mapping.toml", &changed).unwrap();
    assert_ne!(other.fingerprint(), from_disk.fingerprint());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_error_in_a_fragment_names_the_fragment_file_and_line() {
    let dir = system("error");
    std::fs::write(
        dir.join("common/fields.toml"),
        "[[field]]\ntarget = \"agency.name\"\nfrom = \"ZFZTMC\"\n\n[[field]]\ntarget = \"agency.nmae\"\nfrom = \"X\"\n",
    )
    .unwrap();
    let err = Mapping::load(&dir.join("penalty/mapping.toml")).unwrap_err();
    assert_eq!(err.kind, MappingErrorKind::InvalidTarget);
    assert!(err.file.ends_with("common/fields.toml"), "{}", err.file);
    assert_eq!(err.line, Some(6), "{err}");
    assert!(err.to_string().contains("agency.nmae"), "{err}");

    std::fs::remove_file(dir.join("common/fields.toml")).unwrap();
    let err = Mapping::load(&dir.join("penalty/mapping.toml")).unwrap_err();
    assert!(err.file.ends_with("penalty/mapping.toml"), "{}", err.file);
    assert!(err.to_string().contains("fields.toml"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_fragment_may_not_include_further_fragments_nor_declare_an_id() {
    let dir = system("nested");
    std::fs::write(dir.join("common/fields.toml"), "include = [\"more.toml\"]\n").unwrap();
    let err = Mapping::load(&dir.join("penalty/mapping.toml")).unwrap_err();
    assert!(err.to_string().contains("include"), "{err}");
    std::fs::write(dir.join("common/fields.toml"), "id = \"x\"\n").unwrap();
    let err = Mapping::load(&dir.join("penalty/mapping.toml")).unwrap_err();
    assert!(err.to_string().contains("id"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn relative_paths_of_fragment_tables_are_resolved_against_the_mapping_folder() {
    assert_eq!(join_relative("../common", "ids.csv"), "../common/ids.csv");
    assert_eq!(join_relative("../common", "../shared/ids.csv"), "../shared/ids.csv");
    assert_eq!(join_relative("shared/./x", "../ids.csv"), "shared/ids.csv");
    assert_eq!(join_relative("", "ids.csv"), "ids.csv");
    assert_eq!(join_relative("../../a", "../../b.csv"), "../../../b.csv");
}

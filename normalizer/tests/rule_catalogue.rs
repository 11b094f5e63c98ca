//! The README's table of rule ids ("Rule ids (校验规则编号)"), with the "Rule ids" tables of the
//! pages under `docs/`, names every rule id the code can put in a violation: operators filter and
//! replay by these ids, so a new rule must be documented.

use std::path::{Path, PathBuf};

/// Prefixes of violation rule ids.
const RULE_PREFIXES: &[&str] = &[
    "input.",
    "text.",
    "mapping.",
    "schema.",
    "format.",
    "uscc.",
    "id_number.",
    "region.",
    "case_code.",
    "rule.",
    "catalogue.",
    "attachment.",
];

/// Literals with those prefixes that are not violation rule ids: audit-log actions of the mapping
/// lifecycle and a file name.
const NOT_RULES: &[&str] = &[
    "mapping.activate",
    "mapping.dry_run",
    "mapping.import",
    "mapping.rollback",
    "mapping.upload",
    "mapping.toml",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The contents of the string literals in `code` that look like rule ids.
fn rule_literals(code: &str) -> Vec<String> {
    code.split('"')
        .skip(1)
        .step_by(2)
        .filter(|lit| {
            RULE_PREFIXES.iter().any(|p| lit.starts_with(p) && lit.len() > p.len())
                && lit
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn the_documented_rule_table_names_every_rule_id_in_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let validation = std::fs::read_to_string(root.join("docs/validation.md")).expect("docs/validation.md");
    assert!(
        validation.contains("### Rule ids"),
        "docs/validation.md has a 'Rule ids' section"
    );
    // Every "Rule ids" table of the guides (docs/validation.md holds the main one; feature guides
    // such as docs/spreadsheets.md hold their own).
    let mut table = String::new();
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "md") {
            let page = std::fs::read_to_string(&path).expect("docs page");
            for section in page.split("### Rule ids").skip(1) {
                table.push_str(section.split("\n## ").next().unwrap_or_default());
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["normalizer/src", "gateway/src", "adapters/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "source files found: {}", files.len());
    let mut missing = Vec::new();
    let mut seen = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source file");
        // Unit tests at the end of a file use made-up ids.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for id in rule_literals(code) {
            if NOT_RULES.contains(&id.as_str()) {
                continue;
            }
            seen += 1;
            if !table.contains(&format!("`{id}`")) {
                missing.push(format!("{id} ({})", file.display()));
            }
        }
    }
    assert!(seen > 40, "rule ids found in the code: {seen}");
    assert!(
        missing.is_empty(),
        "rule ids missing from the Rule ids tables of docs/: {missing:#?}"
    );
}

#[test]
fn rule_literals_are_found_and_other_text_is_not() {
    let code = r#"Violation::error(p, "rule.date_order", None, "日期", "dates"); let f = "mapping.toml"; x("Rule.X", "rule.")"#;
    assert_eq!(rule_literals(code), vec!["rule.date_order", "mapping.toml"]);
}

//! Unified diffs (the `diff -u` format) between two stored mapping versions: the mapping text and
//! every code-table file that differs, for the audit entry of an activation.

use crate::store::StoredVersion;
use similar::TextDiff;
use std::collections::BTreeSet;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// The unified diff of two texts as lines (headers `--- old_name` / `+++ new_name`, hunks
/// `@@ ... @@`, lines prefixed with ` `, `-` or `+`); empty when the texts are equal.
pub fn unified_diff_lines(old_name: &str, old: &str, new_name: &str, new: &str) -> Vec<String> {
    if old == new {
        return Vec::new();
    }
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(CONTEXT)
        .header(old_name, new_name)
        .to_string()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The diff from version `old` (None: nothing before, every line is added) to `new`: the
/// mapping text first, then each code-table file that differs, in file-name order.
pub fn version_diff(old: Option<&StoredVersion>, new: &StoredVersion) -> Vec<String> {
    let label = |v: Option<&StoredVersion>, file: &str| match v {
        Some(v) => format!("{file} (v{})", v.version),
        None => "/dev/null".to_string(),
    };
    let mut lines = unified_diff_lines(
        &label(old, "mapping.toml"),
        old.map_or("", |v| v.mapping_toml.as_str()),
        &label(Some(new), "mapping.toml"),
        &new.mapping_toml,
    );
    let files: BTreeSet<&String> = new
        .code_tables
        .keys()
        .chain(old.iter().flat_map(|o| o.code_tables.keys()))
        .collect();
    for file in files {
        let before = old.and_then(|o| o.code_tables.get(file));
        let after = new.code_tables.get(file);
        lines.extend(unified_diff_lines(
            &before.map_or("/dev/null".to_string(), |_| label(old, file)),
            before.map_or("", String::as_str),
            &after.map_or("/dev/null".to_string(), |_| label(Some(new), file)),
            after.map_or("", String::as_str),
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_line_and_an_added_row_show_as_minus_and_plus_lines() {
        let lines = unified_diff_lines(
            "a (v1)",
            "id = \"x\"\nversion = 1\n",
            "a (v2)",
            "id = \"x\"\nversion = 2\n",
        );
        assert_eq!(lines[0], "--- a (v1)");
        assert_eq!(lines[1], "+++ a (v2)");
        assert!(lines[2].starts_with("@@ "), "{lines:?}");
        assert!(lines.contains(&"-version = 1".to_string()), "{lines:?}");
        assert!(lines.contains(&"+version = 2".to_string()), "{lines:?}");
        assert!(lines.contains(&" id = \"x\"".to_string()), "{lines:?}");
        assert!(unified_diff_lines("a", "same\n", "b", "same\n").is_empty());
    }
}

//! The data the proposer knows: field names departmental systems use for each canonical field
//! (`normalizer/data/suggest_dictionary.csv`), common code values (`suggest_values.csv`), and
//! how names are compared (case-insensitive, separators `_ - .` and spaces ignored, common
//! prefixes and suffixes stripped).

use std::collections::HashMap;
use std::sync::OnceLock;

const DICTIONARY_CSV: &str = include_str!("../../data/suggest_dictionary.csv");
const VALUES_CSV: &str = include_str!("../../data/suggest_values.csv");

/// Prefixes departmental systems put before a field name (`cf_`, `t_`, `f_`, ...), compared after
/// normalising; stripped one at a time when the whole name is not in the dictionary.
const PREFIXES: &[&str] = &[
    "cf", "jc", "qz", "aj", "t", "f", "c", "fld", "col", "str", "s", "n", "d", "dt",
];
/// Suffixes likewise (`_mc` 名称, `_dm` 代码, `_bm` 编码, `_str`, `_text`, ...).
const SUFFIXES: &[&str] = &[
    "mc", "dm", "bm", "str", "text", "txt", "value", "val", "name", "code", "id", "no", "info",
];

/// The loaded dictionaries.
#[derive(Debug)]
pub(crate) struct Dictionary {
    /// Normalised name → canonical targets (in file order).
    names: HashMap<String, Vec<String>>,
    /// (target, normalised value) → canonical code.
    values: HashMap<(String, String), String>,
    /// Per target, the known values (normalised) with their codes, for containment guesses.
    values_by_target: HashMap<String, Vec<(String, String)>>,
}

/// How a name matched the dictionary.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NameMatch {
    /// The whole normalised name is in the dictionary.
    Exact,
    /// After stripping a prefix or suffix (the stripped form is given).
    Stripped(String),
    /// The name contains a dictionary name of at least 4 characters (or 2 Chinese ones).
    Contains(String),
}

impl NameMatch {
    /// The name evidence's weight.
    pub fn weight(&self) -> f64 {
        match self {
            NameMatch::Exact => 0.7,
            NameMatch::Stripped(_) => 0.58,
            NameMatch::Contains(_) => 0.45,
        }
    }
}

/// A name normalised for comparison: lower case, without `_ - .`, spaces, brackets and the
/// Chinese `（）`.
pub(crate) fn normalise_name(name: &str) -> String {
    name.chars()
        .filter(|c| {
            !matches!(
                c,
                '_' | '-' | '.' | ' ' | '@' | '#' | '(' | ')' | '（' | '）' | '[' | ']' | '*'
            )
        })
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_han(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

impl Dictionary {
    /// The dictionaries shipped with the crate.
    pub fn embedded() -> &'static Dictionary {
        static DICT: OnceLock<Dictionary> = OnceLock::new();
        DICT.get_or_init(|| Dictionary::parse(DICTIONARY_CSV, VALUES_CSV))
    }

    fn parse(names_csv: &str, values_csv: &str) -> Dictionary {
        let mut names: HashMap<String, Vec<String>> = HashMap::new();
        for row in data_rows(names_csv) {
            if let [name, target] = row.as_slice() {
                let list = names.entry(normalise_name(name)).or_default();
                if !list.contains(target) {
                    list.push(target.clone());
                }
            }
        }
        let mut values = HashMap::new();
        let mut values_by_target: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for row in data_rows(values_csv) {
            if let [target, value, code] = row.as_slice() {
                let v = value.trim().to_lowercase();
                values.insert((target.clone(), v.clone()), code.clone());
                values_by_target
                    .entry(target.clone())
                    .or_default()
                    .push((v, code.clone()));
            }
        }
        Dictionary {
            names,
            values,
            values_by_target,
        }
    }

    /// Number of names in the field-name dictionary.
    #[cfg(test)]
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// Every target the dictionary names.
    #[cfg(test)]
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.names.values().flatten().map(String::as_str)
    }

    /// The targets `name` is a known name of, with how it matched.
    pub fn lookup(&self, name: &str) -> Vec<(String, NameMatch)> {
        let norm = normalise_name(name);
        if norm.is_empty() {
            return Vec::new();
        }
        if let Some(targets) = self.names.get(&norm) {
            return targets.iter().map(|t| (t.clone(), NameMatch::Exact)).collect();
        }
        let mut out: Vec<(String, NameMatch)> = Vec::new();
        let push = |targets: &Vec<String>, m: NameMatch, out: &mut Vec<(String, NameMatch)>| {
            for t in targets {
                if !out.iter().any(|(o, _)| o == t) {
                    out.push((t.clone(), m.clone()));
                }
            }
        };
        // Strip separator-delimited affixes first (`cf_xdrmc`, `xdrmc_str`), then bare ones.
        let lower = name.to_lowercase();
        let parts: Vec<&str> = lower.split(['_', '-', '.', ' ']).filter(|p| !p.is_empty()).collect();
        if parts.len() > 1 {
            for skip_front in 0..parts.len() {
                for skip_back in 0..(parts.len() - skip_front) {
                    if skip_front + skip_back == 0 {
                        continue;
                    }
                    let middle = parts[skip_front..parts.len() - skip_back].concat();
                    if middle.chars().count() < 2 {
                        continue;
                    }
                    if let Some(targets) = self.names.get(&middle) {
                        push(targets, NameMatch::Stripped(middle.clone()), &mut out);
                    }
                }
            }
        }
        for p in PREFIXES {
            if let Some(rest) = norm.strip_prefix(p) {
                if rest.chars().count() >= 3 {
                    if let Some(targets) = self.names.get(rest) {
                        push(targets, NameMatch::Stripped(rest.to_string()), &mut out);
                    }
                }
            }
        }
        for s in SUFFIXES {
            if let Some(rest) = norm.strip_suffix(s) {
                if rest.chars().count() >= 3 {
                    if let Some(targets) = self.names.get(rest) {
                        push(targets, NameMatch::Stripped(rest.to_string()), &mut out);
                    }
                }
            }
        }
        if !out.is_empty() {
            return out;
        }
        // Containment: the longest dictionary names found inside the name.
        let mut best_len = 0;
        let mut found: Vec<(&String, &Vec<String>)> = Vec::new();
        for (key, targets) in &self.names {
            let han = key.chars().all(is_han);
            let len = key.chars().count();
            let long_enough = if han { len >= 2 } else { len >= 5 };
            if long_enough && key != &norm && norm.contains(key.as_str()) {
                let weight = if han { len * 3 } else { len };
                if weight > best_len {
                    best_len = weight;
                    found.clear();
                }
                if weight == best_len {
                    found.push((key, targets));
                }
            }
        }
        for (key, targets) in found {
            push(targets, NameMatch::Contains(key.clone()), &mut out);
        }
        out
    }

    /// The canonical code of a legacy `value` of an enumerated `target`, when known: exact
    /// (trimmed, case-insensitive), else the longest known value the value contains.
    pub fn guess_code(&self, target: &str, value: &str) -> Option<(String, bool)> {
        let v = value.trim().to_lowercase();
        if let Some(code) = self.values.get(&(target.to_string(), v.clone())) {
            return Some((code.clone(), true));
        }
        let known = self.values_by_target.get(target)?;
        known
            .iter()
            .filter(|(k, _)| k.chars().count() >= 2 && v.contains(k.as_str()))
            .max_by_key(|(k, _)| k.chars().count())
            .map(|(_, code)| (code.clone(), false))
    }

    /// How many of `values` are known values of the enumerated `target`.
    pub fn known_values(&self, target: &str, values: &[String]) -> usize {
        values.iter().filter(|v| self.guess_code(target, v).is_some()).count()
    }
}

/// The data rows of a shipped CSV (comments `#` and the header skipped).
fn data_rows(text: &str) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .comment(Some(b'#'))
        .flexible(true)
        .from_reader(text.as_bytes());
    reader
        .records()
        .filter_map(Result::ok)
        .map(|r| r.iter().map(|s| s.trim().to_string()).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suggest::targets::TARGETS;

    #[test]
    fn names_are_compared_without_case_separators_and_affixes() {
        let d = Dictionary::embedded();
        assert_eq!(d.lookup("XDRMC")[0], ("target.name".to_string(), NameMatch::Exact));
        assert_eq!(d.lookup("party_name")[0].0, "target.name");
        assert_eq!(d.lookup("partyName")[0].0, "target.name");
        assert_eq!(d.lookup("TYSHXYDM")[0].0, "target.id_number");
        assert!(matches!(d.lookup("cf_fkje")[0].1, NameMatch::Stripped(_)));
        assert_eq!(d.lookup("当事人名称")[0].0, "target.name");
        assert!(d.lookup("zzzz").is_empty());
    }

    #[test]
    fn every_canonical_field_has_dictionary_names() {
        let d = Dictionary::embedded();
        assert!(d.name_count() >= 300, "{} names", d.name_count());
        let named: std::collections::HashSet<&str> = d.targets().collect();
        for t in TARGETS {
            assert!(named.contains(t.path), "no dictionary name for {}", t.path);
        }
    }

    #[test]
    fn code_values_are_guessed() {
        let d = Dictionary::embedded();
        assert_eq!(d.guess_code("penalty.kinds", "罚款"), Some(("fine".into(), true)));
        assert_eq!(
            d.guess_code("penalty.kinds", " 罚款（人民币） "),
            Some(("fine".into(), false))
        );
        assert_eq!(
            d.guess_code("target.kind", "自然人"),
            Some(("natural_person".into(), true))
        );
        assert_eq!(d.guess_code("penalty.kinds", "x"), None);
    }
}

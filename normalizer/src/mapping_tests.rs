//! Running the `[[test]]` cases written in a mapping file, like `vector test`: each input goes
//! through the whole normaliser ([`Normalizer::normalize`]) and the outcome is compared with
//! what the test expects. The cases themselves are loaded with the mapping
//! ([`crate::mapping::TestCase`]); running them needs the pipeline, so the runner sits above it.

use crate::mapping::{Mapping, TestCase};
use crate::pipeline::Normalizer;
use serde_json::Value;
use std::fmt;

/// The result of one test case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The test's name.
    pub name: String,
    /// Every reason it failed; empty when it passed.
    pub problems: Vec<String>,
}

impl CaseResult {
    /// True when the case passed.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The results of all test cases of one mapping.
#[derive(Debug, Clone)]
pub struct TestReport {
    /// `id` of the mapping.
    pub mapping_id: String,
    /// `version` of the mapping.
    pub mapping_version: i64,
    /// One result per test case, in file order.
    pub cases: Vec<CaseResult>,
}

impl TestReport {
    /// True when every case passed.
    pub fn passed(&self) -> bool {
        self.cases.iter().all(CaseResult::passed)
    }

    /// The cases that failed.
    pub fn failures(&self) -> Vec<&CaseResult> {
        self.cases.iter().filter(|c| !c.passed()).collect()
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.failures().len();
        writeln!(
            f,
            "mapping {} v{}: {} tests, {} passed, {} failed",
            self.mapping_id,
            self.mapping_version,
            self.cases.len(),
            self.cases.len() - failed,
            failed
        )?;
        for c in &self.cases {
            if c.passed() {
                writeln!(f, "  ok    {}", c.name)?;
            } else {
                writeln!(f, "  FAIL  {}", c.name)?;
                for p in &c.problems {
                    writeln!(f, "        - {p}")?;
                }
            }
        }
        Ok(())
    }
}

/// Run every embedded test of `mapping` through `normalizer.normalize`.
pub fn run_tests(mapping: &Mapping, normalizer: &Normalizer) -> TestReport {
    let cases = mapping
        .tests()
        .iter()
        .map(|t| run_case(mapping, normalizer, t))
        .collect();
    TestReport {
        mapping_id: mapping.id().to_string(),
        mapping_version: mapping.version(),
        cases,
    }
}

fn run_case(mapping: &Mapping, normalizer: &Normalizer, t: &TestCase) -> CaseResult {
    let outcome = normalizer.normalize(mapping, &t.input);
    let mut problems = Vec::new();
    if let Some(expect) = &t.expect {
        let mut diffs = Vec::new();
        diff("", expect, &outcome.record, &mut diffs);
        for d in diffs.iter().take(20) {
            problems.push(d.clone());
        }
        if diffs.len() > 20 {
            problems.push(format!("... and {} more differences", diffs.len() - 20));
        }
    }
    for (pointer, expected) in &t.expect_fields {
        match outcome.record.pointer(pointer) {
            Some(actual) => {
                let mut diffs = Vec::new();
                diff(pointer, expected, actual, &mut diffs);
                problems.extend(diffs);
            }
            None => problems.push(format!("{pointer}: missing; expected {expected}")),
        }
    }
    for ev in &t.expect_violations {
        let found = outcome.violations.iter().any(|v| {
            v.rule == ev.rule
                && (ev.pointer.is_none() || ev.pointer.as_deref() == Some(v.pointer.as_str()))
                && (ev.severity.is_none() || ev.severity == Some(v.severity))
        });
        if !found {
            let got: Vec<String> = outcome
                .violations
                .iter()
                .map(|v| format!("{} at {}", v.rule, v.pointer))
                .collect();
            problems.push(format!(
                "expected violation {ev} not found; got: [{}]",
                if got.is_empty() {
                    "none".to_string()
                } else {
                    got.join(", ")
                }
            ));
        }
    }
    if let Some(accepted) = t.expect_accepted {
        if outcome.is_accepted() != accepted {
            let errors: Vec<String> = outcome
                .violations
                .iter()
                .filter(|v| v.is_error())
                .map(ToString::to_string)
                .collect();
            problems.push(if accepted {
                format!(
                    "expected the record to be accepted, but it was rejected: {}",
                    errors.join("; ")
                )
            } else {
                "expected the record to be rejected, but it was accepted".to_string()
            });
        }
    }
    CaseResult {
        name: t.name.clone(),
        problems,
    }
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if a == b {
        return true;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Compare `expected` with `actual` and describe each difference by JSON pointer.
pub(crate) fn diff(pointer: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    let at = if pointer.is_empty() { "/" } else { pointer };
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = format!("{pointer}/{}", crate::violation::pointer_token(k));
                match a.get(k) {
                    Some(av) => diff(&p, ev, av, out),
                    None => out.push(format!("{p}: missing; expected {ev}")),
                }
            }
            for (k, av) in a {
                if !e.contains_key(k) {
                    out.push(format!(
                        "{pointer}/{}: unexpected {av}",
                        crate::violation::pointer_token(k)
                    ));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff(&format!("{pointer}/{i}"), ev, av, out);
            }
            if e.len() != a.len() {
                out.push(format!("{at}: expected {} items, got {}", e.len(), a.len()));
            }
        }
        (Value::Number(e), Value::Number(a)) if numbers_equal(e, a) => {}
        (e, a) if e == a => {}
        (e, a) => out.push(format!("{at}: expected {e}, got {a}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_pointers() {
        let mut out = Vec::new();
        diff(
            "",
            &json!({"a": {"b": 1, "c": [1, 2]}, "d": 2000}),
            &json!({"a": {"b": 2, "c": [1]}, "d": 2000.0, "e": 1}),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                "/a/b: expected 1, got 2".to_string(),
                "/a/c: expected 2 items, got 1".to_string(),
                "/e: unexpected 1".to_string(),
            ]
        );
    }
}

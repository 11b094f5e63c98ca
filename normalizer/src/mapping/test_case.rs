//! The `[[test]]` cases a mapping file embeds, as loaded with the mapping. They are run by
//! [`crate::mapping_tests::run_tests`], which needs the whole normaliser.

use crate::Severity;
use serde_json::Value;
use std::fmt;

/// One embedded test case, as loaded from the mapping file.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    /// The test's name.
    pub name: String,
    /// The source record (from `input`, `input_json` or the root element of `input_xml`).
    pub input: Value,
    /// The whole canonical record expected (`expect` / `expect_json`), compared exactly
    /// (numbers by value: `2000` equals `2000.0`).
    pub expect: Option<Value>,
    /// Single fields expected, by JSON pointer (`"/penalty/fine_amount" = 2000`); other
    /// fields are not compared.
    pub expect_fields: Vec<(String, Value)>,
    /// Violations that must be present (others may be present too).
    pub expect_violations: Vec<ExpectedViolation>,
    /// Whether the record must be accepted (no error) or rejected.
    pub expect_accepted: Option<bool>,
}

/// A violation a test expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedViolation {
    /// Rule id, e.g. `mapping.date`.
    pub rule: String,
    /// JSON pointer, e.g. `/penalty/decision_date`; any pointer when absent.
    pub pointer: Option<String>,
    /// Severity; any when absent.
    pub severity: Option<Severity>,
}

impl fmt::Display for ExpectedViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.rule)?;
        if let Some(p) = &self.pointer {
            write!(f, " at {p}")?;
        }
        if let Some(s) = self.severity {
            write!(f, " ({s:?})")?;
        }
        Ok(())
    }
}

//! An agency's own case number (部门案件编号): the third part of a case's business key.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An agency's own case number: trimmed text, never empty. Together with the handling agency's
/// credit code and the case type it names one case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaseNumber(String);

impl CaseNumber {
    /// The case number `text` names (surrounding white space removed); `None` when blank.
    pub fn parse(text: &str) -> Option<CaseNumber> {
        let trimmed = text.trim();
        (!trimmed.is_empty()).then(|| CaseNumber(trimmed.to_string()))
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CaseNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for CaseNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CaseNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        CaseNumber::parse(&text).ok_or_else(|| serde::de::Error::custom("a case number cannot be blank"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_number_is_trimmed_and_never_blank() {
        assert_eq!(
            CaseNumber::parse("  洪市监罚〔2024〕1号 ").unwrap().as_str(),
            "洪市监罚〔2024〕1号"
        );
        assert_eq!(CaseNumber::parse(" \t "), None);
        assert!(serde_json::from_str::<CaseNumber>(r#""  ""#).is_err());
        assert_eq!(
            serde_json::to_string(&CaseNumber::parse("A-1").unwrap()).unwrap(),
            r#""A-1""#
        );
    }
}

//! `[joint]`: finding joint inspections (联合检查相似度比对) at commit time.

use serde::Deserialize;

/// How joint inspections are found.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct JointConfig {
    /// Whether commits keep the joint-inspection index (default true). Off, nothing is written
    /// at commit; `gateway joint rebuild` builds the index in full.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Largest number of days between the check dates of two inspections of the same target by
    /// different agencies for them to be candidates (default 7).
    #[serde(default = "default_window_days")]
    pub window_days: i64,
    /// Where the index is kept: in each commit's transaction (`commit`, the default) or, on
    /// PostgreSQL, by a background indexer from a queue the commits fill (`background`).
    #[serde(default)]
    pub index: IndexMode,
}

/// Where the joint-inspection index is kept.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum IndexMode {
    /// In the commit's transaction: a group is there when the commit is.
    #[default]
    Commit,
    /// PostgreSQL: commits queue the facts; the indexer applies them within about a second.
    Background,
}

fn default_enabled() -> bool {
    true
}

fn default_window_days() -> i64 {
    7
}

impl Default for JointConfig {
    fn default() -> Self {
        JointConfig {
            enabled: default_enabled(),
            window_days: default_window_days(),
            index: IndexMode::Commit,
        }
    }
}

impl JointConfig {
    /// Problems of the `[joint]` table: (place, message).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !(0..=366).contains(&self.window_days) {
            problems.push((
                "joint.window_days".to_string(),
                format!("应在 0..366 天之间 / must be 0..366 days, got {}", self.window_days),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_outside_0_to_366_days_is_named_with_its_place_and_value() {
        assert!(JointConfig::default().check().is_empty());
        let wrong = JointConfig {
            enabled: true,
            window_days: 400,
            index: IndexMode::Commit,
        };
        let problems = wrong.check();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "joint.window_days");
        assert!(
            problems[0].1.contains("0..366") && problems[0].1.contains("400"),
            "{}",
            problems[0].1
        );
    }
}

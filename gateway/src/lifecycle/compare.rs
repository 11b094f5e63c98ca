//! The pure part of a dry run: given what the active mapping and a candidate made of the same raw
//! records, classify each record (unchanged, changed, newly rejected, newly accepted, still
//! rejected) and count the changed fields by JSON pointer, with a few sample diffs per field.

use normalizer::Violation;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// What one mapping made of one record.
#[derive(Debug, Clone)]
pub struct Side {
    /// Accepted (no error-level violation, business key present).
    pub accepted: bool,
    /// The canonical record built (partial when rejected; `Value::Null` when the raw payload
    /// could not be read at all).
    pub record: Value,
    /// Error-level violations (empty when accepted).
    pub errors: Vec<Violation>,
}

/// One raw record run through both mappings.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// Raw archive id.
    pub raw_id: i64,
    /// The record's key at its source.
    pub record_key: String,
    /// With the active mapping.
    pub active: Side,
    /// With the candidate.
    pub candidate: Side,
}

/// A record named in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordRef {
    /// Raw archive id.
    pub raw_id: i64,
    /// The record's key at its source.
    pub record_key: String,
}

/// A record the candidate rejects but the active mapping accepts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewlyRejected {
    /// Raw archive id.
    pub raw_id: i64,
    /// The record's key at its source.
    pub record_key: String,
    /// Why the candidate rejects it.
    pub violations: Vec<Violation>,
}

/// One field's value before and after, in one record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleDiff {
    /// The record's key at its source.
    pub record_key: String,
    /// Raw archive id.
    pub raw_id: i64,
    /// The value with the active mapping (None: absent).
    pub old: Option<Value>,
    /// The value with the candidate (None: absent).
    pub new: Option<Value>,
}

/// How often one field changed, with samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// JSON pointer of the field (`/penalty/kinds`).
    pub pointer: String,
    /// In how many records it differs.
    pub count: usize,
    /// The first few of them.
    pub samples: Vec<SampleDiff>,
}

/// The comparison of a dry run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    /// Records compared.
    pub total: usize,
    /// Accepted by both, same canonical record.
    pub unchanged: usize,
    /// Accepted by both, canonical record differs.
    pub changed: usize,
    /// Accepted by the active mapping, rejected by the candidate.
    pub newly_rejected: usize,
    /// Rejected by the active mapping, accepted by the candidate.
    pub newly_accepted: usize,
    /// Rejected by both.
    pub still_rejected: usize,
    /// The newly rejected records with the candidate's violations (at most `list_limit`).
    pub newly_rejected_records: Vec<NewlyRejected>,
    /// The newly accepted records (at most `list_limit`).
    pub newly_accepted_records: Vec<RecordRef>,
    /// Fields that differ between the two canonical records of the same raw record (whatever
    /// the verdicts), most frequent first.
    pub field_changes: Vec<FieldChange>,
}

/// Compare what the two mappings made of each record. `samples_per_field` bounds the sample
/// diffs kept per field, `list_limit` the records listed as newly accepted / rejected (the
/// counts are always exact).
pub fn compare(items: impl IntoIterator<Item = Replayed>, samples_per_field: usize, list_limit: usize) -> Comparison {
    let mut c = Comparison::default();
    let mut fields: BTreeMap<String, FieldChange> = BTreeMap::new();
    for item in items {
        c.total += 1;
        let diffs = field_diffs(&item.active.record, &item.candidate.record);
        match (item.active.accepted, item.candidate.accepted) {
            (true, true) if diffs.is_empty() => c.unchanged += 1,
            (true, true) => c.changed += 1,
            (true, false) => {
                c.newly_rejected += 1;
                if c.newly_rejected_records.len() < list_limit {
                    c.newly_rejected_records.push(NewlyRejected {
                        raw_id: item.raw_id,
                        record_key: item.record_key.clone(),
                        violations: item.candidate.errors.clone(),
                    });
                }
            }
            (false, true) => {
                c.newly_accepted += 1;
                if c.newly_accepted_records.len() < list_limit {
                    c.newly_accepted_records.push(RecordRef {
                        raw_id: item.raw_id,
                        record_key: item.record_key.clone(),
                    });
                }
            }
            (false, false) => c.still_rejected += 1,
        }
        for (pointer, old, new) in diffs {
            let change = fields.entry(pointer.clone()).or_insert_with(|| FieldChange {
                pointer,
                count: 0,
                samples: Vec::new(),
            });
            change.count += 1;
            if change.samples.len() < samples_per_field {
                change.samples.push(SampleDiff {
                    record_key: item.record_key.clone(),
                    raw_id: item.raw_id,
                    old,
                    new,
                });
            }
        }
    }
    let mut field_changes: Vec<FieldChange> = fields.into_values().collect();
    field_changes.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pointer.cmp(&b.pointer)));
    c.field_changes = field_changes;
    c
}

fn same_number(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    a == b || matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y)
}

/// The fields in which two canonical records differ: (JSON pointer, old value, new value), in
/// pointer order. Objects are compared key by key; lists of the same length item by item; a
/// list whose length changed is one change of the whole list. Numbers compare by value
/// (`2000` equals `2000.0`). An absent key is `None`.
pub fn field_diffs(old: &Value, new: &Value) -> Vec<(String, Option<Value>, Option<Value>)> {
    let mut out = Vec::new();
    diff_into(&mut String::new(), Some(old), Some(new), &mut out);
    out
}

fn diff_into(
    pointer: &mut String,
    old: Option<&Value>,
    new: Option<&Value>,
    out: &mut Vec<(String, Option<Value>, Option<Value>)>,
) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))).collect();
            keys.sort();
            for key in keys {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&normalizer::violation::pointer_token(key));
                diff_into(pointer, a.get(key), b.get(key), out);
                pointer.truncate(len);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                diff_into(pointer, Some(x), Some(y), out);
                pointer.truncate(len);
            }
        }
        (Some(Value::Number(a)), Some(Value::Number(b))) if same_number(a, b) => {}
        (a, b) if a == b => {}
        (a, b) => out.push((
            if pointer.is_empty() {
                "/".to_string()
            } else {
                pointer.clone()
            },
            a.cloned(),
            b.cloned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn side(accepted: bool, record: Value) -> Side {
        let errors = if accepted {
            Vec::new()
        } else {
            vec![Violation::error("/x", "rule.x", None, "错", "wrong")]
        };
        Side {
            accepted,
            record,
            errors,
        }
    }

    fn item(n: i64, active: Side, candidate: Side) -> Replayed {
        Replayed {
            raw_id: n,
            record_key: format!("K{n}"),
            active,
            candidate,
        }
    }

    #[test]
    fn field_diffs_name_leaves_by_pointer_and_whole_lists_when_their_length_changes() {
        let old = json!({"a": {"b": 1, "c": "x"}, "kinds": ["fine"], "officers": [{"name": "张三"}], "n": 2000});
        let new = json!({"a": {"b": 2, "d": true}, "kinds": ["fine", "warning"], "officers": [{"name": "李四"}], "n": 2000.0});
        assert_eq!(
            field_diffs(&old, &new),
            vec![
                ("/a/b".to_string(), Some(json!(1)), Some(json!(2))),
                ("/a/c".to_string(), Some(json!("x")), None),
                ("/a/d".to_string(), None, Some(json!(true))),
                (
                    "/kinds".to_string(),
                    Some(json!(["fine"])),
                    Some(json!(["fine", "warning"]))
                ),
                ("/officers/0/name".to_string(), Some(json!("张三")), Some(json!("李四"))),
            ]
        );
        assert!(field_diffs(&old, &old).is_empty());
        assert_eq!(
            field_diffs(&json!({"a/b": 1}), &json!({"a/b": 2}))[0].0,
            "/a~1b",
            "keys are escaped as in JSON pointers"
        );
        assert_eq!(field_diffs(&Value::Null, &json!({"a": 1}))[0].0, "/");
    }

    #[test]
    fn records_are_classified_by_both_verdicts() {
        let r = json!({"a": 1});
        let r2 = json!({"a": 2});
        let c = compare(
            vec![
                item(1, side(true, r.clone()), side(true, r.clone())),
                item(2, side(true, r.clone()), side(true, r2.clone())),
                item(3, side(true, r.clone()), side(false, r.clone())),
                item(4, side(false, r.clone()), side(true, r.clone())),
                item(5, side(false, r.clone()), side(false, r2.clone())),
                item(6, side(false, Value::Null), side(false, Value::Null)),
            ],
            3,
            100,
        );
        assert_eq!(
            (
                c.total,
                c.unchanged,
                c.changed,
                c.newly_rejected,
                c.newly_accepted,
                c.still_rejected
            ),
            (6, 1, 1, 1, 1, 2)
        );
        assert_eq!(
            c.newly_accepted_records,
            vec![RecordRef {
                raw_id: 4,
                record_key: "K4".into()
            }]
        );
        assert_eq!(c.newly_rejected_records.len(), 1);
        assert_eq!(c.newly_rejected_records[0].record_key, "K3");
        assert_eq!(c.newly_rejected_records[0].violations[0].rule, "rule.x");
        // /a changed in records 2 and 5 (field changes count whatever the verdicts).
        assert_eq!(c.field_changes.len(), 1);
        assert_eq!(c.field_changes[0].pointer, "/a");
        assert_eq!(c.field_changes[0].count, 2);
        let keys: Vec<&str> = c.field_changes[0]
            .samples
            .iter()
            .map(|s| s.record_key.as_str())
            .collect();
        assert_eq!(keys, ["K2", "K5"]);
    }

    #[test]
    fn samples_and_lists_are_bounded_but_counts_are_exact() {
        let items = (0..10).map(|n| item(n, side(false, json!({"k": n})), side(true, json!({"k": n + 100}))));
        let c = compare(items, 2, 3);
        assert_eq!(c.newly_accepted, 10);
        assert_eq!(c.newly_accepted_records.len(), 3);
        assert_eq!(c.field_changes[0].count, 10);
        assert_eq!(c.field_changes[0].samples.len(), 2);
        assert_eq!(c.field_changes[0].samples[0].old, Some(json!(0)));
        assert_eq!(c.field_changes[0].samples[0].new, Some(json!(100)));
    }

    #[test]
    fn fields_are_ordered_by_count_then_pointer() {
        let items = vec![
            item(
                1,
                side(true, json!({"a": 1, "b": 1})),
                side(true, json!({"a": 2, "b": 2})),
            ),
            item(
                2,
                side(true, json!({"a": 1, "b": 1})),
                side(true, json!({"a": 1, "b": 2})),
            ),
        ];
        let c = compare(items, 5, 5);
        let order: Vec<(&str, usize)> = c.field_changes.iter().map(|f| (f.pointer.as_str(), f.count)).collect();
        assert_eq!(order, [("/b", 2), ("/a", 1)]);
        assert_eq!(c.changed, 2);
    }
}

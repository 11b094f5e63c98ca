//! Data the source cannot supply (待补录). A mapping declares such a field `supplement = true`
//! with its reason; a record without it is then accepted as awaiting supplement instead of
//! rejected — no placeholder value is needed — and carries
//! `"supplement": {"awaiting": [pointers]}` onward, flagged `supplement.missing_field`. Its
//! department completes it later (a new version); from then on the completed values
//! ([`SuppliedValues`]) fill the same gap in every re-sent record of the case, listed under
//! `"supplement": {"supplied": [...]}`, so a re-send never takes a completed value away.

use crate::schema::SchemaSet;
use crate::Violation;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

/// A canonical field the source cannot (always) supply, declared `supplement = true`: a record
/// without it is accepted as awaiting supplement (待补录) and completed later by its department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplementField {
    /// The field's JSON pointer in the canonical record (e.g. `/item_code`).
    pub pointer: String,
    /// Why the source cannot supply it, as the mapping says.
    pub reason: String,
}

/// Values departments supplied, by business key text (`credit code/case type/case number`, as
/// [`crate::Outcome::key_text`] writes it) and pointer.
#[derive(Debug, Default)]
pub struct SuppliedValues {
    by_key: RwLock<HashMap<String, BTreeMap<String, Value>>>,
    loaded_up_to: std::sync::atomic::AtomicI64,
}

impl SuppliedValues {
    /// An empty set.
    pub fn new() -> SuppliedValues {
        SuppliedValues::default()
    }

    /// Remember that the case `key` got `value` at `pointer` (a later value replaces an earlier).
    pub fn insert(&self, key: &str, pointer: &str, value: Value) {
        if let Ok(mut map) = self.by_key.write() {
            map.entry(key.to_string())
                .or_default()
                .insert(pointer.to_string(), value);
        }
    }

    /// The highest stored row loaded so far (the next refresh reads the rows after it).
    pub fn loaded_up_to(&self) -> i64 {
        self.loaded_up_to.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Note that the stored rows up to `id` are loaded (never moves back).
    pub fn set_loaded_up_to(&self, id: i64) {
        self.loaded_up_to.fetch_max(id, std::sync::atomic::Ordering::AcqRel);
    }

    /// The values supplied for the case `key`.
    pub fn get(&self, key: &str) -> Option<BTreeMap<String, Value>> {
        self.by_key.read().ok()?.get(key).cloned()
    }

    /// How many cases have supplied values.
    pub fn len(&self) -> usize {
        self.by_key.read().map(|m| m.len()).unwrap_or(0)
    }

    /// True when no value was supplied.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// True when the record has no usable value at `pointer` (absent, null, blank text, empty list).
pub fn is_missing(record: &Value, pointer: &str) -> bool {
    match record.pointer(pointer) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// Write `value` at `pointer`, creating the objects on the way (a non-object on the way is
/// replaced by an object).
pub fn set_pointer(record: &mut Value, pointer: &str, value: Value) {
    let mut keys = pointer
        .split('/')
        .skip(1)
        .map(|k| k.replace("~1", "/").replace("~0", "~"));
    let Some(mut key) = keys.next() else { return };
    let mut node = record;
    for next in keys {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else { return };
        node = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
        key = next;
    }
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    if let Value::Object(map) = node {
        map.insert(key, value);
    }
}

/// The pointers listed under `/supplement/<list>` of a record.
pub fn listed(record: &Value, list: &str) -> Vec<String> {
    record
        .pointer(&format!("/supplement/{list}"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Fill a record's declared supplement fields that it lacks from `supplied` (values its
/// department gave earlier), then write `/supplement` (`awaiting`: still missing; `supplied`:
/// filled from a department, including `already_supplied` ones the record still carries).
/// Fields with an error of their own from mapping are not awaiting: their value was there but
/// wrong. Answers the fields still awaiting.
pub(crate) fn mark<'s>(
    record: &mut Value,
    supplements: &'s [SupplementField],
    supplied: Option<&BTreeMap<String, Value>>,
    already_supplied: &[String],
    mapping_violations: &[Violation],
) -> Vec<&'s SupplementField> {
    let mut awaiting = Vec::new();
    let mut filled: Vec<String> = Vec::new();
    for field in supplements {
        let pointer = field.pointer.as_str();
        if !is_missing(record, pointer) {
            if already_supplied.iter().any(|p| p == pointer) {
                filled.push(pointer.to_string());
            }
            continue;
        }
        if mapping_violations.iter().any(|v| v.pointer == pointer && v.is_error()) {
            continue;
        }
        match supplied.and_then(|values| values.get(pointer)) {
            Some(value) => {
                set_pointer(record, pointer, value.clone());
                filled.push(pointer.to_string());
            }
            None => awaiting.push(field),
        }
    }
    let list = |items: Vec<String>| Value::Array(items.into_iter().map(Value::String).collect());
    if let Value::Object(map) = record {
        map.remove("supplement");
        if !awaiting.is_empty() || !filled.is_empty() {
            let mut marker = Map::new();
            if !awaiting.is_empty() {
                marker.insert(
                    "awaiting".into(),
                    list(awaiting.iter().map(|f| f.pointer.clone()).collect()),
                );
            }
            if !filled.is_empty() {
                marker.insert("supplied".into(), list(filled));
            }
            map.insert("supplement".into(), Value::Object(marker));
        }
    }
    awaiting
}

/// Replace the validation errors about fields awaiting supplement (their absence, and rules
/// that need them) by one warning per field, `supplement.missing_field`, with the mapping's reason.
pub(crate) fn soften(violations: &mut Vec<Violation>, from: usize, awaiting: &[&SupplementField], schemas: &SchemaSet) {
    if awaiting.is_empty() {
        return;
    }
    let mut i = from;
    while i < violations.len() {
        let v = &violations[i];
        let about_awaiting = awaiting
            .iter()
            .any(|f| v.pointer == f.pointer || v.pointer.starts_with(&format!("{}/", f.pointer)));
        if v.is_error() && about_awaiting {
            violations.remove(i);
        } else {
            i += 1;
        }
    }
    for field in awaiting {
        let pointer = field.pointer.as_str();
        let title = schemas.title(pointer).unwrap_or(pointer);
        violations.push(Violation::warning(
            pointer,
            "supplement.missing_field",
            None,
            format!("「{title}」（{pointer}）来源系统无法提供，记录已接收，待部门补录：{}", field.reason),
            format!(
                "{pointer} ({title}) cannot be supplied by the source system: the record is accepted and awaits completion by its department ({})",
                field.reason
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_pointer_creates_the_objects_on_the_way() {
        let mut record = json!({"inspection": {"form": "random"}});
        set_pointer(&mut record, "/inspection/plan_id", json!("P-1"));
        set_pointer(&mut record, "/item_code", json!("12345678901234"));
        set_pointer(&mut record, "/a/b/c", json!(1));
        assert_eq!(
            record,
            json!({"inspection": {"form": "random", "plan_id": "P-1"}, "item_code": "12345678901234", "a": {"b": {"c": 1}}})
        );
    }

    #[test]
    fn missing_means_absent_null_blank_or_empty() {
        let record = json!({"a": null, "b": "  ", "c": [], "d": "x", "e": 0});
        for p in ["/a", "/b", "/c", "/z"] {
            assert!(is_missing(&record, p), "{p}");
        }
        for p in ["/d", "/e"] {
            assert!(!is_missing(&record, p), "{p}");
        }
    }

    #[test]
    fn supplied_values_fill_the_gap_and_the_rest_await() {
        let fields = vec![
            SupplementField {
                pointer: "/item_code".into(),
                reason: "无编码".into(),
            },
            SupplementField {
                pointer: "/inspection/plan_id".into(),
                reason: "无计划".into(),
            },
        ];
        let mut record = json!({"case_type": "inspection"});
        let supplied = BTreeMap::from([("/item_code".to_string(), json!("12345678901234"))]);
        let awaiting = mark(&mut record, &fields, Some(&supplied), &[], &[]);
        assert_eq!(awaiting.len(), 1);
        assert_eq!(awaiting[0].pointer, "/inspection/plan_id");
        assert_eq!(record["item_code"], json!("12345678901234"));
        assert_eq!(
            record["supplement"],
            json!({"awaiting": ["/inspection/plan_id"], "supplied": ["/item_code"]})
        );
        // The source now has both: no marker at all.
        let mut complete = json!({"item_code": "1", "inspection": {"plan_id": "P"}});
        assert!(mark(&mut complete, &fields, Some(&supplied), &[], &[]).is_empty());
        assert!(complete.get("supplement").is_none());
    }
}

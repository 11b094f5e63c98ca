//! Pulled records that are catalogue items (监管事项目录清单) rather than cases: read the item's
//! parts by the configured paths, keep them by year in the store, and give every source's
//! validation the new catalogue so "清单之外无检查" is enforced against it from the next batch.

use crate::config::CatalogueFields;
use crate::runtime::Runtime;
use crate::store::catalogue::{to_catalogue, CatalogueItem};
use crate::store::StoreResult;
use adapters::sources::SourceItem;
use serde_json::Value;
use std::collections::BTreeMap;

use super::pulled::text_at;
pub use super::pulled::RefusedItem;

/// Read one pulled record as a catalogue item.
pub fn item_of(record: &Value, fields: &CatalogueFields) -> Result<CatalogueItem, String> {
    let code = text_at(record, &fields.code).ok_or_else(|| {
        format!(
            "缺少监管事项目录编码（{}）/ missing item code at {:?}",
            fields.code, fields.code
        )
    })?;
    if code.len() != 14 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "监管事项目录编码应为14位数字：{code:?}（字段 {}）/ item code at {:?} must be 14 digits, got {code:?}",
            fields.code, fields.code
        ));
    }
    let year = match text_at(record, &fields.year) {
        Some(y) => y
            .parse::<i32>()
            .ok()
            .filter(|y| (2000..=2100).contains(y))
            .ok_or_else(|| {
                format!(
                    "目录年份无效：{y:?} / invalid catalogue year at {:?}: {y:?}",
                    fields.year
                )
            })?,
        None => fields
            .default_year
            .ok_or_else(|| format!("缺少目录年份 / missing catalogue year at {:?}", fields.year))?,
    };
    let parent_code = text_at(record, &fields.parent).filter(|p| p != &code);
    let active = match text_at(record, &fields.status) {
        Some(status) => fields.active_values.iter().any(|v| v == &status),
        None => true,
    };
    let scope = text_at(record, &fields.scope);
    if let Some(scope) = &scope {
        if !normalizer::catalogue::valid_scope(scope) {
            return Err(format!(
                "适用范围应为统一社会信用代码或2/4/6位行政区划代码前缀：{scope:?}（字段 {}）/ the scope at {:?} must be a credit code or a 2, 4 or 6 digit region prefix, got {scope:?}",
                fields.scope, fields.scope
            ));
        }
    }
    Ok(CatalogueItem {
        year,
        item_code: code,
        name: text_at(record, &fields.name).unwrap_or_default(),
        parent_code,
        active,
        scope,
        domain: text_at(record, &fields.domain),
    })
}

/// Split a page into items (the last occurrence of a year and code wins) and refusals.
pub fn items_of_page(items: Vec<SourceItem>, fields: &CatalogueFields) -> (Vec<CatalogueItem>, Vec<RefusedItem>) {
    let mut by_key = BTreeMap::new();
    let mut refused = Vec::new();
    for item in items {
        match item {
            Ok(record) => match item_of(&record.value, fields) {
                Ok(i) => {
                    by_key.insert((i.year, i.item_code.clone()), i);
                }
                Err(reason) => refused.push(RefusedItem {
                    position: record.position,
                    reason,
                }),
            },
            Err(unparsed) => refused.push(RefusedItem {
                position: unparsed.position,
                reason: unparsed.message,
            }),
        }
    }
    (by_key.into_values().collect(), refused)
}

/// Rebuild every source's validation with the stored catalogue (plus the configured CSV one);
/// returns the number of item codes in force. Without stored items nothing is rebuilt.
pub async fn refresh_normalizer(runtime: &Runtime) -> StoreResult<usize> {
    let items = runtime.store.catalogue().catalogue_items().await?;
    if items.is_empty() {
        // Nothing pulled yet: the validation built from the configuration already applies.
        return Ok(runtime.resolved.rules.catalogue.as_ref().map_or(0, |c| c.len()));
    }
    let catalogue = to_catalogue(&items, runtime.resolved.rules.catalogue.as_ref());
    let count = catalogue.len();
    let _rebuilding = super::officers::rebuild_lock().lock().await;
    let mut rules = runtime.resolved.rules.clone();
    rules.catalogue = Some(catalogue);
    // The officer registry in force stays (see `super::officers`).
    rules.officers = super::officers::current_rules(runtime).and_then(|r| r.officers);
    match normalizer::Normalizer::new(rules) {
        Ok(n) => runtime.preparers.replace_normalizer(std::sync::Arc::new(n)),
        Err(e) => tracing::error!(error = %e, "cannot rebuild validation with the new catalogue"),
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn catalogue_record_becomes_an_item_of_its_year() {
        let f = CatalogueFields::default();
        let item = item_of(
            &json!({"catalog_code": "36010000100012", "catalog_name": "价格监督检查", "parent_code": "36010000100000",
                    "year": 2024, "status": "1"}),
            &f,
        )
        .unwrap();
        assert_eq!(item.year, 2024);
        assert_eq!(item.parent_code.as_deref(), Some("36010000100000"));
        assert!(item.active);
        let withdrawn = item_of(
            &json!({"catalog_code": "36010000100012", "year": "2024", "status": "0"}),
            &f,
        )
        .unwrap();
        assert!(!withdrawn.active);
    }

    #[test]
    fn bad_code_or_missing_year_is_refused_naming_the_field() {
        let f = CatalogueFields::default();
        let e = item_of(&json!({"catalog_code": "3601", "year": 2024}), &f).unwrap_err();
        assert!(e.contains("14") && e.contains("catalog_code"), "{e}");
        let e = item_of(&json!({"catalog_code": "36010000100012"}), &f).unwrap_err();
        assert!(e.contains("year"), "{e}");
        let f = CatalogueFields {
            default_year: Some(2025),
            ..CatalogueFields::default()
        };
        assert_eq!(
            item_of(&json!({"catalog_code": "36010000100012"}), &f).unwrap().year,
            2025
        );
    }
    #[test]
    fn a_pulled_item_keeps_its_scope_and_domain_and_a_bad_scope_is_refused() {
        let f = CatalogueFields::default();
        let item = item_of(
            &json!({"catalog_code": "36010000100013", "catalog_name": "食品经营监督检查", "year": 2024,
                    "scope": "3601", "domain": "食品药品"}),
            &f,
        )
        .unwrap();
        assert_eq!(item.scope.as_deref(), Some("3601"));
        assert_eq!(item.domain.as_deref(), Some("食品药品"));
        let e = item_of(
            &json!({"catalog_code": "36010000100013", "year": 2024, "scope": "36A"}),
            &f,
        )
        .unwrap_err();
        assert!(e.contains("scope") && e.contains("36A"), "{e}");
        let f = CatalogueFields {
            domain: "field_name".into(),
            ..CatalogueFields::default()
        };
        let item = item_of(
            &json!({"catalog_code": "36010000100013", "year": 2024, "field_name": "特种设备"}),
            &f,
        )
        .unwrap();
        assert_eq!(item.domain.as_deref(), Some("特种设备"));
    }
}

//! The officer registry (执法人员名录) of a running gateway: loads (from the CLI, the API or a
//! pulled registry source) replace an agency's list in the store as a new version, audited with
//! the actor; every instance then rebuilds its validation with the stored lists — the instance
//! that loaded at once, the others when their refresher sees a newer version in the store
//! (`[normalizer.officers] refresh_seconds`).

use super::pulled::text_at;
/// A pulled record that is not a usable officer, and why.
pub use super::pulled::RefusedItem as RefusedOfficer;
use crate::config::OfficerFields;
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use crate::store::officers::{RegistryLoad, RegistryVersion};
use crate::store::{AuditEntry, Store, StoreResult};
use adapters::sources::SourceItem;
use normalizer::officers::{Officer, OfficerRegistry, RowProblem};
use normalizer::rules::RuleOptions;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The rule options in force now (those of the sources' current validation), if any source runs.
pub fn current_rules(runtime: &Runtime) -> Option<RuleOptions> {
    let snapshot = runtime.preparers.snapshot();
    let preparer = snapshot.values().next()?;
    Some(preparer.normalizer.rule_options().clone())
}

/// Held while a source's validation is rebuilt (a new catalogue, a new registry): each rebuild
/// starts from the rules in force, so two at once would lose one's change.
pub(crate) fn rebuild_lock() -> &'static tokio::sync::Mutex<()> {
    static LOCK: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// Store a load (each agency's list replaced as a new version), write its audit entry with the
/// actor and counts, and put the new lists in force here.
pub async fn load(runtime: &Runtime, load: &RegistryLoad) -> StoreResult<Vec<RegistryVersion>> {
    let versions = store_load(runtime.store.as_ref(), load).await?;
    refresh_officers(runtime).await?;
    Ok(versions)
}

/// [`load`] without a running gateway (the CLI): stored and audited; running instances pick it
/// up on their next refresh.
pub async fn store_load(store: &dyn Store, load: &RegistryLoad) -> StoreResult<Vec<RegistryVersion>> {
    let versions = store.officers().officers_load(load).await?;
    let detail: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "agency": v.agency_credit_code, "version": v.version, "officers": v.officers,
                "added": v.added, "removed": v.removed, "changed": v.changed,
            })
        })
        .collect();
    let subject = match versions.as_slice() {
        [one] => format!("officers:{}", one.agency_credit_code),
        _ => "officers".to_string(),
    };
    store
        .audit(&AuditEntry {
            actor: load.actor.clone(),
            action: "officers.load".into(),
            subject,
            detail: json!({ "origin": load.origin, "versions": detail }),
        })
        .await?;
    for v in &versions {
        tracing::info!(
            agency = %v.agency_credit_code, version = v.version, officers = v.officers, added = v.added,
            removed = v.removed, changed = v.changed, actor = %load.actor, origin = %load.origin,
            "officer registry loaded"
        );
    }
    Ok(versions)
}

/// Rebuild every source's validation with the stored registry over the configured file's;
/// returns the number of officers in force. Nothing is done without `[normalizer.officers]`.
pub async fn refresh_officers(runtime: &Runtime) -> StoreResult<usize> {
    let Some(configured) = &runtime.resolved.rules.officers else {
        return Ok(0);
    };
    let (rows, agencies) = runtime.store.officers().officers_all().await?;
    let mut registry: OfficerRegistry = (*configured.registry).clone();
    let mut by_agency: BTreeMap<String, Vec<Officer>> = agencies.into_iter().map(|a| (a, Vec::new())).collect();
    for row in &rows {
        by_agency
            .entry(row.agency_credit_code.clone())
            .or_default()
            .push(row.to_officer());
    }
    for (agency, list) in by_agency {
        registry.replace_agency(&agency, list);
    }
    let count = registry.len();
    let _rebuilding = rebuild_lock().lock().await;
    let mut rules = current_rules(runtime).unwrap_or_else(|| runtime.resolved.rules.clone());
    rules.officers = Some(normalizer::officers::OfficerRules {
        registry: Arc::new(registry),
        severity: configured.severity,
    });
    match normalizer::Normalizer::new(rules) {
        Ok(n) => runtime.preparers.replace_normalizer(Arc::new(n)),
        Err(e) => tracing::error!(error = %e, "cannot rebuild validation with the new officer registry"),
    }
    Ok(count)
}

/// Keep this instance's registry current: every `refresh_seconds`, rebuild the validation when
/// the store holds a newer registry version than the one in force (loaded by any instance).
pub async fn refresher(runtime: Runtime, shutdown: Shutdown) {
    let Some(config) = runtime.resolved.config.normalizer.officers.clone() else {
        return;
    };
    let every = Duration::from_secs(config.refresh_seconds.max(1));
    // Not the stamp now: a load stored between the start-up's registry and this line would be
    // taken for the one in force and never read. The first turn re-reads whatever is stored.
    let mut seen = None;
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(every) => {}
        }
        match runtime.store.officers().officers_stamp().await {
            Ok(stamp) if stamp != seen => match refresh_officers(&runtime).await {
                Ok(officers) => {
                    tracing::info!(officers, version_id = ?stamp, "newer officer registry in force");
                    seen = stamp;
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the officer registry; trying again later"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot check the officer registry's version"),
        }
    }
}

/// Officers of pulled records (by the configured paths), each checked like a file's row; the
/// refused ones with their position and reason.
pub fn officers_of_page(
    items: Vec<SourceItem>,
    fields: &OfficerFields,
    agency: Option<&str>,
) -> (Vec<Officer>, Vec<RefusedOfficer>) {
    let mut officers = Vec::new();
    let mut refused = Vec::new();
    for item in items {
        let record = match item {
            Ok(r) => r,
            Err(unparsed) => {
                refused.push(RefusedOfficer {
                    position: unparsed.position,
                    reason: unparsed.message,
                });
                continue;
            }
        };
        let mut row = serde_json::Map::new();
        for (key, path) in [
            ("name", &fields.name),
            ("cert_no", &fields.cert_no),
            ("agency", &fields.agency),
            ("valid_from", &fields.valid_from),
            ("valid_to", &fields.valid_to),
            ("status", &fields.status),
        ] {
            if let Some(v) = text_at(&record.value, path) {
                row.insert(key.into(), Value::String(v));
            }
        }
        let text = Value::Array(vec![Value::Object(row)]).to_string();
        match normalizer::officers::parse_officers(text.as_bytes(), normalizer::officers::RegistryFormat::Json, agency)
        {
            Ok(list) => officers.extend(list),
            Err(e) => refused.push(RefusedOfficer {
                position: record.position,
                reason: e.problems.iter().map(describe).collect::<Vec<_>>().join("; "),
            }),
        }
    }
    (officers, refused)
}

fn describe(p: &RowProblem) -> String {
    format!(
        "{} {:?}：{} / {} {:?}: {}",
        p.field,
        p.value.as_deref().unwrap_or(""),
        p.message_zh,
        p.field,
        p.value.as_deref().unwrap_or(""),
        p.message_en
    )
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn resolve(text: &str) -> Result<crate::config::Resolved, crate::config::ConfigError> {
        Config::parse(text, "gateway.toml", Path::new("/nonexistent")).and_then(|c| c.resolve("gateway.toml"))
    }

    #[test]
    fn exempt_domains_default_to_the_notices_list_and_can_be_emptied() {
        let resolved = resolve("").unwrap();
        assert_eq!(
            resolved.rules.exempt_domains,
            ["疫苗", "食品药品", "特种设备", "医疗器械", "危化品"]
        );
        assert!(
            resolved.rules.officers.is_none(),
            "officer rules only with [normalizer.officers]"
        );
        let resolved = resolve("[normalizer]\nexempt_domains = []\n").unwrap();
        assert!(resolved.rules.exempt_domains.is_empty());
        let resolved = resolve("[normalizer]\nexempt_domains = [\"烟花爆竹\"]\n").unwrap();
        assert_eq!(resolved.rules.exempt_domains, ["烟花爆竹"]);
    }

    #[test]
    fn officer_settings_are_checked_with_their_place() {
        let resolved = resolve("[normalizer.officers]\nseverity = \"error\"\n").unwrap();
        let rules = resolved.rules.officers.unwrap();
        assert_eq!(rules.severity, normalizer::officers::OfficerSeverity::Error);
        assert!(rules.registry.is_empty());
        let e = resolve("[normalizer.officers]\nseverity = \"strict\"\n").unwrap_err();
        assert!(e.to_string().contains("strict"), "{e}");
        let e = resolve("[normalizer.officers]\nfile = \"missing.csv\"\nrefresh_seconds = 0\n").unwrap_err();
        let places: Vec<&str> = e.problems.iter().map(|p| p.place.as_str()).collect();
        assert_eq!(
            places,
            ["normalizer.officers.file", "normalizer.officers.refresh_seconds"]
        );
        let e = resolve("[[officer_registries]]\nid = \"r\"\nkind = \"ftp\"\nagency = \"11360100014523152X\"\n")
            .unwrap_err();
        let text = e.to_string();
        for place in [
            "officer_registries[0] (id \"r\"): ",
            "officer_registries[0] (id \"r\").agency",
            "officer_registries[0] (id \"r\").kind",
        ] {
            assert!(text.contains(place), "{place} in {text}");
        }
    }
}

//! One `[[sources]]` block per legacy system with several endpoints (`[[sources.endpoints]]`).
//!
//! A REST or SOAP block may hold the connection, authentication, paging, envelope, watermark,
//! character set and rate limit of a whole system once, with its endpoints under it:
//!
//! ```toml
//! [[sources]]
//! id = "nanchang-amr"
//! kind = "rest"
//! [sources.rest]
//! base_url = "https://amr.nc.example/api/v1"
//! rate_limit_per_second = 5         # for the whole system
//! [[sources.endpoints]]
//! id = "penalty"                    # the source id becomes "nanchang-amr.penalty"
//! path = "/penalties"
//! mapping = "mappings/nanchang-amr-penalty/mapping.toml"
//! ```
//!
//! When the configuration is read, each endpoint becomes a source of its own (id
//! `<system>.<endpoint>`, or the endpoint's `source_id`), with the system's table and the
//! endpoint's keys on top of it ([`expand`]): its own watermark, health, metrics, mapping,
//! reconciliation and quarantine, as any source. What the endpoints share at run time (the
//! connection pool, the rate limit, the token cache) is one client per system, see
//! [`adapters::sources::SystemClients`].
//!
//! [`merge_hints`] finds separate blocks that could be one such block, for `gateway config
//! check`.

use super::source::{default_poll, ConfigProblem, EndpointOrigin, SourceConfig};
use adapters::http::client::CLIENT_KEYS;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Between the system's id and the endpoint's in a source id.
pub const SEPARATOR: char = '.';

/// Keys of an endpoint that are the source's own (the others go into the kind table).
const ENDPOINT_SOURCE_KEYS: &[&str] = &[
    "id",
    "source_id",
    "mapping",
    "path",
    "record_key",
    "cron",
    "poll_seconds",
    "reconcile",
    "agencies",
    "agency_regions",
];

/// Kind-table keys whose tables are merged key by key (the endpoint's entries over the
/// system's) instead of replaced.
const MERGED_TABLES: &[&str] = &["query", "params", "headers"];

/// The place of a problem with `key` (dotted, as the adapters name it) of `source`'s kind
/// table: in the endpoint when the endpoint sets that key (a problem of `url` is its `path`'s
/// when it gives one), else in the block's shared table.
pub fn problem_place(source: &SourceConfig, key: &str) -> String {
    let first = key.split('.').next().unwrap_or(key);
    let Some(o) = &source.origin else {
        return format!("{}.{}.{key}", source.place(), source.kind);
    };
    let sets = |k: &str| o.own_keys.iter().any(|own| own == k);
    let own = if sets(first) {
        Some(key)
    } else if first == "url" && sets("path") {
        Some("path")
    } else {
        None
    };
    match own {
        Some(k) => format!("sources[{}].endpoints[{}].{k}", source.block, o.endpoint),
        None => format!("sources[{}].{}.{key}", source.block, source.kind),
    }
}

fn is_plain_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether `id` is a valid source id: a plain id (letters, digits, `-`, `_`), or, for a source
/// made from an endpoint, two plain ids joined by [`SEPARATOR`].
pub fn valid_source_id(id: &str, from_endpoint: bool) -> bool {
    if is_plain_id(id) {
        return true;
    }
    from_endpoint
        && id
            .split_once(SEPARATOR)
            .is_some_and(|(a, b)| is_plain_id(a) && is_plain_id(b))
}

/// Replace every block with endpoints by one source per endpoint; the problems found on the
/// way, each with its place (`sources[2].endpoints[1].path`). Blocks without endpoints are kept
/// as they are; every source notes its block's index.
pub fn expand(sources: Vec<SourceConfig>) -> (Vec<SourceConfig>, Vec<ConfigProblem>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, mut s) in sources.into_iter().enumerate() {
        s.block = i;
        if s.endpoints.is_empty() {
            out.push(s);
            continue;
        }
        let place = format!("sources[{i}] (id {:?})", s.id);
        let mut problem = |where_: String, message: String| problems.push(ConfigProblem { place: where_, message });
        if !matches!(s.kind.as_str(), "rest" | "soap") {
            problem(
                format!("{place}.endpoints"),
                format!(
                    "只有 rest 与 soap 来源可以有多个端点（本来源为 {:?}）/ only rest and soap sources take endpoints, this one is {:?}",
                    s.kind, s.kind
                ),
            );
            continue;
        }
        if !s.mapping.as_os_str().is_empty() {
            problem(
                format!("{place}.mapping"),
                "有 endpoints 的来源，映射写在每个端点中 / with endpoints, each endpoint names its own mapping: move `mapping` into [[sources.endpoints]]".into(),
            );
        }
        if s.reconcile.is_some() {
            problem(
                format!("{place}.reconcile"),
                "对账查询按端点配置 / a count query counts one endpoint's cases: put `reconcile` into each [[sources.endpoints]]".into(),
            );
        }
        let mut shared = match if s.kind == "rest" {
            s.rest.clone()
        } else {
            s.soap.clone()
        } {
            Some(t) => t,
            None => {
                problem(
                    format!("{place}.{}", s.kind),
                    format!(
                        "{k} 来源需要 [sources.{k}] 表 / a {k} source needs a [sources.{k}] table",
                        k = s.kind
                    ),
                );
                continue;
            }
        };
        let base_url = match shared.remove("base_url") {
            None => None,
            Some(toml::Value::String(u)) => Some(u),
            Some(_) => {
                problem(
                    format!("{place}.{}.base_url", s.kind),
                    "base_url 应为字符串 / base_url must be a string".into(),
                );
                None
            }
        };
        if base_url.is_some() && shared.contains_key("url") {
            problem(
                format!("{place}.{}.base_url", s.kind),
                "base_url 与 url 只能设其一 / set base_url (endpoints add their path) or url (the same for every endpoint), not both".into(),
            );
        }
        let endpoints = std::mem::take(&mut s.endpoints);
        let mut origin_of_first: Option<(String, url::Origin)> = None;
        for (j, endpoint) in endpoints.into_iter().enumerate() {
            let at = format!("sources[{i}].endpoints[{j}]");
            let text = |key: &str, problem: &mut dyn FnMut(String, String)| -> Option<String> {
                match endpoint.get(key) {
                    None => None,
                    Some(toml::Value::String(v)) => Some(v.clone()),
                    Some(_) => {
                        problem(
                            format!("{at}.{key}"),
                            format!("{key} 应为字符串 / {key} must be a string"),
                        );
                        None
                    }
                }
            };
            let Some(endpoint_id) = text("id", &mut problem) else {
                problem(format!("{at}.id"), "端点需要 id / an endpoint needs an `id`".into());
                continue;
            };
            if !is_plain_id(&endpoint_id) {
                problem(
                    format!("{at}.id"),
                    "ID只能包含字母、数字、-、_ / id may only contain letters, digits, - and _".into(),
                );
            }
            let Some(mapping) = text("mapping", &mut problem) else {
                problem(
                    format!("{at}.mapping"),
                    "端点需要 mapping / an endpoint needs a `mapping`".into(),
                );
                continue;
            };
            let source_id =
                text("source_id", &mut problem).unwrap_or_else(|| format!("{}{SEPARATOR}{endpoint_id}", s.id));
            let mut table = shared.clone();
            let mut own_keys: Vec<String> = Vec::new();
            for (key, value) in &endpoint {
                if ENDPOINT_SOURCE_KEYS.contains(&key.as_str()) {
                    continue;
                }
                if CLIENT_KEYS.contains(&key.as_str()) {
                    problem(
                        format!("{at}.{key}"),
                        format!(
                            "连接设置由系统的所有端点共享，请写在 [sources.{k}] 中 / connection settings are shared by all endpoints of a system: set {key} in [sources.{k}]",
                            k = s.kind
                        ),
                    );
                    continue;
                }
                own_keys.push(key.clone());
                match (MERGED_TABLES.contains(&key.as_str()), table.get_mut(key), value) {
                    (true, Some(toml::Value::Table(mine)), toml::Value::Table(theirs)) => {
                        for (k, v) in theirs {
                            mine.insert(k.clone(), v.clone());
                        }
                    }
                    _ => {
                        table.insert(key.clone(), value.clone());
                    }
                }
            }
            match (text("path", &mut problem), &base_url) {
                (Some(path), Some(base)) => {
                    own_keys.push("path".into());
                    let url = format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'));
                    table.insert("url".into(), toml::Value::String(url));
                }
                (Some(_), None) => problem(
                    format!("{at}.path"),
                    format!("path 需要系统的 base_url / path needs base_url in [sources.{}]", s.kind),
                ),
                (None, Some(base)) if !table.contains_key("url") => {
                    table.insert("url".into(), toml::Value::String(base.clone()));
                }
                _ => {}
            }
            // One connection (and origin guard) per system: every endpoint on the same origin.
            if let Some(url) = table
                .get("url")
                .and_then(toml::Value::as_str)
                .and_then(|u| url::Url::parse(u).ok())
            {
                match &origin_of_first {
                    None => origin_of_first = Some((url.as_str().to_string(), url.origin())),
                    Some((first, origin)) if *origin != url.origin() => problem(
                        format!("{at}.{}", if endpoint.contains_key("url") { "url" } else { "path" }),
                        format!(
                            "系统的所有端点须在同一来源（协议、主机、端口）/ every endpoint of a system is on one origin (scheme, host, port): {} is not on the origin of {first}",
                            url.as_str()
                        ),
                    ),
                    Some(_) => {}
                }
            }
            let get = |key: &str| endpoint.get(key).cloned();
            let mut e = s.clone();
            e.id = source_id;
            e.mapping = PathBuf::from(mapping);
            e.endpoints = Vec::new();
            e.origin = Some(EndpointOrigin {
                system: s.id.clone(),
                endpoint: j,
                endpoint_id,
                own_keys,
            });
            if s.kind == "rest" {
                e.rest = Some(table);
            } else {
                e.soap = Some(table);
            }
            let mut typed = |key: &str, apply: &mut dyn FnMut(toml::Value) -> Result<(), String>| {
                if let Some(v) = get(key) {
                    if let Err(m) = apply(v) {
                        problem(format!("{at}.{key}"), m);
                    }
                }
            };
            typed("record_key", &mut |v| {
                e.record_key = Some(de(v)?);
                Ok(())
            });
            typed("cron", &mut |v| {
                e.cron = Some(de(v)?);
                Ok(())
            });
            typed("poll_seconds", &mut |v| {
                e.poll_seconds = de(v)?;
                Ok(())
            });
            typed("reconcile", &mut |v| {
                e.reconcile = Some(de(v)?);
                Ok(())
            });
            typed("agencies", &mut |v| {
                e.agencies = de(v)?;
                Ok(())
            });
            typed("agency_regions", &mut |v| {
                e.agency_regions = de(v)?;
                Ok(())
            });
            out.push(e);
        }
    }
    (out, problems)
}

fn de<T: serde::de::DeserializeOwned>(value: toml::Value) -> Result<T, String> {
    T::deserialize(value).map_err(|e| format!("类型错误 / wrong type: {}", e.message()))
}

/// The URL's origin and path, split where the paths of several URLs part.
fn common_base(urls: &[url::Url]) -> Option<String> {
    let first = urls.first()?;
    if urls.iter().any(|u| u.origin() != first.origin()) {
        return None;
    }
    let segments: Vec<Vec<&str>> = urls
        .iter()
        .map(|u| u.path().trim_start_matches('/').split('/').collect())
        .collect();
    let mut common = 0;
    // Keep at least the last segment of every path for the endpoint.
    let shortest = segments.iter().map(Vec::len).min().unwrap_or(0);
    while common + 1 < shortest && segments.iter().all(|s| s[common] == segments[0][common]) {
        common += 1;
    }
    let origin = first.origin().ascii_serialization();
    let base: Vec<&str> = segments[0][..common].to_vec();
    Some(if base.is_empty() {
        origin
    } else {
        format!("{origin}/{}", base.join("/"))
    })
}

/// Keys of a kind table an endpoint usually changes (besides the URL).
const PER_ENDPOINT_KEYS: &[&str] = &[
    "query",
    "params",
    "body_template",
    "body_template_file",
    "records_path",
    "envelope_template",
    "envelope_template_file",
    "action",
];

/// Separate REST/SOAP blocks (without endpoints) that differ only in their URL's path, mapping
/// and per-endpoint keys (`query`, `params`, body or envelope template, record path): for each
/// group, a message saying how to make them one block, with the proposed block. The proposal
/// keeps each block's id as the endpoint's `source_id`, so that cursors, history and
/// quarantine stay where they are.
pub fn merge_hints(sources: &[SourceConfig]) -> Vec<ConfigProblem> {
    let mut groups: BTreeMap<String, Vec<&SourceConfig>> = BTreeMap::new();
    for s in sources.iter().filter(|s| s.origin.is_none()) {
        let Some(table) = s.pull_table() else { continue };
        let Some(url) = table
            .get("url")
            .and_then(toml::Value::as_str)
            .and_then(|u| url::Url::parse(u).ok())
        else {
            continue;
        };
        let mut rest = table.clone();
        rest.remove("url");
        for k in PER_ENDPOINT_KEYS {
            rest.remove(*k);
        }
        let key = format!(
            "{}\n{}\n{:?}\n{:?}\n{:?}\n{:?}\n{}",
            s.kind,
            url.origin().ascii_serialization(),
            s.cron,
            s.poll_seconds,
            s.agencies,
            s.agency_regions,
            toml::to_string(&rest).unwrap_or_default()
        );
        groups.entry(key).or_default().push(s);
    }
    let mut hints = Vec::new();
    for group in groups.values().filter(|g| g.len() > 1) {
        if let Some(text) = proposal(group) {
            let ids: Vec<String> = group.iter().map(|s| format!("{:?}", s.id)).collect();
            let note = if text.contains(&format!("\"{REDACTED}\"")) {
                "; 内联密钥显示为 ***，请从原来的块中复制，最好改用 *_env 或 *_file / inline secrets are shown as ***: copy them from the original blocks, better move them to *_env or *_file"
            } else {
                ""
            };
            hints.push(ConfigProblem {
                place: group.iter().map(|s| s.place()).collect::<Vec<_>>().join(", "),
                message: format!(
                    "来源 {ids} 只在路径与映射上不同：可合并为一个系统块，共享连接与限速（每个端点保留原 source_id，游标与历史不变）/ sources {ids} differ only in path and mapping: \
                     make them one system block sharing one connection and one rate limit (each endpoint keeps its source_id, so cursors and history stay){note}:\n{text}",
                    ids = ids.join(", ")
                ),
            });
        }
    }
    hints
}

/// The proposed block for `group` (same kind, same origin, same shared keys).
fn proposal(group: &[&SourceConfig]) -> Option<String> {
    let first = group.first()?;
    let tables: Vec<toml::Table> = group.iter().filter_map(|s| s.pull_table()).collect();
    let urls: Vec<url::Url> = tables
        .iter()
        .filter_map(|t| t.get("url").and_then(toml::Value::as_str))
        .filter_map(|u| url::Url::parse(u).ok())
        .collect();
    let base = common_base(&urls)?;
    let mut shared = tables.first()?.clone();
    shared.remove("url");
    // Per-endpoint keys equal in every block stay shared.
    let mut own_keys = Vec::new();
    for k in PER_ENDPOINT_KEYS {
        if tables.iter().any(|t| t.get(*k) != tables[0].get(*k)) {
            shared.remove(*k);
            own_keys.push(*k);
        }
    }
    redact_inline_secrets(&mut shared);
    shared.insert("base_url".into(), toml::Value::String(base.clone()));
    let system_id = common_id(group.iter().map(|s| s.id.as_str()).collect());
    let mut block = toml::Table::new();
    block.insert("id".into(), toml::Value::String(system_id.clone()));
    block.insert("kind".into(), toml::Value::String(first.kind.clone()));
    if first.cron.is_some() || first.poll_seconds != default_poll() {
        if let Some(c) = &first.cron {
            block.insert("cron".into(), toml::Value::String(c.clone()));
        } else {
            block.insert("poll_seconds".into(), toml::Value::Integer(first.poll_seconds as i64));
        }
    }
    if !first.agencies.is_empty() {
        block.insert("agencies".into(), strings(&first.agencies));
    }
    if !first.agency_regions.is_empty() {
        block.insert("agency_regions".into(), strings(&first.agency_regions));
    }
    block.insert(first.kind.clone(), toml::Value::Table(shared));
    let mut endpoints = Vec::new();
    for ((s, table), url) in group.iter().zip(&tables).zip(&urls) {
        let mut e = toml::Table::new();
        let short =
            s.id.strip_prefix(system_id.as_str())
                .map(|r| r.trim_start_matches(['-', '_', '.']))
                .filter(|r| !r.is_empty())
                .unwrap_or(&s.id);
        e.insert("id".into(), toml::Value::String(short.to_string()));
        e.insert("source_id".into(), toml::Value::String(s.id.clone()));
        let path = url.as_str().strip_prefix(base.as_str()).unwrap_or(url.path());
        e.insert("path".into(), toml::Value::String(path.to_string()));
        e.insert("mapping".into(), toml::Value::String(s.mapping.display().to_string()));
        if let Some(k) = &s.record_key {
            e.insert("record_key".into(), toml::Value::String(k.clone()));
        }
        if let Some(r) = &s.reconcile {
            e.insert("reconcile".into(), toml::Value::Table(r.clone()));
        }
        for k in &own_keys {
            if let Some(v) = table.get(*k) {
                e.insert((*k).to_string(), v.clone());
            }
        }
        endpoints.push(toml::Value::Table(e));
    }
    block.insert("endpoints".into(), toml::Value::Array(endpoints));
    let mut doc = toml::Table::new();
    doc.insert("sources".into(), toml::Value::Array(vec![toml::Value::Table(block)]));
    toml::to_string(&doc).ok()
}

/// What an inline secret is shown as in a proposed block.
const REDACTED: &str = "***";

/// Keys holding a secret inline (in `auth`, and `password` of a SOAP table).
const INLINE_SECRETS: &[&str] = &["password", "token", "value", "client_secret", "app_secret"];

/// Replace the inline secrets of a kind table (its `auth` table and its own `password`) by
/// [`REDACTED`]: `gateway config check` never prints a secret.
fn redact_inline_secrets(table: &mut toml::Table) {
    if table.contains_key("password") {
        table.insert("password".into(), toml::Value::String(REDACTED.into()));
    }
    if let Some(toml::Value::Table(auth)) = table.get_mut("auth") {
        for k in INLINE_SECRETS {
            if auth.contains_key(*k) {
                auth.insert((*k).to_string(), toml::Value::String(REDACTED.into()));
            }
        }
    }
}

fn strings(list: &[String]) -> toml::Value {
    toml::Value::Array(list.iter().cloned().map(toml::Value::String).collect())
}

/// The longest common prefix of the ids, cut at a `-` or `_` (else the first id).
fn common_id(ids: Vec<&str>) -> String {
    let Some(first) = ids.first() else {
        return String::new();
    };
    let mut len = first.len();
    for id in &ids[1..] {
        len = len.min(first.bytes().zip(id.bytes()).take_while(|(a, b)| a == b).count());
    }
    let prefix = &first[..len];
    let cut = prefix.rfind(['-', '_']).map_or(prefix, |i| &prefix[..i]);
    if is_plain_id(cut) {
        cut.to_string()
    } else {
        first.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::parse(text, "gateway.toml", Path::new("/cfg")).unwrap()
    }

    const SYSTEM: &str = r#"
[[sources]]
id = "nanchang-amr"
kind = "rest"
agency_regions = ["3601"]
[sources.rest]
base_url = "http://127.0.0.1:9/api/v1/"
rate_limit_per_second = 5
query = { region = "360100", size = "50" }
records_path = "data.list"
[[sources.endpoints]]
id = "inspection"
path = "/inspections"
mapping = "mappings/inspection.toml"
[[sources.endpoints]]
id = "penalty"
path = "penalties"
mapping = "mappings/penalty.toml"
query = { size = "20", kind = "cf" }
records_path = "data.rows"
record_key = "ajbh"
[[sources.endpoints]]
id = "coercion"
source_id = "nc-amr-qz"
path = "/coercions"
mapping = "mappings/coercion.toml"
agency_regions = ["360102"]
reconcile = { url = "http://127.0.0.1:9/api/v1/coercions/count?day={day}", count_path = "data.total" }
"#;

    #[test]
    fn a_system_block_becomes_one_source_per_endpoint_with_the_shared_keys_under_its_own() {
        let c = config(SYSTEM);
        assert!(c.system_problems.is_empty(), "{:?}", c.system_problems);
        let ids: Vec<&str> = c.sources.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["nanchang-amr.inspection", "nanchang-amr.penalty", "nc-amr-qz"]);
        let rest = |i: usize| c.sources[i].rest.clone().unwrap();
        assert_eq!(rest(0)["url"].as_str(), Some("http://127.0.0.1:9/api/v1/inspections"));
        assert_eq!(rest(1)["url"].as_str(), Some("http://127.0.0.1:9/api/v1/penalties"));
        assert_eq!(rest(0)["rate_limit_per_second"].as_integer(), Some(5));
        assert!(!rest(0).contains_key("base_url"));
        assert_eq!(
            rest(1)["query"].as_table().unwrap(),
            &"kind = \"cf\"\nregion = \"360100\"\nsize = \"20\"\n"
                .parse::<toml::Table>()
                .unwrap(),
            "the endpoint's query entries over the system's"
        );
        assert_eq!(rest(1)["records_path"].as_str(), Some("data.rows"));
        assert_eq!(rest(0)["records_path"].as_str(), Some("data.list"));
        assert_eq!(c.sources[1].record_key.as_deref(), Some("ajbh"));
        assert_eq!(c.sources[0].agency_regions, ["3601"]);
        assert_eq!(c.sources[2].agency_regions, ["360102"]);
        assert_eq!(c.sources[2].mapping, PathBuf::from("mappings/coercion.toml"));
        assert!(c.sources[0].reconcile.is_none(), "a count query is the endpoint's own");
        assert_eq!(
            c.sources[2].reconcile.as_ref().and_then(|r| r["count_path"].as_str()),
            Some("data.total")
        );
        assert!(c.oversight_problems().is_empty(), "{:?}", c.oversight_problems());
        assert_eq!(
            c.sources[1].place(),
            "sources[0].endpoints[1] (id \"nanchang-amr.penalty\")"
        );
        assert_eq!(c.sources[1].system_id(), Some("nanchang-amr"));
    }

    #[test]
    fn endpoint_mistakes_are_named_by_their_place() {
        let c = config(
            r#"
[[sources]]
id = "sys"
kind = "rest"
mapping = "m.toml"
reconcile = { url = "http://127.0.0.1:9/count" }
[sources.rest]
base_url = "http://127.0.0.1:9/api"
[[sources.endpoints]]
id = "a"
path = "/a"
mapping = "a.toml"
rate_limit_per_second = 50
[[sources.endpoints]]
path = "/b"
mapping = "b.toml"
[[sources.endpoints]]
id = "c"
url = "http://10.0.0.1/c"
mapping = "c.toml"
"#,
        );
        let places: Vec<&str> = c.system_problems.iter().map(|p| p.place.as_str()).collect();
        assert_eq!(
            places,
            [
                "sources[0] (id \"sys\").mapping",
                "sources[0] (id \"sys\").reconcile",
                "sources[0].endpoints[0].rate_limit_per_second",
                "sources[0].endpoints[1].id",
                "sources[0].endpoints[2].url",
            ],
            "{:?}",
            c.system_problems
        );
        assert!(c.system_problems[2].message.contains("shared by all endpoints"));
        assert!(c.system_problems[2].message.contains("共享"));
    }

    #[test]
    fn blocks_differing_only_in_path_and_mapping_get_a_proposed_system_block() {
        let c = config(
            r#"
[[sources]]
id = "nc-amr-penalty"
kind = "rest"
mapping = "mappings/penalty.toml"
[sources.rest]
url = "http://127.0.0.1:9/api/v1/penalties"
rate_limit_per_second = 5
records_path = "data"
[[sources]]
id = "nc-amr-inspection"
kind = "rest"
mapping = "mappings/inspection.toml"
[sources.rest]
url = "http://127.0.0.1:9/api/v1/inspections"
rate_limit_per_second = 5
records_path = "data"
query = { kind = "jc" }
[[sources]]
id = "other"
kind = "rest"
mapping = "mappings/other.toml"
[sources.rest]
url = "http://127.0.0.1:9/api/v1/other"
rate_limit_per_second = 2
"#,
        );
        let hints = merge_hints(&c.sources);
        assert_eq!(hints.len(), 1, "{hints:?}");
        let proposed = hints[0].message.split_once(":\n").unwrap().1;
        // The proposal is a working configuration: read back, it gives the same sources.
        let back = config(proposed);
        assert!(back.system_problems.is_empty(), "{:?}", back.system_problems);
        let ids: Vec<&str> = back.sources.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["nc-amr-penalty", "nc-amr-inspection"]);
        for (old, new) in c.sources[..2].iter().zip(&back.sources) {
            assert_eq!(old.rest, new.rest, "{}", new.id);
            assert_eq!(old.mapping, new.mapping);
        }
        assert!(proposed.contains("id = \"nc-amr\""), "{proposed}");
        assert!(!hints[0].message.contains("inline secrets"));
        assert!(hints[0].place.contains("sources[0]") && hints[0].place.contains("sources[1]"));
    }

    #[test]
    fn a_proposed_block_never_shows_an_inline_secret() {
        let block = |id: &str, path: &str| {
            format!(
                "[[sources]]\nid = \"{id}\"\nkind = \"rest\"\nmapping = \"m.toml\"\n[sources.rest]\nurl = \"http://127.0.0.1:9/{path}\"\nauth = {{ kind = \"basic\", username = \"gw\", password = \"very-secret-1\" }}\n"
            )
        };
        let c = config(&format!("{}{}", block("sys-a", "a"), block("sys-b", "b")));
        let hints = merge_hints(&c.sources);
        assert_eq!(hints.len(), 1);
        assert!(!hints[0].message.contains("very-secret-1"), "{}", hints[0].message);
        assert!(hints[0].message.contains("password = \"***\""), "{}", hints[0].message);
        assert!(hints[0].message.contains("inline secrets are shown as ***"));
    }

    #[test]
    fn a_problem_is_placed_where_its_key_is_set() {
        let c = config(SYSTEM);
        assert_eq!(
            problem_place(&c.sources[1], "query.kind"),
            "sources[0].endpoints[1].query.kind"
        );
        assert_eq!(problem_place(&c.sources[1], "auth.token"), "sources[0].rest.auth.token");
        assert_eq!(problem_place(&c.sources[0], "url"), "sources[0].endpoints[0].path");
        assert_eq!(problem_place(&c.sources[0], "page_size"), "sources[0].rest.page_size");
    }

    #[test]
    fn source_ids_of_endpoints_may_hold_one_separator() {
        assert!(valid_source_id("a-b_c", false));
        assert!(!valid_source_id("a.b", false));
        assert!(valid_source_id("a.b", true));
        assert!(!valid_source_id("a.b.c", true) && !valid_source_id(".b", true));
    }
}

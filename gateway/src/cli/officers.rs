//! `gateway officers load|list|versions`: the officer registry (执法人员名录) in the store.

use super::args::OfficersAction;
use super::common::{actor, load_config};
use crate::store::officers::{OfficerFilter, RegistryLoad};
use crate::store::{self};
use normalizer::officers::{parse_officers, RegistryFormat};
use normalizer::standards::CreditCode;
use std::io::Write;
use std::process::ExitCode;

fn agency_arg(agency: Option<String>) -> anyhow::Result<Option<String>> {
    agency
        .map(|a| {
            CreditCode::parse(&a).map(|c| c.as_str().to_string()).map_err(|e| {
                anyhow::anyhow!("--agency {a:?}: 不是有效的统一社会信用代码 / not a valid credit code: {e}")
            })
        })
        .transpose()
}

/// Run a `gateway officers` action.
pub async fn run(action: OfficersAction) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match action {
        OfficersAction::Load {
            config,
            file,
            agency,
            format,
            actor: who,
        } => {
            let agency = agency_arg(agency)?;
            let given = format
                .as_deref()
                .map(|f| {
                    RegistryFormat::parse(f)
                        .ok_or_else(|| anyhow::anyhow!("--format {f:?}: 应为 csv 或 json / use csv or json"))
                })
                .transpose()?;
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("无法读取 / cannot read {}: {e}", file.display()))?;
            let format = given.unwrap_or_else(|| RegistryFormat::sniff(&bytes));
            let list = match parse_officers(&bytes, format, agency.as_deref()) {
                Ok(list) => list,
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    return Ok(ExitCode::from(1));
                }
            };
            let resolved = load_config(&config)?;
            let store = store::open(&resolved.config).await?.store;
            let origin = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let load = RegistryLoad::grouped(&who.unwrap_or_else(actor), &origin, list, agency.as_deref());
            let versions = crate::intake::officers::store_load(store.as_ref(), &load).await?;
            for v in &versions {
                writeln!(out, "{}", serde_json::to_string(v)?)?;
            }
            eprintln!(
                "已加载 {} 个执法部门的执法人员名录 / loaded the officer registry of {} agencies",
                versions.len(),
                versions.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        OfficersAction::List {
            config,
            agency,
            q,
            limit,
        } => {
            let resolved = load_config(&config)?;
            let store = store::open(&resolved.config).await?.store;
            let filter = OfficerFilter {
                agency: agency_arg(agency)?,
                q,
                scope: None,
                offset: 0,
                limit: limit.max(1),
            };
            let (items, total) = store.officers().officers_list(&filter).await?;
            for o in &items {
                writeln!(out, "{}", serde_json::to_string(o)?)?;
            }
            eprintln!("{} / {total}", items.len());
            Ok(ExitCode::SUCCESS)
        }
        OfficersAction::Versions { config, agency, limit } => {
            let resolved = load_config(&config)?;
            let store = store::open(&resolved.config).await?.store;
            let agency = agency_arg(agency)?;
            let (items, total) = store
                .officers()
                .officer_versions(agency.as_deref(), None, 0, limit.max(1))
                .await?;
            for v in &items {
                writeln!(out, "{}", serde_json::to_string(v)?)?;
            }
            eprintln!("{} / {total}", items.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! `gateway normalize`: run records through a mapping and print each outcome as a JSON line.

use super::args::ReadOptions;
use crate::prepare::reader::{parse_item, read_file, InputFormat, ParsedRecord, ReadSettings, FORMAT_NAMES};
use crate::prepare::{SheetSelection, TextEncoding};
use anyhow::Context;
use normalizer::mapping::Mapping;
use normalizer::rules::RuleOptions;
use normalizer::Normalizer;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;

/// The input format named by `format`, else guessed from the file extension, else JSON lines.
pub fn input_format(format: Option<&str>, path: Option<&Path>) -> anyhow::Result<InputFormat> {
    if let Some(f) = format {
        return InputFormat::parse(f)
            .with_context(|| format!("未知格式 {f:?}：可用 {FORMAT_NAMES} / unknown format {f:?}: {FORMAT_NAMES}"));
    }
    let ext = path
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .unwrap_or("jsonl");
    Ok(InputFormat::parse(ext).unwrap_or(InputFormat::JsonLines))
}

/// The rules of `gateway normalize`: the province, a catalogue CSV and an officer registry file
/// (each optional), the default exempt domains.
pub fn rule_options(
    province: Option<String>,
    catalogue: Option<&Path>,
    officers: Option<&Path>,
    officer_severity: &str,
) -> anyhow::Result<RuleOptions> {
    let catalogue = catalogue
        .map(|p| {
            let text = std::fs::read_to_string(p).with_context(|| format!("--catalogue {}", p.display()))?;
            normalizer::rules::Catalogue::from_csv(&text)
                .map_err(|e| anyhow::anyhow!("--catalogue {}: {e}", p.display()))
        })
        .transpose()?;
    let severity: normalizer::officers::OfficerSeverity =
        serde_json::from_value(serde_json::Value::String(officer_severity.to_string())).map_err(|_| {
            anyhow::anyhow!(
                "--officer-severity {officer_severity:?}: 应为 auto、warning 或 error / use auto, warning or error"
            )
        })?;
    let officers = officers
        .map(|p| {
            let bytes = std::fs::read(p).with_context(|| format!("--officers {}", p.display()))?;
            let format = normalizer::officers::RegistryFormat::sniff(&bytes);
            let list = normalizer::officers::parse_officers(&bytes, format, None)
                .map_err(|e| anyhow::anyhow!("--officers {}: {e}", p.display()))?;
            Ok::<_, anyhow::Error>(normalizer::officers::OfficerRules {
                registry: std::sync::Arc::new(normalizer::officers::OfficerRegistry::from_officers(list)),
                severity,
            })
        })
        .transpose()?;
    Ok(RuleOptions {
        agency_region_prefix: province,
        catalogue,
        officers,
        exempt_domains: normalizer::catalogue::DEFAULT_EXEMPT_DOMAINS
            .iter()
            .map(|d| d.to_string())
            .collect(),
        ..RuleOptions::default()
    })
}

/// Run the command: exit 0 when every record is accepted, 1 when any is rejected.
pub fn run(
    mapping_path: &Path,
    input: Option<&Path>,
    format: Option<&str>,
    reading: &ReadOptions,
    xml_records: Option<&str>,
    rules: RuleOptions,
) -> anyhow::Result<ExitCode> {
    let settings = read_settings(reading)?;
    let mapping = Mapping::load(mapping_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let normalizer = Normalizer::new(rules)?;
    let format = input_format(format, input)?;
    let tmp;
    let path = match input {
        Some(p) => p,
        None => {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes)?;
            tmp = tempfile_with(&bytes)?;
            tmp.path()
        }
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut any_rejected = false;
    let mut write_error = None;
    let max_line = usize::try_from(crate::config::LimitsConfig::default().max_record_bytes).unwrap_or(usize::MAX);
    read_file(path, format, xml_records, &settings, max_line, |item| {
        let line = match parse_item(item) {
            Ok(ParsedRecord { value, position, .. }) => {
                let outcome = normalizer.normalize(&mapping, &value);
                any_rejected |= !outcome.is_accepted();
                serde_json::json!({
                    "position": position,
                    "accepted": outcome.is_accepted(),
                    "record": outcome.record,
                    "violations": outcome.violations,
                })
            }
            Err(bad) => {
                any_rejected = true;
                serde_json::json!({"position": bad.position, "accepted": false, "error": bad.message})
            }
        };
        match writeln!(out, "{line}") {
            Ok(()) => true,
            Err(e) => {
                write_error = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = write_error {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    out.flush()?;
    Ok(if any_rejected {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The reading settings given on the command line (defaults otherwise).
pub fn read_settings(reading: &ReadOptions) -> anyhow::Result<ReadSettings> {
    let encoding =
        TextEncoding::from_setting("--encoding", reading.encoding.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ReadSettings {
        encoding,
        sheets: SheetSelection {
            sheet: reading.sheet.clone(),
            header_row: reading.header_row.unwrap_or(1).max(1),
        },
    })
}

/// Standard input copied to a temporary file so every reader works on it.
struct TempInput {
    path: std::path::PathBuf,
}

impl TempInput {
    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempInput {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn tempfile_with(bytes: &[u8]) -> anyhow::Result<TempInput> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let path = std::env::temp_dir().join(format!("gateway-stdin-{}-{nanos}", std::process::id()));
    std::fs::write(&path, bytes)?;
    Ok(TempInput { path })
}

//! `gateway mappings suggest`: propose a mapping file (with code tables and embedded tests) from
//! sample records, read like `gateway normalize` reads its input. The proposing itself is
//! [`normalizer::suggest`].

use super::args::SuggestArgs;
use super::normalize::input_format;
use crate::prepare::reader::{parse_item, read_file, InputFormat, ParsedRecord, ReadSettings};
use anyhow::Context;
use normalizer::suggest::{suggest, Status, SuggestOptions};
use normalizer::CaseType;
use std::path::Path;
use std::process::ExitCode;

/// Most sample records read.
const MAX_SAMPLES: usize = 5000;

fn case_type(text: Option<&str>) -> anyhow::Result<Option<CaseType>> {
    match text {
        None => Ok(None),
        Some("inspection") => Ok(Some(CaseType::Inspection)),
        Some("penalty") => Ok(Some(CaseType::Penalty)),
        Some("coercion") => Ok(Some(CaseType::Coercion)),
        Some(other) => anyhow::bail!(
            "--case-type {other:?}：应为 inspection、penalty 或 coercion / must be inspection, penalty or coercion"
        ),
    }
}

/// A mapping id from a file or folder name: lower case, `-` between words.
fn id_from(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("proposed");
    let id: String = stem
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let id = id.trim_matches('-').to_string();
    if id.is_empty() {
        "proposed-mapping".into()
    } else {
        id
    }
}

/// Run the command: exit 0 with a proposal, 2 when the samples cannot be read.
pub fn run(args: &SuggestArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.threshold) {
        anyhow::bail!(
            "--threshold {}：应在 0 到 1 之间 / must be between 0 and 1",
            args.threshold
        );
    }
    let case_type = case_type(args.case_type.as_deref())?;
    let format = input_format(args.format.as_deref(), Some(&args.sample))?;
    let max_line = usize::try_from(crate::config::LimitsConfig::default().max_record_bytes).unwrap_or(usize::MAX);
    let mut xml_records = args.xml_records.clone();
    if format == InputFormat::Xml && xml_records.is_none() {
        // Without a path: the most repeated element of the document holds the records.
        let mut tree = None;
        read_file(&args.sample, format, None, &ReadSettings::default(), max_line, |item| {
            tree = parse_item(item).ok().map(|r| r.value);
            false
        })
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.sample.display()))?;
        xml_records = tree.as_ref().and_then(normalizer::suggest::find_record_path);
        match &xml_records {
            Some(p) => eprintln!(
                "记录元素 / record elements: {p}（用 --xml-records 指定其他路径 / choose another with --xml-records）"
            ),
            None => eprintln!(
                "文档中没有重复的元素，整个文档作为一条记录 / no element repeats: the whole document is one record"
            ),
        }
    }
    let mut records = Vec::new();
    let mut unreadable = 0usize;
    read_file(
        &args.sample,
        format,
        xml_records.as_deref(),
        &ReadSettings::default(),
        max_line,
        |item| {
            match parse_item(item) {
                Ok(ParsedRecord { value, .. }) => records.push(value),
                Err(bad) => {
                    unreadable += 1;
                    eprintln!(
                        "跳过无法读取的记录 / skipped an unreadable record at {}: {}",
                        bad.position, bad.message
                    );
                }
            }
            records.len() < MAX_SAMPLES
        },
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", args.sample.display()))?;
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| id_from(args.out.as_deref().unwrap_or(&args.sample)));
    let options = SuggestOptions {
        id,
        case_type,
        threshold: args.threshold,
        inline_tables: args.out.is_none(),
        ..SuggestOptions::default()
    };
    let suggestion = suggest(&records, &options).map_err(|e| anyhow::anyhow!("{}: {e}", args.sample.display()))?;
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("-o {}", dir.display()))?;
            let file = dir.join("mapping.toml");
            if file.exists() && !args.force {
                anyhow::bail!(
                    "{} 已存在；用 --force 覆盖 / already exists: use --force to overwrite",
                    file.display()
                );
            }
            std::fs::write(&file, &suggestion.mapping_toml).with_context(|| file.display().to_string())?;
            for (name, text) in &suggestion.tables {
                let path = dir.join(name);
                std::fs::write(&path, text).with_context(|| path.display().to_string())?;
            }
            eprintln!("已写入 / written: {}", file.display());
            for (name, _) in &suggestion.tables {
                eprintln!("已写入 / written: {}", dir.join(name).display());
            }
        }
        None => print!("{}", suggestion.mapping_toml),
    }
    let count = |s: Status| suggestion.proposals.iter().filter(|p| p.status == s).count();
    if let Some(column) = &suggestion.case_type_from {
        eprintln!("案件类型逐条取自 {column} / the case type of each record is read from {column}");
    }
    eprintln!(
        "{} 条样例{}，案件类型 {}{}：{} 个字段已提议，{} 个待定、{} 个冲突（已注释），{} 个源字段未用上，{} 个必填字段缺来源；{} 个内嵌测试通过",
        records.len(),
        if unreadable > 0 { format!("（{unreadable} 条无法读取）") } else { String::new() },
        suggestion.case_type.as_str(),
        if suggestion.case_type_guessed { "（推断）" } else { "" },
        count(Status::Active),
        count(Status::Uncertain),
        count(Status::Conflict),
        suggestion.unmatched.len(),
        suggestion.missing_required.len(),
        suggestion.tests,
    );
    eprintln!(
        "{} sample(s), case type {}{}: {} field(s) proposed, {} uncertain and {} in conflict (commented out), {} source field(s) unmatched, {} required field(s) without a source; {} embedded test(s) pass. Check the proposal before use.",
        records.len(),
        suggestion.case_type.as_str(),
        if suggestion.case_type_guessed { " (guessed)" } else { "" },
        count(Status::Active),
        count(Status::Uncertain),
        count(Status::Conflict),
        suggestion.unmatched.len(),
        suggestion.missing_required.len(),
        suggestion.tests,
    );
    Ok(ExitCode::SUCCESS)
}

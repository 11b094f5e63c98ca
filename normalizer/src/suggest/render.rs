//! Writing a proposal as a mapping file: header, code tables, fields (commented out when
//! uncertain), the source fields left over, and embedded tests holding what the proposal makes
//! of the first samples.

use super::dictionary::{normalise_name, Dictionary};
use super::profile::{code_items, FieldProfile, Profiles};
use super::proposal::{Proposal, Status, SuggestError, SuggestOptions, Suggestion};
use super::targets::{self, Target, ValueKind};
use crate::mapping::Mapping;
use crate::mapping_tests::run_tests;
use crate::{CaseType, Normalizer, Severity};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A TOML basic string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML string for a multi-line text (literal `'''` when possible).
fn multiline(s: &str) -> String {
    if s.contains("'''") || s.contains('\r') {
        q(s)
    } else {
        format!("'''\n{s}\n'''")
    }
}

/// One code table proposed.
struct TableProposal {
    name: String,
    /// (source value, canonical code, note).
    rows: Vec<(String, String, String)>,
}

fn code_table(target: &Target, field: &FieldProfile, dict: &Dictionary) -> TableProposal {
    let f = field.features();
    let items = code_items(field, target.kind == ValueKind::CodeList, &f);
    let fallback = if target.codes.contains(&"other") {
        "other"
    } else {
        target.codes.first().copied().unwrap_or("other")
    };
    let rows = items
        .into_iter()
        .map(|v| match dict.guess_code(target.path, &v) {
            Some((code, true)) => (v, code, "词典 / dictionary".to_string()),
            None if target.path == "case_type" && ["1", "2", "3"].contains(&v.trim_start_matches('0')) => {
                // 检查、处罚、强制 is the usual order of numeric case-type codes.
                let code = match v.trim_start_matches('0') {
                    "1" => "inspection",
                    "2" => "penalty",
                    _ => "coercion",
                };
                (
                    v,
                    code.to_string(),
                    "猜测：按 检查、处罚、强制 的常见顺序，请核对 / guessed from the usual order, check".to_string(),
                )
            }
            Some((code, false)) => (
                v,
                code,
                "猜测：值含已知代码值，请核对 / guessed: contains a known value, check".to_string(),
            ),
            None => (
                v,
                fallback.to_string(),
                format!(
                    "未能判断，请填写（可用：{}） / not recognised: fill in",
                    target.codes.join(" ")
                ),
            ),
        })
        .collect();
    TableProposal {
        name: target.table.to_string(),
        rows,
    }
}

fn csv_text(rows: &[(String, String, String)]) -> String {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    let _ = w.write_record(["source", "target", "note"]);
    for (s, t, n) in rows {
        let _ = w.write_record([s, t, n]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The amount unit: from the name (万元, wy, fen, 分), a unit attribute, else the magnitudes.
fn amount_unit(field: &FieldProfile) -> (Option<&'static str>, String, String) {
    let n = normalise_name(&field.name);
    if n.contains("万元") || n.ends_with("wy") || n.contains("wanyuan") || n.ends_with("wan") || n.contains('万') {
        return (
            Some("wan_yuan"),
            "名称表明单位是万元".into(),
            "the name says 万元".into(),
        );
    }
    if field.unit_hints.iter().any(|u| u.contains('万')) {
        return (
            Some("wan_yuan"),
            "单位属性为万元".into(),
            "the unit attribute says 万元".into(),
        );
    }
    if n.ends_with("fen") || n.ends_with('分') || n.contains("cent") {
        return (
            Some("fen"),
            "名称表明单位是分".into(),
            "the name says fen (cents)".into(),
        );
    }
    let f = field.features();
    if f.count > 0 && f.max_number < 100.0 && f.fractional > 0.0 {
        return (
            Some("wan_yuan"),
            "数值都小于 100 且有小数，按万元".into(),
            "all values below 100 with decimals: read as 万元".into(),
        );
    }
    (None, "按元".into(), "read as yuan".into())
}

/// The lines of one `[[field]]` (without comment marks), and extra evidence.
fn field_lines(
    p: &Proposal,
    field: &FieldProfile,
    target: &Target,
    table: Option<&str>,
    active: bool,
    scope: Option<CaseType>,
) -> (Vec<String>, Option<String>) {
    let mut lines = vec!["[[field]]".to_string(), format!("target = {}", q(target.path))];
    let when = p
        .when
        .as_deref()
        .or((scope.is_none() && !target.case_type.is_empty()).then_some(target.case_type));
    if let Some(w) = when {
        lines.push(format!("when = {{ case_type = {} }}", q(w)));
    }
    lines.push(format!("from = {}", q(&p.source)));
    let mut note = None;
    let f = field.features();
    match target.kind {
        ValueKind::AgencyCode => lines.push("steps = [\"normalise_identifier\"]".into()),
        ValueKind::PartyId => {
            let legacy15 = field
                .values
                .iter()
                .any(|v| v.trim().len() == 15 && v.trim().bytes().all(|b| b.is_ascii_digit()));
            if legacy15 {
                lines.push("steps = [\"id_number_18\"]         # 有15位旧身份证号 / 15-digit IDs seen".into());
            } else {
                lines.push("steps = [\"normalise_identifier\"]".into());
            }
        }
        ValueKind::Region => lines.push("steps = [\"remove_spaces\", \"halfwidth\"]".into()),
        ValueKind::Date => lines.push("as = \"date\"".into()),
        ValueKind::Datetime => lines.push("as = \"datetime\"".into()),
        ValueKind::Amount => {
            lines.push("as = \"decimal\"".into());
            let (unit, zh, en) = amount_unit(field);
            if let Some(u) = unit {
                lines.push(format!("unit = {}", q(u)));
            }
            note = Some(format!("金额：{zh} / amount: {en}"));
        }
        ValueKind::Boolean => lines.push("as = \"boolean\"".into()),
        ValueKind::Code => {
            lines.push("steps = [\"trim\"]".into());
            if let Some(t) = table {
                lines.push(format!("table = {}", q(t)));
            }
        }
        ValueKind::CodeList => {
            lines.push("as = \"string_array\"".into());
            if !field.is_list {
                let mut seps: Vec<char> = vec!['、', ',', '，', ';', '；'];
                for s in &f.separators {
                    if !seps.contains(s) && *s != ' ' {
                        seps.push(*s);
                    }
                }
                lines.push(format!("split = {}", q(&seps.iter().collect::<String>())));
            }
            if let Some(t) = table {
                lines.push(format!("table = {}", q(t)));
            }
            lines.push("distinct = true".into());
        }
        ValueKind::PersonName | ValueKind::CertNo => lines.push("steps = [\"remove_spaces\"]".into()),
        _ => lines.push("steps = [\"trim\"]".into()),
    }
    let required = match scope {
        Some(case_type) => target.required_for(case_type),
        None => target.required,
    };
    if required && active {
        lines.push("required = true".into());
    }
    (lines, note)
}

fn comment_block(out: &mut String, p: &Proposal, extra: Option<&str>) {
    let mut zh = p.evidence_zh.join("，");
    let mut en = p.evidence_en.join(", ");
    if let Some(e) = extra {
        let (z, e2) = e.split_once(" / ").unwrap_or((e, ""));
        zh.push('；');
        zh.push_str(z);
        en.push_str("; ");
        en.push_str(e2);
    }
    let head = match p.status {
        Status::Active => "",
        Status::Uncertain => "【待定，已注释】",
        Status::Conflict => "【冲突，已注释】",
    };
    let head_en = match p.status {
        Status::Active => "",
        Status::Uncertain => "[uncertain, commented out] ",
        Status::Conflict => "[conflict, commented out] ",
    };
    let _ = writeln!(out, "# {head}置信度 {:.2}：{zh}", p.confidence);
    let _ = writeln!(out, "# {head_en}confidence {:.2}: {en}", p.confidence);
}

fn write_lines(out: &mut String, lines: &[String], active: bool) {
    for l in lines {
        if active {
            let _ = writeln!(out, "{l}");
        } else {
            let _ = writeln!(out, "# {l}");
        }
    }
    out.push('\n');
}

/// Write the mapping, check that it loads, add the embedded tests and check they pass.
#[allow(clippy::too_many_arguments)]
pub(super) fn finish(
    case_type: CaseType,
    guessed: bool,
    type_field: Option<&FieldProfile>,
    mut chosen: Vec<(Proposal, Option<&FieldProfile>)>,
    unmatched: Vec<String>,
    profiles: &Profiles,
    records: &[Value],
    options: &SuggestOptions,
) -> Result<Suggestion, SuggestError> {
    let dict = Dictionary::embedded();
    // `None`: the case type is read per record, every type's fields apply.
    let scope = if type_field.is_some() { None } else { Some(case_type) };
    // Order the fields as the canonical record lists them.
    chosen.sort_by_key(|(p, _)| {
        targets::TARGETS
            .iter()
            .position(|t| t.path == p.target)
            .unwrap_or(usize::MAX)
    });
    // Officers written from separated lists (zip): a scalar officer list, or names alone, with
    // a certificate list beside it.
    let scalar_officers = chosen.iter().position(|(p, _)| {
        p.status == Status::Active
            && (p.target == "officers" || p.target == "officers.name")
            && !p.source.contains("[*]")
    });
    for (p, _) in chosen.iter_mut() {
        if p.target == "officers.cert_no"
            && !p.source.contains("[*]")
            && scalar_officers.is_none()
            && p.status == Status::Active
        {
            p.status = Status::Uncertain;
            p.evidence_zh.push("没有执法人员姓名列可配对".into());
            p.evidence_en.push("no officer names column to pair with".into());
        }
        if p.target == "officers.name" && !p.source.contains("[*]") {
            p.target = "officers".into();
        }
    }
    let zip_cert = chosen
        .iter()
        .find(|(p, _)| p.status == Status::Active && p.target == "officers.cert_no" && !p.source.contains("[*]"))
        .map(|(p, _)| p.source.clone());

    let mut out = String::new();
    let n = records.len();
    let _ = writeln!(out, "# 由 gateway mappings suggest 根据 {n} 条样例记录提议的映射草稿。");
    let _ = writeln!(
        out,
        "# Draft mapping proposed by `gateway mappings suggest` from {n} sample record(s)."
    );
    let _ = writeln!(out, "#");
    let _ = writeln!(
        out,
        "# 请逐项核对后再使用：每个字段上方写明依据和置信度；置信度低于 {:.2} 或两列争同一规范字段的",
        options.threshold
    );
    let _ = writeln!(
        out,
        "# 提议已注释掉，由人决定；代码表列出样例中见到的值和猜测的规范代码；末尾列出没有用上的源字段。"
    );
    let _ = writeln!(
        out,
        "# Check every item before use: each field carries its evidence and confidence; proposals below"
    );
    let _ = writeln!(
        out,
        "# {:.2} and columns competing for one canonical field are commented out for a person to decide;",
        options.threshold
    );
    let _ = writeln!(
        out,
        "# code tables list the values seen with a guessed canonical code; unused source fields are listed at the end."
    );
    out.push('\n');
    let _ = writeln!(out, "id = {}", q(&options.id));
    let _ = writeln!(out, "version = 1");
    let _ = writeln!(
        out,
        "description = {}",
        q(&format!("{}（由 gateway mappings suggest 提议，待核对）", options.id))
    );
    match type_field {
        Some(f) => {
            let _ = writeln!(
                out,
                "# 案件类型逐条取自 {0}（字段名，词典），各类型的字段带 when / each record's case type is read from {0} (name, dictionary); type-specific fields carry `when`",
                f.name
            );
            let _ = writeln!(
                out,
                "case_type = {{ from = {}, steps = [\"trim\"], table = \"case_types\" }}",
                q(&f.path)
            );
        }
        None => {
            if guessed {
                let _ = writeln!(
                    out,
                    "# 案件类型由字段名推断，请核对 / case type guessed from the field names: check"
                );
            }
            let _ = writeln!(out, "case_type = {}", q(case_type.as_str()));
        }
    }
    out.push('\n');

    // Code tables of the active code fields.
    let mut tables: Vec<(String, String)> = Vec::new();
    let mut table_text = String::new();
    let mut table_names: BTreeMap<String, String> = BTreeMap::new();
    let type_table = type_field
        .zip(targets::target("case_type"))
        .map(|(f, t)| (code_table(t, f, dict), t.title, "case_type".to_string()));
    let field_tables = chosen.iter().filter_map(|(p, field)| {
        let (target, field) = (targets::target(&p.target)?, (*field)?);
        (matches!(target.kind, ValueKind::Code | ValueKind::CodeList) && p.status == Status::Active)
            .then(|| (code_table(target, field, dict), target.title, p.target.clone()))
    });
    for (t, title, owner) in type_table.into_iter().chain(field_tables) {
        if t.rows.is_empty() || table_names.contains_key(&t.name) {
            continue;
        }
        let _ = writeln!(
            table_text,
            "[tables.{}]            # {}：样例中见到的值 / values seen in the samples",
            t.name, title
        );
        if options.inline_tables {
            for (s, c, note) in &t.rows {
                let _ = writeln!(table_text, "#   {s} → {c}（{note}）");
            }
            let values: Vec<String> = t.rows.iter().map(|(s, c, _)| format!("{} = {}", q(s), q(c))).collect();
            let _ = writeln!(table_text, "values = {{ {} }}", values.join(", "));
        } else {
            let file = format!("{}.csv", t.name);
            let _ = writeln!(table_text, "file = {}", q(&file));
            tables.push((file, csv_text(&t.rows)));
        }
        let _ = writeln!(table_text, "unmapped = \"error\"\n");
        table_names.insert(t.name.clone(), owner);
    }
    if !table_text.is_empty() {
        let _ = writeln!(
            out,
            "# ---------------------------------------------------------------- 代码表 / code tables\n"
        );
        out.push_str(&table_text);
    }

    let _ = writeln!(
        out,
        "# ---------------------------------------------------------------- 字段 / fields\n"
    );
    let _ = writeln!(out, "[[field]]\ntarget = \"source_channel\"\nconst = \"interface\"\n");
    let mut filled: Vec<String> = Vec::new();
    for (p, field) in &chosen {
        let active = p.status == Status::Active;
        if p.target == "officers.name"
            || (p.target == "officers.cert_no" && p.source.contains("[*]"))
            || p.target.starts_with("inspection.joint_participants.")
        {
            continue; // written with their list
        }
        if p.target == "officers" || p.target == "inspection.joint_participants" {
            if p.source.ends_with("[*]") {
                let prefix = format!("{}.", p.source);
                let members: Vec<&Proposal> = chosen
                    .iter()
                    .map(|(m, _)| m)
                    .filter(|m| m.source.starts_with(&prefix))
                    .collect();
                comment_block(&mut out, p, None);
                let mut lines = vec![
                    "[[field]]".to_string(),
                    format!("target = {}", q(&p.target)),
                    format!("each = {}", q(&p.source)),
                ];
                if active && p.target == "officers" {
                    lines.push("required = true".into());
                }
                lines.push("fields = [".into());
                for m in members {
                    let member = &m.source[prefix.len()..];
                    let (name, steps) = match m.target.rsplit('.').next().unwrap_or("") {
                        "name" if p.target == "officers" => ("name", "remove_spaces"),
                        "name" => ("name", "trim"),
                        "cert_no" => ("cert_no", "normalise_identifier"),
                        _ => ("credit_code", "normalise_identifier"),
                    };
                    lines.push(format!(
                        "  {{ target = \"{name}\", from = {}, steps = [\"{steps}\"] }},",
                        q(member)
                    ));
                }
                lines.push("]".into());
                write_lines(&mut out, &lines, active);
            } else if p.target == "officers" {
                comment_block(&mut out, p, None);
                let f = field.map(|f| f.features()).unwrap_or_default();
                let mut seps: Vec<char> = vec!['、', ',', '，', ';', '；'];
                for s in &f.separators {
                    if !seps.contains(s) {
                        seps.push(*s);
                    }
                }
                let zip = match (&zip_cert, active) {
                    (Some(c), true) => format!("zip = {{ name = {}, cert_no = {} }}", q(&p.source), q(c)),
                    _ => format!("zip = {{ name = {} }}", q(&p.source)),
                };
                let mut lines = vec!["[[field]]".to_string(), "target = \"officers\"".to_string(), zip];
                if field.is_none_or(|f| !f.is_list) {
                    lines.push(format!("split = {}", q(&seps.iter().collect::<String>())));
                }
                if seps.contains(&' ') {
                    // Names separated by spaces: keep one space to split on.
                    lines.push("steps = [\"collapse_spaces\"]".into());
                } else {
                    lines.push("steps = [\"remove_spaces\"]".into());
                }
                if active {
                    lines.push("required = true".into());
                }
                write_lines(&mut out, &lines, active);
            }
            if active {
                filled.push(p.target.clone());
            }
            continue;
        }
        if p.target == "officers.cert_no" {
            // Paired with the officer names (zip) when active; otherwise shown for a person.
            if !active {
                comment_block(&mut out, p, None);
                write_lines(
                    &mut out,
                    &[format!("执法证号列 / certificate column: {}", p.source)],
                    false,
                );
            }
            continue;
        }
        let (Some(target), Some(field)) = (targets::target(&p.target), field) else {
            continue;
        };
        let table = table_names
            .iter()
            .find(|(_, t)| **t == p.target)
            .map(|(name, _)| name.as_str())
            .or((!active && !target.table.is_empty()).then_some(target.table));
        let (lines, note) = field_lines(p, field, target, table, active, scope);
        comment_block(&mut out, p, note.as_deref());
        if !active && matches!(target.kind, ValueKind::Code | ValueKind::CodeList) {
            let f = field.features();
            let items = code_items(field, target.kind == ValueKind::CodeList, &f);
            let _ = writeln!(out, "# 见到的值 / values seen: {}", items.join(" | "));
        }
        write_lines(&mut out, &lines, active);
        if active {
            filled.push(p.target.clone());
        }
    }

    let missing_required: Vec<String> = targets::TARGETS
        .iter()
        .filter(|t| match scope {
            Some(ct) => t.required_for(ct) && (t.case_type.is_empty() || t.case_type == ct.as_str()),
            None => t.required,
        })
        .filter(|t| !t.path.starts_with("officers.") && !filled.iter().any(|f| f == t.path))
        .map(|t| t.path.to_string())
        .collect();
    if !missing_required.is_empty() {
        let _ = writeln!(out, "# ---------------------------------------------------------------- 缺少的必填字段 / required fields without a source\n");
        let _ = writeln!(out, "# 规范记录要求、但没有找到来源的字段（映射它们，或写 supplement = true 并说明原因，见 docs/mappings.md 3.6）：");
        let _ = writeln!(out, "# Required canonical fields no source field was found for (map them, or declare supplement = true with a reason):");
        for m in &missing_required {
            let title = targets::target(m).map_or("", |t| t.title);
            let _ = writeln!(out, "#   {m}（{title}）");
        }
        out.push('\n');
    }
    if !unmatched.is_empty() {
        let _ = writeln!(out, "# ---------------------------------------------------------------- 未用上的源字段 / unmatched source fields\n");
        let _ = writeln!(
            out,
            "# 没有找到对应规范字段的源字段（例子取自样例） / source fields matched to nothing (example values):"
        );
        for u in &unmatched {
            let example = profiles
                .fields
                .iter()
                .find(|f| &f.path == u)
                .and_then(|f| f.values.first())
                .map(|v| v.chars().take(40).collect::<String>())
                .unwrap_or_default();
            let _ = writeln!(out, "#   {u}  例 / e.g. {example:?}");
        }
        out.push('\n');
    }

    // Load what is written so far, then build the tests from its output.
    let table_files: BTreeMap<String, Vec<u8>> =
        tables.iter().map(|(n, t)| (n.clone(), t.as_bytes().to_vec())).collect();
    let mapping = Mapping::from_bundle(&out, "mapping.toml", &table_files)
        .map_err(|e| SuggestError::Invalid(format!("{e}\n{out}")))?;
    let normalizer = Normalizer::default();
    let sample_count = options.tests.min(records.len());
    if sample_count > 0 {
        let _ = writeln!(
            out,
            "# ---------------------------------------------------------------- 测试 / tests\n"
        );
        let _ = writeln!(
            out,
            "# 请核对这些期望值！它们是本草稿对样例记录的实际输出，不一定正确；改正映射后也改正期望值。"
        );
        let _ = writeln!(
            out,
            "# CHECK THESE EXPECTED VALUES: they are what this draft makes of the samples, not necessarily right;"
        );
        let _ = writeln!(
            out,
            "# when you correct the mapping, correct them too. Run: gateway mappings test DIR\n"
        );
    }
    for (i, record) in records.iter().take(sample_count).enumerate() {
        let outcome = normalizer.normalize(&mapping, record);
        let _ = writeln!(out, "[[test]]");
        let _ = writeln!(
            out,
            "name = {}",
            q(&format!(
                "样例记录 {}（请核对期望值） / sample record {} (check the expected values)",
                i + 1,
                i + 1
            ))
        );
        let input = serde_json::to_string_pretty(record).unwrap_or_default();
        let _ = writeln!(out, "input_json = {}", multiline(&input));
        let _ = writeln!(out, "expect_accepted = {}", outcome.is_accepted());
        let expect = serde_json::to_string_pretty(&outcome.record).unwrap_or_default();
        let _ = writeln!(out, "expect_json = {}", multiline(&expect));
        let mut seen = Vec::new();
        for v in outcome.violations.iter().filter(|v| v.severity == Severity::Error) {
            let item = format!("  {{ rule = {}, pointer = {} }},", q(&v.rule), q(&v.pointer));
            if !seen.contains(&item) {
                seen.push(item);
            }
        }
        if !seen.is_empty() {
            let _ = writeln!(
                out,
                "# 这条样例按本草稿会被拒收，原因如下 / this sample is rejected by the draft, because of:"
            );
            let _ = writeln!(out, "expect_violations = [\n{}\n]", seen.join("\n"));
        }
        out.push('\n');
    }
    let mapping =
        Mapping::from_bundle(&out, "mapping.toml", &table_files).map_err(|e| SuggestError::Invalid(e.to_string()))?;
    let report = run_tests(&mapping, &normalizer);
    if !report.passed() {
        return Err(SuggestError::Invalid(report.to_string()));
    }
    let proposals = chosen.into_iter().map(|(p, _)| p).collect();
    Ok(Suggestion {
        case_type,
        case_type_guessed: guessed,
        case_type_from: type_field.map(|f| f.path.clone()),
        proposals,
        unmatched,
        missing_required,
        mapping_toml: out,
        tables,
        tests: sample_count,
    })
}

//! Checking a mapping file and compiling it: paths parsed, tables loaded, options resolved, so
//! that applying the mapping to a record does no parsing and no lookups by name.

use super::convert::{Step, Unit};
use super::dates::DateFormat;
use super::error::{MappingError, MappingErrorKind as K, SourceFile};
use super::layout::Layout;
use super::path::{SourcePath, TargetPath};
use super::spec::{
    AsType, CaseTypeSpec, ConcatPart as ConcatSpec, FieldSpec, FragmentSpec, MappingSpec, TableSpec, TestSpec,
    UnmappedSpec, WhenSpec,
};
use super::tables::{self, CodeTable, Entries, Unmapped};
use super::targets::{record_shape, Shape};
use super::test_case::{ExpectedViolation, TestCase};
use crate::supplement::SupplementField;
use crate::xml_tree::{parse_xml, XmlLimits};
use crate::CaseType;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use toml::Spanned;

/// Characters `string_array` splits on unless `split` says otherwise.
pub(crate) const DEFAULT_SPLIT: &str = "、,，;；";

/// A compiled field.
#[derive(Debug)]
pub(crate) struct Field {
    pub target: TargetPath,
    pub when: Vec<Condition>,
    pub source: Source,
    pub default: Option<Value>,
    pub required: bool,
    pub convert: Conversion,
    /// Declared `personal = true`.
    pub personal: bool,
}

/// Where a field's value comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// `from`: the first path with a non-empty value.
    Paths(Vec<SourcePath>),
    /// `concat`: parts joined with `separator`.
    Concat {
        parts: Vec<ConcatPart>,
        separator: Box<str>,
    },
    /// `const`.
    Const(Value),
    /// `each` + nested `fields`, and the object those fields build.
    Each {
        path: SourcePath,
        fields: Vec<Field>,
        layout: Layout,
    },
    /// `zip`: parallel lists or delimited strings into objects.
    Zip {
        members: Vec<(Box<str>, SourcePath)>,
        split: Box<[char]>,
    },
}

/// A part of `concat`.
#[derive(Debug)]
pub(crate) enum ConcatPart {
    Path(SourcePath),
    Const(Box<str>),
}

/// Steps and typed conversion of a field.
#[derive(Debug)]
pub(crate) struct Conversion {
    pub steps: Vec<Step>,
    pub as_type: AsType,
    pub split: Box<[char]>,
    pub unit: Unit,
    pub format: Option<DateFormat>,
    pub table: Option<usize>,
    pub distinct: bool,
}

/// A compiled condition.
#[derive(Debug)]
pub(crate) enum Condition {
    /// The value at `path` is (or, negated, is not) one of `values` (compared trimmed).
    Equals {
        path: SourcePath,
        values: Vec<Box<str>>,
        negate: bool,
    },
    /// The value at `path` is present and not empty (or, with `exists = false`, absent or empty).
    Exists { path: SourcePath, exists: bool },
    /// The record's case type is this one.
    CaseType(CaseType),
}

/// How the case type is decided.
#[derive(Debug)]
pub(crate) enum CaseTypeRule {
    Const(CaseType),
    Computed(Box<Field>),
}

/// Everything compiled from one mapping file.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub id: String,
    pub version: i64,
    pub description: String,
    pub case_type: Option<CaseTypeRule>,
    pub fields: Vec<Field>,
    /// The record the fields build, with the root `case_type` as extra key 0.
    pub layout: Layout,
    /// The first keys of every source path, sorted: the keys of the per-record root index.
    pub root_keys: Vec<Box<str>>,
    pub tables: Vec<CodeTable>,
    pub tests: Vec<TestCase>,
    /// Each CSV code table read, in declaration order (for the fingerprint and bundles).
    pub table_files: Vec<TableFile>,
    /// The fields declared `supplement = true`, in file order.
    pub supplements: Vec<SupplementField>,
    /// Each fragment read through `include`, in order.
    pub include_files: Vec<IncludeFile>,
}

/// The text of one fragment named in `include`.
#[derive(Debug, Clone)]
pub(crate) struct IncludeFile {
    /// The path relative to the mapping's folder (`../nanchang-common/fields.toml`).
    pub file: String,
    /// The fragment's text.
    pub text: String,
}

/// The bytes of one CSV code table as read.
#[derive(Debug, Clone)]
pub(crate) struct TableFile {
    /// The table's name (`[tables.NAME]`).
    pub table: String,
    /// The `file` value as written in the mapping (relative to the mapping's folder); for a
    /// table of an included fragment, the path relative to the mapping's folder.
    pub file: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

/// Where the CSV files of code tables come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TableSource<'a> {
    /// Files relative to this folder (the mapping file's).
    Dir(&'a Path),
    /// Contents given in memory, by the `file` value as written in the mapping.
    Files(&'a BTreeMap<String, Vec<u8>>),
}

struct Ctx<'a> {
    src: SourceFile<'a>,
    tables_from: TableSource<'a>,
    table_index: HashMap<String, usize>,
}

fn span_or(inner: Range<usize>, outer: Range<usize>) -> Range<usize> {
    if inner.start == 0 && inner.end == 0 {
        outer
    } else {
        inner
    }
}

/// Compile the text of a mapping file.
pub(crate) fn compile(text: &str, file_name: &str, tables_from: TableSource<'_>) -> Result<Compiled, MappingError> {
    let src = SourceFile { name: file_name, text };
    let spec: MappingSpec = toml::from_str(text).map_err(|e| src.toml_error(&e))?;

    let id = spec.id.get_ref().trim().to_string();
    if id.is_empty() || id.chars().any(char::is_whitespace) {
        return Err(src.error(
            K::InvalidValue,
            spec.id.span(),
            "id 不能为空，也不能含空格",
            "id must not be empty nor contain spaces",
        ));
    }
    let version = *spec.version.get_ref();
    if version < 1 {
        return Err(src.error(
            K::InvalidValue,
            spec.version.span(),
            "version 应为正整数",
            "version must be a positive integer",
        ));
    }

    let include_files = read_includes(src, &spec, tables_from)?;
    let fragment_names: Vec<String> = include_files
        .iter()
        .map(|f| display_name(tables_from, &f.file))
        .collect();
    let mut fragments = Vec::with_capacity(include_files.len());
    for (file, name) in include_files.iter().zip(&fragment_names) {
        let fsrc = SourceFile {
            name,
            text: file.text.strip_prefix('\u{FEFF}').unwrap_or(&file.text),
        };
        let fragment: FragmentSpec = toml::from_str(fsrc.text).map_err(|e| fsrc.toml_error(&e))?;
        fragments.push((fsrc, folder_of(&file.file), fragment));
    }

    // Tables: the fragments' first, then the mapping's own; a table the mapping declares
    // itself replaces a fragment's of the same name.
    let own_tables: HashSet<&str> = spec.tables.0.iter().map(|(n, _)| n.get_ref().as_str()).collect();
    let mut tables = Vec::new();
    let mut table_files = Vec::new();
    let mut table_index = HashMap::new();
    for (fsrc, folder, fragment) in &fragments {
        let mut ctx = Ctx {
            src: *fsrc,
            tables_from,
            table_index: std::mem::take(&mut table_index),
        };
        compile_tables(
            &mut ctx,
            &fragment.tables.0,
            Some(folder),
            &own_tables,
            &mut tables,
            &mut table_files,
        )?;
        table_index = ctx.table_index;
    }
    let mut ctx = Ctx {
        src,
        tables_from,
        table_index,
    };
    compile_tables(
        &mut ctx,
        &spec.tables.0,
        None,
        &HashSet::new(),
        &mut tables,
        &mut table_files,
    )?;

    let case_type = match &spec.case_type {
        None => None,
        Some(ct) => Some(compile_case_type(&ctx, ct, &tables)?),
    };

    // Fields: the fragments' first, in include order, then the mapping's own; a target the
    // mapping maps itself replaces every fragment field of that target.
    let own_targets: HashSet<&str> = spec
        .fields
        .iter()
        .filter_map(|f| f.get_ref().target.as_ref().map(|t| t.get_ref().trim()))
        .collect();
    let root = record_shape();
    let mut fields = Vec::with_capacity(spec.fields.len());
    let mut origins = Vec::with_capacity(spec.fields.len());
    let mut supplements = Vec::new();
    let fragment_ctxs: Vec<Ctx<'_>> = fragments
        .iter()
        .map(|(fsrc, _, _)| Ctx {
            src: *fsrc,
            tables_from,
            table_index: ctx.table_index.clone(),
        })
        .collect();
    let mut all: Vec<(&Ctx<'_>, &Spanned<FieldSpec>)> = Vec::new();
    for (fctx, (_, _, fragment)) in fragment_ctxs.iter().zip(&fragments) {
        for f in &fragment.fields {
            let overridden = f
                .get_ref()
                .target
                .as_ref()
                .is_some_and(|t| own_targets.contains(t.get_ref().trim()));
            if !overridden {
                all.push((fctx, f));
            }
        }
    }
    all.extend(spec.fields.iter().map(|f| (&ctx, f)));
    for (fctx, f) in all {
        let field = compile_field(fctx, f, root, "")?;
        if let Some(s) = compile_supplement(fctx, f, &field)? {
            supplements.push(s);
        }
        let span = f.get_ref().target.as_ref().map_or(f.span(), Spanned::span);
        fields.push(field);
        origins.push((fctx.src, span));
    }
    check_overlaps(&origins, &fields)?;

    let mut tests = Vec::with_capacity(spec.tests.len());
    for t in &spec.tests {
        tests.push(compile_test(&ctx, t)?);
    }

    let layout = Layout::new(fields.iter().map(|f| &f.target), &["case_type"]);
    let mut case_type = case_type;
    let root_keys = index_root_keys(&mut fields, &mut case_type);
    Ok(Compiled {
        id,
        version,
        description: spec.description.clone(),
        case_type,
        fields,
        layout,
        root_keys,
        tables,
        tests,
        table_files,
        supplements,
        include_files,
    })
}

/// Read the fragments named in `include`, each once, in order. A fragment may not include
/// further fragments (its `include` key is refused by its own load).
fn read_includes(
    src: SourceFile<'_>,
    spec: &MappingSpec,
    from: TableSource<'_>,
) -> Result<Vec<IncludeFile>, MappingError> {
    let mut out: Vec<IncludeFile> = Vec::new();
    for path in &spec.include {
        let file = path.get_ref().trim().to_string();
        if file.is_empty() {
            return Err(src.error(
                K::InvalidValue,
                path.span(),
                "include 中的路径为空",
                "an `include` path is empty",
            ));
        }
        if out.iter().any(|f| f.file == file) {
            return Err(src.error(
                K::InvalidValue,
                path.span(),
                format!("片段 {file} 被重复引用"),
                format!("fragment {file} is included twice"),
            ));
        }
        let text = match from {
            TableSource::Dir(base) => {
                let full = base.join(&file);
                std::fs::read(&full).map_err(|e| {
                    src.error(
                        K::TableFile,
                        path.span(),
                        format!("无法读取片段 {}：{e}", full.display()),
                        format!("cannot read fragment {}: {e}", full.display()),
                    )
                })?
            }
            TableSource::Files(files) => files.get(&file).cloned().ok_or_else(|| {
                src.error(
                    K::TableFile,
                    path.span(),
                    format!("片段 {file} 不在此版本的文件中"),
                    format!("fragment {file} is not among this version's files"),
                )
            })?,
        };
        let text = String::from_utf8(text).map_err(|_| {
            src.error(
                K::TableFile,
                path.span(),
                format!("片段 {file} 不是 UTF-8 编码"),
                format!("fragment {file} is not UTF-8"),
            )
        })?;
        out.push(IncludeFile { file, text });
    }
    Ok(out)
}

/// The name a fragment gets in error messages: its path beside the mapping file's when the
/// mapping was read from disk, else its path as written.
fn display_name(from: TableSource<'_>, file: &str) -> String {
    match from {
        TableSource::Dir(base) => base.join(file).display().to_string(),
        TableSource::Files(_) => file.to_string(),
    }
}

/// The folder part of a relative path written with `/` (`../common/fields.toml` -> `../common`).
fn folder_of(file: &str) -> String {
    match file.rfind(['/', '\\']) {
        Some(i) => file[..i].to_string(),
        None => String::new(),
    }
}

/// `folder` joined with `file`, `.` and `..` resolved lexically, `/` as separator: the key a
/// fragment's code table has among the mapping's files (`../common` + `ids.csv` ->
/// `../common/ids.csv`). An absolute `file` is kept as written.
pub fn join_relative(folder: &str, file: &str) -> String {
    if file.starts_with('/') || folder.is_empty() {
        return file.to_string();
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in folder.split(['/', '\\']).chain(file.split(['/', '\\'])) {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// The `supplement = true` declaration of a top-level field, checked: it needs a reason, and a
/// default, a constant or `required = true` would defeat it.
fn compile_supplement(
    ctx: &Ctx<'_>,
    spec: &Spanned<FieldSpec>,
    field: &Field,
) -> Result<Option<SupplementField>, MappingError> {
    let f = spec.get_ref();
    let dotted = field.target.dotted();
    let Some(flag) = &f.supplement else {
        if let Some(reason) = &f.reason {
            return Err(ctx.src.error(
                K::InvalidValue,
                reason.span(),
                format!("字段 {dotted} 的 reason 只与 supplement = true 同用"),
                format!("`reason` on field {dotted} goes with `supplement = true` only"),
            ));
        }
        return Ok(None);
    };
    if !*flag.get_ref() {
        return Ok(None);
    }
    let conflicting = present(&[
        (f.default.is_some(), "default"),
        (f.constant.is_some(), "const"),
        (f.required == Some(true), "required = true"),
        (f.each.is_some(), "each"),
        (f.zip.is_some(), "zip"),
    ]);
    if let Some(opt) = conflicting {
        return Err(ctx.src.error(
            K::InvalidValue,
            flag.span(),
            format!("字段 {dotted} 声明了 supplement = true，不能再用 {opt}：待补录字段不能用默认值或占位值填充"),
            format!("field {dotted} is declared `supplement = true` and cannot use `{opt}`: a field awaiting supplement is never filled with a default or placeholder"),
        ));
    }
    let reason = f.reason.as_ref().map(|r| r.get_ref().trim()).unwrap_or_default();
    if reason.is_empty() {
        return Err(ctx.src.error(
            K::MissingKey,
            flag.span(),
            format!("字段 {dotted} 声明了 supplement = true，需用 reason 说明来源系统为何无法提供"),
            format!("field {dotted} is declared `supplement = true`: say in `reason` why the source cannot supply it"),
        ));
    }
    let pointer = field.target.keys().iter().fold(String::new(), |mut p, k| {
        p.push('/');
        p.push_str(k);
        p
    });
    Ok(Some(SupplementField {
        pointer,
        reason: reason.to_string(),
    }))
}

/// Compile `specs` into `tables` and `bytes`. `folder` is the fragment's folder relative to the
/// mapping (`None` for the mapping's own tables, whose `file` values are kept as written);
/// tables named in `replaced` are skipped (the mapping declares its own).
fn compile_tables(
    ctx: &mut Ctx<'_>,
    specs: &[(Spanned<String>, Spanned<TableSpec>)],
    folder: Option<&str>,
    replaced: &HashSet<&str>,
    tables: &mut Vec<CodeTable>,
    bytes: &mut Vec<TableFile>,
) -> Result<(), MappingError> {
    let src = ctx.src;
    for (name, spec) in specs {
        let name_str = name.get_ref().as_str();
        if replaced.contains(name_str) {
            continue;
        }
        let t = spec.get_ref();
        let entries = match (&t.file, &t.values) {
            (Some(file), None) => {
                let not_found = |display: &str| {
                    src.error(
                        K::TableFile,
                        file.span(),
                        format!("代码表 {name_str} 的文件不存在：{display}"),
                        format!("code table {name_str}: file not found: {display}"),
                    )
                };
                let key = match folder {
                    Some(folder) => join_relative(folder, file.get_ref()),
                    None => file.get_ref().clone(),
                };
                let (entries, raw) = match ctx.tables_from {
                    TableSource::Dir(base_dir) => {
                        let path = base_dir.join(&key);
                        let display = path.display().to_string();
                        if !path.is_file() {
                            return Err(not_found(&display));
                        }
                        tables::read_csv(&path, &display, name_str)?
                    }
                    TableSource::Files(files) => {
                        let Some(raw) = files.get(key.as_str()) else {
                            return Err(not_found(&key));
                        };
                        (tables::parse_csv(raw, &key, name_str)?, raw.clone())
                    }
                };
                bytes.push(TableFile {
                    table: name_str.to_string(),
                    file: key,
                    bytes: raw,
                });
                entries
            }
            (None, Some(values)) => {
                let mut entries = Entries::default();
                for (k, v) in &values.get_ref().0 {
                    if let Some(found) = tables::personal_id_in_row(k.get_ref(), v) {
                        let (line, _) = super::error::line_col(src.text, k.span().start);
                        let (zh, en) = found.messages(name_str, &format!("第 {line} 行"), &format!("line {line}"));
                        return Err(src.error(K::PersonalIdentifier, k.span(), zh, en));
                    }
                    entries.insert(Box::from(k.get_ref().trim()), Box::from(v.trim()));
                }
                if entries.is_empty() {
                    return Err(src.error(K::InvalidValue, values.span(), "values 为空", "values is empty"));
                }
                entries
            }
            _ => {
                return Err(src.error(
                    K::InvalidValue,
                    spec.span(),
                    format!("代码表 {name_str} 须且只能有 file 或 values 之一"),
                    format!("code table {name_str} needs exactly one of `file` or `values`"),
                ))
            }
        };
        let unmapped = match &t.unmapped {
            None => Unmapped::Error,
            Some(u) => match u.get_ref() {
                UnmappedSpec::Named(n) => match n.as_str() {
                    "error" => Unmapped::Error,
                    "warn_keep" => Unmapped::WarnKeep,
                    "null" => Unmapped::Null,
                    other => {
                        return Err(src.error(
                            K::InvalidValue,
                            u.span(),
                            format!("unmapped 的取值 {other:?} 无效（可用：error, warn_keep, null, {{ default = \"...\" }}）"),
                            format!("invalid unmapped policy {other:?} (expected error, warn_keep, null or {{ default = \"...\" }})"),
                        ))
                    }
                },
                UnmappedSpec::Default(d) => Unmapped::Default(d.clone()),
            },
        };
        if ctx.table_index.insert(name_str.to_string(), tables.len()).is_some() {
            return Err(src.error(
                K::InvalidValue,
                name.span(),
                format!("代码表 {name_str} 重复声明"),
                format!("code table {name_str} is declared twice"),
            ));
        }
        tables.push(CodeTable {
            name: name_str.into(),
            entries,
            unmapped,
        });
    }
    Ok(())
}

fn parse_case_type(s: &str) -> Option<CaseType> {
    CaseType::from_str(s.trim()).ok()
}

fn compile_case_type(
    ctx: &Ctx<'_>,
    spec: &Spanned<CaseTypeSpec>,
    tables: &[CodeTable],
) -> Result<CaseTypeRule, MappingError> {
    let src = ctx.src;
    match spec.get_ref() {
        CaseTypeSpec::Const(s) => parse_case_type(s).map(CaseTypeRule::Const).ok_or_else(|| {
            src.error(
                K::InvalidValue,
                spec.span(),
                format!("case_type {s:?} 无效（可用：inspection, penalty, coercion, plan）"),
                format!("invalid case_type {s:?} (expected inspection, penalty, coercion or plan)"),
            )
        }),
        CaseTypeSpec::Rule(rule) => {
            let forbidden = [
                (rule.target.is_some(), "target"),
                (rule.when.is_some(), "when"),
                (rule.each.is_some(), "each"),
                (rule.zip.is_some(), "zip"),
                (rule.fields.is_some(), "fields"),
                (rule.constant.is_some(), "const"),
            ];
            if let Some((_, key)) = forbidden.iter().find(|(present, _)| *present) {
                return Err(src.error(
                    K::InvalidValue,
                    spec.span(),
                    format!("case_type 规则中不能用 {key}（常量请写 case_type = \"penalty\"）"),
                    format!(
                        "`{key}` is not allowed in a case_type rule (for a constant write case_type = \"penalty\")"
                    ),
                ));
            }
            let mut field = compile_field_body(
                ctx,
                rule,
                spec.span(),
                TargetPath::parse("case_type").ok(),
                &Shape::Scalar,
            )?;
            field.required = true;
            if let Some(i) = field.convert.table {
                let table = &tables[i];
                let mut bad: Vec<&str> = table
                    .entries
                    .values()
                    .map(|v| &**v)
                    .filter(|v| parse_case_type(v).is_none())
                    .collect();
                if let Unmapped::Default(d) = &table.unmapped {
                    if parse_case_type(d).is_none() {
                        bad.push(d);
                    }
                }
                if !bad.is_empty() {
                    bad.sort_unstable();
                    return Err(src.error(
                        K::TableFile,
                        spec.span(),
                        format!(
                            "代码表 {} 的目标值必须是 inspection、penalty、coercion 或 plan，发现 {}",
                            table.name,
                            bad.join(", ")
                        ),
                        format!(
                            "code table {} must map to inspection, penalty, coercion or plan; found {}",
                            table.name,
                            bad.join(", ")
                        ),
                    ));
                }
            }
            Ok(CaseTypeRule::Computed(Box::new(field)))
        }
    }
}

fn path_in(ctx: &Ctx<'_>, text: &str, span: Range<usize>) -> Result<SourcePath, MappingError> {
    SourcePath::parse(text).map_err(|e| {
        ctx.src.error_in_string(
            K::InvalidPath,
            span,
            e.offset,
            format!("路径 {text:?} 无效：{}", e.message_zh),
            format!("invalid path {text:?}: {}", e.message_en),
        )
    })
}

fn compile_field(
    ctx: &Ctx<'_>,
    spec: &Spanned<FieldSpec>,
    parent: &Shape,
    parent_path: &str,
) -> Result<Field, MappingError> {
    let src = ctx.src;
    let f = spec.get_ref();
    if let (false, Some(flag)) = (parent_path.is_empty(), &f.supplement) {
        return Err(src.error(
            K::InvalidValue,
            flag.span(),
            format!("supplement 只能用于顶层字段，不能用于 {parent_path} 的元素字段"),
            format!("`supplement` is for top-level fields only, not for the fields of each {parent_path} item"),
        ));
    }
    let Some(target_spec) = &f.target else {
        return Err(src.error(
            K::MissingKey,
            spec.span(),
            "字段缺少 target",
            "the field has no `target`",
        ));
    };
    let target_text = target_spec.get_ref();
    let target = TargetPath::parse(target_text).map_err(|e| {
        src.error_in_string(
            K::InvalidTarget,
            target_spec.span(),
            e.offset,
            e.message_zh,
            e.message_en,
        )
    })?;
    if parent_path.is_empty() && target_text == "case_type" {
        return Err(src.error(
            K::InvalidTarget,
            target_spec.span(),
            "case_type 请在文件开头用 case_type = ... 声明，不要写成字段",
            "declare the case type with the top-level `case_type = ...`, not as a field",
        ));
    }
    let shape = parent.lookup(target.keys()).map_err(|i| {
        let known = parent
            .lookup(&target.keys()[..i])
            .map(Shape::member_names)
            .unwrap_or_default();
        let full = if parent_path.is_empty() {
            target_text.clone()
        } else {
            format!("{parent_path}[].{target_text}")
        };
        src.error(
            K::InvalidTarget,
            target_spec.span(),
            format!("规范数据中没有字段 {full}（此处可用：{}）", known.join(", ")),
            format!(
                "the canonical record has no field {full} (known here: {})",
                known.join(", ")
            ),
        )
    })?;
    compile_field_body(ctx, f, spec.span(), Some(target), shape)
}

/// Every source path of `f`, nested fields included.
fn paths_mut<'f>(f: &'f mut Field, out: &mut Vec<&'f mut SourcePath>) {
    for c in &mut f.when {
        match c {
            Condition::Equals { path, .. } | Condition::Exists { path, .. } => out.push(path),
            Condition::CaseType(_) => {}
        }
    }
    match &mut f.source {
        Source::Paths(paths) => out.extend(paths.iter_mut()),
        Source::Concat { parts, .. } => out.extend(parts.iter_mut().filter_map(|p| match p {
            ConcatPart::Path(path) => Some(path),
            ConcatPart::Const(_) => None,
        })),
        Source::Const(_) => {}
        Source::Each { path, fields, .. } => {
            out.push(path);
            for nested in fields {
                paths_mut(nested, out);
            }
        }
        Source::Zip { members, .. } => out.extend(members.iter_mut().map(|(_, path)| path)),
    }
}

/// Collect the first keys of all source paths, sorted and distinct, and tell each path where
/// its key is: applying the mapping then looks each of them up in the record once.
fn index_root_keys(fields: &mut [Field], case_type: &mut Option<CaseTypeRule>) -> Vec<Box<str>> {
    let mut paths = Vec::new();
    for f in fields.iter_mut() {
        paths_mut(f, &mut paths);
    }
    if let Some(CaseTypeRule::Computed(f)) = case_type {
        paths_mut(f, &mut paths);
    }
    let mut keys: Vec<Box<str>> = paths.iter().filter_map(|p| p.first_key()).map(Box::from).collect();
    keys.sort();
    keys.dedup();
    for path in paths {
        if let Some(position) = path
            .first_key()
            .and_then(|k| keys.binary_search_by(|x| (**x).cmp(k)).ok())
        {
            path.set_root_key(position);
        }
    }
    keys
}

/// Two fields may share a target (under different conditions), but one target may not lie
/// inside another (`agency` and `agency.name`): the later write would be lost.
fn check_overlaps(origins: &[(SourceFile<'_>, Range<usize>)], fields: &[Field]) -> Result<(), MappingError> {
    for (i, later) in fields.iter().enumerate() {
        for earlier in &fields[..i] {
            let (a, b) = (earlier.target.keys(), later.target.keys());
            let n = a.len().min(b.len());
            if a.len() != b.len() && a[..n] == b[..n] {
                let (src, span) = (origins[i].0, origins[i].1.clone());
                let (outer, inner) = if a.len() < b.len() {
                    (earlier, later)
                } else {
                    (later, earlier)
                };
                return Err(src.error(
                    K::InvalidTarget,
                    span,
                    format!(
                        "目标 {} 位于另一个目标 {} 之内，两者不能同时映射",
                        inner.target.dotted(),
                        outer.target.dotted()
                    ),
                    format!(
                        "target {} lies inside target {}: map one or the other",
                        inner.target.dotted(),
                        outer.target.dotted()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Options that only some sources or types accept; `Some(name)` when present.
fn present(opts: &[(bool, &'static str)]) -> Option<&'static str> {
    opts.iter().find(|(p, _)| *p).map(|(_, n)| *n)
}

fn compile_field_body(
    ctx: &Ctx<'_>,
    f: &FieldSpec,
    span: Range<usize>,
    target: Option<TargetPath>,
    shape: &Shape,
) -> Result<Field, MappingError> {
    let src = ctx.src;
    let target = target.ok_or_else(|| {
        src.error(
            K::MissingKey,
            span.clone(),
            "字段缺少 target",
            "the field has no `target`",
        )
    })?;
    let dotted = target.dotted();
    let err = |kind, span: Range<usize>, zh: String, en: String| src.error(kind, span, zh, en);

    let sources = [
        (f.from.is_some(), "from"),
        (f.concat.is_some(), "concat"),
        (f.constant.is_some(), "const"),
        (f.each.is_some(), "each"),
        (f.zip.is_some(), "zip"),
    ];
    let n_sources = sources.iter().filter(|(p, _)| *p).count();
    let supplement_only = n_sources == 0 && f.supplement.as_ref().is_some_and(|s| *s.get_ref());
    if n_sources != 1 && !supplement_only {
        let (zh, en) = if n_sources == 0 {
            (
                format!("字段 {dotted} 没有来源：请写 from、concat、const、each 或 zip 之一"),
                format!("field {dotted} has no source: give one of from, concat, const, each or zip"),
            )
        } else {
            let names: Vec<&str> = sources.iter().filter(|(p, _)| *p).map(|(_, n)| *n).collect();
            (
                format!("字段 {dotted} 的来源只能有一个，现有 {}", names.join("、")),
                format!(
                    "field {dotted} must have exactly one source, found {}",
                    names.join(", ")
                ),
            )
        };
        return Err(err(K::InvalidValue, span, zh, en));
    }

    let when = match &f.when {
        None => Vec::new(),
        Some(w) => {
            let mut out = Vec::new();
            for c in &w.get_ref().0 {
                out.push(compile_condition(ctx, c.get_ref(), span_or(c.span(), w.span()))?);
            }
            out
        }
    };

    let table = match &f.table {
        None => None,
        Some(t) => Some(*ctx.table_index.get(t.get_ref().as_str()).ok_or_else(|| {
            let declared: Vec<&str> = ctx.table_index.keys().map(String::as_str).collect();
            err(
                K::UndeclaredTable,
                t.span(),
                format!(
                    "代码表 {} 未在 [tables] 中声明（已声明：{}）",
                    t.get_ref(),
                    declared.join(", ")
                ),
                format!(
                    "code table {} is not declared under [tables] (declared: {})",
                    t.get_ref(),
                    declared.join(", ")
                ),
            )
        })?),
    };

    let is_list_target = matches!(shape, Shape::Array(_));
    let is_object_list = matches!(shape, Shape::Array(item) if matches!(**item, Shape::Object(_)));
    let as_type = match &f.as_type {
        Some(a) => *a.get_ref(),
        None if is_list_target && !is_object_list => AsType::StringArray,
        None => AsType::String,
    };
    let (shape_zh, shape_en) = shape.describe();

    let split_chars = |s: &Option<Spanned<String>>| -> Result<Box<[char]>, MappingError> {
        match s {
            None => Ok(DEFAULT_SPLIT.chars().collect()),
            Some(s) if s.get_ref().is_empty() => Err(err(
                K::InvalidValue,
                s.span(),
                "split 不能为空".into(),
                "split must not be empty".into(),
            )),
            Some(s) => Ok(s.get_ref().chars().collect()),
        }
    };

    let format = match &f.format {
        None => None,
        Some(fm) => Some(DateFormat::compile(fm.get_ref()).map_err(|e| {
            err(
                K::InvalidValue,
                fm.span(),
                format!("日期格式 {:?} 无效", fm.get_ref()),
                e,
            )
        })?),
    };

    let default = f.default.as_ref().map(|d| toml_to_json(d.get_ref()));
    let required = f.required.unwrap_or(false);

    let conversion_opts = [
        (f.steps.is_some(), "steps"),
        (f.as_type.is_some(), "as"),
        (f.table.is_some(), "table"),
        (f.unit.is_some(), "unit"),
        (f.format.is_some(), "format"),
        (f.split.is_some(), "split"),
        (f.distinct.is_some(), "distinct"),
    ];

    let source = if let Some(c) = &f.constant {
        if let Some(opt) = present(&conversion_opts).or(present(&[
            (f.default.is_some(), "default"),
            (f.separator.is_some(), "separator"),
            (f.fields.is_some(), "fields"),
        ])) {
            return Err(err(
                K::InvalidValue,
                span,
                format!("const 不能与 {opt} 同用：常量按原样写入"),
                format!("`const` cannot be combined with `{opt}`: the constant is written as is"),
            ));
        }
        Source::Const(toml_to_json(c.get_ref()))
    } else if let Some(each) = &f.each {
        if !is_object_list {
            return Err(err(
                K::InvalidTarget,
                span,
                format!("each 的目标必须是对象列表（如 officers），{dotted} 是{shape_zh}"),
                format!("the target of `each` must be a list of objects (e.g. officers); {dotted} is {shape_en}"),
            ));
        }
        if let Some(opt) = present(&conversion_opts).or(present(&[
            (f.default.is_some(), "default"),
            (f.separator.is_some(), "separator"),
        ])) {
            return Err(err(
                K::InvalidValue,
                span,
                format!("each 不能与 {opt} 同用：请写在 fields 的各字段里"),
                format!("`each` cannot be combined with `{opt}`: put it on the nested fields"),
            ));
        }
        let path = path_in(ctx, each.get_ref(), each.span())?;
        let Some(nested) = &f.fields else {
            return Err(err(
                K::MissingKey,
                span,
                "each 需要 fields（元素内各字段的映射）".into(),
                "`each` needs `fields` (how to map each element)".into(),
            ));
        };
        let Shape::Array(item) = shape else {
            return Err(err(
                K::InvalidTarget,
                span,
                format!("each 的目标必须是对象列表，{dotted} 是{shape_zh}"),
                format!("the target of `each` must be a list of objects; {dotted} is {shape_en}"),
            ));
        };
        let mut fields = Vec::with_capacity(nested.len());
        for n in nested {
            fields.push(compile_field(ctx, n, item, &dotted)?);
        }
        let origins: Vec<(SourceFile<'_>, Range<usize>)> = nested
            .iter()
            .map(|f| (src, f.get_ref().target.as_ref().map_or(f.span(), Spanned::span)))
            .collect();
        check_overlaps(&origins, &fields)?;
        let layout = Layout::new(fields.iter().map(|f| &f.target), &[]);
        Source::Each { path, fields, layout }
    } else if let Some(zip) = &f.zip {
        let Shape::Array(item) = shape else {
            return Err(err(
                K::InvalidTarget,
                span,
                format!("zip 的目标必须是对象列表（如 officers），{dotted} 是{shape_zh}"),
                format!("the target of `zip` must be a list of objects (e.g. officers); {dotted} is {shape_en}"),
            ));
        };
        if !is_object_list {
            return Err(err(
                K::InvalidTarget,
                span,
                format!("zip 的目标必须是对象列表（如 officers），{dotted} 是{shape_zh}"),
                format!("the target of `zip` must be a list of objects (e.g. officers); {dotted} is {shape_en}"),
            ));
        }
        if let Some(opt) = present(&[
            (f.as_type.is_some(), "as"),
            (f.table.is_some(), "table"),
            (f.unit.is_some(), "unit"),
            (f.format.is_some(), "format"),
            (f.distinct.is_some(), "distinct"),
            (f.default.is_some(), "default"),
            (f.fields.is_some(), "fields"),
        ]) {
            return Err(err(
                K::InvalidValue,
                span,
                format!("zip 不能与 {opt} 同用（zip 只支持 split 和 steps）"),
                format!("`zip` cannot be combined with `{opt}` (zip takes only split and steps)"),
            ));
        }
        let mut members = Vec::new();
        for (key, path) in &zip.get_ref().0 {
            let k = key.get_ref();
            if item.lookup(&[Box::from(k.as_str())]).is_err() {
                let known = item.member_names();
                return Err(err(
                    K::InvalidTarget,
                    key.span(),
                    format!("{dotted} 的元素没有字段 {k}（可用：{}）", known.join(", ")),
                    format!("elements of {dotted} have no field {k} (known: {})", known.join(", ")),
                ));
            }
            members.push((Box::from(k.as_str()), path_in(ctx, path.get_ref(), path.span())?));
        }
        if members.is_empty() {
            return Err(err(
                K::InvalidValue,
                zip.span(),
                "zip 为空".into(),
                "zip is empty".into(),
            ));
        }
        Source::Zip {
            members,
            split: split_chars(&f.split)?,
        }
    } else {
        if is_object_list || matches!(shape, Shape::Object(_)) {
            return Err(err(
                K::InvalidTarget,
                span,
                format!("{dotted} 是{shape_zh}，不能直接由 from/concat 赋值；请映射其下的字段，或用 each/zip"),
                format!(
                    "{dotted} is {shape_en} and cannot take a value from from/concat; map its members, or use each/zip"
                ),
            ));
        }
        if as_type == AsType::StringArray && !is_list_target {
            return Err(err(
                K::InvalidValue,
                span,
                format!("{dotted} 是单个值，不能用 as = \"string_array\""),
                format!("{dotted} is a single value; as = \"string_array\" does not fit"),
            ));
        }
        if f.fields.is_some() {
            return Err(err(
                K::InvalidValue,
                span,
                "fields 只能与 each 同用".into(),
                "`fields` only goes with `each`".into(),
            ));
        }
        if f.unit.is_some() && !matches!(as_type, AsType::Decimal | AsType::Integer) {
            return Err(err(
                K::InvalidValue,
                span,
                "unit 只能与 as = \"decimal\" 或 \"integer\" 同用".into(),
                "`unit` needs as = \"decimal\" or \"integer\"".into(),
            ));
        }
        if f.format.is_some() && !matches!(as_type, AsType::Date | AsType::Datetime) {
            return Err(err(
                K::InvalidValue,
                span,
                "format 只能与 as = \"date\" 或 \"datetime\" 同用".into(),
                "`format` needs as = \"date\" or \"datetime\"".into(),
            ));
        }
        if (f.split.is_some() || f.distinct.is_some()) && as_type != AsType::StringArray {
            return Err(err(
                K::InvalidValue,
                span,
                "split、distinct 只能与 as = \"string_array\" 同用".into(),
                "`split` and `distinct` need as = \"string_array\"".into(),
            ));
        }
        if let Some(from) = &f.from {
            if f.separator.is_some() {
                return Err(err(
                    K::InvalidValue,
                    span,
                    "separator 只能与 concat 同用".into(),
                    "`separator` only goes with `concat`".into(),
                ));
            }
            let mut paths = Vec::new();
            for p in &from.get_ref().0 {
                paths.push(path_in(ctx, p.get_ref(), span_or(p.span(), from.span()))?);
            }
            if paths.is_empty() {
                return Err(err(
                    K::InvalidValue,
                    from.span(),
                    "from 列表为空".into(),
                    "the `from` list is empty".into(),
                ));
            }
            Source::Paths(paths)
        } else if let Some(concat) = &f.concat {
            let mut parts = Vec::new();
            for p in concat.get_ref() {
                parts.push(match p.get_ref() {
                    ConcatSpec::Path(t) => ConcatPart::Path(path_in(ctx, t, p.span())?),
                    ConcatSpec::Const(c) => ConcatPart::Const(c.as_str().into()),
                });
            }
            if !parts.iter().any(|p| matches!(p, ConcatPart::Path(_))) {
                return Err(err(
                    K::InvalidValue,
                    concat.span(),
                    "concat 至少要有一个路径（全是常量请用 const）".into(),
                    "concat needs at least one path (for a constant use `const`)".into(),
                ));
            }
            Source::Concat {
                parts,
                separator: f.separator.clone().unwrap_or_default().into(),
            }
        } else if supplement_only {
            // The source never has it: the field reads nothing and the record awaits supplement.
            Source::Paths(Vec::new())
        } else {
            return Err(err(
                K::InvalidValue,
                span,
                format!("字段 {dotted} 没有来源"),
                format!("field {dotted} has no source"),
            ));
        }
    };

    let convert = Conversion {
        steps: f.steps.clone().unwrap_or_default(),
        as_type,
        split: split_chars(&f.split)?,
        unit: f.unit.as_ref().map(|u| *u.get_ref()).unwrap_or_default(),
        format,
        table,
        distinct: f.distinct.unwrap_or(false),
    };
    Ok(Field {
        target,
        when,
        source,
        default,
        required,
        convert,
        personal: f.personal.unwrap_or(false),
    })
}

/// The JSON pointers of the fields declared `personal = true`, an item of a list as `*`
/// (`/witnesses/*/phone`).
pub(crate) fn personal_pointers(fields: &[Field], prefix: &str, out: &mut Vec<String>) {
    for field in fields {
        let pointer = format!("{prefix}{}", field.target.pointer());
        if field.personal {
            out.push(pointer.clone());
        }
        if let Source::Each { fields, .. } = &field.source {
            personal_pointers(fields, &format!("{pointer}/*"), out);
        }
    }
}

fn scalar_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    }
}

fn compile_condition(ctx: &Ctx<'_>, w: &WhenSpec, span: Range<usize>) -> Result<Condition, MappingError> {
    let src = ctx.src;
    if let Some(ct) = &w.case_type {
        if w.path.is_some()
            || w.equals.is_some()
            || w.not_equals.is_some()
            || w.in_list.is_some()
            || w.not_in.is_some()
            || w.exists.is_some()
        {
            return Err(src.error(
                K::InvalidValue,
                span,
                "when 中 case_type 不能与 path 等同写在一个条件里；请写成条件列表",
                "in `when`, case_type cannot share a condition with path; use a list of conditions",
            ));
        }
        return parse_case_type(ct.get_ref()).map(Condition::CaseType).ok_or_else(|| {
            src.error(
                K::InvalidValue,
                ct.span(),
                format!(
                    "case_type {:?} 无效（可用：inspection, penalty, coercion, plan）",
                    ct.get_ref()
                ),
                format!(
                    "invalid case_type {:?} (expected inspection, penalty, coercion or plan)",
                    ct.get_ref()
                ),
            )
        });
    }
    let Some(p) = &w.path else {
        return Err(src.error(
            K::MissingKey,
            span,
            "条件缺少 path（或 case_type）",
            "the condition needs `path` (or `case_type`)",
        ));
    };
    let path = path_in(ctx, p.get_ref(), p.span())?;
    let tests = [
        w.equals.is_some(),
        w.not_equals.is_some(),
        w.in_list.is_some(),
        w.not_in.is_some(),
        w.exists.is_some(),
    ];
    if tests.iter().filter(|&&t| t).count() != 1 {
        return Err(src.error(
            K::InvalidValue,
            span,
            "条件须且只能有 equals、not_equals、in、not_in、exists 之一",
            "a condition needs exactly one of equals, not_equals, in, not_in, exists",
        ));
    }
    let cond = if let Some(v) = &w.equals {
        Condition::Equals {
            path,
            values: vec![scalar_text(v).into()],
            negate: false,
        }
    } else if let Some(v) = &w.not_equals {
        Condition::Equals {
            path,
            values: vec![scalar_text(v).into()],
            negate: true,
        }
    } else if let Some(v) = &w.in_list {
        Condition::Equals {
            path,
            values: v.iter().map(|x| scalar_text(x).into()).collect(),
            negate: false,
        }
    } else if let Some(v) = &w.not_in {
        Condition::Equals {
            path,
            values: v.iter().map(|x| scalar_text(x).into()).collect(),
            negate: true,
        }
    } else {
        Condition::Exists {
            path,
            exists: w.exists.unwrap_or(true),
        }
    };
    Ok(cond)
}

/// A TOML value as JSON (dates and times become their text).
pub(crate) fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

fn compile_test(ctx: &Ctx<'_>, spec: &Spanned<TestSpec>) -> Result<TestCase, MappingError> {
    let src = ctx.src;
    let t = spec.get_ref();
    let name = &t.name;
    let inputs = [t.input.is_some(), t.input_json.is_some(), t.input_xml.is_some()];
    if inputs.iter().filter(|&&p| p).count() != 1 {
        return Err(src.error(
            K::InvalidTest,
            spec.span(),
            format!("测试 {name:?} 须且只能有 input、input_json、input_xml 之一"),
            format!("test {name:?} needs exactly one of input, input_json, input_xml"),
        ));
    }
    let json_in = |s: &Spanned<String>, what: &str| -> Result<Value, MappingError> {
        serde_json::from_str(s.get_ref()).map_err(|e| {
            src.error(
                K::InvalidTest,
                s.span(),
                format!(
                    "测试 {name:?} 的 {what} 不是合法 JSON（第 {} 行第 {} 列）：{e}",
                    e.line(),
                    e.column()
                ),
                format!(
                    "{what} of test {name:?} is not valid JSON (line {}, column {}): {e}",
                    e.line(),
                    e.column()
                ),
            )
        })
    };
    let input = if let Some(v) = &t.input {
        toml_to_json(v)
    } else if let Some(s) = &t.input_json {
        json_in(s, "input_json")?
    } else if let Some(s) = &t.input_xml {
        let tree = parse_xml(s.get_ref().trim().as_bytes(), &XmlLimits::default()).map_err(|e| {
            src.error(
                K::InvalidTest,
                s.span(),
                format!("测试 {name:?} 的 input_xml 无法解析：{e}"),
                format!("input_xml of test {name:?} cannot be parsed: {e}"),
            )
        })?;
        match tree {
            Value::Object(mut root) if root.len() == 1 => {
                root.values_mut().next().map(std::mem::take).unwrap_or(Value::Null)
            }
            other => other,
        }
    } else {
        Value::Null
    };
    if t.expect.is_some() && t.expect_json.is_some() {
        return Err(src.error(
            K::InvalidTest,
            spec.span(),
            format!("测试 {name:?} 不能同时有 expect 和 expect_json"),
            format!("test {name:?} cannot have both expect and expect_json"),
        ));
    }
    let expect = match (&t.expect, &t.expect_json) {
        (Some(v), _) => Some(toml_to_json(v)),
        (None, Some(s)) => Some(json_in(s, "expect_json")?),
        (None, None) => None,
    };
    let mut expect_fields = Vec::new();
    if let Some(fields) = &t.expect_fields {
        for (pointer, value) in &fields.get_ref().0 {
            if !pointer.get_ref().starts_with('/') {
                return Err(src.error(
                    K::InvalidTest,
                    pointer.span(),
                    format!(
                        "expect_fields 的键应为 JSON 指针，如 \"/penalty/fine_amount\"，实际为 {:?}",
                        pointer.get_ref()
                    ),
                    format!(
                        "expect_fields keys are JSON pointers like \"/penalty/fine_amount\", found {:?}",
                        pointer.get_ref()
                    ),
                ));
            }
            expect_fields.push((pointer.get_ref().clone(), toml_to_json(value)));
        }
    }
    if expect.is_none() && expect_fields.is_empty() && t.expect_violations.is_empty() && t.expect_accepted.is_none() {
        return Err(src.error(
            K::InvalidTest,
            spec.span(),
            format!("测试 {name:?} 没有任何期望：请写 expect、expect_json、expect_fields、expect_violations 或 expect_accepted"),
            format!("test {name:?} expects nothing: give expect, expect_json, expect_fields, expect_violations or expect_accepted"),
        ));
    }
    Ok(TestCase {
        name: name.clone(),
        input,
        expect,
        expect_fields,
        expect_violations: t
            .expect_violations
            .iter()
            .map(|v| ExpectedViolation {
                rule: v.rule.clone(),
                pointer: v.pointer.clone(),
                severity: v.severity,
            })
            .collect(),
        expect_accepted: t.expect_accepted,
    })
}

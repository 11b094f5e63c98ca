//! Proposing a mapping file from sample records (`gateway mappings suggest`).
//!
//! Each source field of the samples is matched to the canonical fields by its name (a dictionary
//! of the pinyin-initial, full-pinyin, English and Chinese names departmental systems use,
//! `normalizer/data/suggest_dictionary.csv`, compared case-insensitively without separators and
//! common affixes) and by what its values look like (valid GB 32100 credit codes, GB 11643 ID
//! numbers, GB/T 2260 region codes, dates, amounts, yes/no, names of agencies, companies and
//! people, officer lists, law citations, codes of the canonical enumerations). Every proposal
//! carries its evidence and a confidence; the best one per source field and per canonical field
//! is kept. Proposals below [`SuggestOptions::threshold`] and two columns close in confidence for
//! one canonical field are written commented out, for a person to decide.
//!
//! [`suggest`] renders the proposal as a mapping file with code tables (the distinct values seen,
//! each with a guessed canonical code) and embedded tests built from the first samples with the
//! output the proposal gives, so that the file loads and its tests pass as written.

mod dictionary;
mod profile;
mod proposal;
mod render;
pub(crate) mod targets;

use crate::CaseType;
use dictionary::{Dictionary, NameMatch};
use profile::{code_items, Features, FieldProfile, GroupProfile};
pub use proposal::{Proposal, Status, SuggestError, SuggestOptions, Suggestion, DEFAULT_THRESHOLD};
use serde_json::Value;
use targets::{Target, ValueKind, TARGETS};

/// A candidate before the choice.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Index in the profiles (fields) or `usize::MAX - group` for groups.
    pub field: usize,
    pub target: &'static Target,
    pub score: f64,
    pub zh: Vec<String>,
    pub en: Vec<String>,
    /// The case type the column's name is for (`punish_basis` → penalty), with the case type read
    /// per record.
    pub when: Option<&'static str>,
}

fn fmt_share(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// How well the values fit what `kind` expects: a confidence change and its reason.
fn value_fit(target: &Target, f: &Features, dict: &Dictionary, field: &FieldProfile) -> (f64, String, String) {
    if f.count == 0 {
        return (-0.05, "样例中没有值".into(), "no values in the samples".into());
    }
    let (d, zh, en): (f64, String, String) = match target.kind {
        ValueKind::AgencyCode => {
            if f.organ_uscc >= 0.8 {
                (
                    0.25,
                    "值是校验位正确的机关统一社会信用代码".into(),
                    "values are valid credit codes of state organs".into(),
                )
            } else if f.uscc >= 0.8 {
                (
                    0.1,
                    "值是校验位正确的统一社会信用代码".into(),
                    "values are valid credit codes".into(),
                )
            } else {
                (
                    -0.5,
                    format!("只有 {} 的值是有效信用代码", fmt_share(f.uscc)),
                    format!("only {} of the values are valid credit codes", fmt_share(f.uscc)),
                )
            }
        }
        ValueKind::PartyId => {
            let valid = f.uscc + f.id_number;
            if valid >= 0.8 && f.organ_uscc < 0.5 {
                (
                    0.25,
                    "值是校验位正确的信用代码或身份证号".into(),
                    "values are valid credit codes or ID numbers".into(),
                )
            } else if valid >= 0.8 {
                (
                    0.0,
                    "值是机关的信用代码（更像执法部门）".into(),
                    "values are credit codes of state organs (more like the agency)".into(),
                )
            } else if valid >= 0.3 {
                (
                    0.05,
                    format!("{} 的值是有效的信用代码或身份证号", fmt_share(valid)),
                    format!(
                        "{} of the values are valid credit codes or ID numbers",
                        fmt_share(valid)
                    ),
                )
            } else {
                (
                    -0.4,
                    "值不像证件号码".into(),
                    "values do not look like ID numbers".into(),
                )
            }
        }
        ValueKind::Region => {
            if f.region >= 0.8 {
                (
                    0.25,
                    "值是 GB/T 2260 行政区划代码".into(),
                    "values are GB/T 2260 region codes".into(),
                )
            } else {
                (-0.5, "值不是行政区划代码".into(), "values are not region codes".into())
            }
        }
        ValueKind::Date => {
            if f.date >= 0.8 {
                (0.2, "值是日期".into(), "values are dates".into())
            } else if f.date >= 0.4 {
                (
                    0.0,
                    format!("{} 的值是日期", fmt_share(f.date)),
                    format!("{} of the values are dates", fmt_share(f.date)),
                )
            } else {
                (-0.5, "值不是日期".into(), "values are not dates".into())
            }
        }
        ValueKind::Datetime => {
            if f.date >= 0.8 && f.with_time >= 0.5 {
                (0.25, "值是带时间的日期".into(), "values are dates with times".into())
            } else if f.date >= 0.8 {
                (0.1, "值是日期".into(), "values are dates".into())
            } else {
                (-0.5, "值不是日期时间".into(), "values are not date-times".into())
            }
        }
        ValueKind::Amount => {
            if f.number >= 0.9 {
                (0.15, "值是金额".into(), "values are amounts".into())
            } else if f.number >= 0.6 {
                (
                    0.05,
                    format!("{} 的值是金额", fmt_share(f.number)),
                    format!("{} of the values are amounts", fmt_share(f.number)),
                )
            } else {
                (-0.5, "值不是数字".into(), "values are not numbers".into())
            }
        }
        ValueKind::Boolean => {
            if f.boolean >= 0.9 && f.distinct <= 8 {
                (0.2, "值是是/否".into(), "values are yes/no".into())
            } else {
                (-0.5, "值不是是/否".into(), "values are not yes/no".into())
            }
        }
        ValueKind::Code | ValueKind::CodeList => {
            let items = code_items(field, target.kind == ValueKind::CodeList, f);
            let known = dict.known_values(target.path, &items) as f64 / items.len().max(1) as f64;
            if known >= 0.5 {
                (
                    0.25,
                    format!("{} 的值是已知的代码值", fmt_share(known)),
                    format!("{} of the values are known codes", fmt_share(known)),
                )
            } else if f.avg_len <= 12.0 {
                (0.0, "值像代码".into(), "values look like codes".into())
            } else {
                (-0.4, "值太长，不像代码".into(), "values are too long for codes".into())
            }
        }
        ValueKind::AgencyName => {
            if f.agency_name >= 0.6 {
                (0.2, "值像机关名称".into(), "values look like agency names".into())
            } else if f.han < 0.5 {
                (-0.4, "值不像名称".into(), "values do not look like names".into())
            } else if f.person_name >= 0.5 || f.company_name >= 0.5 {
                (
                    -0.3,
                    "值像人名或企业名，不像机关".into(),
                    "values look like people or companies, not agencies".into(),
                )
            } else {
                (0.0, String::new(), String::new())
            }
        }
        ValueKind::PartyName => {
            if f.agency_name >= 0.8 {
                (-0.2, "值像机关名称".into(), "values look like agency names".into())
            } else if f.company_name + f.person_name >= 0.6 {
                (
                    0.15,
                    "值像企业名称或人名".into(),
                    "values look like company or person names".into(),
                )
            } else if f.han < 0.3 {
                (-0.3, "值不像名称".into(), "values do not look like names".into())
            } else {
                (0.0, String::new(), String::new())
            }
        }
        ValueKind::PersonName => {
            if f.person_name >= 0.8 {
                (0.2, "值像人名".into(), "values look like person names".into())
            } else if f.officer_list >= 0.5 {
                (-0.2, "值是多个人名".into(), "values are several names".into())
            } else {
                (-0.4, "值不像人名".into(), "values do not look like person names".into())
            }
        }
        ValueKind::OfficerList => {
            if f.officer_list >= 0.6 {
                (
                    0.25,
                    "值是用分隔符隔开的多个人名".into(),
                    "values are names separated by separators".into(),
                )
            } else if field.is_list && f.person_name >= 0.8 {
                (0.25, "值是人名列表".into(), "values are a list of names".into())
            } else if f.person_name >= 0.8 {
                (0.0, "值是单个人名".into(), "values are single names".into())
            } else {
                (
                    -0.4,
                    "值不像人名列表".into(),
                    "values do not look like lists of names".into(),
                )
            }
        }
        ValueKind::CertNo => {
            if f.han > 0.5 {
                (
                    -0.4,
                    "值是中文，不像证号".into(),
                    "values are Chinese text, not numbers".into(),
                )
            } else {
                (0.1, "值像证号".into(), "values look like certificate numbers".into())
            }
        }
        ValueKind::Identifier => {
            if f.date >= 0.8 {
                (
                    -0.4,
                    "值是日期，不像编号".into(),
                    "values are dates, not numbers".into(),
                )
            } else if f.avg_len > 60.0 {
                (
                    -0.4,
                    "值太长，不像编号".into(),
                    "values are too long for numbers".into(),
                )
            } else if f.decision_number >= 0.5 || f.identifier >= 0.5 {
                (0.1, "值像编号".into(), "values look like numbers/codes".into())
            } else if f.han >= 0.8 && f.avg_len > 8.0 {
                (
                    -0.3,
                    "值是中文名称，不像编号".into(),
                    "values are Chinese names, not numbers/codes".into(),
                )
            } else {
                (0.0, String::new(), String::new())
            }
        }
        ValueKind::LegalText => {
            if f.legal_text >= 0.5 {
                (0.2, "值像法律条文引用".into(), "values cite laws".into())
            } else {
                (-0.1, "值不像法律条文".into(), "values do not cite laws".into())
            }
        }
        ValueKind::Text => {
            if f.date >= 0.8 {
                (-0.4, "值是日期，不像文字".into(), "values are dates, not text".into())
            } else if f.uscc + f.id_number >= 0.8 {
                (
                    -0.4,
                    "值是证件号码，不像文字".into(),
                    "values are ID numbers, not text".into(),
                )
            } else if f.number >= 0.9 && f.han == 0.0 {
                (-0.2, "值是数字，不像文字".into(), "values are numbers, not text".into())
            } else if f.han >= 0.5 {
                (0.05, "值是中文文字".into(), "values are Chinese text".into())
            } else {
                (0.0, String::new(), String::new())
            }
        }
    };
    (d, zh, en)
}

/// Whether `target` belongs to the case type in scope (`None`: a case type read from a column,
/// every type's fields apply). The case-type column itself is never a field.
fn applies(target: &Target, scope: Option<CaseType>) -> bool {
    target.path != "case_type" && (target.case_type.is_empty() || scope.is_none_or(|t| target.case_type == t.as_str()))
}

/// Value-only candidates: strong value patterns without a known name.
fn value_only(
    f: &Features,
    field: &FieldProfile,
    case_type: Option<CaseType>,
    dict: &Dictionary,
) -> Vec<(&'static str, f64, String, String)> {
    let mut out = Vec::new();
    if f.count == 0 {
        return out;
    }
    if f.organ_uscc >= 0.8 {
        out.push((
            "agency.credit_code",
            0.6,
            "值是校验位正确的机关统一社会信用代码".to_string(),
            "values are valid credit codes of state organs".to_string(),
        ));
    } else if f.uscc + f.id_number >= 0.8 {
        out.push((
            "target.id_number",
            0.6,
            "值是校验位正确的信用代码或身份证号".into(),
            "values are valid credit codes or ID numbers".into(),
        ));
    }
    if f.region >= 0.9 {
        out.push((
            "agency.region_code",
            0.45,
            "值是行政区划代码（执法部门还是相对人？）".into(),
            "values are region codes (agency or party?)".into(),
        ));
        out.push((
            "target.region_code",
            0.4,
            "值是行政区划代码（执法部门还是相对人？）".into(),
            "values are region codes (agency or party?)".into(),
        ));
    }
    if f.officer_list >= 0.6 {
        out.push((
            "officers",
            0.6,
            "值是用分隔符隔开的多个人名".into(),
            "values are names separated by separators".into(),
        ));
    }
    if f.legal_text >= 0.6 && f.avg_len < 300.0 {
        out.push(("legal_basis", 0.5, "值像法律条文引用".into(), "values cite laws".into()));
    }
    if f.decision_number >= 0.6 {
        let t = match case_type {
            Some(CaseType::Coercion) => "coercion.decision_number",
            _ => "penalty.decision_number",
        };
        out.push((
            t,
            0.5,
            "值像决定书文号（〔年份〕号）".into(),
            "values look like decision numbers".into(),
        ));
    }
    if f.agency_name >= 0.8 {
        out.push((
            "agency.name",
            0.5,
            "值像机关名称".into(),
            "values look like agency names".into(),
        ));
    }
    for t in TARGETS {
        if matches!(t.kind, ValueKind::Code | ValueKind::CodeList) && applies(t, case_type) {
            let items = code_items(field, t.kind == ValueKind::CodeList, f);
            let known = dict.known_values(t.path, &items) as f64 / items.len().max(1) as f64;
            // Short codes such as `i`, `1` prove little on their own.
            let long_enough = items.iter().all(|i| i.chars().count() >= 2);
            if known >= 0.6 && long_enough {
                out.push((
                    t.path,
                    0.6,
                    format!("{} 的值是已知的代码值", fmt_share(known)),
                    format!("{} of the values are known codes", fmt_share(known)),
                ));
            }
        }
    }
    out
}

/// Candidates for one field: by name (dictionary) adjusted by values, and by values alone.
fn candidates_for(
    field: &FieldProfile,
    index: usize,
    case_type: Option<CaseType>,
    dict: &Dictionary,
) -> Vec<Candidate> {
    let f = field.features();
    let mut out = Vec::new();
    // A nested field is first read with its parent's name (`xdr.mc` → `xdrmc`, `zfbm.@dm` →
    // `zfbmdm`): short member names mean little alone.
    let mut hits = Vec::new();
    if let Some(parent) = parent_name(&field.path) {
        let combined = format!("{parent}{}", field.name.trim_start_matches('@'));
        for (path, how) in dict.lookup(&combined) {
            if how == NameMatch::Exact {
                hits.push((path, NameMatch::Stripped(combined.clone())));
            }
        }
    }
    if hits.is_empty() {
        hits = dict.lookup(&field.name);
    }
    // A parent named for one case type (`cfxx` 处罚信息, `jcxx`, `qzxx`) puts its members there:
    // `qzxx.jdsh` is the coercion's decision number although `jdsh` names the penalty's.
    let hint = parent_name(&field.path).and_then(|p| type_hint(&p));
    // With the case type read per record, `check_…`, `punish_…`, `force_…` columns of common
    // fields are for that type only.
    let own_hint = if case_type.is_none() {
        name_type_hint(&field.name)
    } else {
        None
    };
    let mut seen_targets = Vec::new();
    for (path, how) in hits {
        let Some(mut target) = targets::target(&path) else {
            continue;
        };
        if let Some(h) = hint {
            if !target.case_type.is_empty() && target.case_type != h {
                let member = target.path.split_once('.').map_or(target.path, |(_, m)| m);
                match targets::target(&format!("{h}.{member}")) {
                    Some(same) => target = same,
                    None => continue,
                }
            }
        }
        if !applies(target, case_type) || seen_targets.contains(&target.path) {
            continue;
        }
        seen_targets.push(target.path);
        let (d, vzh, ven) = value_fit(target, &f, dict, field);
        let (nzh, nen) = match &how {
            NameMatch::Exact => (
                format!("字段名 {}（词典）", field.name),
                format!("name {} (dictionary)", field.name),
            ),
            NameMatch::Stripped(core) => (
                format!("字段名 {}（去掉前后缀为 {core}，词典）", field.name),
                format!("name {} ({core} without affixes, dictionary)", field.name),
            ),
            NameMatch::Contains(core) => (
                format!("字段名 {} 含 {core}（词典）", field.name),
                format!("name {} contains {core} (dictionary)", field.name),
            ),
        };
        let mut zh = vec![nzh];
        let mut en = vec![nen];
        if !vzh.is_empty() {
            zh.push(vzh);
            en.push(ven);
        }
        out.push(Candidate {
            field: index,
            target,
            score: (how.weight() + d).clamp(0.0, 0.99),
            zh,
            en,
            when: target.case_type.is_empty().then_some(own_hint).flatten(),
        });
    }
    for (path, score, zh, en) in value_only(&f, field, case_type, dict) {
        if out.iter().any(|c| c.target.path == path) {
            continue;
        }
        if let Some(target) = targets::target(path) {
            if applies(target, case_type) {
                out.push(Candidate {
                    field: index,
                    target,
                    score,
                    zh: vec![format!("字段名 {} 不在词典中", field.name), zh],
                    en: vec![format!("name {} not in the dictionary", field.name), en],
                    when: target.case_type.is_empty().then_some(own_hint).flatten(),
                });
            }
        }
    }
    out
}

/// The case type a parent's name stands for: `cfxx`/`chufa…`/`penalty…` → penalty, `jcxx`/
/// `jiancha…`/`inspection…` → inspection, `qzxx`/`qiangzhi…`/`coercion…` → coercion.
fn type_hint(parent: &str) -> Option<&'static str> {
    let p = dictionary::normalise_name(parent);
    if p.starts_with("cfxx") || p.starts_with("chufa") || p.starts_with("penalty") || p == "cf" {
        Some("penalty")
    } else if p.starts_with("jcxx") || p.starts_with("jiancha") || p.starts_with("inspection") || p == "jc" {
        Some("inspection")
    } else if p.starts_with("qzxx") || p.starts_with("qiangzhi") || p.starts_with("coercion") || p == "qz" {
        Some("coercion")
    } else {
        None
    }
}

/// The case type a column's first word names: `check_action_code` → inspection,
/// `punishBasis` → penalty, `force_result` → coercion.
fn name_type_hint(name: &str) -> Option<&'static str> {
    let first: String = name
        .chars()
        .enumerate()
        .take_while(|(i, c)| !(matches!(c, '_' | '-' | '.' | ' ') || (*i > 0 && c.is_uppercase())))
        .map(|(_, c)| c.to_ascii_lowercase())
        .collect();
    match first.as_str() {
        "check" | "inspection" | "jiancha" => Some("inspection"),
        "punish" | "penalty" | "chufa" => Some("penalty"),
        "force" | "coercion" | "qiangzhi" => Some("coercion"),
        _ => None,
    }
}

/// The name of the element or object holding a nested field (`xdr` for `xdr.mc`).
fn parent_name(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.len() < 2 {
        return None;
    }
    let parent = parts[parts.len() - 2];
    let parent = parent.trim_start_matches('[').trim_end_matches(']').trim_matches('"');
    (!parent.is_empty()).then(|| parent.to_string())
}

/// The column naming each record's case type: a dictionary name of `case_type` with at most four
/// distinct values.
fn case_type_column(fields: &[FieldProfile], dict: &Dictionary) -> Option<usize> {
    fields.iter().position(|f| {
        let named = dict
            .lookup(&f.name)
            .iter()
            .any(|(t, how)| t == "case_type" && *how == NameMatch::Exact);
        let fe = f.features();
        named && fe.count > 0 && fe.distinct <= 4
    })
}

/// The case type the field names point to (most dictionary hits of type-specific fields).
fn guess_case_type(fields: &[FieldProfile], dict: &Dictionary) -> CaseType {
    let mut counts = [0usize; 3];
    for f in fields {
        for (path, _) in dict.lookup(&f.name) {
            if path.starts_with("inspection.") {
                counts[0] += 1;
            } else if path.starts_with("penalty.") {
                counts[1] += 1;
            } else if path.starts_with("coercion.") {
                counts[2] += 1;
            }
        }
    }
    let best = counts.iter().copied().max().unwrap_or(0);
    if best == 0 || counts[1] == best {
        CaseType::Penalty
    } else if counts[0] == best {
        CaseType::Inspection
    } else {
        CaseType::Coercion
    }
}

/// The proposal for a list of objects (`zfry[*]` → officers), with its members.
fn group_proposals<'a>(
    group: &'a GroupProfile,
    dict: &Dictionary,
    threshold: f64,
) -> Option<Vec<(Proposal, Option<&'a FieldProfile>)>> {
    let named = dict.lookup(&group.name).into_iter().find(|(t, _)| t == "officers");
    let mut name_member: Option<(&FieldProfile, f64, String)> = None;
    let mut cert_member: Option<(&FieldProfile, f64, String)> = None;
    for m in &group.members {
        let f = m.features();
        let hits = dict.lookup(&m.name);
        let by_name = |t: &str| hits.iter().find(|(p, _)| p == t).map(|(_, how)| how.weight());
        let name_score = by_name("officers.name").unwrap_or(0.3) + if f.person_name >= 0.8 { 0.25 } else { -0.3 };
        let cert_score =
            by_name("officers.cert_no").unwrap_or(0.2) + if f.han <= 0.5 && f.count > 0 { 0.1 } else { -0.4 };
        if name_score >= 0.5 && name_member.as_ref().is_none_or(|(_, s, _)| name_score > *s) {
            name_member = Some((m, name_score, m.name.clone()));
        }
        if cert_score >= 0.5 && cert_member.as_ref().is_none_or(|(_, s, _)| cert_score > *s) {
            cert_member = Some((m, cert_score, m.name.clone()));
        }
    }
    let (nm, nscore, _) = name_member?;
    let mut zh = Vec::new();
    let mut en = Vec::new();
    let base = match &named {
        Some((_, how)) => {
            zh.push(format!("列表名 {}（词典）", group.name));
            en.push(format!("list name {} (dictionary)", group.name));
            how.weight()
        }
        None => {
            zh.push(format!("列表名 {} 不在词典中", group.name));
            en.push(format!("list name {} not in the dictionary", group.name));
            0.35
        }
    };
    zh.push(format!("成员 {} 像人名", nm.name));
    en.push(format!("member {} holds person names", nm.name));
    let score = (base + 0.25).min(0.99);
    let status = if score >= threshold {
        Status::Active
    } else {
        Status::Uncertain
    };
    let mut out = vec![(
        Proposal {
            source: format!("{}[*]", group.path),
            target: "officers".into(),
            confidence: score,
            evidence_zh: zh,
            evidence_en: en,
            status,
            when: None,
        },
        None,
    )];
    out.push((
        Proposal {
            source: format!("{}[*].{}", group.path, nm.path),
            target: "officers.name".into(),
            confidence: nscore.min(0.99),
            evidence_zh: vec![format!("成员 {} 像人名", nm.name)],
            evidence_en: vec![format!("member {} holds person names", nm.name)],
            status,
            when: None,
        },
        Some(nm),
    ));
    if let Some((cm, cscore, _)) = cert_member {
        if cm.path != nm.path {
            out.push((
                Proposal {
                    source: format!("{}[*].{}", group.path, cm.path),
                    target: "officers.cert_no".into(),
                    confidence: cscore.min(0.99),
                    evidence_zh: vec![format!("成员 {} 像执法证号", cm.name)],
                    evidence_en: vec![format!("member {} holds certificate numbers", cm.name)],
                    status,
                    when: None,
                },
                Some(cm),
            ));
        }
    }
    Some(out)
}

/// The dotted element path (from the root element, as `--xml-records` takes it) of the most
/// repeated element holding child elements in an XML document read by
/// [`crate::xml_tree::parse_xml`], e.g. `Envelope.Body.queryCasesResponse.return.case`: where the
/// records of a SOAP answer or an XML export are. `None` when no element repeats.
pub fn find_record_path(tree: &Value) -> Option<String> {
    fn walk(v: &Value, path: &str, depth: usize, best: &mut Option<(usize, usize, String)>) {
        let Value::Object(o) = v else { return };
        if depth > 16 {
            return;
        }
        for (k, child) in o {
            if k.starts_with('@') || k == "#text" {
                continue;
            }
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match child {
                Value::Array(items) => {
                    let objects = items.iter().filter(|i| i.is_object()).count();
                    if objects >= 2
                        && best
                            .as_ref()
                            .is_none_or(|(n, d, _)| objects > *n || (objects == *n && depth < *d))
                    {
                        *best = Some((objects, depth, here.clone()));
                    }
                    for i in items {
                        walk(i, &here, depth + 1, best);
                    }
                }
                other => walk(other, &here, depth + 1, best),
            }
        }
    }
    let mut best = None;
    walk(tree, "", 0, &mut best);
    best.map(|(_, _, p)| p)
}

/// The proposal for a list of agencies (`lhjc.bm[*]` → `inspection.joint_participants`): members
/// holding agency names and, if any, state organs' credit codes.
fn joint_group<'a>(
    group: &'a GroupProfile,
    dict: &Dictionary,
    threshold: f64,
) -> Option<Vec<(Proposal, Option<&'a FieldProfile>)>> {
    const TARGET: &str = "inspection.joint_participants";
    let mut name_member: Option<&FieldProfile> = None;
    let mut code_member: Option<&FieldProfile> = None;
    for m in &group.members {
        let f = m.features();
        if f.organ_uscc >= 0.8 {
            code_member = code_member.or(Some(m));
        } else if f.agency_name >= 0.6 {
            name_member = name_member.or(Some(m));
        }
    }
    let nm = name_member?;
    let mut names = vec![group.name.clone()];
    names.extend(parent_name(&group.path));
    let named = names.iter().find(|n| dict.lookup(n).iter().any(|(t, _)| t == TARGET));
    let (base, zh, en) = match named {
        Some(n) => (
            0.7,
            format!("列表名 {n}（词典）"),
            format!("list name {n} (dictionary)"),
        ),
        None => (
            0.35,
            format!("列表名 {} 不在词典中", group.name),
            format!("list name {} not in the dictionary", group.name),
        ),
    };
    let bonus: f64 = if code_member.is_some() { 0.25 } else { 0.2 };
    let score = (base + bonus).min(0.99);
    let status = if score >= threshold {
        Status::Active
    } else {
        Status::Uncertain
    };
    let proposal = |source: String, target: &str, zh: Vec<String>, en: Vec<String>| Proposal {
        source,
        target: target.to_string(),
        confidence: (score * 100.0).round() / 100.0,
        evidence_zh: zh,
        evidence_en: en,
        status,
        when: None,
    };
    let mut out = vec![(
        proposal(
            format!("{}[*]", group.path),
            TARGET,
            vec![zh, format!("成员 {} 像机关名称", nm.name)],
            vec![en, format!("member {} holds agency names", nm.name)],
        ),
        None,
    )];
    out.push((
        proposal(
            format!("{}[*].{}", group.path, nm.path),
            "inspection.joint_participants.name",
            vec![format!("成员 {} 像机关名称", nm.name)],
            vec![format!("member {} holds agency names", nm.name)],
        ),
        Some(nm),
    ));
    if let Some(cm) = code_member {
        out.push((
            proposal(
                format!("{}[*].{}", group.path, cm.path),
                "inspection.joint_participants.credit_code",
                vec![format!("成员 {} 是机关的统一社会信用代码", cm.name)],
                vec![format!("member {} holds credit codes of state organs", cm.name)],
            ),
            Some(cm),
        ));
    }
    Some(out)
}

/// Margin under which two columns for one canonical field are a conflict.
const CONFLICT_MARGIN: f64 = 0.1;

/// Propose a mapping for `records` (JSON objects, or the trees of XML records).
pub fn suggest(records: &[Value], options: &SuggestOptions) -> Result<Suggestion, SuggestError> {
    let objects: Vec<Value> = records.iter().filter(|r| r.is_object()).cloned().collect();
    if objects.is_empty() {
        return Err(SuggestError::NoRecords);
    }
    let dict = Dictionary::embedded();
    let profiles = profile::profile(&objects);
    let (case_type, guessed) = match options.case_type {
        Some(CaseType::Plan) => return Err(SuggestError::UnsupportedCaseType),
        Some(t) => (t, false),
        None => (guess_case_type(&profiles.fields, dict), true),
    };
    // A column saying each record's case type (`ajlx`): the case type is read from it and every
    // type's fields apply, each under its `when = { case_type = ... }`.
    let type_field = options
        .case_type
        .is_none()
        .then(|| case_type_column(&profiles.fields, dict))
        .flatten();
    let scope = if type_field.is_some() { None } else { Some(case_type) };

    // Lists of objects first: officers as `each`.
    let mut chosen: Vec<(Proposal, Option<&FieldProfile>)> = Vec::new();
    let mut officers_taken = false;
    let mut group_unmatched = Vec::new();
    let mut joint_taken = false;
    for g in &profiles.groups {
        if let Some(list) = (!officers_taken)
            .then(|| group_proposals(g, dict, options.threshold))
            .flatten()
        {
            officers_taken |= list.first().is_some_and(|(p, _)| p.status == Status::Active);
            chosen.extend(list);
            continue;
        }
        if scope.is_none_or(|t| t == CaseType::Inspection) && !joint_taken {
            if let Some(list) = joint_group(g, dict, options.threshold) {
                joint_taken |= list.first().is_some_and(|(p, _)| p.status == Status::Active);
                chosen.extend(list);
                continue;
            }
        }
        group_unmatched.push(format!("{}[*]", g.path));
    }

    let mut cands: Vec<Candidate> = Vec::new();
    for (i, f) in profiles.fields.iter().enumerate() {
        if Some(i) != type_field {
            cands.extend(candidates_for(f, i, scope, dict));
        }
    }
    cands.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.field.cmp(&b.field)));
    let mut field_done = vec![false; profiles.fields.len()];
    if let Some(i) = type_field {
        field_done[i] = true;
    }
    type Key<'k> = (&'k str, Option<&'k str>);
    let mut target_winner: std::collections::HashMap<Key<'_>, (usize, f64)> = std::collections::HashMap::new();
    if officers_taken {
        target_winner.insert(("officers", None), (usize::MAX, 1.0));
        target_winner.insert(("officers.cert_no", None), (usize::MAX, 1.0));
    }
    let mut picked: Vec<(Candidate, Status)> = Vec::new();
    for c in cands {
        if field_done[c.field] {
            continue;
        }
        let key = (c.target.path, c.when);
        let status = match target_winner.get(&key) {
            Some((winner, wscore)) => {
                if *winner != usize::MAX && c.score >= options.threshold && wscore - c.score < CONFLICT_MARGIN {
                    // Close to the winner: both are for a person to decide.
                    if let Some((_, st)) = picked
                        .iter_mut()
                        .find(|(p, _)| p.field == *winner && p.target.path == c.target.path && p.when == c.when)
                    {
                        *st = Status::Conflict;
                    }
                    Status::Conflict
                } else if c.score >= options.threshold {
                    // A clearly weaker second column: kept commented, as an alternative.
                    Status::Conflict
                } else {
                    continue;
                }
            }
            None => {
                target_winner.insert(key, (c.field, c.score));
                if c.score >= options.threshold {
                    Status::Active
                } else {
                    Status::Uncertain
                }
            }
        };
        // Weak candidates stay listed only when nothing better exists for the field.
        if status == Status::Uncertain && c.score < 0.4 {
            target_winner.remove(&key);
            continue;
        }
        field_done[c.field] = true;
        picked.push((c, status));
    }
    // A top-level certificate list goes with a separated officer list (zip).
    for (c, status) in &picked {
        let f = &profiles.fields[c.field];
        let mut zh = c.zh.clone();
        let mut en = c.en.clone();
        if *status == Status::Conflict {
            zh.push("与另一列争同一规范字段，请选择".into());
            en.push("another column competes for the same canonical field: choose".into());
        }
        chosen.push((
            Proposal {
                source: f.path.clone(),
                target: c.target.path.to_string(),
                confidence: (c.score * 100.0).round() / 100.0,
                evidence_zh: zh,
                evidence_en: en,
                status: *status,
                when: c.when.map(str::to_string),
            },
            Some(f),
        ));
    }
    let mut unmatched: Vec<String> = profiles
        .fields
        .iter()
        .enumerate()
        .filter(|(i, _)| !field_done[*i])
        .map(|(_, f)| f.path.clone())
        .collect();
    unmatched.extend(group_unmatched);
    let type_field = type_field.map(|i| &profiles.fields[i]);
    render::finish(
        case_type, guessed, type_field, chosen, unmatched, &profiles, &objects, options,
    )
}

#[cfg(test)]
mod tests;

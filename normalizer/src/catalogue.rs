//! The supervision-item catalogue (监管事项目录清单) by year: the item codes for
//! "清单之外无检查", the items' names for systems that send a name instead of the code
//! ([`Catalogue::find_by_name`]), their scope (an agency or a region) and their domain (领域)
//! for the domains exempt from the random-inspection model.

use crate::standards::credit_code::CreditCode;
use crate::Violation;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The domains whose inspections need no random-selection plan (notice 二: 除疫苗、食品药品、
/// 特种设备、医疗器械、危化品等…): the default of `[normalizer] exempt_domains`.
pub const DEFAULT_EXEMPT_DOMAINS: [&str; 5] = ["疫苗", "食品药品", "特种设备", "医疗器械", "危化品"];

/// One catalogue item of one year.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CatalogueEntry {
    /// 监管事项目录编码: 14 digits.
    pub code: String,
    /// The item's name.
    pub name: String,
    /// Who the item applies to: an agency's credit code, or a region-code prefix (2, 4 or 6
    /// digits: a province, city or county); everyone when absent.
    pub scope: Option<String>,
    /// 领域 (e.g. 食品药品), when the source gives one.
    pub domain: Option<String>,
}

impl CatalogueEntry {
    /// True when the item applies to `agency` (a credit code): no scope, the agency itself, or
    /// a prefix of the region in its credit code (positions 3-8).
    pub fn applies_to(&self, agency: Option<&str>) -> bool {
        let Some(scope) = self.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
            return true;
        };
        let Some(agency) = agency else { return false };
        if scope == agency {
            return true;
        }
        let region = agency.get(2..8).unwrap_or_default();
        scope.len() <= 6 && scope.bytes().all(|b| b.is_ascii_digit()) && region.starts_with(scope)
    }

    /// How specific the scope is (0 none, the prefix length for a region, 18 for an agency).
    fn specificity(&self) -> usize {
        self.scope.as_deref().map_or(0, |s| s.trim().len())
    }
}

#[derive(Debug, Clone, Default)]
struct YearItems {
    codes: HashSet<String>,
    entries: Vec<CatalogueEntry>,
    /// Normalised name of each entry (same order).
    keys: Vec<String>,
    domains: HashMap<String, String>,
}

/// The supervision-item catalogue (监管事项目录清单) by year, for "清单之外无检查".
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    by_year: BTreeMap<i32, YearItems>,
}

/// Why a catalogue file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("监管事项目录清单第 {line} 行有误 / supervision-item catalogue line {line}: {message}")]
pub struct CatalogueError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// What [`Catalogue::find_by_name`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch<'c> {
    /// One item, and how it was found.
    Found(&'c CatalogueEntry, MatchKind),
    /// Several items fit equally well (up to [`MAX_CANDIDATES`] of them).
    Ambiguous(Vec<&'c CatalogueEntry>),
    /// No item fits; the closest names by shared characters (up to [`MAX_CANDIDATES`]).
    Unknown(Vec<&'c CatalogueEntry>),
    /// No catalogue of that year or earlier.
    NoCatalogue,
}

/// How a name matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// Character for character.
    Exact,
    /// After [`normalise_item_name`].
    Normalised,
    /// The only item whose normalised name contains the given one or is contained in it.
    Partial,
}

/// Most candidates named in an ambiguous or unknown look-up.
pub const MAX_CANDIDATES: usize = 5;

/// The name of an item as compared: full-width forms made half-width, white space,
/// punctuation and quotes (《》“”「」（）…) removed, ASCII lower-cased, a leading 对 and a
/// trailing 检查 / 的检查 / 的 dropped. "对《食品经营许可》事项的检查" and "食品经营许可事项"
/// compare equal.
pub fn normalise_item_name(name: &str) -> String {
    let mut s: String = crate::standards::to_halfwidth(name)
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_ascii_punctuation() && !is_cjk_punctuation(*c))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if let Some(rest) = s.strip_prefix('对') {
        if rest.chars().count() >= 2 {
            s = rest.to_string();
        }
    }
    loop {
        let before = s.len();
        for suffix in ["检查", "的"] {
            if let Some(rest) = s.strip_suffix(suffix) {
                if rest.chars().count() >= 2 {
                    s = rest.to_string();
                }
            }
        }
        if s.len() == before {
            break;
        }
    }
    s
}

fn is_cjk_punctuation(c: char) -> bool {
    matches!(c,
        '\u{3000}'..='\u{303F}' // 、。〈〉《》「」『』【】〔〕…
        | '\u{2010}'..='\u{2027}' // dashes, ‘’“”, …
        | '\u{FE30}'..='\u{FE4F}'
        | '\u{00B7}' | '\u{30FB}' // middle dots
        | '\u{FF5F}'..='\u{FF65}')
}

/// The column of a catalogue CSV header.
fn catalogue_column(header: &str) -> Option<&'static str> {
    let h = header.trim().trim_start_matches('\u{FEFF}').to_ascii_lowercase();
    Some(match h.as_str() {
        "year" | "年度" | "年份" => "year",
        "item_code" | "code" | "catalog_code" | "监管事项目录编码" | "事项编码" => "item_code",
        "name" | "item_name" | "catalog_name" | "监管事项名称" | "事项名称" | "名称" => "name",
        "scope" | "agency" | "适用范围" | "适用部门" | "实施主体" => "scope",
        "domain" | "领域" | "所属领域" | "监管领域" => "domain",
        _ => return None,
    })
}

impl Catalogue {
    /// Add an item code valid in `year`.
    pub fn insert(&mut self, year: i32, item_code: &str) {
        self.insert_entry(
            year,
            CatalogueEntry {
                code: item_code.to_string(),
                ..CatalogueEntry::default()
            },
        );
    }

    /// Add an item of `year` with its name, scope and domain.
    pub fn insert_entry(&mut self, year: i32, entry: CatalogueEntry) {
        let items = self.by_year.entry(year).or_default();
        items.codes.insert(entry.code.clone());
        if let Some(d) = entry.domain.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            items.domains.insert(entry.code.clone(), d.to_string());
        }
        if !entry.name.trim().is_empty() {
            items.keys.push(normalise_item_name(&entry.name));
            items.entries.push(entry);
        }
    }

    /// Read a CSV with header `year,item_code[,name,scope,domain,...]` (also 年度, 监管事项目录编码,
    /// 监管事项名称, 适用范围, 领域). Without a recognised header the first two columns are the year
    /// and the code.
    pub fn from_csv(text: &str) -> Result<Catalogue, CatalogueError> {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
        let headers: Vec<Option<&'static str>> = reader
            .headers()
            .map(|h| h.iter().map(catalogue_column).collect())
            .unwrap_or_default();
        let index = |name: &str, fallback: Option<usize>| headers.iter().position(|h| *h == Some(name)).or(fallback);
        let (year_col, code_col) = (index("year", Some(0)), index("item_code", Some(1)));
        let (name_col, scope_col, domain_col) = (
            index("name", (headers.len() > 2 && headers[2].is_none()).then_some(2)),
            index("scope", None),
            index("domain", None),
        );
        let mut catalogue = Catalogue::default();
        for (i, row) in reader.records().enumerate() {
            let line = i + 2;
            let row = row.map_err(|e| CatalogueError {
                line,
                message: e.to_string(),
            })?;
            let cell = |col: Option<usize>| col.and_then(|c| row.get(c)).map(str::trim).unwrap_or_default();
            let year = cell(year_col);
            let year: i32 = year.parse().map_err(|_| CatalogueError {
                line,
                message: format!("年份无效 / invalid year {year:?}"),
            })?;
            let code = cell(code_col);
            if code.len() != 14 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CatalogueError {
                    line,
                    message: format!("监管事项目录编码应为14位数字 / item code must be 14 digits: {code:?}"),
                });
            }
            let scope = cell(scope_col);
            if !scope.is_empty() && !valid_scope(scope) {
                return Err(CatalogueError {
                    line,
                    message: format!(
                        "适用范围应为统一社会信用代码或2/4/6位行政区划代码前缀 / scope must be a credit code or a 2, 4 or 6 digit region prefix: {scope:?}"
                    ),
                });
            }
            let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
            catalogue.insert_entry(
                year,
                CatalogueEntry {
                    code: code.to_string(),
                    name: cell(name_col).to_string(),
                    scope: nonempty(scope),
                    domain: nonempty(cell(domain_col)),
                },
            );
        }
        Ok(catalogue)
    }

    /// The catalogue version that applies in `year`: the latest loaded year not after it.
    pub fn version_for(&self, year: i32) -> Option<(i32, &HashSet<String>)> {
        self.by_year
            .range(..=year)
            .next_back()
            .map(|(y, items)| (*y, &items.codes))
    }

    /// The domain (领域) of `code` in the catalogue version of `year`.
    pub fn domain_of(&self, year: i32, code: &str) -> Option<&str> {
        let (_, items) = self.by_year.range(..=year).next_back()?;
        items.domains.get(code).map(String::as_str)
    }

    /// The item named `name` in the catalogue version of `year` among the items that apply to
    /// `agency`: an exact name first, then a normalised one ([`normalise_item_name`]), then the
    /// only item whose normalised name contains the given one (or is contained in it). Where
    /// several items of different codes fit equally, the most specific scope wins; a remaining
    /// tie is ambiguous. Returns the catalogue year used as well.
    pub fn find_by_name(&self, year: i32, agency: Option<&str>, name: &str) -> (Option<i32>, NameMatch<'_>) {
        let Some((version, items)) = self.by_year.range(..=year).next_back() else {
            return (None, NameMatch::NoCatalogue);
        };
        let applicable: Vec<usize> = (0..items.entries.len())
            .filter(|&i| items.entries[i].applies_to(agency))
            .collect();
        let name = name.trim();
        let key = normalise_item_name(name);
        let passes: [(MatchKind, &dyn Fn(usize) -> bool); 3] = [
            (MatchKind::Exact, &|i| items.entries[i].name.trim() == name),
            (MatchKind::Normalised, &|i| !key.is_empty() && items.keys[i] == key),
            (MatchKind::Partial, &|i| {
                key.chars().count() >= 2
                    && !items.keys[i].is_empty()
                    && (items.keys[i].contains(&key) || key.contains(&items.keys[i]))
            }),
        ];
        for (kind, fits) in passes {
            let found: Vec<&CatalogueEntry> = applicable
                .iter()
                .filter(|&&i| fits(i))
                .map(|&i| &items.entries[i])
                .collect();
            if found.is_empty() {
                continue;
            }
            let best = found.iter().map(|e| e.specificity()).max().unwrap_or(0);
            let mut best: Vec<&CatalogueEntry> = found.into_iter().filter(|e| e.specificity() == best).collect();
            best.dedup_by(|a, b| a.code == b.code);
            let mut codes: Vec<&str> = best.iter().map(|e| e.code.as_str()).collect();
            codes.sort_unstable();
            codes.dedup();
            return if codes.len() == 1 {
                (Some(*version), NameMatch::Found(best[0], kind))
            } else {
                best.truncate(MAX_CANDIDATES);
                (Some(*version), NameMatch::Ambiguous(best))
            };
        }
        // Nothing fits: name the items sharing the most characters with the name.
        let wanted: HashSet<char> = key.chars().collect();
        let mut scored: Vec<(usize, usize)> = applicable
            .iter()
            .map(|&i| (items.keys[i].chars().filter(|c| wanted.contains(c)).count(), i))
            .filter(|(score, _)| *score > 0)
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let near = scored
            .into_iter()
            .take(MAX_CANDIDATES)
            .map(|(_, i)| &items.entries[i])
            .collect();
        (Some(*version), NameMatch::Unknown(near))
    }

    /// Number of item codes over all years.
    pub fn len(&self) -> usize {
        self.by_year.values().map(|y| y.codes.len()).sum()
    }

    /// True when nothing is loaded.
    pub fn is_empty(&self) -> bool {
        self.by_year.is_empty()
    }
}

/// A scope is an agency's credit code or a 2, 4 or 6 digit region prefix.
pub fn valid_scope(scope: &str) -> bool {
    (matches!(scope.len(), 2 | 4 | 6) && scope.bytes().all(|b| b.is_ascii_digit())) || CreditCode::parse(scope).is_ok()
}

/// Fill `/item_code` of a record that names its supervision item only by name (`/item_name`,
/// as the departmental systems send it): the item is looked up in the catalogue version of
/// `year` among the items applying to the record's agency ([`Catalogue::find_by_name`]). A
/// name that fits no item or several is an error naming the name, the agency, the year and
/// candidates (`catalogue.item_name_unknown`, `catalogue.item_name_ambiguous`). Records with a
/// code of their own, or without a name, are left alone.
pub fn resolve_item_name(record: &mut Value, catalogue: Option<&Catalogue>, year: i32) -> Option<Violation> {
    let has_code = record
        .get("item_code")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.trim().is_empty());
    let name = record.get("item_name").and_then(Value::as_str)?.trim().to_string();
    if has_code || name.is_empty() {
        return None;
    }
    let agency = record
        .pointer("/agency/credit_code")
        .and_then(Value::as_str)
        .map(str::to_string);
    let agency_text = agency.as_deref().unwrap_or("—");
    let list = |items: &[&CatalogueEntry]| {
        items
            .iter()
            .map(|e| format!("{}（{}）", e.name, e.code))
            .collect::<Vec<_>>()
            .join("、")
    };
    let (version, found) = match catalogue {
        Some(c) => c.find_by_name(year, agency.as_deref(), &name),
        None => (None, NameMatch::NoCatalogue),
    };
    let unknown = |zh: String, en: String| {
        Some(Violation::error(
            "/item_code",
            "catalogue.item_name_unknown",
            Some(name.clone()),
            zh,
            en,
        ))
    };
    match found {
        NameMatch::Found(entry, _) => {
            if let Value::Object(map) = record {
                map.insert("item_code".into(), Value::String(entry.code.clone()));
            }
            None
        }
        NameMatch::NoCatalogue => unknown(
            format!("没有 {year} 年度或更早的监管事项目录清单，无法按名称「{name}」确定监管事项编码（执法部门 {agency_text}）"),
            format!("no supervision-item catalogue for {year} or earlier is loaded: the item named {name:?} (agency {agency_text}) cannot be given its code"),
        ),
        NameMatch::Unknown(near) => {
            let version = version.unwrap_or(year);
            let hint = if near.is_empty() { String::new() } else { format!("；相近事项：{}", list(&near)) };
            let hint_en = if near.is_empty() { String::new() } else { format!("; near: {}", list(&near)) };
            unknown(
                format!("监管事项名称「{name}」不在执法部门 {agency_text} 适用的 {version} 年度监管事项目录清单中（检查年度 {year}）{hint}"),
                format!("no item named {name:?} in the {version} supervision-item catalogue applying to agency {agency_text} (inspection year {year}){hint_en}"),
            )
        }
        NameMatch::Ambiguous(items) => {
            let version = version.unwrap_or(year);
            Some(Violation::error(
                "/item_code",
                "catalogue.item_name_ambiguous",
                Some(name.clone()),
                format!(
                    "监管事项名称「{name}」在执法部门 {agency_text} 适用的 {version} 年度目录清单中对应多个事项：{}，请在来源系统中填写事项编码或完整名称",
                    list(&items)
                ),
                format!(
                    "the item name {name:?} fits several items of the {version} catalogue applying to agency {agency_text} (year {year}): {}; send the code or the full name",
                    list(&items)
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NANCHANG_AGENCY: &str = "11360100014523152U";
    const JIUJIANG_AGENCY: &str = "11360400014587316A";

    fn catalogue() -> Catalogue {
        Catalogue::from_csv(
            "年度,监管事项目录编码,监管事项名称,适用范围,领域\n\
             2023,36010000100012,价格监督检查,,\n\
             2024,36010000100012,价格监督检查,,市场监管\n\
             2024,36010000100013,对食品生产经营者的监督检查,,食品药品\n\
             2024,36010000100014,特种设备使用单位监督检查,,特种设备\n\
             2024,36010000100015,广告经营监督检查,3601,\n\
             2024,36010000100016,广告发布监督检查,3604,\n\
             2024,36010000100017,计量器具监督检查,,\n\
             2024,36010000100018,计量器具强制检定监督检查,,\n\
             2024,36010000100019,网络交易监督检查,,\n\
             2024,36010000100020,网络交易监督检查,11360100014523152U,\n",
        )
        .unwrap()
    }

    fn found(c: &Catalogue, year: i32, agency: &str, name: &str) -> Option<(String, MatchKind)> {
        match c.find_by_name(year, Some(agency), name).1 {
            NameMatch::Found(e, kind) => Some((e.code.clone(), kind)),
            _ => None,
        }
    }

    #[test]
    fn names_are_normalised_for_width_space_punctuation_quotes_and_a_trailing_check() {
        assert_eq!(
            normalise_item_name("对《食品生产经营者》的监督检查"),
            "食品生产经营者的监督"
        );
        assert_eq!(normalise_item_name("　价格 监督检查（ＡＢ）"), "价格监督检查ab");
        assert_eq!(normalise_item_name("“价格”监督的检查"), "价格监督");
        assert_eq!(normalise_item_name("检查"), "检查", "a name is never emptied");
        assert_eq!(normalise_item_name("对价格检查"), "价格");
    }

    #[test]
    fn an_exact_name_then_a_normalised_one_then_an_unambiguous_part_finds_the_item() {
        let c = catalogue();
        assert_eq!(
            found(&c, 2024, NANCHANG_AGENCY, "价格监督检查"),
            Some(("36010000100012".into(), MatchKind::Exact))
        );
        assert_eq!(
            found(&c, 2024, NANCHANG_AGENCY, " 对食品生产经营者的监督检查 "),
            Some(("36010000100013".into(), MatchKind::Exact)),
            "trimmed"
        );
        assert_eq!(
            found(&c, 2024, NANCHANG_AGENCY, "《对食品生产经营者的监督》的检查"),
            Some(("36010000100013".into(), MatchKind::Normalised))
        );
        assert_eq!(
            found(&c, 2024, NANCHANG_AGENCY, "特种设备使用单位监督的检查"),
            Some(("36010000100014".into(), MatchKind::Normalised))
        );
        assert_eq!(
            found(&c, 2024, NANCHANG_AGENCY, "食品生产经营者"),
            Some(("36010000100013".into(), MatchKind::Partial))
        );
    }

    #[test]
    fn a_part_fitting_several_items_is_ambiguous_and_no_fit_names_near_candidates() {
        let c = catalogue();
        match c.find_by_name(2024, Some(NANCHANG_AGENCY), "计量器具").1 {
            NameMatch::Ambiguous(items) => {
                let codes: Vec<&str> = items.iter().map(|e| e.code.as_str()).collect();
                assert_eq!(codes, ["36010000100017", "36010000100018"]);
            }
            other => panic!("{other:?}"),
        }
        match c.find_by_name(2024, Some(NANCHANG_AGENCY), "烟花爆竹经营检查") {
            (Some(2024), NameMatch::Unknown(near)) => assert!(near.len() <= MAX_CANDIDATES),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn items_scoped_to_another_region_or_agency_do_not_apply_and_the_most_specific_scope_wins() {
        let c = catalogue();
        assert_eq!(
            found(&c, 2024, NANCHANG_AGENCY, "广告经营监督检查").map(|f| f.0),
            Some("36010000100015".into())
        );
        assert!(
            found(&c, 2024, NANCHANG_AGENCY, "广告发布监督检查").is_none(),
            "a 九江 item"
        );
        assert_eq!(
            found(&c, 2024, JIUJIANG_AGENCY, "广告发布监督检查").map(|f| f.0),
            Some("36010000100016".into())
        );
        assert_eq!(
            found(&c, 2024, NANCHANG_AGENCY, "网络交易监督检查").map(|f| f.0),
            Some("36010000100020".into()),
            "the agency's own item over the province-wide one"
        );
        assert_eq!(
            found(&c, 2024, JIUJIANG_AGENCY, "网络交易监督检查").map(|f| f.0),
            Some("36010000100019".into())
        );
    }

    #[test]
    fn the_catalogue_of_the_latest_year_not_after_the_inspection_applies() {
        let c = catalogue();
        assert!(found(&c, 2023, NANCHANG_AGENCY, "特种设备使用单位监督检查").is_none());
        assert!(found(&c, 2025, NANCHANG_AGENCY, "特种设备使用单位监督检查").is_some());
        assert_eq!(
            c.find_by_name(2022, Some(NANCHANG_AGENCY), "价格监督检查").1,
            NameMatch::NoCatalogue
        );
        assert_eq!(c.domain_of(2025, "36010000100013"), Some("食品药品"));
        assert_eq!(c.domain_of(2023, "36010000100012"), None);
    }

    #[test]
    fn a_record_with_an_item_name_gets_its_code_or_an_error_naming_name_agency_year_and_candidates() {
        let c = catalogue();
        let mut record =
            serde_json::json!({"agency": {"credit_code": NANCHANG_AGENCY}, "item_name": "《价格监督》检查"});
        assert_eq!(resolve_item_name(&mut record, Some(&c), 2024), None);
        assert_eq!(record["item_code"], "36010000100012");
        assert_eq!(record["item_name"], "《价格监督》检查", "the name is kept");
        let mut record = serde_json::json!({"agency": {"credit_code": NANCHANG_AGENCY}, "item_name": "计量器具"});
        let v = resolve_item_name(&mut record, Some(&c), 2025).unwrap();
        assert_eq!(v.rule, "catalogue.item_name_ambiguous");
        assert!(v.is_error());
        assert!(
            v.message_zh.contains("计量器具强制检定监督检查（36010000100018）")
                && v.message_zh.contains(NANCHANG_AGENCY)
                && v.message_zh.contains("2024"),
            "{}",
            v.message_zh
        );
        assert!(record.get("item_code").is_none());
        let mut record =
            serde_json::json!({"agency": {"credit_code": JIUJIANG_AGENCY}, "item_name": "广告经营监督检查"});
        let v = resolve_item_name(&mut record, Some(&c), 2024).unwrap();
        assert_eq!(v.rule, "catalogue.item_name_unknown");
        assert!(
            v.message_en.contains(JIUJIANG_AGENCY) && v.message_en.contains("2024"),
            "{}",
            v.message_en
        );
        let mut record = serde_json::json!({"item_name": "价格监督检查"});
        assert_eq!(
            resolve_item_name(&mut record, None, 2024).unwrap().rule,
            "catalogue.item_name_unknown"
        );
        let mut coded = serde_json::json!({"item_code": "36000000000009", "item_name": "不存在的事项"});
        assert_eq!(resolve_item_name(&mut coded, Some(&c), 2024), None);
        assert_eq!(coded["item_code"], "36000000000009");
    }

    #[test]
    fn the_old_two_column_catalogue_still_reads() {
        let c = Catalogue::from_csv("year,item_code\n2024,36000000000009\n").unwrap();
        assert_eq!(c.len(), 1);
        let e = Catalogue::from_csv("year,item_code,name,scope\n2024,36000000000009,x,36X\n").unwrap_err();
        assert!(e.to_string().contains("36X"));
    }
}

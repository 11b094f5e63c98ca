//! The unified case code (一案一码): `JC`/`CF`/`QZ` + 4-digit year + the handling agency's 6-digit
//! GB/T 2260 region code + 7-digit sequence + one ISO/IEC 7064 MOD 37,36 check character, 20 characters.
//!
//! Example: `CF20243601020000001Y` = 行政处罚, 2024, 360102 (东湖区), case no. 1, check `Y`.
//!
//! MOD 37,36 detects every single-character substitution. It does **not** detect every adjacent
//! transposition: two neighbours whose values differ by one (mod 36, e.g. `4`/`5`) are missed when the
//! running check state before them plus the smaller value is 18 mod 36 (about 1 in 180 random
//! adjacent digit swaps); see `tests/standards_props.rs`.

use super::error::{shown, StandardError};
use super::normalise::normalise_identifier;
use super::region::RegionTable;
use crate::CaseType;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Length of a unified case code.
pub const CASE_CODE_LEN: usize = 20;
/// Smallest allowed year.
pub const MIN_YEAR: u16 = 2000;
/// Largest allowed year.
pub const MAX_YEAR: u16 = 2099;
/// Largest sequence number (7 digits); the smallest is 1.
pub const MAX_SEQUENCE: u32 = 9_999_999;

/// ISO/IEC 7064 MOD 37,36 alphabet: `0-9A-Z` valued 0..=35.
const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// MOD 37,36 value of an upper-case ASCII letter or digit.
fn value(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'A'..=b'Z' => Some(u32::from(b - b'A') + 10),
        _ => None,
    }
}

/// ISO/IEC 7064 MOD 37,36 (hybrid system) check character over `body` (digits and upper-case letters).
fn mod37_36(body: &[u8]) -> Option<char> {
    let mut p = 36u32;
    for &b in body {
        let mut s = (p + value(b)?) % 36;
        if s == 0 {
            s = 36;
        }
        p = (2 * s) % 37;
    }
    ALPHABET.get(((37 - p) % 36) as usize).map(|&c| char::from(c))
}

/// The MOD 37,36 check character of a case code whose first 19 characters are `body19`; `None` unless
/// `body19` is exactly 19 digits or upper-case letters.
pub fn case_code_check_char(body19: &str) -> Option<char> {
    let b = body19.as_bytes();
    if b.len() != CASE_CODE_LEN - 1 {
        return None;
    }
    mod37_36(b)
}

/// A valid unified case code. Always well-formed: build it with [`CaseCode::new`] or
/// [`CaseCode::parse`]; print it with `to_string()` / [`CaseCode::format`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaseCode {
    case_type: CaseType,
    year: u16,
    region: String,
    sequence: u32,
}

fn check_year(year: u16, context_zh: &str, context_en: &str) -> Result<(), StandardError> {
    if (MIN_YEAR..=MAX_YEAR).contains(&year) {
        return Ok(());
    }
    Err(StandardError::new(
        "case_code.year",
        Some(3),
        format!("{context_zh}第3-6位年份 {year} 超出范围 {MIN_YEAR}-{MAX_YEAR}"),
        format!("{context_en}year {year} at positions 3-6 is outside {MIN_YEAR}-{MAX_YEAR}"),
    ))
}

fn check_sequence(sequence: u32, context_zh: &str, context_en: &str) -> Result<(), StandardError> {
    if (1..=MAX_SEQUENCE).contains(&sequence) {
        return Ok(());
    }
    Err(StandardError::new(
        "case_code.sequence",
        Some(13),
        format!("{context_zh}第13-19位流水号 {sequence} 超出范围 1-{MAX_SEQUENCE}"),
        format!("{context_en}sequence number {sequence} at positions 13-19 is outside 1-{MAX_SEQUENCE}"),
    ))
}

/// First non-digit in `segment`, which starts at 1-based position `first_pos` of the code.
fn first_non_digit(segment: &str, first_pos: usize) -> Option<(usize, char)> {
    segment
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_digit())
        .map(|(i, c)| (first_pos + i, c))
}

/// The rule that covers 1-based position `pos` of a case code.
fn segment_rule(pos: usize) -> (&'static str, &'static str, &'static str) {
    match pos {
        1..=2 => ("case_code.prefix", "案件类型前缀", "case type prefix"),
        3..=6 => ("case_code.year", "年份", "year"),
        7..=12 => ("case_code.region", "行政区划代码", "region code"),
        13..=19 => ("case_code.sequence", "流水号", "sequence number"),
        _ => ("case_code.check_char", "校验码", "check character"),
    }
}

impl CaseCode {
    /// A case code for `case_type`, `year` (2000..=2099), the agency's 6-digit `region` code and
    /// `sequence` (1..=9 999 999). Rules: `case_code.year`, `case_code.region`, `case_code.sequence`.
    /// The region is only checked to be six digits; see [`CaseCode::parse_strict`] for existence.
    pub fn new(case_type: CaseType, year: u16, region: &str, sequence: u32) -> Result<CaseCode, StandardError> {
        check_year(year, "", "")?;
        if region.len() != 6 || !region.bytes().all(|b| b.is_ascii_digit()) {
            return Err(StandardError::new(
                "case_code.region",
                Some(7),
                format!("第7-12位行政区划代码“{}”应为6位数字", shown(region)),
                format!("region code \"{}\" at positions 7-12 must be 6 digits", shown(region)),
            ));
        }
        check_sequence(sequence, "", "")?;
        Ok(CaseCode {
            case_type,
            year,
            region: region.to_owned(),
            sequence,
        })
    }

    /// Normalise `input` and parse it. Rules: `case_code.length`, `case_code.prefix`, `case_code.year`,
    /// `case_code.region` (six digits; existence is not checked), `case_code.sequence` (seven digits,
    /// not all zero), `case_code.check_char` (names the expected character).
    pub fn parse(input: &str) -> Result<CaseCode, StandardError> {
        let code = normalise_identifier(input);
        let n = if code.is_ascii() {
            code.len()
        } else {
            code.chars().count()
        };
        if n != CASE_CODE_LEN {
            return Err(StandardError::new(
                "case_code.length",
                None,
                format!("统一案件编码“{}”应为{CASE_CODE_LEN}位，实为{n}位", shown(&code)),
                format!(
                    "unified case code \"{}\" must have {CASE_CODE_LEN} characters, found {n}",
                    shown(&code)
                ),
            ));
        }
        if let Some((i, c)) = code.chars().enumerate().find(|(_, c)| !c.is_ascii()) {
            let pos = i + 1;
            let (rule, zh, en) = segment_rule(pos);
            return Err(StandardError::new(
                rule,
                Some(pos),
                format!("统一案件编码“{code}”第{pos}位字符“{c}”无效（{zh}）"),
                format!("unified case code \"{code}\": character '{c}' at position {pos} is not valid ({en})"),
            ));
        }
        // From here on the code is 20 ASCII characters.
        let ctx_zh = format!("统一案件编码“{code}”");
        let ctx_en = format!("unified case code \"{code}\": ");
        let prefix = &code[0..2];
        let Some(case_type) = CaseType::from_code_prefix(prefix) else {
            return Err(StandardError::new(
                "case_code.prefix",
                Some(1),
                format!("{ctx_zh}第1-2位案件类型前缀“{prefix}”无效，应为 JC（行政检查）、CF（行政处罚）或 QZ（行政强制）"),
                format!(
                    "{ctx_en}case type prefix \"{prefix}\" at positions 1-2 is not valid; expected JC (inspection), CF (penalty), QZ (coercion) or JH (plan)"
                ),
            ));
        };
        for (first, last) in [(3, 6), (7, 12), (13, 19)] {
            if let Some((pos, c)) = first_non_digit(&code[first - 1..last], first) {
                let (rule, zh, en) = segment_rule(pos);
                return Err(StandardError::new(
                    rule,
                    Some(pos),
                    format!("{ctx_zh}第{pos}位字符“{c}”不是数字（第{first}-{last}位为{zh}）"),
                    format!("{ctx_en}character '{c}' at position {pos} is not a digit (positions {first}-{last} are the {en})"),
                ));
            }
        }
        let year: u16 = code[2..6].parse().unwrap_or(0);
        check_year(year, &ctx_zh, &ctx_en)?;
        let sequence: u32 = code[12..19].parse().unwrap_or(0);
        check_sequence(sequence, &ctx_zh, &ctx_en)?;
        let found = char::from(code.as_bytes()[19]);
        let Some(expected) = case_code_check_char(&code[..19]) else {
            return Err(StandardError::new(
                "case_code.check_char",
                Some(20),
                format!("{ctx_zh}前19位含无法计算校验码的字符"),
                format!("{ctx_en}the first 19 characters contain a character outside 0-9A-Z"),
            ));
        };
        if value(found as u8).is_none() {
            return Err(StandardError::new(
                "case_code.check_char",
                Some(20),
                format!("{ctx_zh}第20位校验码“{found}”不是数字或大写字母，应为 {expected}"),
                format!("{ctx_en}check character '{found}' at position 20 is not a digit or letter; it should be {expected}"),
            ));
        }
        if found != expected {
            return Err(StandardError::new(
                "case_code.check_char",
                Some(20),
                format!("{ctx_zh}第20位校验码应为 {expected}，实为 {found}（可能有字符录入错误，请核对案卷）"),
                format!(
                    "{ctx_en}check character at position 20 should be {expected}, found {found} (a character may have been mistyped; verify against the case file)"
                ),
            ));
        }
        Ok(CaseCode {
            case_type,
            year,
            region: code[6..12].to_owned(),
            sequence,
        })
    }

    /// As [`CaseCode::parse`], and the region code must exist in GB/T 2260 (current or historical);
    /// otherwise rule `case_code.region`.
    pub fn parse_strict(input: &str) -> Result<CaseCode, StandardError> {
        let code = CaseCode::parse(input)?;
        if !RegionTable::embedded().exists_ever(&code.region) {
            return Err(StandardError::new(
                "case_code.region",
                Some(7),
                format!(
                    "统一案件编码“{code}”第7-12位行政区划代码 {} 不存在（GB/T 2260 现行及历史代码中均无）",
                    code.region
                ),
                format!(
                    "unified case code \"{code}\": region code {} at positions 7-12 does not exist in GB/T 2260 (current or historical)",
                    code.region
                ),
            ));
        }
        Ok(code)
    }

    /// The kind of case (prefix `JC`, `CF`, `QZ`).
    pub fn case_type(&self) -> CaseType {
        self.case_type
    }

    /// The 4-digit year.
    pub fn year(&self) -> u16 {
        self.year
    }

    /// The handling agency's 6-digit region code.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The sequence number, 1..=9 999 999.
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// The 19 characters before the check character.
    fn body(&self) -> String {
        format!(
            "{}{:04}{}{:07}",
            self.case_type.code_prefix(),
            self.year,
            self.region,
            self.sequence
        )
    }

    /// The check character (position 20).
    pub fn check_char(&self) -> char {
        mod37_36(self.body().as_bytes()).unwrap_or('?')
    }

    /// The 20-character code, e.g. `CF20243601020000001Y` (same as `to_string()`).
    pub fn format(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for CaseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut body = self.body();
        body.push(mod37_36(body.as_bytes()).unwrap_or('?'));
        f.write_str(&body)
    }
}

impl FromStr for CaseCode {
    type Err = StandardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CaseCode::parse(s)
    }
}

impl Serialize for CaseCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for CaseCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        CaseCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

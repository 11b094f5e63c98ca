//! GB/T 2260 administrative region codes (行政区划代码): the current table and every code observed
//! since 1980, embedded in the binary and parsed once.
//!
//! Look-ups are binary searches over codes stored as integers (about a dozen comparisons), so a
//! million look-ups take a few milliseconds. See `data/SOURCES.md` for the provenance of the data.

use super::error::{shown, StandardError};
use super::normalise::normalise_identifier;
use std::fmt;
use std::sync::OnceLock;

const CURRENT_CSV: &str = include_str!("../../data/region-codes.csv");
const HISTORICAL_CSV: &str = include_str!("../../data/region-codes-historical.csv");

/// Level of a unit in the three-level GB/T 2260 hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegionLevel {
    /// 省级: province, autonomous region, municipality, SAR (code ends in `0000`).
    Province,
    /// 地级: prefecture-level city, prefecture, autonomous prefecture, league (code ends in `00`).
    City,
    /// 县级: district, county, county-level city, banner.
    County,
}

impl RegionLevel {
    /// The name used in the data files (`province`, `city`, `county`).
    pub fn as_str(self) -> &'static str {
        match self {
            RegionLevel::Province => "province",
            RegionLevel::City => "city",
            RegionLevel::County => "county",
        }
    }

    fn parse(s: &str) -> Option<RegionLevel> {
        match s {
            "province" => Some(RegionLevel::Province),
            "city" => Some(RegionLevel::City),
            "county" => Some(RegionLevel::County),
            _ => None,
        }
    }
}

impl fmt::Display for RegionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A unit in the current GB/T 2260 table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region {
    /// Six-digit code.
    pub code: &'static str,
    /// Official name, e.g. `东湖区`.
    pub name: &'static str,
    /// Province, city (prefecture) or county level.
    pub level: RegionLevel,
    /// Code of the parent unit: the prefecture, or the province for provinces' direct units; `None` for provinces.
    pub parent: Option<&'static str>,
}

/// One (code, name) pair as observed in the yearly snapshots since 1980.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistoricalRegion {
    /// Six-digit code. Codes are re-used, so one code can have several historical rows.
    pub code: &'static str,
    /// Name during the period.
    pub name: &'static str,
    /// Level during the period.
    pub level: RegionLevel,
    /// First snapshot year showing the pair (1980 = first snapshot or earlier); approximate.
    pub valid_from_year: u16,
    /// Last snapshot year showing the pair; `None` while the pair is current. Approximate.
    pub valid_to_year: Option<u16>,
}

impl HistoricalRegion {
    /// True when this (code, name) pair is still in force.
    pub fn is_current(&self) -> bool {
        self.valid_to_year.is_none()
    }
}

/// A row of the embedded data that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("区划代码数据第{line}行格式错误 / region code data line {line} is malformed: {reason}")]
pub struct RegionDataError {
    /// 1-based line number in the CSV text.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The GB/T 2260 table: current units and every code observed since 1980.
#[derive(Debug)]
pub struct RegionTable {
    current_keys: Vec<u32>,
    current: Vec<Region>,
    historical_keys: Vec<u32>,
    historical: Vec<HistoricalRegion>,
}

/// The code as an integer when it is exactly six ASCII digits.
fn code_key(code: &str) -> Option<u32> {
    let b = code.as_bytes();
    if b.len() != 6 {
        return None;
    }
    let mut key = 0u32;
    for &d in b {
        if !d.is_ascii_digit() {
            return None;
        }
        key = key * 10 + u32::from(d - b'0');
    }
    Some(key)
}

/// The code's province (`xx0000`) as an integer key.
fn province_key(key: u32) -> u32 {
    key / 10_000 * 10_000
}

/// The code's prefecture (`xxxx00`) as an integer key.
fn city_key(key: u32) -> u32 {
    key / 100 * 100
}

/// Data lines of a CSV text with their 1-based line numbers, header skipped.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .skip(1)
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.is_empty())
}

fn bad(line: usize, reason: impl Into<String>) -> RegionDataError {
    RegionDataError {
        line,
        reason: reason.into(),
    }
}

fn parse_year(line: usize, s: &str) -> Result<u16, RegionDataError> {
    s.parse::<u16>()
        .map_err(|_| bad(line, format!("year {s:?} is not a number")))
}

impl RegionTable {
    /// The table compiled into the binary (`data/region-codes.csv` and `data/region-codes-historical.csv`),
    /// parsed on first use.
    ///
    /// # Panics
    /// Only if the embedded data is malformed, which the crate's tests rule out for the shipped files.
    pub fn embedded() -> &'static RegionTable {
        static TABLE: OnceLock<RegionTable> = OnceLock::new();
        TABLE.get_or_init(|| match RegionTable::parse(CURRENT_CSV, HISTORICAL_CSV) {
            Ok(table) => table,
            Err(e) => panic!("embedded GB/T 2260 data is malformed: {e}"),
        })
    }

    /// Build a table from the two CSV texts (`code,name,level,parent_code` and
    /// `code,name,level,valid_from_year,valid_to_year,status`, each with a header line).
    pub fn parse(current_csv: &'static str, historical_csv: &'static str) -> Result<RegionTable, RegionDataError> {
        let mut current = Vec::new();
        let mut lines = Vec::new();
        for (line, text) in data_lines(current_csv) {
            let f: Vec<&'static str> = text.split(',').collect();
            let [code, name, level, parent] = f[..] else {
                return Err(bad(line, format!("expected 4 fields, found {}", f.len())));
            };
            if code_key(code).is_none() {
                return Err(bad(line, format!("code {code:?} is not 6 digits")));
            }
            let level = RegionLevel::parse(level).ok_or_else(|| bad(line, format!("unknown level {level:?}")))?;
            let parent = match parent {
                "" => None,
                p if code_key(p).is_some() => Some(p),
                p => return Err(bad(line, format!("parent {p:?} is not 6 digits"))),
            };
            current.push(Region {
                code,
                name,
                level,
                parent,
            });
            lines.push((code, line));
        }
        lines.sort();
        if let Some(w) = lines.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(bad(w[1].1, format!("duplicate current code {}", w[0].0)));
        }
        current.sort_by_key(|r| code_key(r.code));
        let current_keys: Vec<u32> = current.iter().filter_map(|r| code_key(r.code)).collect();

        let mut historical = Vec::new();
        for (line, text) in data_lines(historical_csv) {
            let f: Vec<&'static str> = text.split(',').collect();
            let [code, name, level, from, to, status] = f[..] else {
                return Err(bad(line, format!("expected 6 fields, found {}", f.len())));
            };
            if code_key(code).is_none() {
                return Err(bad(line, format!("code {code:?} is not 6 digits")));
            }
            let level = RegionLevel::parse(level).ok_or_else(|| bad(line, format!("unknown level {level:?}")))?;
            let valid_from_year = parse_year(line, from)?;
            let valid_to_year = match to {
                "" => None,
                y => Some(parse_year(line, y)?),
            };
            match (status, valid_to_year) {
                ("current", None) | ("revoked", Some(_)) => {}
                _ => {
                    return Err(bad(
                        line,
                        format!("status {status:?} does not match valid_to_year {to:?}"),
                    ))
                }
            }
            historical.push(HistoricalRegion {
                code,
                name,
                level,
                valid_from_year,
                valid_to_year,
            });
        }
        // Stable: rows of one code keep their chronological order from the file.
        historical.sort_by_key(|h| code_key(h.code));
        let historical_keys = historical.iter().filter_map(|h| code_key(h.code)).collect();

        Ok(RegionTable {
            current_keys,
            current,
            historical_keys,
            historical,
        })
    }

    fn current_by_key(&self, key: u32) -> Option<&Region> {
        self.current_keys
            .binary_search(&key)
            .ok()
            .and_then(|i| self.current.get(i))
    }

    /// The current unit with this six-digit code.
    pub fn current(&self, code: &str) -> Option<&Region> {
        self.current_by_key(code_key(code)?)
    }

    /// Every (code, name) pair ever observed for this code, oldest first; empty when the code never existed.
    pub fn historical(&self, code: &str) -> &[HistoricalRegion] {
        let Some(key) = code_key(code) else {
            return &[];
        };
        let start = self.historical_keys.partition_point(|&k| k < key);
        let end = self.historical_keys.partition_point(|&k| k <= key);
        self.historical.get(start..end).unwrap_or(&[])
    }

    /// True when the code is current or was ever in force since 1980.
    pub fn exists_ever(&self, code: &str) -> bool {
        match code_key(code) {
            Some(key) => self.current_by_key(key).is_some() || self.historical_keys.binary_search(&key).is_ok(),
            None => false,
        }
    }

    /// True when the code is in the current table.
    pub fn is_current(&self, code: &str) -> bool {
        self.current(code).is_some()
    }

    /// The current province the code belongs to (by its first two digits); works for revoked codes too.
    pub fn province_of(&self, code: &str) -> Option<&Region> {
        self.current_by_key(province_key(code_key(code)?))
    }

    /// The current prefecture-level unit the code belongs to: the unit itself for a prefecture, the
    /// parent for a county. `None` for provinces and for county-level units directly under a province
    /// (districts of 北京/天津/上海/重庆, 4290xx, 4690xx, …). For a code that is not current the
    /// prefecture is found by the first four digits, when that prefecture is current.
    pub fn city_of(&self, code: &str) -> Option<&Region> {
        let key = code_key(code)?;
        if let Some(region) = self.current_by_key(key) {
            return match region.level {
                RegionLevel::Province => None,
                RegionLevel::City => Some(region),
                RegionLevel::County => region
                    .parent
                    .and_then(|p| self.current(p))
                    .filter(|p| p.level == RegionLevel::City),
            };
        }
        if key % 10_000 == 0 {
            return None;
        }
        self.current_by_key(city_key(key))
            .filter(|r| r.level == RegionLevel::City)
    }

    /// True when `code` lies within `ancestor` (or is `ancestor`): a county is within its prefecture and
    /// its province, a prefecture within its province. Decided by the code prefixes, so it also works for
    /// revoked codes; `ancestor` must exist (now or historically) and `code` must be six digits.
    pub fn is_within(&self, code: &str, ancestor: &str) -> bool {
        let (Some(key), Some(anc)) = (code_key(code), code_key(ancestor)) else {
            return false;
        };
        if !self.exists_ever(ancestor) {
            return false;
        }
        if anc % 10_000 == 0 {
            province_key(key) == anc
        } else if anc % 100 == 0 {
            city_key(key) == anc
        } else {
            key == anc
        }
    }

    /// All current units, sorted by code.
    pub fn all_current(&self) -> &[Region] {
        &self.current
    }

    /// All historical (code, name) rows, sorted by code.
    pub fn all_historical(&self) -> &[HistoricalRegion] {
        &self.historical
    }

    /// Validate a region code against this table; see [`validate_region_code`].
    pub fn validate<'t>(&'t self, input: &str, require_current: bool) -> Result<&'t str, StandardError> {
        let code = normalise_identifier(input);
        let n = code.chars().count();
        if n != 6 {
            return Err(StandardError::new(
                "region.format",
                None,
                format!("行政区划代码“{}”应为6位数字，实为{n}位", shown(&code)),
                format!(
                    "region code \"{}\" must be 6 digits, found {n} characters",
                    shown(&code)
                ),
            ));
        }
        if let Some((i, c)) = code.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(StandardError::new(
                "region.format",
                Some(i + 1),
                format!("行政区划代码“{code}”第{}位“{c}”不是数字", i + 1),
                format!(
                    "region code \"{code}\": character '{c}' at position {} is not a digit",
                    i + 1
                ),
            ));
        }
        if let Some(region) = self.current(&code) {
            return Ok(region.code);
        }
        let history = self.historical(&code);
        let Some(last) = history.iter().max_by_key(|h| h.valid_to_year.unwrap_or(u16::MAX)) else {
            return Err(StandardError::new(
                "region.unknown",
                None,
                format!("行政区划代码 {code} 不存在（GB/T 2260 现行及1980年以来的历史代码中均无）"),
                format!("region code {code} does not exist in GB/T 2260 (neither current nor historical since 1980)"),
            ));
        };
        if !require_current {
            return Ok(last.code);
        }
        let year = last.valid_to_year.unwrap_or(last.valid_from_year);
        Err(StandardError::new(
            "region.revoked",
            None,
            format!(
                "行政区划代码 {code}（{}）已撤销，最后见于 {year} 年；此处须填现行代码",
                last.name
            ),
            format!(
                "region code {code} ({}) has been revoked, last seen in {year}; a current code is required here",
                last.name
            ),
        ))
    }
}

/// Validate a GB/T 2260 region code against the embedded table and return the canonical code.
///
/// The input is normalised first (spaces, full-width digits). Rules: `region.format` (not six digits),
/// `region.unknown` (never existed), `region.revoked` (exists only historically while `require_current`
/// is set; the message names the old name and the last year it was seen). Use `require_current = true`
/// for an agency's own region and `false` for codes embedded in identifiers, which keep the code in
/// force when they were issued.
pub fn validate_region_code(input: &str, require_current: bool) -> Result<&'static str, StandardError> {
    RegionTable::embedded().validate(input, require_current)
}

//! GB 32100-2015 unified social credit code (统一社会信用代码, USCC) and the GB 11714-1997
//! organisation code (组织机构代码) that it embeds in positions 9-17.
//!
//! Checks, in order: length, character set, registration authority (pos. 1), organisation type
//! (pos. 2), region of the registration authority (pos. 3-8, GB/T 2260 current or historical),
//! the embedded organisation code's MOD 11 check (pos. 17) and the MOD 31 check character (pos. 18).
//! The structural checks come first because they point at the exact position that is wrong; the
//! check characters only say that *some* character is wrong.

use super::error::{shown, StandardError};
use super::normalise::normalise_identifier;
use super::region::RegionTable;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The 31 symbols of GB 32100 in value order (no I, O, Z, S, V).
const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Marker for "not in the alphabet" in the value tables.
const NONE: u8 = u8::MAX;

const fn uscc_value_table() -> [u8; 128] {
    let mut table = [NONE; 128];
    let mut i = 0;
    while i < USCC_ALPHABET.len() {
        table[USCC_ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
}

/// GB 32100 value of each ASCII byte, or [`NONE`].
static USCC_VALUE: [u8; 128] = uscc_value_table();

/// `3^(i-1) mod 31` for positions 1..=17.
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// GB 11714 weights for the 8 body characters.
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// National-level registration authority code in positions 3-8 (全国/中央, e.g. organs and banks
/// registered by central authorities). It is not a GB/T 2260 unit but appears in issued codes.
pub const NATIONAL_REGISTRATION_REGION: &str = "100000";

fn uscc_value(b: u8) -> Option<u32> {
    match USCC_VALUE.get(usize::from(b)) {
        Some(&v) if v != NONE => Some(u32::from(v)),
        _ => None,
    }
}

/// GB 11714 value: digits 0-9, letters A-Z = 10-35.
fn org_value(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'A'..=b'Z' => Some(u32::from(b - b'A') + 10),
        _ => None,
    }
}

/// The MOD 31 check character (position 18) of a USCC whose first 17 characters are `first17`;
/// `None` unless `first17` is exactly 17 characters of the GB 32100 alphabet (upper case).
pub fn uscc_check_char(first17: &str) -> Option<char> {
    let b = first17.as_bytes();
    if b.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (&c, w) in b.iter().zip(USCC_WEIGHTS) {
        sum += uscc_value(c)? * w;
    }
    let check = (31 - sum % 31) % 31;
    USCC_ALPHABET.get(check as usize).map(|&c| char::from(c))
}

/// The GB 11714 MOD 11 check character (`0`-`9` or `X`) of an organisation code whose 8-character
/// body is `first8`; `None` unless `first8` is exactly 8 digits or upper-case letters.
pub fn org_code_check_char(first8: &str) -> Option<char> {
    let b = first8.as_bytes();
    if b.len() != 8 {
        return None;
    }
    let mut sum = 0u32;
    for (&c, w) in b.iter().zip(ORG_WEIGHTS) {
        sum += org_value(c)? * w;
    }
    Some(match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        d => char::from_digit(d, 10)?,
    })
}

/// A registration authority (pos. 1) with its names and allowed organisation types (pos. 2).
struct Authority {
    code: u8,
    name_zh: &'static str,
    name_en: &'static str,
    types: &'static [u8],
}

const fn auth(code: u8, name_zh: &'static str, name_en: &'static str, types: &'static [u8]) -> Authority {
    Authority {
        code,
        name_zh,
        name_en,
        types,
    }
}

/// GB 32100-2015 table of registration authorities and organisation types (credit-code.md §1.1).
#[rustfmt::skip]
const AUTHORITIES: [Authority; 12] = [
    auth(b'1', "机构编制", "establishment offices", b"1239"),
    auth(b'2', "外交", "foreign affairs", b"19"),
    auth(b'3', "司法行政", "justice administration", b"123459"),
    auth(b'4', "文化", "culture", b"19"),
    auth(b'5', "民政", "civil affairs", b"1239"),
    auth(b'6', "旅游", "tourism", b"129"),
    auth(b'7', "宗教", "religious affairs", b"129"),
    auth(b'8', "工会", "trade unions", b"19"),
    auth(b'9', "工商", "market regulation", b"123"),
    auth(b'A', "中央军委改革和编制办公室", "CMC reform and establishment office", b"19"),
    auth(b'N', "农业", "agriculture", b"1239"),
    auth(b'Y', "其他", "other", b"1"),
];

fn authority(code: u8) -> Option<&'static Authority> {
    AUTHORITIES.iter().find(|a| a.code == code)
}

/// `"1、2、3"` / `"1, 2, 3"` lists of allowed characters for messages.
fn list(chars: &[u8], sep: &str) -> String {
    chars
        .iter()
        .map(|&c| char::from(c).to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

/// Character count and first bad character check shared by the codes in this module.
fn check_length(
    code: &str,
    expected: usize,
    rule: &'static str,
    what_zh: &str,
    what_en: &str,
) -> Result<(), StandardError> {
    let n = if code.is_ascii() {
        code.len()
    } else {
        code.chars().count()
    };
    if n == expected {
        return Ok(());
    }
    Err(StandardError::new(
        rule,
        None,
        format!("{what_zh}“{}”应为{expected}位，实为{n}位", shown(code)),
        format!(
            "{what_en} \"{}\" must have {expected} characters, found {n}",
            shown(code)
        ),
    ))
}

/// Validate an already-normalised USCC.
fn validate_uscc(code: &str) -> Result<(), StandardError> {
    check_length(
        code,
        18,
        "uscc.length",
        "统一社会信用代码",
        "unified social credit code",
    )?;
    if let Some((i, c)) = code
        .chars()
        .enumerate()
        .find(|&(_, c)| !c.is_ascii() || uscc_value(c as u8).is_none())
    {
        let pos = i + 1;
        let (hint_zh, hint_en) = if matches!(c, 'I' | 'O' | 'Z' | 'S' | 'V') {
            (
                "（代码不使用字母 I、O、Z、S、V）",
                " (the letters I, O, Z, S and V are not used)",
            )
        } else {
            ("", "")
        };
        return Err(StandardError::new(
            "uscc.charset",
            Some(pos),
            format!("统一社会信用代码“{code}”第{pos}位字符“{c}”不在代码字符集内{hint_zh}"),
            format!("unified social credit code \"{code}\": character '{c}' at position {pos} is not allowed{hint_en}"),
        ));
    }
    // From here on the code is 18 ASCII bytes.
    let b = code.as_bytes();
    let Some(auth) = authority(b[0]) else {
        let allowed = list(&AUTHORITIES.map(|a| a.code), "、");
        return Err(StandardError::new(
            "uscc.authority",
            Some(1),
            format!("统一社会信用代码“{code}”第1位登记管理部门代码“{}”无效，应为 {allowed} 之一", char::from(b[0])),
            format!(
                "unified social credit code \"{code}\": registration authority code '{}' at position 1 is not valid; expected one of {}",
                char::from(b[0]),
                list(&AUTHORITIES.map(|a| a.code), ", ")
            ),
        ));
    };
    if !auth.types.contains(&b[1]) {
        return Err(StandardError::new(
            "uscc.org_type",
            Some(2),
            format!(
                "统一社会信用代码“{code}”第2位机构类别代码“{}”对登记管理部门 {}（{}）无效，应为 {} 之一",
                char::from(b[1]),
                char::from(auth.code),
                auth.name_zh,
                list(auth.types, "、")
            ),
            format!(
                "unified social credit code \"{code}\": organisation type '{}' at position 2 is not valid for registration authority {} ({}); expected one of {}",
                char::from(b[1]),
                char::from(auth.code),
                auth.name_en,
                list(auth.types, ", ")
            ),
        ));
    }
    let region = &code[2..8];
    if region != NATIONAL_REGISTRATION_REGION && !RegionTable::embedded().exists_ever(region) {
        return Err(StandardError::new(
            "uscc.region",
            Some(3),
            format!("统一社会信用代码“{code}”第3-8位登记管理机关行政区划码 {region} 不存在（GB/T 2260 现行及历史代码中均无）"),
            format!(
                "unified social credit code \"{code}\": registration region code {region} at positions 3-8 does not exist in GB/T 2260 (current or historical)"
            ),
        ));
    }
    let org = &code[8..17];
    if let Some(expected) = org_code_check_char(&org[..8]) {
        let found = char::from(b[16]);
        if expected != found {
            return Err(StandardError::new(
                "uscc.org_code_check",
                Some(17),
                format!(
                    "统一社会信用代码“{code}”第9-17位组织机构代码 {org} 的校验码（第17位）应为 {expected}，实为 {found}（可能有字符录入错误，请核对证照原件）"
                ),
                format!(
                    "unified social credit code \"{code}\": check character of the embedded organisation code {org} at position 17 should be {expected}, found {found} (a character may have been mistyped; verify against the original document)"
                ),
            ));
        }
    }
    if let Some(expected) = uscc_check_char(&code[..17]) {
        let found = char::from(b[17]);
        if expected != found {
            return Err(StandardError::new(
                "uscc.check_char",
                Some(18),
                format!(
                    "统一社会信用代码“{code}”第18位校验码应为 {expected}，实为 {found}（可能有字符录入错误，请核对证照原件）"
                ),
                format!(
                    "unified social credit code \"{code}\": check character at position 18 should be {expected}, found {found} (a character may have been mistyped; verify against the original document)"
                ),
            ));
        }
    }
    Ok(())
}

/// A valid GB 32100 unified social credit code (统一社会信用代码), normalised (18 upper-case characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CreditCode(String);

impl CreditCode {
    /// Normalise `input` (see [`normalise_identifier`]) and validate it. Rules: `uscc.length`,
    /// `uscc.charset`, `uscc.authority`, `uscc.org_type`, `uscc.region`, `uscc.org_code_check`,
    /// `uscc.check_char`. Region codes of pos. 3-8 may be revoked ones (a USCC never changes) and
    /// `100000` (national-level registration) is accepted.
    pub fn parse(input: &str) -> Result<CreditCode, StandardError> {
        let code = normalise_identifier(input);
        validate_uscc(&code)?;
        Ok(CreditCode(code))
    }

    /// True when `code` is a valid credit code already in normalised form: the same answer as
    /// `CreditCode::parse(code).is_ok_and(|c| c.as_str() == code)`, without allocating for a
    /// valid code. (A code that passes the checks consists of the 18 upper-case characters of
    /// the GB 32100 alphabet, which normalisation leaves as they are; anything normalisation
    /// would change fails the character-set check.)
    pub fn is_valid_normalised(code: &str) -> bool {
        // The checks of `validate_uscc` without building its messages, reading each
        // character's value once for the character-set test and the MOD 31 sum together.
        // 18 characters in another number of bytes are not all ASCII: a charset failure.
        let Some(b) = code.as_bytes().first_chunk::<18>().filter(|_| code.len() == 18) else {
            return false;
        };
        let mut sum = 0u32;
        for (&c, w) in b.iter().zip(USCC_WEIGHTS) {
            match uscc_value(c) {
                Some(v) => sum += v * w,
                None => return false,
            }
        }
        if uscc_value(b[17]).is_none() {
            return false;
        }
        if !authority(b[0]).is_some_and(|auth| auth.types.contains(&b[1])) {
            return false;
        }
        let region = &code[2..8];
        if region != NATIONAL_REGISTRATION_REGION && !RegionTable::embedded().exists_ever(region) {
            return false;
        }
        if org_code_check_char(&code[8..16]).is_some_and(|expected| u32::from(expected) != u32::from(b[16])) {
            return false;
        }
        USCC_ALPHABET[((31 - sum % 31) % 31) as usize] == b[17]
    }

    /// The normalised 18-character code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `code` as a credit code when it is already normalised and valid (as in a canonical record
    /// that passed validation), checked without building messages; `None` otherwise.
    pub fn from_normalised(code: &str) -> Option<CreditCode> {
        CreditCode::is_valid_normalised(code).then(|| CreditCode(code.to_string()))
    }

    /// Position 1: registration authority code (`1`-`9`, `A`, `N`, `Y`).
    pub fn registration_authority(&self) -> char {
        self.char_at(0)
    }

    /// Position 2: organisation type code.
    pub fn org_type(&self) -> char {
        self.char_at(1)
    }

    /// Positions 3-8: GB/T 2260 region code of the registration authority at issuance.
    pub fn region_code(&self) -> &str {
        &self.0[2..8]
    }

    /// Positions 9-17: the embedded GB 11714 organisation code (subject identifier), incl. its check character.
    pub fn org_code(&self) -> &str {
        &self.0[8..17]
    }

    /// Position 18: the MOD 31 check character.
    pub fn check_char(&self) -> char {
        self.char_at(17)
    }

    fn char_at(&self, i: usize) -> char {
        self.0.as_bytes().get(i).map_or('\0', |&b| char::from(b))
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CreditCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for CreditCode {
    type Err = StandardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CreditCode::parse(s)
    }
}

impl Serialize for CreditCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CreditCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        CreditCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A valid stand-alone GB 11714-1997 organisation code (组织机构代码), 9 characters without hyphen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgCode(String);

impl OrgCode {
    /// Normalise `input` (the printed form `XXXXXXXX-X` is accepted) and validate it. Rules:
    /// `org_code.length`, `org_code.charset`, `org_code.check_char`.
    pub fn parse(input: &str) -> Result<OrgCode, StandardError> {
        let code = normalise_identifier(input);
        check_length(&code, 9, "org_code.length", "组织机构代码", "organisation code")?;
        if let Some((i, c)) = code.chars().enumerate().find(|&(i, c)| {
            !c.is_ascii() || (i < 8 && org_value(c as u8).is_none()) || (i == 8 && !matches!(c, '0'..='9' | 'X'))
        }) {
            let pos = i + 1;
            let (zh, en) = if pos == 9 {
                ("0-9 或 X", "0-9 or X")
            } else {
                ("数字或大写字母", "a digit or letter")
            };
            return Err(StandardError::new(
                "org_code.charset",
                Some(pos),
                format!("组织机构代码“{code}”第{pos}位字符“{c}”无效，应为{zh}"),
                format!("organisation code \"{code}\": character '{c}' at position {pos} is not valid; expected {en}"),
            ));
        }
        if let Some(expected) = org_code_check_char(&code[..8]) {
            let found = code[8..].chars().next().unwrap_or('\0');
            if expected != found {
                return Err(StandardError::new(
                    "org_code.check_char",
                    Some(9),
                    format!("组织机构代码“{code}”第9位校验码应为 {expected}，实为 {found}（可能有字符录入错误，请核对证照原件）"),
                    format!(
                        "organisation code \"{code}\": check character at position 9 should be {expected}, found {found} (a character may have been mistyped; verify against the original document)"
                    ),
                ));
            }
        }
        Ok(OrgCode(code))
    }

    /// The normalised 9-character code without hyphen.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The printed form with a hyphen before the check character, e.g. `60003734-1`.
    pub fn formatted(&self) -> String {
        let (body, check) = self.0.split_at(self.0.len().saturating_sub(1));
        format!("{body}-{check}")
    }
}

impl fmt::Display for OrgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for OrgCode {
    type Err = StandardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrgCode::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `is_valid_normalised` gives the answer of the full validation: every single-character
    /// change of valid codes (valid or not, any check failing), other lengths and non-ASCII.
    #[test]
    fn quick_validity_agrees_with_validation() {
        let valid = [
            "91110000600037341L",
            "11360100014523152U",
            "91360102MA35G7K86A",
            "92360111MA39B6R17J",
        ];
        let mut replacements: Vec<char> = USCC_ALPHABET.iter().map(|&c| char::from(c)).collect();
        replacements.extend(['I', 'O', 'Z', 'S', 'V', 'a', '-', ' ', '９', 'é', '\0']);
        let mut checked = 0;
        let mut valid_seen = 0;
        for code in valid {
            assert!(CreditCode::is_valid_normalised(code), "{code}");
            for i in 0..code.len() {
                for &r in &replacements {
                    let mut changed: Vec<char> = code.chars().collect();
                    changed[i] = r;
                    let changed: String = changed.into_iter().collect();
                    assert_eq!(
                        CreditCode::is_valid_normalised(&changed),
                        validate_uscc(&changed).is_ok(),
                        "{changed}"
                    );
                    checked += 1;
                    // The same change with both check characters made right again.
                    if let Some(mut fixed) = changed.get(..16).filter(|s| s.is_ascii()).map(str::to_string) {
                        if let Some(org) = org_code_check_char(&fixed[8..16]) {
                            fixed.push(org);
                            if let Some(check) = uscc_check_char(&fixed) {
                                fixed.push(check);
                                assert_eq!(
                                    CreditCode::is_valid_normalised(&fixed),
                                    validate_uscc(&fixed).is_ok(),
                                    "{fixed}"
                                );
                                valid_seen += usize::from(validate_uscc(&fixed).is_ok());
                            }
                        }
                    }
                }
            }
            for cut in [&code[..17], &code[1..], "", &code[..0]] {
                assert!(!CreditCode::is_valid_normalised(cut));
            }
            let longer = format!("{code}0");
            assert_eq!(CreditCode::is_valid_normalised(&longer), validate_uscc(&longer).is_ok());
        }
        assert!(checked > 1000);
        assert!(valid_seen > 100, "{valid_seen}");
    }
}

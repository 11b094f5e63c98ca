//! GB 11643-1999 citizen identity number (公民身份号码) of natural persons: 6-digit address code,
//! 8-digit birth date, 3-digit sequence (odd = male) and an ISO 7064 MOD 11-2 check character.
//!
//! Checks, in order: length (15-digit first-generation numbers must be converted with
//! [`from_legacy15`]), character set, address code (GB/T 2260 current or historical), birth date
//! (a real date, 1900 or later, not in the future) and the check character.

use super::dates::today_in_china;
use super::error::{shown, StandardError};
use super::normalise::normalise_identifier;
use super::region::RegionTable;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// `2^(18-i) mod 11` for positions 1..=17.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// Check character for each value of the weighted sum mod 11.
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// Earliest accepted birth year.
const MIN_BIRTH_YEAR: i32 = 1900;

/// The MOD 11-2 check character (`0`-`9` or `X`) of an ID number whose first 17 characters are
/// `first17`; `None` unless `first17` is exactly 17 ASCII digits.
pub fn id_check_char(first17: &str) -> Option<char> {
    let b = first17.as_bytes();
    if b.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (&d, w) in b.iter().zip(ID_WEIGHTS) {
        if !d.is_ascii_digit() {
            return None;
        }
        sum += u32::from(d - b'0') * w;
    }
    ID_CHECK.get((sum % 11) as usize).map(|&c| char::from(c))
}

/// Parse `YYYYMMDD` (8 ASCII digits) into a calendar date.
fn parse_yyyymmdd(s: &str) -> Option<NaiveDate> {
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = i32::try_from(num(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, num(4..6)?, num(6..8)?)
}

/// Error for an address code (pos. 1-6) that never existed.
fn region_error(code: &str, region: &str) -> StandardError {
    StandardError::new(
        "id_number.region",
        Some(1),
        format!("身份证号码“{code}”第1-6位地址码 {region} 不存在（GB/T 2260 现行及历史代码中均无）"),
        format!(
            "ID number \"{code}\": address code {region} at positions 1-6 does not exist in GB/T 2260 (current or historical)"
        ),
    )
}

/// Validate the birth date `yyyymmdd` found at 1-based positions `first_pos..=last_pos` of `code`.
fn check_birth_date(
    code: &str,
    yyyymmdd: &str,
    (first_pos, last_pos): (usize, usize),
    today: NaiveDate,
) -> Result<NaiveDate, StandardError> {
    let err = |zh: String, en: String| StandardError::new("id_number.birth_date", Some(first_pos), zh, en);
    let Some(date) = parse_yyyymmdd(yyyymmdd) else {
        return Err(err(
            format!("身份证号码“{code}”第{first_pos}-{last_pos}位出生日期 {yyyymmdd} 不是有效日期"),
            format!("ID number \"{code}\": birth date {yyyymmdd} at positions {first_pos}-{last_pos} is not a valid calendar date"),
        ));
    };
    if date.year() < MIN_BIRTH_YEAR {
        return Err(err(
            format!("身份证号码“{code}”第{first_pos}-{last_pos}位出生日期 {date} 早于 {MIN_BIRTH_YEAR} 年"),
            format!("ID number \"{code}\": birth date {date} at positions {first_pos}-{last_pos} is before {MIN_BIRTH_YEAR}"),
        ));
    }
    if date > today {
        return Err(err(
            format!("身份证号码“{code}”第{first_pos}-{last_pos}位出生日期 {date} 晚于今天（{today}）"),
            format!(
                "ID number \"{code}\": birth date {date} at positions {first_pos}-{last_pos} is after today ({today})"
            ),
        ));
    }
    Ok(date)
}

/// A valid 18-character GB 11643 citizen identity number (公民身份号码), normalised (`x` upper-cased).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResidentId {
    code: String,
    birth_date: NaiveDate,
}

impl ResidentId {
    /// Normalise `input` and validate it, with "today" taken in China Standard Time. Rules:
    /// `id_number.length` (a 15-digit number gets a message saying it must be converted first),
    /// `id_number.charset`, `id_number.region`, `id_number.birth_date`, `id_number.check_char`.
    pub fn parse(input: &str) -> Result<ResidentId, StandardError> {
        ResidentId::parse_as_of(input, today_in_china())
    }

    /// As [`ResidentId::parse`], with birth dates after `today` rejected (for reproducible checks).
    pub fn parse_as_of(input: &str, today: NaiveDate) -> Result<ResidentId, StandardError> {
        let code = normalise_identifier(input);
        let n = if code.is_ascii() {
            code.len()
        } else {
            code.chars().count()
        };
        if n == 15 {
            return Err(StandardError::new(
                "id_number.length",
                None,
                format!("身份证号码“{code}”为15位旧号码，须先转换为18位（在出生年份前补“19”并计算校验码）；映射中对该字段加处理步骤 id_number_18 即可自动转换"),
                format!(
                    "ID number \"{code}\" has 15 digits (first-generation number); 15-digit numbers must be converted to the 18-character form first (insert \"19\" before the birth year and compute the check character): the mapping step `id_number_18` on this field does it"
                ),
            ));
        }
        if n != 18 {
            return Err(StandardError::new(
                "id_number.length",
                None,
                format!("身份证号码“{}”应为18位，实为{n}位", shown(&code)),
                format!("ID number \"{}\" must have 18 characters, found {n}", shown(&code)),
            ));
        }
        if let Some((i, c)) = code
            .chars()
            .enumerate()
            .find(|&(i, c)| !(c.is_ascii_digit() || (i == 17 && c == 'X')))
        {
            let pos = i + 1;
            let (zh, en) = if pos == 18 {
                ("数字或 X", "a digit or X")
            } else {
                ("数字", "a digit")
            };
            return Err(StandardError::new(
                "id_number.charset",
                Some(pos),
                format!("身份证号码“{code}”第{pos}位字符“{c}”无效，应为{zh}"),
                format!("ID number \"{code}\": character '{c}' at position {pos} is not valid; expected {en}"),
            ));
        }
        // From here on the code is 18 ASCII characters.
        let region = &code[..6];
        if !RegionTable::embedded().exists_ever(region) {
            return Err(region_error(&code, region));
        }
        let birth_date = check_birth_date(&code, &code[6..14], (7, 14), today)?;
        if let Some(expected) = id_check_char(&code[..17]) {
            let found = code[17..].chars().next().unwrap_or('\0');
            if expected != found {
                return Err(StandardError::new(
                    "id_number.check_char",
                    Some(18),
                    format!("身份证号码“{code}”第18位校验码应为 {expected}，实为 {found}（可能有字符录入错误，请核对证件原件）"),
                    format!(
                        "ID number \"{code}\": check character at position 18 should be {expected}, found {found} (a character may have been mistyped; verify against the original document)"
                    ),
                ));
            }
        }
        Ok(ResidentId { code, birth_date })
    }

    /// Convert a 15-digit first-generation number (6-digit address, `YYMMDD`, 3-digit sequence) to the
    /// 18-character form; see [`from_legacy15`].
    pub fn from_legacy15(input: &str) -> Result<ResidentId, StandardError> {
        from_legacy15(input)
    }

    /// The normalised 18-character number.
    pub fn as_str(&self) -> &str {
        &self.code
    }

    /// Positions 1-6: GB/T 2260 address code at first issue (may be revoked today).
    pub fn region_code(&self) -> &str {
        &self.code[..6]
    }

    /// Positions 7-14: date of birth.
    pub fn birth_date(&self) -> NaiveDate {
        self.birth_date
    }

    /// Position 17 odd: male; even: female.
    pub fn is_male(&self) -> bool {
        self.code.as_bytes().get(16).is_some_and(|d| d % 2 == 1)
    }
}

/// Convert a 15-digit first-generation ID number (一代证: 6-digit address, `YYMMDD`, 3-digit sequence, no
/// check character) into the 18-character form by inserting `19` before the year and computing the
/// check character: `360426910101007` → `360426199101010071`. Rules: `id_number.length`,
/// `id_number.charset`, `id_number.region`, `id_number.birth_date`.
pub fn from_legacy15(input: &str) -> Result<ResidentId, StandardError> {
    let code = normalise_identifier(input);
    let n = if code.is_ascii() {
        code.len()
    } else {
        code.chars().count()
    };
    if n != 15 {
        return Err(StandardError::new(
            "id_number.length",
            None,
            format!("15位旧身份证号码“{}”应为15位，实为{n}位", shown(&code)),
            format!(
                "first-generation ID number \"{}\" must have 15 digits, found {n}",
                shown(&code)
            ),
        ));
    }
    if let Some((i, c)) = code.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
        let pos = i + 1;
        return Err(StandardError::new(
            "id_number.charset",
            Some(pos),
            format!("15位旧身份证号码“{code}”第{pos}位字符“{c}”不是数字"),
            format!("first-generation ID number \"{code}\": character '{c}' at position {pos} is not a digit"),
        ));
    }
    let region = &code[..6];
    if !RegionTable::embedded().exists_ever(region) {
        return Err(region_error(&code, region));
    }
    let first17 = format!("{}19{}", &code[..6], &code[6..]);
    let birth_date = check_birth_date(&code, &first17[6..14], (7, 12), NaiveDate::MAX)?;
    let Some(check) = id_check_char(&first17) else {
        return Err(StandardError::new(
            "id_number.charset",
            None,
            format!("15位旧身份证号码“{code}”含非数字字符"),
            format!("first-generation ID number \"{code}\" contains a character that is not a digit"),
        ));
    };
    let mut full = first17;
    full.push(check);
    Ok(ResidentId { code: full, birth_date })
}

/// What kind of resident ID number a text holds (see [`identifier_kind`] and [`find_identifiers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentifierKind {
    /// 18 characters: 17 digits and a digit or `X`, whose positions 7-14 are a birth date between
    /// 1900 and today and whose 18th character is the MOD 11-2 check character.
    Resident18,
    /// 15 digits (first-generation number, GB 11643-1989) whose positions 7-12 are a real `YYMMDD`
    /// date of the 1900s.
    Legacy15,
}

/// A resident ID number found in a text by [`find_identifiers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundIdentifier {
    /// Byte range of the number in the text (separators between its digits included).
    pub range: Range<usize>,
    /// Which form it has.
    pub kind: IdentifierKind,
}

/// Classify 15 or 18 ASCII characters (digits, `X` last) as a resident ID number.
fn classify(ascii: &[u8], today: NaiveDate) -> Option<IdentifierKind> {
    let text = std::str::from_utf8(ascii).ok()?;
    match ascii.len() {
        18 => {
            let check = id_check_char(text.get(..17)?)?;
            let date = parse_yyyymmdd(text.get(6..14)?)?;
            let last = char::from(*ascii.get(17)?);
            (last == check && date.year() >= MIN_BIRTH_YEAR && date <= today).then_some(IdentifierKind::Resident18)
        }
        15 => {
            if !ascii.iter().all(u8::is_ascii_digit) {
                return None;
            }
            parse_yyyymmdd(&format!("19{}", text.get(6..12)?)).map(|_| IdentifierKind::Legacy15)
        }
        _ => None,
    }
}

/// The ASCII digit of `c` (`0`-`9` or full-width `０`-`９`).
fn digit_of(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8),
        '\u{FF10}'..='\u{FF19}' => u8::try_from(u32::from(c) - 0xFF10).ok().map(|d| b'0' + d),
        _ => None,
    }
}

/// True for `X`, `x` and their full-width forms (the check character 10).
fn is_x(c: char) -> bool {
    matches!(c, 'X' | 'x' | '\u{FF38}' | '\u{FF58}')
}

/// Separators people write between groups of an ID number's digits (`3601 0219 …`, `360102-1985…`).
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '\u{3000}')
}

/// Whether the whole of `value` is a resident ID number, after the clean-up of
/// [`normalise_identifier`] (spaces, hyphens, full-width forms, lower-case `x`); birth dates after
/// today (China Standard Time) do not count.
pub fn identifier_kind(value: &str) -> Option<IdentifierKind> {
    let code = normalise_identifier(value);
    classify(code.as_bytes(), today_in_china())
}

/// Every resident ID number in `text`, in order, without overlaps:
///
/// - an 18-character number (17 digits and a digit or `X`, ASCII or full-width, single spaces or
///   hyphens allowed between digits) with a valid check character and a birth date between 1900 and
///   today, not preceded or followed directly by another digit;
/// - a 15-digit number whose positions 7-12 are a real `YYMMDD` date, standing alone: neither
///   preceded nor followed by a letter or digit (so that 15 digits inside a hexadecimal hash or a
///   longer code are left alone).
///
/// Longer runs of digits (bank cards, timestamps) are not split into candidates.
pub fn find_identifiers(text: &str) -> Vec<FoundIdentifier> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let is_digit_at = |i: usize| chars.get(i).is_some_and(|&(_, c)| digit_of(c).is_some());
    let is_alnum_at = |i: usize| {
        chars
            .get(i)
            .is_some_and(|&(_, c)| digit_of(c).is_some() || c.is_ascii_alphabetic() || is_x(c))
    };
    let today = today_in_china();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_digit_at(i) || (i > 0 && is_digit_at(i - 1)) {
            i += 1;
            continue;
        }
        // An 18-character number starting here, separators allowed between digits.
        let mut ascii = Vec::with_capacity(18);
        let mut j = i;
        while j < chars.len() && ascii.len() < 18 {
            let c = chars[j].1;
            if let Some(d) = digit_of(c) {
                ascii.push(d);
            } else if ascii.len() == 17 && is_x(c) {
                ascii.push(b'X');
            } else if is_separator(c)
                && is_digit_at(j - 1)
                && (is_digit_at(j + 1) || (ascii.len() == 17 && chars.get(j + 1).is_some_and(|&(_, n)| is_x(n))))
            {
                // a single separator between two characters of the number
            } else {
                break;
            }
            j += 1;
        }
        if ascii.len() == 18 && !is_digit_at(j) && classify(&ascii, today) == Some(IdentifierKind::Resident18) {
            found.push(FoundIdentifier {
                range: chars[i].0..end_of(j),
                kind: IdentifierKind::Resident18,
            });
            i = j;
            continue;
        }
        // A 15-digit number standing alone.
        let mut run = i;
        while is_digit_at(run) {
            run += 1;
        }
        if run - i == 15 && !(i > 0 && is_alnum_at(i - 1)) && !is_alnum_at(run) {
            let digits: Vec<u8> = chars[i..run].iter().filter_map(|&(_, c)| digit_of(c)).collect();
            if classify(&digits, today) == Some(IdentifierKind::Legacy15) {
                found.push(FoundIdentifier {
                    range: chars[i].0..end_of(run),
                    kind: IdentifierKind::Legacy15,
                });
            }
        }
        i = run;
    }
    found
}

/// `value` with all but its first 4 and last 4 characters replaced by `*`
/// (`36010219850315202X` → `3601**********202X`); a value of 8 characters or fewer is masked whole.
/// The form in which messages, logs and audit entries show a person's identifier.
pub fn mask_id(value: &str) -> String {
    let n = value.chars().count();
    if n <= 8 {
        return "*".repeat(n);
    }
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i < 4 || i >= n - 4 { c } else { '*' })
        .collect()
}

/// `text` with every resident ID number [`find_identifiers`] finds replaced by its [`mask_id`]
/// form; borrowed unchanged when it holds none.
pub fn mask_identifiers(text: &str) -> Cow<'_, str> {
    let found = find_identifiers(text);
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in found {
        out.push_str(&text[at..f.range.start]);
        out.push_str(&mask_id(&text[f.range.clone()]));
        at = f.range.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

impl fmt::Display for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)
    }
}

impl AsRef<str> for ResidentId {
    fn as_ref(&self) -> &str {
        &self.code
    }
}

impl FromStr for ResidentId {
    type Err = StandardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResidentId::parse(s)
    }
}

impl Serialize for ResidentId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.code)
    }
}

impl<'de> Deserialize<'de> for ResidentId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        ResidentId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_id_keeps_the_first_four_and_last_four_characters() {
        assert_eq!(mask_id("36010219850315202X"), "3601**********202X");
        assert_eq!(mask_id("360426910101007"), "3604*******1007");
        assert_eq!(mask_id("12345678"), "********");
        assert_eq!(
            mask_id("３６０１０２１９８５０３１５２０２Ｘ"),
            "３６０１**********２０２Ｘ"
        );
    }

    #[test]
    fn valid_numbers_are_classified_and_lookalikes_are_not() {
        assert_eq!(identifier_kind("36010219850315202X"), Some(IdentifierKind::Resident18));
        assert_eq!(identifier_kind("36010219850315202x"), Some(IdentifierKind::Resident18));
        assert_eq!(
            identifier_kind("360102 19850315 202x"),
            Some(IdentifierKind::Resident18)
        );
        assert_eq!(identifier_kind("360426910101007"), Some(IdentifierKind::Legacy15));
        // Wrong check character, impossible birth date, credit code, phone number, date.
        assert_eq!(identifier_kind("360102198503152021"), None);
        assert_eq!(identifier_kind("360426911301007"), None);
        assert_eq!(identifier_kind("91360102MA35G7K86A"), None);
        assert_eq!(identifier_kind("13907910000"), None);
        assert_eq!(identifier_kind("20210122"), None);
    }

    #[test]
    fn every_identifier_in_a_text_is_masked_and_nothing_else() {
        let text = "+input = { xdrzjhm = \"36010219850315202X\", old = \"360426910101007\" }\n\
                    证件号码３６０１０２１９８５０３１５２０２Ｘ；分开写 360102 19850315 202x。\n\
                    code 91360102MA35G7K86A tel 0791-86123456 at 20240301101502 fnv1a64:7e2e4be0cf6fb7a8";
        let masked = mask_identifiers(text);
        assert_eq!(
            masked,
            "+input = { xdrzjhm = \"3601**********202X\", old = \"3604*******1007\" }\n\
             证件号码３６０１**********２０２Ｘ；分开写 3601************202x。\n\
             code 91360102MA35G7K86A tel 0791-86123456 at 20240301101502 fnv1a64:7e2e4be0cf6fb7a8"
        );
        assert_eq!(find_identifiers(text).len(), 4);
    }

    #[test]
    fn text_without_identifiers_is_borrowed_unchanged() {
        let text = "--- mapping.toml (v1)\n+++ mapping.toml (v2)\n-version = 1\n+version = 2\n";
        assert!(matches!(mask_identifiers(text), Cow::Borrowed(_)));
    }

    #[test]
    fn fifteen_digits_inside_a_longer_code_or_hash_are_left_alone() {
        // 15 digits with a valid YYMMDD, but touching letters (a hash) or part of a longer run.
        for text in ["ab360426910101007cd", "3604269101010071234", "x360426910101007"] {
            assert_eq!(mask_identifiers(text), text, "{text}");
        }
        // An 18-character number next to letters is still masked (its check character makes a
        // false match unlikely).
        assert_eq!(mask_identifiers("ID36010219850315202X"), "ID3601**********202X");
    }

    #[test]
    fn an_identifier_followed_by_other_digit_groups_is_still_found() {
        assert_eq!(mask_identifiers("12 36010219850315202X 7"), "12 3601**********202X 7");
    }

    #[test]
    fn a_birth_date_after_today_is_not_an_identifier() {
        let first17 = "36010221991231001";
        let code = format!("{first17}{}", id_check_char(first17).unwrap_or('0'));
        assert_eq!(identifier_kind(&code), None);
    }
}

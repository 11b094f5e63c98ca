//! Text steps (`trim`, `halfwidth`, ...) and typed conversions of legacy values: amounts
//! (`1,234.50`, `１２３`, `¥1,234.50元`, `0.2` 万元), booleans (是/否, 1/0, Y/N).

use crate::standards::normalise::{normalise_identifier, to_halfwidth};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::str::FromStr;

/// A text step applied to the source value before conversion, in the order listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Remove leading and trailing whitespace (incl. the ideographic space U+3000).
    Trim,
    /// Full-width ASCII (`ＡＢＣ１２３，`) to half-width, U+3000 to a space.
    Halfwidth,
    /// ASCII letters to upper case.
    Upper,
    /// ASCII letters to lower case.
    Lower,
    /// Remove every whitespace character (incl. U+3000, NBSP) and zero-width character.
    RemoveSpaces,
    /// Runs of whitespace inside the text become one space; the ends are trimmed.
    CollapseSpaces,
    /// Identifier clean-up for credit codes and ID numbers: half-width, no whitespace, no
    /// zero-width characters, no hyphens, upper case. Check characters are never repaired.
    #[serde(alias = "normalize_identifier")]
    NormaliseIdentifier,
    /// [`Step::NormaliseIdentifier`], then a 15-digit first-generation ID number (GB 11643-1989)
    /// becomes its 18-character form: `19` before the birth year and the MOD 11-2 check
    /// character. A value that is not a valid 15-digit number is left as it is (validation
    /// then names what is wrong with it).
    #[serde(rename = "id_number_18")]
    IdNumber18,
}

/// `text` with full-width ASCII and U+3000 made half-width; borrowed when there is none.
pub(crate) fn halfwidth(text: &str) -> Cow<'_, str> {
    if has_fullwidth(text) {
        Cow::Owned(to_halfwidth(text))
    } else {
        Cow::Borrowed(text)
    }
}

/// True when `text` holds a character [`halfwidth`] maps (U+FF01..=U+FF5E or U+3000), found
/// by bytes: those are encoded EF BC 81..=BF, EF BD 80..=9E and E3 80 80, so only the bytes
/// after an EF or E3 lead byte (common in Chinese text: 。、 and ideographic punctuation start
/// with E3) need a look, and no character is decoded.
fn has_fullwidth(text: &str) -> bool {
    let b = text.as_bytes();
    let mut from = 0;
    while let Some(at) = b[from..].iter().position(|&x| x == 0xEF || x == 0xE3) {
        let lead = from + at;
        if matches!(
            b.get(lead..lead + 3),
            Some([0xEF, 0xBC, 0x81..=0xBF] | [0xEF, 0xBD, 0x80..=0x9E] | [0xE3, 0x80, 0x80])
        ) {
            return true;
        }
        from = lead + 1;
    }
    false
}

fn is_zero_width(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

/// True when a character whose UTF-8 encoding starts with `lead` may be whitespace
/// (`char::is_whitespace`: U+0009..=U+000D, U+0020, U+0085, U+00A0, U+1680, U+2000..=U+200A,
/// U+2028, U+2029, U+202F, U+205F, U+3000) or zero-width (U+200B..=U+200D, U+2060, U+FEFF).
/// Any other lead byte starts a character that is neither.
fn may_start_space(lead: u8) -> bool {
    MAY_START_SPACE[usize::from(lead)]
}

/// [`may_start_space`] of every byte: one load instead of a chain of comparisons, for a test
/// made on both ends of nearly every value mapped.
static MAY_START_SPACE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = matches!(i as u8, b' ' | 0x09..=0x0D | 0xC2 | 0xE1 | 0xE2 | 0xE3 | 0xEF);
        i += 1;
    }
    table
};

/// True when `s` is not empty and neither its first nor its last character can be
/// whitespace or zero-width: every trim leaves it as it is. Decided from two lead bytes.
pub(crate) fn has_solid_ends(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.iter().rev().find(|&&x| x & 0xC0 != 0x80)) else {
        return false;
    };
    !may_start_space(first) && !may_start_space(last)
}

/// `str::trim`, without looking further when the ends are plainly not whitespace.
pub(crate) fn trim(s: &str) -> &str {
    if has_solid_ends(s) {
        s
    } else {
        s.trim()
    }
}

fn map_cow<'a>(s: Cow<'a, str>, f: impl FnOnce(&str) -> Option<String>) -> Cow<'a, str> {
    match f(&s) {
        Some(changed) => Cow::Owned(changed),
        None => s,
    }
}

/// Apply one step; allocates only when the text changes.
#[inline]
pub(crate) fn apply_step(step: Step, s: Cow<'_, str>) -> Cow<'_, str> {
    // The usual case, a `trim` with nothing to trim, without a call.
    if step == Step::Trim && has_solid_ends(&s) {
        return s;
    }
    apply_step_other(step, s)
}

/// [`apply_step`] beyond its usual case, out of line.
#[inline(never)]
fn apply_step_other(step: Step, s: Cow<'_, str>) -> Cow<'_, str> {
    match step {
        Step::Trim if has_solid_ends(&s) => s,
        Step::Trim => match s {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim_matches(|c: char| c.is_whitespace() || is_zero_width(c))),
            Cow::Owned(o) => {
                let t = o.trim_matches(|c: char| c.is_whitespace() || is_zero_width(c));
                if t.len() == o.len() {
                    Cow::Owned(o)
                } else {
                    Cow::Owned(t.to_string())
                }
            }
        },
        Step::Halfwidth => map_cow(s, |t| match halfwidth(t) {
            Cow::Owned(changed) => Some(changed),
            Cow::Borrowed(_) => None,
        }),
        Step::Upper => map_cow(s, |t| {
            t.bytes()
                .any(|b| b.is_ascii_lowercase())
                .then(|| t.to_ascii_uppercase())
        }),
        Step::Lower => map_cow(s, |t| {
            t.bytes()
                .any(|b| b.is_ascii_uppercase())
                .then(|| t.to_ascii_lowercase())
        }),
        Step::RemoveSpaces => map_cow(s, |t| {
            t.chars().any(|c| c.is_whitespace() || is_zero_width(c)).then(|| {
                t.chars()
                    .filter(|&c| !(c.is_whitespace() || is_zero_width(c)))
                    .collect()
            })
        }),
        Step::CollapseSpaces => map_cow(s, |t| {
            let collapsed = t
                .split(|c: char| c.is_whitespace())
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            (collapsed != t).then_some(collapsed)
        }),
        Step::NormaliseIdentifier => map_cow(s, |t| {
            let plain = t
                .bytes()
                .all(|b| (0x21..=0x7E).contains(&b) && b != b'-' && !b.is_ascii_lowercase());
            (!plain).then(|| normalise_identifier(t))
        }),
        Step::IdNumber18 => {
            let cleaned = apply_step_other(Step::NormaliseIdentifier, s);
            if cleaned.len() == 15 && cleaned.bytes().all(|b| b.is_ascii_digit()) {
                match crate::standards::from_legacy15(&cleaned) {
                    Ok(id) => Cow::Owned(id.as_str().to_string()),
                    Err(_) => cleaned,
                }
            } else {
                cleaned
            }
        }
    }
}

/// Unit of amounts in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// 元 (no change).
    #[default]
    Yuan,
    /// 万元: multiplied by 10 000.
    WanYuan,
    /// 分: divided by 100.
    Fen,
    /// A percentage (`5` or `5%` = 0.05): divided by 100. A `%` suffix means a percentage
    /// whatever the unit (sampling ratios written `5%`).
    Percent,
}

/// Why a number could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumberError {
    NotANumber,
    NotWhole,
    OutOfRange,
}

/// Read an amount or count written the ways legacy systems and clerks write them:
/// `1234.5`, `1,234.50`, `１２３`, `¥1,234.50元`, `￥ 12`, `0.2万元`, `-3`.
/// A `万元`/`万` suffix means 万元 whatever the unit; a `元` suffix means 元.
pub(crate) fn parse_amount(text: &str, unit: Unit) -> Result<Decimal, NumberError> {
    let half = halfwidth(text);
    let mut s: &str = trim(&half);
    let mut unit = unit;
    for prefix in ["¥", "￥", "RMB", "CNY", "人民币"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.trim_start();
            break;
        }
    }
    if let Some(rest) = s.strip_suffix("元整").or_else(|| s.strip_suffix('整')) {
        s = rest;
    }
    if let Some(rest) = s.strip_suffix('%').or_else(|| s.strip_suffix('％')) {
        s = rest.trim_end();
        unit = Unit::Percent;
    } else if let Some(rest) = s.strip_suffix("万元").or_else(|| s.strip_suffix('万')) {
        s = rest.trim_end();
        unit = Unit::WanYuan;
    } else if let Some(rest) = s.strip_suffix('元').or_else(|| s.strip_suffix('圆')) {
        s = rest.trim_end();
        unit = Unit::Yuan;
    }
    let value = parse_plain_decimal(s)?;
    match unit {
        Unit::Yuan => Ok(value),
        Unit::WanYuan => value.checked_mul(Decimal::from(10_000)).ok_or(NumberError::OutOfRange),
        Unit::Fen | Unit::Percent => value.checked_div(Decimal::from(100)).ok_or(NumberError::OutOfRange),
    }
}

/// `-1,234.50`, `1234.5`, `1e3`: digits with optional sign, thousands commas in groups of
/// three, decimal point and exponent.
fn parse_plain_decimal(s: &str) -> Result<Decimal, NumberError> {
    if s.is_empty() {
        return Err(NumberError::NotANumber);
    }
    // Fast path: plain `123` or `0.2`.
    let b = s.as_bytes();
    let dots = b.iter().filter(|&&c| c == b'.').count();
    if b.len() <= 20
        && dots <= 1
        && b[0] != b'.'
        && b[b.len() - 1] != b'.'
        && b.iter().all(|&c| c.is_ascii_digit() || c == b'.')
    {
        return Decimal::from_str(s).map_err(|_| NumberError::OutOfRange);
    }
    let (sign, body) = match s.as_bytes()[0] {
        b'-' => ("-", &s[1..]),
        b'+' => ("", &s[1..]),
        _ => ("", s),
    };
    let (int_part, rest) = match body.find(['.', 'e', 'E']) {
        Some(i) => (&body[..i], &body[i..]),
        None => (body, ""),
    };
    if int_part.is_empty() && !rest.starts_with('.') {
        return Err(NumberError::NotANumber);
    }
    let digits: Cow<'_, str> = if int_part.contains(',') {
        let groups: Vec<&str> = int_part.split(',').collect();
        let first_ok = (1..=3).contains(&groups[0].len());
        let rest_ok = groups[1..].iter().all(|g| g.len() == 3);
        if !(first_ok && rest_ok) {
            return Err(NumberError::NotANumber);
        }
        Cow::Owned(groups.concat())
    } else {
        Cow::Borrowed(int_part)
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::NotANumber);
    }
    let (frac, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if let Some(f) = frac.strip_prefix('.') {
        if !f.bytes().all(|b| b.is_ascii_digit()) || (f.is_empty() && digits.is_empty()) {
            return Err(NumberError::NotANumber);
        }
    } else if !frac.is_empty() {
        return Err(NumberError::NotANumber);
    }
    let plain = format!("{sign}{}{frac}", if digits.is_empty() { "0" } else { &digits });
    let plain = plain.strip_suffix('.').unwrap_or(&plain);
    if exp.is_empty() {
        return Decimal::from_str(plain).map_err(|_| NumberError::OutOfRange);
    }
    let e = exp[1..].strip_prefix('+').unwrap_or(&exp[1..]);
    let e_ok = {
        let d = e.strip_prefix('-').unwrap_or(e);
        !d.is_empty() && d.len() <= 3 && d.bytes().all(|b| b.is_ascii_digit())
    };
    if !e_ok {
        return Err(NumberError::NotANumber);
    }
    Decimal::from_scientific(&format!("{plain}e{e}")).map_err(|_| NumberError::OutOfRange)
}

/// A decimal as a JSON number: an integer when it has no fraction, else the nearest double.
pub(crate) fn decimal_to_json(d: Decimal) -> Result<Value, NumberError> {
    let d = d.normalize();
    if d.scale() == 0 {
        if let Some(i) = d.to_i64() {
            return Ok(Value::Number(Number::from(i)));
        }
    }
    // Mantissa and power of ten both exact in a double: one division rounds correctly.
    let mantissa = d.mantissa();
    let f: f64 = if mantissa.unsigned_abs() < (1u128 << 53) && d.scale() <= 22 {
        mantissa as f64 / 10f64.powi(d.scale() as i32)
    } else {
        d.to_string().parse().map_err(|_| NumberError::OutOfRange)?
    };
    Number::from_f64(f).map(Value::Number).ok_or(NumberError::OutOfRange)
}

/// A whole number as JSON.
pub(crate) fn integer_to_json(d: Decimal) -> Result<Value, NumberError> {
    let d = d.normalize();
    if d.scale() != 0 {
        return Err(NumberError::NotWhole);
    }
    d.to_i64()
        .map(|i| Value::Number(Number::from(i)))
        .ok_or(NumberError::OutOfRange)
}

/// 是/否, 1/0, Y/N, yes/no, true/false, T/F, 有/无, 对/错 (case-insensitive, full-width allowed).
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    let half = halfwidth(text);
    let t = trim(&half);
    match t {
        "是" | "有" | "对" | "√" => return Some(true),
        "否" | "无" | "错" | "×" => return Some(false),
        _ => {}
    }
    if t.eq_ignore_ascii_case("true")
        || t.eq_ignore_ascii_case("yes")
        || t.eq_ignore_ascii_case("y")
        || t.eq_ignore_ascii_case("t")
        || t == "1"
    {
        Some(true)
    } else if t.eq_ignore_ascii_case("false")
        || t.eq_ignore_ascii_case("no")
        || t.eq_ignore_ascii_case("n")
        || t.eq_ignore_ascii_case("f")
        || t == "0"
    {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The byte test finds a character to map exactly when one is there, whatever the
        /// text: near misses (U+FF00, U+FF5F, U+3001, other EF/E3 characters) included.
        #[test]
        fn fullwidth_is_found_by_bytes_exactly_when_a_character_to_map_is_there(
            text in proptest::collection::vec(
                prop_oneof![
                    Just('\u{FF00}'), Just('\u{FF01}'), Just('\u{FF3F}'), Just('\u{FF40}'), Just('\u{FF5E}'),
                    Just('\u{FF5F}'), Just('\u{3000}'), Just('\u{3001}'), Just('\u{3002}'), Just('\u{E000}'),
                    Just('\u{FEFF}'), Just('a'), Just('中'),
                    any::<char>(),
                ],
                0..12,
            ).prop_map(|chars| chars.into_iter().collect::<String>())
        ) {
            let by_chars = text.chars().any(|c| matches!(c, '\u{FF01}'..='\u{FF5E}' | '\u{3000}'));
            prop_assert_eq!(has_fullwidth(&text), by_chars);
            prop_assert_eq!(matches!(halfwidth(&text), Cow::Owned(_)), by_chars);
        }
    }

    fn amount(s: &str, unit: Unit) -> Option<String> {
        parse_amount(s, unit).ok().map(|d| d.normalize().to_string())
    }

    #[test]
    fn amounts_in_legacy_layouts() {
        assert_eq!(amount("1,234.50", Unit::Yuan).as_deref(), Some("1234.5"));
        assert_eq!(amount("１２３", Unit::Yuan).as_deref(), Some("123"));
        assert_eq!(amount("¥1,234.50元", Unit::Yuan).as_deref(), Some("1234.5"));
        assert_eq!(amount("0.2", Unit::WanYuan).as_deref(), Some("2000"));
        assert_eq!(amount("0.2万元", Unit::Yuan).as_deref(), Some("2000"));
        assert_eq!(amount("2000元", Unit::WanYuan).as_deref(), Some("2000"));
        assert_eq!(amount("150", Unit::Fen).as_deref(), Some("1.5"));
        assert_eq!(amount("5%", Unit::Yuan).as_deref(), Some("0.05"));
        assert_eq!(amount("12.5 ％", Unit::Yuan).as_deref(), Some("0.125"));
        assert_eq!(amount("5", Unit::Percent).as_deref(), Some("0.05"));
        assert_eq!(amount(".5", Unit::Yuan).as_deref(), Some("0.5"));
        assert_eq!(amount("1e3", Unit::Yuan).as_deref(), Some("1000"));
        for bad in [
            "", "abc", "1,23", "12,3456", "1.2.3", "--1", "1e", "一千", ".", "1,000,00",
        ] {
            assert!(parse_amount(bad, Unit::Yuan).is_err(), "{bad}");
        }
    }

    #[test]
    fn decimals_become_integers_or_doubles() {
        assert_eq!(
            decimal_to_json(Decimal::from_str("2000.000").unwrap()),
            Ok(serde_json::json!(2000))
        );
        assert_eq!(
            decimal_to_json(Decimal::from_str("1234.50").unwrap()),
            Ok(serde_json::json!(1234.5))
        );
        assert_eq!(
            integer_to_json(Decimal::from_str("1.5").unwrap()),
            Err(NumberError::NotWhole)
        );
    }

    #[test]
    fn a_15_digit_id_number_becomes_its_18_character_form_and_anything_else_only_cleaned() {
        // The worked example of GB 11643: 360426910101007 → 360426199101010071.
        assert_eq!(
            apply_step(Step::IdNumber18, Cow::Borrowed(" 360426 910101 007 ")),
            "360426199101010071"
        );
        assert_eq!(
            apply_step(Step::IdNumber18, Cow::Borrowed("36042619910101007x")),
            "36042619910101007X",
            "an 18-character number is only cleaned"
        );
        assert_eq!(
            apply_step(Step::IdNumber18, Cow::Borrowed("999999910101007")),
            "999999910101007",
            "a 15-digit number with an unknown region is left for validation to name"
        );
        let step: Step = serde_json::from_str("\"id_number_18\"").expect("step name");
        assert_eq!(step, Step::IdNumber18);
    }

    #[test]
    fn steps_borrow_when_nothing_changes() {
        assert!(matches!(
            apply_step(Step::Trim, Cow::Borrowed(" a ")),
            Cow::Borrowed("a")
        ));
        assert!(matches!(
            apply_step(Step::Halfwidth, Cow::Borrowed("abc")),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            apply_step(Step::NormaliseIdentifier, Cow::Borrowed("9136 0102-ma35")),
            "91360102MA35"
        );
        assert_eq!(
            apply_step(Step::CollapseSpaces, Cow::Borrowed(" a  b\u{3000}c ")),
            "a b c"
        );
        assert_eq!(apply_step(Step::RemoveSpaces, Cow::Borrowed("张 三\u{200B}")), "张三");
    }

    #[test]
    fn booleans() {
        for t in ["是", "1", "Y", "y", "true", "TRUE", "Yes", "１"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["否", "0", "N", "false", "no"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }
}

//! Normalisation of identifiers typed by people: whitespace, zero-width characters, hyphens,
//! full-width forms and lower case are removed or mapped before any standard is checked.
//!
//! Only layout is normalised. Characters that change the meaning of a code (a wrong check
//! character, a letter O for a digit 0) are left alone so that the validators reject them.

/// Full-width ASCII block (U+FF01..=U+FF5E) minus this offset is the half-width character.
const FULLWIDTH_OFFSET: u32 = 0xFEE0;

/// True for the hyphens and dashes that people put inside codes (`-`, `－`, U+2010..=U+2015, `−`).
fn is_hyphen(c: char) -> bool {
    matches!(c, '-' | '\u{FF0D}' | '\u{2010}'..='\u{2015}' | '\u{2212}')
}

/// True for zero-width characters copied in from web pages and word processors.
fn is_zero_width(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

/// The half-width form of a full-width ASCII character or the ideographic space; other characters unchanged.
fn halfwidth_char(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - FULLWIDTH_OFFSET).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// True when `input` is already normalised: printable ASCII without spaces, hyphens or lower case.
fn is_plain(input: &str) -> bool {
    input
        .bytes()
        .all(|b| (0x21..=0x7E).contains(&b) && b != b'-' && !b.is_ascii_lowercase())
}

/// Normalise an identifier before validation: remove all whitespace (incl. U+3000, U+00A0, tabs),
/// zero-width characters (U+200B..=U+200D, U+2060, U+FEFF) and hyphens (`-`, `－`, U+2010..=U+2015,
/// U+2212); map full-width ASCII (U+FF01..=U+FF5E) to half-width; upper-case ASCII letters.
///
/// Check characters are never repaired. Input that is already plain ASCII is copied once, unchanged.
pub fn normalise_identifier(input: &str) -> String {
    if is_plain(input) {
        return input.to_owned();
    }
    let mut out = String::with_capacity(input.len());
    if input.is_ascii() {
        for b in input.bytes() {
            if !b.is_ascii_whitespace() && b != b'-' && b != 0x0B {
                out.push(char::from(b.to_ascii_uppercase()));
            }
        }
        return out;
    }
    for c in input.chars() {
        if c.is_whitespace() || is_zero_width(c) || is_hyphen(c) {
            continue;
        }
        out.push(halfwidth_char(c).to_ascii_uppercase());
    }
    out
}

/// [`normalise_identifier`], borrowing `input` when it is already normalised.
pub fn normalise_identifier_cow(input: &str) -> std::borrow::Cow<'_, str> {
    if is_plain(input) {
        std::borrow::Cow::Borrowed(input)
    } else {
        std::borrow::Cow::Owned(normalise_identifier(input))
    }
}

/// Map full-width ASCII (U+FF01..=U+FF5E) and the ideographic space U+3000 to their half-width forms;
/// everything else is kept. Used by the mapping engine for free text where case and spaces matter.
pub fn to_halfwidth(s: &str) -> String {
    if s.is_ascii() {
        return s.to_owned();
    }
    s.chars().map(halfwidth_char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_input_is_returned_unchanged() {
        assert_eq!(normalise_identifier("91110000600037341L"), "91110000600037341L");
        assert!(matches!(
            normalise_identifier_cow("91110000600037341L"),
            std::borrow::Cow::Borrowed("91110000600037341L")
        ));
        assert_eq!(normalise_identifier_cow(" 9111-0000l"), "91110000L");
    }

    #[test]
    fn ascii_layout_is_removed() {
        assert_eq!(normalise_identifier(" 9111 0000-6000\t3734 1l\n"), "91110000600037341L");
        assert_eq!(normalise_identifier("a\u{0B}b\u{0C}c"), "ABC");
    }

    #[test]
    fn unicode_layout_and_fullwidth_are_normalised() {
        let input = "\u{FEFF}９１１１\u{3000}0000\u{00A0}6000\u{200B}3734－1ｌ\u{2014}";
        assert_eq!(normalise_identifier(input), "91110000600037341L");
    }

    #[test]
    fn other_characters_are_kept_for_the_validator_to_reject() {
        assert_eq!(normalise_identifier("91号"), "91号");
        assert_eq!(normalise_identifier("o0"), "O0");
    }

    #[test]
    fn to_halfwidth_keeps_case_and_maps_ideographic_space() {
        assert_eq!(to_halfwidth("Ａｂ\u{3000}１２，中"), "Ab 12,中");
        assert_eq!(to_halfwidth("plain"), "plain");
    }
}

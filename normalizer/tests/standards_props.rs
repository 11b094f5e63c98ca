//! Property tests for `normalizer::standards`: valid codes built from random parts validate, and
//! every single-character substitution and adjacent transposition is rejected (credit codes, ID
//! numbers) or rejected exactly when ISO/IEC 7064 MOD 37,36 can detect it (case codes).
//!
//! Check characters are computed here by independent reference implementations of the algorithms
//! in credit-code.md and the case-code rule, and compared with the library's helpers.
//!
//! MOD 37,36 and adjacent transpositions: with running state `P` before a pair of neighbours whose
//! values are consecutive mod 36 (`lo`, `lo + 1`), both orders end in the same state whenever
//! `(P + lo) mod 36 == 18` (the first character then drives the state to 36 ≡ -1 mod 37 or to 1,
//! and both paths meet at `2·(lo + 1)`). Verified exhaustively over all 36 states and 36×35
//! ordered pairs: these 36 unordered pairs per state are the *only* undetected adjacent
//! transpositions, and every single substitution is detected. For a case code this affects digit
//! pairs from positions 6-7 onwards (positions 1-6 are pinned by the prefix and `20`) and the pair
//! 19-20 (last sequence digit and check character) when the state before position 19 is 18 and the
//! two characters are `0` and `1`.

use chrono::{Duration, NaiveDate};
use normalizer::standards::{
    case_code_check_char, id_check_char, normalise_identifier, org_code_check_char, uscc_check_char, CaseCode,
    CreditCode, RegionTable, ResidentId,
};
use normalizer::CaseType;
use proptest::prelude::*;

const USCC_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const ALNUM: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ID_ALPHABET: &str = "0123456789X";

/// (authority, type) pairs of GB 32100 §1.1, written out independently of the library.
const AUTHORITY_TYPES: &[(char, &str)] = &[
    ('1', "1239"),
    ('2', "19"),
    ('3', "123459"),
    ('4', "19"),
    ('5', "1239"),
    ('6', "129"),
    ('7', "129"),
    ('8', "19"),
    ('9', "123"),
    ('A', "19"),
    ('N', "1239"),
    ('Y', "1"),
];

// ----------------------------------------------------------------------------------------------
// Reference implementations
// ----------------------------------------------------------------------------------------------

fn ref_uscc_check(first17: &str) -> char {
    let sum: usize = first17
        .chars()
        .enumerate()
        .map(|(i, c)| USCC_ALPHABET.find(c).expect("alphabet") * 3usize.pow(i as u32) % 31)
        .sum();
    USCC_ALPHABET.as_bytes()[(31 - sum % 31) % 31] as char
}

fn ref_org_check(first8: &str) -> char {
    const W: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first8
        .chars()
        .zip(W)
        .map(|(c, w)| c.to_digit(36).expect("alnum") * w)
        .sum();
    match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        d => char::from_digit(d, 10).expect("digit"),
    }
}

fn ref_id_check(first17: &str) -> char {
    let sum: u32 = first17
        .chars()
        .enumerate()
        .map(|(i, c)| c.to_digit(10).expect("digit") * (1u32 << (17 - i)) % 11)
        .sum();
    b"10X98765432"[(sum % 11) as usize] as char
}

/// MOD 37,36 running state after `chars` (starting from 36).
fn mod37_36_state(chars: &str) -> u32 {
    chars.chars().fold(36, |p, c| {
        let s = (p + c.to_digit(36).expect("alnum")) % 36;
        let s = if s == 0 { 36 } else { s };
        2 * s % 37
    })
}

fn ref_case_check(body19: &str) -> char {
    let p = mod37_36_state(body19);
    ALNUM.as_bytes()[((37 - p) % 36) as usize] as char
}

// ----------------------------------------------------------------------------------------------
// Helpers
// ----------------------------------------------------------------------------------------------

/// Every code ever observed in GB/T 2260 (current and historical), sorted and distinct.
fn all_region_codes() -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = RegionTable::embedded()
        .all_historical()
        .iter()
        .map(|h| h.code)
        .collect();
    codes.dedup();
    codes
}

/// (0-based position, mutated code) for every replacement of one character by another of `alphabet`.
fn substitutions(code: &str, alphabet: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    for i in 0..chars.len() {
        for c in alphabet.chars().filter(|&c| c != chars[i]) {
            let mut m = chars.clone();
            m[i] = c;
            out.push((i, m.into_iter().collect()));
        }
    }
    out
}

/// (0-based index of the first of the pair, transposed code) for every pair of distinct neighbours.
fn transpositions(code: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = code.chars().collect();
    (0..chars.len() - 1)
        .filter(|&i| chars[i] != chars[i + 1])
        .map(|i| {
            let mut m = chars.clone();
            m.swap(i, i + 1);
            (i, m.into_iter().collect())
        })
        .collect()
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).expect("date")
}

// ----------------------------------------------------------------------------------------------
// Strategies
// ----------------------------------------------------------------------------------------------

fn uscc_alphabet_char() -> impl Strategy<Value = char> {
    prop::sample::select(USCC_ALPHABET.chars().collect::<Vec<_>>())
}

/// A valid USCC: valid authority/type, existing region, valid embedded org code, computed check char.
fn valid_uscc() -> impl Strategy<Value = String> {
    let auth_type = prop::sample::select(AUTHORITY_TYPES.to_vec())
        .prop_flat_map(|(a, types)| (Just(a), prop::sample::select(types.chars().collect::<Vec<_>>())));
    (
        auth_type,
        prop::sample::select(all_region_codes()),
        prop::collection::vec(uscc_alphabet_char(), 8),
    )
        .prop_map(|((a, t), region, org)| {
            let org: String = org.into_iter().collect();
            let first17 = format!("{a}{t}{region}{org}{}", ref_org_check(&org));
            let check = ref_uscc_check(&first17);
            format!("{first17}{check}")
        })
}

/// A valid ID number: existing region, birth date 1900-01-01..=2025-12-31, any sequence, computed check char.
fn valid_id() -> impl Strategy<Value = String> {
    let start = NaiveDate::from_ymd_opt(1900, 1, 1).expect("date");
    let days = (NaiveDate::from_ymd_opt(2025, 12, 31).expect("date") - start).num_days();
    (prop::sample::select(all_region_codes()), 0..=days, 0u32..1000).prop_map(move |(region, d, seq)| {
        let birth = start + Duration::days(d);
        let first17 = format!("{region}{}{seq:03}", birth.format("%Y%m%d"));
        let check = ref_id_check(&first17);
        format!("{first17}{check}")
    })
}

fn case_type() -> impl Strategy<Value = CaseType> {
    prop::sample::select(CaseType::ALL.to_vec())
}

fn case_parts() -> impl Strategy<Value = (CaseType, u16, String, u32)> {
    (case_type(), 2000u16..=2099, "[0-9]{6}", 1u32..=9_999_999)
}

/// Random layout noise that normalisation must remove: spaces of several kinds, hyphens, zero-width.
fn noise() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "", "", " ", "\u{3000}", "\u{00A0}", "\t", "-", "－", "\u{2014}", "\u{200B}", "\u{FEFF}",
    ])
}

/// `code` with noise between characters, some characters lower-cased or full-width.
fn messy(code: String) -> impl Strategy<Value = (String, String)> {
    let n = code.chars().count();
    (prop::collection::vec((noise(), 0u8..3), n), noise()).prop_map(move |(parts, tail)| {
        let mut out = String::new();
        for (c, (sep, style)) in code.chars().zip(parts) {
            out.push_str(sep);
            match style {
                1 => out.push(c.to_ascii_lowercase()),
                2 => out.push(char::from_u32(c as u32 + 0xFEE0).expect("full-width")),
                _ => out.push(c),
            }
        }
        out.push_str(tail);
        (code.clone(), out)
    })
}

// ----------------------------------------------------------------------------------------------
// Properties
// ----------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn uscc_built_from_valid_parts_validates(code in valid_uscc()) {
        prop_assert_eq!(uscc_check_char(&code[..17]), code.chars().nth(17));
        prop_assert_eq!(org_code_check_char(&code[8..16]), code.chars().nth(16));
        let parsed = CreditCode::parse(&code);
        prop_assert!(parsed.is_ok(), "{}: {:?}", code, parsed);
    }

    #[test]
    fn uscc_every_single_substitution_is_rejected(code in valid_uscc()) {
        for (i, m) in substitutions(&code, ALNUM) {
            prop_assert!(CreditCode::parse(&m).is_err(), "substitution at position {} accepted: {} -> {}", i + 1, code, m);
        }
    }

    #[test]
    fn uscc_every_adjacent_transposition_is_rejected(code in valid_uscc()) {
        for (i, m) in transpositions(&code) {
            prop_assert!(CreditCode::parse(&m).is_err(), "transposition at {}-{} accepted: {} -> {}", i + 1, i + 2, code, m);
        }
    }

    #[test]
    fn uscc_messy_layout_normalises_to_the_same_code((code, input) in valid_uscc().prop_flat_map(messy)) {
        let parsed = CreditCode::parse(&input).map(|c| c.as_str().to_string());
        prop_assert_eq!(parsed, Ok(code));
    }

    #[test]
    fn id_built_from_valid_parts_validates(code in valid_id()) {
        prop_assert_eq!(id_check_char(&code[..17]), code.chars().nth(17));
        let parsed = ResidentId::parse_as_of(&code, today());
        prop_assert!(parsed.is_ok(), "{}: {:?}", code, parsed);
    }

    #[test]
    fn id_every_single_substitution_is_rejected(code in valid_id()) {
        for (i, m) in substitutions(&code, ID_ALPHABET) {
            prop_assert!(ResidentId::parse_as_of(&m, today()).is_err(), "substitution at position {} accepted: {} -> {}", i + 1, code, m);
        }
    }

    #[test]
    fn id_every_adjacent_transposition_is_rejected(code in valid_id()) {
        for (i, m) in transpositions(&code) {
            prop_assert!(ResidentId::parse_as_of(&m, today()).is_err(), "transposition at {}-{} accepted: {} -> {}", i + 1, i + 2, code, m);
        }
    }

    #[test]
    fn id_messy_layout_normalises_to_the_same_number((code, input) in valid_id().prop_flat_map(messy)) {
        let parsed = ResidentId::parse_as_of(&input, today()).map(|c| c.as_str().to_string());
        prop_assert_eq!(parsed, Ok(code));
    }

    #[test]
    fn case_code_format_parse_round_trips((t, year, region, seq) in case_parts()) {
        let code = CaseCode::new(t, year, &region, seq).expect("parts in range");
        let text = code.to_string();
        prop_assert_eq!(text.len(), 20);
        prop_assert_eq!(case_code_check_char(&text[..19]), Some(ref_case_check(&text[..19])));
        prop_assert_eq!(text.chars().last(), Some(ref_case_check(&text[..19])));
        prop_assert_eq!(&text[..2], t.code_prefix());
        let parsed = CaseCode::parse(&text);
        prop_assert_eq!(parsed.as_ref(), Ok(&code));
        let parsed = parsed.expect("checked");
        prop_assert_eq!((parsed.case_type(), parsed.year(), parsed.region(), parsed.sequence()), (t, year, region.as_str(), seq));
    }

    #[test]
    fn case_code_every_single_substitution_is_rejected((t, year, region, seq) in case_parts()) {
        let code = CaseCode::new(t, year, &region, seq).expect("parts in range").to_string();
        for (i, m) in substitutions(&code, ALNUM) {
            prop_assert!(CaseCode::parse(&m).is_err(), "substitution at position {} accepted: {} -> {}", i + 1, code, m);
        }
    }

    /// Exactly the transpositions that MOD 37,36 cannot see are accepted (unless the swap empties
    /// the sequence number); all others are rejected.
    #[test]
    fn case_code_adjacent_transposition_is_rejected_unless_mod37_36_blind_spot((t, year, region, seq) in case_parts()) {
        let code = CaseCode::new(t, year, &region, seq).expect("parts in range").to_string();
        for (i, m) in transpositions(&code) {
            let x = code.chars().nth(i).and_then(|c| c.to_digit(36)).expect("alnum");
            let y = code.chars().nth(i + 1).and_then(|c| c.to_digit(36)).expect("alnum");
            let lo = if (x + 1) % 36 == y { Some(x) } else if (y + 1) % 36 == x { Some(y) } else { None };
            let state = mod37_36_state(&code[..i]);
            let blind_spot = lo.is_some_and(|lo| (state + lo) % 36 == 18);
            match CaseCode::parse(&m) {
                Ok(_) => prop_assert!(blind_spot, "accepted outside the blind spot at {}-{}: {} -> {}", i + 1, i + 2, code, m),
                Err(e) => prop_assert!(
                    !blind_spot || (e.rule == "case_code.sequence" && &m[12..19] == "0000000"),
                    "blind-spot transposition at {}-{} rejected by {}: {} -> {}", i + 1, i + 2, e.rule, code, m
                ),
            }
        }
    }

    #[test]
    fn case_code_strict_parse_accepts_existing_regions(t in case_type(), year in 2000u16..=2099, region in prop::sample::select(all_region_codes()), seq in 1u32..=9_999_999) {
        let code = CaseCode::new(t, year, region, seq).expect("parts in range");
        prop_assert_eq!(CaseCode::parse_strict(&code.to_string()), Ok(code));
    }

    #[test]
    fn normalise_identifier_is_idempotent(s in "\\PC{0,40}") {
        let once = normalise_identifier(&s);
        prop_assert_eq!(normalise_identifier(&once), once);
    }
}

/// The blind-spot characterisation used above, checked exhaustively against the algorithm itself:
/// for every state and every ordered pair of distinct characters, the two orders collide exactly when
/// the values are consecutive mod 36 and `(state + lo) mod 36 == 18`; substitutions never collide.
#[test]
fn mod37_36_blind_spots_are_exactly_consecutive_pairs_in_state_18() {
    let step = |p: u32, v: u32| {
        let s = (p + v) % 36;
        2 * (if s == 0 { 36 } else { s }) % 37
    };
    let mut collisions = 0;
    for p in 1..=36u32 {
        for x in 0..36u32 {
            for y in 0..36u32 {
                if x == y {
                    continue;
                }
                assert_ne!(step(p, x), step(p, y), "substitution collision p={p} {x}/{y}");
                let collide = step(step(p, x), y) == step(step(p, y), x);
                let lo = if (x + 1) % 36 == y {
                    Some(x)
                } else if (y + 1) % 36 == x {
                    Some(y)
                } else {
                    None
                };
                let predicted = lo.is_some_and(|lo| (p + lo) % 36 == 18);
                assert_eq!(collide, predicted, "p={p} x={x} y={y}");
                collisions += u32::from(collide);
            }
        }
    }
    assert_eq!(collisions, 72, "36 unordered pairs, one per state");
}

//! Table tests for `normalizer::standards`: every worked example of the reference files
//! (credit-code.md, region-codes.md, working-days.md) plus the unified case code.

use chrono::NaiveDate;
use normalizer::standards::region::RegionDataError;
use normalizer::standards::working_days::HolidayDataError;
use normalizer::standards::{
    case_code_check_char, from_legacy15, id_check_char, normalise_identifier, org_code_check_char, uscc_check_char,
    validate_region_code, CaseCode, CreditCode, HolidayCalendar, OrgCode, OutOfCalendar, RegionLevel, RegionTable,
    ResidentId, StandardError,
};
use normalizer::{CaseType, Severity};

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("test date")
}

fn uscc_err(input: &str) -> StandardError {
    CreditCode::parse(input).expect_err(input)
}

// ---------------------------------------------------------------------------------------------
// Unified social credit code (GB 32100) and organisation code (GB 11714)
// ---------------------------------------------------------------------------------------------

#[test]
fn credit_code_worked_examples_are_valid_and_decompose() {
    // (code, authority, type, region, org code) from credit-code.md §1.4
    let cases = [
        ("91110000600037341L", '9', '1', "110000", "600037341"),
        ("121200004013590816", '1', '2', "120000", "401359081"),
        ("9144030071526726XG", '9', '1', "440300", "71526726X"),
        ("92340602MA2PBMEM24", '9', '2', "340602", "MA2PBMEM2"),
        ("113600000145000063", '1', '1', "360000", "014500006"),
    ];
    for (input, authority, org_type, region, org) in cases {
        let code = CreditCode::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(code.as_str(), input);
        assert_eq!(code.registration_authority(), authority, "{input}");
        assert_eq!(code.org_type(), org_type, "{input}");
        assert_eq!(code.region_code(), region, "{input}");
        assert_eq!(code.org_code(), org, "{input}");
        assert_eq!(code.to_string(), input);
    }
}

#[test]
fn credit_codes_with_authority_a_n_y_rejected_by_stdnum_are_accepted() {
    for input in ["N2360000014500006A", "Y13600000145000065", "A1360000014500006R"] {
        let code = CreditCode::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(code.registration_authority(), input.chars().next().unwrap_or('?'));
    }
}

#[test]
fn credit_code_with_wrong_embedded_org_code_check_is_rejected_although_mod31_is_right() {
    // stdnum accepts it; the org code 600037342 should end in 1.
    assert_eq!(uscc_check_char("91110000600037342"), Some('P'));
    let e = uscc_err("91110000600037342P");
    assert_eq!(e.rule, "uscc.org_code_check");
    assert_eq!(e.position, Some(17));
    assert!(e.message_zh.contains("应为 1，实为 2"), "{e}");
    assert!(e.message_en.contains("should be 1, found 2"), "{e}");
}

#[test]
fn credit_code_with_wrong_check_char_names_expected_char() {
    let e = uscc_err("91110000600037341N");
    assert_eq!(e.rule, "uscc.check_char");
    assert_eq!(e.position, Some(18));
    assert!(e.message_zh.contains("第18位校验码应为 L，实为 N"), "{e}");
    assert!(
        e.message_en
            .contains("check character at position 18 should be L, found N"),
        "{e}"
    );
    assert!(
        e.message_en.contains("91110000600037341N"),
        "message names the value: {e}"
    );
    assert!(e.to_string().starts_with("uscc.check_char: "));
}

#[test]
fn credit_code_with_letter_o_names_position_and_char() {
    let e = uscc_err("91110000600O37341L");
    assert_eq!(e.rule, "uscc.charset");
    assert_eq!(e.position, Some(12));
    assert!(e.message_en.contains("'O' at position 12"), "{e}");
    assert!(e.message_zh.contains("第12位字符“O”"), "{e}");
}

#[test]
fn credit_code_with_excluded_letters_is_rejected_at_first_bad_char() {
    let e = uscc_err("9111000060003IOZSV");
    assert_eq!((e.rule, e.position), ("uscc.charset", Some(14)));
    assert!(e.message_en.contains("I, O, Z, S and V"), "{e}");
}

#[test]
fn credit_code_with_17_chars_is_rejected_for_length() {
    let e = uscc_err("91110000600037341");
    assert_eq!((e.rule, e.position), ("uscc.length", None));
    assert!(e.message_en.contains("must have 18 characters, found 17"), "{e}");
}

#[test]
fn credit_code_with_unknown_authority_is_rejected() {
    // Valid MOD 31 over a 'B' authority: only the table can reject it.
    let body = "B1360000014500006";
    let code = format!("{body}{}", uscc_check_char(body).expect("alphabet"));
    let e = uscc_err(&code);
    assert_eq!((e.rule, e.position), ("uscc.authority", Some(1)));
}

#[test]
fn credit_code_with_type_not_allowed_for_authority_is_rejected() {
    // 9 工商 allows 1, 2, 3 only.
    let body = "94110000600037341";
    let code = format!("{body}{}", uscc_check_char(body).expect("alphabet"));
    let e = uscc_err(&code);
    assert_eq!((e.rule, e.position), ("uscc.org_type", Some(2)));
    assert!(e.message_en.contains("expected one of 1, 2, 3"), "{e}");
    // Y allows only 1.
    let body = "Y2360000014500006";
    let code = format!("{body}{}", uscc_check_char(body).expect("alphabet"));
    assert_eq!(uscc_err(&code).rule, "uscc.org_type");
}

#[test]
fn credit_code_with_nonexistent_region_is_rejected() {
    let body = "91990000600037341";
    let code = format!("{body}{}", uscc_check_char(body).expect("alphabet"));
    let e = uscc_err(&code);
    assert_eq!((e.rule, e.position), ("uscc.region", Some(3)));
    assert!(e.message_en.contains("990000"), "{e}");
}

#[test]
fn credit_code_with_revoked_region_is_accepted() {
    // 361121 上饶县, revoked 2019: a USCC keeps the code of its issuing authority for life.
    let body = format!("91361121{}", "01450000");
    let first17 = format!("{body}{}", org_code_check_char("01450000").expect("body"));
    let code = format!("{first17}{}", uscc_check_char(&first17).expect("alphabet"));
    assert_eq!(
        CreditCode::parse(&code).map(|c| c.region_code().to_string()),
        Ok("361121".to_string())
    );
}

#[test]
fn credit_code_with_national_registration_region_100000_is_accepted() {
    // Published code of a bank registered at national level; 100000 is not a GB/T 2260 unit.
    let code = CreditCode::parse("91100000100003962T").expect("national-level code");
    assert_eq!(code.region_code(), "100000");
}

#[test]
fn credit_codes_from_stdnum_test_corpus_are_valid() {
    // A sample of the published codes in python-stdnum tests/test_cn_uscc.doctest (all pass our stricter checks).
    for input in [
        "91110000710926094P",
        "91120224064012553U",
        "9115220107837757XE",
        "91310115MA1K3BTP2B",
        "91340600MA2PBM9HXD",
        "91620105L015101280",
        "9162010555628132X1",
        "92340621MA2PBN0KXX",
        "91442000696462712R",
    ] {
        assert!(
            CreditCode::parse(input).is_ok(),
            "{input}: {:?}",
            CreditCode::parse(input)
        );
    }
}

#[test]
fn credit_code_lower_case_inner_spaces_and_full_width_are_normalised_and_accepted() {
    for input in [
        "91110000600037341l",
        "9111 0000 6000 3734 1L",
        "91-110000-600037341L",
        " 91110000600037341L\t",
        "９１１１００００６０００３７３４１Ｌ",
        "９１１１\u{3000}0000\u{00A0}6000\u{200B}37341ｌ",
    ] {
        let code = CreditCode::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(code.as_str(), "91110000600037341L", "{input:?}");
    }
}

#[test]
fn credit_code_normalisation_never_repairs_check_chars() {
    assert_eq!(normalise_identifier("91110000600037341n"), "91110000600037341N");
    assert_eq!(uscc_err("91110000600037341n").rule, "uscc.check_char");
}

#[test]
fn credit_code_error_becomes_error_violation_with_rule_and_value() {
    let v = uscc_err("91110000600037341N").to_violation("/agency/credit_code", "91110000600037341N");
    assert_eq!(v.pointer, "/agency/credit_code");
    assert_eq!(v.rule, "uscc.check_char");
    assert_eq!(v.severity, Severity::Error);
    assert_eq!(v.value.as_deref(), Some("91110000600037341N"));
    assert!(v.message_en.contains("should be L"));
}

#[test]
fn credit_code_message_cuts_very_long_values() {
    let e = uscc_err(&"9".repeat(5000));
    assert_eq!(e.rule, "uscc.length");
    assert!(e.message_en.chars().count() < 200, "{e}");
}

#[test]
fn check_char_helpers_reproduce_worked_examples() {
    assert_eq!(uscc_check_char("91110000600037341"), Some('L'));
    assert_eq!(uscc_check_char("12120000401359081"), Some('6'));
    assert_eq!(uscc_check_char("9144030071526726X"), Some('G'));
    assert_eq!(uscc_check_char("92340602MA2PBMEM2"), Some('4'));
    assert_eq!(uscc_check_char("11360000014500006"), Some('3'));
    assert_eq!(uscc_check_char("9111000060003734"), None);
    assert_eq!(uscc_check_char("9111000060003734O"), None);
    assert_eq!(org_code_check_char("60003734"), Some('1'));
    assert_eq!(org_code_check_char("71526726"), Some('X'));
    assert_eq!(org_code_check_char("MA2PBMEM"), Some('2'));
    assert_eq!(org_code_check_char("01450000"), Some('6'));
    assert_eq!(org_code_check_char("6000373"), None);
}

#[test]
fn org_code_check_char_eleven_maps_to_zero() {
    // 11 - (sum mod 11) == 11 when sum ≡ 0 (mod 11): "00000000" has sum 0.
    assert_eq!(org_code_check_char("00000000"), Some('0'));
}

#[test]
fn org_code_with_hyphen_is_accepted_and_formatted() {
    let code = OrgCode::parse("60003734-1").expect("valid org code");
    assert_eq!(code.as_str(), "600037341");
    assert_eq!(code.formatted(), "60003734-1");
    assert!(OrgCode::parse("71526726-x").is_ok());
}

#[test]
fn org_code_with_wrong_check_char_names_expected_char() {
    let e = OrgCode::parse("60003734-2").expect_err("wrong check");
    assert_eq!((e.rule, e.position), ("org_code.check_char", Some(9)));
    assert!(e.message_en.contains("should be 1, found 2"), "{e}");
    assert_eq!(OrgCode::parse("6000373-1").map_err(|e| e.rule), Err("org_code.length"));
    assert_eq!(OrgCode::parse("6000373?1").map_err(|e| e.rule), Err("org_code.charset"));
    assert_eq!(OrgCode::parse("60003734A").map_err(|e| e.rule), Err("org_code.charset"));
}

// ---------------------------------------------------------------------------------------------
// Resident identity number (GB 11643)
// ---------------------------------------------------------------------------------------------

#[test]
fn id_number_worked_examples_are_valid() {
    let id = ResidentId::parse("360426199101010071").expect("valid");
    assert_eq!(id.birth_date(), date(1991, 1, 1));
    assert_eq!(id.region_code(), "360426");
    assert!(id.is_male(), "sequence 007 is odd");

    let id = ResidentId::parse("44011320141005001x").expect("lower-case x accepted");
    assert_eq!(id.as_str(), "44011320141005001X");
    assert_eq!(id.birth_date(), date(2014, 10, 5));
    assert!(id.is_male());
    assert_eq!(id_check_char("36042619910101007"), Some('1'));
    assert_eq!(id_check_char("44011320141005001"), Some('X'));
}

#[test]
fn id_number_with_wrong_check_char_names_expected_char() {
    let e = ResidentId::parse("36042619910102009X").expect_err("checksum");
    assert_eq!((e.rule, e.position), ("id_number.check_char", Some(18)));
    let expected = id_check_char("36042619910102009").expect("digits");
    assert!(e.message_en.contains(&format!("should be {expected}, found X")), "{e}");
    assert!(
        e.message_zh.contains(&format!("第18位校验码应为 {expected}，实为 X")),
        "{e}"
    );
}

#[test]
fn id_number_with_month_13_is_rejected_as_birth_date() {
    let e = ResidentId::parse("360426199113010079").expect_err("month 13");
    assert_eq!((e.rule, e.position), ("id_number.birth_date", Some(7)));
    assert!(e.message_en.contains("19911301"), "{e}");
}

#[test]
fn id_number_with_letter_is_rejected_as_charset() {
    let e = ResidentId::parse("T60426199101010078").expect_err("letter");
    assert_eq!((e.rule, e.position), ("id_number.charset", Some(1)));
}

#[test]
fn id_number_with_unknown_area_code_is_rejected() {
    let e = ResidentId::parse("990426199112010074").expect_err("area 990426");
    assert_eq!((e.rule, e.position), ("id_number.region", Some(1)));
}

#[test]
fn id_number_with_15_digits_says_it_must_be_converted() {
    let e = ResidentId::parse("360426910101007").expect_err("15 digits");
    assert_eq!(e.rule, "id_number.length");
    assert!(e.message_en.contains("15-digit numbers must be converted"), "{e}");
    assert!(e.message_zh.contains("须先转换为18位"), "{e}");
    assert!(
        e.message_en.contains("id_number_18"),
        "the message names the mapping step that converts: {e}"
    );
}

#[test]
fn id_number_legacy15_is_converted_by_inserting_19_and_check_char() {
    let id = from_legacy15("360426910101007").expect("convertible");
    assert_eq!(id.as_str(), "360426199101010071");
    assert_eq!(ResidentId::from_legacy15("360426 910101 007"), Ok(id));
    assert_eq!(
        from_legacy15("360426911301007").map_err(|e| e.rule),
        Err("id_number.birth_date")
    );
    assert_eq!(
        from_legacy15("36042691010100").map_err(|e| e.rule),
        Err("id_number.length")
    );
}

#[test]
fn id_number_with_revoked_area_code_is_accepted() {
    // 362101 (赣州地区 era) is revoked; people born there before 1998 keep the code.
    let body = "36210119900101002";
    let code = format!("{body}{}", id_check_char(body).expect("digits"));
    let id = ResidentId::parse(&code).expect("historical area code");
    assert!(!id.is_male(), "sequence 002 is even");
}

#[test]
fn id_number_with_future_or_pre_1900_birth_date_is_rejected() {
    let today = date(2026, 6, 1);
    let future = "36042620260602001";
    let future = format!("{future}{}", id_check_char(future).expect("digits"));
    let e = ResidentId::parse_as_of(&future, today).expect_err("future");
    assert_eq!(e.rule, "id_number.birth_date");
    assert!(e.message_en.contains("after today"), "{e}");
    assert!(ResidentId::parse_as_of(&future, date(2026, 6, 2)).is_ok());

    let old = "36042618991231001";
    let old = format!("{old}{}", id_check_char(old).expect("digits"));
    assert_eq!(
        ResidentId::parse_as_of(&old, today).map_err(|e| e.rule),
        Err("id_number.birth_date")
    );
}

#[test]
fn id_number_with_february_29_in_non_leap_year_is_rejected() {
    let body = "36042619990229001";
    let code = format!("{body}{}", id_check_char(body).expect("digits"));
    assert_eq!(
        ResidentId::parse(&code).map_err(|e| e.rule),
        Err("id_number.birth_date")
    );
    let body = "36042620000229001";
    let code = format!("{body}{}", id_check_char(body).expect("digits"));
    assert!(ResidentId::parse(&code).is_ok(), "2000 is a leap year");
}

// ---------------------------------------------------------------------------------------------
// GB/T 2260 region codes
// ---------------------------------------------------------------------------------------------

#[test]
fn region_table_has_the_documented_row_counts() {
    let t = RegionTable::embedded();
    assert_eq!(t.all_current().len(), 3214);
    assert_eq!(t.all_historical().len(), 7004);
    let count = |level| t.all_current().iter().filter(|r| r.level == level).count();
    assert_eq!(count(RegionLevel::Province), 34);
    assert_eq!(count(RegionLevel::City), 333);
    assert_eq!(count(RegionLevel::County), 2847);
    let jiangxi = t.all_current().iter().filter(|r| r.code.starts_with("36")).count();
    assert_eq!(jiangxi, 112);
    let jiangxi_hist = t.all_historical().iter().filter(|r| r.code.starts_with("36")).count();
    assert_eq!(jiangxi_hist, 239);
}

#[test]
fn region_360102_is_within_360100_within_360000() {
    let t = RegionTable::embedded();
    let donghu = t.current("360102").expect("东湖区");
    assert_eq!(donghu.name, "东湖区");
    assert_eq!(donghu.level, RegionLevel::County);
    assert_eq!(donghu.parent, Some("360100"));
    assert_eq!(t.city_of("360102").map(|r| r.name), Some("南昌市"));
    assert_eq!(t.province_of("360102").map(|r| r.name), Some("江西省"));
    assert!(t.is_within("360102", "360100"));
    assert!(t.is_within("360100", "360000"));
    assert!(t.is_within("360102", "360000"));
    assert!(t.is_within("360102", "360102"));
    assert!(!t.is_within("360102", "360200"));
    assert!(!t.is_within("360000", "360100"));
    assert!(!t.is_within("360102", "110000"));
}

#[test]
fn region_city_of_is_none_for_provinces_and_direct_counties() {
    let t = RegionTable::embedded();
    assert!(t.city_of("360000").is_none());
    assert!(t.city_of("110101").is_none(), "东城区 is directly under 北京市");
    assert!(t.city_of("429004").is_none(), "仙桃市 is directly under 湖北省");
    assert_eq!(t.city_of("360100").map(|r| r.code), Some("360100"));
    assert_eq!(t.province_of("429004").map(|r| r.code), Some("420000"));
}

#[test]
fn region_361121_shangrao_county_exists_historically_but_is_revoked() {
    let t = RegionTable::embedded();
    assert!(t.exists_ever("361121"));
    assert!(!t.is_current("361121"));
    let history = t.historical("361121");
    assert!(
        history
            .iter()
            .any(|h| h.name == "上饶县" && h.valid_to_year == Some(2019)),
        "{history:?}"
    );
    assert!(t.is_within("361121", "361100"), "revoked codes are placed by prefix");
    assert_eq!(t.city_of("361121").map(|r| r.name), Some("上饶市"));

    let e = validate_region_code("361121", true).expect_err("revoked");
    assert_eq!(e.rule, "region.revoked");
    assert!(e.message_zh.contains("上饶县") && e.message_zh.contains("2019"), "{e}");
    assert!(e.message_en.contains("last seen in 2019"), "{e}");
    assert_eq!(validate_region_code("361121", false), Ok("361121"));
}

#[test]
fn region_362100_ganzhou_prefecture_is_historical() {
    let t = RegionTable::embedded();
    assert!(t.exists_ever("362100"));
    assert!(!t.is_current("362100"));
    let history = t.historical("362100");
    assert!(
        history
            .iter()
            .any(|h| h.name == "赣州地区" && h.level == RegionLevel::City),
        "{history:?}"
    );
    assert!(t.city_of("362101").is_none(), "the prefecture is not current");
    assert_eq!(t.province_of("362101").map(|r| r.code), Some("360000"));
}

#[test]
fn region_reused_code_keeps_all_names_in_order() {
    // 362302 = 鹰潭市 1980-1982, later 德兴市 1990-1999 (region-codes.md §1).
    let names: Vec<_> = RegionTable::embedded()
        .historical("362302")
        .iter()
        .map(|h| h.name)
        .collect();
    assert!(names.starts_with(&["鹰潭市"]) && names.contains(&"德兴市"), "{names:?}");
}

#[test]
fn region_jiangxi_codes_revoked_since_2015_are_known_historically() {
    let t = RegionTable::embedded();
    for (code, name, last) in [
        ("360122", "新建县", 2015),
        ("361122", "广丰县", 2015),
        ("360427", "星子县", 2016),
        ("361029", "东乡县", 2016),
        ("360721", "赣县", 2016),
        ("360421", "九江县", 2017),
        ("360622", "余江县", 2018),
        ("360105", "湾里区", 2019),
        ("360727", "龙南县", 2019),
        ("361121", "上饶县", 2019),
    ] {
        assert!(!t.is_current(code), "{code}");
        let h = t.historical(code);
        assert!(
            h.iter().any(|h| h.name == name && h.valid_to_year == Some(last)),
            "{code}: {h:?}"
        );
    }
    // 360402 庐山区 renamed 濂溪区: the code is current.
    assert_eq!(t.current("360402").map(|r| r.name), Some("濂溪区"));
}

#[test]
fn region_validation_rejects_bad_format_and_unknown_codes() {
    let e = validate_region_code("36010", true).expect_err("5 digits");
    assert_eq!((e.rule, e.position), ("region.format", None));
    let e = validate_region_code("3601O2", true).expect_err("letter O");
    assert_eq!((e.rule, e.position), ("region.format", Some(5)));
    let e = validate_region_code("990000", false).expect_err("unknown");
    assert_eq!(e.rule, "region.unknown");
    assert_eq!(validate_region_code(" ３６０１０２ ", true), Ok("360102"));
}

#[test]
fn region_lookups_of_malformed_codes_find_nothing() {
    let t = RegionTable::embedded();
    assert!(t.current("36010").is_none());
    assert!(t.historical("abcdef").is_empty());
    assert!(!t.exists_ever("3601020"));
    assert!(!t.is_within("360102", "999900"));
}

#[test]
fn region_table_parse_reports_malformed_lines() {
    let e: RegionDataError =
        RegionTable::parse("code,name,level,parent_code\n36010,x,county,\n", "h\n").expect_err("bad code");
    assert_eq!(e.line, 2);
    let e = RegionTable::parse(
        "h\n360000,江西省,province,\n",
        "h\n360000,江西省,province,1980,2000,current\n",
    )
    .expect_err("status mismatch");
    assert_eq!(e.line, 2);
    let e = RegionTable::parse("h\n360000,江西省,province,\n360000,江西省,province,\n", "h\n").expect_err("duplicate");
    assert_eq!(e.line, 3);
}

// ---------------------------------------------------------------------------------------------
// Working days
// ---------------------------------------------------------------------------------------------

#[test]
fn archive_deadline_reproduces_the_four_worked_examples() {
    let cal = HolidayCalendar::embedded();
    for (closed, deadline) in [
        (date(2026, 9, 28), date(2026, 10, 23)),
        (date(2026, 2, 10), date(2026, 3, 9)),
        (date(2025, 12, 25), date(2026, 1, 16)),
        (date(2024, 9, 27), date(2024, 10, 23)),
    ] {
        assert_eq!(cal.archive_deadline(closed), Ok(deadline), "closed {closed}");
        assert_eq!(cal.add_working_days(closed, 15), Ok(deadline), "closed {closed}");
    }
}

#[test]
fn working_day_counts_per_year_match_the_reference_table() {
    let cal = HolidayCalendar::embedded();
    for (year, expected) in [
        (2019, 250),
        (2020, 249),
        (2021, 250),
        (2022, 249),
        (2023, 249),
        (2024, 251),
        (2025, 248),
        (2026, 248),
    ] {
        let n = date(year, 1, 1)
            .iter_days()
            .take_while(|d| *d <= date(year, 12, 31))
            .filter(|d| cal.is_working_day(*d) == Ok(true))
            .count();
        assert_eq!(n, expected, "{year}");
    }
}

#[test]
fn make_up_weekend_is_a_working_day_and_holiday_weekday_is_not() {
    let cal = HolidayCalendar::embedded();
    assert_eq!(cal.is_working_day(date(2026, 1, 4)), Ok(true), "Sunday make-up day");
    assert_eq!(cal.is_working_day(date(2024, 10, 12)), Ok(true), "Saturday make-up day");
    assert_eq!(
        cal.is_working_day(date(2026, 10, 1)),
        Ok(false),
        "National Day (Thursday)"
    );
    assert_eq!(cal.is_working_day(date(2026, 10, 10)), Ok(true));
    assert_eq!(cal.is_working_day(date(2026, 10, 11)), Ok(false), "ordinary Sunday");
    assert_eq!(cal.is_working_day(date(2026, 10, 12)), Ok(true), "ordinary Monday");
}

#[test]
fn working_days_start_day_itself_never_counts() {
    let cal = HolidayCalendar::embedded();
    // Closed on a Sunday: the first working day after is Monday.
    assert_eq!(cal.add_working_days(date(2026, 10, 11), 1), Ok(date(2026, 10, 12)));
    // Closed on a Monday: 1 working day later is Tuesday.
    assert_eq!(cal.add_working_days(date(2026, 10, 12), 1), Ok(date(2026, 10, 13)));
    assert_eq!(cal.add_working_days(date(2026, 10, 12), 0), Ok(date(2026, 10, 12)));
    assert_eq!(cal.working_days_between(date(2026, 9, 28), date(2026, 10, 23)), Ok(15));
}

#[test]
fn working_days_outside_2019_2026_are_out_of_calendar() {
    let cal = HolidayCalendar::embedded();
    assert!(cal.covers(date(2019, 1, 1)) && cal.covers(date(2026, 12, 31)));
    assert!(!cal.covers(date(2018, 12, 31)) && !cal.covers(date(2027, 1, 1)));
    let e: OutOfCalendar = cal.is_working_day(date(2027, 1, 4)).expect_err("2027");
    assert_eq!(e.date, date(2027, 1, 4));
    assert!(e.to_string().contains("2026-12-31"), "{e}");
    // A deadline that would run into 2027 is flagged, not guessed.
    let e = cal.archive_deadline(date(2026, 12, 20)).expect_err("runs past 2026");
    assert_eq!(e.date, date(2027, 1, 1));
    assert!(cal.archive_deadline(date(2018, 12, 28)).is_err());
}

#[test]
fn holiday_calendar_parse_rejects_weekday_make_up_day() {
    let e: HolidayDataError =
        HolidayCalendar::parse("date,kind\n2026-10-12,workday\n", date(2026, 1, 1), date(2026, 12, 31))
            .expect_err("Monday is not a make-up day");
    assert_eq!(e.line, 2);
}

// ---------------------------------------------------------------------------------------------
// Unified case code (一案一码)
// ---------------------------------------------------------------------------------------------

#[test]
fn case_code_cf_2024_360102_seq_1_formats_and_round_trips() {
    let code = CaseCode::new(CaseType::Penalty, 2024, "360102", 1).expect("valid parts");
    let text = code.to_string();
    assert_eq!(text, "CF20243601020000001Y");
    assert_eq!(code.format(), text);
    assert_eq!(code.check_char(), 'Y');
    assert_eq!(case_code_check_char("CF20243601020000001"), Some('Y'));
    let parsed = CaseCode::parse(&text).expect("round trip");
    assert_eq!(parsed, code);
    assert_eq!(parsed.case_type(), CaseType::Penalty);
    assert_eq!((parsed.year(), parsed.region(), parsed.sequence()), (2024, "360102", 1));
    assert_eq!(CaseCode::parse_strict(&text), Ok(code));
}

#[test]
fn case_code_check_chars_of_other_types_are_stable() {
    // Values fixed independently with a Python implementation of ISO/IEC 7064 MOD 37,36.
    let jc = CaseCode::new(CaseType::Inspection, 2026, "360102", 1).expect("valid");
    assert_eq!(jc.to_string(), "JC20263601020000001A");
    let qz = CaseCode::new(CaseType::Coercion, 2099, "361121", 9_999_999).expect("valid");
    assert_eq!(qz.to_string(), "QZ20993611219999999G");
}

#[test]
fn case_code_with_wrong_check_char_names_expected_char() {
    let e = CaseCode::parse("CF20243601020000001Z").expect_err("wrong check");
    assert_eq!((e.rule, e.position), ("case_code.check_char", Some(20)));
    assert!(e.message_zh.contains("第20位校验码应为 Y，实为 Z"), "{e}");
    assert!(
        e.message_en
            .contains("check character at position 20 should be Y, found Z"),
        "{e}"
    );
    let e = CaseCode::parse("CF20243601020000001*").expect_err("not alphanumeric");
    assert_eq!(e.rule, "case_code.check_char");
    assert!(e.message_en.contains("should be Y"), "{e}");
}

#[test]
fn case_code_parse_normalises_layout() {
    let code = CaseCode::parse(" cf-2024-360102-0000001-y ").expect("normalised");
    assert_eq!(code.to_string(), "CF20243601020000001Y");
    assert!(CaseCode::parse("ＣＦ２０２４３６０１０２００００００１Ｙ").is_ok());
}

#[test]
fn case_code_parse_names_the_broken_segment() {
    let rule = |s: &str| CaseCode::parse(s).map_err(|e| (e.rule, e.position));
    assert_eq!(rule("CF2024360102000001Y"), Err(("case_code.length", None)));
    assert_eq!(rule("XF20243601020000001Y"), Err(("case_code.prefix", Some(1))));
    assert_eq!(rule("CF2O243601020000001Y"), Err(("case_code.year", Some(4))));
    assert_eq!(rule("CF19993601020000001Y"), Err(("case_code.year", Some(3))));
    assert_eq!(rule("CF202436A1020000001Y"), Err(("case_code.region", Some(9))));
    assert_eq!(rule("CF2024360102000000AY"), Err(("case_code.sequence", Some(19))));
    assert_eq!(rule("CF20243601020000000Y"), Err(("case_code.sequence", Some(13))));
    assert_eq!(rule("CF2024360102000000号Y"), Err(("case_code.sequence", Some(19))));
}

#[test]
fn case_code_new_rejects_out_of_range_parts() {
    let rule = |r: Result<CaseCode, StandardError>| r.map_err(|e| e.rule);
    assert_eq!(
        rule(CaseCode::new(CaseType::Penalty, 1999, "360102", 1)),
        Err("case_code.year")
    );
    assert_eq!(
        rule(CaseCode::new(CaseType::Penalty, 2100, "360102", 1)),
        Err("case_code.year")
    );
    assert_eq!(
        rule(CaseCode::new(CaseType::Penalty, 2024, "36010", 1)),
        Err("case_code.region")
    );
    assert_eq!(
        rule(CaseCode::new(CaseType::Penalty, 2024, "36010x", 1)),
        Err("case_code.region")
    );
    assert_eq!(
        rule(CaseCode::new(CaseType::Penalty, 2024, "360102", 0)),
        Err("case_code.sequence")
    );
    assert_eq!(
        rule(CaseCode::new(CaseType::Penalty, 2024, "360102", 10_000_000)),
        Err("case_code.sequence")
    );
    assert!(CaseCode::new(CaseType::Penalty, 2024, "360102", 9_999_999).is_ok());
}

#[test]
fn case_code_parse_strict_requires_existing_region() {
    let code = CaseCode::new(CaseType::Inspection, 2025, "990000", 7)
        .expect("six digits")
        .to_string();
    assert!(
        CaseCode::parse(&code).is_ok(),
        "plain parse does not look the region up"
    );
    let e = CaseCode::parse_strict(&code).expect_err("unknown region");
    assert_eq!((e.rule, e.position), ("case_code.region", Some(7)));
    // A revoked region is accepted by parse_strict (it existed).
    let old = CaseCode::new(CaseType::Inspection, 2018, "361121", 7)
        .expect("valid")
        .to_string();
    assert!(CaseCode::parse_strict(&old).is_ok());
}

#[test]
fn case_code_mod37_36_misses_swaps_of_consecutive_digits_in_one_state() {
    // Documented limitation (see tests/standards_props.rs): swapping "45" -> "54" at positions 17-18
    // keeps the check character because the running state before position 17 is 14 and 14 + 4 = 18.
    let a = CaseCode::parse("CF20243601020000450H").expect("valid");
    let b = CaseCode::parse("CF20243601020000540H").expect("also valid: undetected transposition");
    assert_ne!(a, b);
    // The same at the check position: "01" <-> "10" when the state before position 19 is 18.
    assert!(CaseCode::parse("CF202436010200004901").is_ok());
    assert!(CaseCode::parse("CF202436010200004910").is_ok());
}

#[test]
fn case_code_serde_round_trips_as_string() {
    let code = CaseCode::new(CaseType::Coercion, 2024, "360102", 42).expect("valid");
    let json = serde_json::to_string(&code).expect("serialise");
    assert_eq!(json, format!("\"{code}\""));
    let back: CaseCode = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(back, code);
    assert!(serde_json::from_str::<CaseCode>("\"CF20243601020000001Z\"").is_err());
}

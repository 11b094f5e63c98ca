//! The XML tree read by the mapping engine: structure, namespaces, attributes, repetition, CDATA,
//! entities, and the hardening against DTDs, entity expansion and oversized documents.

use normalizer::xml_tree::{find_records, parse_xml, XmlError, XmlLimits};
use proptest::prelude::*;
use serde_json::json;

fn parse(xml: &str) -> serde_json::Value {
    parse_xml(xml.as_bytes(), &XmlLimits::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(xml: &str) -> XmlError {
    parse_xml(xml.as_bytes(), &XmlLimits::default()).expect_err("the document should be rejected")
}

#[test]
fn namespace_prefixes_are_dropped_and_xmlns_declarations_ignored() {
    let tree = parse(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:x">
             <soap:Body><ns2:resp xmlns:ns2="urn:y" xsi:nil="false"><ns2:a>1</ns2:a></ns2:resp></soap:Body>
           </soap:Envelope>"#,
    );
    assert_eq!(
        tree,
        json!({ "Envelope": { "Body": { "resp": { "@nil": "false", "a": "1" } } } })
    );
}

#[test]
fn attributes_become_at_members_and_the_text_goes_to_hash_text() {
    let tree = parse(r#"<r><zfbm dm="113604000145872014" xzqh='360400'>九江市生态环境局</zfbm><e a="1"/></r>"#);
    assert_eq!(
        tree,
        json!({ "r": {
            "zfbm": { "@dm": "113604000145872014", "@xzqh": "360400", "#text": "九江市生态环境局" },
            "e": { "@a": "1" }
        } })
    );
}

#[test]
fn text_only_element_is_a_string_and_an_empty_element_an_empty_string() {
    let tree = parse("<r><a>  x  </a><b/><c></c></r>");
    assert_eq!(tree, json!({ "r": { "a": "  x  ", "b": "", "c": "" } }));
}

#[test]
fn repeated_sibling_elements_become_an_array_in_document_order() {
    let tree = parse("<r><cfzl>罚款</cfzl><x>1</x><cfzl>警告</cfzl><cfzl>其他</cfzl><one>1</one></r>");
    assert_eq!(tree["r"]["cfzl"], json!(["罚款", "警告", "其他"]));
    assert_eq!(tree["r"]["one"], json!("1"));
}

#[test]
fn mixed_content_keeps_the_text_and_drops_indentation() {
    let tree = parse("<r>\n  <a>1</a>\n  tail text\n  <b>2</b>\n</r>");
    assert_eq!(tree, json!({ "r": { "a": "1", "b": "2", "#text": "tail text" } }));
    let tree = parse("<r>\n  <a>1</a>\n</r>");
    assert_eq!(tree, json!({ "r": { "a": "1" } }));
}

#[test]
fn cdata_is_text() {
    let tree = parse("<r><bz><![CDATA[a <b> & c]]></bz><m>x<![CDATA[<y>]]>z</m></r>");
    assert_eq!(tree, json!({ "r": { "bz": "a <b> & c", "m": "x<y>z" } }));
}

#[test]
fn predefined_entities_and_character_references_are_resolved() {
    let tree = parse(r#"<r a="&lt;&#x4E2D;&quot;">&lt;&gt;&amp;&apos;&quot; &#20013;&#x56FD;</r>"#);
    assert_eq!(tree, json!({ "r": { "@a": "<中\"", "#text": "<>&'\" 中国" } }));
}

#[test]
fn undefined_entity_is_rejected() {
    assert!(matches!(parse_err("<r>&nbsp;</r>"), XmlError::UndefinedEntity { name, .. } if name == "nbsp"));
    assert!(matches!(parse_err(r#"<r a="&x;"/>"#), XmlError::UndefinedEntity { name, .. } if name == "x"));
}

#[test]
fn doctype_is_rejected() {
    let err = parse_err("<?xml version=\"1.0\"?>\n<!DOCTYPE r>\n<r/>");
    assert_eq!(err, XmlError::Doctype { line: 2 });
}

#[test]
fn billion_laughs_is_rejected_not_expanded() {
    let mut xml = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n  <!ENTITY lol \"lol\">\n");
    for i in 1..=9 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        xml.push_str(&format!("  <!ENTITY lol{i} \"{}\">\n", format!("&{prev};").repeat(10)));
    }
    xml.push_str("]>\n<lolz>&lol9;</lolz>\n");
    let started = std::time::Instant::now();
    let err = parse_err(&xml);
    assert!(matches!(err, XmlError::Doctype { .. }), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert!(err.to_string().contains("DOCTYPE"));
}

#[test]
fn external_entity_is_rejected_not_fetched() {
    let xml = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><r>&xxe;</r>";
    assert!(matches!(parse_err(xml), XmlError::Doctype { .. }));
}

#[test]
fn depth_limit_is_enforced() {
    let limits = XmlLimits {
        max_depth: 8,
        ..XmlLimits::default()
    };
    let nested = |n: usize| format!("{}x{}", "<a>".repeat(n), "</a>".repeat(n));
    assert!(parse_xml(nested(8).as_bytes(), &limits).is_ok());
    let err = parse_xml(nested(9).as_bytes(), &limits).unwrap_err();
    assert!(matches!(err, XmlError::TooDeep { limit: 8, line: 1, .. }), "{err}");
    // The default limit is 64.
    assert!(parse_xml(nested(64).as_bytes(), &XmlLimits::default()).is_ok());
    assert!(matches!(
        parse_xml(nested(65).as_bytes(), &XmlLimits::default()),
        Err(XmlError::TooDeep { limit: 64, .. })
    ));
}

#[test]
fn element_count_and_size_limits_are_enforced() {
    let limits = XmlLimits {
        max_elements: 10,
        ..XmlLimits::default()
    };
    let xml = format!("<r>{}</r>", "<a/>".repeat(9));
    assert!(parse_xml(xml.as_bytes(), &limits).is_ok());
    let xml = format!("<r>{}</r>", "<a/>".repeat(10));
    assert_eq!(
        parse_xml(xml.as_bytes(), &limits),
        Err(XmlError::TooManyElements { limit: 10 })
    );
    let limits = XmlLimits {
        max_bytes: 16,
        ..XmlLimits::default()
    };
    assert_eq!(
        parse_xml(b"<r>0123456789012</r>", &limits),
        Err(XmlError::TooLarge { size: 20, limit: 16 })
    );
}

#[test]
fn gbk_and_gb18030_documents_are_decoded_by_their_prolog() {
    for enc in ["GBK", "gb2312", "GB18030"] {
        let mut bytes = format!("<?xml version=\"1.0\" encoding=\"{enc}\"?><r><mc>").into_bytes();
        let (encoded, _, _) = encoding_rs::GB18030.encode("南昌市市场监督管理局");
        bytes.extend_from_slice(&encoded);
        bytes.extend_from_slice(b"</mc></r>");
        let tree = parse_xml(&bytes, &XmlLimits::default()).unwrap_or_else(|e| panic!("{enc}: {e}"));
        assert_eq!(tree, json!({ "r": { "mc": "南昌市市场监督管理局" } }), "{enc}");
    }
}

#[test]
fn transport_charset_overrides_the_prolog_and_utf16_is_read_by_bom() {
    let (gbk, _, _) = encoding_rs::GBK.encode("<r>中文</r>");
    let tree =
        normalizer::xml_tree::parse_xml_with_encoding(&gbk, &XmlLimits::default(), Some(encoding_rs::GBK)).unwrap();
    assert_eq!(tree, json!({ "r": "中文" }));
    let utf16: Vec<u8> = "\u{FEFF}<r>江西</r>"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let tree = parse_xml(&utf16, &XmlLimits::default()).unwrap();
    assert_eq!(tree, json!({ "r": "江西" }));
}

#[test]
fn unknown_encodings_and_malformed_gbk_bytes_are_rejected_clearly() {
    let err = parse_err("<?xml version=\"1.0\" encoding=\"EBCDIC-XYZ\"?><r>x</r>");
    assert_eq!(err, XmlError::UnsupportedEncoding("EBCDIC-XYZ".to_string()));
    let err = parse_xml(
        b"<?xml version=\"1.0\" encoding=\"GBK\"?><r>\x81</r>",
        &XmlLimits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, XmlError::UnsupportedEncoding(_)), "{err}");
    assert_eq!(
        parse("<?xml version='1.0' encoding='utf-8'?><r>x</r>"),
        json!({ "r": "x" })
    );
}

#[test]
fn utf8_bom_is_accepted_and_invalid_utf8_is_rejected_with_its_position() {
    let tree = parse_xml("\u{FEFF}<r>x</r>".as_bytes(), &XmlLimits::default()).unwrap();
    assert_eq!(tree, json!({ "r": "x" }));
    // GBK bytes for 中 without a declaration.
    let err = parse_xml(b"<r>\n<a>\xD6\xD0</a></r>", &XmlLimits::default()).unwrap_err();
    assert_eq!(err, XmlError::NotUtf8 { line: 2, column: 4 });
}

#[test]
fn malformed_documents_are_rejected_with_line_and_column() {
    let err = parse_err("<r>\n  <a>1</b>\n</r>");
    assert!(matches!(err, XmlError::Syntax { line: 2, .. }), "{err}");
    assert!(matches!(parse_err("<r><a>1</a>"), XmlError::Syntax { .. }));
    assert!(matches!(parse_err("<r/><r/>"), XmlError::Syntax { .. }));
    assert!(matches!(parse_err("text<r/>"), XmlError::Syntax { .. }));
    assert_eq!(parse_err("  "), XmlError::NoRoot);
    assert_eq!(parse_err("<!-- only a comment -->"), XmlError::NoRoot);
}

#[test]
fn comments_and_processing_instructions_are_ignored() {
    assert_eq!(
        parse("<?xml version=\"1.0\"?><!-- c --><r><?pi x?><a>1</a><!-- d --></r>"),
        json!({ "r": { "a": "1" } })
    );
}

const SOAP: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <ns2:queryCasesResponse xmlns:ns2="http://ws.example/">
      <return>
        <total>2</total>
        <case czbs="I"><ajbh>A-1</ajbh></case>
        <case czbs="U"><ajbh>A-2</ajbh></case>
      </return>
    </ns2:queryCasesResponse>
  </soap:Body>
</soap:Envelope>"#;

#[test]
fn find_records_picks_the_repeated_records_out_of_a_soap_envelope() {
    let tree = parse(SOAP);
    let records = find_records(&tree, "Envelope.Body.queryCasesResponse.return.case");
    assert_eq!(
        records,
        vec![
            &json!({ "@czbs": "I", "ajbh": "A-1" }),
            &json!({ "@czbs": "U", "ajbh": "A-2" })
        ]
    );
    assert_eq!(
        find_records(&tree, "Envelope.Body.queryCasesResponse.return.total"),
        vec![&json!("2")]
    );
    assert!(find_records(&tree, "Envelope.Body.nothing.case").is_empty());
}

#[test]
fn find_records_returns_a_single_record_element_too() {
    let tree = parse(&SOAP.replace("<case czbs=\"U\"><ajbh>A-2</ajbh></case>", ""));
    let records = find_records(&tree, "Envelope.Body.queryCasesResponse.return.case");
    assert_eq!(records, vec![&json!({ "@czbs": "I", "ajbh": "A-1" })]);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_xml(&bytes, &XmlLimits::default());
    }

    #[test]
    fn arbitrary_markup_never_panics(text in "[<>/a-c&;#x0-9\"'= !\\[\\]CDATA?-]{0,80}") {
        let _ = parse_xml(text.as_bytes(), &XmlLimits::default());
    }
}

use super::*;
use serde_json::json;

fn nanchang_like() -> Vec<Value> {
    vec![
        json!({
            "AJBH": "NC-2024-001", "XDRMC": "南昌赣江商贸有限公司", "TYSHXYDM": "91360102MA35G7K86A",
            "JGMC": "南昌市市场监督管理局", "JGDM": "11360100014523152U", "XZQH": "360100",
            "CFJDSWH": "洪市监罚〔2024〕1号", "CFRQ": "2024年3月1日", "FKJE": "0.2", "CFLB": "罚款、警告",
            "ZFRYXM": "张三、李四", "WFSS": "未按规定明码标价。", "CFYJ": "《价格法》第十三条", "CFCX": "普通程序",
            "XDRLB": "法人", "QTZD": "abc"
        }),
        json!({
            "AJBH": "NC-2024-002", "XDRMC": "刘强", "TYSHXYDM": "36010219850315202X",
            "JGMC": "南昌市市场监督管理局", "JGDM": "11360100014523152U", "XZQH": "360100",
            "CFJDSWH": "洪市监罚〔2024〕2号", "CFRQ": "2024/3/5", "FKJE": "0.05", "CFLB": "警告",
            "ZFRYXM": "王五，赵六", "WFSS": "无照经营。", "CFYJ": "《无证无照经营查处办法》第十三条", "CFCX": "简易程序",
            "XDRLB": "自然人", "QTZD": "def"
        }),
    ]
}

#[test]
fn pinyin_initial_fields_are_proposed_with_evidence_and_load() {
    let s = suggest(&nanchang_like(), &SuggestOptions::default()).unwrap();
    let active: Vec<(&str, &str)> = s.active().collect();
    for pair in [
        ("AJBH", "case_number"),
        ("XDRMC", "target.name"),
        ("TYSHXYDM", "target.id_number"),
        ("JGDM", "agency.credit_code"),
        ("XZQH", "agency.region_code"),
        ("CFJDSWH", "penalty.decision_number"),
        ("CFRQ", "penalty.decision_date"),
        ("FKJE", "penalty.fine_amount"),
        ("CFLB", "penalty.kinds"),
        ("ZFRYXM", "officers"),
    ] {
        assert!(active.contains(&pair), "{pair:?} not in {active:?}");
    }
    assert!(s.unmatched.contains(&"QTZD".to_string()));
    assert!(s.mapping_toml.contains("unit = \"wan_yuan\""), "{}", s.mapping_toml);
    assert!(s.mapping_toml.contains("# 置信度"));
    let kinds = &s.tables.iter().find(|(n, _)| n == "penalty_kinds.csv").unwrap().1;
    assert!(kinds.contains("罚款,fine"), "{kinds}");
    assert_eq!(s.case_type, CaseType::Penalty);
}

#[test]
fn inline_tables_make_a_self_contained_mapping() {
    let options = SuggestOptions {
        inline_tables: true,
        ..SuggestOptions::default()
    };
    let s = suggest(&nanchang_like(), &options).unwrap();
    assert!(s.tables.is_empty());
    let m = crate::mapping::Mapping::from_bundle(&s.mapping_toml, "m.toml", &Default::default()).unwrap();
    assert_eq!(m.tests().len(), 2);
}

#[test]
fn no_objects_is_an_error() {
    assert!(matches!(
        suggest(&[json!(1)], &SuggestOptions::default()),
        Err(SuggestError::NoRecords)
    ));
}

fn apply(s: &Suggestion, record: &Value) -> Value {
    let m = crate::mapping::Mapping::from_bundle(&s.mapping_toml, "m.toml", &Default::default()).unwrap();
    m.apply(record).record
}

#[test]
fn officer_lists_with_mixed_separators_become_a_zip_that_splits_every_one() {
    let records = vec![
        json!({"ajbh": "A1", "zfry": "张三 李四", "zfzh": "3601 3602"}),
        json!({"ajbh": "A2", "zfry": "王五/赵六", "zfzh": "3605/3606"}),
        json!({"ajbh": "A3", "zfry": "孙七;周八", "zfzh": "3611;3612"}),
        json!({"ajbh": "A4", "zfry": "吴九、郑十", "zfzh": "3613、3614"}),
    ];
    let options = SuggestOptions {
        inline_tables: true,
        ..SuggestOptions::default()
    };
    let s = suggest(&records, &options).unwrap();
    assert!(
        s.mapping_toml.contains("zip = { name = \"zfry\", cert_no = \"zfzh\" }"),
        "{}",
        s.mapping_toml
    );
    for (record, names) in records
        .iter()
        .zip([["张三", "李四"], ["王五", "赵六"], ["孙七", "周八"], ["吴九", "郑十"]])
    {
        let out = apply(&s, record);
        let got: Vec<&str> = out["officers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert_eq!(got, names);
    }
}

#[test]
fn the_amount_unit_follows_name_hints_and_magnitudes() {
    let records = vec![
        json!({"fkje_wy": "2", "mswfsd": "1500", "ajbh": "A1"}),
        json!({"fkje_wy": "3", "mswfsd": "800", "ajbh": "A2"}),
    ];
    let options = SuggestOptions {
        case_type: Some(CaseType::Penalty),
        inline_tables: true,
        ..SuggestOptions::default()
    };
    let s = suggest(&records, &options).unwrap();
    let out = apply(&s, &records[0]);
    assert_eq!(
        out["penalty"]["fine_amount"],
        json!(20000),
        "万元 from the name: {}",
        s.mapping_toml
    );
    assert_eq!(
        out["penalty"]["confiscation_amount"],
        json!(1500),
        "yuan: {}",
        s.mapping_toml
    );
}

#[test]
fn dates_in_usual_layouts_and_epoch_milliseconds_are_read() {
    let records = vec![
        json!({"ajbh": "A1", "jdrq": "2024年3月1日", "gxsj": 1709258400000i64, "larq": "20240201"}),
        json!({"ajbh": "A2", "jdrq": "2024/3/5", "gxsj": 1709604000000i64, "larq": "2024-02-03 10:00:00"}),
    ];
    let options = SuggestOptions {
        case_type: Some(CaseType::Penalty),
        inline_tables: true,
        ..SuggestOptions::default()
    };
    let s = suggest(&records, &options).unwrap();
    let out = apply(&s, &records[0]);
    assert_eq!(out["penalty"]["decision_date"], json!("2024-03-01"));
    assert_eq!(out["penalty"]["filing_date"], json!("2024-02-01"));
    assert_eq!(out["source_updated_at"], json!("2024-03-01T10:00:00+08:00"));
}

#[test]
fn an_unknown_column_of_valid_organ_credit_codes_is_proposed_as_the_agency_code_by_its_values() {
    let records = vec![
        json!({"ajbh": "A1", "x_col7": "11360100014523152U"}),
        json!({"ajbh": "A2", "x_col7": "113604000145872014"}),
    ];
    let s = suggest(&records, &SuggestOptions::default()).unwrap();
    let p = s.proposals.iter().find(|p| p.source == "x_col7").unwrap();
    assert_eq!(p.target, "agency.credit_code");
    assert!(
        p.evidence_zh.iter().any(|e| e.contains("校验位正确")),
        "{:?}",
        p.evidence_zh
    );
}

#[test]
fn two_equally_likely_columns_for_one_field_are_both_commented_out() {
    let records = vec![
        json!({"ajbh": "A1", "jgsxbm": "36010000100012", "sxbm": "36010000100013"}),
        json!({"ajbh": "A2", "jgsxbm": "36010000100014", "sxbm": "36010000100015"}),
    ];
    let s = suggest(&records, &SuggestOptions::default()).unwrap();
    let item: Vec<&Proposal> = s.proposals.iter().filter(|p| p.target == "item_code").collect();
    assert_eq!(item.len(), 2);
    assert!(item.iter().all(|p| p.status == Status::Conflict));
    assert!(s.mapping_toml.contains("# 【冲突，已注释】"));
    assert!(s.missing_required.contains(&"item_code".to_string()));
}

#[test]
fn the_record_elements_of_an_xml_answer_are_found_as_the_most_repeated_element() {
    let xml = br#"<soap:Envelope xmlns:soap="x"><soap:Body><r><total>2</total>
        <case czbs="I"><ajbh>A1</ajbh><zfry><xm>a</xm></zfry><zfry><xm>b</xm></zfry><zfry><xm>c</xm></zfry></case>
        <case czbs="I"><ajbh>A2</ajbh></case><case czbs="U"><ajbh>A3</ajbh></case><case><ajbh>A4</ajbh></case>
        </r></soap:Body></soap:Envelope>"#;
    let tree = crate::xml_tree::parse_xml(xml, &crate::xml_tree::XmlLimits::default()).unwrap();
    assert_eq!(find_record_path(&tree).as_deref(), Some("Envelope.Body.r.case"));
    let single = crate::xml_tree::parse_xml(b"<a><b>1</b></a>", &crate::xml_tree::XmlLimits::default()).unwrap();
    assert_eq!(find_record_path(&single), None);
}

#[test]
fn a_list_of_agencies_in_an_inspection_becomes_the_joint_participants() {
    let xml = r#"<r>
        <case><ajbh>A1</ajbh><jcxx><lhjc><bm dm="11360400014587316A">九江市市场监督管理局</bm><bm dm="11360400014587498E">九江市应急管理局</bm></lhjc></jcxx></case>
        <case><ajbh>A2</ajbh><jcxx><lhjc><bm dm="11360400014587316A">九江市市场监督管理局</bm></lhjc></jcxx></case>
    </r>"#;
    let tree = crate::xml_tree::parse_xml(xml.as_bytes(), &crate::xml_tree::XmlLimits::default()).unwrap();
    let records: Vec<Value> = crate::xml_tree::find_records(&tree, "r.case")
        .into_iter()
        .cloned()
        .collect();
    let options = SuggestOptions {
        case_type: Some(CaseType::Inspection),
        inline_tables: true,
        ..SuggestOptions::default()
    };
    let s = suggest(&records, &options).unwrap();
    assert!(
        s.mapping_toml.contains("each = \"jcxx.lhjc.bm[*]\""),
        "{}",
        s.mapping_toml
    );
    for record in &records {
        let out = apply(&s, record);
        let first = &out["inspection"]["joint_participants"][0];
        assert_eq!(
            first["name"],
            json!("九江市市场监督管理局"),
            "a single element is a one-element list"
        );
        assert_eq!(first["credit_code"], json!("11360400014587316A"));
    }
    assert!(
        !s.proposals.iter().any(|p| p.target == "agency.credit_code"),
        "the participants' codes are not the agency's"
    );
}

#[test]
fn a_case_type_column_is_read_per_record_and_type_specific_fields_get_when() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/jiangxi-ecology-soap/samples/records.xml");
    let bytes = std::fs::read(path).unwrap();
    let tree = crate::xml_tree::parse_xml(&bytes, &crate::xml_tree::XmlLimits::default()).unwrap();
    let records: Vec<Value> = crate::xml_tree::find_records(&tree, "Envelope.Body.queryCasesResponse.return.case")
        .into_iter()
        .cloned()
        .collect();
    let options = SuggestOptions {
        inline_tables: true,
        ..SuggestOptions::default()
    };
    let s = suggest(&records, &options).unwrap();
    assert_eq!(s.case_type_from.as_deref(), Some("ajlx"));
    assert!(
        s.mapping_toml
            .contains("case_type = { from = \"ajlx\", steps = [\"trim\"], table = \"case_types\" }"),
        "{}",
        s.mapping_toml
    );
    assert!(s.mapping_toml.contains("when = { case_type = \"penalty\" }"));
    assert!(s.mapping_toml.contains("when = { case_type = \"inspection\" }"));
    let m = crate::mapping::Mapping::from_bundle(&s.mapping_toml, "m.toml", &Default::default()).unwrap();
    let kinds: std::collections::BTreeSet<String> = records
        .iter()
        .filter_map(|r| m.apply(r).record["case_type"].as_str().map(str::to_string))
        .collect();
    assert_eq!(kinds.len(), 3, "inspections, penalties and coercions: {kinds:?}");
    let penalty = records
        .iter()
        .map(|r| m.apply(r).record)
        .find(|r| r["case_type"] == "penalty")
        .unwrap();
    assert!(penalty.get("inspection").is_none(), "{penalty}");
    assert!(penalty["penalty"]["decision_number"].is_string(), "{penalty}");
}

#[test]
fn per_type_columns_of_one_field_get_their_case_type_when_it_is_read_per_record() {
    let records = vec![
        json!({"behaviour_type": "check", "check_action_code": "JC-1", "punish_action_code": "", "check_basis": "《价格法》第十三条"}),
        json!({"behaviour_type": "punish", "check_action_code": "", "punish_action_code": "CF-1", "punish_basis": "《价格法》第四十二条"}),
        json!({"behaviour_type": "check", "check_action_code": "JC-2", "punish_action_code": "", "check_basis": "《价格法》第十三条"}),
    ];
    let options = SuggestOptions {
        inline_tables: true,
        ..SuggestOptions::default()
    };
    let s = suggest(&records, &options).unwrap();
    assert_eq!(s.case_type_from.as_deref(), Some("behaviour_type"));
    let check = s.proposals.iter().find(|p| p.source == "check_action_code").unwrap();
    let punish = s.proposals.iter().find(|p| p.source == "punish_action_code").unwrap();
    assert_eq!(
        (check.target.as_str(), check.when.as_deref()),
        ("case_number", Some("inspection"))
    );
    assert_eq!(
        (punish.target.as_str(), punish.when.as_deref()),
        ("case_number", Some("penalty"))
    );
    assert_eq!(
        (check.status, punish.status),
        (Status::Active, Status::Active),
        "no conflict"
    );
    let out = apply(&s, &records[1]);
    assert_eq!(out["case_number"], json!("CF-1"));
    assert_eq!(out["case_type"], json!("penalty"));
}

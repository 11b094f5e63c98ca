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

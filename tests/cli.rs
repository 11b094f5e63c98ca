//! End-to-end: the command-line contracts (`check`, `normalize`, `mappings test`,
//! `config check`) that scripts and users rely on.

mod support;

use std::io::Write;
use std::process::Stdio;
use support::{gateway, path_str, repo};

fn run_with_stdin(args: &[&str], input: &str) -> std::process::Output {
    let mut child = gateway()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    let mut stdin = child.stdin.take().expect("stdin");
    let text = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer thread").expect("write stdin");
    out
}

#[test]
fn check_uscc_prints_tab_separated_lines_and_exit_status() {
    let out = gateway()
        .args(["check", "uscc", "91110000600037341L", "9111 0000 6000 3734 1l"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "91110000600037341L\tvalid\t91110000600037341L");
    assert_eq!(lines[1], "9111 0000 6000 3734 1l\tvalid\t91110000600037341L");

    let out = gateway()
        .args(["check", "uscc", "91110000600037341N"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = text.trim_end().split('\t').collect();
    assert_eq!(fields[..3], ["91110000600037341N", "invalid", "uscc.check_char"]);
    assert!(
        fields[3].contains('L'),
        "message names the expected check character: {}",
        fields[3]
    );
}

#[test]
fn check_reads_values_from_stdin_and_prints_json() {
    let out = run_with_stdin(
        &["check", "id-number", "--json"],
        "360426199101010071\n36042619910102009X\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["valid"], true);
    assert_eq!(lines[1]["valid"], false);
    assert_eq!(lines[1]["rule"], "id_number.check_char");
}

#[test]
fn check_region_and_case_code() {
    let out = gateway()
        .args(["check", "region", "360102", "361121"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "historical codes are valid by default");
    let out = gateway()
        .args(["check", "region", "--current", "361121"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "revoked code with --current");
    assert!(String::from_utf8_lossy(&out.stdout).contains("region.revoked"));
    let out = gateway()
        .args(["check", "case-code", "CF20243601020000450H"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn check_with_unknown_kind_is_a_usage_error() {
    let out = gateway().args(["check", "passport", "X"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn shipped_mappings_pass_their_embedded_tests() {
    let out = gateway()
        .args(["mappings", "test", path_str(&repo().join("mappings"))])
        .output()
        .unwrap();
    support::assert_success(&out, "mappings test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 failing"), "{text}");
    // Mapping files are found whatever their names; fragments named in `include` are not
    // mappings of their own.
    for mapping in [
        "ganzhou-urban-management/penalty.toml",
        "ganzhou-urban-management/coercion.toml",
    ] {
        assert!(text.contains(mapping), "{mapping} not tested: {text}");
    }
    assert!(!text.contains("common.toml"), "{text}");
}

#[test]
fn mappings_test_reports_a_mapping_file_that_does_not_parse_whatever_its_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("penalty.toml"),
        "id = \"x\"\nversion = 1\ndescription = \"d\"\n\n[[field]]\ntarget = \"case_number\"\nfrom = \"ajbh\n",
    )
    .unwrap();
    let out = gateway()
        .args(["mappings", "test", path_str(dir.path())])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL") && text.contains("penalty.toml"), "{text}");
}

#[test]
fn mappings_test_fails_on_a_wrong_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = support::copy_mapping("nanchang-amr-penalty", dir.path()).join("mapping.toml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    assert!(
        text.contains("洪市监"),
        "the example's expectations mention the decision number"
    );
    std::fs::write(&mapping, text.replacen("\"洪市监", "\"错市监", 1)).unwrap();
    let out = gateway()
        .args(["mappings", "test", path_str(&mapping)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn normalize_prints_canonical_record_or_violations_per_line() {
    let good = support::nanchang_record(1, 0);
    let bad = support::defective_record(2);
    let input = format!("{good}\n{bad}\n");
    let mapping = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    let out = run_with_stdin(
        &["normalize", "--mapping", path_str(&mapping), "--province", "36"],
        &input,
    );
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["accepted"], true, "{}", lines[0]);
    assert_eq!(lines[0]["record"]["agency"]["credit_code"], support::AGENCY_CODE);
    assert_eq!(lines[1]["accepted"], false);
    assert_eq!(lines[1]["violations"][0]["rule"], "uscc.check_char");
}

#[test]
fn config_check_reports_every_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[store]\nbackend = \"oracle\"\n\n[pipeline]\nprepare_nice = 25\n\n[[sources]]\nid = \"a\"\nmapping = \"missing.toml\"\n\n[[sources]]\nid = \"a\"\nmapping = \"missing.toml\"\nformat = \"yaml\"\n",
    )
    .unwrap();
    let out = gateway().args(["config", "check", path_str(&config)]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "store.backend",
        "sources[0] (id \"a\").mapping",
        "sources[1] (id \"a\").id",
        "sources[1] (id \"a\").format",
        "pipeline.prepare_nice",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    std::fs::write(&config, "[store]\nbackend = \"sqlite\"\nunknown_key = 1\n").unwrap();
    let out = gateway().args(["config", "check", path_str(&config)]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3:1"), "line and column of the unknown key:\n{text}");
}

#[test]
fn config_check_names_bad_agency_scopes_and_warns_about_a_source_that_may_write_for_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    let config = dir.path().join("scope.toml");
    let sources = |scope: &str| {
        format!(
            "[[sources]]\nid = \"open\"\nmapping = \"{m}\"\n\n[[sources]]\nid = \"scoped\"\nmapping = \"{m}\"\n{scope}\n",
            m = path_str(&mapping)
        )
    };
    std::fs::write(
        &config,
        sources("agencies = [\"11360100014523152X\"]\nagency_regions = [\"360\", \"36a1\"]"),
    )
    .unwrap();
    let out = gateway().args(["config", "check", path_str(&config)]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "sources[1] (id \"scoped\").agencies[0]",
        "uscc.check_char",
        "sources[1] (id \"scoped\").agency_regions[0]",
        "sources[1] (id \"scoped\").agency_regions[1]",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    std::fs::write(
        &config,
        sources("agencies = [\"11360100014523152U\"]\nagency_regions = [\"3601\"]"),
    )
    .unwrap();
    let out = gateway().args(["config", "check", path_str(&config)]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warning: sources[0] (id \"open\")") && text.contains("any agency"),
        "a source without agencies or agency_regions is warned about:\n{text}"
    );
    assert!(!text.contains("(id \"scoped\")"), "{text}");
}

#[test]
fn config_check_refuses_an_unknown_sslmode_and_verification_without_a_readable_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tls.toml");
    std::fs::write(
        &config,
        "[store]\nbackend = \"postgres\"\nurl_env = \"GW_TLS_STORE_URL\"\n\n\
         [[sinks]]\nid = \"bad-mode\"\nkind = \"postgres\"\nurl = \"postgres://gw@db.example/gw?sslmode=verify_full\"\n\n\
         [[sinks]]\nid = \"no-ca\"\nkind = \"postgres\"\nurl = \"postgres://gw@db.example/gw?sslmode=verify-ca\"\n\n\
         [[sinks]]\nid = \"missing-ca\"\nkind = \"postgres\"\nurl = \"postgres://gw@db.example/gw?sslmode=verify-full\"\n\
         ssl_root_cert = \"certs/absent.pem\"\n",
    )
    .unwrap();
    let out = gateway()
        .args(["config", "check", path_str(&config)])
        .env(
            "GW_TLS_STORE_URL",
            "postgres://gw:s3cr3t-pw@db.example/gw?sslmode=verify-full",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "store: sslmode=verify-full 需要 CA 证书文件 / sslmode=verify-full needs a CA certificate file",
        "sinks[0] (id \"bad-mode\").url: 不支持的 sslmode / unsupported sslmode \"verify_full\"",
        "sinks[1] (id \"no-ca\").url: sslmode=verify-ca 需要 CA 证书文件",
        "sinks[2] (id \"missing-ca\").ssl_root_cert: 无法读取 CA 证书文件 / cannot read the CA certificate file",
        "certs/absent.pem (ssl_root_cert)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("s3cr3t-pw"), "secret leaked: {text}");

    // The same store with a readable CA file passes the TLS checks.
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertificateParams::new(vec!["db.example".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("certs/ca.pem"), ca.pem()).unwrap();
    std::fs::write(
        &config,
        "[store]\nbackend = \"postgres\"\nurl_env = \"GW_TLS_STORE_URL\"\nssl_root_cert = \"certs/ca.pem\"\n",
    )
    .unwrap();
    let out = gateway()
        .args(["config", "check", path_str(&config)])
        .env(
            "GW_TLS_STORE_URL",
            "postgres://gw:s3cr3t-pw@db.example/gw?sslmode=verify-full",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn config_check_refuses_soap_success_values_without_a_status_path() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = repo().join("mappings/jiangxi-ecology-soap/mapping.toml");
    let config = dir.path().join("soap.toml");
    let envelope =
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><q/></s:Body></s:Envelope>"#;
    let write = |status: &str| {
        std::fs::write(
            &config,
            format!(
                "[[sources]]\nid = \"eco\"\nkind = \"soap\"\nmapping = \"{}\"\nagency_regions = [\"36\"]\n[sources.soap]\n\
                 url = \"http://127.0.0.1:9/ws\"\nenvelope_template = '{envelope}'\nrecords_path = \"Envelope.Body.r.case\"\n\
                 success_values = [\"0000\", \"S000\"]\n{status}",
                path_str(&mapping)
            ),
        )
        .unwrap()
    };
    write("");
    let out = gateway().args(["config", "check", path_str(&config)]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("sources[0] (id \"eco\").soap.success_values")
            && text.contains("needs status_path")
            && text.contains("S000"),
        "names the setting, the rule and the value:\n{text}"
    );

    write("status_path = \"Envelope.Body.r.resultCode\"\n");
    let out = gateway().args(["config", "check", path_str(&config)]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn config_never_prints_the_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pg.toml");
    std::fs::write(
        &config,
        "[store]\nbackend = \"postgres\"\nurl_env = \"GW_SECRET_URL\"\n",
    )
    .unwrap();
    let out = gateway()
        .args(["migrate", "--config", path_str(&config)])
        .env("GW_SECRET_URL", "postgres://gw:s3cr3t-pw@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("s3cr3t-pw"), "secret leaked: {all}");
}

#[test]
fn demo_pulls_from_simulated_rest_and_soap_systems_through_the_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let out = gateway()
        .current_dir(repo())
        .args(["demo", "--exit", "--dir", path_str(dir.path())])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every record of both systems arrives: 500 from the REST system, 24 from the SOAP one
    // (a SOAP fault interrupts the first run, a second run completes it).
    let line = |source: &str| {
        stdout
            .lines()
            .rfind(|l| l.contains(source) && l.contains("pulled"))
            .unwrap_or_else(|| panic!("no summary for {source}: {stdout}"))
            .to_string()
    };
    let rest = line("nanchang-amr");
    assert!(
        rest.contains("accepted 484") && rest.contains("quarantined  14"),
        "{rest}"
    );
    let soap = line("jiangxi-ecology");
    assert!(soap.contains("accepted   9") && soap.contains("runs 2"), "{soap}");
    assert!(stdout.contains("quarantined by rule"));
    assert!(stdout.contains("uscc.check_char"));
    // The notice's supervision rules: plans first (two filed and entered late, one special plan
    // without a sampling ratio quarantined), inspections naming plans the gateway does not hold,
    // a ledger without item codes accepted awaiting supplement.
    let plans = line_of(&stdout, "plans", "read");
    assert!(
        plans.contains("accepted   5") && plans.contains("quarantined   1"),
        "{plans}"
    );
    let ledger = line_of(&stdout, "jiujiang-amr-ledger", "read");
    // ... and an officer missing from the agency's registry (samples/officers.csv) refused.
    assert!(
        ledger.contains("accepted   3") && ledger.contains("quarantined   1"),
        "{ledger}"
    );
    for rule in [
        "rule.plan_filed_late",
        "rule.plan_entered_late",
        "rule.plan_unknown",
        "rule.special_plan_ratio",
        "rule.officer_not_registered",
        "rule.officer_registry_missing",
        "supplement.missing_field",
    ] {
        assert!(stdout.contains(rule), "{rule} in {stdout}");
    }
    assert!(stdout.contains("inspection plans held: 5"), "{stdout}");
    // Evidence attachments (证据附件): the demo's record with an inline decision document is
    // stored once by its hash and listed with a signed download link.
    let evidence = line_of(&stdout, "nanchang-amr-evidence", "read");
    assert!(evidence.contains("accepted   1"), "{evidence}");
    assert!(
        stdout.contains("行政处罚决定书.txt stored 135 bytes") && stdout.contains("from inline (record)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("/api/attachments/") && stdout.contains("&sig="),
        "{stdout}"
    );
    // The ledger's inspection of 九江长江化工 three days after the ecology bureau's: a candidate.
    assert!(
        stdout.contains("dashboard 联合检查比对): 1") && stdout.contains("91360402MA37C8D5X9"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("jiujiang-amr-ledger") && l.trim_start().starts_with('3')),
        "three cases awaiting supplement: {stdout}"
    );
    assert!(stdout.contains("totals: 502 cases"), "{stdout}");
    // 双公示: the penalties and random-inspection results go to the simulated credit platform in
    // the credit-disclosure format; natural persons are withheld with the reason, penalties
    // lacking a field the format requires are refused naming it.
    assert!(stdout.contains("published 331, withheld 3, refused 163"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("CF_NR_FK") && l.contains("\"0.")),
        "the fine in 万元, as exact decimal text: {stdout}"
    );
    assert!(stdout.contains("natural person: not published"), "{stdout}");
    assert!(stdout.contains("public field CF_WFXW"), "{stdout}");
    assert!(stdout.contains("南昌市市场监督管理局 处罚 decided 484"), "{stdout}");
    // Reconciliation: the REST system holds three cases it never sent; the gap names them and
    // raises an alert, which the (simulated) DingTalk robot receives signed.
    let gap = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("nanchang-amr ") && l.contains("source says"))
        .unwrap_or_else(|| panic!("no reconciliation line: {stdout}"));
    assert!(gap.contains("missing  3") && gap.contains("GAP"), "{gap}");
    for key in ["NCSJ-CF-2024-OFF-001", "NCSJ-CF-2024-OFF-003"] {
        assert!(stdout.contains(&format!("missing: {key}")), "{key}: {stdout}");
    }
    assert!(
        stdout.contains("【告警】对账差异 nanchang-amr  (签名正确 / signature verified)"),
        "{stdout}"
    );
    assert!(dir.path().join("gateway.db").is_file());
}

/// The last line of `stdout` naming `source` and `word`.
fn line_of(stdout: &str, source: &str, word: &str) -> String {
    stdout
        .lines()
        .rfind(|l| l.contains(&format!("source {source} ")) && l.contains(word))
        .unwrap_or_else(|| panic!("no {word} line for {source}: {stdout}"))
        .to_string()
}

#[test]
fn officers_load_stores_a_version_per_agency_lists_it_and_refuses_a_bad_file_naming_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        "[store]\nbackend = \"sqlite\"\npath = \"data/gateway.db\"\n\n[normalizer.officers]\nseverity = \"auto\"\n",
    )
    .unwrap();
    // GBK, Chinese headers, one agency named by --agency.
    let registry = dir.path().join("名录.csv");
    let text = "姓名,执法证号,有效期起,有效期止,状态\n张三,３６０１００２０００１,2023-01-01,2027-12-31,有效\n李四,36010020002,2023-01-01,2027-12-31,暂扣\n";
    std::fs::write(&registry, encoding_rs::GBK.encode(text).0).unwrap();
    let out = gateway()
        .args(["officers", "load", path_str(&registry), "--config", path_str(&config)])
        .args(["--agency", support::AGENCY_CODE, "--actor", "cli:tester"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let version: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(version["agency_credit_code"], support::AGENCY_CODE);
    assert_eq!(
        (version["version"].clone(), version["added"].clone()),
        (1.into(), 2.into())
    );
    assert_eq!(version["loaded_by"], "cli:tester");
    assert_eq!(version["origin"], "名录.csv");

    let out = gateway()
        .args(["officers", "list", "--config", path_str(&config), "--q", "李"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let officer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(officer["cert_no"], "36010020002");
    assert_eq!(officer["status"], "suspended");

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!(
            "name,cert_no,agency,valid_to\nZhang,A1,{},someday\n",
            support::AGENCY_CODE
        ),
    )
    .unwrap();
    let out = gateway()
        .args(["officers", "load", path_str(&bad), "--config", path_str(&config)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains("valid_to") && err.contains("someday"),
        "{err}"
    );
    let out = gateway()
        .args(["officers", "versions", "--config", path_str(&config)])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "the bad file made no version"
    );
}

#[test]
fn normalize_checks_officers_against_a_registry_file() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("officers.json");
    std::fs::write(
        &registry,
        serde_json::json!([{"name": "张三", "cert_no": "36010020001", "agency": support::AGENCY_CODE}]).to_string(),
    )
    .unwrap();
    let mapping = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    let input = format!("{}\n", support::nanchang_record(1, 0));
    let out = run_with_stdin(
        &[
            "normalize",
            "--mapping",
            path_str(&mapping),
            "--officers",
            path_str(&registry),
        ],
        &input,
    );
    assert_eq!(out.status.code(), Some(1));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["violations"][0]["rule"], "rule.officer_not_registered", "{line}");
    let out = run_with_stdin(
        &[
            "normalize",
            "--mapping",
            path_str(&mapping),
            "--officers",
            path_str(&registry),
            "--officer-severity",
            "warning",
        ],
        &input,
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn mappings_test_with_a_config_validates_with_its_officer_registry() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("officers.csv"),
        format!(
            "姓名,执法证号,统一社会信用代码\n张三,36010020001,{}\n",
            support::AGENCY_CODE
        ),
    )
    .unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        "[normalizer.officers]\nseverity = \"error\"\nfile = \"officers.csv\"\n",
    )
    .unwrap();
    let mapping = repo().join("mappings/nanchang-amr-penalty");
    let out = gateway()
        .args(["mappings", "test", path_str(&mapping), "--config", path_str(&config)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rule.officer_not_registered"), "{text}");
}

/// Two inspections of one target by two agencies three days apart (from the behaviour sample).
fn joint_candidate_records() -> String {
    let sample = std::fs::read_to_string(repo().join("mappings/internet-plus-behaviour/samples/records.jsonl"))
        .expect("read the behaviour sample");
    let first: serde_json::Value = serde_json::from_str(sample.lines().next().expect("a sample line")).expect("JSON");
    let mut second = first.clone();
    second["implement_institution"] = "九江市生态环境局".into();
    second["implement_institution_code"] = "113604000145872014".into();
    second["area_number"] = "360400".into();
    second["check_action_code"] = "JJSTHJ-JC-2024-0099".into();
    second["cd_id"] = "JJSTHJ-JC-2024-0099".into();
    second["record_unique_identity"] = "JJSTHJ-JC-2024-0099".into();
    second["check_date"] = "2024-03-15 10:00:00".into();
    format!("{first}\n{second}\n")
}

#[tokio::test]
async fn joint_rebuild_and_export_joint_groups_in_both_formats() {
    let mapping = repo().join("mappings/internet-plus-behaviour/mapping.toml");
    let source = format!(
        "[[sources]]\nid = \"iplus-behaviour\"\nmapping = \"{}\"\nformat = \"jsonl\"\nrecord_key = \"record_unique_identity\"\n",
        mapping.display()
    );
    let env = support::Env::with_sources(support::Backend::Sqlite, &source).await;
    let file = env.write("checks.jsonl", &joint_candidate_records());
    let config = path_str(&env.config);
    let out = env
        .cmd(&[
            "ingest",
            "--config",
            config,
            "--source",
            "iplus-behaviour",
            "--quiet",
            path_str(&file),
        ])
        .output()
        .expect("run gateway ingest");
    support::assert_success(&out, "ingest");
    assert_eq!(
        support::summary_line(&out)["accepted"],
        2,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let groups = env.export("joint-groups");
    assert_eq!(groups.len(), 1, "{groups:?}");
    let g = &groups[0];
    assert_eq!(
        (g["status"].as_str(), g["kind"].as_str()),
        (Some("candidate"), Some("similar"))
    );
    assert_eq!(g["target_id"], "91360103MA38N2Q49C");
    assert_eq!(
        g["agencies"],
        serde_json::json!(["11360100014523152U", "113604000145872014"])
    );
    assert_eq!(g["dates"], serde_json::json!(["2024-03-12", "2024-03-15"]));
    assert_eq!(g["cases"].as_array().map(Vec::len), Some(2));

    let out = env
        .cmd(&["export", "joint-groups", "--config", config, "--format", "csv"])
        .output()
        .expect("run gateway export");
    support::assert_success(&out, "export csv");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "group_id,target_id,kind,status,cases,agencies,dates");
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].contains(",91360103MA38N2Q49C,similar,candidate,"), "{text}");
    assert!(
        lines[1].ends_with(",11360100014523152U;113604000145872014,2024-03-12;2024-03-15"),
        "{text}"
    );

    let out = env
        .cmd(&["joint", "rebuild", "--config", config])
        .output()
        .expect("run gateway joint rebuild");
    support::assert_success(&out, "joint rebuild");
    let report = support::summary_line(&out);
    assert_eq!(
        (report["inspections"].as_i64(), report["groups"].as_i64()),
        (Some(2), Some(1))
    );
    assert!(report["seconds"].as_f64().is_some(), "{report}");
    assert_eq!(
        env.export("joint-groups")[0]["group_id"],
        g["group_id"],
        "the same group after a rebuild"
    );
}

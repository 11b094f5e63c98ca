//! End-to-end: `gateway mappings suggest` and `gateway sources from-wsdl` as an engineer runs
//! them, and the examples of docs/mapping-suggest.md and docs/from-wsdl.md (every `gateway` command
//! line is run; the printed example outputs are what the commands print).

mod support;

use std::path::{Path, PathBuf};
use support::{gateway, repo};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gw-suggest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_in(dir: &Path, args: &[String]) -> std::process::Output {
    gateway().current_dir(dir).args(args).output().expect("run gateway")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The fenced blocks of `lang` in a doc file.
fn blocks(doc: &str, lang: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("docs").join(doc)).unwrap();
    let fence = format!("```{lang}\n");
    text.split(fence.as_str())
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_string())
        .collect()
}

/// The `gateway ...` command lines of a doc's `sh` blocks, as arguments; paths of repository
/// files made absolute so that the commands run from a temporary folder.
fn doc_commands(doc: &str) -> Vec<Vec<String>> {
    blocks(doc, "sh")
        .iter()
        .flat_map(|b| b.lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| l.strip_prefix("gateway ").map(str::to_string))
        .map(|l| {
            l.split_whitespace()
                .map(|a| {
                    let p = repo().join(a);
                    if a.contains('/') && p.exists() {
                        p.display().to_string()
                    } else {
                        a.to_string()
                    }
                })
                .collect()
        })
        .collect()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn suggest_writes_a_mapping_folder_whose_embedded_tests_pass_as_written() {
    let dir = temp_dir("folder");
    let sample = repo().join("mappings/nanchang-amr-penalty/samples/records.jsonl");
    let out = run_in(
        &dir,
        &args(&["mappings", "suggest", sample.to_str().unwrap(), "-o", "nc"]),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mapping = std::fs::read_to_string(dir.join("nc/mapping.toml")).unwrap();
    assert!(mapping.contains("id = \"nc\""));
    assert!(
        mapping.contains("# 置信度 0.9"),
        "evidence and confidence above each field"
    );
    assert!(
        mapping.contains("[[test]]") && mapping.contains("请核对"),
        "tests marked for checking"
    );
    let kinds = std::fs::read_to_string(dir.join("nc/penalty_kinds.csv")).unwrap();
    assert!(
        kinds.starts_with("source,target,note\n") && kinds.contains("罚款,fine"),
        "{kinds}"
    );
    assert!(text(&out.stderr).contains("embedded test(s) pass"));

    let test = run_in(&dir, &args(&["mappings", "test", "nc"]));
    assert_eq!(
        test.status.code(),
        Some(0),
        "{}{}",
        text(&test.stdout),
        text(&test.stderr)
    );

    let again = run_in(
        &dir,
        &args(&["mappings", "suggest", sample.to_str().unwrap(), "-o", "nc"]),
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("--force"), "{}", text(&again.stderr));
    let forced = run_in(
        &dir,
        &args(&["mappings", "suggest", sample.to_str().unwrap(), "-o", "nc", "--force"]),
    );
    assert_eq!(forced.status.code(), Some(0));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn suggest_reads_soap_xml_answers_and_csv_exports_and_prints_a_self_contained_mapping() {
    let dir = temp_dir("formats");
    let xml = repo().join("mappings/jiangxi-ecology-soap/samples/records.xml");
    let out = run_in(
        &dir,
        &args(&[
            "mappings",
            "suggest",
            xml.to_str().unwrap(),
            "--xml-records",
            "Envelope.Body.queryCasesResponse.return.case",
            "--case-type",
            "inspection",
        ]),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mapping = text(&out.stdout);
    assert!(mapping.contains("case_type = \"inspection\""));
    assert!(mapping.contains("from = \"xdr.zjhm\""), "nested XML fields by path");
    assert!(
        mapping.contains("zip = { name = \"jcry\", cert_no = \"zfzh\" }"),
        "{mapping}"
    );
    assert!(mapping.contains("values = {"), "code tables inline without -o");
    let found = run_in(
        &dir,
        &args(&[
            "mappings",
            "suggest",
            xml.to_str().unwrap(),
            "--case-type",
            "inspection",
        ]),
    );
    assert_eq!(found.status.code(), Some(0), "{}", text(&found.stderr));
    assert!(
        text(&found.stderr).contains("Envelope.Body.queryCasesResponse.return.case"),
        "the record elements found without --xml-records: {}",
        text(&found.stderr)
    );
    assert_eq!(text(&found.stdout), mapping, "the same proposal as with the path given");
    std::fs::create_dir_all(dir.join("xml")).unwrap();
    std::fs::write(dir.join("xml/mapping.toml"), &mapping).unwrap();

    let mixed = run_in(
        &dir,
        &args(&["mappings", "suggest", xml.to_str().unwrap(), "-o", "mixed"]),
    );
    assert_eq!(mixed.status.code(), Some(0), "{}", text(&mixed.stderr));
    assert!(
        text(&mixed.stderr).contains("read from ajlx"),
        "{}",
        text(&mixed.stderr)
    );
    let mapping = std::fs::read_to_string(dir.join("mixed/mapping.toml")).unwrap();
    assert!(mapping.contains("case_type = { from = \"ajlx\""), "{mapping}");
    assert!(std::fs::read_to_string(dir.join("mixed/case_types.csv"))
        .unwrap()
        .contains("02,penalty"));

    let csv = repo().join("normalizer/tests/suggest_heldout/csv-chinese-penalty/records.csv");
    let out = run_in(&dir, &args(&["mappings", "suggest", csv.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mapping = text(&out.stdout);
    assert!(mapping.contains("from = \"罚款金额（万元）\""), "{mapping}");
    assert!(mapping.contains("unit = \"wan_yuan\""));
    std::fs::create_dir_all(dir.join("csv")).unwrap();
    std::fs::write(dir.join("csv/mapping.toml"), &mapping).unwrap();

    let test = run_in(&dir, &args(&["mappings", "test", "xml", "csv", "mixed"]));
    assert_eq!(
        test.status.code(),
        Some(0),
        "{}{}",
        text(&test.stdout),
        text(&test.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn suggest_refuses_an_unknown_case_type_and_samples_without_records() {
    let dir = temp_dir("errors");
    std::fs::write(dir.join("empty.jsonl"), "").unwrap();
    let out = run_in(&dir, &args(&["mappings", "suggest", "empty.jsonl"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no records"), "{}", text(&out.stderr));
    std::fs::write(dir.join("one.jsonl"), "{\"ajbh\":\"X\"}\n").unwrap();
    let out = run_in(
        &dir,
        &args(&["mappings", "suggest", "one.jsonl", "--case-type", "plan"]),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--case-type") && err.contains("inspection, penalty or coercion"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn from_wsdl_prints_the_operations_and_a_block_and_writes_the_template() {
    let dir = temp_dir("wsdl");
    let wsdl = repo().join("adapters/tests/wsdl/case-service.wsdl");
    let out = run_in(
        &dir,
        &args(&["sources", "from-wsdl", wsdl.to_str().unwrap(), "-o", "soap"]),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("#   getCaseDetail (port CaseQuerySoap11Port, SOAP 1.1, document)"));
    assert!(printed.contains("queryCases (port CaseQuerySoap11Port, SOAP 1.1, document)  ← 提议 / proposed"));
    let config: toml::Table = printed.parse().unwrap();
    let source = config["sources"].as_array().unwrap()[0].as_table().unwrap();
    assert_eq!(source["id"].as_str(), Some("query-cases"));
    assert_eq!(
        source["soap"]["envelope_template_file"].as_str(),
        Some("soap/queryCases.xml")
    );
    let template = std::fs::read_to_string(dir.join("soap/queryCases.xml")).unwrap();
    assert!(template.contains("<pageNo>{{page}}</pageNo>"));

    let out = run_in(
        &dir,
        &args(&[
            "sources",
            "from-wsdl",
            wsdl.to_str().unwrap(),
            "--operation",
            "queryCase",
        ]),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("available: queryCases, getCaseDetail"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_commands_of_the_suggest_doc_run_and_its_example_output_is_what_the_command_prints() {
    let dir = temp_dir("doc-suggest");
    for command in doc_commands("mapping-suggest.md") {
        let out = run_in(&dir, &command);
        assert_eq!(out.status.code(), Some(0), "gateway {command:?}: {}", text(&out.stderr));
    }
    let samples = blocks("mapping-suggest.md", "jsonl");
    assert_eq!(samples.len(), 1);
    std::fs::write(dir.join("samples.jsonl"), &samples[0]).unwrap();
    let out = run_in(
        &dir,
        &args(&["mappings", "suggest", "samples.jsonl", "--id", "nanchang-cf"]),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let toml_blocks = blocks("mapping-suggest.md", "toml");
    assert_eq!(toml_blocks.len(), 1);
    assert_eq!(
        text(&out.stdout),
        toml_blocks[0],
        "the doc shows what the command prints"
    );
    std::fs::create_dir_all(dir.join("doc")).unwrap();
    std::fs::write(dir.join("doc/mapping.toml"), &toml_blocks[0]).unwrap();
    let test = run_in(&dir, &args(&["mappings", "test", "doc"]));
    assert_eq!(test.status.code(), Some(0), "{}", text(&test.stdout));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_command_of_the_wsdl_doc_prints_the_block_and_template_the_doc_shows() {
    let dir = temp_dir("doc-wsdl");
    let commands = doc_commands("from-wsdl.md");
    assert_eq!(commands.len(), 1);
    let out = run_in(&dir, &commands[0]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let block = &printed[printed.find("# 由 gateway sources").unwrap()..];
    assert_eq!(block, blocks("from-wsdl.md", "toml")[0]);
    let template = std::fs::read_to_string(dir.join("soap/queryCases.xml")).unwrap();
    assert_eq!(template, blocks("from-wsdl.md", "xml")[0]);
    std::fs::remove_dir_all(&dir).ok();
}

//! End-to-end tests of spreadsheets and text encodings (docs/spreadsheets.md): the fill-in
//! template written by `gateway template xlsx`, filled in here (rust_xlsxwriter) the way a
//! department's clerk would, read back through a drop folder and through the dashboard's upload
//! route; a GBK CSV saved by Excel on a Chinese Windows desktop, detected without configuration;
//! `gateway normalize` with `--encoding`, `--sheet` and `--header-row`.

mod support;

use calamine::{Data, Reader};
use reqwest::StatusCode;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
use serde_json::Value;
use std::path::{Path, PathBuf};
use support::gw::*;
use support::{path_str, repo, Backend, Env, AGENCY_CODE};

/// The template's data sheet.
const SHEET: &str = "行政处罚";
/// The source of filled-in penalty templates in these tests.
const UPLOADS: &str = "xlsx-penalty";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn template_mapping() -> PathBuf {
    repo().join("mappings/xlsx-template-penalty/mapping.toml")
}

/// What a clerk types into a cell.
#[derive(Clone)]
enum Cell {
    Text(&'static str),
    Owned(String),
    Number(f64),
    Date(u16, u8, u8),
}

/// A penalty row that passes every rule, by column title; `case` its 部门案件编号.
fn valid_row(case: &str) -> Vec<(&'static str, Cell)> {
    vec![
        ("执法部门名称", Cell::Text("南昌市市场监督管理局")),
        ("执法部门统一社会信用代码", Cell::Text(AGENCY_CODE)),
        ("执法部门行政区划代码", Cell::Text("360100")),
        ("部门案件编号", Cell::Owned(case.to_string())),
        (
            "案件(行为)名称",
            Cell::Owned(format!("南昌赣江商贸有限公司未按规定明码标价案{case}")),
        ),
        ("监管事项目录编码", Cell::Text("36010000100012")),
        // Chosen from the drop-down lists.
        ("行政相对人类别", Cell::Text("法人及非法人组织")),
        ("行政相对人名称", Cell::Text("南昌赣江商贸有限公司")),
        ("行政相对人证件类型", Cell::Text("统一社会信用代码")),
        ("行政相对人证件号码", Cell::Text("91360102MA35G7K86A")),
        ("执法依据", Cell::Text("《中华人民共和国价格法》第十三条")),
        ("执法人员姓名", Cell::Text("张三、李四")),
        ("执法证号", Cell::Text("36010020001、36010020002")),
        ("案件来源", Cell::Text("投诉举报")),
        ("结案(办结)日期", Cell::Date(2024, 2, 8)),
        ("行政处罚决定书文号", Cell::Owned(format!("洪市监罚〔2024〕{case}号"))),
        ("立案日期", Cell::Date(2024, 1, 5)),
        ("处罚决定日期", Cell::Date(2024, 1, 22)),
        ("处罚程序", Cell::Text("普通程序")),
        ("处罚种类", Cell::Text("罚款、警告")),
        ("违法事实", Cell::Text("经营场所内销售的商品未按规定标明价格")),
        ("罚款金额(元)", Cell::Number(2000.0)),
    ]
}

fn with(mut row: Vec<(&'static str, Cell)>, title: &str, cell: Cell) -> Vec<(&'static str, Cell)> {
    let slot = row.iter_mut().find(|(t, _)| *t == title).expect("a column of the row");
    slot.1 = cell;
    row
}

/// Write the template with the CLI; its column titles (row 2 of the data sheet).
fn write_template(dir: &Path) -> (PathBuf, Vec<String>) {
    let path = dir.join("模板.xlsx");
    let mapping_out = dir.join("mapping.toml");
    let out = support::gateway()
        .args([
            "template",
            "xlsx",
            "--case-type",
            "penalty",
            "-o",
            path_str(&path),
            "--mapping-out",
            path_str(&mapping_out),
        ])
        .output()
        .expect("run gateway template");
    support::assert_success(&out, "template xlsx");
    assert_eq!(
        std::fs::read_to_string(&mapping_out).expect("mapping written"),
        std::fs::read_to_string(template_mapping()).expect("committed mapping"),
        "--mapping-out writes the committed template mapping"
    );
    let mut workbook = calamine::open_workbook_auto(&path).expect("the template opens");
    let names = workbook.sheet_names();
    assert_eq!(names, vec![SHEET.to_string(), "说明".into(), "代码表".into()]);
    let range = workbook.worksheet_range(SHEET).expect("data sheet");
    let titles: Vec<String> = (0..=range.end().expect("cells").1)
        .filter_map(|c| match range.get_value((1, c)) {
            Some(Data::String(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    let lists = workbook.worksheet_range("代码表").expect("lists");
    let listed: Vec<String> = lists.cells().map(|(_, _, v)| v.to_string()).collect();
    assert!(
        listed.contains(&"普通程序".to_string()) && listed.contains(&"法人及非法人组织".to_string()),
        "the drop-down lists hold the Chinese names: {listed:?}"
    );
    (path, titles)
}

/// A filled-in copy of the template: the title row, the column titles, then `rows` from row 3;
/// the 说明 sheet kept (it is not read).
fn filled_workbook(titles: &[String], rows: &[Vec<(&'static str, Cell)>]) -> Vec<u8> {
    let mut wb = Workbook::new();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let sheet = wb.add_worksheet().set_name(SHEET).expect("name");
    sheet.write_string(0, 0, "行政处罚案件填报模板").expect("title");
    for (c, t) in titles.iter().enumerate() {
        sheet.write_string(1, c as u16, t).expect("header");
    }
    for (r, row) in rows.iter().enumerate() {
        let r = r as u32 + 2;
        for (title, cell) in row {
            let c = titles
                .iter()
                .position(|t| t == title)
                .unwrap_or_else(|| panic!("column {title}")) as u16;
            match cell {
                Cell::Text(t) => sheet.write_string(r, c, *t).map(|_| ()),
                Cell::Owned(t) => sheet.write_string(r, c, t).map(|_| ()),
                Cell::Number(n) => sheet.write_number(r, c, *n).map(|_| ()),
                Cell::Date(y, m, d) => {
                    let day = ExcelDateTime::from_ymd(*y, *m, *d).expect("date");
                    sheet.write_datetime_with_format(r, c, &day, &date).map(|_| ())
                }
            }
            .expect("cell");
        }
    }
    wb.add_worksheet()
        .set_name("说明")
        .expect("name")
        .write_string(0, 0, "列名")
        .expect("cell");
    wb.save_to_buffer().expect("xlsx")
}

/// A CSV of `rows` under the titles they use, as Excel on a Chinese Windows desktop saves it:
/// GBK. Dates as text.
fn gbk_csv(rows: &[Vec<(&'static str, Cell)>]) -> Vec<u8> {
    let titles: Vec<&str> = rows[0].iter().map(|(t, _)| *t).collect();
    let mut text = titles.join(",");
    text.push_str("\r\n");
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .map(|(_, cell)| match cell {
                Cell::Text(t) => t.to_string(),
                Cell::Owned(t) => t.clone(),
                Cell::Number(n) => n.to_string(),
                Cell::Date(y, m, d) => format!("{y}-{m:02}-{d:02}"),
            })
            .collect();
        text.push_str(&cells.join(","));
        text.push_str("\r\n");
    }
    encoding_rs::GBK.encode(&text).0.into_owned()
}

async fn a_drop_folder_takes_a_gbk_csv_and_a_filled_in_template_by_their_extensions(backend: Backend) {
    let sources = format!(
        "[[sources]]\nid = \"{UPLOADS}\"\nkind = \"directory\"\ndirectory = \"inbox\"\nmapping = \"{m}\"\nformat = \"csv\"\nrecord_key = \"部门案件编号\"\nsheet = \"{SHEET}\"\nheader_row = 2\n\n\
         [[sources]]\nid = \"backfill\"\nkind = \"file\"\nmapping = \"{m}\"\nformat = \"jsonl\"\nrecord_key = \"部门案件编号\"\n",
        m = template_mapping().display()
    );
    let env = Env::with_sources(backend, &sources).await;
    let inbox = env.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let (_, titles) = write_template(env.dir.path());
    // The CSV: no `encoding` key, detected as GB18030; its second row holds a byte that is no
    // GBK (0xFF), on line 3.
    let mut csv = gbk_csv(&[valid_row("CSV-1"), valid_row("CSV-2"), valid_row("CSV-3")]);
    let second = encoding_rs::GBK.encode("CSV-2").0.into_owned();
    let at = csv
        .windows(second.len())
        .position(|w| w == second.as_slice())
        .expect("row 2");
    csv[at + second.len() + 1] = 0xFF;
    std::fs::write(inbox.join("cases.csv"), &csv).expect("csv");
    let xlsx = filled_workbook(&titles, &[valid_row("XLSX-1"), valid_row("XLSX-2")]);
    std::fs::write(inbox.join("填报.xlsx"), xlsx).expect("xlsx");
    let out = env
        .cmd(&["run", "--config", path_str(&env.config), "--once"])
        .output()
        .expect("run");
    support::assert_success(&out, "run --once");
    let cases = env.export("cases");
    let mut keys: Vec<String> = cases
        .iter()
        .map(|c| c["record"]["case_number"].as_str().unwrap_or_default().to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, ["CSV-1", "CSV-3", "XLSX-1", "XLSX-2"], "{cases:?}");
    let first = cases
        .iter()
        .find(|c| c["record"]["case_number"] == "CSV-1")
        .expect("CSV-1");
    assert_eq!(first["record"]["target"]["name"], "南昌赣江商贸有限公司", "GBK decoded");
    assert_eq!(first["record"]["penalty"]["procedure"], "ordinary");
    assert_eq!(
        first["record"]["penalty"]["kinds"],
        serde_json::json!(["fine", "warning"])
    );
    let from_sheet = cases
        .iter()
        .find(|c| c["record"]["case_number"] == "XLSX-1")
        .expect("XLSX-1");
    assert_eq!(
        from_sheet["record"]["penalty"]["decision_date"], "2024-01-22",
        "a date cell"
    );
    assert_eq!(from_sheet["record"]["penalty"]["fine_amount"].as_f64(), Some(2000.0));
    let quarantine = env.export("quarantine");
    assert_eq!(quarantine.len(), 1, "{quarantine:?}");
    let entry = quarantine[0].to_string();
    assert!(
        entry.contains("cases.csv:3") && entry.contains("第 3 行") && entry.contains("not valid GB18030"),
        "the undecodable row is set aside with its line: {entry}"
    );
    assert!(inbox.join("processed/cases.csv").is_file());
    assert!(inbox.join("processed/填报.xlsx").is_file());
    // Its kept row is a readable object (with U+FFFD in it): a replay must not make it a case.
    let replayed = env.replay_source(UPLOADS);
    assert_eq!(replayed["accepted"], 0, "{replayed}");
    assert_eq!(env.export("cases").len(), 4);
    let still = env.export("quarantine");
    assert!(still[0].to_string().contains("第 3 行"), "{still:?}");
    assert_eq!(still[0]["violations"][0]["rule"], "input.undecodable");
    // `gateway ingest` of a workbook into a source configured for JSON lines: the extension
    // names the format, the sheet and header row are given on the command line.
    let backfill = env.dir.path().join("补录.xlsx");
    std::fs::write(&backfill, filled_workbook(&titles, &[valid_row("INGEST-1")])).expect("xlsx");
    let out = env
        .cmd(&[
            "ingest",
            "--config",
            path_str(&env.config),
            "--source",
            "backfill",
            "--quiet",
        ])
        .args(["--sheet", SHEET, "--header-row", "2", path_str(&backfill)])
        .output()
        .expect("ingest");
    support::assert_success(&out, "ingest xlsx");
    let summary = support::summary_line(&out);
    assert_eq!(summary["accepted"], 1, "{summary}");
}
on_both_backends!(a_drop_folder_takes_a_gbk_csv_and_a_filled_in_template_by_their_extensions);

fn upload_options() -> Options {
    Options {
        dept_sources: vec![UPLOADS.into()],
        extra: format!(
            "[[sources]]\nid = \"{UPLOADS}\"\nkind = \"push\"\nmapping = \"{}\"\nformat = \"xlsx\"\nrecord_key = \"部门案件编号\"\nsheet = \"{SHEET}\"\nheader_row = 2\nagencies = [\"{AGENCY_CODE}\"]\n",
            template_mapping().display()
        ),
        ..Options::default()
    }
}

fn violation<'a>(row: &'a Value, rule: &str) -> &'a Value {
    row["violations"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["rule"] == rule))
        .unwrap_or_else(|| panic!("no {rule} in {row}"))
}

async fn an_uploaded_template_answers_per_row_with_codes_and_bilingual_reasons(backend: Backend) {
    let gw = Gw::start_with(backend, upload_options()).await;
    let dir = tempfile::tempdir().expect("dir");
    let (_, titles) = write_template(dir.path());
    let rows = [
        valid_row("UP-1"),
        with(
            valid_row("UP-2"),
            "行政相对人证件号码",
            Cell::Text("91360102MA35G7K86B"),
        ),
        with(valid_row("UP-3"), "处罚程序", Cell::Text("一般程序")),
        // A natural person's ID number typed as a number: Excel keeps 15 digits of it.
        with(
            with(valid_row("UP-4"), "行政相对人类别", Cell::Text("自然人")),
            "行政相对人证件号码",
            Cell::Number(360102199001011234.0),
        ),
    ];
    let xlsx = filled_workbook(&titles, &rows);
    let (status, answer) = gw.upload(UPLOADS, DEPT, XLSX, xlsx.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_schema(&openapi(), "UploadAnswer", &answer);
    assert_eq!(answer["format"], "xlsx");
    assert_eq!(answer["summary"]["accepted"], 1, "{answer}");
    assert_eq!(answer["summary"]["quarantined"], 3, "{answer}");
    let rows = answer["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["sheet"], SHEET);
        assert_eq!(
            row["row"],
            i + 3,
            "Excel's row numbers, under the title and header rows"
        );
    }
    assert_eq!(rows[0]["result"], "accepted");
    assert!(rows[0]["code"].as_str().is_some_and(|c| !c.is_empty()), "{}", rows[0]);
    let bad_code = violation(&rows[1], "uscc.check_char");
    assert_eq!(bad_code["pointer"], "/target/id_number");
    assert_eq!(bad_code["value"], "91360102MA35G7K86B");
    assert!(bad_code["message_zh"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(bad_code["message_en"].as_str().is_some_and(|m| !m.is_empty()));
    let unlisted = violation(&rows[2], "mapping.unmapped_code");
    assert_eq!(unlisted["pointer"], "/penalty/procedure");
    assert_eq!(unlisted["value"], "一般程序");
    let rounded = violation(&rows[3], "input.cell");
    let (zh, en) = (rounded["message_zh"].to_string(), rounded["message_en"].to_string());
    assert!(zh.contains("第 6 行") && zh.contains("文本"), "{zh}");
    assert!(
        en.contains("row 6 of sheet 行政处罚") && en.contains("format the column as Text"),
        "{en}"
    );
    // Sent again: nothing is lost or doubled; the accepted row is unchanged.
    let (_, again) = gw.upload(UPLOADS, DEPT, XLSX, xlsx.clone()).await;
    assert_eq!(again["rows"][0]["result"], "unchanged", "{again}");
    assert_eq!(again["rows"][0]["code"], rows[0]["code"]);
    // Another department's token, and a format that is no spreadsheet, are refused.
    let (status, _) = gw.upload(UPLOADS, DEPT_OTHER, XLSX, xlsx).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, refused) = gw.upload(UPLOADS, DEPT, "application/json", b"[]".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{refused}");
    // A GBK CSV without a charset: detected.
    let (status, csv) = gw
        .upload(UPLOADS, DEPT, "text/csv", gbk_csv(&[valid_row("UP-5")]))
        .await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    assert_eq!(csv["encoding"], "GB18030");
    assert_eq!(csv["rows"][0]["result"], "accepted", "{csv}");
    assert_eq!(csv["rows"][0]["row"], 2);
    assert_eq!(csv["rows"][0]["sheet"], Value::Null);
    gw.stop().await;
}
on_both_backends!(an_uploaded_template_answers_per_row_with_codes_and_bilingual_reasons);

#[test]
fn normalize_reads_a_sheet_under_its_header_row_and_a_csv_in_the_encoding_given() {
    let dir = tempfile::tempdir().expect("dir");
    let (_, titles) = write_template(dir.path());
    let xlsx = dir.path().join("filled.xlsx");
    std::fs::write(&xlsx, filled_workbook(&titles, &[valid_row("N-1")])).expect("xlsx");
    let out = support::gateway()
        .args(["normalize", "--mapping", path_str(&template_mapping())])
        .args(["--sheet", SHEET, "--header-row", "2", path_str(&xlsx)])
        .output()
        .expect("normalize");
    support::assert_success(&out, "normalize xlsx");
    let line: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(line["accepted"], true, "{line}");
    assert_eq!(line["position"], "filled.xlsx:行政处罚:3");
    // GBK read as UTF-8 because told so: the row is refused naming its line and the key to set.
    let csv = dir.path().join("cases.txt");
    std::fs::write(&csv, gbk_csv(&[valid_row("N-2")])).expect("csv");
    let out = support::gateway()
        .args(["normalize", "--mapping", path_str(&template_mapping())])
        .args(["--format", "csv", "--encoding", "utf-8", path_str(&csv)])
        .output()
        .expect("normalize");
    // Its header is Chinese: the whole file is refused, naming line 1.
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("line 1 is not valid UTF-8") && text.contains("encoding"),
        "{text}"
    );
    let out = support::gateway()
        .args(["normalize", "--mapping", path_str(&template_mapping())])
        .args(["--format", "csv", "--encoding", "gbk", path_str(&csv)])
        .output()
        .expect("normalize");
    support::assert_success(&out, "normalize csv --encoding gbk");
    let out = support::gateway()
        .args(["normalize", "--mapping", path_str(&template_mapping())])
        .args(["--format", "csv", "--encoding", "big5", path_str(&csv)])
        .output()
        .expect("normalize");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--encoding = \"big5\""));
}

/// The fenced blocks of `lang` in docs/spreadsheets.md.
fn doc_blocks(lang: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(repo().join("docs/spreadsheets.md")).expect("docs/spreadsheets.md");
    let fence = format!("```{lang}\n");
    doc.split(fence.as_str())
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_examples_of_the_docs_load_and_parse() {
    use clap::Parser;
    let blocks = doc_blocks("toml");
    assert_eq!(blocks.len(), 2, "the source examples");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(dir.path().join("mappings")).expect("dir");
    support::copy_mapping("xlsx-template-penalty", &dir.path().join("mappings"));
    for block in blocks {
        let text = format!("[store]\nbackend = \"sqlite\"\npath = \"data/gateway.db\"\n\n{block}");
        let config = gateway::config::Config::parse(&text, "gateway.toml", dir.path())
            .and_then(|c| c.resolve("gateway.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{block}"));
        let source = &config.config.sources[0];
        let settings = gateway::prepare::ReadSettings::of_source(source).expect("reading settings");
        assert!(gateway::prepare::InputFormat::parse(&source.format).is_some());
        if source.format == "xlsx" {
            assert_eq!(settings.sheets.sheet.as_deref(), Some(SHEET));
            assert_eq!(settings.sheets.header_row, 2);
        } else {
            assert_eq!(settings.encoding, gateway::prepare::TextEncoding::Gbk);
        }
    }
    // A wrong key is named with its value when the configuration is loaded.
    let wrong = format!(
        "[store]\nbackend = \"sqlite\"\npath = \"data/gateway.db\"\n\n{}",
        doc_blocks("toml")[0].replace("encoding = \"gbk\"", "encoding = \"big5\"")
    );
    let e = gateway::config::Config::parse(&wrong, "gateway.toml", dir.path())
        .and_then(|c| c.resolve("gateway.toml"))
        .map(|_| ())
        .expect_err("big5 is refused");
    assert!(e.to_string().contains("encoding = \"big5\""), "{e}");
    let commands: Vec<String> = doc_blocks("sh")
        .iter()
        .flat_map(|b| b.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| l.starts_with("gateway "))
        .collect();
    assert_eq!(commands.len(), 6, "{commands:?}");
    for line in commands {
        gateway::cli::Cli::try_parse_from(line.split_whitespace()).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    // The template command as written in the docs runs.
    let out = support::gateway()
        .current_dir(dir.path())
        .args([
            "template",
            "xlsx",
            "--case-type",
            "penalty",
            "-o",
            "行政处罚填报模板.xlsx",
        ])
        .output()
        .expect("template");
    support::assert_success(&out, "template xlsx");
    assert!(dir.path().join("行政处罚填报模板.xlsx").is_file());
}

//! Spreadsheets (.xlsx, and .xls, .xlsb and .ods, which the `calamine` crate reads alike):
//! departments without an interface fill in a sheet per case type. Each row under the header
//! row becomes one record, a JSON object of texts keyed by the header's column titles, like a
//! CSV row; its position is `file:sheet:row` (the row number as Excel shows it).
//!
//! - Every sheet is read, except those named [`INSTRUCTIONS_SHEET`] and [`LISTS_SHEET`] (the
//!   fill-in template's instructions and lists of values), or only the sheet named by `sheet`.
//! - `header_row` (1 = the first row) is the row of column titles: rows above it (a title row
//!   of the template) are skipped. Empty rows are skipped.
//! - A merged cell's value applies to every cell it covers (xlsx and xls).
//! - Dates as Excel stores them (serial day numbers in the 1900 or 1904 date system, in cells
//!   formatted as dates) become `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS` with a time of day.
//! - Numbers become their exact decimal text (`2000`, `0.2`). A whole number of more than 15
//!   digits cannot be held exactly by Excel (credit codes, ID numbers typed as numbers lose their
//!   last digits): such a cell is refused with a message asking for the column in text format,
//!   never passed on rounded; so is a cell holding an Excel error (`#N/A`).
//!
//! A row with a refused cell is an unreadable record (quarantined with the row as read).
//!
//! Untrusted workbooks are bounded: a zip-based workbook (.xlsx, .ods) whose parts expand to
//! more than [`MAX_EXPANDED_BYTES`] is refused before it is parsed (a zip bomb), and .xlsx
//! sheets are read cell by cell into a sparse grid of at most [`MAX_CELLS`] cells (a sheet with
//! one cell at A1 and one at XFD1048576 would otherwise be a grid of 17 billion cells).

use super::item::{ReadItem, SourceRecord, UnreadableRecord};
use calamine::{Data, Dimensions, Reader, Sheets};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Cursor;

/// A sheet that is not read unless named: the fill-in template's instructions (说明).
pub const INSTRUCTIONS_SHEET: &str = "说明";

/// A sheet that is not read unless named: the fill-in template's lists of values (代码表).
pub const LISTS_SHEET: &str = "代码表";

/// Which rows of a workbook are records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetSelection {
    /// Only this sheet (default: every sheet but [`INSTRUCTIONS_SHEET`] and [`LISTS_SHEET`]).
    pub sheet: Option<String>,
    /// The row of column titles, counted from 1 (default 1).
    pub header_row: u32,
}

impl Default for SheetSelection {
    fn default() -> Self {
        SheetSelection {
            sheet: None,
            header_row: 1,
        }
    }
}

/// A spreadsheet row with a cell that cannot be passed on exactly.
pub const RULE_CELL: &str = "input.cell";

/// Most cells (with a value) read from one sheet.
pub const MAX_CELLS: usize = 2_000_000;

/// Most merged regions of one sheet.
pub const MAX_MERGED: usize = 10_000;

/// Most bytes the parts of a zip-based workbook may expand to (256 MiB).
pub const MAX_EXPANDED_BYTES: u64 = 256 * 1024 * 1024;

/// Whole numbers from this size on have more than 15 digits: Excel does not keep them exactly.
const EXACT_LIMIT: f64 = 1e15;

/// Read the records of a workbook held in `bytes`; `name` is the file name in positions. Calls
/// `sink` per row until it returns false. An error is a bilingual message: the bytes are not a
/// workbook, or the named sheet is missing.
pub fn read_workbook(
    bytes: Vec<u8>,
    name: &str,
    selection: &SheetSelection,
    mut sink: impl FnMut(ReadItem) -> bool,
) -> Result<(), String> {
    check_expansion(&bytes)?;
    let mut workbook = calamine::open_workbook_auto_from_rs(Cursor::new(bytes)).map_err(|e| {
        format!("不是可读取的电子表格（xlsx、xls、ods） / not a readable spreadsheet (xlsx, xls, ods): {e}")
    })?;
    let names = workbook.sheet_names();
    let sheets: Vec<String> = match &selection.sheet {
        Some(wanted) => {
            if !names.iter().any(|n| n == wanted) {
                return Err(format!(
                    "没有名为 {wanted:?} 的工作表（有：{all}） / no sheet named {wanted:?} (sheets: {all})",
                    all = names.join(", ")
                ));
            }
            vec![wanted.clone()]
        }
        None => names
            .into_iter()
            .filter(|n| n != INSTRUCTIONS_SHEET && n != LISTS_SHEET)
            .collect(),
    };
    for sheet in sheets {
        let cells = sheet_cells(&mut workbook, &sheet)?;
        let merged = merged_regions(&mut workbook, &sheet);
        if merged.len() > MAX_MERGED {
            return Err(format!(
                "工作表 {sheet:?} 的合并单元格超过 {MAX_MERGED} 处 / sheet {sheet:?} has more than {MAX_MERGED} merged regions"
            ));
        }
        let grid = Grid { cells, merged };
        if !read_sheet(&grid, name, &sheet, selection.header_row, &mut sink)? {
            break;
        }
    }
    Ok(())
}

/// Refuse a zip-based workbook whose parts expand to more than [`MAX_EXPANDED_BYTES`].
fn check_expansion(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(b"PK") {
        return Ok(());
    }
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        // Not a zip archive after all: calamine says what it is not.
        return Ok(());
    };
    let mut total = 0u64;
    for i in 0..archive.len() {
        if let Ok(part) = archive.by_index_raw(i) {
            total = total.saturating_add(part.size());
        }
    }
    if total > MAX_EXPANDED_BYTES {
        return Err(format!(
            "表格解压后有 {total} 字节，超过上限 {MAX_EXPANDED_BYTES}：请拆分后再发送 / the workbook expands to {total} bytes, more than {MAX_EXPANDED_BYTES}: split it"
        ));
    }
    Ok(())
}

/// The cells with a value of a sheet, by absolute (row, column). An .xlsx sheet is read cell by
/// cell, at most [`MAX_CELLS`]; other formats come whole from calamine.
fn sheet_cells(workbook: &mut Sheets<Cursor<Vec<u8>>>, sheet: &str) -> Result<BTreeMap<(u32, u32), Data>, String> {
    let unreadable =
        |e: &dyn std::fmt::Display| format!("工作表 {sheet:?} 无法读取 / sheet {sheet:?} cannot be read: {e}");
    let too_many = || {
        format!(
            "工作表 {sheet:?} 的单元格超过 {MAX_CELLS} 个：请拆分后再发送 / sheet {sheet:?} has more than {MAX_CELLS} cells: split it"
        )
    };
    let mut cells = BTreeMap::new();
    if let Sheets::Xlsx(x) = workbook {
        let mut reader = x.worksheet_cells_reader(sheet).map_err(|e| unreadable(&e))?;
        while let Some(cell) = reader.next_cell().map_err(|e| unreadable(&e))? {
            let value = Data::from(cell.get_value().clone());
            if value == Data::Empty {
                continue;
            }
            if cells.len() >= MAX_CELLS {
                return Err(too_many());
            }
            cells.insert(cell.get_position(), value);
        }
        return Ok(cells);
    }
    let range = workbook.worksheet_range(sheet).map_err(|e| unreadable(&e))?;
    for (row, col, value) in range.used_cells() {
        if cells.len() >= MAX_CELLS {
            return Err(too_many());
        }
        let (r0, c0) = range.start().unwrap_or_default();
        cells.insert((r0 + row as u32, c0 + col as u32), value.clone());
    }
    Ok(cells)
}

/// The merged regions of a sheet (none for formats calamine gives none for).
fn merged_regions(workbook: &mut Sheets<Cursor<Vec<u8>>>, sheet: &str) -> Vec<Dimensions> {
    match workbook {
        Sheets::Xlsx(x) => x.merge_cells_by_sheet_name(sheet).unwrap_or_default(),
        Sheets::Xls(x) => x.merge_cells_by_sheet_name(sheet).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A sheet's cells (sparse), with merged regions filled from their top-left cell.
struct Grid {
    cells: BTreeMap<(u32, u32), Data>,
    merged: Vec<Dimensions>,
}

impl Grid {
    /// The cell at absolute (row, column), both from 0.
    fn cell(&self, row: u32, col: u32) -> &Data {
        let at = self
            .merged
            .iter()
            .find(|d| d.start.0 <= row && row <= d.end.0 && d.start.1 <= col && col <= d.end.1)
            .map_or((row, col), |d| d.start);
        self.cells.get(&at).unwrap_or(&Data::Empty)
    }

    /// The rows holding a value at or after `from` (absolute, from 0), in order, with the rows
    /// merged regions cover.
    fn rows_from(&self, from: u32) -> Vec<u32> {
        let mut rows: Vec<u32> = self.cells.range((from, 0)..).map(|((r, _), _)| *r).collect();
        for d in &self.merged {
            rows.extend((d.start.0.max(from))..=d.end.0);
        }
        rows.sort_unstable();
        rows.dedup();
        rows
    }

    /// The columns holding a value in `row`, and those merged regions cover there.
    fn columns_of(&self, row: u32) -> Vec<u32> {
        let mut cols: Vec<u32> = self
            .cells
            .range((row, 0)..=(row, u32::MAX))
            .map(|((_, c), _)| *c)
            .collect();
        for d in self.merged.iter().filter(|d| d.start.0 <= row && row <= d.end.0) {
            cols.extend(d.start.1..=d.end.1);
        }
        cols.sort_unstable();
        cols.dedup();
        cols
    }
}

/// Read one sheet's rows; false when `sink` asked to stop. A sheet whose rows by columns
/// exceed [`MAX_CELLS`] (merged regions counted) is refused.
fn read_sheet(
    grid: &Grid,
    name: &str,
    sheet: &str,
    header_row: u32,
    sink: &mut impl FnMut(ReadItem) -> bool,
) -> Result<bool, String> {
    let header = header_row.saturating_sub(1);
    let mut columns: Vec<(u32, String)> = Vec::new();
    for col in grid.columns_of(header) {
        let title = match cell_text(grid.cell(header, col)) {
            Ok(t) => t.trim().to_string(),
            Err(_) => String::new(),
        };
        if !title.is_empty() && !columns.iter().any(|(_, t)| *t == title) {
            columns.push((col, title));
        }
    }
    if columns.is_empty() {
        return Ok(true);
    }
    let rows = grid.rows_from(header + 1);
    if rows.len().saturating_mul(columns.len()) > MAX_CELLS {
        return Err(format!(
            "工作表 {sheet:?} 的行数乘列数超过 {MAX_CELLS}：请拆分后再发送 / sheet {sheet:?} has more than {MAX_CELLS} cells under its header: split it"
        ));
    }
    for row in rows {
        if columns.iter().all(|(col, _)| is_blank(grid.cell(row, *col))) {
            continue;
        }
        let number = row + 1;
        let position = format!("{name}:{sheet}:{number}");
        let mut object = Map::new();
        let mut problems = Vec::new();
        for (col, title) in &columns {
            let text = match cell_text(grid.cell(row, *col)) {
                Ok(text) => text,
                Err(problem) => {
                    let address = format!("{}{number}", column_letters(*col));
                    problems.push(problem.message(&address, title));
                    problem.raw
                }
            };
            object.insert(title.clone(), Value::String(text));
        }
        let value = Value::Object(object);
        let payload = serde_json::to_vec(&value).unwrap_or_default();
        let item = if problems.is_empty() {
            Ok(SourceRecord::parsed(value, payload, position))
        } else {
            Err(UnreadableRecord {
                payload,
                message: format!(
                    "工作表 {sheet} 第 {number} 行 / row {number} of sheet {sheet}: {}",
                    problems.join("; ")
                ),
                position,
                truncated: None,
                rule: Some(RULE_CELL),
            })
        };
        if !sink(item) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether a cell holds nothing (or only white space).
fn is_blank(cell: &Data) -> bool {
    match cell {
        Data::Empty => true,
        Data::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// A cell that cannot be passed on as text exactly.
#[derive(Debug)]
struct CellProblem {
    /// What is kept of the cell in the quarantined row.
    raw: String,
    zh: String,
    en: String,
}

impl CellProblem {
    fn message(&self, address: &str, title: &str) -> String {
        format!(
            "单元格 {address}（{title}）{} / cell {address} ({title}) {}",
            self.zh, self.en
        )
    }
}

/// A cell's value as text (see the module docs).
fn cell_text(cell: &Data) -> Result<String, CellProblem> {
    Ok(match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number_text(*f)?,
        Data::Bool(b) => if *b { "true" } else { "false" }.to_string(),
        Data::DateTime(dt) if dt.is_duration() => {
            let seconds = (dt.as_f64() * 86_400.0).round() as i64;
            format!("{}:{:02}:{:02}", seconds / 3600, seconds % 3600 / 60, seconds % 60)
        }
        Data::DateTime(dt) => {
            let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
            let serial = dt.as_f64();
            if (h, mi, s, ms) == (0, 0, 0, 0) {
                format!("{y:04}-{mo:02}-{d:02}")
            } else if serial < 1.0 {
                format!("{h:02}:{mi:02}:{s:02}")
            } else {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
            }
        }
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => {
            return Err(CellProblem {
                raw: e.to_string(),
                zh: format!("是错误值 {e}，请改正后重新上传"),
                en: format!("holds the error {e}: correct it and send the sheet again"),
            })
        }
    })
}

/// A number's exact text, or why it has none.
fn number_text(f: f64) -> Result<String, CellProblem> {
    if !f.is_finite() {
        return Err(CellProblem {
            raw: f.to_string(),
            zh: "不是有效的数字".into(),
            en: "is not a valid number".into(),
        });
    }
    if f.abs() >= EXACT_LIMIT {
        let shown = format!("{f:.0}");
        return Err(CellProblem {
            raw: shown.clone(),
            zh: format!(
                "是数字 {shown}，超过 Excel 能精确保存的 15 位有效数字（统一社会信用代码、身份证号等会丢失末几位）：请把该列设置为“文本”格式后重新填写"
            ),
            en: format!(
                "holds the number {shown}, beyond the 15 significant digits Excel keeps exactly (credit codes and ID numbers lose their last digits): format the column as Text and enter the value again"
            ),
        });
    }
    if f.fract() == 0.0 {
        // Exact: below 10^15 a whole f64 is an integer i64 holds.
        return Ok(format!("{}", f as i64));
    }
    Ok(format!("{f}"))
}

/// Excel's letters of a column counted from 0 (`A`, `Z`, `AA`).
pub fn column_letters(col: u32) -> String {
    let mut n = col + 1;
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(char::from(b'A' + rem as u8));
        n = (n - 1) / 26;
    }
    letters.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

    fn read(bytes: Vec<u8>, selection: &SheetSelection) -> Vec<ReadItem> {
        let mut items = Vec::new();
        read_workbook(bytes, "cases.xlsx", selection, |item| {
            items.push(item);
            true
        })
        .expect("readable workbook");
        items
    }

    fn record(item: &ReadItem) -> &Value {
        item.as_ref().expect("a record").value.as_ref().expect("parsed")
    }

    /// A template-like workbook: a merged title row above the header, two sheets, dates,
    /// numbers, a merged cell covering two rows, an empty row, and the instructions sheet.
    fn workbook() -> Vec<u8> {
        let mut wb = Workbook::new();
        let date = Format::new().set_num_format("yyyy-mm-dd");
        let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
        let sheet = wb.add_worksheet().set_name("行政处罚").expect("name");
        sheet
            .merge_range(0, 0, 0, 3, "行政处罚案件信息（2024年）", &Format::new())
            .expect("title");
        for (c, t) in ["案件编号", "执法部门", "罚款金额(元)", "处罚决定日期"]
            .iter()
            .enumerate()
        {
            sheet.write_string(1, c as u16, *t).expect("header");
        }
        sheet.write_string(2, 0, "NC-1").expect("cell");
        // One agency for rows 3 and 4 (Excel rows), as a merged cell.
        sheet
            .merge_range(2, 1, 3, 1, "南昌市市场监督管理局", &Format::new())
            .expect("merge");
        sheet.write_number(2, 2, 2000.0).expect("cell");
        let day = ExcelDateTime::from_ymd(2024, 3, 5).expect("date");
        sheet.write_datetime_with_format(2, 3, &day, &date).expect("date");
        sheet.write_string(3, 0, "NC-2").expect("cell");
        sheet.write_number(3, 2, 0.25).expect("cell");
        let moment = ExcelDateTime::from_ymd(2024, 3, 6)
            .expect("date")
            .and_hms(9, 30, 0)
            .expect("time");
        sheet
            .write_datetime_with_format(3, 3, &moment, &datetime)
            .expect("date");
        // Row 6 (Excel) left empty; row 7 has an ID number typed as a number.
        sheet.write_string(6, 0, "NC-3").expect("cell");
        sheet.write_number(6, 2, 360102199001011234.0).expect("cell");
        let other = wb.add_worksheet().set_name("第二批").expect("name");
        other.write_string(0, 0, "案件编号").expect("header");
        other.write_string(1, 0, "NC-9").expect("cell");
        let notes = wb.add_worksheet().set_name(INSTRUCTIONS_SHEET).expect("name");
        notes.write_string(0, 0, "列名").expect("cell");
        notes.write_string(1, 0, "案件编号").expect("cell");
        wb.save_to_buffer().expect("xlsx")
    }

    #[test]
    fn rows_under_the_header_row_become_records_keyed_by_column_title() {
        let items = read(
            workbook(),
            &SheetSelection {
                sheet: Some("行政处罚".into()),
                header_row: 2,
            },
        );
        assert_eq!(items.len(), 3, "the empty row is skipped");
        let first = record(&items[0]);
        assert_eq!(first["案件编号"], "NC-1");
        assert_eq!(first["罚款金额(元)"], "2000", "a whole number without a decimal point");
        assert_eq!(first["处罚决定日期"], "2024-03-05", "a date cell as an ISO date");
        assert_eq!(items[0].as_ref().expect("record").position, "cases.xlsx:行政处罚:3");
        let second = record(&items[1]);
        assert_eq!(
            second["执法部门"], "南昌市市场监督管理局",
            "the merged cell covers row 4"
        );
        assert_eq!(second["罚款金额(元)"], "0.25");
        assert_eq!(second["处罚决定日期"], "2024-03-06T09:30:00");
        assert_eq!(second["案件编号"], "NC-2");
    }

    #[test]
    fn a_number_excel_cannot_hold_exactly_refuses_its_row_naming_the_cell() {
        let items = read(
            workbook(),
            &SheetSelection {
                sheet: Some("行政处罚".into()),
                header_row: 2,
            },
        );
        let bad = items[2].as_ref().expect_err("refused row");
        assert_eq!(bad.position, "cases.xlsx:行政处罚:7");
        assert_eq!(bad.rule, Some(RULE_CELL));
        assert!(
            bad.message.contains("第 7 行") && bad.message.contains("row 7 of sheet 行政处罚"),
            "{}",
            bad.message
        );
        assert!(
            bad.message.contains("单元格 C7") && bad.message.contains("format the column as Text"),
            "{}",
            bad.message
        );
        let kept: Value = serde_json::from_slice(&bad.payload).expect("row kept");
        assert_eq!(kept["案件编号"], "NC-3");
    }

    #[test]
    fn without_a_sheet_every_sheet_but_the_instructions_is_read() {
        let items = read(
            workbook(),
            &SheetSelection {
                sheet: None,
                header_row: 1,
            },
        );
        let positions: Vec<&str> = items
            .iter()
            .map(|i| match i {
                Ok(r) => r.position.as_str(),
                Err(u) => u.position.as_str(),
            })
            .collect();
        assert!(positions.contains(&"cases.xlsx:第二批:2"), "{positions:?}");
        assert!(
            positions.iter().all(|p| !p.contains(INSTRUCTIONS_SHEET)),
            "{positions:?}"
        );
    }

    #[test]
    fn a_missing_sheet_or_bytes_that_are_no_workbook_are_refused_whole() {
        let e = read_workbook(
            workbook(),
            "x.xlsx",
            &SheetSelection {
                sheet: Some("行政强制".into()),
                header_row: 1,
            },
            |_| true,
        )
        .unwrap_err();
        assert!(e.contains("行政强制") && e.contains("no sheet named"), "{e}");
        let e = read_workbook(b"ajbh,xm\n".to_vec(), "x.xlsx", &SheetSelection::default(), |_| true).unwrap_err();
        assert!(e.contains("not a readable spreadsheet"), "{e}");
    }

    #[test]
    fn a_sheet_with_a_far_corner_cell_is_read_sparse_and_a_huge_merged_region_is_refused() {
        let mut wb = Workbook::new();
        let sheet = wb.add_worksheet().set_name("行政处罚").expect("name");
        sheet.write_string(0, 0, "案件编号").expect("header");
        sheet.write_string(1, 0, "NC-1").expect("cell");
        // The last cell of a sheet: a dense grid of it would be 17 billion cells.
        sheet.write_string(1_048_575, 16_383, "x").expect("corner");
        let items = read(wb.save_to_buffer().expect("xlsx"), &SheetSelection::default());
        assert_eq!(items.len(), 1, "the corner row has nothing under a titled column");
        assert_eq!(record(&items[0])["案件编号"], "NC-1");
        // Ten titled columns over a region merged down a million rows: refused, not walked.
        let cells = (0..10u32).map(|c| ((0, c), Data::String(format!("列{c}")))).collect();
        let grid = Grid {
            cells,
            merged: vec![Dimensions {
                start: (1, 0),
                end: (1_000_000, 9),
            }],
        };
        let e = read_sheet(&grid, "x.xlsx", "行政处罚", 1, &mut |_| true).unwrap_err();
        assert!(e.contains("split it"), "{e}");
    }

    #[test]
    fn dates_in_the_1900_system_and_numbers_convert_exactly() {
        // 1900 system: serial 45356 is 2024-03-05; 61 is 1900-03-01 (after Excel's 29 Feb 1900).
        let cell = |v: f64| {
            Data::DateTime(calamine::ExcelDateTime::new(
                v,
                calamine::ExcelDateTimeType::DateTime,
                false,
            ))
        };
        assert_eq!(cell_text(&cell(45356.0)).expect("date"), "2024-03-05");
        assert_eq!(cell_text(&cell(61.0)).expect("date"), "1900-03-01");
        assert_eq!(cell_text(&cell(45356.5)).expect("date"), "2024-03-05T12:00:00");
        // 1904 system: the same day is 1462 days less.
        let in_1904 = Data::DateTime(calamine::ExcelDateTime::new(
            45356.0 - 1462.0,
            calamine::ExcelDateTimeType::DateTime,
            true,
        ));
        assert_eq!(cell_text(&in_1904).expect("date"), "2024-03-05");
        assert_eq!(
            number_text(999_999_999_999_999.0).expect("15 digits"),
            "999999999999999"
        );
        assert!(number_text(1e15).is_err());
        assert_eq!(number_text(0.1).expect("decimal"), "0.1");
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(27), "AB");
    }
}

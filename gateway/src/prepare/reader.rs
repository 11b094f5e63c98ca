//! Input readers: a file of records in one of the supported formats becomes a stream of
//! [`SourceRecord`]s, each with its raw bytes kept for the archive. JSON lines are only split
//! here; each is parsed where it is mapped ([`SourceRecord::parse`], on the preparation threads),
//! so the one reading thread does not parse every record of an ingest.

use super::encoding::{detect_bytes, detect_file, undecodable_line, DecodingReader, TextEncoding};
use super::item::NOT_AN_OBJECT;
pub use super::item::{
    parse_item, ParsedRecord, ReadItem, SourceRecord, Truncated, UnreadableRecord, KEPT_PREFIX_BYTES, RULE_UNDECODABLE,
};
use super::spreadsheet::{read_workbook, SheetSelection};
use normalizer::xml_tree::{find_records, parse_xml_with_encoding, XmlLimits};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

pub use crate::config::source::{InputFormat, FORMAT_NAMES};

/// How an input is read besides its format: the encoding of text formats, the sheets and header
/// row of spreadsheets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadSettings {
    /// Text formats: the character encoding (default: detected).
    pub encoding: TextEncoding,
    /// Spreadsheets: which sheet(s), which header row.
    pub sheets: SheetSelection,
}

impl ReadSettings {
    /// How a source's inputs are read (`encoding`, `sheet`, `header_row`), or a bilingual
    /// message naming the key and value that are wrong.
    pub fn of_source(source: &crate::config::SourceConfig) -> Result<ReadSettings, String> {
        source.reading_problem()?;
        Ok(ReadSettings {
            encoding: TextEncoding::from_setting("encoding", source.encoding.as_deref())?,
            sheets: SheetSelection {
                sheet: source.sheet.clone(),
                header_row: source.header_row.unwrap_or(1),
            },
        })
    }
}

/// An adapter's pulled or consumed item as a read item.
pub fn from_source_item(item: adapters::sources::SourceItem) -> ReadItem {
    match item {
        Ok(r) => Ok(SourceRecord::parsed(r.value, r.payload, r.position)),
        Err(u) => Err(UnreadableRecord {
            payload: u.payload,
            position: u.position,
            message: u.message,
            truncated: None,
            rule: None,
        }),
    }
}

/// Why an input cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file cannot be opened or read.
    #[error("无法读取 / cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The whole document is malformed (JSON array, XML, CSV header).
    #[error("{path}: 文件格式错误 / malformed input: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Largest line or document accepted (64 MiB).
pub const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Read `path` and call `sink` for every record, in order. Returns early if `sink` returns false
/// (shutdown). JSON lines and CSV are streamed; JSON and XML documents are read whole. A JSON
/// line longer than `max_line_bytes` is never held whole: it becomes an unreadable record
/// keeping its first [`KEPT_PREFIX_BYTES`] (see [`Truncated`]).
///
/// Text is decoded from `settings.encoding`; when that is `auto`, CSV and JSON are detected
/// by reading the file once through first (BOM, else valid UTF-8, else GB18030), and XML by
/// its BOM or prolog (else UTF-8 when valid, else GB18030).
pub fn read_file(
    path: &Path,
    format: InputFormat,
    xml_records: Option<&str>,
    settings: &ReadSettings,
    max_line_bytes: usize,
    sink: impl FnMut(ReadItem) -> bool,
) -> Result<(), ReadError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let io = |source| ReadError::Io {
        path: path.display().to_string(),
        source,
    };
    let text_encoding = match (settings.encoding.fixed(), format) {
        (Some(e), _) => e,
        (None, InputFormat::Xml | InputFormat::Spreadsheet) => encoding_rs::UTF_8,
        (None, _) => detect_file(path).map_err(io)?,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let input = Input {
        name: &name,
        path: &path.display().to_string(),
        encoding: text_encoding,
        xml_encoding: settings.encoding.fixed(),
        sheets: &settings.sheets,
    };
    read_from(
        BufReader::with_capacity(1 << 20, file),
        &input,
        format,
        xml_records,
        max_line_bytes,
        sink,
    )
}

/// What a document held in memory is called and how it is read (see [`read_bytes`]).
#[derive(Debug, Clone, Copy)]
pub struct InMemory<'a> {
    /// Its name in record positions (e.g. `push` for `push:3`).
    pub name: &'a str,
    /// The transport's character set (an HTTP `Content-Type` charset) or the configured one,
    /// which also wins over an XML prolog; `None`: detected (BOM, else valid UTF-8, else
    /// GB18030).
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// Spreadsheets: which sheets and header row.
    pub sheets: &'a SheetSelection,
}

/// Records of a document held in memory (an HTTP push body), like [`read_file`].
pub fn read_bytes(
    bytes: &[u8],
    document: &InMemory<'_>,
    format: InputFormat,
    xml_records: Option<&str>,
    max_line_bytes: usize,
    sink: impl FnMut(ReadItem) -> bool,
) -> Result<(), ReadError> {
    let input = Input {
        name: document.name,
        path: document.name,
        encoding: document.encoding.unwrap_or_else(|| detect_bytes(bytes)),
        xml_encoding: document.encoding,
        sheets: document.sheets,
    };
    read_from(bytes, &input, format, xml_records, max_line_bytes, sink)
}

/// Read one line (up to its `\n`) into `line`, holding at most `max` bytes of it: the rest of a
/// longer line is read and dropped, `line` keeps its first [`KEPT_PREFIX_BYTES`], and its size and
/// SHA-256 (without the line break, like a record's payload) are returned. Returns the bytes read
/// (0 at the end of the input).
fn read_line_bounded<R: BufRead>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<(usize, Option<Truncated>)> {
    use sha2::Digest;
    let mut read = 0usize;
    let mut hashed = 0usize;
    let mut hasher: Option<sha2::Sha256> = None;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        // What is hashed of this chunk: not the line break.
        let content = if done {
            let without_lf = &chunk[..chunk.len() - 1];
            without_lf.strip_suffix(b"\r").unwrap_or(without_lf)
        } else {
            chunk
        };
        match &mut hasher {
            None if line.len() + chunk.len() <= max => line.extend_from_slice(chunk),
            None => {
                let mut h = sha2::Sha256::new();
                h.update(&line[..]);
                h.update(content);
                hashed = line.len() + content.len();
                hasher = Some(h);
                let room = KEPT_PREFIX_BYTES.saturating_sub(line.len());
                line.truncate(KEPT_PREFIX_BYTES);
                line.extend_from_slice(&chunk[..room.min(chunk.len())]);
            }
            Some(h) => {
                h.update(content);
                hashed += content.len();
            }
        }
        let used = chunk.len();
        reader.consume(used);
        read += used;
        if done {
            break;
        }
    }
    Ok((
        read,
        hasher.map(|h| Truncated {
            bytes: hashed as u64,
            sha256: hex::encode(h.finalize()),
        }),
    ))
}

/// What the records of one input are called in positions and errors.
struct Input<'a> {
    /// Name in record positions.
    name: &'a str,
    /// Name in errors.
    path: &'a str,
    /// Text formats but XML: the encoding to decode from.
    encoding: &'static encoding_rs::Encoding,
    /// XML: character set given by the transport or the configuration (else the prolog's).
    xml_encoding: Option<&'static encoding_rs::Encoding>,
    /// Spreadsheets: which sheets and header row.
    sheets: &'a SheetSelection,
}

impl Input<'_> {
    /// The input could not be read.
    fn io_error(&self, source: std::io::Error) -> ReadError {
        ReadError::Io {
            path: self.path.to_string(),
            source,
        }
    }

    /// The input is not what its format says.
    fn malformed(&self, message: String) -> ReadError {
        ReadError::Malformed {
            path: self.path.to_string(),
            message,
        }
    }
}

/// The encoding of an XML document without one given: its BOM or prolog, else UTF-8 when it
/// is valid UTF-8, else GB18030.
fn xml_auto_encoding(bytes: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    if adapters::common::charset::xml_declared_encoding(bytes).is_some() {
        return None;
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => None,
        Err(_) => Some(encoding_rs::GB18030),
    }
}

/// Read up to [`MAX_DOCUMENT_BYTES`] (one more to tell it is larger).
fn read_document<R: Read>(reader: R, bytes: &mut Vec<u8>) -> std::io::Result<()> {
    reader.take(MAX_DOCUMENT_BYTES + 1).read_to_end(bytes).map(|_| ())
}

fn read_from<R: BufRead>(
    raw: R,
    input: &Input<'_>,
    format: InputFormat,
    xml_records: Option<&str>,
    max_line_bytes: usize,
    mut sink: impl FnMut(ReadItem) -> bool,
) -> Result<(), ReadError> {
    let name = input.name;
    let io = |source| input.io_error(source);
    let malformed = |message: String| input.malformed(message);
    let too_large = || malformed("文件超过64MiB / larger than 64 MiB".into());
    match format {
        InputFormat::Spreadsheet => {
            let mut bytes = Vec::new();
            read_document(raw, &mut bytes).map_err(io)?;
            if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
                return Err(too_large());
            }
            read_workbook(bytes, name, input.sheets, sink).map_err(malformed)?;
        }
        InputFormat::Xml => {
            let mut bytes = Vec::new();
            read_document(raw, &mut bytes).map_err(io)?;
            if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
                return Err(too_large());
            }
            let limits = XmlLimits::default();
            let encoding = input.xml_encoding.or_else(|| xml_auto_encoding(&bytes));
            let tree = parse_xml_with_encoding(&bytes, &limits, encoding).map_err(|e| malformed(e.to_string()))?;
            let records: Vec<Value> = match xml_records {
                Some(p) => find_records(&tree, p).into_iter().cloned().collect(),
                None => vec![tree],
            };
            for (i, value) in records.into_iter().enumerate() {
                let payload = serde_json::to_vec(&value).unwrap_or_default();
                if !sink(Ok(SourceRecord::parsed(value, payload, format!("{name}#{}", i + 1)))) {
                    break;
                }
            }
        }
        text_format => read_text(
            DecodingReader::new(raw, input.encoding).map_err(io)?,
            input,
            text_format,
            max_line_bytes,
            sink,
        )?,
    }
    Ok(())
}

/// JSON lines, JSON and CSV, decoded to UTF-8 by `reader`. A record holding bytes that were not
/// valid in the encoding is unreadable (with its line number); so is a JSON document, whole.
fn read_text<R: BufRead>(
    mut reader: DecodingReader<R>,
    input: &Input<'_>,
    format: InputFormat,
    max_line_bytes: usize,
    mut sink: impl FnMut(ReadItem) -> bool,
) -> Result<(), ReadError> {
    let name = input.name;
    let io = |source| input.io_error(source);
    let malformed = |message: String| input.malformed(message);
    let encoding = reader.encoding();
    match format {
        InputFormat::JsonLines => {
            let mut line = Vec::new();
            let mut number = 0u64;
            let mut offset = 0u64;
            loop {
                line.clear();
                let (n, truncated) = read_line_bounded(&mut reader, &mut line, max_line_bytes).map_err(io)?;
                if n == 0 {
                    break;
                }
                let start = offset;
                offset += n as u64;
                number += 1;
                if let Some(truncated) = truncated {
                    let item = Err(UnreadableRecord {
                        payload: line.clone(),
                        position: format!("{name}:{number}"),
                        message: String::new(),
                        truncated: Some(truncated),
                        rule: None,
                    });
                    if !sink(item) {
                        break;
                    }
                    continue;
                }
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let item = if reader.malformed_in(start, offset).is_some() {
                    Err(UnreadableRecord {
                        payload: line.clone(),
                        position: format!("{name}:{number}"),
                        message: undecodable_line(number, encoding),
                        truncated: None,
                        rule: Some(RULE_UNDECODABLE),
                    })
                } else {
                    Ok(SourceRecord::unparsed_json(line.clone(), format!("{name}:{number}")))
                };
                if !sink(item) {
                    break;
                }
            }
        }
        InputFormat::Json => {
            let mut bytes = Vec::new();
            read_document(&mut reader, &mut bytes).map_err(io)?;
            if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
                return Err(malformed(
                    "文件超过64MiB，请改用 jsonl / larger than 64 MiB: use jsonl".into(),
                ));
            }
            if let Some(line) = reader.first_malformed() {
                return Err(malformed(undecodable_line(line, encoding)));
            }
            let value: Value = serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
            let items = match value {
                Value::Array(items) => items,
                other => vec![other],
            };
            for (i, value) in items.into_iter().enumerate() {
                let position = format!("{name}[{i}]");
                let payload = serde_json::to_vec(&value).unwrap_or_default();
                let item = if value.is_object() {
                    Ok(SourceRecord::parsed(value, payload, position))
                } else {
                    Err(UnreadableRecord {
                        payload,
                        position,
                        message: NOT_AN_OBJECT.into(),
                        truncated: None,
                        rule: None,
                    })
                };
                if !sink(item) {
                    break;
                }
            }
        }
        InputFormat::Csv => {
            let mut csv_reader = csv::ReaderBuilder::new().flexible(false).from_reader(reader);
            let headers = csv_reader.headers().map_err(|e| malformed(csv_message(&e, 1)))?.clone();
            if let Some(line) = csv_reader.get_ref().malformed_in(0, csv_reader.position().byte()) {
                return Err(malformed(format!(
                    "表头 / header: {}",
                    undecodable_line(line, encoding)
                )));
            }
            // Rows are read as bytes so that a row that is not valid UTF-8 is kept (its invalid
            // bytes as U+FFFD) and set aside with its line, like an undecodable one.
            let mut row = csv::ByteRecord::new();
            let mut i = 0usize;
            loop {
                let start = csv_reader.position().byte();
                let read = csv_reader.read_byte_record(&mut row);
                let end = csv_reader.position().byte();
                let number = i as u64 + 2;
                let position = format!("{name}:{number}");
                i += 1;
                let item = match read {
                    Ok(false) => break,
                    Ok(true) => {
                        let mut obj = serde_json::Map::new();
                        let mut not_utf8 = false;
                        for (h, v) in headers.iter().zip(row.iter()) {
                            let text = match std::str::from_utf8(v) {
                                Ok(t) => t.to_string(),
                                Err(_) => {
                                    not_utf8 = true;
                                    String::from_utf8_lossy(v).into_owned()
                                }
                            };
                            obj.insert(h.to_string(), Value::String(text));
                        }
                        let value = Value::Object(obj);
                        let payload = serde_json::to_vec(&value).unwrap_or_default();
                        let undecodable = match csv_reader.get_ref().malformed_in(start, end) {
                            Some(line) => Some(undecodable_line(line, encoding)),
                            None if not_utf8 => Some(not_utf8_line(number)),
                            None => None,
                        };
                        match undecodable {
                            Some(message) => Err(UnreadableRecord {
                                payload,
                                position,
                                message,
                                truncated: None,
                                rule: Some(RULE_UNDECODABLE),
                            }),
                            None => Ok(SourceRecord::parsed(value, payload, position)),
                        }
                    }
                    Err(e) => Err(UnreadableRecord {
                        payload: Vec::new(),
                        position,
                        message: format!("CSV 行错误 / bad CSV row: {}", csv_message(&e, number)),
                        truncated: None,
                        rule: None,
                    }),
                };
                if !sink(item) {
                    break;
                }
            }
        }
        InputFormat::Xml | InputFormat::Spreadsheet => {}
    }
    Ok(())
}

/// A CSV error in words; invalid UTF-8 names the record's line (`line`: its number counting the
/// header as 1, which is its line unless a quoted field spans lines) and the `encoding` key.
fn csv_message(e: &csv::Error, line: u64) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => not_utf8_line(line),
        _ => e.to_string(),
    }
}

/// Why a line read as UTF-8 is not text (Chinese and English), naming the `encoding` key.
fn not_utf8_line(line: u64) -> String {
    format!(
        "第 {line} 行不是有效的 UTF-8 编码；若文件是 GBK/GB18030，请设置 encoding / line {line} is not valid UTF-8; if the file is GBK or GB18030, set `encoding`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item as the reader yields it (JSON lines unparsed).
    fn read_raw(text: &str, format: InputFormat, xml_records: Option<&str>) -> Vec<ReadItem> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("input");
        std::fs::write(&path, text).expect("write");
        let mut items = Vec::new();
        read_file(&path, format, xml_records, &ReadSettings::default(), LIMIT, |item| {
            items.push(item);
            true
        })
        .expect("readable");
        items
    }

    const LIMIT: usize = 1 << 20;

    fn read_all(
        text: &str,
        format: InputFormat,
        xml_records: Option<&str>,
    ) -> Vec<Result<ParsedRecord, UnreadableRecord>> {
        read_raw(text, format, xml_records)
            .into_iter()
            .map(parse_item)
            .collect()
    }

    fn value(item: &Result<ParsedRecord, UnreadableRecord>) -> &Value {
        &item.as_ref().expect("record").value
    }

    #[test]
    fn json_lines_are_split_by_the_reader_and_parsed_where_they_are_mapped() {
        let items = read_raw("{\"a\":1}\n{bad\n", InputFormat::JsonLines, None);
        assert!(items.iter().all(|i| i.as_ref().is_ok_and(|r| r.value.is_none())));
        let mut items = items.into_iter().map(parse_item);
        assert_eq!(value(&items.next().expect("first"))["a"], 1);
        let bad = items.next().expect("second").expect_err("unreadable");
        assert!(bad.message.contains("invalid JSON"), "{}", bad.message);
        assert_eq!(bad.payload, b"{bad");
    }

    #[test]
    fn json_lines_keep_raw_bytes_and_report_bad_lines_with_their_number() {
        let items = read_all("{\"a\":1}\n\n{bad\n[1]\n{\"b\":2}\r\n", InputFormat::JsonLines, None);
        assert_eq!(items.len(), 4, "blank lines are skipped");
        let first = items[0].as_ref().expect("record");
        assert_eq!(first.payload, b"{\"a\":1}");
        assert_eq!(first.position, "input:1");
        let bad = items[1].as_ref().expect_err("unreadable");
        assert_eq!(bad.position, "input:3");
        assert_eq!(bad.payload, b"{bad");
        assert!(items[2].is_err(), "a JSON array line is not a record");
        assert_eq!(value(&items[3])["b"], 2, "CRLF line ends are accepted");
    }

    #[test]
    fn json_document_may_be_one_object_or_an_array() {
        assert_eq!(read_all("{\"a\":1}", InputFormat::Json, None).len(), 1);
        let items = read_all("[{\"a\":1},{\"a\":2},3]", InputFormat::Json, None);
        assert_eq!(items.len(), 3);
        assert!(items[2].is_err());
    }

    #[test]
    fn csv_rows_become_objects_of_strings_keyed_by_header() {
        let items = read_all("ajbh,fkje\nX1,0.2\nX2,1\n", InputFormat::Csv, None);
        let rows: Vec<&Value> = items.iter().map(value).collect();
        assert_eq!(rows[0]["ajbh"], "X1");
        assert_eq!(rows[1]["fkje"], "1");
    }

    #[test]
    fn xml_records_are_picked_by_element_path() {
        let xml = "<Envelope><Body><r><case><a>1</a></case><case><a>2</a></case></r></Body></Envelope>";
        let items = read_all(xml, InputFormat::Xml, Some("Envelope.Body.r.case"));
        let values: Vec<&Value> = items.iter().map(value).collect();
        assert_eq!(values.len(), 2);
        assert_eq!(values[1]["a"], "2");
    }

    #[test]
    fn without_a_path_the_root_element_is_the_record_under_its_own_name() {
        let xml = "<message><ajbh>X1</ajbh></message>";
        let whole = read_all(xml, InputFormat::Xml, None);
        assert_eq!(value(&whole[0])["message"]["ajbh"], "X1");
        let inner = read_all(xml, InputFormat::Xml, Some("message"));
        assert_eq!(value(&inner[0])["ajbh"], "X1");
    }

    #[test]
    fn bytes_in_memory_are_read_like_a_file_with_the_given_name_in_positions() {
        let mut items = Vec::new();
        read_bytes(
            b"{\"a\":1}\n{\"a\":2}\n",
            &InMemory {
                name: "push",
                encoding: None,
                sheets: &SheetSelection::default(),
            },
            InputFormat::JsonLines,
            None,
            LIMIT,
            |i| {
                items.push(i);
                true
            },
        )
        .expect("readable");
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].as_ref().expect("record").position, "push:2");
        let gbk = encoding_rs::GBK
            .encode("<r><case><a>案件</a></case></r>")
            .0
            .into_owned();
        let mut values = Vec::new();
        read_bytes(
            &gbk,
            &InMemory {
                name: "push",
                encoding: Some(encoding_rs::GBK),
                sheets: &SheetSelection::default(),
            },
            InputFormat::Xml,
            Some("r.case"),
            LIMIT,
            |i| {
                values.push(i.expect("record").value.expect("XML is parsed by the reader"));
                true
            },
        )
        .expect("GBK body given by the transport's charset");
        assert_eq!(values[0]["a"], "案件");
    }

    #[test]
    fn xml_with_a_doctype_is_refused_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("evil.xml");
        std::fs::write(
            &path,
            "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x \"y\">]><r>&x;</r>",
        )
        .expect("write");
        let result = read_file(&path, InputFormat::Xml, None, &ReadSettings::default(), LIMIT, |_| true);
        assert!(matches!(result, Err(ReadError::Malformed { .. })));
    }

    #[test]
    fn a_json_line_over_the_limit_keeps_its_beginning_size_and_hash_and_the_next_line_is_read() {
        use sha2::Digest;
        let long = format!("{{\"a\":\"{}\"}}\n", "x".repeat(300_000));
        let text = format!("{long}{{\"b\":2}}\n");
        let mut items = Vec::new();
        read_bytes(
            text.as_bytes(),
            &InMemory {
                name: "push",
                encoding: None,
                sheets: &SheetSelection::default(),
            },
            InputFormat::JsonLines,
            None,
            100_000,
            |i| {
                items.push(i);
                true
            },
        )
        .expect("readable");
        assert_eq!(items.len(), 2);
        let big = items[0].as_ref().expect_err("too large");
        let truncated = big.truncated.as_ref().expect("truncated");
        let content = long.trim_end_matches('\n');
        assert_eq!(truncated.bytes, content.len() as u64);
        assert_eq!(truncated.sha256, hex::encode(sha2::Sha256::digest(content.as_bytes())));
        assert_eq!(big.payload.len(), KEPT_PREFIX_BYTES);
        assert_eq!(&big.payload[..], &long.as_bytes()[..KEPT_PREFIX_BYTES]);
        assert_eq!(big.position, "push:1");
        let next = items[1].as_ref().expect("the next line is a record");
        assert_eq!(next.payload, b"{\"b\":2}");
        assert_eq!(next.position, "push:2");
    }

    fn read_file_bytes(bytes: &[u8], format: InputFormat, settings: &ReadSettings) -> Result<Vec<ReadItem>, ReadError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cases.csv");
        std::fs::write(&path, bytes).expect("write");
        let mut items = Vec::new();
        read_file(&path, format, None, settings, LIMIT, |item| {
            items.push(item);
            true
        })?;
        Ok(items)
    }

    #[test]
    fn a_gbk_csv_is_detected_and_a_row_with_an_undecodable_byte_is_set_aside_with_its_line() {
        let mut bytes = encoding_rs::GBK
            .encode("案件编号,当事人\r\nA1,南昌赣江\r\nA2,")
            .0
            .into_owned();
        bytes.extend_from_slice(b"\xFF\xFF\r\n");
        bytes.extend(encoding_rs::GBK.encode("A3,九江\r\n").0.iter());
        let items = read_file_bytes(&bytes, InputFormat::Csv, &ReadSettings::default()).expect("readable");
        assert_eq!(items.len(), 3);
        let first = items[0].as_ref().expect("record");
        assert_eq!(first.value.as_ref().expect("value")["当事人"], "南昌赣江");
        let bad = items[1].as_ref().expect_err("set aside");
        assert_eq!(bad.position, "cases.csv:3");
        assert_eq!(bad.rule, Some(RULE_UNDECODABLE));
        assert!(
            bad.message.contains("第 3 行") && bad.message.contains("not valid GB18030"),
            "{}",
            bad.message
        );
        let kept: Value = serde_json::from_slice(&bad.payload).expect("row kept");
        assert_eq!(kept["案件编号"], "A2");
        assert_eq!(
            items[2].as_ref().expect("record").value.as_ref().expect("value")["当事人"],
            "九江"
        );
    }

    #[test]
    fn a_utf8_bom_is_not_part_of_the_first_header_and_a_configured_encoding_wins() {
        let items = read_file_bytes(
            "\u{feff}案件编号,金额\nA1,5\n".as_bytes(),
            InputFormat::Csv,
            &ReadSettings::default(),
        )
        .expect("readable");
        assert_eq!(
            items[0].as_ref().expect("record").value.as_ref().expect("value")["案件编号"],
            "A1"
        );
        // GBK bytes read as configured UTF-8: the header is refused whole, naming the key.
        let gbk = encoding_rs::GBK.encode("案件编号\nA1\n").0.into_owned();
        let settings = ReadSettings {
            encoding: TextEncoding::Utf8,
            ..ReadSettings::default()
        };
        let e = read_file_bytes(&gbk, InputFormat::Csv, &settings).expect_err("not UTF-8");
        assert!(e.to_string().contains("line 1 is not valid UTF-8"), "{e}");
        // A GBK row under an ASCII header: set aside, kept, naming its line.
        let mut rows = b"ajbh,dsr\nA1,ok\nA2,".to_vec();
        rows.extend(encoding_rs::GBK.encode("九江\n").0.iter());
        let items = read_file_bytes(&rows, InputFormat::Csv, &settings).expect("readable");
        assert!(items[0].is_ok());
        let bad = items[1].as_ref().expect_err("set aside");
        assert_eq!(bad.rule, Some(RULE_UNDECODABLE));
        assert!(bad.message.contains("line 3 is not valid UTF-8"), "{}", bad.message);
        let kept: Value = serde_json::from_slice(&bad.payload).expect("row kept");
        assert_eq!(kept["ajbh"], "A2");
        let gbk_settings = ReadSettings {
            encoding: TextEncoding::Gbk,
            ..ReadSettings::default()
        };
        let items = read_file_bytes(&gbk, InputFormat::Csv, &gbk_settings).expect("readable");
        assert_eq!(
            items[0].as_ref().expect("record").value.as_ref().expect("value")["案件编号"],
            "A1"
        );
    }

    #[test]
    fn gbk_json_lines_and_xml_without_a_prolog_are_detected() {
        let lines = encoding_rs::GBK.encode("{\"a\":\"案件\"}\n").0.into_owned();
        let items = read_file_bytes(&lines, InputFormat::JsonLines, &ReadSettings::default()).expect("readable");
        let parsed = parse_item(items.into_iter().next().expect("item")).expect("record");
        assert_eq!(parsed.value["a"], "案件");
        let xml = encoding_rs::GBK.encode("<r><a>行政处罚</a></r>").0.into_owned();
        let items = read_file_bytes(&xml, InputFormat::Xml, &ReadSettings::default()).expect("readable");
        let value = items[0].as_ref().expect("record").value.clone().expect("value");
        assert_eq!(value["r"]["a"], "行政处罚");
    }
}

//! HTTP push (`POST /api/ingest/{source}`, served by the operator server): a department's system
//! sends a body of records; they are read, prepared and committed through the committer before
//! the answer, which says what became of each record, in order. Nothing of a body that fails
//! here is taken.

use crate::commit::RecordOutcome;
use crate::prepare::encoding::detect_bytes;
use crate::prepare::reader::{read_bytes, InMemory, ReadError};
use crate::prepare::{prepare_parallel, InputFormat, PrepareError, ReadItem, ReadSettings};
use crate::runtime::Runtime;
use crate::store::StoreError;
use crate::telemetry::Summary;

/// Why a pushed body was not taken (nothing of it was committed).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The body is not in the format it claims.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// The body could not be read.
    #[error("cannot read the body: {0}")]
    Unreadable(String),
    /// The body holds no records.
    #[error("the body holds no records")]
    NoRecords,
    /// The body holds more records than one push may carry.
    #[error("more than {0} records in one push")]
    TooManyRecords(usize),
    /// The body is not text in the character set it names (or was configured or detected).
    #[error("the body is not valid {charset} at byte {offset} (line {line})")]
    Undecodable {
        /// The character set named by the `Content-Type`, the source's `encoding` or detected.
        charset: String,
        /// Offset of the first byte that is not valid in it.
        offset: usize,
        /// Its line, from 1.
        line: usize,
    },
    /// The source has no mapping loaded.
    #[error("source {0:?} has no mapping loaded")]
    NoMapping(String),
    /// The records could not be prepared.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one push may carry.
#[derive(Debug, Clone, Copy)]
pub struct PushLimits {
    /// Most records (more: [`PushError::TooManyRecords`], nothing taken).
    pub max_records: usize,
    /// Longest JSON line held while reading (see [`read_bytes`]).
    pub max_line_bytes: usize,
}

/// `bytes` decoded from `encoding` exactly (a BOM of any encoding wins and is dropped): the
/// first byte that is not valid in it is an error naming its offset and line (nothing is
/// replaced by U+FFFD).
fn decode_exactly(bytes: &[u8], encoding: &'static encoding_rs::Encoding) -> Result<String, PushError> {
    let (encoding, bom) = encoding_rs::Encoding::for_bom(bytes).unwrap_or((encoding, 0));
    let whole = bytes;
    let bytes = &bytes[bom..];
    let undecodable = |offset: usize| PushError::Undecodable {
        charset: crate::prepare::encoding::display_name(encoding),
        offset: offset + bom,
        line: whole[..(offset + bom).min(whole.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1,
    };
    if encoding == encoding_rs::UTF_8 {
        return std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|e| undecodable(e.valid_up_to()));
    }
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(
        decoder
            .max_utf8_buffer_length_without_replacement(bytes.len())
            .unwrap_or(bytes.len() * 3),
    );
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut out, true);
    match result {
        encoding_rs::DecoderResult::InputEmpty => Ok(out),
        encoding_rs::DecoderResult::Malformed(bad, after) => {
            Err(undecodable(read.saturating_sub(usize::from(bad) + usize::from(after))))
        }
        encoding_rs::DecoderResult::OutputFull => Err(undecodable(read)),
    }
}

/// The records of a pushed body. Text formats are decoded to UTF-8 exactly (an undecodable
/// byte refuses the body, naming its offset and line) by `charset` when given, else the source's
/// `encoding`, else as detected (BOM, else valid UTF-8, else GB18030); XML decodes itself (the
/// given encoding, else its prolog); XML records are picked by `xml_records`; spreadsheets'
/// sheets and header row are `settings.sheets`. Reading stops, and the body is refused, past
/// `limits.max_records` records. `name` is the body's name in record positions (`push:3`).
pub fn read_body(
    bytes: &[u8],
    name: &str,
    format: InputFormat,
    xml_records: Option<&str>,
    charset: Option<&'static encoding_rs::Encoding>,
    settings: &ReadSettings,
    limits: PushLimits,
) -> Result<Vec<ReadItem>, PushError> {
    let given = charset.or(settings.encoding.fixed());
    let decoded;
    let (text, encoding): (&[u8], _) = match format {
        InputFormat::Xml | InputFormat::Spreadsheet => (bytes, given),
        _ => {
            decoded = decode_exactly(bytes, given.unwrap_or_else(|| detect_bytes(bytes)))?;
            (decoded.as_bytes(), Some(encoding_rs::UTF_8))
        }
    };
    let mut items: Vec<ReadItem> = Vec::new();
    let mut too_many = false;
    let document = InMemory {
        name,
        encoding,
        sheets: &settings.sheets,
    };
    read_bytes(text, &document, format, xml_records, limits.max_line_bytes, |item| {
        if items.len() >= limits.max_records {
            too_many = true;
            return false;
        }
        items.push(item);
        true
    })
    .map_err(|e| match e {
        ReadError::Malformed { message, .. } => PushError::Malformed(message),
        ReadError::Io { source, .. } => PushError::Unreadable(source.to_string()),
    })?;
    if too_many {
        return Err(PushError::TooManyRecords(limits.max_records));
    }
    if items.is_empty() {
        return Err(PushError::NoRecords);
    }
    Ok(items)
}

/// Prepare `items` with the source's current mapping and commit them through the runtime's
/// committer; what became of each record, and the counts.
pub async fn commit_push(
    runtime: &Runtime,
    source_id: &str,
    items: Vec<ReadItem>,
) -> Result<(Vec<RecordOutcome>, Summary), PushError> {
    let preparer = runtime
        .preparers
        .get(source_id)
        .ok_or_else(|| PushError::NoMapping(source_id.to_string()))?;
    let committer = runtime.committer("push");
    let prepared = prepare_parallel(&preparer, items, committer.keeps_compressed()).await?;
    Ok(committer.commit_with_outcomes(prepared, None).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PushLimits = PushLimits {
        max_records: 3,
        max_line_bytes: 1 << 20,
    };

    #[test]
    fn a_body_with_more_records_than_allowed_is_refused_whole() {
        let body = "{}\n{}\n{}\n{}\n";
        let e = read_body(
            body.as_bytes(),
            "push",
            InputFormat::JsonLines,
            None,
            None,
            &ReadSettings::default(),
            LIMITS,
        )
        .unwrap_err();
        assert!(matches!(e, PushError::TooManyRecords(3)), "{e}");
        let ok = read_body(
            b"{}\n{}\n{}\n",
            "push",
            InputFormat::JsonLines,
            None,
            None,
            &ReadSettings::default(),
            LIMITS,
        )
        .unwrap();
        assert_eq!(ok.len(), 3);
    }

    #[test]
    fn an_undecodable_byte_refuses_the_body_naming_its_offset() {
        let mut gbk = encoding_rs::GBK.encode("{\"a\":\"案件\"}").0.into_owned();
        let good = read_body(
            &gbk,
            "push",
            InputFormat::Json,
            None,
            Some(encoding_rs::GBK),
            &ReadSettings::default(),
            LIMITS,
        )
        .unwrap();
        assert_eq!(good.len(), 1);
        gbk.insert(3, 0xFF);
        let e = read_body(
            &gbk,
            "push",
            InputFormat::Json,
            None,
            Some(encoding_rs::GBK),
            &ReadSettings::default(),
            LIMITS,
        )
        .unwrap_err();
        assert!(matches!(e, PushError::Undecodable { offset: 3, .. }), "{e}");
        let e = read_body(
            b"{\"a\":\"\xff\"}",
            "push",
            InputFormat::Json,
            None,
            Some(encoding_rs::UTF_8),
            &ReadSettings::default(),
            LIMITS,
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                PushError::Undecodable {
                    offset: 6,
                    ref charset,
                    line: 1
                } if charset == "UTF-8"
            ),
            "{e}"
        );
    }

    #[test]
    fn without_a_charset_a_gbk_csv_body_is_detected_and_a_utf8_bom_dropped() {
        let gbk = encoding_rs::GBK.encode("案件编号,名称\nNC-1,行政处罚\n").0.into_owned();
        let items = read_body(
            &gbk,
            "push",
            InputFormat::Csv,
            None,
            None,
            &ReadSettings::default(),
            LIMITS,
        )
        .unwrap();
        let value = items[0].as_ref().unwrap().value.clone().unwrap();
        assert_eq!(value["案件编号"], "NC-1");
        assert_eq!(value["名称"], "行政处罚");
        let bom = "\u{feff}ajbh\nX1\n".as_bytes();
        let items = read_body(
            bom,
            "push",
            InputFormat::Csv,
            None,
            None,
            &ReadSettings::default(),
            LIMITS,
        )
        .unwrap();
        assert_eq!(items[0].as_ref().unwrap().value.as_ref().unwrap()["ajbh"], "X1");
    }

    #[test]
    fn the_configured_encoding_applies_when_no_charset_is_given_and_errors_name_the_line() {
        let settings = ReadSettings {
            encoding: crate::prepare::TextEncoding::Utf8,
            ..ReadSettings::default()
        };
        let gbk = encoding_rs::GBK.encode("a\nb\n案\n").0.into_owned();
        let e = read_body(&gbk, "push", InputFormat::Csv, None, None, &settings, LIMITS).unwrap_err();
        assert!(matches!(e, PushError::Undecodable { line: 3, offset: 4, .. }), "{e}");
    }
}

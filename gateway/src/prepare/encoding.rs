//! Character encodings of text inputs (CSV, JSON lines, JSON, XML). Spreadsheets saved by Excel
//! on a Chinese Windows desktop are GBK; other systems write UTF-8 with or without a BOM, or
//! GB18030. The encoding is configured (`encoding = "gbk"`), or detected (`auto`, the default):
//! a BOM names it, else text that is valid UTF-8 throughout is UTF-8, else it is GB18030 (a
//! superset of GBK and GB2312).
//!
//! Decoding is streamed ([`DecodingReader`]): big files are never held whole. A byte sequence
//! that is not valid in the encoding becomes U+FFFD in the decoded text and its place is
//! remembered, so that the reader can set the record it falls in aside as unreadable (with its
//! line number) instead of passing on corrupted text.

use encoding_rs::{DecoderResult, Encoding};
use std::io::{BufRead, Read};
use std::path::Path;

pub use adapters::common::charset::{TextEncoding, ENCODING_LABELS};

/// The encoding of text held in memory: a BOM's, else UTF-8 when the bytes are valid UTF-8,
/// else GB18030.
pub fn detect_bytes(bytes: &[u8]) -> &'static Encoding {
    if let Some((encoding, _)) = Encoding::for_bom(bytes) {
        return encoding;
    }
    if std::str::from_utf8(bytes).is_ok() {
        encoding_rs::UTF_8
    } else {
        encoding_rs::GB18030
    }
}

/// The encoding of a file, as [`detect_bytes`], reading it once through without holding it.
pub fn detect_file(path: &Path) -> std::io::Result<&'static Encoding> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    // Bytes of a UTF-8 sequence cut by the end of the previous read.
    let mut carried = 0usize;
    let mut first = true;
    loop {
        let n = match file.read(&mut buf[carried..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let filled = carried + n;
        if first {
            first = false;
            if let Some((encoding, _)) = Encoding::for_bom(&buf[..filled]) {
                return Ok(encoding);
            }
        }
        if n == 0 {
            // The input ends inside a sequence: not UTF-8.
            return Ok(if carried == 0 {
                encoding_rs::UTF_8
            } else {
                encoding_rs::GB18030
            });
        }
        match std::str::from_utf8(&buf[..filled]) {
            Ok(_) => carried = 0,
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                buf.copy_within(valid..filled, 0);
                carried = filled - valid;
            }
            Err(_) => return Ok(encoding_rs::GB18030),
        }
    }
}

/// Decoded text bytes produced per refill.
const DECODED_CHUNK: usize = 64 * 1024;

/// A reader of UTF-8 text decoded from an input in another encoding, streamed. Input in UTF-8
/// passes through as it is (its invalid bytes are left to the record readers, which report them
/// per record). Malformed sequences of other encodings become U+FFFD, and the offsets in the
/// decoded text where they were are kept ([`DecodingReader::malformed_in`]).
pub struct DecodingReader<R> {
    inner: R,
    encoding: &'static Encoding,
    decoder: Option<encoding_rs::Decoder>,
    out: Vec<u8>,
    pos: usize,
    /// Decoded bytes produced before `out`.
    produced: u64,
    finished: bool,
    /// Line breaks in the decoded text before `out`.
    lines_before: u64,
    /// Offsets (in the decoded text) of the U+FFFD put for malformed input, ascending, with
    /// their lines (from 1).
    malformed: Vec<(u64, u64)>,
}

impl<R: BufRead> DecodingReader<R> {
    /// Decode `inner` from `encoding`. A BOM at its start is dropped (and, as the WHATWG
    /// encoding standard says, names the encoding it is the BOM of).
    pub fn new(mut inner: R, encoding: &'static Encoding) -> std::io::Result<DecodingReader<R>> {
        let mut encoding = encoding;
        let mut decoder = None;
        if encoding == encoding_rs::UTF_8 {
            // Pass UTF-8 through, skipping its BOM; a UTF-16 BOM still asks for decoding.
            // A buffered reader holds a BOM's 3 bytes after one fill unless the input is shorter.
            let bom = Encoding::for_bom(inner.fill_buf()?);
            match bom {
                Some((e, len)) if e == encoding_rs::UTF_8 => inner.consume(len),
                Some((e, _)) => {
                    encoding = e;
                    decoder = Some(e.new_decoder_with_bom_removal());
                }
                None => {}
            }
        } else {
            // BOM sniffing: a BOM names the encoding it is the BOM of.
            decoder = Some(encoding.new_decoder());
        }
        Ok(DecodingReader {
            inner,
            encoding,
            decoder,
            out: Vec::new(),
            pos: 0,
            produced: 0,
            finished: false,
            lines_before: 0,
            malformed: Vec::new(),
        })
    }

    /// The encoding decoded from (the BOM's, when one named another).
    pub fn encoding(&self) -> &'static Encoding {
        self.decoder
            .as_ref()
            .map_or(self.encoding, encoding_rs::Decoder::encoding)
    }

    /// The line (from 1) of the first malformed input sequence replaced between the decoded
    /// offsets `start` (included) and `end` (excluded), if any.
    pub fn malformed_in(&self, start: u64, end: u64) -> Option<u64> {
        let i = self.malformed.partition_point(|&(o, _)| o < start);
        self.malformed.get(i).filter(|&&(o, _)| o < end).map(|&(_, line)| line)
    }

    /// The line of the first malformed sequence, if any so far.
    pub fn first_malformed(&self) -> Option<u64> {
        self.malformed.first().map(|&(_, line)| line)
    }

    fn refill(&mut self) -> std::io::Result<()> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(());
        };
        self.produced += self.out.len() as u64;
        self.lines_before += count_lines(&self.out);
        self.out.clear();
        self.pos = 0;
        while self.out.is_empty() && !self.finished {
            let input = match self.inner.fill_buf() {
                Ok(input) => input,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let last = input.is_empty();
            self.out.resize(DECODED_CHUNK, 0);
            let (result, read, written) = decoder.decode_to_utf8_without_replacement(input, &mut self.out, last);
            self.inner.consume(read);
            self.out.truncate(written);
            match result {
                DecoderResult::InputEmpty => self.finished = last,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(_, _) => {
                    let line = self.lines_before + count_lines(&self.out) + 1;
                    self.malformed.push((self.produced + written as u64, line));
                    self.out.extend_from_slice("\u{FFFD}".as_bytes());
                }
            }
        }
        Ok(())
    }
}

/// Line breaks in `bytes`.
fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

impl<R: BufRead> Read for DecodingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for DecodingReader<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.decoder.is_none() {
            return self.inner.fill_buf();
        }
        if self.pos >= self.out.len() {
            self.refill()?;
        }
        Ok(&self.out[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        if self.decoder.is_none() {
            self.inner.consume(amt);
        } else {
            self.pos = (self.pos + amt).min(self.out.len());
        }
    }
}

/// An encoding's name as people write it (`UTF-8`, `GBK`, `GB18030`).
pub fn display_name(encoding: &'static Encoding) -> String {
    encoding.name().to_ascii_uppercase()
}

/// Why a line holds bytes that are not text in the input's encoding (Chinese and English).
pub fn undecodable_line(line: u64, encoding: &'static Encoding) -> String {
    let name = display_name(encoding);
    format!(
        "第 {line} 行含有不是有效 {name} 编码的字节，该记录未被接收（原字节已替换为 U+FFFD 保存）；若文件是别的编码，请设置 encoding / line {line} holds bytes that are not valid {name}: the record is set aside (those bytes kept as U+FFFD); if the file is in another encoding, set `encoding`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], encoding: &'static Encoding) -> (String, Vec<(u64, u64)>, &'static Encoding) {
        let mut reader = DecodingReader::new(std::io::BufReader::with_capacity(7, bytes), encoding).expect("reader");
        let mut text = String::new();
        reader.read_to_string(&mut text).expect("decoded");
        (text, reader.malformed.clone(), reader.encoding())
    }

    #[test]
    fn gbk_bytes_are_detected_as_gb18030_and_decoded_across_small_reads() {
        let text = "案件编号,罚款金额\nNC-1,2000\n行政处罚,警告\n";
        let gbk = encoding_rs::GBK.encode(text).0.into_owned();
        assert_eq!(detect_bytes(&gbk), encoding_rs::GB18030);
        let (decoded, malformed, _) = decode_all(&gbk, encoding_rs::GB18030);
        assert_eq!(decoded, text);
        assert!(malformed.is_empty());
    }

    #[test]
    fn gb18030_four_byte_characters_decode() {
        // 𠀀 (U+20000) and € are four-byte / two-byte in GB18030 and absent from GBK's table.
        let text = "姓名,𠀀€㐀\n";
        let bytes = encoding_rs::GB18030.encode(text).0.into_owned();
        assert!(bytes.windows(4).any(|w| w == [0x95, 0x32, 0x82, 0x36]), "{bytes:x?}");
        assert_eq!(detect_bytes(&bytes), encoding_rs::GB18030);
        assert_eq!(decode_all(&bytes, encoding_rs::GB18030).0, text);
    }

    #[test]
    fn a_utf8_bom_names_utf8_and_is_dropped() {
        let bytes = b"\xEF\xBB\xBFajbh,xm\nX1,\xE5\xBC\xA0\xE4\xB8\x89\n";
        assert_eq!(detect_bytes(bytes), encoding_rs::UTF_8);
        let (text, _, encoding) = decode_all(bytes, encoding_rs::UTF_8);
        assert_eq!(text, "ajbh,xm\nX1,张三\n");
        assert_eq!(encoding, encoding_rs::UTF_8);
        // Configured as GBK, the UTF-8 BOM still wins.
        assert_eq!(decode_all(bytes, encoding_rs::GBK).0, "ajbh,xm\nX1,张三\n");
    }

    #[test]
    fn valid_utf8_without_bom_is_detected_as_utf8() {
        assert_eq!(detect_bytes("案件,金额\n".as_bytes()), encoding_rs::UTF_8);
        assert_eq!(detect_bytes(b"ascii,only\n"), encoding_rs::UTF_8);
    }

    #[test]
    fn file_detection_reads_through_sequences_cut_by_reads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("in.csv");
        // Over one read buffer of UTF-8 three-byte characters: cuts fall inside sequences.
        let text = "案".repeat(200_000);
        std::fs::write(&path, &text).expect("write");
        assert_eq!(detect_file(&path).expect("read"), encoding_rs::UTF_8);
        let mut gbk = text.into_bytes();
        gbk.extend(encoding_rs::GBK.encode("行政").0.iter());
        std::fs::write(&path, &gbk).expect("write");
        assert_eq!(detect_file(&path).expect("read"), encoding_rs::GB18030);
        std::fs::write(&path, b"\xEF\xBB\xBFa\n").expect("write");
        assert_eq!(detect_file(&path).expect("read"), encoding_rs::UTF_8);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_at_remembered_offsets() {
        let mut bytes = encoding_rs::GBK.encode("a,案\n").0.into_owned();
        bytes.extend_from_slice(b"b,\xFF\n");
        let (text, malformed, _) = decode_all(&bytes, encoding_rs::GBK);
        assert_eq!(text, "a,案\nb,\u{FFFD}\n");
        let offset = "a,案\nb,".len() as u64;
        assert_eq!(malformed, vec![(offset, 2)], "the offset and line of the bad byte");
        let reader = DecodingReader {
            malformed,
            ..DecodingReader::new(&b""[..], encoding_rs::GBK).expect("reader")
        };
        assert_eq!(reader.malformed_in(offset - 2, offset + 1), Some(2));
        assert_eq!(reader.malformed_in(0, offset), None);
        assert_eq!(reader.malformed_in(offset + 1, offset + 10), None);
    }

    #[test]
    fn labels_parse_and_an_unknown_one_names_the_key_and_value() {
        assert_eq!(TextEncoding::parse("GBK"), Some(TextEncoding::Gbk));
        assert_eq!(TextEncoding::parse("utf8"), Some(TextEncoding::Utf8));
        assert_eq!(TextEncoding::parse("gb18030"), Some(TextEncoding::Gb18030));
        let e = TextEncoding::from_setting("encoding", Some("big5")).unwrap_err();
        assert!(
            e.contains("\"big5\"") && e.contains("不支持") && e.contains("unsupported"),
            "{e}"
        );
        assert_eq!(TextEncoding::from_setting("encoding", None), Ok(TextEncoding::Auto));
    }
}

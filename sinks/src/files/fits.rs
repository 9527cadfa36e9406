//! The part of FITS (standard 4.0) the light-curve and cutout writers need:
//! header cards, binary tables (written, and read back for merging), and
//! the images of alert stamps (read, to render them).
//!
//! No well-kept pure-Rust crate writes FITS binary tables, and the format is
//! small: a file is a sequence of HDUs, each a header of 80-character ASCII
//! cards ending with `END`, padded to 2880-byte blocks, then its data,
//! big-endian, padded to a whole block.

use std::collections::HashMap;

/// FITS block size.
pub(crate) const BLOCK: usize = 2880;
const CARD: usize = 80;

/// Why FITS bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FitsError {
    /// The bytes end before the header or data does.
    #[error("truncated FITS: {0}")]
    Truncated(String),
    /// A keyword the reader needs is missing or malformed.
    #[error("FITS keyword {keyword}: {reason}")]
    Keyword {
        /// The keyword.
        keyword: String,
        /// What is wrong.
        reason: String,
    },
    /// The file does not hold what the reader expects.
    #[error("unexpected FITS content: {0}")]
    Unexpected(String),
}

/// A header being written, card by card.
#[derive(Debug, Default)]
pub(crate) struct HeaderWriter {
    bytes: Vec<u8>,
}

impl HeaderWriter {
    fn card(&mut self, text: &str) {
        let mut card = text.as_bytes().to_vec();
        card.retain(|b| (0x20..0x7f).contains(b));
        card.resize(CARD, b' ');
        self.bytes.extend_from_slice(&card);
    }

    fn value_card(&mut self, key: &str, value: &str, comment: &str) {
        let mut text = format!("{key:<8}= {value}");
        if !comment.is_empty() {
            text.push_str(" / ");
            text.push_str(comment);
        }
        text.truncate(CARD);
        self.card(&text);
    }

    /// A logical value (`T`/`F`, right-justified in column 30).
    pub(crate) fn logical(&mut self, key: &str, value: bool, comment: &str) {
        let v = if value { "T" } else { "F" };
        self.value_card(key, &format!("{v:>20}"), comment);
    }

    /// An integer value (right-justified in column 30).
    pub(crate) fn int(&mut self, key: &str, value: i64, comment: &str) {
        self.value_card(key, &format!("{value:>20}"), comment);
    }

    /// A character string (quotes doubled, at least 8 characters inside the quotes).
    pub(crate) fn string(&mut self, key: &str, value: &str, comment: &str) {
        let escaped: String = value
            .chars()
            .filter(|c| (' '..='~').contains(c))
            .take(68)
            .collect::<String>()
            .replace('\'', "''");
        self.value_card(key, &format!("'{escaped:<8}'"), comment);
    }

    /// A `COMMENT` card.
    pub(crate) fn comment(&mut self, text: &str) {
        self.card(&format!("COMMENT {text}"));
    }

    /// Ends the header (`END`, padded to a block).
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.card("END");
        pad_to_block(&mut self.bytes, b' ');
        self.bytes
    }
}

/// Pads `bytes` to a whole number of blocks with `fill`.
pub(crate) fn pad_to_block(bytes: &mut Vec<u8>, fill: u8) {
    let rem = bytes.len() % BLOCK;
    if rem != 0 {
        bytes.resize(bytes.len() + BLOCK - rem, fill);
    }
}

/// An empty primary HDU that announces extensions.
pub(crate) fn empty_primary(extra: impl FnOnce(&mut HeaderWriter)) -> Vec<u8> {
    let mut h = HeaderWriter::default();
    h.logical("SIMPLE", true, "conforms to FITS standard");
    h.int("BITPIX", 8, "array data type");
    h.int("NAXIS", 0, "no data in the primary HDU");
    h.logical("EXTEND", true, "extensions follow");
    extra(&mut h);
    h.finish()
}

/// A parsed header: keyword → raw value text, in order, and where the data starts.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    values: HashMap<String, String>,
    /// Offset of the HDU's data in the file.
    pub(crate) data_start: usize,
}

impl Header {
    /// Parses the header starting at `offset`.
    pub(crate) fn parse(bytes: &[u8], offset: usize) -> Result<Self, FitsError> {
        let mut values = HashMap::new();
        let mut pos = offset;
        loop {
            let card = bytes.get(pos..pos + CARD).ok_or_else(|| {
                FitsError::Truncated(format!("no END card in the header at byte {offset}"))
            })?;
            pos += CARD;
            let key = std::str::from_utf8(&card[..8])
                .map_err(|_| FitsError::Unexpected("a header card is not ASCII".to_owned()))?
                .trim_end();
            if key == "END" {
                break;
            }
            if &card[8..10] == b"= " {
                let text = String::from_utf8_lossy(&card[10..]).into_owned();
                values.insert(key.to_owned(), value_text(&text));
            }
        }
        let data_start = pos.div_ceil(BLOCK) * BLOCK;
        Ok(Header { values, data_start })
    }

    /// The raw value of `key` (strings without their quotes).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// An integer value.
    pub(crate) fn int(&self, key: &str) -> Result<i64, FitsError> {
        let raw = self.get(key).ok_or_else(|| FitsError::Keyword {
            keyword: key.to_owned(),
            reason: "missing".to_owned(),
        })?;
        raw.parse().map_err(|_| FitsError::Keyword {
            keyword: key.to_owned(),
            reason: format!("not an integer: {raw:?}"),
        })
    }

    /// A real value, `default` when absent.
    pub(crate) fn real_or(&self, key: &str, default: f64) -> Result<f64, FitsError> {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => raw
                .replace('D', "E")
                .parse()
                .map_err(|_| FitsError::Keyword {
                    keyword: key.to_owned(),
                    reason: format!("not a number: {raw:?}"),
                }),
        }
    }

    /// Size of the HDU's data in bytes, without padding.
    pub(crate) fn data_len(&self) -> Result<usize, FitsError> {
        let naxis = self.int("NAXIS")?;
        if naxis == 0 {
            return Ok(0);
        }
        let bitpix = self.int("BITPIX")?;
        let mut n: i64 = 1;
        for i in 1..=naxis {
            n = n.saturating_mul(self.int(&format!("NAXIS{i}"))?);
        }
        let pcount = self.get("PCOUNT").map_or(Ok(0), |_| self.int("PCOUNT"))?;
        let gcount = self.get("GCOUNT").map_or(Ok(1), |_| self.int("GCOUNT"))?;
        let bits = bitpix
            .abs()
            .saturating_mul(gcount)
            .saturating_mul(pcount.saturating_add(n));
        usize::try_from(bits / 8).map_err(|_| FitsError::Keyword {
            keyword: "NAXIS".to_owned(),
            reason: "negative data size".to_owned(),
        })
    }

    /// Offset of the next HDU.
    pub(crate) fn next_hdu(&self) -> Result<usize, FitsError> {
        Ok(self.data_start + self.data_len()?.div_ceil(BLOCK) * BLOCK)
    }
}

/// The value part of a card's text (after `= `): a quoted string without
/// its quotes, or the text before the comment, trimmed.
fn value_text(text: &str) -> String {
    let t = text.trim_start();
    if let Some(rest) = t.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        return out.trim_end().to_owned();
    }
    t.split('/').next().unwrap_or("").trim().to_owned()
}

/// A 2-D image: `width` × `height` values, row 0 at the bottom (FITS order).
#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub(crate) width: usize,
    pub(crate) height: usize,
    /// Physical values (`BZERO + BSCALE × stored`), NaN for blanks.
    pub(crate) pixels: Vec<f64>,
}

/// The first 2-D image among the HDUs of `bytes`.
pub(crate) fn first_image(bytes: &[u8]) -> Result<Image, FitsError> {
    if !bytes.starts_with(b"SIMPLE  =") {
        return Err(FitsError::Unexpected(
            "does not start with a SIMPLE card".to_owned(),
        ));
    }
    let mut offset = 0;
    while offset < bytes.len() {
        let h = Header::parse(bytes, offset)?;
        if h.int("NAXIS")? == 2 && h.get("XTENSION").is_none_or(|x| x == "IMAGE") {
            return read_image(bytes, &h);
        }
        offset = h.next_hdu()?;
    }
    Err(FitsError::Unexpected("no 2-D image HDU".to_owned()))
}

fn read_image(bytes: &[u8], h: &Header) -> Result<Image, FitsError> {
    let dim = |k: &str| {
        h.int(k).and_then(|v| {
            usize::try_from(v).map_err(|_| FitsError::Keyword {
                keyword: k.to_owned(),
                reason: format!("negative: {v}"),
            })
        })
    };
    let (width, height) = (dim("NAXIS1")?, dim("NAXIS2")?);
    let bitpix = h.int("BITPIX")?;
    let bscale = h.real_or("BSCALE", 1.0)?;
    let bzero = h.real_or("BZERO", 0.0)?;
    let blank = h.get("BLANK").and_then(|b| b.parse::<i64>().ok());
    let size = match bitpix {
        8 => 1,
        16 => 2,
        32 | -32 => 4,
        64 | -64 => 8,
        other => {
            return Err(FitsError::Keyword {
                keyword: "BITPIX".to_owned(),
                reason: format!("unsupported value {other}"),
            })
        }
    };
    let n = width.saturating_mul(height);
    let data = bytes
        .get(h.data_start..h.data_start.saturating_add(n.saturating_mul(size)))
        .ok_or_else(|| {
            FitsError::Truncated(format!(
                "image of {width}x{height} needs {} bytes after byte {}",
                n.saturating_mul(size),
                h.data_start
            ))
        })?;
    let scale = |raw: i64| {
        if blank == Some(raw) {
            f64::NAN
        } else {
            #[allow(clippy::cast_precision_loss)]
            let v = raw as f64;
            bzero + bscale * v
        }
    };
    let pixels = data
        .chunks_exact(size)
        .map(|c| match bitpix {
            8 => scale(i64::from(c[0])),
            16 => scale(i64::from(i16::from_be_bytes([c[0], c[1]]))),
            32 => scale(i64::from(i32::from_be_bytes([c[0], c[1], c[2], c[3]]))),
            64 => scale(i64::from_be_bytes(to8(c))),
            -32 => bzero + bscale * f64::from(f32::from_be_bytes([c[0], c[1], c[2], c[3]])),
            _ => bzero + bscale * f64::from_be_bytes(to8(c)),
        })
        .collect();
    Ok(Image {
        width,
        height,
        pixels,
    })
}

fn to8(c: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&c[..8]);
    a
}

/// The type of a binary-table column this crate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnType {
    /// `K`: 64-bit integer, with `TNULL` = `i64::MIN`.
    Int64,
    /// `D`: 64-bit float, NaN for null.
    Float64,
    /// `<n>A`: characters, space-padded.
    Text(usize),
}

impl ColumnType {
    fn tform(self) -> String {
        match self {
            Self::Int64 => "K".to_owned(),
            Self::Float64 => "D".to_owned(),
            Self::Text(n) => format!("{n}A"),
        }
    }

    fn width(self) -> usize {
        match self {
            Self::Int64 | Self::Float64 => 8,
            Self::Text(n) => n,
        }
    }
}

/// The null of an integer column.
pub(crate) const INT_NULL: i64 = i64::MIN;

/// One column's description.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) kind: ColumnType,
    pub(crate) unit: &'static str,
    pub(crate) ucd: &'static str,
    pub(crate) description: &'static str,
}

/// A cell value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Int(Option<i64>),
    Float(f64),
    Text(String),
}

/// A binary-table HDU (header and padded data) for `columns` and `rows`.
pub(crate) fn bintable(
    columns: &[Column],
    rows: &[Vec<Cell>],
    extra: impl FnOnce(&mut HeaderWriter),
) -> Vec<u8> {
    let row_len: usize = columns.iter().map(|c| c.kind.width()).sum();
    let mut h = HeaderWriter::default();
    h.string("XTENSION", "BINTABLE", "binary table extension");
    h.int("BITPIX", 8, "8-bit bytes");
    h.int("NAXIS", 2, "2-dimensional table");
    h.int(
        "NAXIS1",
        i64::try_from(row_len).unwrap_or(i64::MAX),
        "bytes per row",
    );
    h.int(
        "NAXIS2",
        i64::try_from(rows.len()).unwrap_or(i64::MAX),
        "rows",
    );
    h.int("PCOUNT", 0, "no heap");
    h.int("GCOUNT", 1, "one group");
    h.int(
        "TFIELDS",
        i64::try_from(columns.len()).unwrap_or(i64::MAX),
        "columns",
    );
    for (i, c) in columns.iter().enumerate() {
        let n = i + 1;
        h.string(&format!("TTYPE{n}"), c.name, c.description);
        h.string(&format!("TFORM{n}"), &c.kind.tform(), "");
        if !c.unit.is_empty() {
            h.string(&format!("TUNIT{n}"), c.unit, "");
        }
        if c.kind == ColumnType::Int64 {
            h.int(&format!("TNULL{n}"), INT_NULL, "null");
        }
        h.string(&format!("TUCD{n}"), c.ucd, "IVOA UCD");
    }
    extra(&mut h);
    let mut out = h.finish();
    let header_len = out.len();
    out.reserve(row_len * rows.len() + BLOCK);
    for row in rows {
        for (c, cell) in columns.iter().zip(row) {
            match (c.kind, cell) {
                (ColumnType::Int64, Cell::Int(v)) => {
                    out.extend_from_slice(&v.unwrap_or(INT_NULL).to_be_bytes());
                }
                (ColumnType::Float64, Cell::Float(v)) => out.extend_from_slice(&v.to_be_bytes()),
                (ColumnType::Text(n), Cell::Text(s)) => {
                    let mut b: Vec<u8> = s.bytes().filter(|b| (0x20..0x7f).contains(b)).collect();
                    b.resize(n, b' ');
                    out.extend_from_slice(&b);
                }
                // A cell of the wrong type (a bug): its column's null.
                (ColumnType::Int64, _) => out.extend_from_slice(&INT_NULL.to_be_bytes()),
                (ColumnType::Float64, _) => out.extend_from_slice(&f64::NAN.to_be_bytes()),
                (ColumnType::Text(n), _) => out.resize(out.len() + n, b' '),
            }
        }
    }
    let mut data = out.split_off(header_len);
    pad_to_block(&mut data, 0);
    out.extend_from_slice(&data);
    out
}

/// Reads the first binary table of a file this module wrote: its rows as
/// cells in the order of `columns`, and its header.
pub(crate) fn read_bintable(
    bytes: &[u8],
    columns: &[Column],
) -> Result<(Vec<Vec<Cell>>, Header), FitsError> {
    let mut offset = 0;
    let h = loop {
        if offset >= bytes.len() {
            return Err(FitsError::Unexpected("no binary table".to_owned()));
        }
        let h = Header::parse(bytes, offset)?;
        if h.get("XTENSION") == Some("BINTABLE") {
            break h;
        }
        offset = h.next_hdu()?;
    };
    let tfields = usize::try_from(h.int("TFIELDS")?).unwrap_or(0);
    // Column name -> (offset in row, form).
    let mut layout = HashMap::new();
    let mut at = 0usize;
    for i in 1..=tfields {
        let name = h.get(&format!("TTYPE{i}")).unwrap_or_default().to_owned();
        let form = h.get(&format!("TFORM{i}")).unwrap_or_default().to_owned();
        let width = match form.as_str() {
            "K" | "D" | "1K" | "1D" => 8,
            f => f
                .strip_suffix('A')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| FitsError::Keyword {
                    keyword: format!("TFORM{i}"),
                    reason: format!("unsupported form {f:?}"),
                })?,
        };
        layout.insert(name, (at, form, width));
        at += width;
    }
    let row_len = usize::try_from(h.int("NAXIS1")?).unwrap_or(0);
    let nrows = usize::try_from(h.int("NAXIS2")?).unwrap_or(0);
    if row_len != at {
        return Err(FitsError::Unexpected(format!(
            "NAXIS1 is {row_len}, the columns take {at}"
        )));
    }
    let data = row_len
        .checked_mul(nrows)
        .and_then(|len| bytes.get(h.data_start..h.data_start.checked_add(len)?))
        .ok_or_else(|| FitsError::Truncated("binary table data".to_owned()))?;
    let mut plan = Vec::with_capacity(columns.len());
    for c in columns {
        let (off, form, width) = layout
            .get(c.name)
            .ok_or_else(|| FitsError::Unexpected(format!("column {} is missing", c.name)))?;
        let expected = c.kind.tform();
        if form.trim_start_matches('1') != expected.trim_start_matches('1') {
            return Err(FitsError::Unexpected(format!(
                "column {} has form {form}, expected {expected}",
                c.name
            )));
        }
        plan.push((c.kind, *off, *width));
    }
    let rows = data
        .chunks_exact(row_len.max(1))
        .take(nrows)
        .map(|row| {
            plan.iter()
                .map(|&(kind, off, width)| {
                    let b = &row[off..off + width];
                    match kind {
                        ColumnType::Int64 => {
                            let v = i64::from_be_bytes(to8(b));
                            Cell::Int((v != INT_NULL).then_some(v))
                        }
                        ColumnType::Float64 => Cell::Float(f64::from_be_bytes(to8(b))),
                        ColumnType::Text(_) => Cell::Text(
                            String::from_utf8_lossy(b)
                                .trim_end_matches([' ', '\0'])
                                .to_owned(),
                        ),
                    }
                })
                .collect()
        })
        .collect();
    Ok((rows, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLS: [Column; 3] = [
        Column {
            name: "id",
            kind: ColumnType::Int64,
            unit: "",
            ucd: "meta.id",
            description: "id",
        },
        Column {
            name: "t",
            kind: ColumnType::Float64,
            unit: "d",
            ucd: "time.epoch",
            description: "time",
        },
        Column {
            name: "band",
            kind: ColumnType::Text(4),
            unit: "",
            ucd: "instr.filter",
            description: "band",
        },
    ];

    #[test]
    fn bintable_round_trip_in_whole_blocks() {
        let rows = vec![
            vec![Cell::Int(Some(7)), Cell::Float(1.5), Cell::Text("g".into())],
            vec![
                Cell::Int(None),
                Cell::Float(f64::NAN),
                Cell::Text("r'x".into()),
            ],
        ];
        let mut file = empty_primary(|h| h.string("OBJECT", "O'Neil", ""));
        file.extend(bintable(&COLS, &rows, |_| {}));
        assert_eq!(file.len() % BLOCK, 0);
        let (back, h) = read_bintable(&file, &COLS).unwrap();
        assert_eq!(back[0], rows[0]);
        assert_eq!(back[1][0], Cell::Int(None));
        assert!(matches!(back[1][1], Cell::Float(f) if f.is_nan()));
        assert_eq!(back[1][2], Cell::Text("r'x".into()));
        assert_eq!(h.get("TUNIT2"), Some("d"));
        let primary = Header::parse(&file, 0).unwrap();
        assert_eq!(primary.get("OBJECT"), Some("O'Neil"));
    }

    #[test]
    fn image_with_scaling() {
        let mut h = HeaderWriter::default();
        h.logical("SIMPLE", true, "");
        h.int("BITPIX", 16, "");
        h.int("NAXIS", 2, "");
        h.int("NAXIS1", 2, "");
        h.int("NAXIS2", 1, "");
        h.int("BZERO", 10, "");
        h.int("BLANK", -1, "");
        let mut file = h.finish();
        file.extend_from_slice(&3i16.to_be_bytes());
        file.extend_from_slice(&(-1i16).to_be_bytes());
        pad_to_block(&mut file, 0);
        let img = first_image(&file).unwrap();
        assert_eq!((img.width, img.height), (2, 1));
        assert_eq!(img.pixels[0], 13.0);
        assert!(img.pixels[1].is_nan());
        assert!(first_image(&file[..100]).is_err());
        assert!(first_image(b"not fits").is_err());
    }
}

//! Record formats: turning a source's raw records (one JSON object, or one CSV line, each)
//! into rows of a stream's schema, and setting aside the records that do not fit.
//!
//! A block of records is decoded in one pass of Arrow's JSON or CSV decoder. Only when that
//! fails (bad syntax, a value of the wrong type, a NULL or missing value in a NOT NULL column)
//! is the block decoded record by record, so that each bad record becomes a [`DeadLetter`]
//! with the decoder's reason and the good ones go on.
//!
//! A JSON field missing from a record is NULL, as in a JSON column of Postgres or Spark's
//! `from_json`; for a NOT NULL column that makes the record malformed. Fields the stream does
//! not declare are ignored.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::error::ArrowError;

use crate::{ConnectorError, ConnectorResult};

/// How much of a malformed record a dead letter keeps.
pub const DEAD_LETTER_PAYLOAD_BYTES: usize = 1024;

/// The format of a source's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per record, fields matched to columns by name.
    Json,
    /// One CSV line per record (no header), fields matched to columns by position.
    Csv,
}

impl Format {
    pub fn parse(value: &str) -> ConnectorResult<Format> {
        match value.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            _ => Err(ConnectorError::invalid("format", value, "'json' or 'csv'")),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }
}

/// A record that could not be turned into a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where it came from in its source (a Kafka partition and offset, a file and line).
    pub position: String,
    /// The record as text, cut to [`DEAD_LETTER_PAYLOAD_BYTES`].
    pub payload: String,
    /// Why it was refused.
    pub error: String,
}

impl DeadLetter {
    pub fn new(position: String, payload: &[u8], error: String) -> Self {
        let cut = payload.len().min(DEAD_LETTER_PAYLOAD_BYTES);
        let mut text = String::from_utf8_lossy(&payload[..cut]).into_owned();
        if cut < payload.len() {
            text.push('…');
        }
        Self {
            position,
            payload: text,
            error,
        }
    }
}

/// Decodes records of one format into rows of one schema.
#[derive(Clone, Debug)]
pub struct RecordDecoder {
    format: Format,
    /// The stream's schema.
    schema: SchemaRef,
    /// The same columns, all nullable: the decoders fill NULLs in, checked afterwards so the
    /// reason names the column.
    lenient: SchemaRef,
}

/// Rows decoded from a block of records, and the records refused (by index in the block).
pub struct Decoded {
    pub rows: RecordBatch,
    pub refused: Vec<(usize, String)>,
}

impl RecordDecoder {
    /// A decoder into `schema`; fails if the format cannot carry one of its column types.
    pub fn new(format: Format, schema: SchemaRef) -> ConnectorResult<Self> {
        let lenient = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), f.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let decoder = Self {
            format,
            schema,
            lenient,
        };
        decoder.decode_all(&[]).map_err(|e| {
            ConnectorError::Invalid(format!(
                "format '{}' cannot decode the stream's columns: {e}",
                format.name()
            ))
        })?;
        Ok(decoder)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Decodes a block of records; those that do not fit are refused with the reason.
    pub fn decode(&self, records: &[&[u8]]) -> Decoded {
        if let Ok(rows) = self.decode_all(records) {
            return Decoded {
                rows,
                refused: vec![],
            };
        }
        let mut good = Vec::with_capacity(records.len());
        let mut refused = Vec::new();
        for (i, record) in records.iter().enumerate() {
            match self.decode_all(std::slice::from_ref(record)) {
                Ok(_) => good.push(*record),
                Err(e) => refused.push((i, e)),
            }
        }
        let rows = self
            .decode_all(&good)
            .expect("records that decode one by one decode together");
        Decoded { rows, refused }
    }

    /// Decodes every record, or fails on the first that does not fit.
    fn decode_all(&self, records: &[&[u8]]) -> Result<RecordBatch, String> {
        if let Some(empty) = records
            .iter()
            .position(|r| r.iter().all(u8::is_ascii_whitespace))
        {
            return Err(format!("record {empty} is empty"));
        }
        let decoded = match self.format {
            Format::Json => self.json(records),
            Format::Csv => self.csv(records),
        }
        .map_err(|e| e.to_string())?;
        if decoded.num_rows() != records.len() {
            return Err(format!(
                "a record must hold exactly one {}",
                match self.format {
                    Format::Json => "JSON object",
                    Format::Csv => "line",
                }
            ));
        }
        for (field, column) in self.schema.fields().iter().zip(decoded.columns()) {
            if !field.is_nullable() && column.null_count() > 0 {
                return Err(format!(
                    "column \"{}\" is NOT NULL but the record has no value for it",
                    field.name()
                ));
            }
        }
        RecordBatch::try_new(self.schema.clone(), decoded.columns().to_vec())
            .map_err(|e| e.to_string())
    }

    fn json(&self, records: &[&[u8]]) -> Result<RecordBatch, ArrowError> {
        let mut decoder = arrow::json::ReaderBuilder::new(self.lenient.clone())
            .with_batch_size(records.len().max(1) + 1)
            .build_decoder()?;
        for record in records {
            decoder.decode(record)?;
            // A record cut short would run into the next one.
            if decoder.has_partial_record() {
                return Err(ArrowError::JsonError("incomplete JSON record".into()));
            }
        }
        Ok(decoder
            .flush()?
            .unwrap_or_else(|| RecordBatch::new_empty(self.lenient.clone())))
    }

    fn csv(&self, records: &[&[u8]]) -> Result<RecordBatch, ArrowError> {
        let mut decoder = arrow::csv::ReaderBuilder::new(self.lenient.clone())
            .with_header(false)
            .with_batch_size(records.len().max(1) + 1)
            .build_decoder();
        for record in records {
            let line = record.strip_suffix(b"\n").unwrap_or(record);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.contains(&b'\n') {
                return Err(ArrowError::CsvError("a record must be one line".into()));
            }
            let mut rest: &[u8] = line;
            while !rest.is_empty() {
                let n = decoder.decode(rest)?;
                rest = &rest[n..];
            }
            decoder.decode(b"\n")?;
        }
        Ok(decoder
            .flush()?
            .unwrap_or_else(|| RecordBatch::new_empty(self.lenient.clone())))
    }
}

/// Each row of a batch as a JSON object (NULLs written out), in row order.
pub fn rows_as_json(batch: &RecordBatch) -> ConnectorResult<Vec<String>> {
    let mut out = Vec::new();
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(&mut out);
    writer
        .write(batch)
        .and_then(|_| writer.finish())
        .map_err(|e| ConnectorError::Invalid(format!("cannot write rows as JSON: {e}")))?;
    drop(writer);
    let text = String::from_utf8(out)
        .map_err(|e| ConnectorError::Invalid(format!("JSON is not UTF-8: {e}")))?;
    Ok(text.lines().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Int64Type, TimeUnit};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]))
    }

    #[test]
    fn json_block_decodes_in_one_pass() {
        let d = RecordDecoder::new(Format::Json, schema()).unwrap();
        let records: Vec<&[u8]> = vec![
            br#"{"id": 1, "name": "a", "ts": "2024-01-01 00:00:01"}"#,
            br#"{"id": 2, "extra": true}"#,
        ];
        let out = d.decode(&records);
        assert!(out.refused.is_empty());
        assert_eq!(out.rows.num_rows(), 2);
        assert_eq!(
            out.rows.column(0).as_primitive::<Int64Type>(),
            &Int64Array::from(vec![1, 2])
        );
        assert!(out.rows.column(1).is_null(1));
    }

    #[test]
    fn bad_json_records_are_refused_one_by_one() {
        let d = RecordDecoder::new(Format::Json, schema()).unwrap();
        let records: Vec<&[u8]> = vec![
            br#"{"id": 1}"#,
            br#"{"id": "#,
            br#"{"id": "x"}"#,
            br#"{"name": "no id"}"#,
            br#"{"id": 5}{"id": 6}"#,
            b"",
            br#"{"id": 7}"#,
        ];
        let out = d.decode(&records);
        let refused: Vec<usize> = out.refused.iter().map(|(i, _)| *i).collect();
        assert_eq!(refused, vec![1, 2, 3, 4, 5]);
        assert!(
            out.refused[2].1.contains("\"id\" is NOT NULL"),
            "{:?}",
            out.refused
        );
        assert_eq!(
            out.rows.column(0).as_primitive::<Int64Type>(),
            &Int64Array::from(vec![1, 7])
        );
    }

    #[test]
    fn csv_lines() {
        let d = RecordDecoder::new(Format::Csv, schema()).unwrap();
        let records: Vec<&[u8]> = vec![
            b"1,a,2024-01-01 00:00:01\n",
            b"x,b,2024-01-01 00:00:02",
            b"3,,",
        ];
        let out = d.decode(&records);
        assert_eq!(out.refused.len(), 1);
        assert_eq!(out.refused[0].0, 1);
        assert_eq!(out.rows.num_rows(), 2);
        assert!(out.rows.column(1).is_null(1));
    }

    #[test]
    fn rows_become_json_objects() {
        let d = RecordDecoder::new(Format::Json, schema()).unwrap();
        let records: Vec<&[u8]> = vec![br#"{"id": 1, "name": "a\"b"}"#, br#"{"id": 2}"#];
        let rows = d.decode(&records).rows;
        let json = rows_as_json(&rows).unwrap();
        assert_eq!(
            json,
            vec![
                r#"{"id":1,"name":"a\"b","ts":null}"#,
                r#"{"id":2,"name":null,"ts":null}"#
            ]
        );
    }

    #[test]
    fn dead_letters_cut_long_payloads() {
        let long = vec![b'x'; DEAD_LETTER_PAYLOAD_BYTES * 2];
        let d = DeadLetter::new("0:1".into(), &long, "bad".into());
        assert_eq!(d.payload.chars().count(), DEAD_LETTER_PAYLOAD_BYTES + 1);
    }
}

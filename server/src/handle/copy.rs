//! COPY ... FROM STDIN and COPY ... TO STDOUT in text and CSV formats.
//!
//! FROM: the client's data is collected whole (a NOTICE every second tells how many rows have
//! arrived), parsed into text columns, and cast to the target's types with strict casts (a
//! malformed value fails the COPY with 22P02 and loads nothing); then it is written as one
//! epoch, like a multi-row INSERT.
//!
//! TO: the relation (or query) is read at one epoch like a SELECT and sent as COPY data, one
//! line per row.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use eddy_catalog::{Relation, RelationKind};
use eddy_sql::names::normalize_object_name;
use eddy_sql::{SqlError, SqlResult};
use sqlparser::ast::{
    CopyOption, CopySource, CopyTarget as SqlCopyTarget, Statement as SqlStatement,
};

use crate::engine::{OnConflict, WriteOp, Written};

use super::{Outcome, Shared, resolve};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
}

/// How often a COPY FROM STDIN tells the client how much it has received.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A COPY FROM STDIN in progress: its target and the data received so far.
pub struct Incoming {
    pub target: CopyTarget,
    pub data: Vec<u8>,
    lines: u64,
    reported: Instant,
}

impl Incoming {
    pub fn new(target: CopyTarget) -> Self {
        Self {
            target,
            data: Vec::new(),
            lines: 0,
            reported: Instant::now(),
        }
    }

    /// Takes a chunk of the client's data; answers a progress message (for a NOTICE) at most
    /// every [`PROGRESS_EVERY`].
    pub fn receive(&mut self, chunk: &[u8]) -> Option<String> {
        self.data.extend_from_slice(chunk);
        self.lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        if self.reported.elapsed() < PROGRESS_EVERY {
            return None;
        }
        self.reported = Instant::now();
        Some(format!(
            "COPY into \"{}\": {} rows received ({:.1} MB)",
            self.target.relation.name,
            self.lines,
            self.data.len() as f64 / 1e6
        ))
    }
}

/// Where a COPY FROM STDIN goes, and how its data is written.
#[derive(Clone, Debug)]
pub struct CopyTarget {
    pub relation: Arc<Relation>,
    pub format: CopyFormat,
    pub header: bool,
    pub delimiter: u8,
    pub null: String,
}

pub fn start(shared: &Shared, stmt: &SqlStatement) -> SqlResult<Outcome> {
    let SqlStatement::Copy {
        source,
        to,
        target,
        options,
        ..
    } = stmt
    else {
        return Err(SqlError::Internal("not a COPY".into()));
    };
    if *to || !matches!(target, SqlCopyTarget::Stdin) {
        return Err(SqlError::Unsupported(
            "COPY other than FROM STDIN or TO STDOUT".into(),
        ));
    }
    let CopySource::Table {
        table_name,
        columns,
    } = source
    else {
        return Err(SqlError::Unsupported("COPY (query)".into()));
    };
    if !columns.is_empty() {
        return Err(SqlError::Unsupported("COPY with a column list".into()));
    }
    let relation = resolve(shared, &normalize_object_name(table_name)?)?;
    if !matches!(relation.kind, RelationKind::Stream | RelationKind::Table) {
        return Err(SqlError::WrongObjectType(format!(
            "cannot copy to {} \"{}\"",
            relation.kind, relation.name
        )));
    }
    let options = CopyOptions::parse(options)?;
    let t = CopyTarget {
        relation,
        format: options.format,
        header: options.header,
        delimiter: options.delimiter,
        null: options.null,
    };
    Ok(Outcome::CopyIn(t))
}

/// FORMAT, HEADER, DELIMITER and NULL of a COPY, with Postgres' defaults per format.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub header: bool,
    pub delimiter: u8,
    pub null: String,
}

impl CopyOptions {
    pub fn parse(options: &[CopyOption]) -> SqlResult<Self> {
        let mut format = CopyFormat::Text;
        let mut header = false;
        let mut delimiter = None;
        let mut null = None;
        for o in options {
            match o {
                CopyOption::Format(f) => {
                    format = match f.value.to_lowercase().as_str() {
                        "csv" => CopyFormat::Csv,
                        "text" => CopyFormat::Text,
                        other => {
                            return Err(SqlError::Unsupported(format!("COPY format \"{other}\"")));
                        }
                    }
                }
                CopyOption::Header(h) => header = *h,
                CopyOption::Delimiter(d) => delimiter = Some(*d as u8),
                CopyOption::Null(n) => null = Some(n.clone()),
                other => return Err(SqlError::Unsupported(format!("COPY option {other}"))),
            }
        }
        let (default_delimiter, default_null) = match format {
            CopyFormat::Csv => (b',', String::new()),
            CopyFormat::Text => (b'\t', "\\N".to_string()),
        };
        Ok(Self {
            format,
            header,
            delimiter: delimiter.unwrap_or(default_delimiter),
            null: null.unwrap_or(default_null),
        })
    }
}

/// `COPY relation TO STDOUT` / `COPY (query) TO STDOUT`: the rows, read like a SELECT.
pub async fn copy_out(
    shared: &Shared,
    session: &Arc<eddy_sql::compat::ClientSession>,
    stmt: &SqlStatement,
) -> SqlResult<Outcome> {
    let SqlStatement::Copy {
        source, options, ..
    } = stmt
    else {
        return Err(SqlError::Internal("not a COPY".into()));
    };
    let options = CopyOptions::parse(options)?;
    let query = match source {
        CopySource::Query(q) => SqlStatement::Query(q.clone()),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let relation = resolve(shared, &normalize_object_name(table_name)?)?;
            if !relation.is_readable() {
                return Err(SqlError::WrongObjectType(format!(
                    "cannot copy from {} \"{}\"",
                    relation.kind, relation.name
                )));
            }
            let list = if columns.is_empty() {
                "*".to_string()
            } else {
                columns
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let text = format!("SELECT {list} FROM {table_name}");
            match eddy_sql::parser::parse(&text)?.pop() {
                Some(eddy_sql::parser::Statement::Sql(s)) => *s,
                _ => return Err(SqlError::Internal(format!("{text} does not parse"))),
            }
        }
    };
    match super::query::execute(shared, session, &query, &[]).await? {
        Outcome::Rows {
            schema, batches, ..
        } => Ok(Outcome::CopyOut {
            schema,
            batches,
            options,
        }),
        _ => Err(SqlError::Internal("COPY TO read no rows".into())),
    }
}

fn unescape_text(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Drops the `\.` end-of-data line that some clients still send.
fn strip_end_marker(data: &[u8]) -> &[u8] {
    let trimmed = data.strip_suffix(b"\n").unwrap_or(data);
    let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
    match trimmed.strip_suffix(b"\\.") {
        Some(rest) if rest.is_empty() || rest.ends_with(b"\n") => rest,
        _ => data,
    }
}

/// Splits the data into one text column per target column (NULL where the data says so).
fn text_columns(t: &CopyTarget, data: &[u8]) -> SqlResult<Vec<StringArray>> {
    let width = t.relation.columns.len();
    let mut builders: Vec<StringBuilder> = (0..width).map(|_| StringBuilder::new()).collect();
    match t.format {
        CopyFormat::Text => {
            let text = std::str::from_utf8(data)
                .map_err(|_| SqlError::InvalidText("COPY data is not valid UTF-8".into()))?;
            for (n, line) in text.lines().enumerate().skip(t.header as usize) {
                if line == "\\." {
                    break;
                }
                let mut count = 0;
                for (c, field) in line.split(t.delimiter as char).enumerate() {
                    count = c + 1;
                    let Some(builder) = builders.get_mut(c) else {
                        continue;
                    };
                    if field == t.null {
                        builder.append_null();
                    } else if field.contains('\\') {
                        builder.append_value(unescape_text(field));
                    } else {
                        builder.append_value(field);
                    }
                }
                if count != width {
                    return Err(SqlError::InvalidText(format!(
                        "COPY line {}: expected {width} columns, got {count}",
                        n + 1
                    )));
                }
            }
        }
        CopyFormat::Csv => {
            let schema = Arc::new(Schema::new(
                (0..width)
                    .map(|i| Field::new(format!("c{i}"), DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            ));
            let reader = arrow::csv::ReaderBuilder::new(schema)
                .with_header(t.header)
                .with_delimiter(t.delimiter)
                .with_batch_size(65_536)
                .build(Cursor::new(data))
                .map_err(|e| SqlError::InvalidText(e.to_string()))?;
            for batch in reader {
                let batch = batch.map_err(|e| SqlError::InvalidText(e.to_string()))?;
                for (column, builder) in batch.columns().iter().zip(&mut builders) {
                    // The reader reads an empty field as NULL or as ""; either is the NULL
                    // string only when that is what the options say.
                    for v in column.as_string::<i32>().iter() {
                        match v.unwrap_or("") {
                            v if v == t.null => builder.append_null(),
                            v => builder.append_value(v),
                        }
                    }
                }
            }
        }
    }
    Ok(builders.iter_mut().map(StringBuilder::finish).collect())
}

/// Parses and writes the collected data; returns what was written.
pub async fn finish(shared: &Shared, t: &CopyTarget, data: &[u8]) -> SqlResult<Written> {
    let text = text_columns(t, strip_end_marker(data))?;
    let schema = t.relation.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(text)
        .map(|(f, text)| super::cast_to_column(&(Arc::new(text) as ArrayRef), f))
        .collect::<SqlResult<Vec<_>>>()?;
    let batch = RecordBatch::try_new(schema, columns)?;
    let op = WriteOp::new_rows(&t.relation, vec![batch], OnConflict::Error);
    shared.engine.write(op).await
}

//! Arrow values to Postgres values: result column types and the rows themselves, in text or
//! binary format as the client asked.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, IntervalMonthDayNanoType, SchemaRef, Time64MicrosecondType,
    Time64NanosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use eddy_catalog::SqlType;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use rust_decimal::Decimal;

/// The Postgres type of a result column.
pub fn pg_type(field: &Field) -> Type {
    match field
        .metadata()
        .get(eddy_sql::compat::rows::VECTOR_TYPE_KEY)
        .map(String::as_str)
    {
        Some("int2vector") => return Type::INT2_VECTOR,
        Some("oidvector") => return Type::OID_VECTOR,
        _ => {}
    }
    // Catalog columns holding object ids (tagged by the catalog tables) are `oid`.
    if field.data_type() == &DataType::Int32
        && field
            .metadata()
            .contains_key(eddy_sql::compat::rows::OID_ALIAS_KEY)
    {
        return Type::OID;
    }
    if let DataType::List(inner) | DataType::LargeList(inner) = field.data_type() {
        return super::arrays::array_type(inner);
    }
    match SqlType::from_field(field) {
        Some(SqlType::SmallInt) => Type::INT2,
        Some(SqlType::Int) => Type::INT4,
        Some(SqlType::BigInt) => Type::INT8,
        Some(SqlType::Real) => Type::FLOAT4,
        Some(SqlType::Double) => Type::FLOAT8,
        Some(SqlType::Numeric { .. }) => Type::NUMERIC,
        Some(SqlType::Bool) => Type::BOOL,
        Some(SqlType::Text) => Type::TEXT,
        Some(SqlType::Varchar(_)) => Type::VARCHAR,
        Some(SqlType::Bytea) => Type::BYTEA,
        Some(SqlType::Date) => Type::DATE,
        Some(SqlType::Time) => Type::TIME,
        Some(SqlType::Timestamp) => Type::TIMESTAMP,
        Some(SqlType::Timestamptz) => Type::TIMESTAMPTZ,
        Some(SqlType::Interval) => Type::INTERVAL,
        Some(SqlType::Json) => Type::JSON,
        Some(SqlType::Jsonb) => Type::JSONB,
        // Arrays are lists, answered above.
        Some(SqlType::Array(_)) | None => Type::TEXT,
    }
}

/// Result column descriptions.
pub fn fields(schema: &SchemaRef, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let t = pg_type(f);
            let mut info = FieldInfo::new(
                f.name().clone(),
                None,
                None,
                t.clone(),
                format.format_for(i),
            );
            if let (&Type::NUMERIC, DataType::Decimal128(p, s)) = (&t, f.data_type()) {
                info = info.with_type_modifier((((*p as i32) << 16) | (*s as i32)) + 4);
            }
            info
        })
        .collect()
}

/// Encodes every row of the batches.
pub fn rows(fields: &Arc<Vec<FieldInfo>>, batches: &[RecordBatch]) -> PgWireResult<Vec<DataRow>> {
    let mut out = Vec::new();
    for batch in batches {
        let mut encoder = DataRowEncoder::new(fields.clone());
        for i in 0..batch.num_rows() {
            for (c, column) in batch.columns().iter().enumerate() {
                let text = is_text(&fields[c].format());
                encode_value(&mut encoder, column.as_ref(), i, fields[c].datatype(), text)?;
            }
            out.push(encoder.take_row());
        }
    }
    Ok(out)
}

/// Value `i` of a timestamp column, in UTC.
pub(super) fn timestamp_at(array: &dyn Array, unit: &TimeUnit, i: usize) -> Option<NaiveDateTime> {
    let us = match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(i) * 1_000_000,
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(i) * 1_000,
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(i),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(i) / 1_000,
    };
    DateTime::<Utc>::from_timestamp_micros(us).map(|d| d.naive_utc())
}

/// Value `i` of a date column.
pub(super) fn date_at(array: &dyn Array, i: usize) -> Option<NaiveDate> {
    let days = array.as_primitive::<Date32Type>().value(i);
    NaiveDate::from_num_days_from_ce_opt(days + 719_163)
}

/// Value `i` of a time column.
pub(super) fn time_at(array: &dyn Array, unit: &TimeUnit, i: usize) -> Option<NaiveTime> {
    let us = match unit {
        TimeUnit::Nanosecond => array.as_primitive::<Time64NanosecondType>().value(i) / 1000,
        _ => array.as_primitive::<Time64MicrosecondType>().value(i),
    };
    NaiveTime::from_num_seconds_from_midnight_opt(
        (us / 1_000_000) as u32,
        ((us % 1_000_000) * 1000) as u32,
    )
}

/// Value `i` of a decimal column, if it fits a `Decimal`.
pub(super) fn decimal_at(array: &dyn Array, scale: i8, i: usize) -> Option<Decimal> {
    let v = array.as_primitive::<Decimal128Type>().value(i);
    Decimal::try_from_i128_with_scale(v, scale as u32).ok()
}

/// Value `i` of an interval column as months, days and microseconds.
pub(super) fn interval_at(array: &dyn Array, i: usize) -> pg_interval::Interval {
    let v = array.as_primitive::<IntervalMonthDayNanoType>().value(i);
    pg_interval::Interval::new(v.months, v.days, v.nanoseconds / 1000)
}

/// Postgres' text form of a float: the shortest exact digits, in exponent form (`1e+100`,
/// `1.5e-05`) outside `[1e-4, 1e15)`. `shortest` is Rust's shortest round-trip rendering.
pub(super) fn float_text(v: f64, shortest: String) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let a = v.abs();
    if a == 0.0 || (1e-4..1e15).contains(&a) {
        return shortest;
    }
    let e = format!("{v:e}");
    match e.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => e,
    }
}

/// jsonb as Postgres prints it: normalized, with `", "` and `": "` separators. (`json` keeps
/// its text as written.)
fn jsonb_text(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(jsonb_text).collect::<Vec<_>>().join(", ")
            )
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // jsonb orders keys by length, then bytes.
            entries.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then(a.0.cmp(b.0)));
            let body = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::String((*k).clone()), jsonb_text(v)))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{{{body}}}")
        }
        other => other.to_string(),
    }
}

/// Postgres' text form of a timestamp: fractional seconds only as far as they are non-zero.
pub(super) fn timestamp_text(t: &NaiveDateTime, zone: bool) -> String {
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let micros = t.and_utc().timestamp_subsec_micros();
    if micros != 0 {
        let frac = format!("{micros:06}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    if zone {
        s.push_str("+00");
    }
    s
}

/// Postgres' text form of an interval (IntervalStyle `postgres`): `1 year 2 mons 3 days
/// 04:05:06.5`. After a negative part, a positive one carries its `+`; the time part shows
/// when it is not zero or nothing else does, its fraction only as far as it is non-zero.
pub fn interval_text(months: i32, days: i32, micros: i64) -> String {
    let mut out = String::new();
    let mut after_negative = false;
    for (value, unit) in [
        (i64::from(months / 12), "year"),
        (i64::from(months % 12), "mon"),
        (i64::from(days), "day"),
    ] {
        if value == 0 {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        let sign = if after_negative && value > 0 { "+" } else { "" };
        let plural = if value == 1 { "" } else { "s" };
        out.push_str(&format!("{sign}{value} {unit}{plural}"));
        after_negative = value < 0;
    }
    if out.is_empty() || micros != 0 {
        if !out.is_empty() {
            out.push(' ');
        }
        let sign = match (micros < 0, after_negative) {
            (true, _) => "-",
            (false, true) => "+",
            (false, false) => "",
        };
        let total = micros.unsigned_abs();
        let (hours, rest) = (total / 3_600_000_000, total % 3_600_000_000);
        let (minutes, rest) = (rest / 60_000_000, rest % 60_000_000);
        let (seconds, fraction) = (rest / 1_000_000, rest % 1_000_000);
        out.push_str(&format!("{sign}{hours:02}:{minutes:02}:{seconds:02}"));
        if fraction != 0 {
            let digits = format!("{fraction:06}");
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
    }
    out
}

pub(super) fn time_text(t: &NaiveTime) -> String {
    let mut s = t.format("%H:%M:%S").to_string();
    let micros = t.nanosecond() / 1000;
    if micros != 0 {
        let frac = format!("{micros:06}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s
}

fn encode_value(
    enc: &mut DataRowEncoder,
    array: &dyn Array,
    i: usize,
    ty: &Type,
    text: bool,
) -> PgWireResult<()> {
    if array.is_null(i) || array.data_type() == &DataType::Null {
        return enc.encode_field(&None::<i32>);
    }
    match array.data_type() {
        DataType::Boolean => enc.encode_field(&array.as_boolean().value(i)),
        DataType::Int8 => enc.encode_field(&(array.as_primitive::<Int8Type>().value(i) as i16)),
        DataType::Int16 => enc.encode_field(&array.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 if *ty == Type::OID => {
            enc.encode_field(&(array.as_primitive::<Int32Type>().value(i) as u32))
        }
        DataType::Int32 => enc.encode_field(&array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => enc.encode_field(&array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => enc.encode_field(&(array.as_primitive::<UInt8Type>().value(i) as i16)),
        DataType::UInt16 => enc.encode_field(&(array.as_primitive::<UInt16Type>().value(i) as i32)),
        DataType::UInt32 => enc.encode_field(&(array.as_primitive::<UInt32Type>().value(i) as i64)),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(i);
            enc.encode_field(&Decimal::from(v))
        }
        DataType::Float32 => {
            let v = array.as_primitive::<Float32Type>().value(i);
            if text {
                enc.encode_field(&float_text(v as f64, v.to_string()))
            } else {
                enc.encode_field(&v)
            }
        }
        DataType::Float64 => {
            let v = array.as_primitive::<Float64Type>().value(i);
            if text {
                enc.encode_field(&float_text(v, v.to_string()))
            } else {
                enc.encode_field(&v)
            }
        }
        DataType::Decimal128(_, s) => match decimal_at(array, *s, i) {
            Some(d) => enc.encode_field(&d),
            None => enc.encode_field(&display(array, i)),
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let s = match array.data_type() {
                DataType::Utf8 => array.as_string::<i32>().value(i),
                DataType::LargeUtf8 => array.as_string::<i64>().value(i),
                _ => array.as_string_view().value(i),
            };
            if text && *ty == Type::JSONB {
                match serde_json::from_str::<serde_json::Value>(s) {
                    Ok(v) => enc.encode_field(&jsonb_text(&v)),
                    Err(_) => enc.encode_field(&s),
                }
            } else if !text && matches!(*ty, Type::JSON | Type::JSONB) {
                match serde_json::from_str::<serde_json::Value>(s) {
                    Ok(v) => enc.encode_field(&v),
                    Err(_) => enc.encode_field(&s),
                }
            } else {
                enc.encode_field(&s)
            }
        }
        DataType::Binary => enc.encode_field(&array.as_binary::<i32>().value(i)),
        DataType::LargeBinary => enc.encode_field(&array.as_binary::<i64>().value(i)),
        DataType::BinaryView => enc.encode_field(&array.as_binary_view().value(i)),
        DataType::Date32 => enc.encode_field(&date_at(array, i)),
        DataType::Time64(unit) => {
            let t = time_at(array, unit, i);
            match (text, t) {
                (true, Some(t)) => enc.encode_field(&time_text(&t)),
                _ => enc.encode_field(&t),
            }
        }
        DataType::Timestamp(unit, tz) => {
            let dt = timestamp_at(array, unit, i);
            if let (true, Some(t)) = (text, &dt) {
                return enc.encode_field(&timestamp_text(t, tz.is_some()));
            }
            match tz {
                None => enc.encode_field(&dt),
                Some(_) => enc.encode_field(&dt.map(|d| d.and_utc())),
            }
        }
        DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano) => {
            let iv = interval_at(array, i);
            if text {
                return enc.encode_field(&interval_text(iv.months, iv.days, iv.microseconds));
            }
            enc.encode_field(&iv)
        }
        DataType::List(_) => super::arrays::encode(enc, &array.as_list::<i32>().value(i), ty, text),
        _ => enc.encode_field(&display(array, i)),
    }
}

pub(super) fn display(array: &dyn Array, i: usize) -> String {
    ArrayFormatter::try_new(array, &FormatOptions::default())
        .map(|f| f.value(i).to_string())
        .unwrap_or_default()
}

/// Whether a field format request asks for text.
pub fn is_text(format: &FieldFormat) -> bool {
    matches!(format, FieldFormat::Text)
}

/// A row encoded in text format as one line of COPY's text format: tab-separated, `\N` for
/// NULL, backslash escapes for backslash, tab, newline and carriage return.
pub fn copy_text_line(row: &DataRow) -> bytes::Bytes {
    copy_line(row, &CopyLayout::default())
}

/// How COPY TO lays out a line: CSV or text, the delimiter and the NULL marker.
#[derive(Clone, Debug)]
pub struct CopyLayout {
    pub csv: bool,
    pub delimiter: u8,
    pub null: String,
}

impl Default for CopyLayout {
    fn default() -> Self {
        Self {
            csv: false,
            delimiter: b'\t',
            null: "\\N".into(),
        }
    }
}

impl CopyLayout {
    /// One field: text escapes backslashes and control characters; CSV quotes a field that
    /// holds the delimiter, a quote, a line break or looks like the NULL marker.
    fn push_field(&self, out: &mut Vec<u8>, value: &[u8]) {
        if self.csv {
            let quote = value.is_empty()
                || value == self.null.as_bytes()
                || value
                    .iter()
                    .any(|&b| b == self.delimiter || b == b'"' || b == b'\n' || b == b'\r');
            if !quote {
                out.extend_from_slice(value);
                return;
            }
            out.push(b'"');
            for &b in value {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            out.push(b'"');
            return;
        }
        for &b in value {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b if b == self.delimiter => {
                    out.push(b'\\');
                    out.push(b);
                }
                b => out.push(b),
            }
        }
    }

    /// The header line: the column names.
    pub fn header(&self, names: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                out.push(self.delimiter);
            }
            self.push_field(&mut out, name.as_bytes());
        }
        out.push(b'\n');
        out
    }
}

/// A text-format row as one COPY line.
pub fn copy_line(row: &DataRow, layout: &CopyLayout) -> bytes::Bytes {
    let data = &row.data[..];
    let mut out = Vec::with_capacity(data.len() + 1);
    let mut at = 0;
    for field in 0..row.field_count {
        if field > 0 {
            out.push(layout.delimiter);
        }
        let Some(len) = data.get(at..at + 4) else {
            break;
        };
        let len = i32::from_be_bytes(len.try_into().expect("four bytes"));
        at += 4;
        if len < 0 {
            out.extend_from_slice(layout.null.as_bytes());
            continue;
        }
        let end = (at + len as usize).min(data.len());
        layout.push_field(&mut out, &data[at..end]);
        at = end;
    }
    out.push(b'\n');
    out.into()
}

#[cfg(test)]
mod tests {
    use super::interval_text;

    #[test]
    fn intervals_read_as_postgres_writes_them() {
        const HOUR: i64 = 3_600_000_000;
        for (months, days, micros, text) in [
            (
                14,
                3,
                4 * HOUR + 306_500_000,
                "1 year 2 mons 3 days 04:05:06.5",
            ),
            (0, 0, 0, "00:00:00"),
            (1, 1, 0, "1 mon 1 day"),
            (0, -1, 2 * HOUR, "-1 days +02:00:00"),
            (0, 1, -2 * HOUR, "1 day -02:00:00"),
            (-13, 0, 0, "-1 years -1 mons"),
            (0, 0, 100 * HOUR + 1, "100:00:00.000001"),
        ] {
            assert_eq!(interval_text(months, days, micros), text);
        }
    }
}

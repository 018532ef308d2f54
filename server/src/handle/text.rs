//! Reading the text of the commonest column types (integers, dates, timestamps) straight into
//! their arrays, where Arrow's cast kernel would first take each value through a general
//! parser. COPY reads its text columns through [`read`] (see `cast_to_column`); an INSERT of
//! literal rows builds its columns value by value through [`Column`], without a text array
//! first. A bulk load or a 1,000-row INSERT spends much of its time here.
//!
//! Only text of one plain form is read: integers as optional `-` and digits, dates as
//! `YYYY-MM-DD`, timestamps as `YYYY-MM-DD HH:MM:SS[.ffffff]` (or with a `T`). A column
//! with any other value returns None and is cast as before, so the two paths agree on every
//! value this one reads and the cast alone judges the rest (and words the errors).

use std::sync::Arc;

use arrow::array::builder::{NullBufferBuilder, StringBuilder};
use arrow::array::{Array, ArrayRef, PrimitiveArray, StringArray};
use arrow::datatypes::{
    DataType, Date32Type, Int16Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};

/// `text` read as `ty`, or None when `ty` is not one read here or a value is not in the
/// plain form.
pub fn read(text: &StringArray, ty: &DataType) -> Option<ArrayRef> {
    let mut column = Column::new(ty, text.len())?;
    for value in text {
        match value {
            Some(value) if !column.push(value, false) => return None,
            Some(_) => {}
            None => column.push_null(),
        }
    }
    Some(column.finish())
}

/// A column built value by value from text in the plain forms (and any string for a text
/// column): what [`read`] makes of COPY's text, and an INSERT's literals without a text array
/// first.
pub struct Column {
    values: Values,
    nulls: NullBufferBuilder,
}

enum Values {
    Int64(Vec<i64>),
    Int32(Vec<i32>),
    Int16(Vec<i16>),
    Date32(Vec<i32>),
    Timestamp(Vec<i64>),
    Utf8(StringBuilder),
}

impl Column {
    /// A column of `ty` for `n` values, or None when `ty` is not one built here.
    pub fn new(ty: &DataType, n: usize) -> Option<Self> {
        let values = match ty {
            DataType::Int64 => Values::Int64(Vec::with_capacity(n)),
            DataType::Int32 => Values::Int32(Vec::with_capacity(n)),
            DataType::Int16 => Values::Int16(Vec::with_capacity(n)),
            DataType::Date32 => Values::Date32(Vec::with_capacity(n)),
            DataType::Timestamp(TimeUnit::Microsecond, None) => {
                Values::Timestamp(Vec::with_capacity(n))
            }
            DataType::Utf8 => Values::Utf8(StringBuilder::with_capacity(n, n * 16)),
            _ => return None,
        };
        Some(Self {
            values,
            nulls: NullBufferBuilder::new(n),
        })
    }

    pub fn push_null(&mut self) {
        match &mut self.values {
            Values::Int64(v) | Values::Timestamp(v) => v.push(0),
            Values::Int32(v) | Values::Date32(v) => v.push(0),
            Values::Int16(v) => v.push(0),
            Values::Utf8(b) => b.append_value(""),
        }
        self.nulls.append_null();
    }

    /// Adds a quoted string's content (`number`: an unquoted number's text); false when
    /// it is not in the plain form of the column's type (nothing is added then).
    pub fn push(&mut self, text: &str, number: bool) -> bool {
        let added = match &mut self.values {
            Values::Int64(v) => integer(text).map(|x| v.push(x)),
            Values::Int32(v) => integer(text)
                .and_then(|x| i32::try_from(x).ok())
                .map(|x| v.push(x)),
            Values::Int16(v) => integer(text)
                .and_then(|x| i16::try_from(x).ok())
                .map(|x| v.push(x)),
            Values::Date32(v) if !number => date(text.as_bytes())
                .and_then(|x| i32::try_from(x).ok())
                .map(|x| v.push(x)),
            Values::Timestamp(v) if !number => timestamp(text).map(|x| v.push(x)),
            Values::Utf8(b) if !number => {
                b.append_value(text);
                Some(())
            }
            _ => None,
        };
        if added.is_some() {
            self.nulls.append_non_null();
        }
        added.is_some()
    }

    pub fn finish(mut self) -> ArrayRef {
        let nulls = self.nulls.finish();
        match self.values {
            Values::Int64(v) => Arc::new(PrimitiveArray::<Int64Type>::new(v.into(), nulls)),
            Values::Int32(v) => Arc::new(PrimitiveArray::<Int32Type>::new(v.into(), nulls)),
            Values::Int16(v) => Arc::new(PrimitiveArray::<Int16Type>::new(v.into(), nulls)),
            Values::Date32(v) => Arc::new(PrimitiveArray::<Date32Type>::new(v.into(), nulls)),
            Values::Timestamp(v) => Arc::new(PrimitiveArray::<TimestampMicrosecondType>::new(
                v.into(),
                nulls,
            )),
            Values::Utf8(mut b) => {
                let (offsets, values, _) = b.finish().into_parts();
                Arc::new(StringArray::new(offsets, values, nulls))
            }
        }
    }
}

/// An optional `-` and 1 to 18 digits.
fn integer(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let magnitude = number(digits)? as i64;
    Some(if negative { -magnitude } else { magnitude })
}

/// ASCII digits as a number.
fn number(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// `YYYY-MM-DD` (years 1 to 9999) as days since 1970-01-01.
fn date(s: &[u8]) -> Option<i64> {
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = *s else {
        return None;
    };
    let year = number(&[y0, y1, y2, y3])? as i64;
    let month = number(&[m0, m1])? as u32;
    let day = number(&[d0, d1])? as u32;
    if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// `YYYY-MM-DD HH:MM:SS`, a `T` or a space between, with up to six digits of fraction, as
/// microseconds since 1970-01-01 00:00:00.
fn timestamp(s: &str) -> Option<i64> {
    let s = s.as_bytes();
    if s.len() < 19 || !matches!(s[10], b' ' | b'T') {
        return None;
    }
    let days = date(&s[..10])?;
    let [h0, h1, b':', m0, m1, b':', s0, s1] = *<&[u8; 8]>::try_from(&s[11..19]).ok()? else {
        return None;
    };
    let (hour, minute, second) = (number(&[h0, h1])?, number(&[m0, m1])?, number(&[s0, s1])?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let micros = match &s[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=6).contains(&fraction.len()) => {
            number(fraction)? * 10u64.pow(6 - fraction.len() as u32)
        }
        _ => return None,
    };
    let seconds = days * 86_400 + (hour * 3_600 + minute * 60 + second) as i64;
    Some(seconds * 1_000_000 + micros as i64)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::compute::{CastOptions, cast_with_options};

    /// What Arrow's strict cast makes of the same text.
    fn cast(text: &StringArray, ty: &DataType) -> ArrayRef {
        let strict = CastOptions {
            safe: false,
            ..Default::default()
        };
        cast_with_options(text, ty, &strict).expect("the cast reads it")
    }

    #[test]
    fn values_read_here_are_those_the_cast_reads() {
        let cases: Vec<(DataType, Vec<Option<&str>>)> = vec![
            (
                DataType::Int64,
                vec![
                    Some("0"),
                    Some("-17"),
                    None,
                    Some("999999999999999999"),
                    Some("-5"),
                ],
            ),
            (
                DataType::Int32,
                vec![Some("2147483647"), Some("-2147483648"), None],
            ),
            (DataType::Int16, vec![Some("32767"), Some("-32768")]),
            (
                DataType::Date32,
                vec![
                    Some("1970-01-01"),
                    Some("2024-02-29"),
                    Some("1900-03-01"),
                    Some("0001-01-01"),
                    None,
                ],
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                vec![
                    Some("2024-01-02 00:00:00"),
                    Some("1969-12-31 23:59:59.5"),
                    Some("2000-02-29T12:34:56.123456"),
                    Some("1583-10-15 01:02:03.000001"),
                    Some("9999-12-31 23:59:59.999999"),
                    None,
                ],
            ),
        ];
        for (ty, values) in cases {
            let text = StringArray::from(values.clone());
            let read = read(&text, &ty).unwrap_or_else(|| panic!("{ty} {values:?} not read"));
            assert_eq!(read.as_ref(), cast(&text, &ty).as_ref(), "{ty} {values:?}");
        }
    }

    #[test]
    fn a_column_of_literals_is_what_the_cast_makes_of_their_text() {
        // A literal's text and whether it was an unquoted number; None for NULL.
        type Literal<'a> = Option<(&'a str, bool)>;
        let cases: Vec<(DataType, Vec<Literal>)> = vec![
            (
                DataType::Int64,
                vec![Some(("-3", true)), None, Some(("42", false))],
            ),
            (DataType::Int16, vec![Some(("7", true)), None]),
            (DataType::Date32, vec![Some(("2024-02-29", false)), None]),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                vec![None, Some(("2024-01-02 03:04:05.25", false))],
            ),
            (
                DataType::Utf8,
                vec![Some(("it's", false)), None, Some(("", false))],
            ),
        ];
        for (ty, values) in cases {
            let mut column = Column::new(&ty, values.len()).expect("a type built here");
            for value in &values {
                match value {
                    Some((text, number)) => assert!(column.push(text, *number), "{ty} {text}"),
                    None => column.push_null(),
                }
            }
            let text = StringArray::from_iter(values.iter().map(|v| v.map(|(t, _)| t)));
            assert_eq!(column.finish().as_ref(), cast(&text, &ty).as_ref(), "{ty}");
        }
        let declined: Vec<(DataType, &str, bool)> = vec![
            (DataType::Int32, "3000000000", true),
            (DataType::Int64, "1.5", true),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "2024-01-02",
                false,
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "20240102",
                true,
            ),
            (DataType::Utf8, "12", true),
        ];
        for (ty, text, number) in declined {
            let mut column = Column::new(&ty, 1).expect("a type built here");
            assert!(!column.push(text, number), "{ty} {text} was taken");
        }
        assert!(Column::new(&DataType::Float64, 1).is_none());
    }

    #[test]
    fn other_forms_are_left_to_the_cast() {
        let declined: Vec<(DataType, &str)> = vec![
            (DataType::Int64, " 1"),
            (DataType::Int64, "+1"),
            (DataType::Int64, "1.0"),
            (DataType::Int64, "1234567890123456789"),
            (DataType::Int64, "-"),
            (DataType::Int32, "2147483648"),
            (DataType::Int16, "40000"),
            (DataType::Date32, "2023-02-29"),
            (DataType::Date32, "2024-13-01"),
            (DataType::Date32, "24-01-01"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "2024-01-02",
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "2024-01-02 24:00:00",
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "2024-01-02 00:00:00+02",
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "2024-01-02 00:00:00.1234567",
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "2024-01-02 00:00:00",
            ),
            (DataType::Float64, "1.5"),
        ];
        for (ty, value) in declined {
            let text = StringArray::from(vec![Some(value)]);
            assert!(read(&text, &ty).is_none(), "{ty} {value:?} was read");
        }
    }
}

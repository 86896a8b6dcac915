//! The values that cross the [`super::Db`] seam, and reading them back into the model
//! with every bad value reported as [`StoreError::Corrupt`]. Pure.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::workorder::store::StoreError;

/// A parameter or a column value: the only types the schema uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
}

pub(crate) type Row = Vec<Value>;

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::Text(time_text(v))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Fixed-width RFC 3339 UTC with nanoseconds: text order is time order.
pub(crate) fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Reads one row column by column, naming the row (its order id) and the column in
/// every error.
pub(crate) struct RowReader<'a> {
    pub(crate) id: String,
    values: std::slice::Iter<'a, Value>,
}

impl<'a> RowReader<'a> {
    pub(crate) fn new(id: impl Into<String>, row: &'a Row) -> Self {
        Self {
            id: id.into(),
            values: row.iter(),
        }
    }

    fn corrupt(&self, column: &'static str, value: &Value) -> StoreError {
        StoreError::Corrupt {
            id: self.id.clone(),
            column,
            value: match value {
                Value::Null => "NULL".into(),
                Value::Int(i) => i.to_string(),
                Value::Text(t) => t.clone(),
            },
        }
    }

    fn next(&mut self, column: &'static str) -> Result<&'a Value, StoreError> {
        self.values.next().ok_or_else(|| StoreError::Corrupt {
            id: self.id.clone(),
            column,
            value: "(missing column)".into(),
        })
    }

    pub(crate) fn opt_text(&mut self, column: &'static str) -> Result<Option<String>, StoreError> {
        match self.next(column)? {
            Value::Null => Ok(None),
            Value::Text(t) => Ok(Some(t.clone())),
            other => Err(self.corrupt(column, other)),
        }
    }

    pub(crate) fn text(&mut self, column: &'static str) -> Result<String, StoreError> {
        match self.next(column)? {
            Value::Text(t) => Ok(t.clone()),
            other => Err(self.corrupt(column, other)),
        }
    }

    pub(crate) fn int(&mut self, column: &'static str) -> Result<i64, StoreError> {
        match self.next(column)? {
            Value::Int(i) => Ok(*i),
            other => Err(self.corrupt(column, other)),
        }
    }

    pub(crate) fn opt_parse<T: std::str::FromStr>(
        &mut self,
        column: &'static str,
    ) -> Result<Option<T>, StoreError> {
        match self.opt_text(column)? {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| StoreError::Corrupt {
                id: self.id.clone(),
                column,
                value: text,
            }),
        }
    }

    pub(crate) fn parse<T: std::str::FromStr>(
        &mut self,
        column: &'static str,
    ) -> Result<T, StoreError> {
        let text = self.text(column)?;
        text.parse().map_err(|_| StoreError::Corrupt {
            id: self.id.clone(),
            column,
            value: text,
        })
    }

    pub(crate) fn time(&mut self, column: &'static str) -> Result<DateTime<Utc>, StoreError> {
        let text = self.text(column)?;
        parse_time(&text).ok_or_else(|| StoreError::Corrupt {
            id: self.id.clone(),
            column,
            value: text,
        })
    }

    pub(crate) fn opt_time(
        &mut self,
        column: &'static str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.opt_text(column)? {
            None => Ok(None),
            Some(text) => parse_time(&text)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt {
                    id: self.id.clone(),
                    column,
                    value: text,
                }),
        }
    }
}

pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The id in the first column of a row, as text, for error messages.
pub(crate) fn row_id(row: &Row) -> String {
    match row.first() {
        Some(Value::Text(t)) => t.clone(),
        Some(Value::Int(i)) => i.to_string(),
        _ => "(unknown)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn stored_times_sort_as_text_in_time_order() {
        let base = Utc
            .with_ymd_and_hms(2026, 11, 28, 15, 30, 12)
            .single()
            .expect("valid time");
        let times = [
            base,
            base + chrono::Duration::nanoseconds(1),
            base + chrono::Duration::milliseconds(999),
            base + chrono::Duration::seconds(1),
        ];
        for pair in times.windows(2) {
            assert!(time_text(pair[0]) < time_text(pair[1]));
            assert_eq!(time_text(pair[0]).len(), time_text(pair[1]).len());
        }
        assert_eq!(&time_text(base)[..16], "2026-11-28T15:30");
        assert_eq!(parse_time(&time_text(times[1])), Some(times[1]));
    }

    #[test]
    fn a_value_of_the_wrong_type_is_reported_with_row_and_column() {
        let row = vec![Value::Text("x".into()), Value::Int(3)];
        let mut reader = RowReader::new("order-1", &row);
        assert_eq!(reader.text("id").ok(), Some("x".into()));
        match reader.text("caller") {
            Err(StoreError::Corrupt { id, column, value }) => {
                assert_eq!(
                    (id.as_str(), column, value.as_str()),
                    ("order-1", "caller", "3")
                );
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}

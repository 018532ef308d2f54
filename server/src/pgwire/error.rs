//! SQLSTATE codes: the one place where Eddy's errors become Postgres errors.

use eddy_sql::SqlError;
use pgwire::error::{ErrorInfo, PgWireError};

/// The SQLSTATE of an error. Exhaustive: a new variant must be classified here.
pub fn sqlstate(e: &SqlError) -> &'static str {
    match e {
        SqlError::Syntax(_) => "42601",
        SqlError::UnknownRelation(_) => "42P01",
        SqlError::DuplicateRelation(_) => "42P07",
        SqlError::UnknownColumn(_) => "42703",
        SqlError::DuplicateColumn(_) => "42701",
        SqlError::DuplicateObject(_) => "42710",
        SqlError::WrongObjectType(_) => "42809",
        SqlError::InvalidDefinition(_) => "42P17",
        SqlError::InvalidTableDefinition(_) => "42P16",
        SqlError::DatatypeMismatch(_) => "42804",
        SqlError::InvalidText(_) => "22P02",
        SqlError::Unsupported(_) => "0A000",
        SqlError::DependentObjects { .. } => "2BP01",
        SqlError::UniqueViolation(_) => "23505",
        SqlError::NotNullViolation(_) => "23502",
        SqlError::DivisionByZero => "22012",
        SqlError::OutOfRange(_) => "22003",
        SqlError::InvalidParameter(_) => "22023",
        SqlError::ConnectionFailure(_) => "08001",
        SqlError::UndefinedObject(_) => "42704",
        SqlError::UnknownPreparedStatement(_) => "26000",
        SqlError::CantChangeRuntimeParam(_) => "55P02",
        SqlError::InFailedTransaction => "25P02",
        SqlError::ReadOnlyTransaction(_) => "25006",
        SqlError::Canceled | SqlError::StatementTimeout => "57014",
        SqlError::ShuttingDown => "57P01",
        SqlError::Internal(_) => "XX000",
    }
}

/// Where in `sql` a syntax error is, as Postgres reports it: the 1-based character offset.
/// sqlparser names the line and column (`... at Line: 2, Column: 5`).
pub fn syntax_position(sql: &str, message: &str) -> Option<usize> {
    let rest = &message[message.rfind("Line: ")? + "Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let line: usize = line.trim().parse().ok()?;
    let column: usize = rest
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    let before: usize = sql
        .split_inclusive('\n')
        .take(line.checked_sub(1)?)
        .map(|l| l.chars().count())
        .sum();
    Some(before + column)
}

/// The ErrorResponse of an error in the statement text `sql`: a syntax error carries its
/// position.
pub fn to_pg_in(e: &SqlError, sql: &str) -> PgWireError {
    let mut error = to_pg(e);
    if let (SqlError::Syntax(message), PgWireError::UserError(info)) = (e, &mut error) {
        info.position = syntax_position(sql, message).map(|p| p.to_string());
    }
    error
}

/// The ErrorResponse of an error.
pub fn to_pg(e: &SqlError) -> PgWireError {
    let mut info = ErrorInfo::new("ERROR".to_string(), sqlstate(e).to_string(), e.to_string());
    if let SqlError::DependentObjects { dependents, .. } = e {
        info.detail = Some(
            dependents
                .iter()
                .map(|d| format!("{d} depends on it"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        info.hint = Some("Use DROP ... CASCADE to drop the dependent objects too.".into());
    }
    PgWireError::UserError(Box::new(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_point_into_the_text() {
        let sql = "SELECT 1;\nSELEC x";
        assert_eq!(
            syntax_position(
                sql,
                "Expected: an SQL statement, found: SELEC at Line: 2, Column: 1"
            ),
            Some(11)
        );
        assert_eq!(syntax_position("SELECT FROM", "no position here"), None);
    }
}

//! Names as Postgres resolves them: unquoted identifiers fold to lower case, quoted ones are
//! kept; the default schema `public` may be written or left out.

use sqlparser::ast::{Ident, ObjectName};

use crate::{SqlError, SqlResult};

/// The schema every user relation lives in.
pub const DEFAULT_SCHEMA: &str = "public";

pub fn normalize_ident(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// The relation name an object name refers to.
pub fn normalize_object_name(name: &ObjectName) -> SqlResult<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(normalize_ident)
                .ok_or_else(|| SqlError::Syntax(format!("invalid name {name}")))
        })
        .collect::<SqlResult<_>>()?;
    match parts.as_slice() {
        [n] => Ok(n.clone()),
        [schema, n] if schema == DEFAULT_SCHEMA => Ok(n.clone()),
        [db, schema, n] if (db == "eddy" || db == "postgres") && schema == DEFAULT_SCHEMA => {
            Ok(n.clone())
        }
        _ => Err(SqlError::UnknownRelation(name.to_string())),
    }
}

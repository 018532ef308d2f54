//! Names as Postgres resolves them: unquoted identifiers fold to lower case, quoted ones are
//! kept; the default schema `public` may be written or left out.

use sqlparser::ast::{Ident, ObjectName};

use crate::{SqlError, SqlResult};

/// The schema every user relation lives in.
pub const DEFAULT_SCHEMA: &str = "public";

/// An identifier as it must be written to name `name`, the way Postgres' `quote_ident` writes
/// it: as is when it is lower case letters, digits and underscores (not starting with a digit)
/// and no reserved word, else in double quotes.
pub fn quote_identifier(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !is_reserved(name) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Whether a word (of any case) is reserved: written bare, it would not be read as a name.
pub fn is_reserved(word: &str) -> bool {
    use sqlparser::keywords::{
        ALL_KEYWORDS, ALL_KEYWORDS_INDEX, RESERVED_FOR_COLUMN_ALIAS, RESERVED_FOR_TABLE_ALIAS,
    };
    ALL_KEYWORDS
        .binary_search(&word.to_ascii_uppercase().as_str())
        .is_ok_and(|i| {
            let k = ALL_KEYWORDS_INDEX[i];
            RESERVED_FOR_TABLE_ALIAS.contains(&k) || RESERVED_FOR_COLUMN_ALIAS.contains(&k)
        })
}

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

//! Result column names as Postgres gives them: a bare column keeps its name, a function call
//! is named after the function, anything else is `?column?`. DataFusion names computed
//! columns after their expression (`count(*)`, `Int64(1) + Int64(1)`), which clients would
//! show verbatim.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use sqlparser::ast::{Expr, Query, SelectItem, SetExpr, Statement};

use eddy_sql::names::normalize_ident;

/// The Postgres name of a select item, if it is determined by the item alone.
fn item_name(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::ExprWithAlias { alias, .. } => Some(normalize_ident(alias)),
        SelectItem::UnnamedExpr(e) => Some(expr_name(e)),
        _ => None,
    }
}

fn expr_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => normalize_ident(i),
        Expr::CompoundIdentifier(parts) => parts.last().map(normalize_ident).unwrap_or_default(),
        Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(normalize_ident)
            .unwrap_or_else(|| "?column?".into()),
        Expr::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            Expr::Value(_) => data_type.to_string().to_lowercase(),
            inner => expr_name(inner),
        },
        Expr::Nested(inner) => expr_name(inner),
        Expr::Case { .. } => "case".into(),
        _ => "?column?".into(),
    }
}

/// Renames a query's result columns the Postgres way; leaves columns after a `*` alone.
pub fn postgres_names(query: &Query, schema: &SchemaRef) -> SchemaRef {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return schema.clone();
    };
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, item) in select.projection.iter().enumerate() {
        let Some(name) = item_name(item) else { break };
        if let Some(f) = fields.get_mut(i) {
            *f = f.clone().with_name(name);
        }
    }
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// [`postgres_names`] for a statement that may be a query.
pub fn statement_names(stmt: &Statement, schema: &SchemaRef) -> SchemaRef {
    match stmt {
        Statement::Query(q) => postgres_names(q, schema),
        _ => schema.clone(),
    }
}

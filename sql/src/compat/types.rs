//! Postgres type names in casts that DataFusion does not know.
//!
//! `datafusion-pg-catalog`'s planner takes the oid aliases (`regclass`, `oid`, ...) and
//! `pg_catalog.`-qualified builtins; catalog queries also cast to the bare names of the
//! catalogs' own string types: `'eddy'::name` (psqlODBC's key listings), `'r'::"char"`,
//! `bpchar`. Those are text, as Eddy's catalogs hold them.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::planner::TypePlanner;
use datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;
use sqlparser::ast::{DataType as SqlDataType, ObjectNamePart};

/// The catalogs' string type names, read as text.
const TEXT_NAMES: &[&str] = &["name", "char", "bpchar"];

/// The library's type planner, and the catalogs' string types as text.
#[derive(Debug, Default)]
pub struct PostgresTypes {
    library: PgOidTypePlanner,
}

impl TypePlanner for PostgresTypes {
    fn plan_type_field(&self, sql_type: &SqlDataType) -> Result<Option<FieldRef>> {
        if let SqlDataType::Custom(name, args) = sql_type
            && args.is_empty()
            && let [ObjectNamePart::Identifier(ident)] = name.0.as_slice()
            && TEXT_NAMES.contains(&ident.value.to_ascii_lowercase().as_str())
        {
            return Ok(Some(Arc::new(Field::new("", DataType::Utf8, true))));
        }
        self.library.plan_type_field(sql_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::{Expr, ObjectName};

    fn cast_type(sql: &str) -> SqlDataType {
        let dialect = crate::dialect::EddyDialect;
        match sqlparser::parser::Parser::new(&dialect)
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap()
        {
            Expr::Cast { data_type, .. } => data_type,
            other => panic!("not a cast: {other}"),
        }
    }

    #[test]
    fn catalog_string_types_are_text_and_the_rest_goes_to_the_library() {
        let planner = PostgresTypes::default();
        for sql in ["'eddy'::name", "'r'::\"char\"", "'x'::bpchar", "'x'::NAME"] {
            let field = planner.plan_type_field(&cast_type(sql)).unwrap();
            assert_eq!(
                field.map(|f| f.data_type().clone()),
                Some(DataType::Utf8),
                "{sql}"
            );
        }
        let regclass = planner
            .plan_type_field(&cast_type("'t'::regclass"))
            .unwrap();
        assert_eq!(
            regclass.map(|f| f.data_type().clone()),
            Some(DataType::Int32)
        );
        let unknown = SqlDataType::Custom(ObjectName::from(vec!["nosuch".into()]), vec![]);
        assert!(planner.plan_type_field(&unknown).unwrap().is_none());
    }
}

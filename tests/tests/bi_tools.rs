//! BI tools' introspection, replayed: the catalog queries Metabase, Grafana and DBeaver send
//! to list schemas, tables, views and columns (`tests/bi/*.sql`, each naming where in the
//! tool it comes from), checked for what the tool would show of Eddy's objects.

use anyhow::{Context, Result, ensure};
use eddy_tests::{CATALOG_OBJECTS, TestServer, render};
use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};

/// A query of `tests/bi/`.
fn query(name: &str) -> Result<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bi")
        .join(format!("{name}.sql"));
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// Runs a tool's query as the tool does (extended protocol, its parameters typed) and
/// returns the named columns of each row, joined by `|`.
async fn rows(
    client: &Client,
    name: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
    columns: &[&str],
) -> Result<Vec<String>> {
    let sql = query(name)?;
    let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
    let stmt = client
        .prepare_typed(&sql, &types)
        .await
        .with_context(|| format!("preparing {name}"))?;
    let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
    let result = client
        .query(&stmt, &values)
        .await
        .with_context(|| format!("running {name}"))?;
    let mut out = Vec::with_capacity(result.len());
    for row in &result {
        let mut fields = Vec::with_capacity(columns.len());
        for c in columns {
            let i = row
                .columns()
                .iter()
                .position(|col| col.name() == *c)
                .with_context(|| format!("{name} has no column {c}"))?;
            fields.push(render(text_of(row, i)?.as_deref()));
        }
        out.push(fields.join("|"));
    }
    Ok(out)
}

/// A value of any type the tools' queries return, as text.
fn text_of(row: &tokio_postgres::Row, i: usize) -> Result<Option<String>> {
    let t = row.columns()[i].type_().clone();
    Ok(match t {
        Type::BOOL => row
            .get::<_, Option<bool>>(i)
            .map(|b| if b { "t" } else { "f" }.into()),
        Type::INT2 => row.get::<_, Option<i16>>(i).map(|v| v.to_string()),
        Type::INT4 => row.get::<_, Option<i32>>(i).map(|v| v.to_string()),
        Type::INT8 => row.get::<_, Option<i64>>(i).map(|v| v.to_string()),
        Type::OID => row.get::<_, Option<u32>>(i).map(|v| v.to_string()),
        _ => row.try_get::<_, Option<String>>(i)?,
    })
}

async fn server() -> Result<(TestServer, Client)> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    client.batch_execute(CATALOG_OBJECTS).await?;
    Ok((server, client))
}

#[tokio::test]
async fn metabase_syncs_tables_views_and_fields() -> Result<()> {
    let (_server, client) = server().await?;
    let tables = rows(&client, "metabase_tables", &[], &["schema", "name", "type"]).await?;
    ensure!(
        tables
            == [
                "public|per_user|MATERIALIZED VIEW",
                "public|clicks|TABLE",
                "public|users|TABLE",
                "public|heavy|VIEW"
            ],
        "{tables:#?}"
    );
    let fields = rows(
        &client,
        "metabase_fields",
        &[],
        &[
            "table-name",
            "name",
            "database-type",
            "pk?",
            "database-required",
        ],
    )
    .await?;
    ensure!(
        fields
            == [
                "per_user|user_id|int8|f|f",
                "per_user|n|int8|f|f",
                "users|id|int8|t|t",
                "users|name|text|f|f",
                "users|price|numeric|f|f"
            ],
        "{fields:#?}"
    );
    let mut privileges = rows(&client, "metabase_privileges", &[], &["table", "select"]).await?;
    privileges.sort();
    ensure!(
        privileges == ["clicks|t", "heavy|t", "per_user|t", "users|t"],
        "{privileges:#?}"
    );
    let indexes = rows(
        &client,
        "metabase_indexes",
        &[],
        &["table-name", "field-name"],
    )
    .await?;
    ensure!(indexes == ["users|id"], "{indexes:#?}");
    Ok(())
}

#[tokio::test]
async fn grafana_lists_schemas_tables_and_columns() -> Result<()> {
    let (_server, client) = server().await?;
    let schemas = rows(&client, "grafana_schemas", &[], &["name"]).await?;
    ensure!(schemas == ["eddy_catalog", "public"], "{schemas:#?}");
    // Grafana reads information_schema, which (as in Postgres) leaves materialized views out.
    let tables = rows(&client, "grafana_tables", &[], &["table"]).await?;
    ensure!(tables == ["clicks", "heavy", "users"], "{tables:#?}");
    let columns = rows(&client, "grafana_columns", &[], &["column", "type"]).await?;
    ensure!(
        columns == ["id|bigint", "name|text", "price|numeric"],
        "{columns:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn dbeaver_browses_schemas_relations_columns_and_types() -> Result<()> {
    let (_server, client) = server().await?;
    let schemas = rows(&client, "dbeaver_schemas", &[], &["nspname"]).await?;
    ensure!(
        schemas == ["eddy_catalog", "information_schema", "pg_catalog", "public"],
        "{schemas:#?}"
    );
    // DBeaver binds oids as bigint.
    let public: i64 = 2200;
    let mut relations = rows(
        &client,
        "dbeaver_tables",
        &[(&public, Type::INT8)],
        &["relname", "relkind"],
    )
    .await?;
    relations.sort();
    ensure!(
        relations == ["clicks|r", "heavy|v", "per_user|m", "users|r"],
        "{relations:#?}"
    );
    let oid = client
        .query_one("SELECT 'users'::regclass::oid::bigint", &[])
        .await?
        .get::<_, i64>(0);
    let columns = rows(
        &client,
        "dbeaver_columns",
        &[(&oid, Type::INT8)],
        &["attname", "attnotnull"],
    )
    .await?;
    ensure!(columns == ["id|t", "name|f", "price|f"], "{columns:#?}");
    let types = rows(&client, "dbeaver_types", &[], &["typname"]).await?;
    for t in ["int8", "text", "numeric", "timestamptz", "jsonb"] {
        ensure!(types.iter().any(|r| r == t), "data types lack {t}");
    }
    Ok(())
}

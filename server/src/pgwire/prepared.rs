//! A connection's prepared statements by name: `DEALLOCATE [ALL | name]` and `DISCARD ALL`
//! drop them from the portal store, which keeps no list of its own, so the names of the
//! statements parsed are noted here.

use std::collections::BTreeSet;

use eddy_sql::parser::Statement;
use eddy_sql::{SqlError, SqlResult};
use parking_lot::Mutex;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore};

use crate::handle::Outcome;

/// The names of the statements a connection prepared (Parse messages), so that `DEALLOCATE
/// ALL` and `DISCARD ALL` can drop them all: the portal store keeps no list of its own.
#[derive(Default)]
struct PreparedNames(Mutex<BTreeSet<String>>);

/// How many names a connection's list holds before the names of statements already gone
/// (closed or deallocated one by one) are pruned from it.
const PREPARED_NAMES_PRUNED_AT: usize = 1024;

/// Notes the name of a statement the client prepared.
pub(super) fn remember_prepared<C>(client: &C, name: &str)
where
    C: ClientInfo + ClientPortalStore,
    C::PortalStore: PortalStore,
{
    let names = client
        .session_extensions()
        .get_or_insert_with(PreparedNames::default);
    let mut names = names.0.lock();
    if names.contains(name) {
        return;
    }
    if names.len() >= PREPARED_NAMES_PRUNED_AT {
        names.retain(|n| client.portal_store().get_statement(n).is_some());
    }
    names.insert(name.to_string());
}

/// Drops every statement the client prepared (`DEALLOCATE ALL`, `DISCARD ALL`).
fn forget_prepared<C>(client: &C)
where
    C: ClientInfo + ClientPortalStore,
    C::PortalStore: PortalStore,
{
    if let Some(names) = client.session_extensions().get::<PreparedNames>() {
        for name in std::mem::take(&mut *names.0.lock()) {
            client.portal_store().rm_statement(&name);
        }
    }
}

/// `DEALLOCATE [ALL | name]`: drops the connection's prepared statements, or one of them
/// (psqlODBC drops those it prepared this way); `None` for any other statement. `DISCARD
/// ALL` drops them too, and is then run for the settings.
pub(super) fn deallocate<C>(client: &C, stmt: &Statement) -> Option<SqlResult<Outcome>>
where
    C: ClientInfo + ClientPortalStore,
    C::PortalStore: PortalStore,
{
    let Statement::Sql(s) = stmt else {
        return None;
    };
    let name = match s.as_ref() {
        sqlparser::ast::Statement::Deallocate { name, .. } => name,
        sqlparser::ast::Statement::Discard {
            object_type: sqlparser::ast::DiscardObject::ALL,
        } => {
            forget_prepared(client);
            return None;
        }
        _ => return None,
    };
    let key = match name.quote_style {
        Some(_) => name.value.clone(),
        None if name.value.eq_ignore_ascii_case("all") => {
            forget_prepared(client);
            return Some(Ok(Outcome::done("DEALLOCATE ALL")));
        }
        None => name.value.to_lowercase(),
    };
    if client.portal_store().get_statement(&key).is_none() {
        return Some(Err(SqlError::UnknownPreparedStatement(key)));
    }
    client.portal_store().rm_statement(&key);
    Some(Ok(Outcome::done("DEALLOCATE")))
}

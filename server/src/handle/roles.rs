//! CREATE ROLE, ALTER ROLE ... PASSWORD and DROP ROLE: the users who may log in with a
//! password (see [`crate::auth`]). Other role options are accepted where they mean what Eddy
//! does anyway (LOGIN, SUPERUSER: every user may do everything) and refused otherwise.

use eddy_sql::names::normalize_ident;
use eddy_sql::{SqlError, SqlResult};
use sqlparser::ast::{
    AlterRoleOperation, CreateRole, Expr, ObjectType, Password, RoleOption, Statement, Value,
};

use super::{Outcome, Shared};

/// The password a role statement gives: `Some(None)` for `PASSWORD NULL`.
fn password(p: &Password) -> SqlResult<Option<String>> {
    match p {
        Password::NullPassword => Ok(None),
        Password::Password(Expr::Value(v)) => match &v.value {
            Value::SingleQuotedString(s) => Ok(Some(s.clone())),
            other => Err(SqlError::InvalidParameter(format!(
                "a password is a string, not {other}"
            ))),
        },
        Password::Password(other) => Err(SqlError::InvalidParameter(format!(
            "a password is a string, not {other}"
        ))),
    }
}

fn refused(what: &str) -> SqlError {
    SqlError::Unsupported(format!(
        "{what}: Eddy's roles have a name and a password, and every user may do everything"
    ))
}

pub fn execute(shared: &Shared, stmt: &Statement) -> SqlResult<Outcome> {
    let roles = &shared.roles;
    let outcome = match stmt {
        Statement::CreateRole(CreateRole {
            names,
            if_not_exists,
            login,
            password: given,
            inherit,
            bypassrls,
            superuser,
            create_db,
            create_role,
            replication,
            connection_limit,
            valid_until,
            in_role,
            in_group,
            role,
            user,
            admin,
            authorization_owner,
        }) => {
            if login == &Some(false) {
                return Err(refused("NOLOGIN"));
            }
            let unsupported = [
                (inherit.is_some(), "INHERIT"),
                (bypassrls.is_some(), "BYPASSRLS"),
                (superuser == &Some(false), "NOSUPERUSER"),
                (create_db.is_some(), "CREATEDB"),
                (create_role.is_some(), "CREATEROLE"),
                (replication.is_some(), "REPLICATION"),
                (connection_limit.is_some(), "CONNECTION LIMIT"),
                (valid_until.is_some(), "VALID UNTIL"),
                (!in_role.is_empty() || !in_group.is_empty(), "IN ROLE"),
                (
                    !role.is_empty() || !user.is_empty() || !admin.is_empty(),
                    "ROLE",
                ),
                (authorization_owner.is_some(), "AUTHORIZATION"),
            ];
            if let Some((_, what)) = unsupported.iter().find(|(given, _)| *given) {
                return Err(refused(what));
            }
            let password = given.as_ref().map(password).transpose()?.flatten();
            for name in names {
                let name = eddy_sql::names::normalize_object_name(name)?;
                if !roles.create(&name, password.as_deref(), *if_not_exists)? {
                    // Nothing changed: the roles others see stay as they are.
                    return Ok(Outcome::Notice(
                        format!("role \"{name}\" already exists, skipping"),
                        Box::new(Outcome::done("CREATE ROLE")),
                    ));
                }
            }
            Outcome::done("CREATE ROLE")
        }
        Statement::AlterRole {
            name,
            operation: AlterRoleOperation::WithOptions { options },
        } => {
            let name = normalize_ident(name);
            let mut changed = false;
            for option in options {
                match option {
                    RoleOption::Password(p) => {
                        roles.set_password(&name, password(p)?.as_deref())?;
                        changed = true;
                    }
                    RoleOption::Login(true) | RoleOption::SuperUser(true) => {}
                    other => return Err(refused(&other.to_string())),
                }
            }
            if !changed && !roles.names()?.contains(&name) {
                return Err(SqlError::UndefinedObject(format!(
                    "role \"{name}\" does not exist"
                )));
            }
            Outcome::done("ALTER ROLE")
        }
        Statement::AlterRole { operation, .. } => {
            return Err(refused(&format!("ALTER ROLE ... {operation}")));
        }
        Statement::Drop {
            object_type: ObjectType::Role,
            if_exists,
            names,
            ..
        } => {
            let mut skipped = Vec::new();
            for name in names {
                let name = eddy_sql::names::normalize_object_name(name)?;
                if !roles.remove(&name, *if_exists)? {
                    skipped.push(format!("role \"{name}\" does not exist, skipping"));
                }
            }
            skipped
                .into_iter()
                .rev()
                .fold(Outcome::done("DROP ROLE"), |done, notice| {
                    Outcome::Notice(notice, Box::new(done))
                })
        }
        _ => return Err(SqlError::Internal("not a role statement".into())),
    };
    shared.query.sessions.set_roles(roles.names()?);
    Ok(outcome)
}

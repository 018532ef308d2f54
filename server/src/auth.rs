//! Who may connect, and over what.
//!
//! - Authentication is `trust` by default (anyone, as any user: the zero-configuration mode)
//!   or `scram-sha-256`, Postgres' password method: the client proves it knows the password
//!   without sending it. Users are the configuration's `users` and the roles made by
//!   `CREATE ROLE ... PASSWORD`. A role's password is kept in the store as a random salt and
//!   the salted password SCRAM derives its keys from (never the password itself), so a role
//!   survives restarts; a configured user's is derived at start. Eddy has no privileges: a
//!   user who may connect may do everything.
//! - TLS is offered when a certificate and key are configured (`sslmode=require` works), and
//!   demanded from every client with `tls_required`.
//!
//! An unknown user is answered as a wrong password would be, after the same exchange, so a
//! client cannot learn which users exist.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use eddy_sql::{SqlError, SqlResult};
use eddy_storage::{Store, WriteBatch, keys};
use pgwire::api::auth::sasl::scram::{SCRAM_ITERATIONS, gen_salted_password};
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::tokio_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

/// How clients prove who they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum AuthMethod {
    /// Anyone may connect as any user.
    #[default]
    #[serde(rename = "trust")]
    Trust,
    /// A password, proven by SCRAM-SHA-256.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
}

impl std::str::FromStr for AuthMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "trust" => Ok(AuthMethod::Trust),
            "scram-sha-256" => Ok(AuthMethod::ScramSha256),
            other => Err(format!(
                "unknown authentication method \"{other}\" (trust or scram-sha-256)"
            )),
        }
    }
}

/// What SCRAM needs to check a password: a salt and the password salted with it.
#[derive(Clone, Serialize, Deserialize)]
struct Verifier {
    salt: Vec<u8>,
    salted_password: Vec<u8>,
}

impl Verifier {
    fn new(password: &str) -> Self {
        let salt: [u8; 16] = rand::random();
        Self {
            salted_password: gen_salted_password(password, &salt, SCRAM_ITERATIONS),
            salt: salt.to_vec(),
        }
    }
}

/// The key under which a role made by `CREATE ROLE` is kept.
fn role_key(name: &str) -> Vec<u8> {
    keys::meta(&format!("role/{name}"))
}

/// The users who may connect: those of the configuration and the stored roles.
pub struct Roles {
    store: Arc<Store>,
    configured: BTreeMap<String, Verifier>,
}

impl std::fmt::Debug for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roles")
            .field("configured", &self.configured.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Roles {
    pub fn new(store: Arc<Store>, users: &BTreeMap<String, String>) -> Self {
        let configured = users
            .iter()
            .map(|(name, password)| (name.clone(), Verifier::new(password)))
            .collect();
        Self { store, configured }
    }

    /// A stored role: None when there is none, Some(None) when it has no password.
    fn stored(&self, name: &str) -> SqlResult<Option<Option<Verifier>>> {
        let Some(value) = self.store.get(&role_key(name))? else {
            return Ok(None);
        };
        serde_json::from_slice(&value)
            .map(Some)
            .map_err(|e| SqlError::Internal(format!("stored role {name}: {e}")))
    }

    fn exists(&self, name: &str) -> SqlResult<bool> {
        Ok(self.configured.contains_key(name) || self.stored(name)?.is_some())
    }

    /// What checks a user's password, if the user exists and has one.
    fn verifier(&self, name: &str) -> SqlResult<Option<Verifier>> {
        match self.configured.get(name) {
            Some(v) => Ok(Some(v.clone())),
            None => Ok(self.stored(name)?.flatten()),
        }
    }

    /// Every user's name, in order.
    pub fn names(&self) -> SqlResult<Vec<String>> {
        let mut names: Vec<String> = self.configured.keys().cloned().collect();
        let prefix = role_key("");
        for entry in self.store.scan_prefix(&prefix) {
            let (key, _) = entry?;
            names.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// `CREATE ROLE name [PASSWORD 'p']`: a role without a password cannot log in with one.
    pub fn create(
        &self,
        name: &str,
        password: Option<&str>,
        if_not_exists: bool,
    ) -> SqlResult<bool> {
        if self.exists(name)? {
            return match if_not_exists {
                true => Ok(false),
                false => Err(SqlError::DuplicateObject(format!(
                    "role \"{name}\" already exists"
                ))),
            };
        }
        self.put(name, password)?;
        Ok(true)
    }

    /// `ALTER ROLE name PASSWORD 'p' | NULL`.
    pub fn set_password(&self, name: &str, password: Option<&str>) -> SqlResult<()> {
        if self.configured.contains_key(name) {
            return Err(SqlError::Unsupported(format!(
                "changing the password of \"{name}\", a user of the configuration (change it \
                 there)"
            )));
        }
        if self.stored(name)?.is_none() {
            return Err(SqlError::UndefinedObject(format!(
                "role \"{name}\" does not exist"
            )));
        }
        self.put(name, password)
    }

    /// `DROP ROLE [IF EXISTS] name`; answers whether it existed.
    pub fn remove(&self, name: &str, if_exists: bool) -> SqlResult<bool> {
        if self.configured.contains_key(name) {
            return Err(SqlError::Unsupported(format!(
                "dropping \"{name}\", a user of the configuration (remove it there)"
            )));
        }
        if self.store.get(&role_key(name))?.is_none() {
            return match if_exists {
                true => Ok(false),
                false => Err(SqlError::UndefinedObject(format!(
                    "role \"{name}\" does not exist"
                ))),
            };
        }
        let mut batch = WriteBatch::default();
        batch.delete(role_key(name));
        self.store.commit(batch, true)?;
        Ok(true)
    }

    fn put(&self, name: &str, password: Option<&str>) -> SqlResult<()> {
        let verifier = password.map(Verifier::new);
        let value = serde_json::to_vec(&verifier)
            .map_err(|e| SqlError::Internal(format!("encoding role {name}: {e}")))?;
        let mut batch = WriteBatch::default();
        batch.put(role_key(name), value);
        self.store.commit(batch, true)?;
        Ok(())
    }
}

#[async_trait]
impl AuthSource for Roles {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        let verifier = self
            .verifier(user)
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?
            // An unknown user (or one without a password) gets a password nobody knows: the
            // exchange then fails as with a wrong password.
            .unwrap_or_else(|| Verifier::new(&format!("{:x}", rand::random::<u128>())));
        Ok(Password::new(Some(verifier.salt), verifier.salted_password))
    }
}

/// The TLS acceptor of a certificate chain and private key in PEM files.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("cannot read certificates from {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("cannot read a private key from {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("invalid TLS certificate or key: {e}"))?;
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_persist_without_their_passwords() {
        let store = Arc::new(Store::temporary().unwrap());
        let users = BTreeMap::from([("admin".to_string(), "s3cret".to_string())]);
        let roles = Roles::new(store.clone(), &users);
        assert!(roles.create("bob", Some("pw"), false).unwrap());
        assert!(!roles.create("bob", Some("pw"), true).unwrap());
        assert!(roles.create("admin", None, false).is_err());
        assert!(roles.create("nologin", None, false).unwrap());
        assert_eq!(roles.names().unwrap(), ["admin", "bob", "nologin"]);
        let stored = store.get(&role_key("bob")).unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&stored).contains("pw\""));

        let again = Roles::new(store, &BTreeMap::new());
        let bob = again.verifier("bob").unwrap().unwrap();
        assert_eq!(
            bob.salted_password,
            gen_salted_password("pw", &bob.salt, SCRAM_ITERATIONS)
        );
        again.set_password("nologin", Some("x")).unwrap();
        assert!(again.verifier("nologin").unwrap().is_some());
        assert!(again.set_password("nobody", Some("x")).is_err());
        assert!(again.remove("bob", false).unwrap());
        assert!(!again.remove("bob", true).unwrap());
        assert!(again.verifier("bob").unwrap().is_none());
    }
}

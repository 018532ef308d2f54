//! Passwords and TLS over the wire: SCRAM-SHA-256 for the configuration's users and for
//! roles made with CREATE ROLE (kept across a restart), wrong, missing and unknown users'
//! passwords refused with 28P01; TLS with a self-signed certificate for tokio-postgres and
//! psql (`sslmode=require`), and plain connections refused when TLS is required. Trust, the
//! default, is what every other suite runs with.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use eddy_tests::{TestServer, execute, query_rows};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

fn config(server: &TestServer, host: &str, user: &str, password: Option<&str>) -> Config {
    let mut config = Config::new();
    config
        .host(host)
        .port(server.port())
        .user(user)
        .dbname("eddy")
        .connect_timeout(Duration::from_secs(10));
    if let Some(p) = password {
        config.password(p);
    }
    config
}

fn drive<S>(connection: tokio_postgres::Connection<tokio_postgres::Socket, S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _ = connection.await;
    });
}

/// A plain (no TLS) connection.
async fn connect(
    server: &TestServer,
    user: &str,
    password: Option<&str>,
) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config(server, "127.0.0.1", user, password)
        .connect(NoTls)
        .await?;
    drive(connection);
    Ok(client)
}

/// The SQLSTATE a connection attempt fails with.
async fn refused(server: &TestServer, user: &str, password: Option<&str>) -> Result<SqlState> {
    match connect(server, user, password).await {
        Ok(_) => bail!("{user} connected with {password:?}"),
        Err(e) => e
            .code()
            .cloned()
            .with_context(|| format!("{user} refused without a SQLSTATE: {e}")),
    }
}

async fn current_user(client: &Client) -> Result<String> {
    Ok(query_rows(client, "SELECT current_user").await?[0][0].clone())
}

/// Runs psql with `conninfo` and the password in PGPASSWORD; returns its output or error.
fn psql(conninfo: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([conninfo, "-X", "-A", "-t", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .map_err(|e| format!("running psql: {e}"))?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_are_checked_by_scram() -> Result<()> {
    let home = tempfile::tempdir()?;
    let flags = ["--auth", "scram-sha-256", "--users", "admin=s3cret"];
    let mut server = TestServer::start_with(home.path(), &flags).await?;
    let admin = connect(&server, "admin", Some("s3cret")).await?;
    assert_eq!(current_user(&admin).await?, "admin");
    assert_eq!(
        refused(&server, "admin", Some("wrong")).await?,
        SqlState::INVALID_PASSWORD
    );
    assert_eq!(
        refused(&server, "nobody", Some("s3cret")).await?,
        SqlState::INVALID_PASSWORD
    );
    // Without a password the client cannot answer the server's challenge.
    ensure!(connect(&server, "admin", None).await.is_err());

    // Roles made over SQL log in with their password, which ALTER ROLE changes.
    execute(&admin, "CREATE ROLE ann LOGIN PASSWORD 'first'").await?;
    execute(&admin, "CREATE ROLE silent").await?;
    let ann = connect(&server, "ann", Some("first")).await?;
    assert_eq!(current_user(&ann).await?, "ann");
    let roles = query_rows(&ann, "SELECT rolname FROM pg_roles ORDER BY rolname").await?;
    let roles: Vec<&str> = roles.iter().map(|r| r[0].as_str()).collect();
    for name in ["admin", "ann", "silent"] {
        ensure!(roles.contains(&name), "{name} not in pg_roles: {roles:?}");
    }
    let err = admin
        .simple_query("CREATE ROLE ann PASSWORD 'x'")
        .await
        .err()
        .context("a second ann")?;
    assert_eq!(err.code(), Some(&SqlState::DUPLICATE_OBJECT));
    execute(&admin, "ALTER ROLE ann WITH PASSWORD 'second'").await?;
    assert_eq!(
        refused(&server, "ann", Some("first")).await?,
        SqlState::INVALID_PASSWORD
    );
    // A role without a password cannot log in with any.
    assert_eq!(
        refused(&server, "silent", Some("")).await?,
        SqlState::INVALID_PASSWORD
    );
    let conninfo = format!(
        "host=127.0.0.1 port={} user=admin dbname=eddy",
        server.port()
    );
    assert_eq!(
        psql(&conninfo, "s3cret", "SELECT 40 + 2").as_deref(),
        Ok("42")
    );
    let err = psql(&conninfo, "wrong", "SELECT 1").unwrap_err();
    ensure!(err.contains("password authentication failed"), "{err}");

    // Roles are kept in the store; the configuration's users come from the flags again.
    drop((admin, ann));
    server.kill()?;
    server.restart().await?;
    let ann = connect(&server, "ann", Some("second")).await?;
    assert_eq!(current_user(&ann).await?, "ann");
    execute(&ann, "DROP ROLE ann").await?;
    assert_eq!(
        refused(&server, "ann", Some("second")).await?,
        SqlState::INVALID_PASSWORD
    );
    let err = ann
        .simple_query("DROP ROLE admin")
        .await
        .err()
        .context("dropping a configured user")?;
    assert_eq!(err.code(), Some(&SqlState::FEATURE_NOT_SUPPORTED));
    let err = ann
        .simple_query("DROP ROLE ann")
        .await
        .err()
        .context("dropping ann twice")?;
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_OBJECT));
    execute(&ann, "DROP ROLE IF EXISTS ann").await?;
    Ok(())
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM files; returns its
/// DER form for clients to trust.
fn certificate(dir: &Path) -> Result<rustls::pki_types::CertificateDer<'static>> {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])?;
    std::fs::write(dir.join("server.crt"), cert.cert.pem())?;
    std::fs::write(dir.join("server.key"), cert.signing_key.serialize_pem())?;
    Ok(cert.cert.der().clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_is_offered_and_can_be_required() -> Result<()> {
    let home = tempfile::tempdir()?;
    let der = certificate(home.path())?;
    let cert = home.path().join("server.crt");
    let key = home.path().join("server.key");
    let flags = [
        "--tls-cert-file",
        cert.to_str().context("path")?,
        "--tls-key-file",
        key.to_str().context("path")?,
        "--tls-required",
        "true",
        "--auth",
        "scram-sha-256",
        "--users",
        "admin=s3cret",
    ];
    let server = TestServer::start_with(home.path(), &flags).await?;

    // tokio-postgres over TLS, trusting the certificate.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config);
    let mut secure = config(&server, "127.0.0.1", "admin", Some("s3cret"));
    secure.ssl_mode(tokio_postgres::config::SslMode::Require);
    let (client, connection) = secure.connect(tls).await?;
    drive(connection);
    assert_eq!(current_user(&client).await?, "admin");
    assert_eq!(
        query_rows(&client, "SELECT 1 + 1").await?,
        vec![vec!["2".to_string()]]
    );

    // Without TLS the server says no before any password is asked.
    assert_eq!(
        refused(&server, "admin", Some("s3cret")).await?,
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    );

    // psql: sslmode=require encrypts without checking the certificate.
    let conninfo = |mode: &str| {
        format!(
            "host=127.0.0.1 port={} user=admin dbname=eddy sslmode={mode}",
            server.port()
        )
    };
    assert_eq!(
        psql(&conninfo("require"), "s3cret", "SELECT 'over tls'").as_deref(),
        Ok("over tls")
    );
    ensure!(psql(&conninfo("disable"), "s3cret", "SELECT 1").is_err());
    Ok(())
}

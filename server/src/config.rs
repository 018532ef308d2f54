//! Configuration: built-in defaults, then `config.toml` (given with `--config`), then
//! `EDDY_*` environment variables, then command-line flags. Every key of the file has a
//! variable and a flag of the same name (`late_rows_kept`: `EDDY_LATE_ROWS_KEPT`,
//! `--late-rows-kept`), and `eddy --help` lists them. Unknown keys in the file are an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::auth::AuthMethod;

/// Eddy: a streaming SQL database that speaks the Postgres protocol.
///
/// Each setting is read from, in increasing precedence: its built-in default, the
/// configuration file, its EDDY_* environment variable, its flag.
#[derive(Parser, Debug, Default)]
#[command(name = "eddy", version, about, long_about = None)]
pub struct Args {
    /// Configuration file (TOML); its keys are the flags' names with underscores.
    #[arg(long, env = "EDDY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to accept Postgres connections on [default: 127.0.0.1:5544].
    #[arg(long, env = "EDDY_LISTEN")]
    pub listen: Option<String>,
    /// Address of the HTTP endpoint (/metrics for Prometheus, /healthz); "off" disables it
    /// [default: 127.0.0.1:5545].
    #[arg(long, env = "EDDY_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Directory of the embedded store, created if missing [default: ./eddy-data].
    #[arg(long, env = "EDDY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Flush every epoch to disk before acknowledging its writes [default: true].
    #[arg(long, env = "EDDY_SYNC_COMMIT")]
    pub sync_commit: Option<bool>,
    /// How many of its most recent late rows each stream keeps in eddy_catalog.late_rows
    /// [default: 1000].
    #[arg(long, env = "EDDY_LATE_ROWS_KEPT")]
    pub late_rows_kept: Option<u64>,
    /// How often materialized views that name no trigger take their sources' changes:
    /// "asap" (in every epoch, as soon as input waits) or an interval such as "5 seconds"
    /// [default: asap].
    #[arg(long, env = "EDDY_TRIGGER")]
    pub trigger: Option<String>,
    /// On SIGTERM or Ctrl-C, how long to wait for running statements before closing their
    /// connections, in seconds [default: 10].
    #[arg(long, env = "EDDY_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// How clients authenticate: "trust" (anyone, as any user) or "scram-sha-256" (a
    /// password, Postgres' method) [default: trust].
    #[arg(long, env = "EDDY_AUTH")]
    pub auth: Option<AuthMethod>,
    /// Users who may log in with a password, as name=password pairs separated by commas (the
    /// file's `[users]` table takes any characters); more are made with CREATE ROLE ...
    /// PASSWORD [default: none].
    #[arg(long, env = "EDDY_USERS", value_parser = parse_users)]
    pub users: Option<BTreeMap<String, String>>,
    /// PEM file of the server's TLS certificate (chain); with tls_key_file, clients may use
    /// TLS (sslmode=require) [default: none].
    #[arg(long, env = "EDDY_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file of the private key of tls_cert_file [default: none].
    #[arg(long, env = "EDDY_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Refuse clients that do not use TLS [default: false].
    #[arg(long, env = "EDDY_TLS_REQUIRED")]
    pub tls_required: Option<bool>,
}

/// `name=password,name=password`.
fn parse_users(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, password)) if !name.trim().is_empty() => {
                Ok((name.trim().to_string(), password.to_string()))
            }
            _ => Err(format!("\"{pair}\" is not name=password")),
        })
        .collect()
}

/// The settings the server runs with.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: String,
    /// None: no HTTP endpoint.
    #[serde(deserialize_with = "address_or_off")]
    pub http_listen: Option<String>,
    pub data_dir: PathBuf,
    pub sync_commit: bool,
    /// How many of its most recent late rows each stream keeps in `eddy_catalog.late_rows`.
    pub late_rows_kept: u64,
    /// The trigger of views that name none: "asap" or an interval.
    pub trigger: String,
    pub shutdown_grace_secs: u64,
    pub auth: AuthMethod,
    /// Users of the configuration and their passwords.
    pub users: BTreeMap<String, String>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_required: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5544".into(),
            http_listen: Some("127.0.0.1:5545".into()),
            data_dir: "./eddy-data".into(),
            sync_commit: true,
            late_rows_kept: 1000,
            trigger: "asap".into(),
            shutdown_grace_secs: 10,
            auth: AuthMethod::Trust,
            users: BTreeMap::new(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_required: false,
        }
    }
}

/// "off" (or empty) is no address.
fn off(address: String) -> Option<String> {
    match address.trim() {
        "" | "off" => None,
        _ => Some(address),
    }
}

fn address_or_off<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(off(String::deserialize(d)?))
}

impl Config {
    /// Reads the file (if any), then applies environment variables and flags (clap has
    /// already merged those two).
    pub fn load(args: Args) -> anyhow::Result<Config> {
        let mut config = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        let Args {
            config: _,
            listen,
            http_listen,
            data_dir,
            sync_commit,
            late_rows_kept,
            trigger,
            shutdown_grace_secs,
            auth,
            users,
            tls_cert_file,
            tls_key_file,
            tls_required,
        } = args;
        if let Some(v) = listen {
            config.listen = v;
        }
        if let Some(v) = http_listen {
            config.http_listen = off(v);
        }
        if let Some(v) = data_dir {
            config.data_dir = v;
        }
        if let Some(v) = sync_commit {
            config.sync_commit = v;
        }
        if let Some(v) = late_rows_kept {
            config.late_rows_kept = v;
        }
        if let Some(v) = trigger {
            config.trigger = v;
        }
        if let Some(v) = shutdown_grace_secs {
            config.shutdown_grace_secs = v;
        }
        if let Some(v) = auth {
            config.auth = v;
        }
        if let Some(v) = users {
            config.users = v;
        }
        if let Some(v) = tls_cert_file {
            config.tls_cert_file = Some(v);
        }
        if let Some(v) = tls_key_file {
            config.tls_key_file = Some(v);
        }
        if let Some(v) = tls_required {
            config.tls_required = v;
        }
        config.check()?;
        Ok(config)
    }

    /// Settings that cannot work together.
    fn check(&self) -> anyhow::Result<()> {
        self.trigger_interval()?;
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) | (None, Some(_)) => {
                anyhow::bail!("tls_cert_file and tls_key_file go together")
            }
            (None, None) if self.tls_required => {
                anyhow::bail!("tls_required needs tls_cert_file and tls_key_file")
            }
            _ => Ok(()),
        }
    }

    /// The certificate and key files, when TLS is configured.
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        Some((
            self.tls_cert_file.as_deref()?,
            self.tls_key_file.as_deref()?,
        ))
    }

    fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid {}: {e}", path.display()))
    }

    /// The trigger interval of views that name none (zero: as soon as input waits).
    pub fn trigger_interval(&self) -> anyhow::Result<Duration> {
        eddy_sql::triggers::parse(&self.trigger).map_err(|e| anyhow::anyhow!("trigger: {e}"))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("eddy").chain(args.iter().copied()))
            .expect("valid arguments")
    }

    #[test]
    fn the_shipped_file_holds_the_defaults() {
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml");
        let config = Config::from_file(Path::new(shipped)).expect("config.toml parses");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn every_key_of_the_file_has_a_flag() {
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml");
        let text = std::fs::read_to_string(shipped).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let help = <Args as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        let documented = ["tls_cert_file", "tls_key_file"];
        for key in table.keys().map(String::as_str).chain(documented) {
            let documented =
                text.contains(&format!("{key} =")) || text.contains(&format!("[{key}]"));
            assert!(documented, "{key} undocumented");
            let flag = format!("--{}", key.replace('_', "-"));
            let var = format!("EDDY_{}", key.to_uppercase());
            assert!(help.contains(&flag), "{flag} missing from --help");
            assert!(help.contains(&var), "{var} missing from --help");
        }
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("eddy.toml");
        std::fs::write(&file, "late_rows_kept = 5\nhttp_listen = \"off\"\n").unwrap();
        let path = file.to_str().unwrap();
        let config = Config::load(parse(&["--config", path])).unwrap();
        assert_eq!((config.late_rows_kept, config.http_listen), (5, None));
        let config = Config::load(parse(&[
            "--config",
            path,
            "--late-rows-kept",
            "7",
            "--http-listen",
            "127.0.0.1:0",
        ]))
        .unwrap();
        assert_eq!(config.late_rows_kept, 7);
        assert_eq!(config.http_listen.as_deref(), Some("127.0.0.1:0"));
    }

    #[test]
    fn the_trigger_is_asap_or_an_interval() {
        let config = Config::load(parse(&[])).unwrap();
        assert_eq!(config.trigger_interval().unwrap(), Duration::ZERO);
        let config = Config::load(parse(&["--trigger", "250 ms"])).unwrap();
        assert_eq!(
            config.trigger_interval().unwrap(),
            Duration::from_millis(250)
        );
        let refused = Config::load(parse(&["--trigger", "sometimes"])).unwrap_err();
        assert!(refused.to_string().contains("trigger"), "{refused}");
    }

    #[test]
    fn security_settings_come_from_the_file_variables_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("eddy.toml");
        std::fs::write(
            &file,
            "auth = \"scram-sha-256\"\n[users]\nann = \"a,b=c\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let config = Config::load(parse(&["--config", path])).unwrap();
        assert_eq!(config.auth, AuthMethod::ScramSha256);
        assert_eq!(config.users["ann"], "a,b=c");
        let config = Config::load(parse(&["--config", path, "--users", "bob=x=y, cy=z"])).unwrap();
        assert_eq!(config.users.len(), 2);
        assert_eq!((&*config.users["bob"], &*config.users["cy"]), ("x=y", "z"));
        assert!(Args::try_parse_from(["eddy", "--users", "nopassword"]).is_err());
        assert!(Args::try_parse_from(["eddy", "--auth", "md5"]).is_err());
        let err = Config::load(parse(&["--tls-required", "true"])).unwrap_err();
        assert!(err.to_string().contains("tls_cert_file"), "{err}");
        assert!(Config::load(parse(&["--tls-cert-file", "c.pem"])).is_err());
    }

    #[test]
    fn unknown_keys_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("eddy.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\nlisten_port = 5\n").unwrap();
        let err = Config::load(parse(&["--config", file.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
    }
}

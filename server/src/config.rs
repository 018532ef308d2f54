//! Configuration: `config.toml`, overridden by `EDDY_*` environment variables, overridden by
//! command-line flags. Unknown keys in the file are an error.

use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

/// Eddy: a streaming SQL database that speaks the Postgres protocol.
#[derive(Parser, Debug)]
#[command(name = "eddy", version, about)]
pub struct Args {
    /// Address to accept Postgres connections on.
    #[arg(long, env = "EDDY_LISTEN")]
    pub listen: Option<String>,
    /// Directory of the embedded store.
    #[arg(long, env = "EDDY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML).
    #[arg(long, env = "EDDY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Flush every epoch to disk before acknowledging its writes (true by default).
    #[arg(long, env = "EDDY_SYNC_COMMIT")]
    pub sync_commit: Option<bool>,
}

/// The settings the server runs with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub sync_commit: bool,
    /// How many of its most recent late rows each stream keeps in `eddy_catalog.late_rows`.
    pub late_rows_kept: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5544".into(),
            data_dir: "./eddy-data".into(),
            sync_commit: true,
            late_rows_kept: 1000,
        }
    }
}

impl Config {
    /// Reads the file (if any), then applies environment variables and flags.
    pub fn load(args: Args) -> anyhow::Result<Config> {
        let mut config = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        if let Some(l) = args.listen {
            config.listen = l;
        }
        if let Some(d) = args.data_dir {
            config.data_dir = d;
        }
        if let Some(s) = args.sync_commit {
            config.sync_commit = s;
        }
        Ok(config)
    }

    fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid {}: {e}", path.display()))
    }
}

//! A connection's session: who it is, its run-time settings (`SET`, `SHOW`, `RESET`,
//! `current_setting()`, `pg_settings`) and what it is doing (`pg_stat_activity`).
//!
//! Settings are the ones Postgres clients and drivers set or read. Eddy formats dates the ISO
//! way, speaks UTF-8 and keeps standard-conforming strings; a setting that asks for anything
//! else is refused (0A000) rather than silently ignored. Names with a dot (`app.user_id`) are
//! custom settings and take any value, as in Postgres.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::{SqlError, SqlResult};

/// The server version clients see (what `SHOW server_version` reports and `version()` names).
pub const SERVER_VERSION: &str = "16.0";
/// `server_version_num`.
pub const SERVER_VERSION_NUM: &str = "160000";

/// How a setting's value is checked.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Any text.
    Text,
    /// on/off (and the other spellings Postgres takes).
    Bool,
    /// An integer within bounds.
    Int(i64, i64),
    /// A duration in milliseconds (`5s`, `100ms`, `1min`, or a bare number of milliseconds).
    Millis,
    /// One of a fixed set, compared case-insensitively.
    OneOf(&'static [&'static str]),
    /// Reported to the client but not changeable.
    ReadOnly,
}

/// A setting Eddy knows.
struct Param {
    name: &'static str,
    default: &'static str,
    kind: Kind,
    /// Sent to the client as ParameterStatus when it changes (Postgres' GUC_REPORT).
    report: bool,
    category: &'static str,
    description: &'static str,
}

const fn param(
    name: &'static str,
    default: &'static str,
    kind: Kind,
    report: bool,
    category: &'static str,
    description: &'static str,
) -> Param {
    Param {
        name,
        default,
        kind,
        report,
        category,
        description,
    }
}

const CLIENT: &str = "Client Connection Defaults";
const PRESET: &str = "Preset Options";
const LOCALE: &str = "Client Connection Defaults / Locale and Formatting";

const PARAMS: &[Param] = &[
    param(
        "application_name",
        "",
        Kind::Text,
        true,
        "Reporting and Logging / What to Log",
        "Sets the application name to be reported in statistics and logs.",
    ),
    param(
        "bytea_output",
        "hex",
        Kind::OneOf(&["hex"]),
        false,
        CLIENT,
        "Sets the output format for bytea.",
    ),
    param(
        "client_encoding",
        "UTF8",
        Kind::OneOf(&["UTF8", "UTF-8", "UNICODE"]),
        true,
        LOCALE,
        "Sets the client's character set encoding.",
    ),
    param(
        "client_min_messages",
        "notice",
        Kind::OneOf(&[
            "debug5", "debug4", "debug3", "debug2", "debug1", "log", "notice", "warning", "error",
        ]),
        false,
        CLIENT,
        "Sets the message levels that are sent to the client.",
    ),
    param(
        "datestyle",
        "ISO, MDY",
        Kind::OneOf(&[
            "ISO", "ISO, MDY", "ISO, DMY", "ISO, YMD", "ISO,MDY", "ISO,DMY",
        ]),
        true,
        LOCALE,
        "Sets the display format for date and time values.",
    ),
    param(
        "default_transaction_isolation",
        "read committed",
        Kind::OneOf(&["read committed", "repeatable read", "serializable"]),
        false,
        CLIENT,
        "Sets the transaction isolation level of each new transaction.",
    ),
    param(
        "default_transaction_read_only",
        "off",
        Kind::Bool,
        true,
        CLIENT,
        "Sets the default read-only status of new transactions.",
    ),
    param(
        "extra_float_digits",
        "1",
        Kind::Int(-15, 3),
        false,
        LOCALE,
        "Sets the number of digits displayed for floating-point values.",
    ),
    param(
        "idle_in_transaction_session_timeout",
        "0",
        Kind::Millis,
        false,
        CLIENT,
        "Sets the maximum allowed idle time between queries, when in a transaction.",
    ),
    param(
        "integer_datetimes",
        "on",
        Kind::ReadOnly,
        true,
        PRESET,
        "Shows whether datetimes are integer based.",
    ),
    param(
        "intervalstyle",
        "postgres",
        Kind::OneOf(&["postgres"]),
        true,
        LOCALE,
        "Sets the display format for interval values.",
    ),
    // Eddy compiles no queries: off, and setting it changes nothing (asyncpg turns it off
    // before its type introspection).
    param(
        "jit",
        "off",
        Kind::Bool,
        false,
        "Query Tuning / Other Planner Options",
        "Allow JIT compilation.",
    ),
    param(
        "is_superuser",
        "on",
        Kind::ReadOnly,
        true,
        PRESET,
        "Shows whether the current user is a superuser.",
    ),
    param(
        "lc_messages",
        "C",
        Kind::Text,
        false,
        LOCALE,
        "Sets the language in which messages are displayed.",
    ),
    param(
        "lock_timeout",
        "0",
        Kind::Millis,
        false,
        CLIENT,
        "Sets the maximum allowed duration of any wait for a lock.",
    ),
    param(
        "max_identifier_length",
        "63",
        Kind::ReadOnly,
        false,
        PRESET,
        "Shows the maximum identifier length.",
    ),
    param(
        "search_path",
        "\"$user\", public",
        Kind::Text,
        true,
        CLIENT,
        "Sets the schema search order for names that are not schema-qualified.",
    ),
    param(
        "server_encoding",
        "UTF8",
        Kind::ReadOnly,
        true,
        PRESET,
        "Shows the server (database) character set encoding.",
    ),
    param(
        "server_version",
        SERVER_VERSION,
        Kind::ReadOnly,
        true,
        PRESET,
        "Shows the server version.",
    ),
    param(
        "server_version_num",
        SERVER_VERSION_NUM,
        Kind::ReadOnly,
        false,
        PRESET,
        "Shows the server version as an integer.",
    ),
    param(
        "standard_conforming_strings",
        "on",
        Kind::OneOf(&["on", "true", "1"]),
        true,
        "Version and Platform Compatibility",
        "Causes '...' strings to treat backslashes literally.",
    ),
    param(
        "statement_timeout",
        "0",
        Kind::Millis,
        false,
        CLIENT,
        "Sets the maximum allowed duration of any statement (0 turns it off).",
    ),
    param(
        "synchronous_commit",
        "on",
        Kind::OneOf(&["on", "off", "local", "remote_write", "remote_apply"]),
        false,
        "Write-Ahead Log / Settings",
        "Sets the current transaction's synchronization level.",
    ),
    param(
        "timezone",
        "UTC",
        Kind::Text,
        true,
        LOCALE,
        "Sets the time zone for displaying and interpreting time stamps.",
    ),
    param(
        "transaction_isolation",
        "read committed",
        Kind::OneOf(&["read committed", "repeatable read", "serializable"]),
        false,
        CLIENT,
        "Sets the current transaction's isolation level.",
    ),
    param(
        "transaction_read_only",
        "off",
        Kind::Bool,
        false,
        CLIENT,
        "Sets the current transaction's read-only status.",
    ),
];

/// Postgres' spelling of a setting's name as clients write it (`DateStyle`, `TimeZone`).
fn display_name(name: &str) -> &str {
    match name {
        "datestyle" => "DateStyle",
        "timezone" => "TimeZone",
        "intervalstyle" => "IntervalStyle",
        other => other,
    }
}

fn find(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == name)
}

fn unknown(name: &str) -> SqlError {
    SqlError::UndefinedObject(format!("unrecognized configuration parameter \"{name}\""))
}

fn parse_millis(value: &str) -> Option<i64> {
    let v = value.trim();
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(digits);
    let n: i64 = number.parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// Checks a value for a setting and returns it as `SHOW` will print it.
fn check(p: &Param, value: &str) -> SqlResult<String> {
    let invalid = || {
        SqlError::InvalidParameter(format!(
            "invalid value for parameter \"{}\": \"{value}\"",
            display_name(p.name)
        ))
    };
    match p.kind {
        Kind::Text => Ok(value.to_string()),
        Kind::Bool => Ok(if crate::literals::parse_bool(value).ok_or_else(invalid)? {
            "on".into()
        } else {
            "off".into()
        }),
        Kind::Int(min, max) => {
            let n: i64 = value.trim().parse().map_err(|_| invalid())?;
            if n < min || n > max {
                return Err(invalid());
            }
            Ok(n.to_string())
        }
        Kind::Millis => Ok(parse_millis(value).ok_or_else(invalid)?.to_string()),
        Kind::OneOf(allowed) => {
            let normalized = value.trim();
            let found = allowed.iter().find(|a| a.eq_ignore_ascii_case(normalized));
            match found {
                Some(_) if p.name == "standard_conforming_strings" => Ok("on".into()),
                Some(_) if p.name == "client_encoding" => Ok("UTF8".into()),
                Some(_) if p.name == "datestyle" => Ok(default_datestyle(normalized)),
                Some(a) => Ok(a.to_string()),
                None => Err(SqlError::Unsupported(format!(
                    "parameter \"{}\" cannot be set to \"{value}\": Eddy supports {}",
                    display_name(p.name),
                    allowed.join(", ")
                ))),
            }
        }
        Kind::ReadOnly => Err(SqlError::CantChangeRuntimeParam(format!(
            "parameter \"{}\" cannot be changed",
            p.name
        ))),
    }
}

fn default_datestyle(value: &str) -> String {
    let order = value
        .split(',')
        .nth(1)
        .map(|o| o.trim().to_ascii_uppercase())
        .unwrap_or_else(|| "MDY".into());
    format!("ISO, {order}")
}

/// One row of `SHOW ALL` / `pg_settings`.
#[derive(Clone, Debug)]
pub struct SettingRow {
    pub name: String,
    pub setting: String,
    pub category: String,
    pub description: String,
    pub default: String,
    pub vartype: &'static str,
    pub context: &'static str,
    pub source: &'static str,
}

/// What a session is doing, for `pg_stat_activity`.
#[derive(Clone, Debug, Default)]
pub struct Activity {
    /// `active` while a statement runs, `idle` between statements, `idle in transaction`.
    pub state: &'static str,
    pub query: String,
    /// Microseconds since the epoch.
    pub query_start: Option<i64>,
    pub xact_start: Option<i64>,
}

/// A client's session.
#[derive(Debug)]
pub struct ClientSession {
    /// The backend process id the client was given (`pg_backend_pid()`, cancel requests).
    pub pid: i32,
    pub user: String,
    pub database: String,
    pub client_addr: Option<SocketAddr>,
    /// Microseconds since the epoch.
    pub started: i64,
    settings: Mutex<BTreeMap<String, String>>,
    activity: Mutex<Activity>,
    /// Inside `BEGIN READ ONLY` (or a BEGIN with `default_transaction_read_only` on).
    read_only: AtomicBool,
    /// The secret a cancel request for this session must carry.
    cancel_key: Vec<u8>,
    /// Where NOTICE messages of the running statement go, while the protocol layer listens.
    notices: Mutex<Option<UnboundedSender<String>>>,
}

/// A change a client should be told about (ParameterStatus).
pub type Reported = Option<(String, String)>;

impl ClientSession {
    pub fn new(pid: i32, user: &str, database: &str, client_addr: Option<SocketAddr>) -> Self {
        Self {
            pid,
            user: user.to_string(),
            database: database.to_string(),
            client_addr,
            started: chrono::Utc::now().timestamp_micros(),
            settings: Mutex::new(BTreeMap::new()),
            activity: Mutex::new(Activity {
                state: "idle",
                ..Activity::default()
            }),
            read_only: AtomicBool::new(false),
            cancel_key: Vec::new(),
            notices: Mutex::new(None),
        }
    }

    /// Listens to the NOTICE messages of the statements run from now on.
    pub fn listen_notices(&self) -> UnboundedReceiver<String> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self.notices.lock() = Some(tx);
        rx
    }

    /// Tells the client something while its statement runs (a long backfill's progress).
    /// Nobody may listen (work no client runs): the message is then dropped.
    pub fn notice(&self, message: impl Into<String>) {
        if let Some(tx) = self.notices.lock().as_ref() {
            let _ = tx.send(message.into());
        }
    }

    /// The session with the secret its cancel requests carry.
    pub fn with_cancel_key(mut self, key: Vec<u8>) -> Self {
        self.cancel_key = key;
        self
    }

    /// A session for work that no client runs (planning a view at start-up, tests).
    pub fn internal() -> Self {
        Self::new(0, "eddy", crate::context::DATABASE, None)
    }

    /// The value of a setting, as `SHOW` prints it.
    pub fn get(&self, name: &str) -> SqlResult<String> {
        let key = name.to_ascii_lowercase();
        let key = match key.as_str() {
            "transaction isolation level" => "transaction_isolation".to_string(),
            "time zone" => "timezone".to_string(),
            _ => key,
        };
        if key == "session_authorization" {
            return Ok(self.user.clone());
        }
        if let Some(v) = self.settings.lock().get(&key) {
            return Ok(v.clone());
        }
        match find(&key) {
            Some(p) => Ok(p.default.to_string()),
            None if key.contains('.') => Err(unknown(name)),
            None => Err(unknown(name)),
        }
    }

    /// `SET name = value`. Returns the parameter to report to the client, if it is one.
    pub fn set(&self, name: &str, value: &str) -> SqlResult<Reported> {
        let key = name.to_ascii_lowercase();
        let key = if key == "time zone" {
            "timezone".to_string()
        } else {
            key
        };
        let Some(p) = find(&key) else {
            if key.contains('.') {
                self.settings.lock().insert(key, value.to_string());
                return Ok(None);
            }
            return Err(unknown(name));
        };
        let value = check(p, value)?;
        self.settings.lock().insert(key, value.clone());
        Ok(p.report.then(|| (display_name(p.name).to_string(), value)))
    }

    /// `RESET name` (or `SET name TO DEFAULT`).
    pub fn reset(&self, name: &str) -> SqlResult<Reported> {
        let key = name.to_ascii_lowercase();
        let Some(p) = find(&key) else {
            if key.contains('.') {
                self.settings.lock().remove(&key);
                return Ok(None);
            }
            return Err(unknown(name));
        };
        if matches!(p.kind, Kind::ReadOnly) {
            return Err(SqlError::CantChangeRuntimeParam(format!(
                "parameter \"{}\" cannot be changed",
                p.name
            )));
        }
        self.settings.lock().remove(&key);
        Ok(p.report
            .then(|| (display_name(p.name).to_string(), p.default.to_string())))
    }

    /// `RESET ALL` / `DISCARD ALL`: every setting back to its default. Returns what to
    /// report.
    pub fn reset_all(&self) -> Vec<(String, String)> {
        let mut settings = self.settings.lock();
        let changed: Vec<String> = settings.keys().cloned().collect();
        settings.clear();
        changed
            .iter()
            .filter_map(|k| find(k))
            .filter(|p| p.report)
            .map(|p| (display_name(p.name).to_string(), p.default.to_string()))
            .collect()
    }

    /// The settings changed from their defaults, by name: with the user and the database,
    /// everything of the session a catalog query's answer can depend on.
    pub fn changed_settings(&self) -> Vec<(String, String)> {
        self.settings
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every setting with its current value, by name (`SHOW ALL`, `pg_settings`).
    pub fn all(&self) -> Vec<SettingRow> {
        let settings = self.settings.lock();
        PARAMS
            .iter()
            .map(|p| {
                let value = settings.get(p.name);
                SettingRow {
                    name: display_name(p.name).to_string(),
                    setting: value.cloned().unwrap_or_else(|| p.default.to_string()),
                    category: p.category.to_string(),
                    description: p.description.to_string(),
                    default: p.default.to_string(),
                    vartype: match p.kind {
                        Kind::Bool => "bool",
                        Kind::Int(..) | Kind::Millis => "integer",
                        Kind::OneOf(_) => "enum",
                        Kind::Text | Kind::ReadOnly => "string",
                    },
                    context: match p.kind {
                        Kind::ReadOnly => "internal",
                        _ => "user",
                    },
                    source: if value.is_some() {
                        "session"
                    } else {
                        "default"
                    },
                }
            })
            .collect()
    }

    /// `BEGIN [READ ONLY | READ WRITE]`: `read_only` is the mode it named, if any.
    pub fn begin_transaction(&self, read_only: Option<bool>) {
        let default = self
            .get("default_transaction_read_only")
            .is_ok_and(|v| v == "on");
        self.read_only
            .store(read_only.unwrap_or(default), Ordering::Relaxed);
    }

    /// COMMIT or ROLLBACK.
    pub fn end_transaction(&self) {
        self.read_only.store(false, Ordering::Relaxed);
    }

    /// Whether writes are refused: inside a read-only transaction.
    pub fn read_only(&self) -> bool {
        self.read_only.load(Ordering::Relaxed)
    }

    /// The settings Postgres reports to clients (at start-up and when they change), with
    /// their current values.
    pub fn reported(&self) -> Vec<(String, String)> {
        PARAMS
            .iter()
            .filter(|p| p.report)
            .map(|p| {
                let value = self.get(p.name).unwrap_or_else(|_| p.default.to_string());
                (display_name(p.name).to_string(), value)
            })
            .collect()
    }

    /// `statement_timeout`, if one is set.
    pub fn statement_timeout(&self) -> Option<std::time::Duration> {
        let ms: u64 = self.get("statement_timeout").ok()?.parse().ok()?;
        (ms > 0).then(|| std::time::Duration::from_millis(ms))
    }

    pub fn activity(&self) -> Activity {
        self.activity.lock().clone()
    }

    /// A statement starts running.
    pub fn begin_statement(&self, query: &str) {
        let mut a = self.activity.lock();
        a.state = "active";
        a.query = query.to_string();
        a.query_start = Some(chrono::Utc::now().timestamp_micros());
    }

    /// The statement finished; `in_transaction`: inside BEGIN ... COMMIT.
    pub fn end_statement(&self, in_transaction: bool) {
        let mut a = self.activity.lock();
        a.state = if in_transaction {
            "idle in transaction"
        } else {
            "idle"
        };
        if in_transaction && a.xact_start.is_none() {
            a.xact_start = a.query_start;
        }
        if !in_transaction {
            a.xact_start = None;
        }
    }
}

/// Cancels the statement a session runs, given its pid and cancel key.
type Canceller = Box<dyn Fn(i32, &[u8]) + Send + Sync>;

/// Every open session, by backend pid.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<BTreeMap<i32, Weak<ClientSession>>>,
    canceller: std::sync::OnceLock<Canceller>,
    /// The users who may log in with a password, for `pg_roles` (kept by the server).
    roles: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("open", &self.open.lock().len())
            .finish()
    }
}

impl Sessions {
    /// How `pg_cancel_backend` reaches a session's running statement (set once by the
    /// protocol layer, which owns the connections).
    pub fn set_canceller(&self, cancel: impl Fn(i32, &[u8]) + Send + Sync + 'static) {
        let _ = self.canceller.set(Box::new(cancel));
    }

    /// `pg_cancel_backend(pid)`: whether a session with that pid was signalled.
    pub fn cancel(&self, pid: i32) -> bool {
        let Some(session) = self.list().into_iter().find(|s| s.pid == pid) else {
            return false;
        };
        match self.canceller.get() {
            Some(cancel) => {
                cancel(pid, &session.cancel_key);
                true
            }
            None => false,
        }
    }

    /// The users who may log in with a password, as they now are.
    pub fn set_roles(&self, names: Vec<String>) {
        *self.roles.lock() = names;
    }

    pub fn roles(&self) -> Vec<String> {
        self.roles.lock().clone()
    }

    pub fn register(&self, session: &Arc<ClientSession>) {
        self.open
            .lock()
            .insert(session.pid, Arc::downgrade(session));
    }

    /// The sessions still open, in pid order.
    pub fn list(&self) -> Vec<Arc<ClientSession>> {
        let mut open = self.open.lock();
        open.retain(|_, s| s.strong_count() > 0);
        open.values().filter_map(Weak::upgrade).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_check_their_values() {
        let s = ClientSession::internal();
        assert_eq!(s.get("DateStyle").unwrap(), "ISO, MDY");
        assert_eq!(
            s.set("DateStyle", "iso, dmy").unwrap(),
            Some(("DateStyle".into(), "ISO, DMY".into()))
        );
        assert_eq!(s.get("datestyle").unwrap(), "ISO, DMY");
        assert!(matches!(
            s.set("DateStyle", "SQL, DMY"),
            Err(SqlError::Unsupported(_))
        ));
        assert!(matches!(
            s.set("extra_float_digits", "9"),
            Err(SqlError::InvalidParameter(_))
        ));
        s.set("statement_timeout", "2s").unwrap();
        assert_eq!(s.get("statement_timeout").unwrap(), "2000");
        assert!(matches!(
            s.set("no_such", "1"),
            Err(SqlError::UndefinedObject(_))
        ));
        s.set("app.tenant", "42").unwrap();
        assert_eq!(s.get("app.tenant").unwrap(), "42");
        assert!(matches!(
            s.set("server_version", "1"),
            Err(SqlError::CantChangeRuntimeParam(_))
        ));
        let reported = s.reset_all();
        assert!(reported.contains(&("DateStyle".into(), "ISO, MDY".into())));
        assert_eq!(s.get("statement_timeout").unwrap(), "0");
    }
}

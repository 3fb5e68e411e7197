//! What the interpreter needs from the daemon, and the values that cross that line.

/// Log severities a script can use (`xlog("L_WARN", ...)`). OpenSIPS's `L_ALERT` and `L_CRIT`
/// map to [`LogLevel::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Error,
    Warn,
    Notice,
    Info,
    Debug,
}

impl LogLevel {
    /// Parses the script spelling: `L_ERR`, `L_WARN`, `L_NOTICE`, `L_INFO`, `L_DBG` (and the
    /// `L_ALERT`/`L_CRIT` aliases of `L_ERR`).
    pub fn from_script_name(s: &str) -> Option<LogLevel> {
        Some(match s {
            "L_ALERT" | "L_CRIT" | "L_ERR" => LogLevel::Error,
            "L_WARN" => LogLevel::Warn,
            "L_NOTICE" => LogLevel::Notice,
            "L_INFO" => LogLevel::Info,
            "L_DBG" => LogLevel::Debug,
            _ => return None,
        })
    }

    /// OpenSIPS numeric levels as used by `log(level, msg)` and `log_level`: -3 alert, -2 crit,
    /// -1 err, 1 warn, 2 notice, 3 info, 4 dbg.
    pub fn from_number(n: i64) -> Option<LogLevel> {
        Some(match n {
            -3..=-1 => LogLevel::Error,
            1 => LogLevel::Warn,
            2 => LogLevel::Notice,
            3 => LogLevel::Info,
            4 => LogLevel::Debug,
            _ => return None,
        })
    }
}

/// A value handed to the daemon: the OpenSIPS event parameter model widened to 64-bit ints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptValue {
    Null,
    Int(i64),
    Str(String),
}

/// Why [`ScriptHost::call_function`] did not return a result code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FunctionError {
    /// No such function here: a run-time error of the script (`check` prevents it).
    Missing(String),
    /// The function ran and failed: logged at the call's file:line; the script sees -1 and
    /// goes on.
    Failed(String),
}

/// One event parameter: named (`$avp(names)` given) or positional.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptParam {
    pub name: Option<String>,
    pub value: ScriptValue,
}

/// The daemon side of the script functions. Implementations must not block: a script runs on
/// whatever thread the daemon calls the interpreter from.
pub trait ScriptHost: Sync {
    /// `subscribe_event(event, socket [, expire])`; `expire` is `None` for a permanent
    /// subscription (argument absent or 0).
    fn subscribe_event(&self, event: &str, socket: &str, expire: Option<i64>)
        -> Result<(), String>;

    /// `raise_event(event, ...)` with the parameters already in OpenSIPS order.
    fn raise_event(&self, event: &str, params: &[ScriptParam]) -> Result<(), String>;

    /// `xlog`/`log` output. `msg` is exactly what the script formatted, usually ending in `\n`
    /// (OpenSIPS writes it as is); runtime warnings of the interpreter come here too.
    fn log(&self, level: LogLevel, msg: &str);

    /// Lets `xlog` skip formatting a message nobody will see. Defaults to everything enabled.
    fn log_enabled(&self, _level: LogLevel) -> bool {
        true
    }

    /// A function the interpreter does not implement but `check` was told exists (a module
    /// function). Returns the OpenSIPS return code: positive = true, negative = false, 0 = stop
    /// the script.
    fn call_function(&self, name: &str, _args: &[ScriptValue]) -> Result<i64, FunctionError> {
        Err(FunctionError::Missing(format!(
            "function '{name}' is not available"
        )))
    }
}

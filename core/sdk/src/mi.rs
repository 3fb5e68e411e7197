//! MI commands a module exports.

use serde_json::{Map, Value as Json};

/// The params of one MI call, bound by the host to one of the command's recipes.
#[derive(Clone, Debug, Default)]
pub struct MiParams {
    map: Map<String, Json>,
}

impl MiParams {
    pub(crate) fn parse(text: &[u8]) -> MiParams {
        let map = match serde_json::from_slice(text) {
            Ok(Json::Object(m)) => m,
            _ => Map::new(),
        };
        MiParams { map }
    }

    /// Params from a JSON object (for a module's unit tests of its MI commands); anything but
    /// an object gives no params.
    pub fn from_json(v: Json) -> MiParams {
        match v {
            Json::Object(map) => MiParams { map },
            _ => MiParams::default(),
        }
    }

    /// Whether the call has param `name` (for commands with several recipes).
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// A string param; numbers are accepted and printed in decimal (as OpenSIPS does).
    pub fn str(&self, name: &str) -> Result<String, MiError> {
        match self.map.get(name) {
            Some(Json::String(s)) => Ok(s.clone()),
            Some(Json::Number(n)) => Ok(n.to_string()),
            Some(_) => Err(MiError::bad_type(name)),
            None => Err(MiError::invalid_params("Too few or too many parameters")),
        }
    }

    /// An int param; decimal strings are accepted.
    pub fn int(&self, name: &str) -> Result<i64, MiError> {
        match self.map.get(name) {
            Some(Json::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .ok_or_else(|| MiError::bad_type(name)),
            Some(Json::String(s)) => s.trim().parse().map_err(|_| MiError::bad_type(name)),
            Some(_) => Err(MiError::bad_type(name)),
            None => Err(MiError::invalid_params("Too few or too many parameters")),
        }
    }
}

/// An MI error reply: `{"code":..,"message":..,"data":..}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiError {
    /// OpenSIPS's code: 400/404/500 for command errors, -326xx for JSON-RPC ones.
    pub code: i32,
    /// The short message, e.g. `Invalid params`.
    pub message: String,
    /// Optional detail, sent as the error's `data` member.
    pub data: Option<String>,
}

impl MiError {
    /// An error with `code` and `message`, no data.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        MiError {
            code,
            message: message.into(),
            data: None,
        }
    }
    /// Add the `data` member.
    pub fn with_data(mut self, data: impl Into<String>) -> Self {
        self.data = Some(data.into());
        self
    }
    /// -32602 "Invalid params" with `data`.
    pub fn invalid_params(data: &str) -> Self {
        MiError::new(-32602, "Invalid params").with_data(data)
    }
    /// -32602 "Invalid params", saying param `name` has the wrong type.
    pub fn bad_type(name: &str) -> Self {
        Self::invalid_params(&format!("Bad type for parameter '{name}'"))
    }
}

/// What an MI handler returns: a JSON result (`"OK"` for most commands) or an error.
pub type MiResult = Result<Json, MiError>;

/// The usual success result, the JSON string `"OK"`.
pub fn ok() -> MiResult {
    Ok(Json::String("OK".into()))
}

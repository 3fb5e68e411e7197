//! What an MI client may subscribe (config-file subscriptions are trusted), and the size limits
//! of MI requests. Set by global params; see `config.rs`.

use std::path::{Component, Path, PathBuf};

/// The subscription policy and request limits.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Protos MI may subscribe (`mi_allowed_protos`); `None` = every loaded proto.
    pub allowed_protos: Option<Vec<String>>,
    /// Longest expire MI may ask for, seconds (`mi_max_expire`); `None` = no limit.
    pub max_expire: Option<i64>,
    /// Subscribers one event may have (`mi_max_subscribers_per_event`).
    pub max_per_event: usize,
    /// Subscribers in total (`mi_max_subscribers`).
    pub max_total: usize,
    /// Directory MI-created flatstore files must be in (`mi_flatstore_dir`); `None` = anywhere.
    pub flatstore_dir: Option<PathBuf>,
    /// Largest MI request body, bytes (`mi_max_request`).
    pub max_request: usize,
    /// Most params in one MI request, and the longest string param (`mi_max_params`,
    /// `mi_max_param_len`).
    pub max_params: usize,
    pub max_param_len: usize,
    /// Longest socket URI (`mi_max_socket_len`).
    pub max_socket_len: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allowed_protos: None,
            max_expire: None,
            max_per_event: 1000,
            max_total: 10_000,
            flatstore_dir: None,
            max_request: 1 << 20,
            max_params: 64,
            max_param_len: 64 * 1024,
            max_socket_len: 1024,
        }
    }
}

impl Policy {
    /// Whether MI may subscribe `socket` with `expire`; the error says which rule refused it.
    pub fn check_subscription(&self, socket: &str, expire: i64) -> Result<(), String> {
        if socket.len() > self.max_socket_len {
            return Err(format!(
                "socket longer than {} bytes (mi_max_socket_len)",
                self.max_socket_len
            ));
        }
        let (proto, body) = socket.split_once(':').unwrap_or((socket, ""));
        if let Some(allowed) = &self.allowed_protos {
            if !allowed.iter().any(|p| p == proto) {
                return Err(format!(
                    "proto {proto:?} is not allowed over MI (mi_allowed_protos: {})",
                    allowed.join(",")
                ));
            }
        }
        if let Some(max) = self.max_expire {
            if expire > max {
                return Err(format!(
                    "expire {expire} is above the maximum of {max} seconds (mi_max_expire)"
                ));
            }
        }
        if proto == "flatstore" {
            if let Some(dir) = &self.flatstore_dir {
                beneath(dir, Path::new(body))?;
            }
        }
        Ok(())
    }
}

/// `path` must be an absolute path inside `dir`, with no `..` and no symlink on the way.
/// The symlink check is made now; a link created between this check and the module's open is
/// not caught (the module opens the file, not the host).
fn beneath(dir: &Path, path: &Path) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "flatstore path {} {why} (mi_flatstore_dir is {})",
            path.display(),
            dir.display()
        ))
    };
    if !path.is_absolute() {
        return refuse("is not absolute");
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return refuse("contains . or ..");
    }
    let Ok(rest) = path.strip_prefix(dir) else {
        return refuse("is outside the allowed directory");
    };
    let mut at = dir.to_path_buf();
    for c in rest.components() {
        at.push(c);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return refuse("goes through a symbolic link");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_what_refused() {
        let p = Policy {
            allowed_protos: Some(vec!["udp".into(), "flatstore".into()]),
            max_expire: Some(600),
            flatstore_dir: Some(PathBuf::from("/var/log/evid")),
            ..Policy::default()
        };
        assert!(p.check_subscription("udp:127.0.0.1:9", 60).is_ok());
        assert!(p
            .check_subscription("flatstore:/var/log/evid/a.log", 60)
            .is_ok());
        let err = |s: &str, e: i64| p.check_subscription(s, e).err().unwrap_or_default();
        assert!(err("tcp:1.2.3.4:5", 60).contains("proto \"tcp\" is not allowed"));
        assert!(err("udp:127.0.0.1:9", 601).contains("above the maximum of 600"));
        assert!(err("flatstore:/etc/passwd", 60).contains("outside the allowed directory"));
        assert!(err("flatstore:/var/log/evid/../../etc/x", 60).contains(". or .."));
        assert!(err("flatstore:x.log", 60).contains("not absolute"));
        assert!(err(&format!("udp:{}", "a".repeat(2000)), 60).contains("mi_max_socket_len"));
    }
}

//! The socket body of `flatstore:<path>`: a file path, absolute or relative to the daemon's CWD.
//!
//! Checked at subscribe time, so that a bad path fails the subscription with a message instead
//! of failing every later raise.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

/// Validate the body as given (before any suffix is appended); returns the path.
pub fn parse_body(body: &str) -> Result<&str, String> {
    if body.is_empty() {
        return Err("flatstore: empty file path".into());
    }
    if body.contains('\0') {
        return Err(format!("flatstore: NUL byte in file path {body:?}"));
    }
    Ok(body)
}

/// Check the real file name (path + suffix): not a directory, and its parent directory exists.
pub fn check_target(name: &str) -> Result<(), String> {
    if name.ends_with('/') {
        return Err(format!("flatstore: '{name}' is a directory, not a file"));
    }
    match fs::metadata(name) {
        Ok(m) if m.is_dir() => Err(format!("flatstore: '{name}' is a directory, not a file")),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => check_parent(name),
        Err(e) => Err(format!("flatstore: cannot use '{name}': {e}")),
    }
}

fn check_parent(name: &str) -> Result<(), String> {
    // `Path::parent` of a bare file name is "", which means the current directory.
    let parent = match Path::new(name).parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "flatstore: cannot create '{name}': parent '{}' is not a directory",
            parent.display()
        )),
        Err(e) => Err(format!(
            "flatstore: cannot create '{name}': parent directory '{}': {e}",
            parent.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn empty_and_nul_refused() {
        assert!(parse_body("").is_err());
        assert!(parse_body("a\0b").is_err());
        assert_eq!(parse_body("rel/x.log"), Ok("rel/x.log"));
    }

    #[test]
    fn directories_refused() {
        let dir = TempDir::new("uri-dir");
        let d = dir.path_str("");
        let err = check_target(&d).expect_err("trailing slash");
        assert!(err.contains("is a directory"), "{err}");
        let err = check_target(d.trim_end_matches('/')).expect_err("existing dir");
        assert!(err.contains("is a directory"), "{err}");
    }

    #[test]
    fn missing_parent_names_path_and_os_error() {
        let dir = TempDir::new("uri-parent");
        let name = dir.path_str("nope/x.log");
        let err = check_target(&name).expect_err("missing parent");
        assert!(err.contains(&name), "{err}");
        assert!(err.contains("No such file or directory"), "{err}");
    }

    #[test]
    fn parent_that_is_a_file_refused() {
        let dir = TempDir::new("uri-file-parent");
        let file = dir.path_str("f");
        std::fs::write(&file, b"").expect("create");
        let err = check_target(&format!("{file}/x.log")).expect_err("file parent");
        assert!(
            err.contains("not a directory") || err.contains("Not a directory"),
            "{err}"
        );
    }

    #[test]
    fn new_and_existing_files_accepted() {
        let dir = TempDir::new("uri-ok");
        let name = dir.path_str("x.log");
        assert_eq!(check_target(&name), Ok(()));
        std::fs::write(&name, b"").expect("create");
        assert_eq!(check_target(&name), Ok(()));
        // A bare relative name resolves against the current directory, which exists.
        assert_eq!(check_target("evid-flatstore-does-not-exist.log"), Ok(()));
    }
}

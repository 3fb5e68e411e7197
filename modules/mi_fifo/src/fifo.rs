//! The request FIFO: created with its mode, opened for reading without blocking, and re-created
//! when someone deletes or replaces it.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The FIFO at `fifo_name`, open for reading.
pub struct RequestFifo {
    path: PathBuf,
    read: File,
    /// Our own writer: without one, the read end sees EOF (and `poll` reports POLLHUP without
    /// end) each time the last client closes.
    _write: File,
    dev: u64,
    ino: u64,
}

impl RequestFifo {
    /// Create the FIFO at `path` with `mode` and open it. A FIFO or socket left there by an
    /// earlier run is replaced; any other file is refused (OpenSIPS deletes whatever is there).
    pub fn create(path: &Path, mode: u32) -> io::Result<RequestFifo> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_fifo() || m.file_type().is_socket() => {
                std::fs::remove_file(path)?
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the path exists and is not a FIFO",
                ))
            }
            Err(_) => {}
        }
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the path"))?;
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), mode) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // mkfifo applies the umask; the configured mode is what the operator asked for.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        let open = |read: bool| {
            OpenOptions::new()
                .read(read)
                .write(!read)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
                .open(path)
        };
        let read = open(true)?;
        let write = open(false)?;
        let m = read.metadata()?;
        Ok(RequestFifo {
            path: path.to_path_buf(),
            read,
            _write: write,
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The read end (non-blocking).
    pub fn reader(&self) -> &File {
        &self.read
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the path still names this FIFO (not deleted, not replaced).
    pub fn is_current(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }

    /// Delete the FIFO file if it is still this one.
    pub fn remove(&self) {
        if self.is_current() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

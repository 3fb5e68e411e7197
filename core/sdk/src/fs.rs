//! Files a module opens on behalf of an MI subscription: kept beneath the daemon's directory
//! without a check-then-open race (see [`crate::Host::mi_file_root`]).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Open `path` for appending (created with `mode` minus the umask), resolved by the kernel
/// strictly beneath `root`: `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS`, so `..`, any symlink (even one made after the daemon's check) and
/// an absolute path outside `root` fail (`EXDEV`, `ELOOP`). `path` is absolute inside `root`
/// or relative to it. `flags` are added to `O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC`.
///
/// Needs Linux 5.6 or later; on an older kernel it fails with `ENOSYS` (the file is not opened
/// unconfined).
pub fn open_beneath(root: &Path, path: &Path, mode: u32, flags: i32) -> io::Result<File> {
    let rel = match path.strip_prefix(root) {
        Ok(rest) => rest,
        Err(_) if path.is_relative() => path,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is outside {}", path.display(), root.display()),
            ))
        }
    };
    let dir = File::open(root)?;
    let rel = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: `open_how` is plain integers (and non-exhaustive: built from zeroes).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC | flags) as u64;
    how.mode = u64::from(mode);
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    use std::os::fd::AsRawFd;
    // SAFETY: valid dirfd, NUL-terminated path and an `open_how` of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor this process owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

#[cfg(test)]
mod tests {
    use super::open_beneath;
    use std::io::Write;

    #[test]
    fn stays_beneath_the_root() {
        let base = std::env::temp_dir().join(format!("evi-sdk-beneath-{}", std::process::id()));
        let root = base.join("root");
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::os::unix::fs::symlink("/tmp", root.join("link")).expect("symlink");
        std::os::unix::fs::symlink("sub", root.join("inner")).expect("symlink");

        let mut f = open_beneath(&root, &root.join("sub/a.log"), 0o600, 0).expect("inside");
        f.write_all(b"x\n").expect("write");
        assert_eq!(std::fs::read(root.join("sub/a.log")).expect("read"), b"x\n");
        assert!(open_beneath(&root, std::path::Path::new("b.log"), 0o600, 0).is_ok());

        for bad in [
            "link/evil.log",
            "inner/a.log",
            "../escape.log",
            "sub/../../x.log",
        ] {
            let e = open_beneath(&root, &root.join(bad), 0o600, 0).expect_err(bad);
            assert!(
                matches!(e.raw_os_error(), Some(libc::EXDEV) | Some(libc::ELOOP)),
                "{bad}: {e}"
            );
        }
        assert!(!base.join("escape.log").exists());
        let e = open_beneath(&root, std::path::Path::new("/etc/evil.log"), 0o600, 0)
            .expect_err("absolute outside");
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        let _ = std::fs::remove_dir_all(&base);
    }
}

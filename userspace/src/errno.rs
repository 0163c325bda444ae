//! Symbolic errno names and `strerror` text for error messages.

macro_rules! errno_table {
    ($($name:ident),* $(,)?) => {
        /// Returns the symbolic name (`"EINVAL"`) of an errno value, if known.
        pub fn errno_name(e: i32) -> Option<&'static str> {
            // EWOULDBLOCK == EAGAIN and EDEADLOCK == EDEADLK on Linux: first match wins.
            $( if e == libc::$name { return Some(stringify!($name)); } )*
            None
        }
    };
}

errno_table!(
    EPERM,
    ENOENT,
    ESRCH,
    EINTR,
    EIO,
    ENXIO,
    E2BIG,
    ENOEXEC,
    EBADF,
    ECHILD,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    ENOTBLK,
    EBUSY,
    EEXIST,
    EXDEV,
    ENODEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    ENFILE,
    EMFILE,
    ENOTTY,
    ETXTBSY,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EMLINK,
    EPIPE,
    EDOM,
    ERANGE,
    EDEADLK,
    ENAMETOOLONG,
    ENOLCK,
    ENOSYS,
    ENOTEMPTY,
    ELOOP,
    ENOMSG,
    EIDRM,
    ENOSTR,
    ENODATA,
    ETIME,
    ENOSR,
    ENOLINK,
    EPROTO,
    EBADMSG,
    EOVERFLOW,
    EILSEQ,
    EUSERS,
    ENOTSOCK,
    EDESTADDRREQ,
    EMSGSIZE,
    EPROTOTYPE,
    ENOPROTOOPT,
    EPROTONOSUPPORT,
    EOPNOTSUPP,
    EADDRINUSE,
    ENOBUFS,
    EISCONN,
    ENOTCONN,
    ETIMEDOUT,
    ECONNREFUSED,
    EALREADY,
    EINPROGRESS,
    ESTALE,
    EDQUOT,
    ECANCELED,
    EOWNERDEAD,
    ENOTRECOVERABLE,
    ENOKEY,
    EKEYEXPIRED,
    EUCLEAN,
    EMEDIUMTYPE,
    ENOMEDIUM,
);

/// `NAME` if known, else the decimal number.
pub fn errno_label(e: i32) -> String {
    match errno_name(e) {
        Some(n) => n.to_string(),
        None => e.to_string(),
    }
}

/// The C library's `strerror` text (without std's " (os error N)" suffix).
pub fn strerror(e: i32) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes; the XSI strerror_r writes a
    // NUL-terminated string into it (truncated if needed).
    let rc = unsafe { libc::strerror_r(e, buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return format!("Unknown error {}", e);
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(errno_name(22), Some("EINVAL"));
        assert_eq!(errno_name(2), Some("ENOENT"));
        assert_eq!(errno_name(25), Some("ENOTTY"));
        assert_eq!(errno_name(11), Some("EAGAIN"));
        assert_eq!(errno_name(95), Some("EOPNOTSUPP"));
        assert_eq!(errno_name(100000), None);
        assert_eq!(errno_label(100000), "100000");
    }

    #[test]
    fn strerror_text() {
        assert_eq!(strerror(libc::EINVAL), "Invalid argument");
        assert_eq!(strerror(libc::ENOTTY), "Inappropriate ioctl for device");
    }
}

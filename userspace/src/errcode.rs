//! The errno values of the VexFS ioctls (`vexfs.h`, "Common errno values"), as the
//! core returns them. Core-only: the kernel module maps them to its `Error`s, userspace
//! to `io::Error`s; the numbers are Linux's (x86_64 and arm64 share them).

/// A failing ioctl's errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrCode {
    /// `EINVAL`: bad argument (reserved bits, unknown metric/flag/op, dim, range, tag).
    Inval,
    /// `E2BIG`: dim > `VEXFS_MAX_DIM`, k > `VEXFS_MAX_K`, too many filters, small buffer.
    TooBig,
    /// `ENODATA`: the file carries no vector.
    NoData,
    /// `EEXIST`: index CREATE while one exists.
    Exist,
    /// `ENOENT`: index DROP/REBUILD while none exists.
    NoEnt,
    /// `ENOMEM`: an allocation failed.
    NoMem,
    /// `EISDIR`: a vector ioctl on a directory.
    IsDir,
    /// `EFAULT`: user memory could not be copied.
    Fault,
    /// `ENOTTY`: not a VexFS ioctl.
    NoTty,
}

impl ErrCode {
    /// The positive errno number.
    pub const fn errno(self) -> i32 {
        match self {
            ErrCode::Inval => 22,
            ErrCode::TooBig => 7,
            ErrCode::NoData => 61,
            ErrCode::Exist => 17,
            ErrCode::NoEnt => 2,
            ErrCode::NoMem => 12,
            ErrCode::IsDir => 21,
            ErrCode::Fault => 14,
            ErrCode::NoTty => 25,
        }
    }

    /// The errno's name, as `vexctl` prints it (`errno=EINVAL`).
    pub const fn name(self) -> &'static str {
        match self {
            ErrCode::Inval => "EINVAL",
            ErrCode::TooBig => "E2BIG",
            ErrCode::NoData => "ENODATA",
            ErrCode::Exist => "EEXIST",
            ErrCode::NoEnt => "ENOENT",
            ErrCode::NoMem => "ENOMEM",
            ErrCode::IsDir => "EISDIR",
            ErrCode::Fault => "EFAULT",
            ErrCode::NoTty => "ENOTTY",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrCode;

    #[cfg(feature = "userspace")]
    #[test]
    fn numbers_are_libc_s() {
        let pairs = [
            (ErrCode::Inval, libc::EINVAL),
            (ErrCode::TooBig, libc::E2BIG),
            (ErrCode::NoData, libc::ENODATA),
            (ErrCode::Exist, libc::EEXIST),
            (ErrCode::NoEnt, libc::ENOENT),
            (ErrCode::NoMem, libc::ENOMEM),
            (ErrCode::IsDir, libc::EISDIR),
            (ErrCode::Fault, libc::EFAULT),
            (ErrCode::NoTty, libc::ENOTTY),
        ];
        for (code, want) in pairs {
            assert_eq!(code.errno(), want, "{}", code.name());
        }
    }

    #[test]
    fn names_are_distinct() {
        let all = [
            ErrCode::Inval,
            ErrCode::TooBig,
            ErrCode::NoData,
            ErrCode::Exist,
            ErrCode::NoEnt,
            ErrCode::NoMem,
            ErrCode::IsDir,
            ErrCode::Fault,
            ErrCode::NoTty,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.name(), b.name());
                assert_ne!(a.errno(), b.errno());
            }
        }
    }
}

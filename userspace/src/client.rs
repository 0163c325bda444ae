//! Userspace library API: the VexFS ioctls on an open file or directory.

use crate::abi::*;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// One search hit as returned to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SearchHit {
    pub ino: u64,
    /// Q16.16 score as reported (see `vexfs.h`, SCORES).
    pub score: i64,
    /// Name (NUL-terminated field decoded lossily as UTF-8).
    pub name: String,
}

/// Result of SEARCH / HYBRID_SEARCH.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SearchOutcome {
    pub hits: Vec<SearchHit>,
    pub nr_candidates: u64,
    /// Only for hybrid search.
    pub nr_examined: Option<u64>,
    pub index_used: bool,
    pub index_generation: u64,
}

/// One hybrid-search filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    /// `VEXFS_FILTER_*`
    pub kind: u32,
    pub value: Vec<u8>,
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

/// An open file or directory on a VexFS mount.
#[derive(Debug)]
pub struct Vexfs {
    file: File,
}

impl Vexfs {
    /// Opens `path` read-only (enough for GET_VECTOR, searches, index, stats).
    pub fn open(path: impl AsRef<Path>) -> io::Result<Vexfs> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)?;
        Ok(Vexfs { file })
    }

    /// Opens `path` write-only (ADD_VECTOR / DEL_VECTOR need write permission).
    pub fn open_write(path: impl AsRef<Path>) -> io::Result<Vexfs> {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)?;
        Ok(Vexfs { file })
    }

    /// Wraps an already open file.
    pub fn from_file(file: File) -> Vexfs {
        Vexfs { file }
    }

    /// # Safety
    /// `arg` must point to a valid value of the type `request` encodes, and
    /// any user pointers inside it must be valid for the kernel's accesses.
    unsafe fn ioctl<T>(&self, request: u32, arg: *mut T) -> io::Result<()> {
        // SAFETY: guaranteed by the caller; the fd is open for our lifetime.
        #[allow(clippy::useless_conversion)]
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), request as _, arg) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// VEXFS_IOC_ADD_VECTOR: attach/replace the file's vector and tag.
    pub fn add_vector(&self, data: &[i32], tag: &[u8]) -> io::Result<()> {
        let mut req = VectorRequest::zeroed();
        req.dim = u32::try_from(data.len()).map_err(|_| invalid("vector too long"))?;
        req.data = data.as_ptr() as u64;
        if !fill_c_str(&mut req.tag, tag) {
            return Err(invalid("tag too long (max 63 bytes) or contains NUL"));
        }
        // SAFETY: req is a VectorRequest; data is valid for dim i32 reads.
        unsafe { self.ioctl(VEXFS_IOC_ADD_VECTOR, &mut req) }
    }

    /// VEXFS_IOC_GET_VECTOR: returns the vector and its tag bytes.
    pub fn get_vector(&self) -> io::Result<(Vec<i32>, Vec<u8>)> {
        let mut buf = vec![0i32; VEXFS_MAX_DIM as usize];
        let mut req = VectorRequest::zeroed();
        req.dim = buf.len() as u32;
        req.data = buf.as_mut_ptr() as u64;
        // SAFETY: buf is valid for dim i32 writes.
        unsafe { self.ioctl(VEXFS_IOC_GET_VECTOR, &mut req)? };
        buf.truncate((req.dim as usize).min(VEXFS_MAX_DIM as usize));
        Ok((buf, c_str_bytes(&req.tag).to_vec()))
    }

    /// VEXFS_IOC_DEL_VECTOR.
    pub fn del_vector(&self) -> io::Result<()> {
        // SAFETY: _IO ioctl, the argument is not used.
        unsafe { self.ioctl::<u8>(VEXFS_IOC_DEL_VECTOR, core::ptr::null_mut()) }
    }

    /// Result buffer for `k` hits. k is passed to the kernel unchanged (so
    /// its -EINVAL/-E2BIG checks can be exercised); the buffer is capped at
    /// 65536 entries, which any k the kernel accepts (<= VEXFS_MAX_K) fits.
    fn result_buf(k: u32) -> Vec<SearchResult> {
        vec![SearchResult::zeroed(); (k as usize).min(65536)]
    }

    fn hits(buf: &[SearchResult], nr: u32) -> Vec<SearchHit> {
        buf[..(nr as usize).min(buf.len())]
            .iter()
            .map(|r| SearchHit {
                ino: r.ino,
                score: r.score,
                name: String::from_utf8_lossy(c_str_bytes(&r.name)).into_owned(),
            })
            .collect()
    }

    /// VEXFS_IOC_SEARCH. `metric` is the raw `VEXFS_METRIC_*` value.
    pub fn search(
        &self,
        metric: u32,
        k: u32,
        flags: u32,
        query: &[i32],
    ) -> io::Result<SearchOutcome> {
        let mut results = Self::result_buf(k);
        let mut s = Search::zeroed();
        s.req.dim = u32::try_from(query.len()).map_err(|_| invalid("query too long"))?;
        s.req.k = k;
        s.req.metric = metric;
        s.req.flags = flags;
        s.req.query = query.as_ptr() as u64;
        s.req.results = results.as_mut_ptr() as u64;
        if (k as usize) > results.len() {
            // never hand the kernel a k larger than the buffer
            s.req.k = u32::MAX;
        }
        // SAFETY: query valid for dim reads, results valid for k writes.
        unsafe { self.ioctl(VEXFS_IOC_SEARCH, &mut s)? };
        Ok(SearchOutcome {
            hits: Self::hits(&results, s.resp.nr_results),
            nr_candidates: s.resp.nr_candidates,
            nr_examined: None,
            index_used: s.resp.flags & VEXFS_SEARCH_RF_INDEX != 0,
            index_generation: s.resp.index_generation,
        })
    }

    /// VEXFS_IOC_HYBRID_SEARCH with up to `VEXFS_FILTER_MAX` filters.
    pub fn hybrid_search(
        &self,
        metric: u32,
        k: u32,
        flags: u32,
        query: &[i32],
        filters: &[FilterSpec],
    ) -> io::Result<SearchOutcome> {
        if filters.len() > VEXFS_FILTER_MAX {
            return Err(invalid("too many filters"));
        }
        let mut results = Self::result_buf(k);
        let mut s = HybridSearch::zeroed();
        s.req.dim = u32::try_from(query.len()).map_err(|_| invalid("query too long"))?;
        s.req.k = if (k as usize) > results.len() {
            u32::MAX
        } else {
            k
        };
        s.req.metric = metric;
        s.req.flags = flags;
        s.req.query = query.as_ptr() as u64;
        s.req.results = results.as_mut_ptr() as u64;
        s.req.nr_filters = filters.len() as u32;
        for (slot, f) in s.req.filters.iter_mut().zip(filters) {
            if f.value.len() > VEXFS_FILTER_VALUE_LEN {
                return Err(invalid("filter value too long (max 64 bytes)"));
            }
            slot.kind = f.kind;
            slot.len = f.value.len() as u32;
            slot.value[..f.value.len()].copy_from_slice(&f.value);
        }
        // SAFETY: as for search.
        unsafe { self.ioctl(VEXFS_IOC_HYBRID_SEARCH, &mut s)? };
        Ok(SearchOutcome {
            hits: Self::hits(&results, s.resp.nr_results),
            nr_candidates: s.resp.nr_candidates,
            nr_examined: Some(s.resp.nr_examined),
            index_used: s.resp.flags & VEXFS_SEARCH_RF_INDEX != 0,
            index_generation: s.resp.index_generation,
        })
    }

    /// VEXFS_IOC_MANAGE_INDEX. The response is filled even when the op
    /// fails (e.g. -EEXIST), so it is returned alongside the result.
    pub fn manage_index(&self, op: u32) -> (io::Result<()>, ManageIndexResponse) {
        let mut m = ManageIndex::zeroed();
        m.req.op = op;
        // SAFETY: m is a ManageIndex.
        let r = unsafe { self.ioctl(VEXFS_IOC_MANAGE_INDEX, &mut m) };
        (r, m.resp)
    }

    /// VEXFS_IOC_GET_STATS.
    pub fn stats(&self) -> io::Result<Stats> {
        let mut st = Stats::zeroed();
        // SAFETY: st is a Stats.
        unsafe { self.ioctl(VEXFS_IOC_GET_STATS, &mut st)? };
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a non-vexfs file the kernel must answer ENOTTY (unknown ioctl).
    #[test]
    fn ioctl_on_regular_file_is_enotty() {
        let dir = std::env::temp_dir();
        let v = Vexfs::open(&dir).unwrap();
        let e = v.stats().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY), "{e}");
        let e = v.search(VEXFS_METRIC_L2, 1, 0, &[0]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY), "{e}");
    }

    #[test]
    fn tag_too_long_is_rejected_before_ioctl() {
        let v = Vexfs::open(std::env::temp_dir()).unwrap();
        let e = v.add_vector(&[0], &[b'a'; 64]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}

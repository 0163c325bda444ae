//! The VexFS device model: vectors keyed by inode, the optional ino-sorted index, the
//! counters, and the semantics of every ioctl of `vexfs.h` on them (argument checks in
//! the C module's order, errno values, index generations, result order). Core-only (no
//! std, no alloc): storage comes from the caller through [`Slots`] (a `Vec` here, a
//! `KVVec` in the kernel), user memory stays the caller's business.
//!
//! Built with the `kernel` feature; `kernel/rust/vexfs_rs.rs` compiles this very file
//! (with `abi.rs`, `errcode.rs`, `filter.rs` and `vector.rs`), so `crate-build/kernel`
//! compiles what `vexfs_rs.ko` runs, and the unit tests below test it.

use crate::abi::{
    Filter, ManageIndexRequest, ManageIndexResponse, SearchResult, Stats, VectorRequest,
    VEXFS_ABI_VERSION, VEXFS_INDEX_CREATE, VEXFS_INDEX_DROP, VEXFS_INDEX_INFO, VEXFS_INDEX_REBUILD,
    VEXFS_MAX_DIM, VEXFS_MAX_K, VEXFS_NAME_LEN, VEXFS_SEARCH_F_ALL, VEXFS_SEARCH_F_NO_INDEX,
    VEXFS_SEARCH_RF_INDEX, VEXFS_TAG_LEN,
};
use crate::errcode::ErrCode;
use crate::filter;
use crate::vector::{component_ok, score, Hit, Metric, TopK};

/// Longest name kept (Linux's `NAME_MAX`); filters match all of it.
pub const NAME_MAX: usize = 255;

/// Growable storage the caller provides; every growth may fail with `ENOMEM`.
pub trait Slots<T> {
    /// The items, in order.
    fn items(&self) -> &[T];
    /// The items, mutable.
    fn items_mut(&mut self) -> &mut [T];
    /// Room for `additional` more items, or `ENOMEM` (nothing changed).
    fn try_reserve_more(&mut self, additional: usize) -> Result<(), ErrCode>;
    /// Inserts at `pos` (<= len), or `ENOMEM` (nothing changed).
    fn try_insert(&mut self, pos: usize, item: T) -> Result<(), ErrCode>;
    /// Removes the item at `pos` (< len).
    fn remove_at(&mut self, pos: usize);
    /// Removes every item (keeps the memory).
    fn clear_all(&mut self);
    /// Items the allocated memory holds.
    fn slots(&self) -> usize;
}

#[cfg(any(feature = "userspace", test))]
impl<T> Slots<T> for std::vec::Vec<T> {
    fn items(&self) -> &[T] {
        self
    }
    fn items_mut(&mut self) -> &mut [T] {
        self
    }
    fn try_reserve_more(&mut self, additional: usize) -> Result<(), ErrCode> {
        self.try_reserve(additional).map_err(|_| ErrCode::NoMem)
    }
    fn try_insert(&mut self, pos: usize, item: T) -> Result<(), ErrCode> {
        self.try_reserve_more(1)?;
        self.insert(pos, item);
        Ok(())
    }
    fn remove_at(&mut self, pos: usize) {
        self.remove(pos);
    }
    fn clear_all(&mut self) {
        self.clear();
    }
    fn slots(&self) -> usize {
        self.capacity()
    }
}

/// Which file a vector belongs to: its inode number and its filesystem's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub ino: u64,
    pub dev: u64,
}

/// One file's vector, with the name it was added through and its tag.
#[derive(Clone, Copy)]
pub struct Entry<const D: usize> {
    pub key: Key,
    pub data: [i32; D],
    name: [u8; NAME_MAX],
    name_len: u16,
    tag: [u8; VEXFS_TAG_LEN],
}

impl<const D: usize> Entry<D> {
    /// The full name (at most [`NAME_MAX`] bytes).
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len as usize]
    }
    /// The tag field as stored (NUL padded).
    pub fn tag_field(&self) -> &[u8; VEXFS_TAG_LEN] {
        &self.tag
    }
    /// The tag's bytes before its NUL.
    pub fn tag(&self) -> &[u8] {
        filter::until_nul(&self.tag)
    }
}

/// One row of the index: a snapshot copy of a vector, ino-sorted.
#[derive(Clone, Copy)]
pub struct Row<const D: usize> {
    pub key: Key,
    pub data: [i32; D],
}

/// A checked search: what SEARCH and HYBRID_SEARCH share.
pub struct Query<'a> {
    pub metric: Metric,
    pub flags: u32,
    pub query: &'a [i32],
    /// The used filters (empty for SEARCH).
    pub filters: &'a [Filter],
    /// Counted as a hybrid search.
    pub hybrid: bool,
}

/// What a search reports besides its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    pub nr_results: u32,
    pub flags: u32,
    pub nr_candidates: u64,
    pub nr_examined: u64,
    pub index_generation: u64,
}

/// `dim` against the mount's: `E2BIG` above `VEXFS_MAX_DIM`, else `EINVAL` if different.
pub fn check_dim(dim: u32, mount_dim: u32) -> Result<(), ErrCode> {
    if dim > VEXFS_MAX_DIM {
        return Err(ErrCode::TooBig);
    }
    if dim != mount_dim {
        return Err(ErrCode::Inval);
    }
    Ok(())
}

/// The common search checks, in the C module's order: dim, `k > VEXFS_MAX_K` (`E2BIG`),
/// `k == 0`, unknown metric or flag (`EINVAL`).
pub fn check_search(
    dim: u32,
    k: u32,
    metric: u32,
    flags: u32,
    mount_dim: u32,
) -> Result<Metric, ErrCode> {
    check_dim(dim, mount_dim)?;
    if k > VEXFS_MAX_K {
        return Err(ErrCode::TooBig);
    }
    match Metric::from_raw(metric) {
        Some(m) if k != 0 && flags & !VEXFS_SEARCH_F_ALL == 0 => Ok(m),
        _ => Err(ErrCode::Inval),
    }
}

/// Every component within `VEXFS_COMPONENT_MAX` (`EINVAL` otherwise).
pub fn check_components(v: &[i32]) -> Result<(), ErrCode> {
    if v.iter().all(|&c| component_ok(c)) {
        Ok(())
    } else {
        Err(ErrCode::Inval)
    }
}

/// ADD_VECTOR's checks before the vector is copied: flags and reserved zero, dim, tag.
/// Returns the tag's length.
pub fn check_add(req: &VectorRequest, mount_dim: u32) -> Result<usize, ErrCode> {
    check_get(req)?;
    check_dim(req.dim, mount_dim)?;
    filter::check_tag(&req.tag)
}

/// GET_VECTOR's checks: flags and reserved zero.
pub fn check_get(req: &VectorRequest) -> Result<(), ErrCode> {
    if req.flags != 0 || req.reserved != [0; 2] {
        return Err(ErrCode::Inval);
    }
    Ok(())
}

/// MANAGE_INDEX's checks: flags and reserved zero, known op.
pub fn check_manage(req: &ManageIndexRequest) -> Result<(), ErrCode> {
    if req.flags != 0 || req.reserved != [0; 2] || req.op > VEXFS_INDEX_INFO {
        return Err(ErrCode::Inval);
    }
    Ok(())
}

/// The vectors of one mount (dimension `D`), its index and its counters.
pub struct Store<const D: usize, E, R> {
    entries: E,
    rows: R,
    indexed: bool,
    generation: u64,
    next_generation: u64,
    added: u64,
    removed: u64,
    searches: u64,
    hybrid_searches: u64,
    builds: u64,
}

impl<const D: usize, E: Slots<Entry<D>>, R: Slots<Row<D>>> Store<D, E, R> {
    /// The mount's dim.
    pub const DIM: u32 = D as u32;

    /// An empty store on the given (empty) storage.
    pub fn new(entries: E, rows: R) -> Self {
        Store {
            entries,
            rows,
            indexed: false,
            generation: 0,
            next_generation: 0,
            added: 0,
            removed: 0,
            searches: 0,
            hybrid_searches: 0,
            builds: 0,
        }
    }

    fn find(&self, key: Key) -> Result<usize, usize> {
        self.entries.items().binary_search_by(|e| e.key.cmp(&key))
    }

    /// The vector of `key`, if it has one.
    pub fn get(&self, key: Key) -> Option<&Entry<D>> {
        self.find(key).ok().map(|i| &self.entries.items()[i])
    }

    /// Attaches or replaces `key`'s vector (checked `data`, `D` components) with the
    /// file's current `name` and `tag` (a checked tag field). `ENOMEM`: nothing changed.
    pub fn add(
        &mut self,
        key: Key,
        name: &[u8],
        tag: &[u8; VEXFS_TAG_LEN],
        data: &[i32],
    ) -> Result<(), ErrCode> {
        if data.len() != D {
            return Err(ErrCode::Inval);
        }
        check_components(data)?;
        let len = name.len().min(NAME_MAX);
        let mut entry = Entry {
            key,
            data: [0; D],
            name: [0; NAME_MAX],
            name_len: len as u16,
            tag: *tag,
        };
        entry.data.copy_from_slice(data);
        entry.name[..len].copy_from_slice(&name[..len]);
        match self.find(key) {
            Ok(i) => self.entries.items_mut()[i] = entry,
            Err(i) => self.entries.try_insert(i, entry)?,
        }
        self.added += 1;
        self.index_upsert(Row {
            key,
            data: entry.data,
        });
        Ok(())
    }

    /// Detaches `key`'s vector (`ENODATA` if none).
    pub fn del(&mut self, key: Key) -> Result<(), ErrCode> {
        let i = self.find(key).map_err(|_| ErrCode::NoData)?;
        self.entries.remove_at(i);
        self.removed += 1;
        if let Ok(r) = self.find_row(key) {
            self.rows.remove_at(r);
        }
        Ok(())
    }

    fn find_row(&self, key: Key) -> Result<usize, usize> {
        if !self.indexed {
            return Err(0);
        }
        self.rows.items().binary_search_by(|r| r.key.cmp(&key))
    }

    /// Keeps the index a mirror of the vectors; without memory it is dropped (searches
    /// then scan), as the C module does.
    fn index_upsert(&mut self, row: Row<D>) {
        match self.find_row(row.key) {
            Ok(r) => self.rows.items_mut()[r] = row,
            Err(_) if !self.indexed => {}
            Err(r) => {
                if self.rows.try_insert(r, row).is_err() {
                    self.drop_index();
                }
            }
        }
    }

    fn drop_index(&mut self) {
        self.rows.clear_all();
        self.indexed = false;
        self.generation = 0;
    }

    /// (Re)builds the index from scratch: `ENOMEM` leaves the previous state.
    fn build_index(&mut self) -> Result<(), ErrCode> {
        let want = self.entries.items().len();
        self.rows
            .try_reserve_more(want.saturating_sub(self.rows.items().len()))?;
        self.rows.clear_all();
        for (i, e) in self.entries.items().iter().enumerate() {
            if let Err(err) = self.rows.try_insert(
                i,
                Row {
                    key: e.key,
                    data: e.data,
                },
            ) {
                self.drop_index();
                return Err(err);
            }
        }
        self.next_generation += 1;
        self.generation = self.next_generation;
        self.indexed = true;
        self.builds += 1;
        Ok(())
    }

    /// MANAGE_INDEX on a checked request ([`check_manage`]): the response always
    /// describes the state after the op, also when the op fails.
    pub fn manage(&mut self, op: u32) -> (ManageIndexResponse, Result<(), ErrCode>) {
        let res = match op {
            VEXFS_INDEX_CREATE if self.indexed => Err(ErrCode::Exist),
            VEXFS_INDEX_CREATE => self.build_index(),
            VEXFS_INDEX_DROP if self.indexed => {
                self.drop_index();
                Ok(())
            }
            VEXFS_INDEX_REBUILD if self.indexed => self.build_index(),
            VEXFS_INDEX_DROP | VEXFS_INDEX_REBUILD => Err(ErrCode::NoEnt),
            _ => Ok(()),
        };
        let mut resp = ManageIndexResponse::zeroed();
        resp.dim = Self::DIM;
        if self.indexed {
            resp.present = 1;
            resp.nr_entries = self.rows.items().len() as u64;
            resp.generation = self.generation;
            resp.bytes = self.index_bytes();
        }
        (resp, res)
    }

    /// Memory the index holds (bookkeeping plus its rows' capacity), 0 without one.
    pub fn index_bytes(&self) -> u64 {
        if !self.indexed {
            return 0;
        }
        let fixed = 4 * core::mem::size_of::<u64>();
        (fixed + self.rows.slots() * core::mem::size_of::<Row<D>>()) as u64
    }

    /// Runs a checked query: `hits.len()` is k, `out` has room for k results. Results
    /// are written to `out[..nr_results]`, names truncated to `VEXFS_NAME_LEN - 1`.
    pub fn search(
        &mut self,
        q: &Query<'_>,
        hits: &mut [Hit<Key>],
        out: &mut [SearchResult],
    ) -> Outcome {
        let mut o = Outcome::default();
        let mut top = TopK::new(q.metric, hits);
        if self.indexed && q.flags & VEXFS_SEARCH_F_NO_INDEX == 0 {
            for row in self.rows.items() {
                o.nr_examined += 1;
                if !q.filters.is_empty() && !self.entry_matches(row.key, q.filters) {
                    continue;
                }
                o.nr_candidates += 1;
                top.push(Hit {
                    ino: row.key.ino,
                    score: score(q.metric, q.query, &row.data),
                    item: row.key,
                });
            }
            o.flags = VEXFS_SEARCH_RF_INDEX;
            o.index_generation = self.generation;
        } else {
            for e in self.entries.items() {
                o.nr_examined += 1;
                if !filter::matches(q.filters, e.name(), e.tag()) {
                    continue;
                }
                o.nr_candidates += 1;
                top.push(Hit {
                    ino: e.key.ino,
                    score: score(q.metric, q.query, &e.data),
                    item: e.key,
                });
            }
        }
        let found = top.finish();
        for (slot, h) in out.iter_mut().zip(found) {
            *slot = SearchResult::zeroed();
            slot.ino = h.ino;
            slot.score = h.score;
            if let Some(e) = self.get(h.item) {
                let n = e.name().len().min(VEXFS_NAME_LEN - 1);
                slot.name[..n].copy_from_slice(&e.name()[..n]);
            }
        }
        o.nr_results = found.len() as u32;
        if q.hybrid {
            self.hybrid_searches += 1;
        } else {
            self.searches += 1;
        }
        o
    }

    fn entry_matches(&self, key: Key, filters: &[Filter]) -> bool {
        self.get(key)
            .is_some_and(|e| filter::matches(filters, e.name(), e.tag()))
    }

    /// GET_STATS.
    pub fn stats(&self) -> Stats {
        let mut st = Stats::zeroed();
        st.abi_version = VEXFS_ABI_VERSION;
        st.dim = Self::DIM;
        st.nr_vectors = self.entries.items().len() as u64;
        st.vectors_added = self.added;
        st.vectors_removed = self.removed;
        st.searches = self.searches;
        st.hybrid_searches = self.hybrid_searches;
        st.index_builds = self.builds;
        if self.indexed {
            st.index_present = 1;
            st.index_entries = self.rows.items().len() as u64;
            st.index_generation = self.generation;
        }
        st
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

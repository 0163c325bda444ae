//! `#[repr(C)]` mirror of `kernel/include/uapi/vexfs.h` (VEXFS_ABI_VERSION 1).
//!
//! Core-only. Field names are the C names; type names are CamelCase without
//! the `vexfs_` prefix. Every struct is 8-byte aligned with explicit padding,
//! exactly as in the header. Sizes/offsets are checked at compile time below
//! and against the C compiler by `tests/abi_c.rs` (via `kernel/tests/abi_dump.c`).
//!
//! Ioctl numbers are computed with Linux's generic `_IOC` encoding
//! (`dir << 30 | size << 16 | type << 8 | nr`) from `size_of::<T>()`.
#![allow(clippy::manual_non_exhaustive)]

use core::mem::size_of;

// ---------------------------------------------------------------- constants

pub const VEXFS_IOC_MAGIC: u8 = b'V';
pub const VEXFS_ABI_VERSION: u32 = 1;
/// statfs `f_type` ("VEXF").
pub const VEXFS_SUPER_MAGIC: u32 = 0x5645_5846;

pub const VEXFS_FIXED_SHIFT: u32 = 16;
pub const VEXFS_FIXED_ONE: i32 = 65536;
/// `|component| <= VEXFS_COMPONENT_MAX` (1 << 24 == 256.0).
pub const VEXFS_COMPONENT_MAX: i32 = 16_777_216;

pub const VEXFS_DEFAULT_DIM: u32 = 4;
pub const VEXFS_MAX_DIM: u32 = 4096;
pub const VEXFS_MAX_K: u32 = 256;
pub const VEXFS_NAME_LEN: usize = 64;
pub const VEXFS_TAG_LEN: usize = 64;
pub const VEXFS_FILTER_MAX: usize = 4;
pub const VEXFS_FILTER_VALUE_LEN: usize = 64;

pub const VEXFS_METRIC_L2: u32 = 0;
pub const VEXFS_METRIC_DOT: u32 = 1;

pub const VEXFS_SEARCH_F_NO_INDEX: u32 = 1;
pub const VEXFS_SEARCH_F_ALL: u32 = 1;
pub const VEXFS_SEARCH_RF_INDEX: u32 = 1;

pub const VEXFS_INDEX_CREATE: u32 = 0;
pub const VEXFS_INDEX_DROP: u32 = 1;
pub const VEXFS_INDEX_REBUILD: u32 = 2;
pub const VEXFS_INDEX_INFO: u32 = 3;

pub const VEXFS_FILTER_NONE: u32 = 0;
pub const VEXFS_FILTER_NAME_PREFIX: u32 = 1;
pub const VEXFS_FILTER_NAME_SUBSTR: u32 = 2;
pub const VEXFS_FILTER_TAG_EQ: u32 = 3;

// ---------------------------------------------------------------- structs

/// `struct vexfs_vector_request` (ADD_VECTOR in, GET_VECTOR in/out).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorRequest {
    pub dim: u32,
    pub flags: u32,
    /// user pointer to `i32[dim]`
    pub data: u64,
    pub tag: [u8; VEXFS_TAG_LEN],
    pub reserved: [u64; 2],
}

/// `struct vexfs_search_result`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchResult {
    pub ino: u64,
    pub score: i64,
    pub name: [u8; VEXFS_NAME_LEN],
}

/// `struct vexfs_search_request`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchRequest {
    pub dim: u32,
    pub k: u32,
    pub metric: u32,
    pub flags: u32,
    /// user pointer to `i32[dim]`
    pub query: u64,
    /// user pointer to `SearchResult[k]`
    pub results: u64,
    pub reserved: [u64; 2],
}

/// `struct vexfs_search_response`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchResponse {
    pub nr_results: u32,
    pub flags: u32,
    pub nr_candidates: u64,
    pub index_generation: u64,
    pub reserved: [u64; 2],
}

/// `struct vexfs_search` (VEXFS_IOC_SEARCH argument).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Search {
    pub req: SearchRequest,
    pub resp: SearchResponse,
}

/// `struct vexfs_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    pub kind: u32,
    pub len: u32,
    pub reserved: u64,
    pub value: [u8; VEXFS_FILTER_VALUE_LEN],
}

/// `struct vexfs_hybrid_search_request`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HybridSearchRequest {
    pub dim: u32,
    pub k: u32,
    pub metric: u32,
    pub flags: u32,
    pub query: u64,
    pub results: u64,
    pub nr_filters: u32,
    pub __pad: u32,
    pub filters: [Filter; VEXFS_FILTER_MAX],
    pub reserved: [u64; 2],
}

/// `struct vexfs_hybrid_search_response`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HybridSearchResponse {
    pub nr_results: u32,
    pub flags: u32,
    pub nr_candidates: u64,
    pub nr_examined: u64,
    pub index_generation: u64,
    pub reserved: [u64; 2],
}

/// `struct vexfs_hybrid_search` (VEXFS_IOC_HYBRID_SEARCH argument).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HybridSearch {
    pub req: HybridSearchRequest,
    pub resp: HybridSearchResponse,
}

/// `struct vexfs_manage_index_request`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManageIndexRequest {
    pub op: u32,
    pub flags: u32,
    pub reserved: [u64; 2],
}

/// `struct vexfs_manage_index_response`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManageIndexResponse {
    pub present: u32,
    pub dim: u32,
    pub nr_entries: u64,
    pub generation: u64,
    pub bytes: u64,
    pub reserved: [u64; 2],
}

/// `struct vexfs_manage_index` (VEXFS_IOC_MANAGE_INDEX argument).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManageIndex {
    pub req: ManageIndexRequest,
    pub resp: ManageIndexResponse,
}

/// `struct vexfs_stats` (VEXFS_IOC_GET_STATS, all OUT).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub abi_version: u32,
    pub dim: u32,
    pub nr_vectors: u64,
    pub vectors_added: u64,
    pub vectors_removed: u64,
    pub searches: u64,
    pub hybrid_searches: u64,
    pub index_builds: u64,
    pub index_present: u32,
    pub __pad: u32,
    pub index_entries: u64,
    pub index_generation: u64,
    pub reserved: [u64; 4],
}

macro_rules! impl_zeroed {
    ($($t:ty),*) => {$(
        impl $t {
            /// All-zero value (every reserved/pad field zero, as the kernel requires).
            pub const fn zeroed() -> Self {
                // SAFETY: plain-old-data struct of integers and integer arrays;
                // all-zero bytes are a valid value.
                unsafe { core::mem::zeroed() }
            }
        }
        impl Default for $t {
            fn default() -> Self {
                Self::zeroed()
            }
        }
    )*};
}
impl_zeroed!(
    VectorRequest,
    SearchResult,
    SearchRequest,
    SearchResponse,
    Search,
    Filter,
    HybridSearchRequest,
    HybridSearchResponse,
    HybridSearch,
    ManageIndexRequest,
    ManageIndexResponse,
    ManageIndex,
    Stats
);

// ---------------------------------------------------------------- _IOC encoding

pub const IOC_NRBITS: u32 = 8;
pub const IOC_TYPEBITS: u32 = 8;
pub const IOC_SIZEBITS: u32 = 14;
pub const IOC_DIRBITS: u32 = 2;
pub const IOC_NRSHIFT: u32 = 0;
pub const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
pub const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
pub const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
pub const IOC_NONE: u32 = 0;
pub const IOC_WRITE: u32 = 1;
pub const IOC_READ: u32 = 2;

/// Linux `_IOC(dir, type, nr, size)`. Fails to compile (const panic) if
/// `size` does not fit the 14-bit size field.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    assert!(
        size < (1 << IOC_SIZEBITS),
        "ioctl argument too large for _IOC"
    );
    (dir << IOC_DIRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
        | ((ty as u32) << IOC_TYPESHIFT)
        | ((nr as u32) << IOC_NRSHIFT)
}
/// `_IO(type, nr)`
pub const fn io(ty: u8, nr: u8) -> u32 {
    ioc(IOC_NONE, ty, nr, 0)
}
/// `_IOR(type, nr, T)`
pub const fn ior<T>(ty: u8, nr: u8) -> u32 {
    ioc(IOC_READ, ty, nr, size_of::<T>())
}
/// `_IOW(type, nr, T)`
pub const fn iow<T>(ty: u8, nr: u8) -> u32 {
    ioc(IOC_WRITE, ty, nr, size_of::<T>())
}
/// `_IOWR(type, nr, T)`
pub const fn iowr<T>(ty: u8, nr: u8) -> u32 {
    ioc(IOC_READ | IOC_WRITE, ty, nr, size_of::<T>())
}

pub const VEXFS_IOC_ADD_VECTOR: u32 = iow::<VectorRequest>(VEXFS_IOC_MAGIC, 1);
pub const VEXFS_IOC_GET_VECTOR: u32 = iowr::<VectorRequest>(VEXFS_IOC_MAGIC, 2);
pub const VEXFS_IOC_SEARCH: u32 = iowr::<Search>(VEXFS_IOC_MAGIC, 3);
pub const VEXFS_IOC_HYBRID_SEARCH: u32 = iowr::<HybridSearch>(VEXFS_IOC_MAGIC, 4);
pub const VEXFS_IOC_MANAGE_INDEX: u32 = iowr::<ManageIndex>(VEXFS_IOC_MAGIC, 5);
pub const VEXFS_IOC_GET_STATS: u32 = ior::<Stats>(VEXFS_IOC_MAGIC, 6);
pub const VEXFS_IOC_DEL_VECTOR: u32 = io(VEXFS_IOC_MAGIC, 7);

// ------------------------------------------- compile-time layout assertions
// (sizes derived by hand from the header; alignment 8, no implicit holes)
const _: () = {
    use core::mem::{align_of, offset_of};
    assert!(size_of::<VectorRequest>() == 96 && align_of::<VectorRequest>() == 8);
    assert!(offset_of!(VectorRequest, tag) == 16 && offset_of!(VectorRequest, reserved) == 80);
    assert!(size_of::<SearchResult>() == 80);
    assert!(size_of::<SearchRequest>() == 48);
    assert!(size_of::<SearchResponse>() == 40);
    assert!(size_of::<Search>() == 88);
    assert!(size_of::<Filter>() == 80);
    assert!(offset_of!(HybridSearchRequest, filters) == 40);
    assert!(size_of::<HybridSearchRequest>() == 40 + 4 * 80 + 16);
    assert!(size_of::<HybridSearchResponse>() == 48);
    assert!(size_of::<HybridSearch>() == 376 + 48);
    assert!(size_of::<ManageIndexRequest>() == 24);
    assert!(size_of::<ManageIndexResponse>() == 48);
    assert!(size_of::<ManageIndex>() == 72);
    assert!(size_of::<Stats>() == 112);
};

// ---------------------------------------------------------------- helpers

/// Bytes of a NUL-terminated, NUL-padded C string field (up to the first NUL).
pub fn c_str_bytes(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// Copies `src` into a fixed NUL-padded field. Returns `false` (and leaves
/// `dst` untouched) if `src` does not fit with room for the NUL terminator
/// or contains a NUL byte.
pub fn fill_c_str(dst: &mut [u8], src: &[u8]) -> bool {
    if src.len() >= dst.len() || src.contains(&0) {
        return false;
    }
    dst.fill(0);
    dst[..src.len()].copy_from_slice(src);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioc_formula_by_hand() {
        // dir<<30 | size<<16 | 'V'(0x56)<<8 | nr
        assert_eq!(
            VEXFS_IOC_ADD_VECTOR,
            (1 << 30) | (96 << 16) | (0x56 << 8) | 1
        );
        assert_eq!(VEXFS_IOC_ADD_VECTOR, 0x4060_5601);
        assert_eq!(VEXFS_IOC_GET_VECTOR, 0xc060_5602);
        assert_eq!(VEXFS_IOC_SEARCH, (3 << 30) | (88 << 16) | 0x5603);
        assert_eq!(VEXFS_IOC_SEARCH, 0xc058_5603);
        assert_eq!(VEXFS_IOC_HYBRID_SEARCH, (3u32 << 30) | (424 << 16) | 0x5604);
        assert_eq!(VEXFS_IOC_HYBRID_SEARCH, 0xc1a8_5604);
        assert_eq!(VEXFS_IOC_MANAGE_INDEX, 0xc048_5605);
        assert_eq!(VEXFS_IOC_GET_STATS, (2 << 30) | (112 << 16) | 0x5606);
        assert_eq!(VEXFS_IOC_GET_STATS, 0x8070_5606);
        assert_eq!(VEXFS_IOC_DEL_VECTOR, 0x0000_5607);
    }

    #[test]
    fn ioc_fields_decode() {
        let n = VEXFS_IOC_HYBRID_SEARCH;
        assert_eq!(n >> IOC_DIRSHIFT, IOC_READ | IOC_WRITE);
        assert_eq!(
            (n >> IOC_SIZESHIFT) & 0x3fff,
            size_of::<HybridSearch>() as u32
        );
        assert_eq!((n >> IOC_TYPESHIFT) & 0xff, b'V' as u32);
        assert_eq!(n & 0xff, 4);
    }

    #[test]
    fn struct_sizes() {
        assert_eq!(size_of::<VectorRequest>(), 96);
        assert_eq!(size_of::<SearchResult>(), 80);
        assert_eq!(size_of::<Search>(), 88);
        assert_eq!(size_of::<HybridSearch>(), 424);
        assert_eq!(size_of::<ManageIndex>(), 72);
        assert_eq!(size_of::<Stats>(), 112);
        assert_eq!(core::mem::align_of::<HybridSearch>(), 8);
    }

    #[test]
    fn c_strings() {
        let mut f = [0xffu8; 8];
        assert!(fill_c_str(&mut f, b"abc"));
        assert_eq!(f, *b"abc\0\0\0\0\0");
        assert_eq!(c_str_bytes(&f), b"abc");
        assert!(!fill_c_str(&mut f, b"12345678"));
        assert!(fill_c_str(&mut f, b"1234567"));
        assert!(!fill_c_str(&mut f, b"a\0b"));
        assert_eq!(c_str_bytes(b"full"), b"full");
    }
}

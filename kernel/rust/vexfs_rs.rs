// SPDX-License-Identifier: GPL-2.0

//! VexFS in Rust: a misc device (`/dev/vexfs-rs`) answering the VexFS search ioctls.
//!
//! The device serves a fixed table of dim-4 vectors compiled into the module
//! ([`VECTORS`], inode numbers 1..=6 in table order) and implements two ioctls of
//! `kernel/include/uapi/vexfs.h` with exactly the C module's semantics and structs:
//!
//! * `VEXFS_IOC_SEARCH`: exact k-NN, scores `(sum (q_i - v_i)^2) >> 16` (L2, ascending) or
//!   `(sum q_i * v_i) >> 16` (DOT, descending), ties by ascending inode number; the same
//!   argument checks and errno values (`E2BIG` dim > 4096 or k > 256, `EINVAL` dim != 4,
//!   k == 0, unknown metric/flag, nonzero reserved, component out of range, `EFAULT`).
//! * `VEXFS_IOC_GET_STATS`: `abi_version` 1, `dim` 4, `nr_vectors` 6, `searches` = successful
//!   SEARCH calls since the module was loaded; every other counter is 0.
//!
//! Every other command fails with `ENOTTY`, as an unknown command does on a VexFS mount.
//! Written against the Rust abstractions of Linux 7.3 (`kernel::miscdevice`,
//! `kernel::uaccess`); the structs are (de)serialised field by field, little endian
//! (x86_64), so no layout is assumed beyond the header's.

use kernel::{
    fs::File,
    ioctl::{_IOR, _IOWR},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
    uaccess::UserSlice,
};

module! {
    type: VexfsRsModule,
    name: "vexfs_rs",
    authors: ["VexFS developers"],
    description: "VexFS search ioctls on a misc device, in Rust",
    license: "GPL",
}

// ------------------------------------------------------------------ uapi (vexfs.h)

const VEXFS_IOC_MAGIC: u32 = b'V' as u32;
const VEXFS_ABI_VERSION: u32 = 1;
const VEXFS_FIXED_SHIFT: u32 = 16;
const VEXFS_COMPONENT_MAX: i32 = 1 << 24;
const VEXFS_MAX_DIM: u32 = 4096;
const VEXFS_MAX_K: u32 = 256;
const VEXFS_NAME_LEN: usize = 64;
const VEXFS_METRIC_L2: u32 = 0;
const VEXFS_METRIC_DOT: u32 = 1;
const VEXFS_SEARCH_F_ALL: u32 = 1;

/// `struct vexfs_search_request` (48 bytes) + `struct vexfs_search_response` (40 bytes).
const SEARCH_REQ_SIZE: usize = 48;
const SEARCH_RESP_SIZE: usize = 40;
const SEARCH_SIZE: usize = SEARCH_REQ_SIZE + SEARCH_RESP_SIZE;
/// `struct vexfs_search_result`: ino, score, name[64].
const RESULT_SIZE: usize = 16 + VEXFS_NAME_LEN;
/// `struct vexfs_stats`.
const STATS_SIZE: usize = 112;

const VEXFS_IOC_SEARCH: u32 = _IOWR::<[u8; SEARCH_SIZE]>(VEXFS_IOC_MAGIC, 3);
const VEXFS_IOC_GET_STATS: u32 = _IOR::<[u8; STATS_SIZE]>(VEXFS_IOC_MAGIC, 6);

// The numbers of kernel/README.md (and of the C module and vexctl).
const _: () = assert!(VEXFS_IOC_SEARCH == 0xc058_5603);
const _: () = assert!(VEXFS_IOC_GET_STATS == 0x8070_5606);

// ------------------------------------------------------------------ the table

/// Q16.16 of a value given in 1/4 units (the table only needs quarters).
const fn q(quarters: i32) -> i32 {
    quarters * (1 << VEXFS_FIXED_SHIFT) / 4
}

/// Dimension of every vector of the table (the "mount dim" of the device).
const DIM: usize = 4;

/// The device's vectors: name and components. Inode number = position + 1.
/// kernel/rust/tests/run-ktap.sh hands the same table to `vexctl expect-search`.
const VECTORS: [(&str, [i32; DIM]); 6] = [
    ("a1", [q(4), q(0), q(0), q(0)]),  // 1, 0, 0, 0
    ("b1", [q(0), q(4), q(0), q(0)]),  // 0, 1, 0, 0
    ("a2", [q(4), q(4), q(0), q(0)]),  // 1, 1, 0, 0
    ("c1", [q(2), q(-2), q(8), q(1)]), // 0.5, -0.5, 2, 0.25
    ("d1", [q(-4), q(0), q(0), q(4)]), // -1, 0, 0, 1
    ("e1", [q(0), q(4), q(0), q(0)]),  // 0, 1, 0, 0 (same as b1: ties go by inode)
];

/// Successful SEARCH calls since load (GET_STATS `searches`).
static SEARCHES: Atomic<i64> = Atomic::new(0);

// ------------------------------------------------------------------ helpers

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(v)
}

fn put(b: &mut [u8], off: usize, bytes: &[u8]) {
    b[off..off + bytes.len()].copy_from_slice(bytes);
}

/// Score of `v` for query `q` (i64 accumulator, one arithmetic shift at the end).
fn score(metric: u32, q: &[i32; DIM], v: &[i32; DIM]) -> i64 {
    let mut acc: i64 = 0;
    for i in 0..DIM {
        let (a, b) = (q[i] as i64, v[i] as i64);
        acc += if metric == VEXFS_METRIC_L2 { (a - b) * (a - b) } else { a * b };
    }
    acc >> VEXFS_FIXED_SHIFT
}

/// Whether hit `(sa, ia)` ranks before `(sb, ib)`.
fn before(metric: u32, sa: i64, ia: u64, sb: i64, ib: u64) -> bool {
    if sa != sb {
        if metric == VEXFS_METRIC_L2 { sa < sb } else { sa > sb }
    } else {
        ia < ib
    }
}

// ------------------------------------------------------------------ ioctls

fn get_stats(arg: usize) -> Result<isize> {
    let mut st = [0u8; STATS_SIZE];
    put(&mut st, 0, &VEXFS_ABI_VERSION.to_le_bytes());
    put(&mut st, 4, &(DIM as u32).to_le_bytes());
    put(&mut st, 8, &(VECTORS.len() as u64).to_le_bytes()); // nr_vectors
    put(&mut st, 32, &(SEARCHES.load(Relaxed) as u64).to_le_bytes()); // searches
    UserSlice::new(UserPtr::from_addr(arg), STATS_SIZE).writer().write_slice(&st)?;
    Ok(0)
}

fn search(arg: usize) -> Result<isize> {
    let mut req = [0u8; SEARCH_REQ_SIZE];
    UserSlice::new(UserPtr::from_addr(arg), SEARCH_REQ_SIZE).reader().read_slice(&mut req)?;
    let (dim, k, metric, flags) = (u32_at(&req, 0), u32_at(&req, 4), u32_at(&req, 8),
                                   u32_at(&req, 12));
    let (query_ptr, results_ptr) = (u64_at(&req, 16), u64_at(&req, 24));
    if req[32..48].iter().any(|&b| b != 0) {
        return Err(EINVAL); // reserved
    }
    // Same order of checks as the C module (vexfs_run_search).
    if dim > VEXFS_MAX_DIM {
        return Err(E2BIG);
    }
    if dim as usize != DIM {
        return Err(EINVAL);
    }
    if k > VEXFS_MAX_K {
        return Err(E2BIG);
    }
    if k == 0 || metric > VEXFS_METRIC_DOT || flags & !VEXFS_SEARCH_F_ALL != 0 {
        return Err(EINVAL);
    }
    let mut raw = [0u8; DIM * 4];
    UserSlice::new(UserPtr::from_addr(query_ptr as usize), raw.len())
        .reader()
        .read_slice(&mut raw)?;
    let mut query = [0i32; DIM];
    for (i, c) in query.iter_mut().enumerate() {
        *c = u32_at(&raw, 4 * i) as i32;
        if *c < -VEXFS_COMPONENT_MAX || *c > VEXFS_COMPONENT_MAX {
            return Err(EINVAL);
        }
    }

    // Rank the whole table (insertion sort of (score, ino, index)), keep the first k.
    let mut ranked = [(0i64, 0u64, 0usize); VECTORS.len()];
    for (n, (_, v)) in VECTORS.iter().enumerate() {
        let hit = (score(metric, &query, v), n as u64 + 1, n);
        let mut i = n;
        while i > 0 && before(metric, hit.0, hit.1, ranked[i - 1].0, ranked[i - 1].1) {
            ranked[i] = ranked[i - 1];
            i -= 1;
        }
        ranked[i] = hit;
    }
    let nr = (k as usize).min(VECTORS.len());
    let mut out = [0u8; RESULT_SIZE * VECTORS.len()];
    for (i, &(sc, ino, n)) in ranked[..nr].iter().enumerate() {
        let slot = &mut out[i * RESULT_SIZE..(i + 1) * RESULT_SIZE];
        put(slot, 0, &ino.to_le_bytes());
        put(slot, 8, &sc.to_le_bytes());
        let name = VECTORS[n].0.as_bytes();
        put(slot, 16, &name[..name.len().min(VEXFS_NAME_LEN - 1)]);
    }
    UserSlice::new(UserPtr::from_addr(results_ptr as usize), nr * RESULT_SIZE)
        .writer()
        .write_slice(&out[..nr * RESULT_SIZE])?;

    let mut resp = [0u8; SEARCH_RESP_SIZE];
    put(&mut resp, 0, &(nr as u32).to_le_bytes()); // nr_results; flags 0: no index
    put(&mut resp, 8, &(VECTORS.len() as u64).to_le_bytes()); // nr_candidates
    UserSlice::new(UserPtr::from_addr(arg + SEARCH_REQ_SIZE), SEARCH_RESP_SIZE)
        .writer()
        .write_slice(&resp)?;
    SEARCHES.fetch_add(1, Relaxed);
    Ok(0)
}

// ------------------------------------------------------------------ device and module

#[pin_data]
struct VexfsRsModule {
    #[pin]
    _miscdev: MiscDeviceRegistration<VexfsRsFile>,
}

impl kernel::InPlaceModule for VexfsRsModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pr_info!("vexfs_rs: /dev/vexfs-rs with {} vectors of dim {}\n", VECTORS.len(), DIM);
        let options = MiscDeviceOptions { name: c"vexfs-rs" };
        try_pin_init!(Self {
            _miscdev <- MiscDeviceRegistration::register(options),
        })
    }
}

/// Per open file: nothing to keep (the table and the counter are global); not a
/// zero-sized type, so the box handed to the file is a real allocation.
struct VexfsRsFile {
    _unused: u64,
}

#[vtable]
impl MiscDevice for VexfsRsFile {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        Ok(KBox::new(VexfsRsFile { _unused: 0 }, GFP_KERNEL)?)
    }

    fn ioctl(_me: &VexfsRsFile, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            VEXFS_IOC_SEARCH => search(arg),
            VEXFS_IOC_GET_STATS => get_stats(arg),
            _ => Err(ENOTTY),
        }
    }
}

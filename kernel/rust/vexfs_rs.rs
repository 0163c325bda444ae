// SPDX-License-Identifier: GPL-2.0

//! VexFS in Rust: a misc device (`/dev/vexfs-rs`) answering every ioctl of
//! `kernel/include/uapi/vexfs.h` (ADD/GET/DEL_VECTOR, SEARCH, HYBRID_SEARCH, MANAGE_INDEX,
//! GET_STATS) with real storage.
//!
//! What a file is here: the device has no filesystem of its own, so a "file" is a device
//! node of it (`mknod NAME c MAJOR MINOR`, on any filesystem). A vector belongs to the
//! node's inode (its inode number and its filesystem's device) and remembers the name the
//! node was opened through when ADD_VECTOR was called; hard links share it. What the C
//! module does through its filesystem and this device cannot see (rename, the last unlink
//! freeing the vector, directories, `mount -o dim=`) is not implemented: the shared KTAP
//! suite says SKIP with that reason. The dim is fixed at `VEXFS_DEFAULT_DIM` (4).
//!
//! The semantics (argument checks in the C module's order, errno values, result order,
//! index generations, counters) are not written here: they are the crate's no_std core,
//! compiled from `userspace/src/{abi,errcode,filter,vector,store}.rs` (the files
//! `cargo build --no-default-features --features kernel` builds and unit-tests). The structs
//! are `abi.rs`'s `#[repr(C)]` mirror of the header, which `abi-check` compares with the C
//! compiler's layout field by field. This file only copies to and from user memory, names
//! the file, locks, and maps errno values.

use core::mem::size_of;
use kernel::{
    bindings,
    fs::{file::flags, File},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

// The crate's core, from the very files `crate-build/kernel` compiles (no Cargo in kbuild).
#[allow(dead_code, missing_docs, unreachable_pub, unexpected_cfgs, clippy::all)]
#[path = "../../userspace/src/abi.rs"]
mod abi;
#[allow(dead_code, missing_docs, unreachable_pub, unexpected_cfgs, clippy::all)]
#[path = "../../userspace/src/errcode.rs"]
mod errcode;
#[allow(dead_code, missing_docs, unreachable_pub, unexpected_cfgs, clippy::all)]
#[path = "../../userspace/src/filter.rs"]
mod filter;
#[allow(dead_code, missing_docs, unreachable_pub, unexpected_cfgs, clippy::all)]
#[path = "../../userspace/src/store.rs"]
mod store;
#[allow(dead_code, missing_docs, unreachable_pub, unexpected_cfgs, clippy::all)]
#[path = "../../userspace/src/vector.rs"]
mod vector;

use errcode::ErrCode;
use store::{Entry, Key, Row, Slots, Store};

module! {
    type: VexfsRsModule,
    name: "vexfs_rs",
    authors: ["VexFS developers"],
    description: "VexFS vector ioctls on a misc device, in Rust, with the crate's core",
    license: "GPL",
}

/// The device's dim (a mount's default dim in the C module).
const DIM: usize = abi::VEXFS_DEFAULT_DIM as usize;

type Device = Store<DIM, KVVec<Entry<DIM>>, KVVec<Row<DIM>>>;

kernel::sync::global_lock! {
    // SAFETY: Initialized in the module initializer before the device is registered.
    unsafe(uninit) static STATE: Mutex<Option<Device>> = None;
}

// SAFETY: `#[repr(C)]` structs of integers and integer arrays without padding (the header
// pads explicitly; abi.rs asserts every size), so every byte pattern is a valid value and
// every byte is initialised.
macro_rules! plain_old_data {
    ($($t:ty),*) => {$(
        unsafe impl FromBytes for $t {}
        unsafe impl AsBytes for $t {}
    )*};
}
plain_old_data!(
    abi::VectorRequest,
    abi::SearchRequest,
    abi::SearchResult,
    abi::Search,
    abi::HybridSearchRequest,
    abi::HybridSearch,
    abi::ManageIndexRequest,
    abi::ManageIndex,
    abi::Stats
);

impl<T> Slots<T> for KVVec<T> {
    fn items(&self) -> &[T] {
        self.as_slice()
    }
    fn items_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
    fn try_reserve_more(&mut self, additional: usize) -> Result<(), ErrCode> {
        self.reserve(additional, GFP_KERNEL).map_err(|_| ErrCode::NoMem)
    }
    fn try_insert(&mut self, pos: usize, item: T) -> Result<(), ErrCode> {
        self.try_reserve_more(1)?;
        self.insert_within_capacity(pos, item).map_err(|_| ErrCode::NoMem)
    }
    fn remove_at(&mut self, pos: usize) {
        let _ = self.remove(pos);
    }
    fn clear_all(&mut self) {
        self.clear();
    }
    fn slots(&self) -> usize {
        self.capacity()
    }
}

fn err(code: ErrCode) -> Error {
    Error::from_errno(-code.errno())
}

/// Runs `f` on the device state (ENODEV while the module goes away).
fn with_state<R>(f: impl FnOnce(&mut Device) -> R) -> Result<R> {
    let mut guard = STATE.lock();
    guard.as_mut().map(f).ok_or(ENODEV)
}

fn user(addr: u64, len: usize) -> UserSlice {
    UserSlice::new(UserPtr::from_addr(addr as usize), len)
}

/// A `DIM`-component Q16.16 vector from user memory, range-checked.
fn read_vector(addr: u64) -> Result<[i32; DIM]> {
    let v: [i32; DIM] = user(addr, DIM * size_of::<i32>()).reader().read()?;
    store::check_components(&v).map_err(err)?;
    Ok(v)
}

/// The node a file was opened through: its key and its name (at most `store::NAME_MAX`
/// bytes are copied into `name`; returns the length).
fn node(file: &File, name: &mut [u8; store::NAME_MAX]) -> (Key, usize) {
    let raw = file.as_ptr();
    // SAFETY: `raw` is a valid, open `struct file` for the duration of the ioctl, so its
    // inode, superblock and dentry are alive; the name snapshot keeps the name stable
    // while it is copied and is released before returning.
    unsafe {
        let inode = (*raw).f_inode;
        let key = Key { ino: (*inode).i_ino as u64, dev: (*(*inode).i_sb).s_dev as u64 };
        let mut snap: bindings::name_snapshot = core::mem::zeroed();
        // `f_path` sits in an anonymous union of `struct file` (bindgen's `__bindgen_anon_1`).
        bindings::take_dentry_name_snapshot(&mut snap, (*raw).__bindgen_anon_1.f_path.dentry);
        let bytes = core::ffi::CStr::from_ptr(snap.name.name.cast()).to_bytes();
        let len = bytes.len().min(store::NAME_MAX);
        name[..len].copy_from_slice(&bytes[..len]);
        bindings::release_dentry_name_snapshot(&mut snap);
        (key, len)
    }
}

/// ADD_VECTOR and DEL_VECTOR change a file: it must be open for writing, as for write().
fn writable(file: &File) -> Result {
    if file.flags() & flags::O_ACCMODE == flags::O_RDONLY {
        return Err(EACCES);
    }
    Ok(())
}

fn add_vector(file: &File, arg: usize) -> Result<isize> {
    let req: abi::VectorRequest = user(arg as u64, size_of::<abi::VectorRequest>()).reader().read()?;
    store::check_add(&req, DIM as u32).map_err(err)?;
    writable(file)?;
    let data = read_vector(req.data)?;
    let mut name = [0u8; store::NAME_MAX];
    let (key, len) = node(file, &mut name);
    with_state(|s| s.add(key, &name[..len], &req.tag, &data))?.map_err(err)?;
    Ok(0)
}

fn get_vector(file: &File, arg: usize) -> Result<isize> {
    let (mut r, mut w) = user(arg as u64, size_of::<abi::VectorRequest>()).reader_writer();
    let mut req: abi::VectorRequest = r.read()?;
    store::check_get(&req).map_err(err)?;
    let mut name = [0u8; store::NAME_MAX];
    let (key, _) = node(file, &mut name);
    let found = with_state(|s| s.get(key).map(|e| (e.data, *e.tag_field())))?;
    let (data, tag) = found.ok_or(ENODATA)?;
    let capacity = req.dim;
    req.dim = DIM as u32;
    if (capacity as usize) < DIM {
        w.write(&req)?;
        return Err(E2BIG);
    }
    req.tag = tag;
    user(req.data, DIM * size_of::<i32>()).writer().write(&data)?;
    w.write(&req)?;
    Ok(0)
}

fn del_vector(file: &File) -> Result<isize> {
    writable(file)?;
    let mut name = [0u8; store::NAME_MAX];
    let (key, _) = node(file, &mut name);
    with_state(|s| s.del(key))?.map_err(err)?;
    Ok(0)
}

/// The search both SEARCH and HYBRID_SEARCH run; results are copied to `results`.
fn run_search(q: &store::Query<'_>, k: u32, results: u64) -> Result<store::Outcome> {
    let blank = vector::Hit { ino: 0, score: 0, item: Key { ino: 0, dev: 0 } };
    let mut hits = KVVec::from_elem(blank, k as usize, GFP_KERNEL)?;
    let mut out = KVVec::from_elem(abi::SearchResult::zeroed(), k as usize, GFP_KERNEL)?;
    let o = with_state(|s| s.search(q, &mut hits, &mut out))?;
    let n = o.nr_results as usize;
    let mut w = user(results, n * size_of::<abi::SearchResult>()).writer();
    for r in &out[..n] {
        w.write(r)?;
    }
    Ok(o)
}

fn search(arg: usize) -> Result<isize> {
    let (mut r, mut w) = user(arg as u64, size_of::<abi::Search>()).reader_writer();
    let req: abi::SearchRequest = r.read()?;
    if req.reserved != [0; 2] {
        return Err(EINVAL);
    }
    let metric = store::check_search(req.dim, req.k, req.metric, req.flags, DIM as u32).map_err(err)?;
    let query = read_vector(req.query)?;
    let q = store::Query { metric, flags: req.flags, query: &query, filters: &[], hybrid: false };
    let o = run_search(&q, req.k, req.results)?;
    let mut s = abi::Search::zeroed();
    s.req = req;
    s.resp.nr_results = o.nr_results;
    s.resp.flags = o.flags;
    s.resp.nr_candidates = o.nr_candidates;
    s.resp.index_generation = o.index_generation;
    w.write(&s)?;
    Ok(0)
}

fn hybrid_search(arg: usize) -> Result<isize> {
    let (mut r, mut w) = user(arg as u64, size_of::<abi::HybridSearch>()).reader_writer();
    let req: abi::HybridSearchRequest = r.read()?;
    filter::check_request(&req).map_err(err)?;
    let metric = store::check_search(req.dim, req.k, req.metric, req.flags, DIM as u32).map_err(err)?;
    let query = read_vector(req.query)?;
    let filters = filter::used(&req);
    let q = store::Query { metric, flags: req.flags, query: &query, filters, hybrid: true };
    let o = run_search(&q, req.k, req.results)?;
    let mut s = abi::HybridSearch::zeroed();
    s.req = req;
    s.resp.nr_results = o.nr_results;
    s.resp.flags = o.flags;
    s.resp.nr_candidates = o.nr_candidates;
    s.resp.nr_examined = o.nr_examined;
    s.resp.index_generation = o.index_generation;
    w.write(&s)?;
    Ok(0)
}

fn manage_index(arg: usize) -> Result<isize> {
    let (mut r, mut w) = user(arg as u64, size_of::<abi::ManageIndex>()).reader_writer();
    let req: abi::ManageIndexRequest = r.read()?;
    store::check_manage(&req).map_err(err)?;
    let (resp, res) = with_state(|s| s.manage(req.op))?;
    w.write(&abi::ManageIndex { req, resp })?;
    res.map_err(err)?;
    Ok(0)
}

fn get_stats(arg: usize) -> Result<isize> {
    let st = with_state(|s| s.stats())?;
    user(arg as u64, size_of::<abi::Stats>()).writer().write(&st)?;
    Ok(0)
}

// ------------------------------------------------------------------ device and module

#[pin_data(PinnedDrop)]
struct VexfsRsModule {
    #[pin]
    _miscdev: MiscDeviceRegistration<VexfsRsFile>,
}

impl kernel::InPlaceModule for VexfsRsModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        // SAFETY: called once, before the device (the only user of STATE) exists.
        unsafe { STATE.init() };
        *STATE.lock() = Some(Store::new(KVVec::new(), KVVec::new()));
        pr_info!("vexfs_rs: /dev/vexfs-rs, dim {}\n", DIM);
        let options = MiscDeviceOptions { name: c"vexfs-rs" };
        try_pin_init!(Self {
            _miscdev <- MiscDeviceRegistration::register(options),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for VexfsRsModule {
    fn drop(self: Pin<&mut Self>) {
        // No file is open (each holds a module reference): free every vector and the index.
        drop(STATE.lock().take());
    }
}

/// Per open file: nothing to keep (the vectors are the device's); not a zero-sized type,
/// so the box handed to the file is a real allocation.
struct VexfsRsFile {
    _unused: u64,
}

#[vtable]
impl MiscDevice for VexfsRsFile {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        Ok(KBox::new(VexfsRsFile { _unused: 0 }, GFP_KERNEL)?)
    }

    fn ioctl(_me: &VexfsRsFile, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            abi::VEXFS_IOC_ADD_VECTOR => add_vector(file, arg),
            abi::VEXFS_IOC_GET_VECTOR => get_vector(file, arg),
            abi::VEXFS_IOC_DEL_VECTOR => del_vector(file),
            abi::VEXFS_IOC_SEARCH => search(arg),
            abi::VEXFS_IOC_HYBRID_SEARCH => hybrid_search(arg),
            abi::VEXFS_IOC_MANAGE_INDEX => manage_index(arg),
            abi::VEXFS_IOC_GET_STATS => get_stats(arg),
            _ => Err(ENOTTY),
        }
    }
}

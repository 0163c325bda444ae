//! VexFS userspace crate.
//!
//! * Always compiled, core-only (no std, no alloc): [`abi`] (the `#[repr(C)]`
//!   mirror of `kernel/include/uapi/vexfs.h` and its ioctl numbers),
//!   [`fixed`] (Q16.16 helpers), [`vector`] (distance/score maths and
//!   top-k selection with the header's ordering), [`filter`] (hybrid search
//!   filters) and [`errcode`] (the ioctls' errno values).
//! * `userspace` feature (default): std, [`client`] (ioctl wrappers),
//!   [`cli`] (the `vexctl` command line) and [`abi_dump`].
//! * `kernel` feature: [`store`], the device model (vectors, index, counters and
//!   every ioctl's semantics) that the Rust kernel module `kernel/rust/vexfs_rs.rs`
//!   compiles from these very files (`abi`, `errcode`, `filter`, `vector`, `store`);
//!   without `userspace` the crate is `#![no_std]`.
//! * `fast-search`: alternative, bit-identical search implementation.
//! * `serde`: derives on result types and `vexctl --json` (needs `userspace`).
#![cfg_attr(not(any(feature = "userspace", test)), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]

#[cfg(all(feature = "serde", not(feature = "userspace")))]
compile_error!(
    "feature `serde` requires feature `userspace` (serde/serde_json need std; the no_std \
     kernel core has no JSON output): build with --features serde (defaults on) or \
     --no-default-features --features userspace,serde"
);

#[cfg(not(any(feature = "userspace", feature = "kernel")))]
compile_error!(
    "enable at least one of the features `userspace` (default, std) or `kernel` (no_std core): \
     build with default features or --no-default-features --features kernel"
);

pub mod abi;
pub mod errcode;
pub mod filter;
pub mod fixed;
#[cfg(any(feature = "kernel", test))]
pub mod store;
pub mod vector;

#[cfg(feature = "userspace")]
pub mod abi_dump;
#[cfg(feature = "userspace")]
pub mod bench;
#[cfg(feature = "userspace")]
pub mod cli;
#[cfg(feature = "userspace")]
pub mod client;
#[cfg(feature = "userspace")]
pub mod errno;

//! Prints the Rust mirror of the VexFS ioctl ABI in the format of
//! `kernel/tests/abi_dump.c` (no kernel needed).
fn main() {
    print!("{}", vexfs::abi_dump::dump_text());
}

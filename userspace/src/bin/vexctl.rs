//! `vexctl`: command line client for VexFS. See `vexctl --help`.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = vexfs::cli::main_with_args(&args, &mut stdout.lock(), &mut stderr.lock());
    std::process::exit(code);
}

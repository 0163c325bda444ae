//! `vexctl bench`: a VexFS micro-benchmark that prints a KTAP document with
//! structured diagnostics (userspace only; meant to run inside the test VM).
//!
//! ```text
//! vexctl bench DIR [--n N] [--k K] [--reps R] [--queries Q] [--seed S]
//! ```
//!
//! DIR must be an empty directory on a mounted vexfs whose mount holds no
//! vectors yet (it is created if missing and its parent is on vexfs). The
//! dim is read from GET_STATS. Defaults: N=2000, K=10, R=5, Q=50, S=1.
//!
//! What it does, all in one process:
//!
//! 1. creates N files `v000000`, `v000001`, ... in DIR and ADD_VECTORs a
//!    deterministic pseudo-random vector (SplitMix64 seeded with S,
//!    components uniform in [-256, 256] as Q16.16) with tag `kind=a`,
//!    `kind=b`, `kind=c`, `kind=d` (file i gets kind i % 4), timing each
//!    ADD_VECTOR ioctl alone (file creation is not timed). The N inserts are
//!    split into R consecutive rounds.
//! 2. R rounds; round r uses its own Q pseudo-random queries and runs, in
//!    this order: Q timed SEARCH ioctls (L2, k=K), Q timed HYBRID_SEARCH
//!    ioctls (L2, k=K, filter `--tag-eq kind=a`), Q timed GET_STATS ioctls
//!    (the ioctl round trip), and the same Q k-NN searches in userspace over
//!    the same vectors with this crate's core ([`crate::vector::score`] and
//!    [`crate::vector::TopK`], the code the kernel's Rust module uses),
//!    timed per query. One untimed warm-up call of each kind precedes the
//!    rounds.
//! 3. checks that the kernel's results equal userspace's for every query of
//!    every round (SEARCH and HYBRID_SEARCH: same inode numbers, scores and
//!    names in the same order, same `nr_candidates`);
//! 4. DEL_VECTORs and unlinks the files, so DIR is empty again.
//!
//! Times come from `std::time::Instant` (monotonic), in microseconds. Per
//! round: p50 and p99 (nearest rank: the `ceil(p/100 * n)`-th smallest
//! sample; the insert rounds report their p50). Per metric the value is
//! the MEDIAN over the rounds (mean of the two middle ones for even R) and
//! the spread is max - min over the rounds.
//!
//! Output (stdout), a complete KTAP document; exit status 0 iff all six
//! results are `ok` and the clean-up succeeded:
//!
//! ```text
//! KTAP version 1
//! 1..6
//! # config: dir=/mnt/vexfs/bench n=2000 dim=4 k=10 reps=5 queries=50 seed=1 metric=l2 hybrid_filter=kind=a
//! # bench: insert_us=41.5 unit=us better=lower reps=5 spread=2.125
//! ok 1 insert
//! # bench: search_p50_us=210.75 unit=us better=lower reps=5 spread=8.5
//! # bench: search_p99_us=260.001 unit=us better=lower reps=5 spread=30.2
//! ok 2 search
//! # bench: hybrid_p50_us=... (hybrid_p99_us likewise)
//! ok 3 hybrid_search
//! # bench: ioctl_rtt_p50_us=...
//! ok 4 ioctl_rtt
//! # bench: user_search_p50_us=... (user_search_p99_us likewise)
//! # bench: search_kernel_user_ratio=3.2 unit=x better=lower reps=5 spread=0.4
//! ok 5 user_search
//! # results_match: 250 search and 250 hybrid results equal
//! ok 6 results_match
//! ```
//!
//! Every metric line has exactly the form
//! `# bench: <metric>=<value> unit=<unit> better=<lower|higher> reps=<R> spread=<value>`
//! with values printed with at most 3 decimals (trailing zeros dropped).
//! Metrics: `insert_us`, `search_p50_us`, `search_p99_us`, `hybrid_p50_us`,
//! `hybrid_p99_us`, `ioctl_rtt_p50_us`, `user_search_p50_us`,
//! `user_search_p99_us` (unit `us`) and `search_kernel_user_ratio` (unit
//! `x`: `search_p50_us / user_search_p50_us` of the printed values; its
//! spread is max - min of the per-round ratios). A phase whose ioctl fails
//! prints `not ok` with a `# <phase>: ...: <strerror> (errno=NAME)`
//! diagnostic and no metric lines; phases that depend on a failed insert
//! are `ok N name # SKIP ...`. No other line starts with `# bench: `.
//!
//! Errors before the KTAP header (DIR not on vexfs, not empty, the mount
//! already holds vectors) print `vexctl: bench DIR: ...` on stderr and exit
//! 1; usage errors exit 2.

use crate::abi::{Stats, VEXFS_COMPONENT_MAX, VEXFS_FILTER_TAG_EQ, VEXFS_MAX_DIM, VEXFS_MAX_K};
use crate::client::{FilterSpec, SearchOutcome, Vexfs};
use crate::errno::{errno_label, strerror};
use crate::vector::{score, Hit, Metric, TopK};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const BENCH_USAGE: &str = "\
usage: vexctl bench DIR [--n N] [--k K] [--reps R] [--queries Q] [--seed S]
  DIR        empty directory on a vexfs mount without vectors (created if missing)
  --n N      vectors to insert (default 2000, at least R)
  --k K      k of the k-NN searches, 1..256 (default 10)
  --reps R   rounds per measurement (default 5)
  --queries Q  timed calls per round and measurement (default 50)
  --seed S   PRNG seed for vectors and queries (default 1)
Prints a KTAP document with one `bench:` diagnostic line per metric (format:
userspace/README.md). Exit status: 0 all ok, 1 a phase failed or DIR is
unusable, 2 usage error.
";

/// The tags given to the files (file i gets `KINDS[i % 4]`).
pub const KINDS: [&str; 4] = ["kind=a", "kind=b", "kind=c", "kind=d"];
/// The hybrid search's filter: `VEXFS_FILTER_TAG_EQ` with this value.
pub const HYBRID_TAG: &str = "kind=a";
/// Lower bound of the userspace p50 in the ratio's denominator (1 ns).
pub const RATIO_FLOOR_US: f64 = 0.001;

/// `vexctl bench` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchArgs {
    pub dir: String,
    pub n: u32,
    pub k: u32,
    pub reps: u32,
    pub queries: u32,
    pub seed: u64,
}

// ------------------------------------------------------------ pure parts

/// SplitMix64: small, fast, deterministic for a seed (any seed, 0 included).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A Q16.16 component uniform in `[-VEXFS_COMPONENT_MAX, VEXFS_COMPONENT_MAX]`
    /// (i.e. [-256.0, 256.0]; the modulo bias is below 2^-38).
    pub fn component(&mut self) -> i32 {
        let span = 2 * VEXFS_COMPONENT_MAX as u64 + 1;
        ((self.next_u64() % span) as i64 - VEXFS_COMPONENT_MAX as i64) as i32
    }

    /// `count` vectors of `dim` components, concatenated.
    pub fn vectors(&mut self, count: usize, dim: usize) -> Vec<i32> {
        (0..count * dim).map(|_| self.component()).collect()
    }
}

/// Nearest-rank percentile of ascending `sorted`: the `ceil(pct/100 * n)`-th
/// smallest sample (at least the first). NaN for no samples.
pub fn percentile(sorted: &[f64], pct: u32) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let rank = (pct.min(100) as usize * n).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Sorts `samples` and returns (p50, p99).
pub fn p50_p99(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (percentile(samples, 50), percentile(samples, 99))
}

/// Median (mean of the two middle values for an even count). NaN if empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// max - min (0 for fewer than two values).
pub fn spread(xs: &[f64]) -> f64 {
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    if xs.is_empty() {
        0.0
    } else {
        max - min
    }
}

/// One metric over the rounds: median, spread and the number of rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub value: f64,
    pub spread: f64,
    pub reps: usize,
}

pub fn summarize(per_round: &[f64]) -> Summary {
    Summary {
        value: median(per_round),
        spread: spread(per_round),
        reps: per_round.len(),
    }
}

/// Which direction is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

impl Better {
    pub fn as_str(self) -> &'static str {
        match self {
            Better::Lower => "lower",
            Better::Higher => "higher",
        }
    }
}

/// At most 3 decimals, trailing zeros and a trailing `.` removed, `-0` as `0`.
pub fn format_value(x: f64) -> String {
    let s = format!("{:.3}", x);
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s.as_str()
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// `# bench: <metric>=<value> unit=<unit> better=<lower|higher> reps=<R> spread=<value>`
pub fn metric_line(metric: &str, s: &Summary, unit: &str, better: Better) -> String {
    format!(
        "# bench: {}={} unit={} better={} reps={} spread={}",
        metric,
        format_value(s.value),
        unit,
        better.as_str(),
        s.reps,
        format_value(s.spread)
    )
}

/// `<strerror> (errno=NAME)` for OS errors, else the error's text.
pub fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{} (errno={})", strerror(n), errno_label(n)),
        None => e.to_string(),
    }
}

fn us(d: std::time::Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}

// ------------------------------------------------------------ arguments

/// Parses the arguments after `bench`. `Ok(None)`: `-h`/`--help`.
pub fn parse_args(args: &[String]) -> Result<Option<BenchArgs>, String> {
    let mut a = BenchArgs {
        dir: String::new(),
        n: 2000,
        k: 10,
        reps: 5,
        queries: 50,
        seed: 1,
    };
    let mut pos: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            pos.extend(it.by_ref().cloned());
            break;
        }
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        if !arg.starts_with('-') || arg == "-" {
            pos.push(arg.clone());
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        if !["--n", "--k", "--reps", "--queries", "--seed"].contains(&name) {
            return Err(format!("bench: unknown option {}", name));
        }
        if seen.iter().any(|s| s == name) {
            return Err(format!("bench: option {} given twice", name));
        }
        seen.push(name.to_string());
        let v = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("bench: option {} needs a value", name))?,
        };
        let bad = || {
            format!(
                "bench: {} must be a non-negative integer, got {:?}",
                name, v
            )
        };
        if name == "--seed" {
            a.seed = v.parse::<u64>().map_err(|_| bad())?;
            continue;
        }
        let x = v.parse::<u32>().map_err(|_| bad())?;
        match name {
            "--n" => a.n = x,
            "--k" => a.k = x,
            "--reps" => a.reps = x,
            _ => a.queries = x,
        }
    }
    if pos.len() != 1 {
        return Err(format!(
            "bench: expected DIR, got {} argument(s)",
            pos.len()
        ));
    }
    a.dir = pos.remove(0);
    if a.k == 0 || a.k > VEXFS_MAX_K {
        return Err(format!("bench: --k must be 1..{}", VEXFS_MAX_K));
    }
    if a.reps == 0 || a.queries == 0 {
        return Err("bench: --reps and --queries must be at least 1".to_string());
    }
    if a.n < a.reps {
        return Err(
            "bench: --n must be at least --reps (the inserts are split into R rounds)".to_string(),
        );
    }
    Ok(Some(a))
}

// ------------------------------------------------------------ what is measured

/// The system under test: a vexfs directory (or, in unit tests, a model).
/// Timing is done by the caller around each call.
trait Target {
    /// Creates file `name` (kept open as the current file); returns its inode number.
    fn create(&mut self, name: &str) -> io::Result<u64>;
    /// ADD_VECTOR on the current file (then closes it).
    fn add_current(&mut self, v: &[i32], tag: &[u8]) -> io::Result<()>;
    fn search(&self, k: u32, q: &[i32]) -> io::Result<SearchOutcome>;
    fn hybrid(&self, k: u32, q: &[i32], f: &FilterSpec) -> io::Result<SearchOutcome>;
    fn stats(&self) -> io::Result<Stats>;
    /// DEL_VECTOR (if `has_vector`) then unlink; the error names the step.
    fn remove(&mut self, name: &str, has_vector: bool) -> Result<(), (&'static str, io::Error)>;
}

struct KernelTarget {
    dir: PathBuf,
    handle: Vexfs,
    current: Option<File>,
}

impl Target for KernelTarget {
    fn create(&mut self, name: &str) -> io::Result<u64> {
        let f = File::options()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(self.dir.join(name))?;
        let ino = f.metadata()?.ino();
        self.current = Some(f);
        Ok(ino)
    }

    fn add_current(&mut self, v: &[i32], tag: &[u8]) -> io::Result<()> {
        match self.current.take() {
            Some(f) => Vexfs::from_file(f).add_vector(v, tag),
            None => Err(io::Error::other("no current file")),
        }
    }

    fn search(&self, k: u32, q: &[i32]) -> io::Result<SearchOutcome> {
        self.handle.search(Metric::L2.raw(), k, 0, q)
    }

    fn hybrid(&self, k: u32, q: &[i32], f: &FilterSpec) -> io::Result<SearchOutcome> {
        self.handle
            .hybrid_search(Metric::L2.raw(), k, 0, q, std::slice::from_ref(f))
    }

    fn stats(&self) -> io::Result<Stats> {
        self.handle.stats()
    }

    fn remove(&mut self, name: &str, has_vector: bool) -> Result<(), (&'static str, io::Error)> {
        let path = self.dir.join(name);
        if has_vector {
            Vexfs::open_write(&path)
                .and_then(|v| v.del_vector())
                .map_err(|e| ("del", e))?;
        }
        fs::remove_file(&path).map_err(|e| ("unlink", e))
    }
}

/// The data set, generated from the seed.
struct Data {
    dim: usize,
    vecs: Vec<i32>,
    names: Vec<String>,
    /// inode numbers, filled by the insert phase
    inos: Vec<u64>,
    /// `reps * queries` queries
    queries: Vec<i32>,
}

impl Data {
    fn new(a: &BenchArgs, dim: usize) -> Data {
        let mut rng = SplitMix64::new(a.seed);
        let n = a.n as usize;
        let vecs = rng.vectors(n, dim);
        let queries = rng.vectors(a.reps as usize * a.queries as usize, dim);
        Data {
            dim,
            vecs,
            names: (0..n).map(|i| format!("v{:06}", i)).collect(),
            inos: Vec::with_capacity(n),
            queries,
        }
    }

    fn vector(&self, i: usize) -> &[i32] {
        &self.vecs[i * self.dim..(i + 1) * self.dim]
    }

    fn query(&self, i: usize) -> &[i32] {
        &self.queries[i * self.dim..(i + 1) * self.dim]
    }
}

/// k-NN over the inserted vectors in userspace (L2), optionally only over
/// the files that pass `filter` ([`crate::filter::matches_one`], the
/// kernel's filter code). Returns the hits (item: file index) and the
/// number of candidates scored.
fn user_knn(d: &Data, k: u32, q: &[i32], filter: Option<&FilterSpec>) -> (Vec<Hit<u32>>, u64) {
    let mut buf = vec![
        Hit {
            ino: 0,
            score: 0,
            item: 0u32
        };
        k as usize
    ];
    let mut top = TopK::new(Metric::L2, &mut buf);
    let mut candidates = 0u64;
    for (i, (v, &ino)) in d.vecs.chunks_exact(d.dim).zip(&d.inos).enumerate() {
        if let Some(f) = filter {
            let (name, tag) = (d.names[i].as_bytes(), KINDS[i % KINDS.len()].as_bytes());
            if !crate::filter::matches_one(f.kind, &f.value, name, tag) {
                continue;
            }
        }
        candidates += 1;
        top.push(Hit {
            ino,
            score: score(Metric::L2, q, v),
            item: i as u32,
        });
    }
    (top.finish().to_vec(), candidates)
}

fn same_results(k: &SearchOutcome, user: &[Hit<u32>], candidates: u64, d: &Data) -> bool {
    k.nr_candidates == candidates
        && k.hits.len() == user.len()
        && k.hits.iter().zip(user).all(|(a, b)| {
            a.ino == b.ino && a.score == b.score && a.name == d.names[b.item as usize]
        })
}

fn show_kernel(o: &SearchOutcome) -> String {
    let hits: Vec<String> = o
        .hits
        .iter()
        .map(|h| format!("{}:{}:{}", h.ino, h.score, h.name))
        .collect();
    format!("candidates={} [{}]", o.nr_candidates, hits.join(" "))
}

fn show_user(hits: &[Hit<u32>], candidates: u64, d: &Data) -> String {
    let hits: Vec<String> = hits
        .iter()
        .map(|h| format!("{}:{}:{}", h.ino, h.score, d.names[h.item as usize]))
        .collect();
    format!("candidates={} [{}]", candidates, hits.join(" "))
}

/// Per-round p50/p99 of one measured operation, or its first error.
#[derive(Default)]
struct Phase {
    p50: Vec<f64>,
    p99: Vec<f64>,
    err: Option<String>,
}

impl Phase {
    /// Runs `f` for each query index of a round, timing each call; records
    /// the round's percentiles and returns the outputs (None after an error).
    fn round<T>(
        &mut self,
        what: &str,
        round: usize,
        count: usize,
        mut f: impl FnMut(usize) -> io::Result<T>,
    ) -> Option<Vec<T>> {
        if self.err.is_some() {
            return None;
        }
        let mut samples = Vec::with_capacity(count);
        let mut outs = Vec::with_capacity(count);
        for j in 0..count {
            let t = Instant::now();
            let r = f(j);
            let el = t.elapsed();
            match r {
                Ok(o) => {
                    samples.push(us(el));
                    outs.push(o);
                }
                Err(e) => {
                    self.err = Some(format!(
                        "{}: round {} call {}: {}",
                        what,
                        round,
                        j,
                        describe(&e)
                    ));
                    return None;
                }
            }
        }
        let (p50, p99) = p50_p99(&mut samples);
        self.p50.push(p50);
        self.p99.push(p99);
        Some(outs)
    }

    /// A warm-up call whose error counts as the phase's error.
    fn warm_up<T>(&mut self, what: &str, r: io::Result<T>) {
        if let Err(e) = r {
            self.err = Some(format!("{}: warm-up: {}", what, describe(&e)));
        }
    }
}

/// KTAP result lines at the top level.
struct Ktap<'a> {
    out: &'a mut dyn Write,
    n: usize,
    failed: usize,
}

impl Ktap<'_> {
    fn line(&mut self, s: &str) {
        let _ = writeln!(self.out, "{}", s);
    }

    fn diag(&mut self, s: &str) {
        self.line(&format!("# {}", s));
    }

    fn result(&mut self, ok: bool, name: &str) {
        self.n += 1;
        if !ok {
            self.failed += 1;
        }
        let s = format!("{}ok {} {}", if ok { "" } else { "not " }, self.n, name);
        self.line(&s);
    }

    fn skip(&mut self, name: &str, why: &str) {
        self.n += 1;
        let s = format!("ok {} {} # SKIP {}", self.n, name, why);
        self.line(&s);
    }

    /// A phase's result: metric lines and `ok`, or its error and `not ok`.
    fn phase(&mut self, name: &str, p: &Phase, metrics: &[(&str, bool)]) {
        match &p.err {
            Some(e) => {
                self.diag(e);
                self.result(false, name);
            }
            None => {
                for (metric, is_p99) in metrics {
                    let s = summarize(if *is_p99 { &p.p99 } else { &p.p50 });
                    self.line(&metric_line(metric, &s, "us", Better::Lower));
                }
                self.result(true, name);
            }
        }
    }
}

const PLAN: usize = 6;

/// Runs the benchmark on `t` and prints the KTAP document; `true` iff all
/// results are ok and the clean-up succeeded.
fn run_bench(t: &mut dyn Target, a: &BenchArgs, dim: usize, out: &mut dyn Write) -> bool {
    let mut d = Data::new(a, dim);
    let (n, k, reps, nq) = (a.n as usize, a.k, a.reps as usize, a.queries as usize);
    let mut kt = Ktap {
        out,
        n: 0,
        failed: 0,
    };
    kt.line("KTAP version 1");
    kt.line(&format!("1..{}", PLAN));
    kt.diag(&format!(
        "config: dir={} n={} dim={} k={} reps={} queries={} seed={} metric=l2 hybrid_filter={}",
        a.dir, n, dim, k, reps, nq, a.seed, HYBRID_TAG
    ));

    // --- insert: N creates + timed ADD_VECTORs, split into R rounds
    let mut add_us = Vec::with_capacity(n);
    let mut created = 0usize; // files created (to unlink)
    let mut with_vector = 0usize; // of those, the first ones carry a vector
    let mut insert_err = None;
    for i in 0..n {
        let path = format!("{}/{}", a.dir, d.names[i]);
        match t.create(&d.names[i]) {
            Ok(ino) => d.inos.push(ino),
            Err(e) => {
                insert_err = Some(format!("insert: create {}: {}", path, describe(&e)));
                break;
            }
        }
        created += 1;
        let tag = KINDS[i % KINDS.len()].as_bytes();
        let v = d.vector(i);
        let start = Instant::now();
        let r = t.add_current(v, tag);
        let el = start.elapsed();
        if let Err(e) = r {
            insert_err = Some(format!("insert: add {}: {}", path, describe(&e)));
            break;
        }
        add_us.push(us(el));
        with_vector += 1;
    }
    if insert_err.is_none() {
        match t.stats() {
            Ok(st) if st.nr_vectors == n as u64 => {}
            Ok(st) => {
                insert_err = Some(format!(
                    "insert: GET_STATS nr_vectors {} after {} inserts",
                    st.nr_vectors, n
                ))
            }
            Err(e) => insert_err = Some(format!("insert: GET_STATS: {}", describe(&e))),
        }
    }
    match &insert_err {
        Some(e) => {
            kt.diag(e);
            kt.result(false, "insert");
            for name in [
                "search",
                "hybrid_search",
                "ioctl_rtt",
                "user_search",
                "results_match",
            ] {
                kt.skip(name, "insert failed");
            }
        }
        None => {
            let per_round: Vec<f64> = (0..reps)
                .map(|r| {
                    let mut chunk = add_us[r * n / reps..(r + 1) * n / reps].to_vec();
                    p50_p99(&mut chunk).0
                })
                .collect();
            kt.line(&metric_line(
                "insert_us",
                &summarize(&per_round),
                "us",
                Better::Lower,
            ));
            kt.result(true, "insert");
        }
    }

    if insert_err.is_none() {
        measure(t, &d, k, reps, nq, &mut kt);
    }

    // --- clean-up: DIR empty again
    let mut cleanup_ok = true;
    for i in 0..created {
        if let Err((step, e)) = t.remove(&d.names[i], i < with_vector) {
            kt.diag(&format!(
                "cleanup: {} {}/{}: {}",
                step,
                a.dir,
                d.names[i],
                describe(&e)
            ));
            cleanup_ok = false;
        }
    }
    if !cleanup_ok {
        kt.diag("cleanup failed: exit status 1");
    }
    kt.failed == 0 && kt.n == PLAN && cleanup_ok
}

/// Phases 2..6 (the vectors are in place).
fn measure(t: &mut dyn Target, d: &Data, k: u32, reps: usize, nq: usize, kt: &mut Ktap) {
    let filter = FilterSpec {
        kind: VEXFS_FILTER_TAG_EQ,
        value: HYBRID_TAG.as_bytes().to_vec(),
    };
    let (mut search, mut hybrid, mut rtt, mut user) = (
        Phase::default(),
        Phase::default(),
        Phase::default(),
        Phase::default(),
    );
    let q0 = d.query(0);
    search.warm_up("search", t.search(k, q0));
    hybrid.warm_up("hybrid_search", t.hybrid(k, q0, &filter));
    rtt.warm_up("ioctl_rtt", t.stats());
    let _ = user_knn(d, k, q0, None);

    let mut compared = (0usize, 0usize);
    let mut mismatches = 0usize;
    let mut first_mismatches = Vec::new();
    for r in 0..reps {
        let q = |j: usize| d.query(r * nq + j);
        let ks = search.round("search", r, nq, |j| t.search(k, q(j)));
        let kh = hybrid.round("hybrid_search", r, nq, |j| t.hybrid(k, q(j), &filter));
        rtt.round("ioctl_rtt", r, nq, |_| t.stats());
        let us_ = user.round("user_search", r, nq, |j| Ok(user_knn(d, k, q(j), None)));

        // correctness: every query of the round
        let mut check = |what: &str, j: usize, ko: &SearchOutcome, uh: &[Hit<u32>], uc: u64| {
            if !same_results(ko, uh, uc, d) {
                mismatches += 1;
                if first_mismatches.len() < 3 {
                    first_mismatches.push(format!(
                        "results_match: round {} query {} {}: kernel {} user {}",
                        r,
                        j,
                        what,
                        show_kernel(ko),
                        show_user(uh, uc, d)
                    ));
                }
            }
        };
        if let (Some(ks), Some(us_)) = (&ks, &us_) {
            for (j, (ko, (uh, uc))) in ks.iter().zip(us_).enumerate() {
                check("search", j, ko, uh, *uc);
                compared.0 += 1;
            }
        }
        if let Some(kh) = &kh {
            for (j, ko) in kh.iter().enumerate() {
                let (uh, uc) = user_knn(d, k, q(j), Some(&filter));
                check("hybrid_search", j, ko, &uh, uc);
                compared.1 += 1;
            }
        }
    }

    kt.phase(
        "search",
        &search,
        &[("search_p50_us", false), ("search_p99_us", true)],
    );
    kt.phase(
        "hybrid_search",
        &hybrid,
        &[("hybrid_p50_us", false), ("hybrid_p99_us", true)],
    );
    kt.phase("ioctl_rtt", &rtt, &[("ioctl_rtt_p50_us", false)]);
    // user_search cannot fail; the ratio needs the kernel's search too
    for (metric, is_p99) in [("user_search_p50_us", false), ("user_search_p99_us", true)] {
        let s = summarize(if is_p99 { &user.p99 } else { &user.p50 });
        kt.line(&metric_line(metric, &s, "us", Better::Lower));
    }
    if search.err.is_none() {
        let ratios: Vec<f64> = search
            .p50
            .iter()
            .zip(&user.p50)
            .map(|(s, u)| s / u.max(RATIO_FLOOR_US))
            .collect();
        let s = Summary {
            value: median(&search.p50) / median(&user.p50).max(RATIO_FLOOR_US),
            spread: spread(&ratios),
            reps: ratios.len(),
        };
        kt.line(&metric_line(
            "search_kernel_user_ratio",
            &s,
            "x",
            Better::Lower,
        ));
    } else {
        kt.diag("search_kernel_user_ratio: not computed (search failed)");
    }
    kt.result(user.err.is_none(), "user_search");

    if mismatches > 0 {
        for m in &first_mismatches {
            kt.diag(m);
        }
        kt.diag(&format!(
            "results_match: {} of {} results differ",
            mismatches,
            compared.0 + compared.1
        ));
        kt.result(false, "results_match");
    } else if compared == (0, 0) {
        kt.skip("results_match", "no kernel results to compare");
    } else {
        kt.diag(&format!(
            "results_match: {} search and {} hybrid results equal",
            compared.0, compared.1
        ));
        kt.result(true, "results_match");
    }
}

// ------------------------------------------------------------ entry point

/// Opens DIR (creating it if missing and its parent is on vexfs), checks it
/// is an empty directory on a vexfs mount without vectors; returns the
/// target and the mount's dim. The error is the complete stderr text.
fn prepare(a: &BenchArgs) -> Result<(KernelTarget, usize), String> {
    let dir = Path::new(&a.dir);
    let op_err = |path: &str, e: &io::Error| {
        let mut s = format!("vexctl: bench {}: {}", path, describe(e));
        if e.raw_os_error() == Some(libc::ENOTTY) {
            s.push_str("\nvexctl: bench: DIR must be on a mounted vexfs");
        }
        s
    };
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(op_err(&a.dir, &io::Error::from_raw_os_error(libc::ENOTDIR))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let pname = parent.display().to_string();
            Vexfs::open(parent)
                .and_then(|v| v.stats())
                .map_err(|e| op_err(&pname, &e))?;
            fs::create_dir(dir).map_err(|e| op_err(&a.dir, &e))?;
        }
        Err(e) => return Err(op_err(&a.dir, &e)),
    }
    let handle = Vexfs::open(dir).map_err(|e| op_err(&a.dir, &e))?;
    let st = handle.stats().map_err(|e| op_err(&a.dir, &e))?;
    let mut entries = fs::read_dir(dir).map_err(|e| op_err(&a.dir, &e))?;
    if entries.next().is_some() {
        return Err(op_err(
            &a.dir,
            &io::Error::from_raw_os_error(libc::ENOTEMPTY),
        ));
    }
    if st.nr_vectors != 0 {
        return Err(format!(
            "vexctl: bench {}: the mount already holds {} vectors (bench needs a vexfs mount without vectors)",
            a.dir, st.nr_vectors
        ));
    }
    if st.dim == 0 || st.dim > VEXFS_MAX_DIM {
        return Err(format!(
            "vexctl: bench {}: GET_STATS reports dim {}",
            a.dir, st.dim
        ));
    }
    let t = KernelTarget {
        dir: dir.to_path_buf(),
        handle,
        current: None,
    };
    Ok((t, st.dim as usize))
}

/// `vexctl bench ARGS...` (the arguments after `bench`). Returns the exit code.
pub fn main(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let a = match parse_args(args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            let _ = out.write_all(BENCH_USAGE.as_bytes());
            return 0;
        }
        Err(msg) => {
            let _ = writeln!(err, "vexctl: {}", msg);
            let _ = err.write_all(BENCH_USAGE.as_bytes());
            return 2;
        }
    };
    let (mut t, dim) = match prepare(&a) {
        Ok(x) => x,
        Err(msg) => {
            let _ = writeln!(err, "{}", msg);
            return 1;
        }
    };
    if run_bench(&mut t, &a, dim, out) {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::SearchHit;

    #[test]
    fn prng_is_splitmix64_and_deterministic() {
        let mut r = SplitMix64::new(0);
        // reference values of SplitMix64 seeded with 0
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(r.next_u64(), 0x06c4_5d18_8009_454f);
        let a = SplitMix64::new(42).vectors(100, 4);
        assert_eq!(a, SplitMix64::new(42).vectors(100, 4));
        assert_ne!(a, SplitMix64::new(43).vectors(100, 4));
        assert!(a.chunks(4).all(crate::vector::vector_ok));
        // the whole range is used
        let many = SplitMix64::new(7).vectors(10_000, 1);
        assert!(many.iter().any(|&c| c > VEXFS_COMPONENT_MAX / 2));
        assert!(many.iter().any(|&c| c < -VEXFS_COMPONENT_MAX / 2));
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50), 50.0);
        assert_eq!(percentile(&v, 99), 99.0);
        assert_eq!(percentile(&v, 100), 100.0);
        assert_eq!(percentile(&v, 0), 1.0);
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50), 2.0);
        assert_eq!(percentile(&v, 99), 4.0);
        assert_eq!(percentile(&[7.5], 50), 7.5);
        assert_eq!(percentile(&[7.5], 99), 7.5);
        assert!(percentile(&[], 50).is_nan());
        // 50 samples (the default --queries): p99 is the maximum
        let mut s: Vec<f64> = (0..50).rev().map(f64::from).collect();
        assert_eq!(p50_p99(&mut s), (24.0, 49.0));
        assert_eq!(s[0], 0.0, "sorted in place");
    }

    #[test]
    fn median_and_spread() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[5.0]), 5.0);
        assert!(median(&[]).is_nan());
        assert_eq!(spread(&[3.0, 1.0, 2.5]), 2.0);
        assert_eq!(spread(&[5.0]), 0.0);
        assert_eq!(spread(&[]), 0.0);
        assert_eq!(
            summarize(&[10.0, 12.0, 11.0, 30.0, 9.0]),
            Summary {
                value: 11.0,
                spread: 21.0,
                reps: 5
            }
        );
    }

    #[test]
    fn value_and_line_format() {
        assert_eq!(format_value(12.0), "12");
        assert_eq!(format_value(12.5), "12.5");
        assert_eq!(format_value(0.1234), "0.123");
        assert_eq!(format_value(0.0005), "0.001");
        assert_eq!(format_value(1234.5678), "1234.568");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(-0.0001), "0");
        assert_eq!(format_value(100.0), "100");
        let s = Summary {
            value: 41.25,
            spread: 2.0,
            reps: 5,
        };
        assert_eq!(
            metric_line("insert_us", &s, "us", Better::Lower),
            "# bench: insert_us=41.25 unit=us better=lower reps=5 spread=2"
        );
        let s = Summary {
            value: 3.45678,
            spread: 0.0004,
            reps: 3,
        };
        assert_eq!(
            metric_line("search_kernel_user_ratio", &s, "x", Better::Higher),
            "# bench: search_kernel_user_ratio=3.457 unit=x better=higher reps=3 spread=0"
        );
        let e = io::Error::from_raw_os_error(libc::EINVAL);
        assert_eq!(describe(&e), "Invalid argument (errno=EINVAL)");
    }

    fn args(s: &str) -> Result<Option<BenchArgs>, String> {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        parse_args(&v)
    }

    #[test]
    fn parse_bench_args() {
        assert_eq!(
            args("/m/b").unwrap().unwrap(),
            BenchArgs {
                dir: "/m/b".into(),
                n: 2000,
                k: 10,
                reps: 5,
                queries: 50,
                seed: 1
            }
        );
        assert_eq!(
            args("--n 10 /m/b --k=3 --reps 2 --queries=7 --seed 99")
                .unwrap()
                .unwrap(),
            BenchArgs {
                dir: "/m/b".into(),
                n: 10,
                k: 3,
                reps: 2,
                queries: 7,
                seed: 99
            }
        );
        assert_eq!(args("--help").unwrap(), None);
        assert_eq!(args("/m -h").unwrap(), None);
        for bad in [
            "",
            "/a /b",
            "/m --k 0",
            "/m --k 257",
            "/m --n 0",
            "/m --n 3 --reps 4",
            "/m --reps 0",
            "/m --queries 0",
            "/m --n -1",
            "/m --n x",
            "/m --seed -1",
            "/m --n",
            "/m --n 1 --n 2",
            "/m --bogus 1",
            "/m --json",
        ] {
            assert!(args(bad).is_err(), "accepted {bad:?}");
        }
    }

    /// An in-memory model of a vexfs mount (same maths as the kernel), with
    /// injectable failures.
    /// name, inode number, (vector, tag)
    type ModelFile = (String, u64, Option<(Vec<i32>, Vec<u8>)>);

    #[derive(Default)]
    struct Model {
        files: Vec<ModelFile>,
        fail_add_at: Option<usize>,
        fail_search_at: Option<usize>,
        fail_unlink: bool,
        corrupt_hybrid: bool,
        searches: std::cell::Cell<usize>,
    }

    impl Model {
        fn knn(&self, k: u32, q: &[i32], tag: Option<&[u8]>) -> SearchOutcome {
            let mut buf = vec![
                Hit {
                    ino: 0,
                    score: 0,
                    item: 0usize
                };
                k as usize
            ];
            let mut top = TopK::new(Metric::L2, &mut buf);
            let mut cand = 0;
            for (i, (_, ino, v)) in self.files.iter().enumerate() {
                let Some((v, t)) = v else { continue };
                if tag.is_some_and(|tag| tag != t.as_slice()) {
                    continue;
                }
                cand += 1;
                top.push(Hit {
                    ino: *ino,
                    score: score(Metric::L2, q, v),
                    item: i,
                });
            }
            SearchOutcome {
                hits: top
                    .finish()
                    .iter()
                    .map(|h| SearchHit {
                        ino: h.ino,
                        score: h.score,
                        name: self.files[h.item].0.clone(),
                    })
                    .collect(),
                nr_candidates: cand,
                ..Default::default()
            }
        }
    }

    impl Target for Model {
        fn create(&mut self, name: &str) -> io::Result<u64> {
            // inos not in creation order: exercises the tie/ino handling
            let ino = 1000 + (self.files.len() as u64 * 7919) % 100_003;
            self.files.push((name.to_string(), ino, None));
            Ok(ino)
        }
        fn add_current(&mut self, v: &[i32], tag: &[u8]) -> io::Result<()> {
            if self.fail_add_at == Some(self.files.len() - 1) {
                return Err(io::Error::from_raw_os_error(libc::ENOMEM));
            }
            self.files.last_mut().unwrap().2 = Some((v.to_vec(), tag.to_vec()));
            Ok(())
        }
        fn search(&self, k: u32, q: &[i32]) -> io::Result<SearchOutcome> {
            let n = self.searches.get();
            self.searches.set(n + 1);
            if self.fail_search_at == Some(n) {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            Ok(self.knn(k, q, None))
        }
        fn hybrid(&self, k: u32, q: &[i32], f: &FilterSpec) -> io::Result<SearchOutcome> {
            assert_eq!(f.kind, VEXFS_FILTER_TAG_EQ);
            let mut o = self.knn(k, q, Some(&f.value));
            if self.corrupt_hybrid {
                o.hits[0].score += 1;
            }
            Ok(o)
        }
        fn stats(&self) -> io::Result<Stats> {
            let mut st = Stats::zeroed();
            st.nr_vectors = self.files.iter().filter(|f| f.2.is_some()).count() as u64;
            Ok(st)
        }
        fn remove(
            &mut self,
            name: &str,
            has_vector: bool,
        ) -> Result<(), (&'static str, io::Error)> {
            let i = self.files.iter().position(|f| f.0 == name).unwrap();
            assert_eq!(self.files[i].2.is_some(), has_vector);
            if self.fail_unlink {
                return Err(("unlink", io::Error::from_raw_os_error(libc::EBUSY)));
            }
            self.files.remove(i);
            Ok(())
        }
    }

    fn bench(m: &mut Model, a: &str) -> (bool, String) {
        let a = args(a).unwrap().unwrap();
        let mut out = Vec::new();
        let ok = run_bench(m, &a, 4, &mut out);
        (ok, String::from_utf8(out).unwrap())
    }

    const METRICS: [&str; 9] = [
        "insert_us",
        "search_p50_us",
        "search_p99_us",
        "hybrid_p50_us",
        "hybrid_p99_us",
        "ioctl_rtt_p50_us",
        "user_search_p50_us",
        "user_search_p99_us",
        "search_kernel_user_ratio",
    ];

    #[test]
    fn full_document_on_a_model() {
        let mut m = Model::default();
        let (ok, out) = bench(&mut m, "/m/b --n 300 --k 7 --reps 3 --queries 5 --seed 9");
        assert!(ok, "{out}");
        assert!(m.files.is_empty(), "files left behind");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(&lines[..2], ["KTAP version 1", "1..6"]);
        let results: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with("ok") || l.starts_with("not ok"))
            .collect();
        assert_eq!(
            results,
            [
                "ok 1 insert",
                "ok 2 search",
                "ok 3 hybrid_search",
                "ok 4 ioctl_rtt",
                "ok 5 user_search",
                "ok 6 results_match"
            ]
        );
        let metric_lines: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with("# bench: "))
            .collect();
        assert_eq!(metric_lines.len(), METRICS.len(), "{out}");
        for (l, m) in metric_lines.iter().zip(METRICS) {
            // <metric>=<value> unit=<unit> better=lower reps=3 spread=<value>
            let f: Vec<&str> = l["# bench: ".len()..].split(' ').collect();
            assert_eq!(f.len(), 5, "{l}");
            let (name, value) = f[0].split_once('=').unwrap();
            assert_eq!(name, m);
            let unit = if m.ends_with("_ratio") { "x" } else { "us" };
            assert_eq!(f[1], format!("unit={unit}"));
            assert_eq!(f[2], "better=lower");
            assert_eq!(f[3], "reps=3");
            let spread = f[4].strip_prefix("spread=").unwrap();
            for v in [value, spread] {
                let x: f64 = v.parse().unwrap();
                assert!(x.is_finite() && x >= 0.0, "{l}");
                assert!(v.split_once('.').is_none_or(|(_, d)| d.len() <= 3), "{l}");
            }
        }
        assert!(out.contains("# results_match: 15 search and 15 hybrid results equal"));
        // every line is KTAP: header, plan, result or diagnostic
        assert!(lines.iter().all(|l| l.starts_with("KTAP ")
            || l.starts_with("1..")
            || l.starts_with("ok ")
            || l.starts_with("not ok ")
            || l.starts_with("# ")));
        // deterministic apart from the timings
        let mut m2 = Model::default();
        let (_, out2) = bench(&mut m2, "/m/b --n 300 --k 7 --reps 3 --queries 5 --seed 9");
        let strip = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| !l.starts_with("# bench: "))
                .map(String::from)
                .collect()
        };
        assert_eq!(strip(&out), strip(&out2));
    }

    #[test]
    fn search_error_is_not_ok_with_errno() {
        let mut m = Model {
            fail_search_at: Some(4), // warm-up + 3 calls of round 0
            ..Default::default()
        };
        let (ok, out) = bench(&mut m, "/m/b --n 50 --reps 2 --queries 5");
        assert!(!ok);
        assert!(m.files.is_empty());
        assert!(
            out.contains(
                "# search: round 0 call 3: Invalid argument (errno=EINVAL)\nnot ok 2 search\n"
            ),
            "{out}"
        );
        assert!(!out.contains("# bench: search_p50_us"));
        assert!(out.contains("ok 3 hybrid_search\n"));
        assert!(out.contains("# bench: hybrid_p50_us="));
        assert!(out.contains("# bench: user_search_p50_us="));
        assert!(!out.contains("search_kernel_user_ratio="));
        // the hybrid results are still compared
        assert!(out.contains("0 search and 10 hybrid results equal\nok 6 results_match"));
    }

    #[test]
    fn insert_error_skips_the_rest() {
        let mut m = Model {
            fail_add_at: Some(10),
            ..Default::default()
        };
        let (ok, out) = bench(&mut m, "/m/b --n 50 --reps 2 --queries 5");
        assert!(!ok);
        assert!(m.files.is_empty(), "the created files are removed");
        assert!(out.contains(
            "# insert: add /m/b/v000010: Cannot allocate memory (errno=ENOMEM)\nnot ok 1 insert\n"
        ));
        assert!(out.contains("ok 6 results_match # SKIP insert failed"));
        assert!(!out.contains("# bench: "));
    }

    #[test]
    fn mismatch_is_detected() {
        let mut m = Model {
            corrupt_hybrid: true,
            ..Default::default()
        };
        let (ok, out) = bench(&mut m, "/m/b --n 40 --reps 2 --queries 3");
        assert!(!ok);
        assert!(out.contains("# results_match: round 0 query 0 hybrid_search: kernel "));
        assert!(out.contains("# results_match: 6 of 12 results differ\nnot ok 6 results_match"));
        // the timings are still reported
        assert!(out.contains("ok 3 hybrid_search"));
    }

    #[test]
    fn cleanup_failure_fails_the_run() {
        let mut m = Model {
            fail_unlink: true,
            ..Default::default()
        };
        let (ok, out) = bench(&mut m, "/m/b --n 4 --reps 1 --queries 1");
        assert!(!ok);
        assert!(out.contains("ok 6 results_match\n"));
        assert!(
            out.contains("# cleanup: unlink /m/b/v000000: Device or resource busy (errno=EBUSY)")
        );
    }

    #[test]
    fn user_knn_equals_the_model() {
        let a = args("/m --n 200 --k 10 --reps 1 --queries 20 --seed 3")
            .unwrap()
            .unwrap();
        let mut d = Data::new(&a, 4);
        let mut m = Model::default();
        for i in 0..200 {
            d.inos.push(m.create(&d.names[i]).unwrap());
            m.add_current(d.vector(i), KINDS[i % 4].as_bytes()).unwrap();
        }
        for j in 0..20 {
            let (h, c) = user_knn(&d, 10, d.query(j), None);
            assert!(same_results(&m.knn(10, d.query(j), None), &h, c, &d));
            let f = FilterSpec {
                kind: VEXFS_FILTER_TAG_EQ,
                value: b"kind=a".to_vec(),
            };
            let (h, c) = user_knn(&d, 10, d.query(j), Some(&f));
            assert_eq!(c, 50);
            assert!(same_results(
                &m.knn(10, d.query(j), Some(b"kind=a")),
                &h,
                c,
                &d
            ));
        }
    }
}

//! `vexctl` command line: parsing (pure, unit-tested) and execution.

use crate::abi::*;
use crate::client::{FilterSpec, SearchHit, SearchOutcome, Vexfs};
use crate::errno::{errno_label, strerror};
#[cfg(feature = "serde")]
use crate::fixed::to_f64;
use crate::fixed::{format_f64, format_vector, parse_vector};
use crate::vector::{vector_ok, Hit, Metric, TopK};
use std::io::{self, Write};

pub const USAGE: &str = "\
usage: vexctl [--json] COMMAND ...
  add FILE [--tag KEY=VALUE] V1,V2,...       attach/replace FILE's vector (and tag)
  get FILE [--show-tag]                       print FILE's vector (or its tag)
  del FILE                                    detach FILE's vector
  search DIR --k K --metric l2|dot [--no-index] [--flags N] V1,...
  hybrid-search DIR --k K --metric l2|dot [--no-index] [--flags N]
        [--name-prefix P] [--name-substr S] [--tag-eq KEY=VALUE] [--filter-none] V1,...
  index DIR create|drop|rebuild|info
  stats DIR
  expect-search --k K --metric l2|dot [--stat] [filters as hybrid-search]
        QUERY NAME=V1,...[=TAG] ...           expected search output, computed in userspace
  bench DIR [--n N] [--k K] [--reps R] [--queries Q] [--seed S]
                                              benchmark, prints KTAP (`vexctl bench --help`)
options:
  --json      JSON output (needs the `serde` feature)
  --metric    also accepts a raw number (sent to the kernel unchecked, for tests)
  -h, --help  this text
Vectors are comma-separated decimals, converted to Q16.16 (NaN/inf and values
outside [-32768, 32767.99998] are rejected). Search output: `RANK NAME SCORE`.
Exit status: 0 ok, 1 operation failed (errno on stderr), 2 usage error.
";

/// Metric as given on the command line: a known one or a raw number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricArg {
    Known(Metric),
    Raw(u32),
}

impl MetricArg {
    pub fn raw(self) -> u32 {
        match self {
            MetricArg::Known(m) => m.raw(),
            MetricArg::Raw(r) => r,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchArgs {
    pub dir: String,
    pub k: u32,
    pub metric: MetricArg,
    pub flags: u32,
    pub query: Vec<i32>,
    pub filters: Vec<FilterSpec>,
}

/// One `NAME=V1,...[=TAG]` entry of expect-search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectEntry {
    pub path: String,
    pub vector: Vec<i32>,
    pub tag: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Add {
        file: String,
        vector: Vec<i32>,
        tag: Vec<u8>,
    },
    Get {
        file: String,
        show_tag: bool,
    },
    Del {
        file: String,
    },
    Search(SearchArgs),
    HybridSearch(SearchArgs),
    Index {
        dir: String,
        op: u32,
    },
    Stats {
        dir: String,
    },
    ExpectSearch {
        k: u32,
        metric: Metric,
        stat: bool,
        query: Vec<i32>,
        filters: Vec<FilterSpec>,
        entries: Vec<ExpectEntry>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    pub json: bool,
    pub cmd: Command,
}

/// Splits arguments into options (`--name[=value]`, `-h`) and positionals.
/// A token starting with `-` followed by a digit or `.` is a positional
/// (negative vector), and everything after `--` is positional.
struct Args {
    opts: Vec<(String, Option<String>)>,
    pos: Vec<String>,
}

/// Options that take a value.
const VALUE_OPTS: &[&str] = &[
    "--k",
    "--metric",
    "--flags",
    "--tag",
    "--name-prefix",
    "--name-substr",
    "--tag-eq",
];

fn split_args(args: &[String]) -> Result<Args, String> {
    let mut opts = Vec::new();
    let mut pos = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            pos.extend(it.by_ref().cloned());
            break;
        }
        let looks_negative = a.len() > 1
            && a.starts_with('-')
            && a[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.');
        if a.starts_with('-') && a.len() > 1 && !looks_negative {
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (a.clone(), None),
            };
            if VALUE_OPTS.contains(&name.as_str()) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("option {} needs a value", name))?,
                };
                opts.push((name, Some(v)));
            } else {
                if inline.is_some() {
                    return Err(format!("option {} takes no value", name));
                }
                opts.push((name, None));
            }
        } else {
            pos.push(a.clone());
        }
    }
    Ok(Args { opts, pos })
}

impl Args {
    fn take_flag(&mut self, name: &str) -> bool {
        let before = self.opts.len();
        self.opts.retain(|(n, _)| n != name);
        before != self.opts.len()
    }

    fn take_value(&mut self, name: &str) -> Result<Option<String>, String> {
        let mut found = None;
        let mut err = None;
        self.opts.retain(|(n, v)| {
            if n == name {
                if found.is_some() {
                    err = Some(format!("option {} given twice", name));
                }
                found = v.clone();
                false
            } else {
                true
            }
        });
        match err {
            Some(e) => Err(e),
            None => Ok(found),
        }
    }

    /// Filter options in command-line order.
    fn take_filters(&mut self) -> Result<Vec<FilterSpec>, String> {
        let mut filters = Vec::new();
        let mut rest = Vec::new();
        for (n, v) in self.opts.drain(..) {
            let kind = match n.as_str() {
                "--name-prefix" => VEXFS_FILTER_NAME_PREFIX,
                "--name-substr" => VEXFS_FILTER_NAME_SUBSTR,
                "--tag-eq" => VEXFS_FILTER_TAG_EQ,
                "--filter-none" => VEXFS_FILTER_NONE,
                _ => {
                    rest.push((n, v));
                    continue;
                }
            };
            let value = v.unwrap_or_default().into_bytes();
            if value.len() > VEXFS_FILTER_VALUE_LEN {
                return Err(format!(
                    "{} value longer than {} bytes",
                    n, VEXFS_FILTER_VALUE_LEN
                ));
            }
            filters.push(FilterSpec { kind, value });
        }
        self.opts = rest;
        if filters.len() > VEXFS_FILTER_MAX {
            return Err(format!("at most {} filters", VEXFS_FILTER_MAX));
        }
        Ok(filters)
    }

    fn finish(&self, cmd: &str) -> Result<(), String> {
        if let Some((n, _)) = self.opts.first() {
            return Err(format!("{}: unknown option {}", cmd, n));
        }
        Ok(())
    }
}

fn parse_u32(what: &str, s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .map_err(|_| format!("{} must be a non-negative integer, got {:?}", what, s))
}

fn parse_metric_arg(s: &str) -> Result<MetricArg, String> {
    if let Some(m) = Metric::parse(s) {
        return Ok(MetricArg::Known(m));
    }
    s.parse::<u32>()
        .map(MetricArg::Raw)
        .map_err(|_| format!("--metric must be l2 or dot, got {:?}", s))
}

fn parse_tag(s: &str) -> Result<Vec<u8>, String> {
    if s.len() >= VEXFS_TAG_LEN {
        return Err(format!("tag longer than {} bytes", VEXFS_TAG_LEN - 1));
    }
    Ok(s.as_bytes().to_vec())
}

fn expect_positionals(cmd: &str, pos: &[String], n: usize, what: &str) -> Result<(), String> {
    if pos.len() != n {
        return Err(format!(
            "{}: expected {}, got {} argument(s)",
            cmd,
            what,
            pos.len()
        ));
    }
    Ok(())
}

fn parse_search(cmd: &str, a: &mut Args, hybrid: bool) -> Result<SearchArgs, String> {
    let k = parse_u32(
        "--k",
        &a.take_value("--k")?
            .ok_or(format!("{}: --k is required", cmd))?,
    )?;
    let metric = parse_metric_arg(
        &a.take_value("--metric")?
            .ok_or(format!("{}: --metric is required", cmd))?,
    )?;
    let mut flags = match a.take_value("--flags")? {
        Some(f) => parse_u32("--flags", &f)?,
        None => 0,
    };
    if a.take_flag("--no-index") {
        flags |= VEXFS_SEARCH_F_NO_INDEX;
    }
    let filters = if hybrid {
        a.take_filters()?
    } else {
        Vec::new()
    };
    a.finish(cmd)?;
    expect_positionals(cmd, &a.pos, 2, "DIR and a query vector")?;
    let query = parse_vector(&a.pos[1])?;
    Ok(SearchArgs {
        dir: a.pos[0].clone(),
        k,
        metric,
        flags,
        query,
        filters,
    })
}

fn parse_entry(s: &str) -> Result<ExpectEntry, String> {
    let (path, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("entry {:?} is not NAME=V1,...", s))?;
    if path.is_empty() {
        return Err(format!("entry {:?} has an empty name", s));
    }
    let (vec, tag) = match rest.split_once('=') {
        Some((v, t)) => (v, parse_tag(t)?),
        None => (rest, Vec::new()),
    };
    Ok(ExpectEntry {
        path: path.to_string(),
        vector: parse_vector(vec)?,
        tag,
    })
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Cli, String> {
    let mut a = split_args(args)?;
    let json = a.take_flag("--json");
    if a.take_flag("--help")
        || a.take_flag("-h")
        || a.pos.first().map(String::as_str) == Some("help")
    {
        return Ok(Cli {
            json,
            cmd: Command::Help,
        });
    }
    if a.pos.is_empty() {
        return Err("missing command".to_string());
    }
    let cmd_name = a.pos.remove(0);
    let c = cmd_name.as_str();
    let cmd = match c {
        "add" => {
            let tag = match a.take_value("--tag")? {
                Some(t) => parse_tag(&t)?,
                None => Vec::new(),
            };
            a.finish(c)?;
            expect_positionals(c, &a.pos, 2, "FILE and a vector")?;
            Command::Add {
                file: a.pos[0].clone(),
                vector: parse_vector(&a.pos[1])?,
                tag,
            }
        }
        "get" => {
            let show_tag = a.take_flag("--show-tag");
            a.finish(c)?;
            expect_positionals(c, &a.pos, 1, "FILE")?;
            Command::Get {
                file: a.pos[0].clone(),
                show_tag,
            }
        }
        "del" => {
            a.finish(c)?;
            expect_positionals(c, &a.pos, 1, "FILE")?;
            Command::Del {
                file: a.pos[0].clone(),
            }
        }
        "search" => Command::Search(parse_search(c, &mut a, false)?),
        "hybrid-search" => Command::HybridSearch(parse_search(c, &mut a, true)?),
        "index" => {
            a.finish(c)?;
            expect_positionals(c, &a.pos, 2, "DIR and create|drop|rebuild|info")?;
            let op = match a.pos[1].as_str() {
                "create" => VEXFS_INDEX_CREATE,
                "drop" => VEXFS_INDEX_DROP,
                "rebuild" => VEXFS_INDEX_REBUILD,
                "info" => VEXFS_INDEX_INFO,
                other => other
                    .parse::<u32>()
                    .map_err(|_| format!("index: unknown operation {:?}", other))?,
            };
            Command::Index {
                dir: a.pos[0].clone(),
                op,
            }
        }
        "stats" => {
            a.finish(c)?;
            expect_positionals(c, &a.pos, 1, "DIR")?;
            Command::Stats {
                dir: a.pos[0].clone(),
            }
        }
        "expect-search" => {
            let k = parse_u32(
                "--k",
                &a.take_value("--k")?
                    .ok_or("expect-search: --k is required")?,
            )?;
            if k == 0 || k > VEXFS_MAX_K {
                return Err(format!("expect-search: --k must be 1..{}", VEXFS_MAX_K));
            }
            let metric = match parse_metric_arg(
                &a.take_value("--metric")?
                    .ok_or("expect-search: --metric is required")?,
            )? {
                MetricArg::Known(m) => m,
                MetricArg::Raw(_) => {
                    return Err("expect-search: --metric must be l2 or dot".to_string())
                }
            };
            let stat = a.take_flag("--stat");
            let filters = a.take_filters()?;
            a.finish(c)?;
            if a.pos.is_empty() {
                return Err("expect-search: missing QUERY".to_string());
            }
            let query = parse_vector(&a.pos[0])?;
            if !vector_ok(&query) {
                return Err(
                    "expect-search: query dim or component out of kernel range (|x| <= 256)"
                        .to_string(),
                );
            }
            let mut entries = Vec::new();
            for e in &a.pos[1..] {
                let e = parse_entry(e)?;
                if e.vector.len() != query.len() || !vector_ok(&e.vector) {
                    return Err(format!(
                        "expect-search: {}: dim != query dim or component out of range",
                        e.path
                    ));
                }
                entries.push(e);
            }
            Command::ExpectSearch {
                k,
                metric,
                stat,
                query,
                filters,
                entries,
            }
        }
        "bench" => return Err("bench must be the first argument (it has no --json)".to_string()),
        other => return Err(format!("unknown command {:?}", other)),
    };
    if json && !cfg!(feature = "serde") {
        return Err("--json needs vexctl built with the `serde` feature".to_string());
    }
    Ok(Cli { json, cmd })
}

// ------------------------------------------------------------ expect-search

fn last_component(path: &str) -> &str {
    let t = path.trim_end_matches('/');
    match t.rfind('/') {
        Some(i) => &t[i + 1..],
        None => t,
    }
}

fn filter_matches(f: &FilterSpec, name: &[u8], tag: &[u8]) -> bool {
    crate::filter::matches_one(f.kind, &f.value, name, tag)
}

/// Computes, with the same maths as the kernel, what SEARCH / HYBRID_SEARCH
/// should return for `entries`. Inode numbers: the entry's position (1-based)
/// or, with `stat`, `lstat(path).st_ino`.
pub fn expect_search(
    k: u32,
    metric: Metric,
    stat: bool,
    query: &[i32],
    filters: &[FilterSpec],
    entries: &[ExpectEntry],
) -> io::Result<SearchOutcome> {
    use std::os::unix::fs::MetadataExt;
    let mut buf = vec![
        Hit {
            ino: 0,
            score: 0,
            item: 0usize
        };
        k as usize
    ];
    let mut top = TopK::new(metric, &mut buf);
    let mut candidates = 0u64;
    for (i, e) in entries.iter().enumerate() {
        let name = last_component(&e.path).as_bytes();
        if !filters.iter().all(|f| filter_matches(f, name, &e.tag)) {
            continue;
        }
        candidates += 1;
        let ino = if stat {
            std::fs::symlink_metadata(&e.path)?.ino()
        } else {
            i as u64 + 1
        };
        top.push(Hit {
            ino,
            score: crate::vector::score(metric, query, &e.vector),
            item: i,
        });
    }
    let hits = top
        .finish()
        .iter()
        .map(|h| {
            let full = last_component(&entries[h.item].path).as_bytes();
            let name = &full[..full.len().min(VEXFS_NAME_LEN - 1)];
            SearchHit {
                ino: h.ino,
                score: h.score,
                name: String::from_utf8_lossy(name).into_owned(),
            }
        })
        .collect();
    Ok(SearchOutcome {
        hits,
        nr_candidates: candidates,
        nr_examined: if filters.is_empty() {
            None
        } else {
            Some(entries.len() as u64)
        },
        index_used: false,
        index_generation: 0,
    })
}

// ------------------------------------------------------------ output

/// Score (Q16.16 in i64) as a float with at most 4 decimals.
pub fn format_score(score: i64) -> String {
    format_f64(score as f64 / VEXFS_FIXED_ONE as f64)
}

/// `RANK NAME SCORE` lines.
pub fn format_hits(hits: &[SearchHit]) -> String {
    let mut s = String::new();
    for (i, h) in hits.iter().enumerate() {
        s.push_str(&format!("{} {} {}\n", i + 1, h.name, format_score(h.score)));
    }
    s
}

#[cfg(feature = "serde")]
mod json {
    use super::*;
    use serde_json::{json, Value};

    pub fn search(op: &str, o: &SearchOutcome) -> Value {
        let results: Vec<Value> = o
            .hits
            .iter()
            .enumerate()
            .map(|(i, h)| {
                json!({"rank": i + 1, "name": h.name, "ino": h.ino,
                       "score": h.score as f64 / VEXFS_FIXED_ONE as f64, "score_raw": h.score})
            })
            .collect();
        let mut v = json!({"op": op, "nr_results": o.hits.len(), "nr_candidates": o.nr_candidates,
                           "index_used": o.index_used, "index_generation": o.index_generation,
                           "results": results});
        if let Some(n) = o.nr_examined {
            v["nr_examined"] = json!(n);
        }
        v
    }
}

/// A failed operation: `vexctl: <op> <path>: <strerror> (errno=NAME)`.
pub fn op_error(op: &str, path: &str, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!(
            "vexctl: {} {}: {} (errno={})",
            op,
            path,
            strerror(n),
            errno_label(n)
        ),
        None => format!("vexctl: {} {}: {}", op, path, e),
    }
}

/// Executes a parsed command, writing to `out`/`err`. Returns the exit code.
pub fn execute(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match run_cmd(cli, out) {
        Ok(()) => 0,
        Err((op, path, e)) => {
            let _ = writeln!(err, "{}", op_error(op, &path, &e));
            1
        }
    }
}

type OpResult = Result<(), (&'static str, String, io::Error)>;

fn run_cmd(cli: &Cli, out: &mut dyn Write) -> OpResult {
    let json = cli.json;
    let _ = json; // unused without serde
    let w = |out: &mut dyn Write, s: &str| {
        let _ = out.write_all(s.as_bytes());
    };
    match &cli.cmd {
        Command::Help => w(out, USAGE),
        Command::Add { file, vector, tag } => {
            let v = Vexfs::open_write(file).map_err(|e| ("add", file.clone(), e))?;
            v.add_vector(vector, tag)
                .map_err(|e| ("add", file.clone(), e))?;
        }
        Command::Del { file } => {
            let v = Vexfs::open_write(file).map_err(|e| ("del", file.clone(), e))?;
            v.del_vector().map_err(|e| ("del", file.clone(), e))?;
        }
        Command::Get { file, show_tag } => {
            let v = Vexfs::open(file).map_err(|e| ("get", file.clone(), e))?;
            let (vec, tag) = v.get_vector().map_err(|e| ("get", file.clone(), e))?;
            let tag = String::from_utf8_lossy(&tag).into_owned();
            #[cfg(feature = "serde")]
            if json {
                let floats: Vec<f64> = vec.iter().map(|&q| to_f64(q)).collect();
                let j =
                    serde_json::json!({"dim": vec.len(), "vector": floats, "raw": vec, "tag": tag});
                w(out, &format!("{}\n", j));
                return Ok(());
            }
            if *show_tag {
                w(out, &format!("{}\n", tag));
            } else {
                w(out, &format!("{}\n", format_vector(&vec)));
            }
        }
        Command::Search(s) | Command::HybridSearch(s) => {
            let hybrid = matches!(cli.cmd, Command::HybridSearch(_));
            let op = if hybrid { "hybrid-search" } else { "search" };
            let v = Vexfs::open(&s.dir).map_err(|e| (op, s.dir.clone(), e))?;
            let o = if hybrid {
                v.hybrid_search(s.metric.raw(), s.k, s.flags, &s.query, &s.filters)
            } else {
                v.search(s.metric.raw(), s.k, s.flags, &s.query)
            }
            .map_err(|e| (op, s.dir.clone(), e))?;
            #[cfg(feature = "serde")]
            if json {
                w(out, &format!("{}\n", json::search(op, &o)));
                return Ok(());
            }
            w(out, &format_hits(&o.hits));
        }
        Command::ExpectSearch {
            k,
            metric,
            stat,
            query,
            filters,
            entries,
        } => {
            let o = expect_search(*k, *metric, *stat, query, filters, entries)
                .map_err(|e| ("expect-search", String::from("(stat)"), e))?;
            #[cfg(feature = "serde")]
            if json {
                let op = if filters.is_empty() {
                    "search"
                } else {
                    "hybrid-search"
                };
                w(out, &format!("{}\n", json::search(op, &o)));
                return Ok(());
            }
            w(out, &format_hits(&o.hits));
        }
        Command::Index { dir, op } => {
            let v = Vexfs::open(dir).map_err(|e| ("index", dir.clone(), e))?;
            let (r, resp) = v.manage_index(*op);
            r.map_err(|e| ("index", dir.clone(), e))?;
            #[cfg(feature = "serde")]
            if json {
                let j = serde_json::json!({"present": resp.present, "dim": resp.dim,
                    "nr_entries": resp.nr_entries, "generation": resp.generation, "bytes": resp.bytes});
                w(out, &format!("{}\n", j));
                return Ok(());
            }
            w(
                out,
                &format!(
                    "present {}\ndim {}\nnr_entries {}\ngeneration {}\nbytes {}\n",
                    resp.present, resp.dim, resp.nr_entries, resp.generation, resp.bytes
                ),
            );
        }
        Command::Stats { dir } => {
            let v = Vexfs::open(dir).map_err(|e| ("stats", dir.clone(), e))?;
            let st = v.stats().map_err(|e| ("stats", dir.clone(), e))?;
            let fields: [(&str, u64); 11] = [
                ("abi_version", st.abi_version as u64),
                ("dim", st.dim as u64),
                ("nr_vectors", st.nr_vectors),
                ("vectors_added", st.vectors_added),
                ("vectors_removed", st.vectors_removed),
                ("searches", st.searches),
                ("hybrid_searches", st.hybrid_searches),
                ("index_builds", st.index_builds),
                ("index_present", st.index_present as u64),
                ("index_entries", st.index_entries),
                ("index_generation", st.index_generation),
            ];
            #[cfg(feature = "serde")]
            if json {
                let m: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                    .collect();
                w(out, &format!("{}\n", serde_json::Value::Object(m)));
                return Ok(());
            }
            for (k, v) in fields {
                w(out, &format!("{} {}\n", k, v));
            }
        }
    }
    Ok(())
}

/// Entry point used by the `vexctl` binary. Returns the exit code.
pub fn main_with_args(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if args.first().map(String::as_str) == Some("bench") {
        return crate::bench::main(&args[1..], out, err);
    }
    match parse(args) {
        Ok(cli) => execute(&cli, out, err),
        Err(msg) => {
            let _ = writeln!(err, "vexctl: {}", msg);
            let _ = err.write_all(USAGE.as_bytes());
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &str) -> Result<Cli, String> {
        let v: Vec<String> = args.split_whitespace().map(String::from).collect();
        parse(&v)
    }

    #[test]
    fn parse_add_get_del() {
        let c = p("add /m/a 1,-2.5,0.25").unwrap();
        assert_eq!(
            c.cmd,
            Command::Add {
                file: "/m/a".into(),
                vector: vec![65536, -163840, 16384],
                tag: vec![]
            }
        );
        assert!(!c.json);
        let c = p("add /m/a --tag color=red 1,2").unwrap();
        assert_eq!(
            c.cmd,
            Command::Add {
                file: "/m/a".into(),
                vector: vec![65536, 131072],
                tag: b"color=red".to_vec()
            }
        );
        // negative first component is a positional, not an option
        let c = p("add /m/a -1,2").unwrap();
        assert!(matches!(c.cmd, Command::Add { ref vector, .. } if vector[0] == -65536));
        assert_eq!(
            p("get /m/a").unwrap().cmd,
            Command::Get {
                file: "/m/a".into(),
                show_tag: false
            }
        );
        assert_eq!(
            p("get --show-tag /m/a").unwrap().cmd,
            Command::Get {
                file: "/m/a".into(),
                show_tag: true
            }
        );
        assert_eq!(
            p("del /m/a").unwrap().cmd,
            Command::Del {
                file: "/m/a".into()
            }
        );
    }

    #[test]
    fn parse_search_variants() {
        let c = p("search /m --k 3 --metric dot 1,0").unwrap();
        let want = SearchArgs {
            dir: "/m".into(),
            k: 3,
            metric: MetricArg::Known(Metric::Dot),
            flags: 0,
            query: vec![65536, 0],
            filters: vec![],
        };
        assert_eq!(c.cmd, Command::Search(want.clone()));
        // option order and --opt=value form do not matter
        assert_eq!(
            p("search --metric=dot /m 1,0 --k=3").unwrap().cmd,
            Command::Search(want)
        );
        let c = p("search /m --k 0 --metric 7 --no-index 1").unwrap();
        match c.cmd {
            Command::Search(s) => {
                assert_eq!(
                    (s.k, s.metric, s.flags),
                    (0, MetricArg::Raw(7), VEXFS_SEARCH_F_NO_INDEX)
                );
            }
            other => panic!("{other:?}"),
        }
        let c = p(
            "hybrid-search /m --k 2 --metric l2 --name-prefix doc --tag-eq a=b --name-substr x 1",
        )
        .unwrap();
        match c.cmd {
            Command::HybridSearch(s) => assert_eq!(
                s.filters,
                vec![
                    FilterSpec {
                        kind: VEXFS_FILTER_NAME_PREFIX,
                        value: b"doc".to_vec()
                    },
                    FilterSpec {
                        kind: VEXFS_FILTER_TAG_EQ,
                        value: b"a=b".to_vec()
                    },
                    FilterSpec {
                        kind: VEXFS_FILTER_NAME_SUBSTR,
                        value: b"x".to_vec()
                    },
                ]
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parse_index_stats_json() {
        assert_eq!(
            p("index /m create").unwrap().cmd,
            Command::Index {
                dir: "/m".into(),
                op: VEXFS_INDEX_CREATE
            }
        );
        assert_eq!(
            p("index /m info").unwrap().cmd,
            Command::Index {
                dir: "/m".into(),
                op: VEXFS_INDEX_INFO
            }
        );
        assert_eq!(
            p("index /m 9").unwrap().cmd,
            Command::Index {
                dir: "/m".into(),
                op: 9
            }
        );
        assert_eq!(
            p("stats /m").unwrap().cmd,
            Command::Stats { dir: "/m".into() }
        );
        assert_eq!(p("--help").unwrap().cmd, Command::Help);
        let j = p("--json stats /m");
        if cfg!(feature = "serde") {
            assert!(j.unwrap().json);
        } else {
            assert!(j.unwrap_err().contains("serde"));
        }
    }

    #[test]
    fn parse_rejects_bad_usage() {
        for bad in [
            "",
            "frobnicate /m",
            "add /m/a",
            "add /m/a 1,nan",
            "add /m/a 1,inf",
            "add /m/a 40000",
            "add /m/a 1,,2",
            "add /m/a 1 extra",
            "get",
            "search /m --metric l2 1",
            "search /m --k 1 1",
            "search /m --k -1 --metric l2 1",
            "search /m --k 1 --metric cosine 1",
            "search /m --k 1 --k 2 --metric l2 1",
            "search /m --k 1 --metric l2 --name-prefix a 1",
            "search /m --k",
            "hybrid-search /m --k 1 --metric l2 --name-prefix a --name-prefix b --name-prefix c --name-prefix d --name-prefix e 1",
            "index /m explode",
            "stats",
            "stats /m --bogus",
            "expect-search --k 0 --metric l2 1",
            "expect-search --k 1 --metric 5 1",
            "expect-search --k 1 --metric l2 300",
            "expect-search --k 1 --metric l2 1,2 a=1",
            "expect-search --k 1 --metric l2 1 novector",
        ] {
            assert!(p(bad).is_err(), "accepted: {bad:?}");
        }
        let long = format!("add /m/a --tag {} 1", "x".repeat(64));
        assert!(p(&long).is_err());
        let long = format!(
            "hybrid-search /m --k 1 --metric l2 --name-prefix {} 1",
            "x".repeat(65)
        );
        assert!(p(&long).is_err());
    }

    fn expect(args: &str) -> String {
        let c = p(args).unwrap();
        match c.cmd {
            Command::ExpectSearch {
                k,
                metric,
                stat,
                query,
                filters,
                entries,
            } => format_hits(
                &expect_search(k, metric, stat, &query, &filters, &entries)
                    .unwrap()
                    .hits,
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expect_search_output() {
        assert_eq!(
            expect("expect-search --k 2 --metric l2 0,0 a=3,4 b=1,0 c=0,1"),
            "1 b 1\n2 c 1\n"
        );
        assert_eq!(
            expect("expect-search --k 5 --metric dot 1,1 /x/a=3,4 /x/b=-1,0.5"),
            "1 a 7\n2 b -0.5\n"
        );
        // tag and name filters
        assert_eq!(
            expect("expect-search --k 5 --metric l2 --tag-eq t=1 --name-prefix d 0 d1=1=t=1 d2=2=t=2 e1=0=t=1 d3=3=t=1"),
            "1 d1 1\n2 d3 9\n"
        );
        assert_eq!(
            expect("expect-search --k 5 --metric l2 --name-substr ta 0 data=1 meta=2 x=0"),
            "1 data 1\n2 meta 4\n"
        );
        assert_eq!(format_score(-1), "0");
        assert_eq!(format_score(65536 * 3 / 2), "1.5");
    }

    #[test]
    fn error_message_format() {
        let e = io::Error::from_raw_os_error(libc::EINVAL);
        assert_eq!(
            op_error("search", "/mnt", &e),
            "vexctl: search /mnt: Invalid argument (errno=EINVAL)"
        );
    }
}

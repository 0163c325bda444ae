//! The Rust side of the ABI dump: the same lines, in the same format and
//! order, as `kernel/tests/abi_dump.c` prints for the C header.
//!
//! ```text
//! struct <c_name> size <n> align <n>
//! field <c_struct>.<field> offset <n> size <n>
//! ioctl <NAME> 0x<8 lowercase hex>
//! const <NAME> <decimal>
//! ```
//! sorted byte-wise (`LC_ALL=C sort`).

use crate::abi::*;
use core::mem::{align_of, offset_of, size_of};

/// Size of the type a field projection points to.
fn field_size<S, F>(_project: fn(&S) -> &F) -> usize {
    size_of::<F>()
}

macro_rules! dump_struct {
    ($out:ident, $ty:ty, $cname:literal, [$($f:ident),* $(,)?]) => {{
        $out.push(format!("struct {} size {} align {}", $cname, size_of::<$ty>(), align_of::<$ty>()));
        $(
            $out.push(format!(
                "field {}.{} offset {} size {}",
                $cname,
                stringify!($f),
                offset_of!($ty, $f),
                field_size::<$ty, _>(|s| &s.$f),
            ));
        )*
    }};
}

macro_rules! dump_consts {
    ($out:ident, $($name:ident),* $(,)?) => {
        $( $out.push(format!("const {} {}", stringify!($name), $name as i64)); )*
    };
}

macro_rules! dump_ioctls {
    ($out:ident, $($name:ident),* $(,)?) => {
        $( $out.push(format!("ioctl {} 0x{:08x}", stringify!($name), $name)); )*
    };
}

/// All dump lines, sorted byte-wise.
pub fn dump_lines() -> Vec<String> {
    let mut o: Vec<String> = Vec::new();
    dump_struct!(
        o,
        VectorRequest,
        "vexfs_vector_request",
        [dim, flags, data, tag, reserved]
    );
    dump_struct!(o, SearchResult, "vexfs_search_result", [ino, score, name]);
    dump_struct!(
        o,
        SearchRequest,
        "vexfs_search_request",
        [dim, k, metric, flags, query, results, reserved]
    );
    dump_struct!(
        o,
        SearchResponse,
        "vexfs_search_response",
        [nr_results, flags, nr_candidates, index_generation, reserved]
    );
    dump_struct!(o, Search, "vexfs_search", [req, resp]);
    dump_struct!(o, Filter, "vexfs_filter", [kind, len, reserved, value]);
    dump_struct!(
        o,
        HybridSearchRequest,
        "vexfs_hybrid_search_request",
        [dim, k, metric, flags, query, results, nr_filters, __pad, filters, reserved]
    );
    dump_struct!(
        o,
        HybridSearchResponse,
        "vexfs_hybrid_search_response",
        [
            nr_results,
            flags,
            nr_candidates,
            nr_examined,
            index_generation,
            reserved
        ]
    );
    dump_struct!(o, HybridSearch, "vexfs_hybrid_search", [req, resp]);
    dump_struct!(
        o,
        ManageIndexRequest,
        "vexfs_manage_index_request",
        [op, flags, reserved]
    );
    dump_struct!(
        o,
        ManageIndexResponse,
        "vexfs_manage_index_response",
        [present, dim, nr_entries, generation, bytes, reserved]
    );
    dump_struct!(o, ManageIndex, "vexfs_manage_index", [req, resp]);
    dump_struct!(
        o,
        Stats,
        "vexfs_stats",
        [
            abi_version,
            dim,
            nr_vectors,
            vectors_added,
            vectors_removed,
            searches,
            hybrid_searches,
            index_builds,
            index_present,
            __pad,
            index_entries,
            index_generation,
            reserved
        ]
    );
    dump_ioctls!(
        o,
        VEXFS_IOC_ADD_VECTOR,
        VEXFS_IOC_GET_VECTOR,
        VEXFS_IOC_SEARCH,
        VEXFS_IOC_HYBRID_SEARCH,
        VEXFS_IOC_MANAGE_INDEX,
        VEXFS_IOC_GET_STATS,
        VEXFS_IOC_DEL_VECTOR,
    );
    dump_consts!(
        o,
        VEXFS_IOC_MAGIC,
        VEXFS_ABI_VERSION,
        VEXFS_SUPER_MAGIC,
        VEXFS_FIXED_SHIFT,
        VEXFS_FIXED_ONE,
        VEXFS_COMPONENT_MAX,
        VEXFS_DEFAULT_DIM,
        VEXFS_MAX_DIM,
        VEXFS_MAX_K,
        VEXFS_NAME_LEN,
        VEXFS_TAG_LEN,
        VEXFS_FILTER_MAX,
        VEXFS_FILTER_VALUE_LEN,
        VEXFS_METRIC_L2,
        VEXFS_METRIC_DOT,
        VEXFS_SEARCH_F_NO_INDEX,
        VEXFS_SEARCH_F_ALL,
        VEXFS_SEARCH_RF_INDEX,
        VEXFS_INDEX_CREATE,
        VEXFS_INDEX_DROP,
        VEXFS_INDEX_REBUILD,
        VEXFS_INDEX_INFO,
        VEXFS_FILTER_NONE,
        VEXFS_FILTER_NAME_PREFIX,
        VEXFS_FILTER_NAME_SUBSTR,
        VEXFS_FILTER_TAG_EQ,
    );
    o.sort();
    o
}

/// The dump as one string, one line each, trailing newline.
pub fn dump_text() -> String {
    let mut s = dump_lines().join("\n");
    s.push('\n');
    s
}

/// One parsed dump line, keyed for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// e.g. `field vexfs_search_request.k`, `struct vexfs_stats`, `ioctl VEXFS_IOC_SEARCH`
    pub key: String,
    /// the rest of the line, e.g. `offset 4 size 4`
    pub value: String,
}

/// Splits a dump line into key (kind + name) and value.
pub fn parse_line(line: &str) -> Option<Entry> {
    let mut it = line.splitn(3, ' ');
    let kind = it.next()?;
    let name = it.next()?;
    let value = it.next()?;
    if !matches!(kind, "struct" | "field" | "ioctl" | "const") {
        return None;
    }
    Some(Entry {
        key: format!("{} {}", kind, name),
        value: value.to_string(),
    })
}

fn describe(value: &str) -> String {
    // "offset 4 size 4" -> "offset 4 size 4"; "0x..." / decimal stay as they are
    value.to_string()
}

/// Compares a C dump with the Rust dump. Returns one human-readable
/// message per difference (empty if identical), e.g.
/// `field vexfs_search_request.k: C offset 4 size 4, Rust offset 8 size 4`.
pub fn compare(c_dump: &str, rust_dump: &str) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut problems = Vec::new();
    let mut parse = |text: &str, who: &str| {
        let mut map = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match parse_line(line) {
                Some(e) => {
                    if map.insert(e.key.clone(), e.value).is_some() {
                        problems.push(format!(
                            "{}: duplicate entry in {} dump (line {})",
                            e.key,
                            who,
                            i + 1
                        ));
                    }
                }
                None => problems.push(format!(
                    "unparsable line {} in {} dump: {:?}",
                    i + 1,
                    who,
                    line
                )),
            }
        }
        map
    };
    let c = parse(c_dump, "C");
    let r = parse(rust_dump, "Rust");
    for (k, cv) in &c {
        match r.get(k) {
            None => problems.push(format!("{}: missing in Rust (C {})", k, describe(cv))),
            Some(rv) if rv != cv => {
                problems.push(format!("{}: C {}, Rust {}", k, describe(cv), describe(rv)))
            }
            _ => {}
        }
    }
    for (k, rv) in &r {
        if !c.contains_key(k) {
            problems.push(format!(
                "{}: extra in Rust (Rust {}), not in C",
                k,
                describe(rv)
            ));
        }
    }
    // order check (both must be C-sorted): only meaningful once the sets agree
    if problems.is_empty() {
        let cl: Vec<&str> = c_dump.lines().filter(|l| !l.trim().is_empty()).collect();
        let rl: Vec<&str> = rust_dump.lines().filter(|l| !l.trim().is_empty()).collect();
        for (i, (a, b)) in cl.iter().zip(rl.iter()).enumerate() {
            if a != b {
                problems.push(format!(
                    "line {} differs in order/format: C {:?}, Rust {:?}",
                    i + 1,
                    a,
                    b
                ));
                break;
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_is_sorted_and_complete() {
        let l = dump_lines();
        let mut s = l.clone();
        s.sort();
        assert_eq!(l, s);
        assert_eq!(l.iter().filter(|x| x.starts_with("struct ")).count(), 13);
        assert_eq!(l.iter().filter(|x| x.starts_with("ioctl ")).count(), 7);
        assert_eq!(l.iter().filter(|x| x.starts_with("const ")).count(), 26);
        assert!(l.contains(&"field vexfs_search_request.k offset 4 size 4".to_string()));
        assert!(
            l.contains(&"field vexfs_hybrid_search_request.filters offset 40 size 320".to_string())
        );
        assert!(l.contains(&"struct vexfs_stats size 112 align 8".to_string()));
        assert!(l.contains(&"ioctl VEXFS_IOC_SEARCH 0xc0585603".to_string()));
        assert!(l.contains(&"const VEXFS_IOC_MAGIC 86".to_string()));
        assert!(l.contains(&"const VEXFS_SUPER_MAGIC 1447385158".to_string()));
    }

    #[test]
    fn compare_reports_mismatches() {
        let rust = dump_text();
        assert!(compare(&rust, &rust).is_empty());
        let c = rust.replace(
            "field vexfs_search_request.k offset 4 size 4",
            "field vexfs_search_request.k offset 8 size 4",
        );
        let p = compare(&c, &rust);
        assert_eq!(
            p,
            vec![
                "field vexfs_search_request.k: C offset 8 size 4, Rust offset 4 size 4".to_string()
            ]
        );
        let c2 = format!("{}field vexfs_stats.extra offset 112 size 8\n", rust)
            .replace("ioctl VEXFS_IOC_DEL_VECTOR 0x00005607\n", "");
        let p = compare(&c2, &rust);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("field vexfs_stats.extra: missing in Rust"),
            "{p:?}"
        );
        assert!(
            p[1].contains("ioctl VEXFS_IOC_DEL_VECTOR: extra in Rust"),
            "{p:?}"
        );
    }
}

//! Unit tests of the device model (`store.rs`), run under both feature sets.
use super::*;
use crate::abi::{VEXFS_FILTER_NAME_PREFIX, VEXFS_FILTER_TAG_EQ};
use std::vec::Vec;

type S4 = Store<4, Vec<Entry<4>>, Vec<Row<4>>>;

fn store() -> S4 {
    Store::new(Vec::new(), Vec::new())
}

fn key(ino: u64) -> Key {
    Key { ino, dev: 7 }
}

fn tag(s: &str) -> [u8; VEXFS_TAG_LEN] {
    let mut t = [0u8; VEXFS_TAG_LEN];
    t[..s.len()].copy_from_slice(s.as_bytes());
    t
}

fn q16(v: &[f64]) -> Vec<i32> {
    v.iter().map(|x| (x * 65536.0) as i32).collect()
}

fn filter(kind: u32, value: &str) -> Filter {
    let mut f = Filter::zeroed();
    f.kind = kind;
    f.len = value.len() as u32;
    f.value[..value.len()].copy_from_slice(value.as_bytes());
    f
}

/// Runs a search and returns (ino, score, name) triples and the outcome.
fn run(
    s: &mut S4,
    metric: Metric,
    flags: u32,
    query: &[i32],
    filters: &[Filter],
    k: usize,
) -> (Vec<(u64, i64, String)>, Outcome) {
    let mut hits = vec![
        Hit {
            ino: 0,
            score: 0,
            item: key(0)
        };
        k
    ];
    let mut out = vec![SearchResult::zeroed(); k];
    let q = Query {
        metric,
        flags,
        query,
        filters,
        hybrid: !filters.is_empty(),
    };
    let o = s.search(&q, &mut hits, &mut out);
    let res = out[..o.nr_results as usize]
        .iter()
        .map(|r| {
            (
                r.ino,
                r.score,
                String::from_utf8_lossy(filter::until_nul(&r.name)).into_owned(),
            )
        })
        .collect();
    (res, o)
}

/// Straightforward model of the header's search: filter, score, sort, take k.
fn model(
    entries: &[(u64, &str, &str, Vec<i32>)],
    metric: Metric,
    query: &[i32],
    filters: &[Filter],
    k: usize,
) -> Vec<(u64, i64, String)> {
    let mut all: Vec<(u64, i64, String)> = entries
        .iter()
        .filter(|(_, n, t, _)| filter::matches(filters, n.as_bytes(), t.as_bytes()))
        .map(|(ino, n, _, v)| {
            (
                *ino,
                crate::vector::plain::score(metric, query, v),
                n.chars().take(63).collect(),
            )
        })
        .collect();
    all.sort_by(|a, b| metric.cmp_hits(a.1, a.0, b.1, b.0));
    all.truncate(k);
    all
}

fn fill(s: &mut S4) -> Vec<(u64, &'static str, &'static str, Vec<i32>)> {
    let long: &'static str = Box::leak(format!("long_{}", "x".repeat(80)).into_boxed_str());
    let rows = vec![
        (12, "doc_alpha", "kind=doc", q16(&[1.0, 0.0, 0.0, 0.0])),
        (3, "doc_beta", "kind=doc", q16(&[0.5, -1.25, 2.0, 0.0])),
        (40, "img_alpha", "kind=img", q16(&[-3.0, 0.75, 0.0, 1.0])),
        (5, "dup_a", "kind=dup", q16(&[1.0, 1.0, 1.0, 1.0])),
        (6, "dup_b", "kind=dup", q16(&[1.0, 1.0, 1.0, 1.0])),
        (9, "notes", "", q16(&[0.0, 0.0, 0.0, 0.0])),
        (77, long, "kind=doc", q16(&[-0.3, 0.1, 0.7, -0.9])),
    ];
    for (ino, name, t, v) in &rows {
        s.add(key(*ino), name.as_bytes(), &tag(t), v).unwrap();
    }
    rows
}

#[test]
fn search_equals_the_model_with_and_without_index() {
    let mut s = store();
    let rows = fill(&mut s);
    let queries = [
        q16(&[0.9, 0.1, 0.0, 0.0]),
        q16(&[1.0, 1.0, 1.0, 1.0]),
        q16(&[-1.0, 0.5, 0.0, -0.25]),
    ];
    let filter_sets: [Vec<Filter>; 3] = [
        vec![],
        vec![filter(VEXFS_FILTER_NAME_PREFIX, "doc")],
        vec![filter(VEXFS_FILTER_TAG_EQ, "kind=dup"), filter(0, "")],
    ];
    for indexed in [false, true] {
        if indexed {
            assert_eq!(s.manage(VEXFS_INDEX_CREATE).1, Ok(()));
        }
        for q in &queries {
            for fs in &filter_sets {
                for metric in [Metric::L2, Metric::Dot] {
                    for k in [1, 3, 256] {
                        let (got, o) = run(&mut s, metric, 0, q, fs, k);
                        assert_eq!(
                            got,
                            model(&rows, metric, q, fs, k),
                            "{metric:?} k={k} index={indexed}"
                        );
                        assert_eq!(o.flags, if indexed { VEXFS_SEARCH_RF_INDEX } else { 0 });
                        assert_eq!(o.nr_examined, rows.len() as u64);
                        let (scan, _) = run(&mut s, metric, VEXFS_SEARCH_F_NO_INDEX, q, fs, k);
                        assert_eq!(scan, got);
                    }
                }
            }
        }
    }
}

#[test]
fn names_are_truncated_in_results_but_filters_see_all() {
    let mut s = store();
    fill(&mut s);
    let (got, _) = run(
        &mut s,
        Metric::L2,
        0,
        &q16(&[0.0; 4]),
        &[filter(
            VEXFS_FILTER_NAME_PREFIX,
            &format!("long_{}", "x".repeat(59)),
        )],
        10,
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2.len(), VEXFS_NAME_LEN - 1);
}

#[test]
fn add_replace_get_del_and_counters() {
    let mut s = store();
    fill(&mut s);
    s.add(
        key(3),
        b"doc_beta",
        &tag("kind=memo"),
        &q16(&[0.25, 0.25, -0.5, 4.0]),
    )
    .unwrap();
    let e = s.get(key(3)).unwrap();
    assert_eq!(e.data.to_vec(), q16(&[0.25, 0.25, -0.5, 4.0]));
    assert_eq!(e.tag(), b"kind=memo");
    assert_eq!(
        s.get(Key { ino: 3, dev: 8 }).map(|e| e.key),
        None,
        "another filesystem's inode 3"
    );
    assert_eq!(s.del(key(3)), Ok(()));
    assert_eq!(s.del(key(3)), Err(ErrCode::NoData));
    assert!(s.get(key(3)).is_none());
    let st = s.stats();
    assert_eq!(
        (st.nr_vectors, st.vectors_added, st.vectors_removed),
        (6, 8, 1)
    );
    assert_eq!((st.abi_version, st.dim), (VEXFS_ABI_VERSION, 4));
    assert_eq!(
        s.add(key(1), b"x", &tag(""), &[1, 2, 3]),
        Err(ErrCode::Inval)
    );
    assert_eq!(
        s.add(key(1), b"x", &tag(""), &[0, 0, 1 << 25, 0]),
        Err(ErrCode::Inval)
    );
}

#[test]
fn index_lifecycle_follows_the_header() {
    let mut s = store();
    fill(&mut s);
    assert_eq!(s.manage(VEXFS_INDEX_DROP).1, Err(ErrCode::NoEnt));
    assert_eq!(s.manage(VEXFS_INDEX_REBUILD).1, Err(ErrCode::NoEnt));
    let (info, res) = s.manage(VEXFS_INDEX_INFO);
    assert_eq!(
        (info.present, info.bytes, info.generation, res),
        (0, 0, 0, Ok(()))
    );
    let (r, res) = s.manage(VEXFS_INDEX_CREATE);
    assert_eq!(
        (r.present, r.nr_entries, r.generation, r.dim, res),
        (1, 7, 1, 4, Ok(()))
    );
    assert!(r.bytes > 0);
    let (r, res) = s.manage(VEXFS_INDEX_CREATE);
    assert_eq!((r.present, r.generation, res), (1, 1, Err(ErrCode::Exist)));
    s.add(
        key(100),
        b"late",
        &tag("kind=doc"),
        &q16(&[0.9, 0.1, 0.0, 0.0]),
    )
    .unwrap();
    assert_eq!(s.manage(VEXFS_INDEX_INFO).0.nr_entries, 8);
    s.del(key(5)).unwrap();
    assert_eq!(s.manage(VEXFS_INDEX_INFO).0.nr_entries, 7);
    assert_eq!(s.manage(VEXFS_INDEX_REBUILD).0.generation, 2);
    let (r, res) = s.manage(VEXFS_INDEX_DROP);
    assert_eq!(
        (r.present, r.nr_entries, r.generation, r.bytes, res),
        (0, 0, 0, 0, Ok(()))
    );
    assert_eq!(
        s.manage(VEXFS_INDEX_CREATE).0.generation,
        3,
        "generations never repeat"
    );
    let st = s.stats();
    assert_eq!(
        (
            st.index_builds,
            st.index_present,
            st.index_entries,
            st.index_generation
        ),
        (3, 1, 7, 3)
    );
}

#[test]
fn argument_checks_in_the_c_order() {
    assert_eq!(check_search(4097, 0, 9, 9, 4), Err(ErrCode::TooBig));
    assert_eq!(check_search(3, 257, 0, 0, 4), Err(ErrCode::Inval));
    assert_eq!(check_search(4, 257, 9, 0, 4), Err(ErrCode::TooBig));
    assert_eq!(check_search(4, 0, 0, 0, 4), Err(ErrCode::Inval));
    assert_eq!(check_search(4, 1, 2, 0, 4), Err(ErrCode::Inval));
    assert_eq!(check_search(4, 1, 0, 2, 4), Err(ErrCode::Inval));
    assert_eq!(check_search(4, 256, 1, 1, 4), Ok(Metric::Dot));
    let mut req = VectorRequest::zeroed();
    req.dim = 4;
    assert_eq!(check_add(&req, 4), Ok(0));
    req.tag[..3].copy_from_slice(b"a=b");
    assert_eq!(check_add(&req, 4), Ok(3));
    req.tag[9] = 1;
    assert_eq!(check_add(&req, 4), Err(ErrCode::Inval));
    req.tag[9] = 0;
    req.dim = 5000;
    assert_eq!(check_add(&req, 4), Err(ErrCode::TooBig));
    req.dim = 4;
    req.flags = 1;
    assert_eq!(check_add(&req, 4), Err(ErrCode::Inval));
    let mut m = ManageIndexRequest::zeroed();
    assert_eq!(check_manage(&m), Ok(()));
    m.op = 4;
    assert_eq!(check_manage(&m), Err(ErrCode::Inval));
    assert_eq!(check_components(&[1 << 24, -(1 << 24)]), Ok(()));
    assert_eq!(check_components(&[(1 << 24) + 1]), Err(ErrCode::Inval));
}

/// Storage that fails to grow beyond `cap` items: allocation failure, for real.
struct Limited<T> {
    v: Vec<T>,
    cap: usize,
}

impl<T> Slots<T> for Limited<T> {
    fn items(&self) -> &[T] {
        &self.v
    }
    fn items_mut(&mut self) -> &mut [T] {
        &mut self.v
    }
    fn try_reserve_more(&mut self, n: usize) -> Result<(), ErrCode> {
        if self.v.len() + n > self.cap {
            Err(ErrCode::NoMem)
        } else {
            Ok(())
        }
    }
    fn try_insert(&mut self, pos: usize, item: T) -> Result<(), ErrCode> {
        self.try_reserve_more(1)?;
        self.v.insert(pos, item);
        Ok(())
    }
    fn remove_at(&mut self, pos: usize) {
        self.v.remove(pos);
    }
    fn clear_all(&mut self) {
        self.v.clear();
    }
    fn slots(&self) -> usize {
        self.cap
    }
}

#[test]
fn out_of_memory_changes_nothing_or_drops_the_index() {
    let mut s: Store<4, Limited<Entry<4>>, Limited<Row<4>>> = Store::new(
        Limited {
            v: Vec::new(),
            cap: 3,
        },
        Limited {
            v: Vec::new(),
            cap: 2,
        },
    );
    for i in 1..=3 {
        s.add(key(i), b"n", &tag(""), &[0, 0, 0, i as i32]).unwrap();
    }
    assert_eq!(s.add(key(4), b"n", &tag(""), &[0; 4]), Err(ErrCode::NoMem));
    assert_eq!(s.stats().vectors_added, 3);
    assert_eq!(s.manage(VEXFS_INDEX_CREATE).1, Err(ErrCode::NoMem));
    assert_eq!(s.stats().index_present, 0);
    s.del(key(3)).unwrap();
    assert_eq!(s.manage(VEXFS_INDEX_CREATE).1, Ok(()));
    s.add(key(9), b"n", &tag(""), &[0; 4]).unwrap(); // the index cannot follow: dropped
    let st = s.stats();
    assert_eq!((st.index_present, st.nr_vectors), (0, 3));
    assert_eq!(run_limited(&mut s), (3, 0));
}

fn run_limited(s: &mut Store<4, Limited<Entry<4>>, Limited<Row<4>>>) -> (u32, u32) {
    let mut hits = vec![
        Hit {
            ino: 0,
            score: 0,
            item: key(0)
        };
        8
    ];
    let mut out = vec![SearchResult::zeroed(); 8];
    let q = Query {
        metric: Metric::L2,
        flags: 0,
        query: &[0; 4],
        filters: &[],
        hybrid: false,
    };
    let o = s.search(&q, &mut hits, &mut out);
    (o.nr_results, o.flags)
}

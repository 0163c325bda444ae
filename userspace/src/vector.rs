//! Q16.16 vector maths and top-k selection, exactly as documented in
//! `vexfs.h` (core-only: no std, no alloc).
//!
//! * L2:  `score = (sum_i (q_i - v_i)^2) >> 16`, ascending.
//! * DOT: `score = (sum_i q_i * v_i) >> 16` (arithmetic shift, rounds toward
//!   negative infinity), descending.
//! * Ties (equal score) broken by ascending inode number.
//! * Components must satisfy `|c| <= VEXFS_COMPONENT_MAX` and
//!   `dim <= VEXFS_MAX_DIM`; then the `i64` accumulators cannot overflow.
//!
//! The default ("plain") implementations live in [`plain`]. With the
//! `fast-search` feature, [`fast`] provides a 4-way unrolled distance loop
//! and a heap-based top-k; the top-level [`score`] / [`TopK`] dispatch to it.
//! Both give identical results (tests compare them).

use crate::abi::{
    VEXFS_COMPONENT_MAX, VEXFS_FIXED_SHIFT, VEXFS_MAX_DIM, VEXFS_METRIC_DOT, VEXFS_METRIC_L2,
};
use core::cmp::Ordering;

/// Distance / similarity metric (`VEXFS_METRIC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Metric {
    /// Squared Euclidean distance, smaller is better.
    L2 = VEXFS_METRIC_L2,
    /// Dot product, larger is better.
    Dot = VEXFS_METRIC_DOT,
}

impl Metric {
    pub const fn from_raw(raw: u32) -> Option<Metric> {
        match raw {
            VEXFS_METRIC_L2 => Some(Metric::L2),
            VEXFS_METRIC_DOT => Some(Metric::Dot),
            _ => None,
        }
    }

    pub const fn raw(self) -> u32 {
        self as u32
    }

    /// Lower-case name as used by `vexctl --metric`.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Dot => "dot",
        }
    }

    /// Parses `l2` / `dot`.
    pub fn parse(s: &str) -> Option<Metric> {
        match s {
            "l2" => Some(Metric::L2),
            "dot" => Some(Metric::Dot),
            _ => None,
        }
    }

    /// Result order: `Less` means `(score_a, ino_a)` ranks before `(score_b, ino_b)`.
    #[inline]
    pub fn cmp_hits(self, score_a: i64, ino_a: u64, score_b: i64, ino_b: u64) -> Ordering {
        let by_score = match self {
            Metric::L2 => score_a.cmp(&score_b),
            Metric::Dot => score_b.cmp(&score_a),
        };
        by_score.then(ino_a.cmp(&ino_b))
    }
}

/// `true` if `c` is within `[-VEXFS_COMPONENT_MAX, VEXFS_COMPONENT_MAX]`.
#[inline]
pub const fn component_ok(c: i32) -> bool {
    -VEXFS_COMPONENT_MAX <= c && c <= VEXFS_COMPONENT_MAX
}

/// `true` if the vector is non-empty, at most `VEXFS_MAX_DIM` long and every
/// component is in range (the preconditions of the scoring functions).
pub fn vector_ok(v: &[i32]) -> bool {
    !v.is_empty() && v.len() <= VEXFS_MAX_DIM as usize && v.iter().all(|&c| component_ok(c))
}

/// Score of `v` against query `q` with the default implementation
/// (`fast` with the `fast-search` feature, else `plain`).
///
/// Preconditions: `q.len() == v.len()` and both satisfy [`vector_ok`]; in
/// debug builds violations panic, in release the result is unspecified
/// (but memory safe). Use [`checked_score`] for untrusted input.
#[inline]
pub fn score(metric: Metric, q: &[i32], v: &[i32]) -> i64 {
    #[cfg(feature = "fast-search")]
    {
        fast::score(metric, q, v)
    }
    #[cfg(not(feature = "fast-search"))]
    {
        plain::score(metric, q, v)
    }
}

/// [`score`] with the preconditions checked; `None` if they do not hold.
pub fn checked_score(metric: Metric, q: &[i32], v: &[i32]) -> Option<i64> {
    if q.len() != v.len() || !vector_ok(q) || !vector_ok(v) {
        return None;
    }
    Some(score(metric, q, v))
}

/// The straightforward implementations (always compiled; the reference).
pub mod plain {
    use super::*;

    /// `(sum (q_i - v_i)^2) >> 16`
    pub fn l2(q: &[i32], v: &[i32]) -> i64 {
        debug_assert_eq!(q.len(), v.len());
        let mut acc: i64 = 0;
        for (&a, &b) in q.iter().zip(v.iter()) {
            let d = a as i64 - b as i64;
            acc += d * d;
        }
        acc >> VEXFS_FIXED_SHIFT
    }

    /// `(sum q_i * v_i) >> 16` (arithmetic shift)
    pub fn dot(q: &[i32], v: &[i32]) -> i64 {
        debug_assert_eq!(q.len(), v.len());
        let mut acc: i64 = 0;
        for (&a, &b) in q.iter().zip(v.iter()) {
            acc += a as i64 * b as i64;
        }
        acc >> VEXFS_FIXED_SHIFT
    }

    pub fn score(metric: Metric, q: &[i32], v: &[i32]) -> i64 {
        match metric {
            Metric::L2 => l2(q, v),
            Metric::Dot => dot(q, v),
        }
    }

    /// Top-k by sorted insertion into `buf` (O(n*k)); see [`super::TopK`].
    pub struct TopK<'a, T> {
        pub(super) metric: Metric,
        pub(super) buf: &'a mut [Hit<T>],
        pub(super) len: usize,
    }

    impl<'a, T: Copy> TopK<'a, T> {
        pub fn new(metric: Metric, buf: &'a mut [Hit<T>]) -> Self {
            TopK {
                metric,
                buf,
                len: 0,
            }
        }

        pub fn push(&mut self, hit: Hit<T>) {
            let k = self.buf.len();
            if k == 0 {
                return;
            }
            let m = self.metric;
            let before = |a: &Hit<T>, b: &Hit<T>| {
                m.cmp_hits(a.score, a.ino, b.score, b.ino) == Ordering::Less
            };
            if self.len == k {
                if !before(&hit, &self.buf[k - 1]) {
                    return;
                }
                self.len -= 1; // drop the worst
            }
            let mut i = self.len;
            while i > 0 && before(&hit, &self.buf[i - 1]) {
                self.buf[i] = self.buf[i - 1];
                i -= 1;
            }
            self.buf[i] = hit;
            self.len += 1;
        }

        pub fn finish(self) -> &'a [Hit<T>] {
            &self.buf[..self.len]
        }
    }
}

/// Chunked distance loops and heap-based top-k (`fast-search` feature).
#[cfg(feature = "fast-search")]
pub mod fast {
    use super::*;

    /// 4 independent accumulators over chunks of 4; exact integer sums, so
    /// the result equals [`plain::l2`] whenever the preconditions hold.
    pub fn l2(q: &[i32], v: &[i32]) -> i64 {
        debug_assert_eq!(q.len(), v.len());
        let n = q.len().min(v.len());
        let (q, v) = (&q[..n], &v[..n]);
        let mut acc = [0i64; 4];
        let mut qc = q.chunks_exact(4);
        let mut vc = v.chunks_exact(4);
        for (a, b) in (&mut qc).zip(&mut vc) {
            for j in 0..4 {
                let d = a[j] as i64 - b[j] as i64;
                acc[j] += d * d;
            }
        }
        let mut tail = 0i64;
        for (&a, &b) in qc.remainder().iter().zip(vc.remainder()) {
            let d = a as i64 - b as i64;
            tail += d * d;
        }
        (acc[0] + acc[1] + acc[2] + acc[3] + tail) >> VEXFS_FIXED_SHIFT
    }

    pub fn dot(q: &[i32], v: &[i32]) -> i64 {
        debug_assert_eq!(q.len(), v.len());
        let n = q.len().min(v.len());
        let (q, v) = (&q[..n], &v[..n]);
        let mut acc = [0i64; 4];
        let mut qc = q.chunks_exact(4);
        let mut vc = v.chunks_exact(4);
        for (a, b) in (&mut qc).zip(&mut vc) {
            for j in 0..4 {
                acc[j] += a[j] as i64 * b[j] as i64;
            }
        }
        let mut tail = 0i64;
        for (&a, &b) in qc.remainder().iter().zip(vc.remainder()) {
            tail += a as i64 * b as i64;
        }
        (acc[0] + acc[1] + acc[2] + acc[3] + tail) >> VEXFS_FIXED_SHIFT
    }

    pub fn score(metric: Metric, q: &[i32], v: &[i32]) -> i64 {
        match metric {
            Metric::L2 => l2(q, v),
            Metric::Dot => dot(q, v),
        }
    }

    /// Top-k with a binary heap in `buf` whose root is the current worst
    /// kept hit (O(n log k)); `finish` heap-sorts it into result order.
    pub struct TopK<'a, T> {
        metric: Metric,
        buf: &'a mut [Hit<T>],
        len: usize,
    }

    impl<'a, T: Copy> TopK<'a, T> {
        pub fn new(metric: Metric, buf: &'a mut [Hit<T>]) -> Self {
            TopK {
                metric,
                buf,
                len: 0,
            }
        }

        /// `a` ranks after `b` (is "worse").
        #[inline]
        fn worse(&self, a: usize, b: usize) -> bool {
            let (x, y) = (&self.buf[a], &self.buf[b]);
            self.metric.cmp_hits(x.score, x.ino, y.score, y.ino) == Ordering::Greater
        }

        fn sift_down(&mut self, mut i: usize, len: usize) {
            loop {
                let l = 2 * i + 1;
                if l >= len {
                    return;
                }
                let r = l + 1;
                let c = if r < len && self.worse(r, l) { r } else { l };
                if !self.worse(c, i) {
                    return;
                }
                self.buf.swap(i, c);
                i = c;
            }
        }

        pub fn push(&mut self, hit: Hit<T>) {
            let k = self.buf.len();
            if k == 0 {
                return;
            }
            if self.len < k {
                let mut i = self.len;
                self.buf[i] = hit;
                self.len += 1;
                while i > 0 {
                    let p = (i - 1) / 2;
                    if !self.worse(i, p) {
                        break;
                    }
                    self.buf.swap(i, p);
                    i = p;
                }
            } else {
                let root = &self.buf[0];
                if self
                    .metric
                    .cmp_hits(hit.score, hit.ino, root.score, root.ino)
                    != Ordering::Less
                {
                    return;
                }
                self.buf[0] = hit;
                self.sift_down(0, k);
            }
        }

        pub fn finish(mut self) -> &'a [Hit<T>] {
            // heap sort: repeatedly move the worst to the end
            let mut end = self.len;
            while end > 1 {
                end -= 1;
                self.buf.swap(0, end);
                self.sift_down(0, end);
            }
            let len = self.len;
            &self.buf[..len]
        }
    }
}

/// One scored candidate. `item` is caller data (e.g. the name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<T> {
    pub ino: u64,
    pub score: i64,
    pub item: T,
}

/// Top-k selector over a caller-provided buffer (`buf.len()` is k): push
/// candidates in any order, `finish` returns the first `min(k, pushed)`
/// hits in result order. Inode numbers are assumed unique.
pub struct TopK<'a, T> {
    #[cfg(feature = "fast-search")]
    inner: fast::TopK<'a, T>,
    #[cfg(not(feature = "fast-search"))]
    inner: plain::TopK<'a, T>,
}

impl<'a, T: Copy> TopK<'a, T> {
    pub fn new(metric: Metric, buf: &'a mut [Hit<T>]) -> Self {
        #[cfg(feature = "fast-search")]
        let inner = fast::TopK::new(metric, buf);
        #[cfg(not(feature = "fast-search"))]
        let inner = plain::TopK::new(metric, buf);
        TopK { inner }
    }

    #[inline]
    pub fn push(&mut self, hit: Hit<T>) {
        self.inner.push(hit)
    }

    pub fn finish(self) -> &'a [Hit<T>] {
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{VEXFS_FIXED_ONE as ONE, VEXFS_MAX_DIM};

    const MAXC: i32 = VEXFS_COMPONENT_MAX;

    #[test]
    fn l2_known_values() {
        // (1,2) vs (4,6): 9 + 16 = 25
        assert_eq!(
            plain::l2(&[ONE, 2 * ONE], &[4 * ONE, 6 * ONE]),
            25 * ONE as i64
        );
        assert_eq!(plain::l2(&[0, 0], &[0, 0]), 0);
        // 0.5^2 = 0.25
        assert_eq!(plain::l2(&[ONE / 2], &[0]), (ONE / 4) as i64);
        // tiny difference: 1 raw unit squared = 1 >> 16 = 0
        assert_eq!(plain::l2(&[1], &[0]), 0);
        assert_eq!(plain::l2(&[256], &[0]), 1);
    }

    #[test]
    fn dot_known_values() {
        assert_eq!(
            plain::dot(&[ONE, 2 * ONE], &[3 * ONE, 4 * ONE]),
            11 * ONE as i64
        );
        assert_eq!(plain::dot(&[-ONE], &[ONE / 2]), -(ONE as i64) / 2);
        // arithmetic shift rounds toward negative infinity
        assert_eq!(plain::dot(&[1], &[1]), 0);
        assert_eq!(plain::dot(&[-1], &[1]), -1);
        assert_eq!(plain::dot(&[-1], &[65537]), -2);
    }

    #[test]
    fn overflow_bounds_at_max_dim() {
        let n = VEXFS_MAX_DIM as usize;
        let hi = [MAXC; 4096];
        let lo = [-MAXC; 4096];
        assert!(vector_ok(&hi[..n]) && vector_ok(&lo[..n]));
        // L2: (2*2^24)^2 * 2^12 = 2^62, >> 16 = 2^46
        assert_eq!(plain::l2(&hi, &lo), 1i64 << 46);
        // DOT: 2^48 * 2^12 = 2^60 >> 16 = 2^44
        assert_eq!(plain::dot(&hi, &hi), 1i64 << 44);
        assert_eq!(plain::dot(&hi, &lo), -(1i64 << 44));
        assert_eq!(score(Metric::L2, &hi, &lo), 1i64 << 46);
        assert_eq!(score(Metric::Dot, &lo, &hi), -(1i64 << 44));
    }

    #[test]
    fn preconditions_checked() {
        assert!(component_ok(MAXC) && component_ok(-MAXC));
        assert!(!component_ok(MAXC + 1) && !component_ok(-MAXC - 1));
        assert!(!vector_ok(&[]));
        assert!(!vector_ok(&[0; 4097]));
        assert_eq!(checked_score(Metric::L2, &[1, 2], &[1]), None);
        assert_eq!(checked_score(Metric::L2, &[MAXC + 1], &[0]), None);
        assert_eq!(checked_score(Metric::Dot, &[ONE], &[ONE]), Some(ONE as i64));
    }

    #[test]
    fn metric_parse_and_raw() {
        assert_eq!(Metric::parse("l2"), Some(Metric::L2));
        assert_eq!(Metric::parse("dot"), Some(Metric::Dot));
        assert_eq!(Metric::parse("L2"), None);
        assert_eq!(Metric::from_raw(1), Some(Metric::Dot));
        assert_eq!(Metric::from_raw(2), None);
        assert_eq!(Metric::Dot.raw(), 1);
    }

    fn run_topk<'a>(m: Metric, cands: &[(u64, i64)], buf: &'a mut [Hit<()>]) -> &'a [Hit<()>] {
        let mut t = TopK::new(m, buf);
        for &(ino, score) in cands {
            t.push(Hit {
                ino,
                score,
                item: (),
            });
        }
        t.finish()
    }

    fn keys(h: &[Hit<()>]) -> Vec<(u64, i64)> {
        h.iter().map(|h| (h.ino, h.score)).collect()
    }

    #[test]
    fn topk_order_and_tie_break() {
        let c = [(7, 5), (3, 5), (9, 1), (1, 8), (5, 5), (2, -3)];
        let mut buf = [Hit {
            ino: 0,
            score: 0,
            item: (),
        }; 4];
        assert_eq!(
            keys(run_topk(Metric::L2, &c, &mut buf)),
            vec![(2, -3), (9, 1), (3, 5), (5, 5)]
        );
        let mut buf = [Hit {
            ino: 0,
            score: 0,
            item: (),
        }; 4];
        assert_eq!(
            keys(run_topk(Metric::Dot, &c, &mut buf)),
            vec![(1, 8), (3, 5), (5, 5), (7, 5)]
        );
        // fewer candidates than k
        let mut buf = [Hit {
            ino: 0,
            score: 0,
            item: (),
        }; 10];
        assert_eq!(
            keys(run_topk(Metric::L2, &c[..2], &mut buf)),
            vec![(3, 5), (7, 5)]
        );
        // k = 1, all tied: smallest ino wins regardless of push order
        let mut buf = [Hit {
            ino: 0,
            score: 0,
            item: (),
        }; 1];
        assert_eq!(
            keys(run_topk(Metric::Dot, &[(4, 0), (2, 0), (3, 0)], &mut buf)),
            vec![(2, 0)]
        );
        // k = 0: nothing
        let mut buf: [Hit<()>; 0] = [];
        assert!(run_topk(Metric::L2, &c, &mut buf).is_empty());
    }

    /// xorshift64* — deterministic pseudo-random numbers, no deps.
    pub(crate) struct Rng(pub u64);
    impl Rng {
        pub fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        pub fn component(&mut self) -> i32 {
            match self.below(8) {
                0 => MAXC,
                1 => -MAXC,
                2 => self.below(5) as i32 - 2, // tiny values exercise rounding
                _ => (self.below(2 * MAXC as u64 + 1) as i64 - MAXC as i64) as i32,
            }
        }
    }

    /// Plain scores against an i128 reference (no overflow within bounds).
    #[test]
    fn scores_match_i128_reference() {
        let mut rng = Rng(0x5eed_0000_1111_2222);
        for round in 0..200 {
            let dim = 1 + rng.below(if round % 10 == 0 { 4096 } else { 9 }) as usize;
            let q: Vec<i32> = (0..dim).map(|_| rng.component()).collect();
            let v: Vec<i32> = (0..dim).map(|_| rng.component()).collect();
            let l2: i128 = q
                .iter()
                .zip(&v)
                .map(|(&a, &b)| (a as i128 - b as i128).pow(2))
                .sum();
            let dot: i128 = q.iter().zip(&v).map(|(&a, &b)| a as i128 * b as i128).sum();
            assert_eq!(score(Metric::L2, &q, &v) as i128, l2 >> 16, "round {round}");
            assert_eq!(
                score(Metric::Dot, &q, &v) as i128,
                dot.div_euclid(65536),
                "round {round}"
            );
        }
    }

    /// Reference: brute-force sort of all candidates, take k.
    #[test]
    fn topk_matches_full_sort() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for round in 0..300 {
            let m = if round % 2 == 0 {
                Metric::L2
            } else {
                Metric::Dot
            };
            let n = rng.below(60) as usize;
            let k = 1 + rng.below(12) as usize;
            let mut cands: Vec<(u64, i64)> = Vec::new();
            for i in 0..n {
                // few distinct scores -> many ties; unique shuffled inos
                cands.push(((i as u64 * 7919) % 1009 + 1, rng.below(5) as i64 - 2));
            }
            let mut want = cands.clone();
            want.sort_by(|a, b| m.cmp_hits(a.1, a.0, b.1, b.0));
            want.truncate(k);
            let mut buf = vec![
                Hit {
                    ino: 0,
                    score: 0,
                    item: ()
                };
                k
            ];
            assert_eq!(keys(run_topk(m, &cands, &mut buf)), want, "round {round}");
        }
    }

    #[cfg(feature = "fast-search")]
    #[test]
    fn fast_scores_equal_plain() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        for round in 0..500 {
            let dim = 1 + rng.below(if round % 10 == 0 { 4096 } else { 19 }) as usize;
            let q: Vec<i32> = (0..dim).map(|_| rng.component()).collect();
            let v: Vec<i32> = (0..dim).map(|_| rng.component()).collect();
            assert_eq!(
                fast::l2(&q, &v),
                plain::l2(&q, &v),
                "l2 round {round} dim {dim}"
            );
            assert_eq!(
                fast::dot(&q, &v),
                plain::dot(&q, &v),
                "dot round {round} dim {dim}"
            );
        }
    }

    #[cfg(feature = "fast-search")]
    #[test]
    fn fast_topk_equals_plain() {
        let mut rng = Rng(0x0bad_5eed_0000_0001);
        for round in 0..1000 {
            let m = if rng.below(2) == 0 {
                Metric::L2
            } else {
                Metric::Dot
            };
            let n = rng.below(200) as usize;
            let k = rng.below(20) as usize;
            let spread = 1 + rng.below(if round % 3 == 0 { 4 } else { 1 << 40 });
            let mut inos: Vec<u64> = (1..=n as u64).collect();
            for i in (1..inos.len()).rev() {
                inos.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let cands: Vec<Hit<u32>> = inos
                .iter()
                .enumerate()
                .map(|(i, &ino)| Hit {
                    ino,
                    score: rng.below(spread) as i64 - (spread / 2) as i64,
                    item: i as u32,
                })
                .collect();
            let mut b1 = vec![
                Hit {
                    ino: 0,
                    score: 0,
                    item: 0u32
                };
                k
            ];
            let mut b2 = b1.clone();
            let mut p = plain::TopK::new(m, &mut b1);
            let mut f = fast::TopK::new(m, &mut b2);
            for &c in &cands {
                p.push(c);
                f.push(c);
            }
            assert_eq!(
                p.finish(),
                f.finish(),
                "round {round} metric {m:?} n {n} k {k}"
            );
        }
    }
}

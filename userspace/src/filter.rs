//! Hybrid search filters (`struct vexfs_filter`): the argument checks of
//! `VEXFS_IOC_HYBRID_SEARCH`, in the C module's order and with its errno values, and
//! matching against a vector's name and tag. Core-only (no std, no alloc): `vexctl
//! expect-search` and the Rust kernel module (`kernel/rust/vexfs_rs.rs`) use this file.
//!
//! * All filters are ANDed; `NONE` matches everything.
//! * `NAME_PREFIX` / `NAME_SUBSTR` match the full, untruncated name.
//! * `TAG_EQ` matches a tag equal to the value (an empty value matches untagged files).

use crate::abi::{
    Filter, HybridSearchRequest, VEXFS_FILTER_MAX, VEXFS_FILTER_NAME_PREFIX,
    VEXFS_FILTER_NAME_SUBSTR, VEXFS_FILTER_NONE, VEXFS_FILTER_TAG_EQ, VEXFS_FILTER_VALUE_LEN,
};
use crate::errcode::ErrCode;

/// Checks one filter slot: `used` slots (index < nr_filters) must be well formed,
/// unused ones all zero. `EINVAL` otherwise.
pub fn check(f: &Filter, used: bool) -> Result<(), ErrCode> {
    if !used {
        let zero = f.kind == 0 && f.len == 0 && f.reserved == 0 && all_zero(&f.value);
        return if zero { Ok(()) } else { Err(ErrCode::Inval) };
    }
    let len = f.len as usize;
    if f.kind > VEXFS_FILTER_TAG_EQ || f.reserved != 0 || len > VEXFS_FILTER_VALUE_LEN {
        return Err(ErrCode::Inval);
    }
    if f.kind == VEXFS_FILTER_NONE && len != 0 {
        return Err(ErrCode::Inval);
    }
    if f.value[..len].contains(&0) || !all_zero(&f.value[len..]) {
        return Err(ErrCode::Inval);
    }
    Ok(())
}

/// Checks the filter part of a hybrid request: pad and reserved zero (`EINVAL`),
/// `nr_filters <= VEXFS_FILTER_MAX` (`E2BIG`), then every slot with [`check`].
pub fn check_request(req: &HybridSearchRequest) -> Result<(), ErrCode> {
    if req.__pad != 0 || req.reserved != [0; 2] {
        return Err(ErrCode::Inval);
    }
    if req.nr_filters as usize > VEXFS_FILTER_MAX {
        return Err(ErrCode::TooBig);
    }
    for (i, f) in req.filters.iter().enumerate() {
        check(f, i < req.nr_filters as usize)?;
    }
    Ok(())
}

/// The used filters of a checked request.
pub fn used(req: &HybridSearchRequest) -> &[Filter] {
    &req.filters[..(req.nr_filters as usize).min(VEXFS_FILTER_MAX)]
}

/// Whether one filter (kind and value bytes) matches `name` and `tag` (the tag's bytes
/// before its NUL). Unknown kinds match nothing.
pub fn matches_one(kind: u32, value: &[u8], name: &[u8], tag: &[u8]) -> bool {
    match kind {
        VEXFS_FILTER_NONE => true,
        VEXFS_FILTER_NAME_PREFIX => name.starts_with(value),
        VEXFS_FILTER_NAME_SUBSTR => contains(name, value),
        VEXFS_FILTER_TAG_EQ => tag == value,
        _ => false,
    }
}

/// Whether every filter of a checked request matches.
pub fn matches(filters: &[Filter], name: &[u8], tag: &[u8]) -> bool {
    filters.iter().all(|f| {
        let len = (f.len as usize).min(VEXFS_FILTER_VALUE_LEN);
        matches_one(f.kind, &f.value[..len], name, tag)
    })
}

/// The bytes of a NUL-padded field before its first NUL.
pub fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    }
}

/// A metadata tag (`VEXFS_TAG_LEN` bytes) as ADD_VECTOR requires it: NUL terminated,
/// zero after the first NUL. Returns its length; `EINVAL` otherwise.
pub fn check_tag(tag: &[u8]) -> Result<usize, ErrCode> {
    match tag.iter().position(|&b| b == 0) {
        Some(n) if all_zero(&tag[n..]) => Ok(n),
        _ => Err(ErrCode::Inval),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::VEXFS_TAG_LEN;

    fn filter(kind: u32, value: &[u8]) -> Filter {
        let mut f = Filter::zeroed();
        f.kind = kind;
        f.len = value.len() as u32;
        f.value[..value.len()].copy_from_slice(value);
        f
    }

    fn request(filters: &[Filter]) -> HybridSearchRequest {
        let mut r = HybridSearchRequest::zeroed();
        r.nr_filters = filters.len() as u32;
        r.filters[..filters.len()].copy_from_slice(filters);
        r
    }

    #[test]
    fn every_kind_matches_as_documented() {
        let (name, tag) = (b"doc_alpha".as_slice(), b"kind=doc".as_slice());
        assert!(matches_one(VEXFS_FILTER_NONE, b"", name, tag));
        assert!(matches_one(VEXFS_FILTER_NAME_PREFIX, b"doc", name, tag));
        assert!(!matches_one(VEXFS_FILTER_NAME_PREFIX, b"alpha", name, tag));
        assert!(matches_one(VEXFS_FILTER_NAME_SUBSTR, b"c_al", name, tag));
        assert!(matches_one(VEXFS_FILTER_NAME_SUBSTR, b"", name, tag));
        assert!(!matches_one(
            VEXFS_FILTER_NAME_SUBSTR,
            b"doc_alpha_",
            name,
            tag
        ));
        assert!(matches_one(VEXFS_FILTER_TAG_EQ, b"kind=doc", name, tag));
        assert!(!matches_one(VEXFS_FILTER_TAG_EQ, b"kind=do", name, tag));
        assert!(matches_one(VEXFS_FILTER_TAG_EQ, b"", name, b""));
        assert!(!matches_one(9, b"", name, tag));
    }

    #[test]
    fn filters_are_anded() {
        let fs = [
            filter(VEXFS_FILTER_NAME_PREFIX, b"doc"),
            filter(VEXFS_FILTER_TAG_EQ, b"k=v"),
        ];
        assert!(matches(&fs, b"doc1", b"k=v"));
        assert!(!matches(&fs, b"doc1", b"k=w"));
        assert!(!matches(&fs, b"img1", b"k=v"));
        assert!(matches(&[], b"anything", b""));
    }

    #[test]
    fn checks_follow_the_c_module() {
        assert_eq!(check_request(&request(&[filter(1, b"a")])), Ok(()));
        let mut r = request(&[]);
        r.nr_filters = 5;
        assert_eq!(check_request(&r), Err(ErrCode::TooBig));
        let mut r = request(&[]);
        r.__pad = 1;
        assert_eq!(check_request(&r), Err(ErrCode::Inval));
        // an unused slot that is not all zero
        let mut r = request(&[filter(1, b"a")]);
        r.filters[2].value[0] = 1;
        assert_eq!(check_request(&r), Err(ErrCode::Inval));
        for bad in [
            filter(4, b"x"),                      // unknown kind
            filter(VEXFS_FILTER_NONE, b"x"),      // NONE with a value
            filter(VEXFS_FILTER_TAG_EQ, b"a\0b"), // NUL inside the value
        ] {
            assert_eq!(check(&bad, true), Err(ErrCode::Inval), "{bad:?}");
        }
        let mut garbage = filter(1, b"ab");
        garbage.value[5] = b'z';
        assert_eq!(check(&garbage, true), Err(ErrCode::Inval));
        let mut long = filter(1, b"");
        long.len = 65;
        assert_eq!(check(&long, true), Err(ErrCode::Inval));
        let mut reserved = filter(1, b"a");
        reserved.reserved = 1;
        assert_eq!(check(&reserved, true), Err(ErrCode::Inval));
        assert_eq!(check(&filter(1, &[b'x'; 64]), true), Ok(()));
    }

    #[test]
    fn tags() {
        let mut tag = [0u8; VEXFS_TAG_LEN];
        assert_eq!(check_tag(&tag), Ok(0));
        tag[..3].copy_from_slice(b"a=b");
        assert_eq!(check_tag(&tag), Ok(3));
        assert_eq!(until_nul(&tag), b"a=b");
        tag[10] = 1;
        assert_eq!(check_tag(&tag), Err(ErrCode::Inval));
        assert_eq!(check_tag(&[1u8; VEXFS_TAG_LEN]), Err(ErrCode::Inval));
    }
}

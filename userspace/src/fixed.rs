//! Q16.16 fixed point: an `i32` whose value is `raw / 65536`.
//!
//! The integer part of this module is core-only; the float conversions
//! (used by `vexctl` only, never by the kernel core) need std and are behind
//! the `userspace` feature.

/// Number of fractional bits.
pub const FRAC_BITS: u32 = 16;
/// `1.0` in Q16.16.
pub const ONE: i32 = 1 << FRAC_BITS;

/// Error converting a float to Q16.16.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FixedError {
    /// NaN is not a number we can store.
    NaN,
    /// +inf / -inf.
    Infinite,
    /// Finite but outside `[-32768, 32767.99998]` after rounding.
    OutOfRange,
}

impl core::fmt::Display for FixedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FixedError::NaN => f.write_str("NaN is not allowed"),
            FixedError::Infinite => f.write_str("infinity is not allowed"),
            FixedError::OutOfRange => f.write_str("out of Q16.16 range [-32768, 32767.99998]"),
        }
    }
}

/// Converts a float to Q16.16, rounding to nearest (ties away from zero).
#[cfg(feature = "userspace")]
pub fn from_f64(x: f64) -> Result<i32, FixedError> {
    if x.is_nan() {
        return Err(FixedError::NaN);
    }
    if x.is_infinite() {
        return Err(FixedError::Infinite);
    }
    let r = (x * ONE as f64).round();
    if r < i32::MIN as f64 || r > i32::MAX as f64 {
        return Err(FixedError::OutOfRange);
    }
    Ok(r as i32)
}

/// Converts Q16.16 to a float (exact).
pub fn to_f64(q: i32) -> f64 {
    q as f64 / ONE as f64
}

/// Formats a float with at most 4 decimals: `{:.4}`, then trailing zeros and
/// a trailing `.` removed; `-0` is printed as `0`.
#[cfg(feature = "userspace")]
pub fn format_f64(x: f64) -> String {
    let mut s = format!("{:.4}", x);
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".to_string();
    }
    s
}

/// Formats a Q16.16 value, see [`format_f64`].
#[cfg(feature = "userspace")]
pub fn format_q16(q: i32) -> String {
    format_f64(to_f64(q))
}

/// Parses one decimal number into Q16.16.
#[cfg(feature = "userspace")]
pub fn parse_q16(s: &str) -> Result<i32, String> {
    let t = s.trim();
    let x: f64 = t.parse().map_err(|_| format!("invalid number {:?}", s))?;
    // `f64::from_str` accepts "nan"/"inf"/"infinity": reject them explicitly.
    from_f64(x).map_err(|e| format!("invalid component {:?}: {}", s, e))
}

/// Parses a comma-separated vector `v1,v2,...` into Q16.16 components.
#[cfg(feature = "userspace")]
pub fn parse_vector(s: &str) -> Result<Vec<i32>, String> {
    if s.trim().is_empty() {
        return Err("empty vector".to_string());
    }
    s.split(',').map(parse_q16).collect()
}

/// Formats a vector as comma-separated floats (see [`format_f64`]).
#[cfg(feature = "userspace")]
pub fn format_vector(v: &[i32]) -> String {
    v.iter()
        .map(|&q| format_q16(q))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(all(test, feature = "userspace"))]
mod tests {
    use super::*;

    #[test]
    fn float_conversion_known_values() {
        assert_eq!(from_f64(1.0), Ok(65536));
        assert_eq!(from_f64(-1.5), Ok(-98304));
        assert_eq!(from_f64(0.0), Ok(0));
        assert_eq!(from_f64(1.0 / 65536.0), Ok(1));
        // ties away from zero
        assert_eq!(from_f64(0.5 / 65536.0), Ok(1));
        assert_eq!(from_f64(-0.5 / 65536.0), Ok(-1));
        assert_eq!(from_f64(-32768.0), Ok(i32::MIN));
        assert_eq!(from_f64(32767.0 + 65535.0 / 65536.0), Ok(i32::MAX));
    }

    #[test]
    fn float_conversion_rejects_bad_values() {
        assert_eq!(from_f64(f64::NAN), Err(FixedError::NaN));
        assert_eq!(from_f64(f64::INFINITY), Err(FixedError::Infinite));
        assert_eq!(from_f64(f64::NEG_INFINITY), Err(FixedError::Infinite));
        assert_eq!(from_f64(32768.0), Err(FixedError::OutOfRange));
        assert_eq!(from_f64(-32768.1), Err(FixedError::OutOfRange));
        assert!(parse_q16("nan").is_err());
        assert!(parse_q16("inf").is_err());
        assert!(parse_q16("-infinity").is_err());
        assert!(parse_q16("1e10").is_err());
        assert!(parse_q16("abc").is_err());
        assert!(parse_q16("").is_err());
    }

    #[test]
    fn vector_parse_and_format() {
        assert_eq!(
            parse_vector("1,-2.5, 0.25").unwrap(),
            vec![65536, -163840, 16384]
        );
        assert!(parse_vector("").is_err());
        assert!(parse_vector("1,,2").is_err());
        assert!(parse_vector("1,2,").is_err());
        assert_eq!(
            format_vector(&[65536, -163840, 16384, 0, 1]),
            "1,-2.5,0.25,0,0"
        );
        assert_eq!(format_q16(ONE / 3), "0.3333");
        assert_eq!(format_q16(-1), "0");
        assert_eq!(format_f64(2.0), "2");
        assert_eq!(format_f64(-0.00001), "0");
    }
}

//! Test data: deterministic byte patterns keyed by a seed, so that both ends
//! of a transfer know what the bytes must be without sending them twice.
//!
//! Byte `i` of a pattern depends only on the seed and `i`: a prefix of a
//! pattern is the shorter pattern, so a GET of the first N bytes of a served
//! buffer checks against `serve_pattern(mb, N)`.

/// SplitMix64: one step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `len` bytes of the pattern of `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(&mix(seed ^ mix(i)).to_le_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// What a PUT of `len` bytes with match bits `mb` carries: the length is part
/// of the seed, so a buffer still holding an earlier, longer PUT with the
/// same match bits does not pass for a new one.
pub fn put_pattern(mb: u64, len: usize) -> Vec<u8> {
    pattern(mb ^ ((len as u64) << 32) ^ 0x5055_5400_0000_0000, len)
}

/// What a served buffer with match bits `mb` holds (its first `len` bytes).
pub fn serve_pattern(mb: u64, len: usize) -> Vec<u8> {
    pattern(mb ^ 0x5345_5256_0000_0000, len)
}

/// The first offset where `got` and `expect` differ (a length difference
/// counts at the shorter length); `None` when equal.
pub fn first_mismatch(got: &[u8], expect: &[u8]) -> Option<usize> {
    match got.iter().zip(expect).position(|(a, b)| a != b) {
        Some(i) => Some(i),
        None if got.len() != expect.len() => Some(got.len().min(expect.len())),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_shorter_patterns_and_seeds_differ() {
        let long = serve_pattern(7, 1000);
        assert_eq!(&long[..13], &serve_pattern(7, 13)[..]);
        assert_ne!(serve_pattern(7, 64), serve_pattern(8, 64));
        assert_ne!(&put_pattern(7, 100)[..50], &put_pattern(7, 50)[..]);
        assert_eq!(first_mismatch(b"abc", b"abc"), None);
        assert_eq!(first_mismatch(b"abd", b"abc"), Some(2));
        assert_eq!(first_mismatch(b"ab", b"abc"), Some(2));
    }
}

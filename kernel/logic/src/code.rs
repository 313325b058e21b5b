//! The old function's code a patch was built against: one hash of its bytes with the
//! fields that legitimately differ in the running kernel read as zeros. The builder
//! (crates/lpatch-build) computes it over the object it compiled; the core over the running
//! kernel's code, when it resolves the function, and refuses the patch on a mismatch.

/// FNV-1a, 64 bits: what `struct lp_code` records.
const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// The hash of `bytes` with every `(offset, length)` range of `masks` read as zeros
/// (ranges may overlap, run past the end, or come in any order).
pub fn masked_hash(bytes: &[u8], masks: &[(u32, u32)]) -> u64 {
    let mut h = OFFSET;
    for (i, b) in bytes.iter().enumerate() {
        let masked = masks.iter().any(|&(off, len)| {
            let (off, len) = (off as usize, len as usize);
            i >= off && i - off < len
        });
        h ^= u64::from(if masked { 0 } else { *b });
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// What a patch module says of an old function's code.
#[derive(Debug, PartialEq, Eq)]
pub struct CodeCheck {
    pub size: usize,
    pub hash: u64,
    pub masks: alloc::vec::Vec<(u32, u32)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_bytes_do_not_count() {
        let a = [1u8, 2, 3, 4, 5, 6];
        let b = [1u8, 9, 9, 4, 5, 7];
        assert_ne!(masked_hash(&a, &[]), masked_hash(&b, &[]));
        assert_ne!(masked_hash(&a, &[(1, 2)]), masked_hash(&b, &[(1, 2)]));
        assert_eq!(masked_hash(&a, &[(1, 2), (5, 9)]), masked_hash(&b, &[(5, 1), (1, 2)]));
        // The empty input is FNV-1a's offset basis; one zero byte is one round.
        assert_eq!(masked_hash(&[], &[]), OFFSET);
        assert_eq!(masked_hash(&[7], &[(0, 1)]), masked_hash(&[0], &[]));
    }
}

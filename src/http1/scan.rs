//! Byte-class scans for the parser: where the first byte of a class lies.
//!
//! Sixteen bytes at a time with SSE2 on x86-64 (`safe_arch`'s safe wrappers, which this
//! `forbid(unsafe_code)` crate can call: SSE2 is part of the x86-64 baseline, so there is nothing
//! to detect), and eight bytes at a time elsewhere and for the last bytes of a buffer.
//!
//! Eight bytes at a time ("SWAR": SIMD within a register) is plain integer arithmetic: a word is
//! read with `u64::from_le_bytes`, so the lowest marked byte of a mask is the first in the buffer
//! whatever the machine's byte order, and `trailing_zeros() / 8` is its offset.
//!
//! Each mask sets the high bit of the bytes in a class. Masks built from a subtraction are exact
//! only for the lowest marked byte (a borrow runs towards higher bytes, so only bytes above a true
//! mark can be marked falsely): enough for "is any byte marked" and "which is the first". Masks
//! built from additions that stay below 0x100 per byte are exact for every byte.

/// Eight 0x01 bytes.
pub(super) const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
/// The high bit of each of eight bytes.
pub(super) const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
/// The low seven bits of each of eight bytes.
const LOWS: u64 = ONES * 0x7f;

/// The eight bytes at `buf[at..]`, the first in the low bits.
#[inline(always)]
pub(super) fn word_at(buf: &[u8], at: usize) -> Option<u64> {
    let bytes: &[u8; 8] = buf.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(*bytes))
}

/// The bytes of `x` that are a CTL (below 0x20) or DEL. Exact for the lowest marked byte.
#[inline(always)]
pub(super) fn ctl_mask(x: u64) -> u64 {
    let ctl = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
    let del = x ^ (ONES * 0x7f);
    ctl | (del.wrapping_sub(ONES) & !del & HIGHS)
}

/// The bytes of `x` equal to `byte`. Exact for every byte.
#[inline(always)]
pub(super) fn eq_mask(x: u64, byte: u8) -> u64 {
    let y = x ^ (ONES * u64::from(byte));
    !(((y & LOWS) + LOWS) | y) & HIGHS
}

/// The bytes of `x` that are not an ASCII letter, digit or "-" (the bytes of nearly every field
/// name). Exact for every byte: the sums stay below 0x100 per byte.
#[inline(always)]
pub(super) fn non_name_mask(x: u64) -> u64 {
    let low = x & LOWS;
    let folded = (x | (ONES * 0x20)) & LOWS;
    // folded >= 'a' and folded <= 'z'; low >= '0' and low <= '9'.
    let letter = (folded + ONES * (0x80 - u64::from(b'a')))
        & !(folded + ONES * (0x80 - u64::from(b'z') - 1));
    let digit =
        (low + ONES * (0x80 - u64::from(b'0'))) & !(low + ONES * (0x80 - u64::from(b'9') - 1));
    (!(letter | digit) | x) & !eq_mask(x, b'-') & HIGHS
}

/// The bytes of `x` that are not an ASCII letter, digit, "-" or "." (the bytes of nearly every
/// `Host` value). Exact for every byte.
#[inline(always)]
pub(super) fn non_hostname_mask(x: u64) -> u64 {
    non_name_mask(x) & !eq_mask(x, b'.')
}

/// The bytes of `x` that may not appear in a request-target: 0x80 and above, SP and the CTLs,
/// DEL, and `#` (see `target::TARGET_BYTE`). Exact for every byte.
#[inline(always)]
pub(super) fn non_target_mask(x: u64) -> u64 {
    let low = x & LOWS;
    // Per byte b (low = b & 0x7f, at most 0x7f, so no sum carries out of its byte): b >= 0x80;
    // b & 0x7f below 0x21 (SP and CTLs); b & 0x7f == 0x7f (DEL); b == '#'.
    let below_0x21 = !(low + ONES * (0x80 - 0x21));
    let del = low + ONES;
    (x | below_0x21 | del | eq_mask(x, b'#')) & HIGHS
}

/// The offset of the first `needle` in `hay`: eight bytes at a time, inline. For the short
/// stretches of a request line, a call into `memchr` costs more than it saves.
#[inline]
pub(super) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    let mut at = 0;
    while let Some(x) = word_at(hay, at) {
        let found = eq_mask(x, needle);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = hay.get(at..).unwrap_or_default();
    tail.iter().position(|&b| b == needle).map(|i| at + i)
}

/// The sixteen bytes at `buf[at..]`.
#[inline(always)]
pub(super) fn block_at(buf: &[u8], at: usize) -> Option<&[u8; 16]> {
    buf.get(at..)?.first_chunk::<16>()
}

/// A bit per byte of the sixteen at `buf[at..]` that a request-target may not hold, and a bit
/// per `?` or `%`; exact for every byte.
#[inline(always)]
pub(super) fn target_marks(block: &[u8; 16]) -> (u32, u32) {
    block16::target_marks(block)
}

/// A bit per byte of `block` that is not an ASCII letter, digit, "-" or "." (the bytes of nearly
/// every `Host` value); exact for every byte.
#[inline(always)]
pub(super) fn hostname_marks(block: &[u8; 16]) -> u32 {
    block16::non_hostname_marks(block)
}

/// The offset of the first CTL or DEL in `buf` at or after `from`.
#[inline]
pub(super) fn find_ctl(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(block) = block_at(buf, i) {
        if let Some(at) = block16::first_ctl(block) {
            return Some(i + at);
        }
        i += 16;
    }
    while let Some(x) = word_at(buf, i) {
        let mask = ctl_mask(x);
        if mask != 0 {
            return Some(i + (mask.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let tail = buf.get(i..).unwrap_or_default();
    tail.iter()
        .position(|&b| b < 0x20 || b == 0x7f)
        .map(|at| i + at)
}

/// The offset of the first byte in `buf` at or after `from` that is not an ASCII letter, digit
/// or "-" (the end of nearly every field name: its colon).
#[inline]
pub(super) fn find_non_name(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(block) = block_at(buf, i) {
        if let Some(at) = block16::first_non_name(block) {
            return Some(i + at);
        }
        i += 16;
    }
    while let Some(x) = word_at(buf, i) {
        let mask = non_name_mask(x);
        if mask != 0 {
            return Some(i + (mask.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let tail = buf.get(i..).unwrap_or_default();
    tail.iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'-'))
        .map(|at| i + at)
}

/// Sixteen-byte blocks with SSE2: one compare per class, `pmovmskb` to a bit per byte, and
/// `trailing_zeros` to the first. Every test is exact per byte.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod block16 {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, m128i, min_u8_m128i,
        move_mask_i8_m128i, set_splat_i8_m128i, sub_i8_m128i,
    };

    /// Bytes `lo..=hi` (unsigned), as all-ones lanes: `b - lo <= hi - lo` with wrapping
    /// arithmetic, the unsigned compare done as `min(x, n) == x`.
    #[inline(always)]
    fn in_range(v: m128i, lo: u8, hi: u8) -> m128i {
        let x = sub_i8_m128i(v, set_splat_i8_m128i(lo as i8));
        let n = set_splat_i8_m128i((hi - lo) as i8);
        cmp_eq_mask_i8_m128i(min_u8_m128i(x, n), x)
    }

    #[inline(always)]
    fn first(lanes: m128i) -> Option<usize> {
        let bits = move_mask_i8_m128i(lanes) as u32;
        (bits != 0).then(|| bits.trailing_zeros() as usize)
    }

    /// The first CTL (below 0x20) or DEL.
    #[inline(always)]
    pub(super) fn first_ctl(block: &[u8; 16]) -> Option<usize> {
        let v = load_unaligned_m128i(block);
        let ctl = in_range(v, 0, 0x1f);
        let del = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(0x7f));
        first(bitor_m128i(ctl, del))
    }

    /// A bit per byte a request-target may not hold (all but 0x21..=0x7e, and `#`), and a bit
    /// per `?` or `%`.
    #[inline(always)]
    pub(super) fn target_marks(block: &[u8; 16]) -> (u32, u32) {
        let v = load_unaligned_m128i(block);
        let visible = in_range(v, 0x21, 0x7e);
        let hash = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'#' as i8));
        let stops = move_mask_i8_m128i(visible) as u32 ^ 0xffff | move_mask_i8_m128i(hash) as u32;
        let query = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'?' as i8));
        let percent = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'%' as i8));
        (
            stops,
            move_mask_i8_m128i(bitor_m128i(query, percent)) as u32,
        )
    }

    /// The first byte that is not an ASCII letter, digit or "-".
    #[inline(always)]
    pub(super) fn first_non_name(block: &[u8; 16]) -> Option<usize> {
        let v = load_unaligned_m128i(block);
        // Setting 0x20 maps exactly the uppercase letters onto the lowercase ones.
        let letter = in_range(bitor_m128i(v, set_splat_i8_m128i(0x20)), b'a', b'z');
        let digit = in_range(v, b'0', b'9');
        let dash = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'-' as i8));
        let name = bitor_m128i(bitor_m128i(letter, digit), dash);
        first(cmp_eq_mask_i8_m128i(name, set_splat_i8_m128i(0)))
    }

    /// A bit per byte that is not an ASCII letter, digit, "-" or ".".
    #[inline(always)]
    pub(super) fn non_hostname_marks(block: &[u8; 16]) -> u32 {
        let v = load_unaligned_m128i(block);
        let letter = in_range(bitor_m128i(v, set_splat_i8_m128i(0x20)), b'a', b'z');
        let digit = in_range(v, b'0', b'9');
        let dash = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'-' as i8));
        let dot = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'.' as i8));
        let host = bitor_m128i(bitor_m128i(letter, digit), bitor_m128i(dash, dot));
        move_mask_i8_m128i(cmp_eq_mask_i8_m128i(host, set_splat_i8_m128i(0))) as u32
    }
}

/// Sixteen-byte blocks as two words, where SSE2 is not there.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
mod block16 {
    pub(super) use super::portable16::{
        first_ctl, first_non_name, non_hostname_marks, target_marks,
    };
}

/// The word-at-a-time form of `block16`, also tested against it on x86-64.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
mod portable16 {
    use super::{ctl_mask, eq_mask, non_hostname_mask, non_name_mask, non_target_mask};

    #[inline(always)]
    fn first(block: &[u8; 16], mask: impl Fn(u64) -> u64) -> Option<usize> {
        let (lo, hi) = block.split_at(8);
        let lo = mask(u64::from_le_bytes(lo.try_into().ok()?));
        if lo != 0 {
            return Some((lo.trailing_zeros() / 8) as usize);
        }
        let hi = mask(u64::from_le_bytes(hi.try_into().ok()?));
        (hi != 0).then(|| 8 + (hi.trailing_zeros() / 8) as usize)
    }

    pub(super) fn first_ctl(block: &[u8; 16]) -> Option<usize> {
        first(block, ctl_mask)
    }

    pub(super) fn first_non_name(block: &[u8; 16]) -> Option<usize> {
        first(block, non_name_mask)
    }

    pub(super) fn non_hostname_marks(block: &[u8; 16]) -> u32 {
        let (lo, hi) = block.split_at(8);
        let [lo, hi] = [lo, hi].map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()));
        bits(non_hostname_mask(lo)) | bits(non_hostname_mask(hi)) << 8
    }

    /// The high bit of each byte of an exact mask, gathered into a bit per byte: the multiplier
    /// moves byte k's bit to bit 56 + k, every partial product landing on its own bit (no carry).
    fn bits(mask: u64) -> u32 {
        ((mask >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
    }

    pub(super) fn target_marks(block: &[u8; 16]) -> (u32, u32) {
        let (lo, hi) = block.split_at(8);
        let words = [lo, hi].map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()));
        let [stops, specials] = [
            |x| non_target_mask(x),
            |x| eq_mask(x, b'?') | eq_mask(x, b'%'),
        ]
        .map(|mask: fn(u64) -> u64| bits(mask(words[0])) | bits(mask(words[1])) << 8);
        (stops, specials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first marked byte of `mask`, as an offset.
    fn first(mask: u64) -> Option<u32> {
        (mask != 0).then(|| mask.trailing_zeros() / 8)
    }

    #[test]
    fn masks_find_the_first_byte_of_their_class_at_every_position() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut word = *b"a0-Zz9Aa";
                word[pos] = b;
                // A second mark after the first must not hide it.
                if pos < 7 {
                    word[pos + 1] = b;
                }
                let x = u64::from_le_bytes(word);
                let at = Some(pos as u32);
                let name = b.is_ascii_alphanumeric() || b == b'-';
                assert_eq!(first(non_name_mask(x)), (!name).then_some(pos as u32));
                let ctl = b < 0x20 || b == 0x7f;
                assert_eq!(first(ctl_mask(x)), at.filter(|_| ctl), "{b:#04x}");
                let target = (0x21..0x7f).contains(&b) && b != b'#';
                assert_eq!(first(non_target_mask(x)), at.filter(|_| !target));
                assert_eq!(first(eq_mask(x, b'?')), at.filter(|_| b == b'?'));
            }
        }
    }

    #[test]
    fn exact_masks_mark_every_byte_of_their_class() {
        for b in 0..=255u8 {
            let x = u64::from_le_bytes([b, b'a', b, b'-', b, b'0', b, b'Z']);
            let marks = |mask: u64| mask.count_ones();
            let name = b.is_ascii_alphanumeric() || b == b'-';
            assert_eq!(marks(non_name_mask(x)), if name { 0 } else { 4 });
            let host = name || b == b'.';
            assert_eq!(marks(non_hostname_mask(x)), if host { 0 } else { 4 });
            let target = (0x21..0x7f).contains(&b) && b != b'#';
            assert_eq!(marks(non_target_mask(x)), if target { 0 } else { 4 });
            let dashes = if b == b'-' { 5 } else { 1 };
            assert_eq!(marks(eq_mask(x, b'-')), dashes, "{b:#04x}");
        }
    }

    #[test]
    fn finds_the_first_byte_at_every_position() {
        for b in 0..=255u8 {
            for len in 1..40 {
                for pos in 0..len {
                    let mut hay = vec![b'a'; len];
                    hay[pos] = b;
                    if pos + 1 < len {
                        hay[pos + 1] = b;
                    }
                    let found = find_byte(&hay, b);
                    assert_eq!(found, (b != b'a').then_some(pos).or(Some(0)), "{b:#04x}");
                    let ctl = b < 0x20 || b == 0x7f;
                    assert_eq!(find_ctl(&hay, 0), ctl.then_some(pos), "{b:#04x} at {pos}");
                }
            }
        }
        assert_eq!(find_byte(b"", b' '), None);
        assert_eq!(find_byte(b"abcdefghijk", b' '), None);
        assert_eq!(find_ctl(b"ab\r", 3), None);
    }

    #[test]
    fn block_scans_agree_with_the_classes_and_the_portable_form_at_every_position() {
        for b in 0..=255u8 {
            for pos in 0..16 {
                let mut block = *b"a0-Zz9Aa-b1Yc2Xd";
                block[pos] = b;
                if pos < 15 {
                    block[pos + 1] = b;
                }
                let ctl = b < 0x20 || b == 0x7f;
                let name = b.is_ascii_alphanumeric() || b == b'-';
                assert_eq!(block16::first_ctl(&block), ctl.then_some(pos), "{b:#04x}");
                assert_eq!(portable16::first_ctl(&block), ctl.then_some(pos));
                assert_eq!(block16::first_non_name(&block), (!name).then_some(pos));
                assert_eq!(portable16::first_non_name(&block), (!name).then_some(pos));
                let both = if pos < 15 { 0b11 << pos } else { 1 << pos };
                let host = if name || b == b'.' { 0 } else { both };
                assert_eq!(
                    block16::non_hostname_marks(&block),
                    host,
                    "{b:#04x} at {pos}"
                );
                assert_eq!(
                    portable16::non_hostname_marks(&block),
                    host,
                    "{b:#04x} at {pos}"
                );
                let target = (0x21..0x7f).contains(&b) && b != b'#';
                let special = b == b'?' || b == b'%';
                let marks = (
                    if target { 0 } else { both },
                    if special { both } else { 0 },
                );
                assert_eq!(block16::target_marks(&block), marks, "{b:#04x} at {pos}");
                assert_eq!(portable16::target_marks(&block), marks, "{b:#04x} at {pos}");
            }
        }
    }

    #[test]
    fn finds_the_end_of_a_name_at_every_position() {
        for b in 0..=255u8 {
            for len in 1..40 {
                for pos in 0..len {
                    let mut hay = vec![b'a'; len];
                    hay[pos] = b;
                    let name = b.is_ascii_alphanumeric() || b == b'-';
                    assert_eq!(find_non_name(&hay, 0), (!name).then_some(pos), "{b:#04x}");
                }
            }
        }
        assert_eq!(find_non_name(b"Host:", 4), Some(4));
        assert_eq!(find_non_name(b"Host", 4), None);
    }
}

//! `Headers`: the field lines of a request head, read in place.
//!
//! The parser checks every field line once (names are tokens, values hold only what RFC 9110
//! §5.5 allows) and records where each name and value lies in the frozen head bytes; nothing is
//! copied, hashed or lowercased per request. Lookups are linear scans with an ASCII
//! case-insensitive name match: a head holds at most `Limits::max_headers` fields (usually fewer
//! than 20), where a scan beats building a hash map that most requests never query.
//!
//! The field list is recycled (see [`Headers::recycle`] and `crate::header_pool`), so a
//! connection's steady state allocates nothing here. Code that needs the `http` crate's type can
//! build one with [`Headers::to_header_map`].

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// RFC 9110 §5.5: field-value = *field-content, built of VCHAR (0x21-0x7E), obs-text (0x80-0xFF),
/// SP and HTAB. Every other CTL (NUL, CR, LF, ...) and DEL are rejected. This is the set
/// `http::HeaderValue` accepts (a test below compares them byte by byte).
static FIELD_VALUE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b >= 0x20 && b != 0x7f) || b == b'\t' as usize;
        b += 1;
    }
    t
};

/// Whether every byte of `value` may appear in a field value (`FIELD_VALUE`).
///
/// Eight bytes at a time: a word without a byte below 0x20 and without DEL is all valid (the
/// common case, as HTAB is rare); a word that has one is checked byte by byte with the table.
pub(crate) fn is_field_value(value: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut words = value.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_ne_bytes(word.try_into().expect("chunks_exact(8) yields 8 bytes"));
        // Bit tricks ("determine if a word has a byte less than n", n <= 128): exact as a yes/no.
        let has_ctl = x.wrapping_sub(ONES * 0x20) & !x & HIGHS != 0;
        let del = x ^ (ONES * 0x7f);
        let has_del = del.wrapping_sub(ONES) & !del & HIGHS != 0;
        if (has_ctl || has_del) && !word.iter().all(|&b| FIELD_VALUE[usize::from(b)]) {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&b| FIELD_VALUE[usize::from(b)])
}

/// Where one field line's name and value (without surrounding OWS) lie in the head bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    name_start: u32,
    value_start: u32,
    value_len: u32,
    /// `http::HeaderName` refuses names over 65535 bytes; so do we (checked in `Field::new`).
    name_len: u16,
}

impl Field {
    /// A field whose name is `section[name]` and value `section[value]`; `None` if an offset
    /// does not fit (a head over 4 GiB or a name over 65535 bytes: only reachable with limits
    /// raised far past their defaults).
    /// The name lies before the value (`name.end <= value.start`), as in a field line.
    #[inline]
    pub(crate) fn new(
        name: std::ops::Range<usize>,
        value: std::ops::Range<usize>,
    ) -> Option<Field> {
        debug_assert!(
            name.start <= name.end && name.end <= value.start && value.start <= value.end
        );
        // Two checks instead of one conversion per offset (four per field line, measured): every
        // offset and length is at most `value.end`, so the casts below are lossless.
        let name_len = name.end.wrapping_sub(name.start);
        if u32::try_from(value.end).is_err() || name_len > usize::from(u16::MAX) {
            return None;
        }
        Some(Field {
            name_start: name.start as u32,
            name_len: name_len as u16,
            value_start: value.start as u32,
            value_len: value.end.wrapping_sub(value.start) as u32,
        })
    }

    fn name_range(self) -> std::ops::Range<usize> {
        let start = self.name_start as usize;
        start..start + usize::from(self.name_len)
    }

    fn value_range(self) -> std::ops::Range<usize> {
        let start = self.value_start as usize;
        start..start + self.value_len as usize
    }
}

/// The header fields of one request, as received: in order, names as sent (not lowercased),
/// values without surrounding whitespace, all zero-copy views of the request head.
///
/// Every name is a token (RFC 9110 §5.6.2) and every value holds only VCHAR, obs-text, SP and
/// HTAB (RFC 9110 §5.5): the parser rejected anything else.
#[derive(Clone, Default)]
pub struct Headers {
    /// The frozen head bytes the fields point into (empty when there are no fields).
    section: Bytes,
    // INVARIANT: every range of every field lies within `section`.
    fields: Vec<Field>,
}

impl Headers {
    /// An empty list with room for `fields` field lines (for pools).
    pub fn with_capacity(fields: usize) -> Headers {
        Headers {
            section: Bytes::new(),
            fields: Vec::with_capacity(fields),
        }
    }

    /// Wrap fields found by the parser in `section`.
    pub(crate) fn new(section: Bytes, fields: Vec<Field>) -> Headers {
        debug_assert!(fields
            .iter()
            .all(|f| f.name_range().end <= section.len() && f.value_range().end <= section.len()));
        Headers { section, fields }
    }

    /// The field storage, emptied, for the parser to fill (the head bytes, if any, are let go).
    pub(crate) fn take_fields(&mut self) -> Vec<Field> {
        self.fields_to_fill();
        self.take_filled()
    }

    /// The field storage, emptied, for the parser to fill in place (the head bytes, if any, are
    /// let go: no field may point into them); take it back with `take_filled`.
    #[inline]
    pub(crate) fn fields_to_fill(&mut self) -> &mut Vec<Field> {
        // A recycled list (the parser's usual `spare`) already holds the empty static section;
        // replacing it would still drop it through its vtable, a call per request.
        if !self.section.is_empty() {
            self.section = Bytes::new();
        }
        self.fields.clear();
        &mut self.fields
    }

    /// The fields filled in place since `fields_to_fill`, with their storage; this list is left
    /// without any.
    #[inline]
    pub(crate) fn take_filled(&mut self) -> Vec<Field> {
        std::mem::take(&mut self.fields)
    }

    /// Exchange the storage that `fields_to_fill` gave, and the fields filled in it so far, with
    /// `fields`, which must be empty: the parser goes on filling it in its own state.
    pub(crate) fn swap_fields_filled(&mut self, fields: &mut Vec<Field>) {
        debug_assert!(fields.is_empty() && self.section.is_empty());
        std::mem::swap(&mut self.fields, fields);
    }

    /// Exchange the field storage with `fields`, which must be empty (the parser fills a recycled
    /// list in place). The head bytes are kept until `take_fields`: no field points into them.
    pub(crate) fn swap_fields(&mut self, fields: &mut Vec<Field>) {
        debug_assert!(fields.is_empty());
        std::mem::swap(&mut self.fields, fields);
        self.fields.clear();
    }

    /// Empty this list and return it with its storage, for the next request: the head bytes are
    /// released, the capacity of the field list is kept.
    pub fn recycle(self) -> Headers {
        // Taken apart rather than emptied in place, so that only the head's bytes are dropped
        // and not also the empty section left behind.
        let Headers {
            section,
            mut fields,
        } = self;
        drop(section);
        fields.clear();
        Headers {
            section: Bytes::new(),
            fields,
        }
    }

    /// How many field lines the list can hold without allocating.
    pub fn capacity(&self) -> usize {
        self.fields.capacity()
    }

    /// The number of field lines (a name sent twice counts twice).
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// No field lines at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn name_bytes(&self, f: Field) -> &[u8] {
        self.section.get(f.name_range()).unwrap_or_default()
    }

    fn value(&self, f: Field) -> &[u8] {
        self.section.get(f.value_range()).unwrap_or_default()
    }

    /// The value of the first field named `name` (ASCII case-insensitive, RFC 9110 §5.1).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let f = self
            .fields
            .iter()
            .find(|&&f| self.name_bytes(f).eq_ignore_ascii_case(name.as_bytes()))?;
        Some(self.value(*f))
    }

    /// The value of the first field named `name`, if it is visible ASCII, SP or HTAB only (the
    /// rule of `http::HeaderValue::to_str`); `None` if there is no such field or it holds
    /// obs-text.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        let value = self.get(name)?;
        if value
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) || b == b'\t')
        {
            std::str::from_utf8(value).ok()
        } else {
            None
        }
    }

    /// The values of every field named `name` (ASCII case-insensitive), in the order received.
    /// RFC 9110 §5.3: a recipient may combine them into one comma-separated list.
    pub fn get_all<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        self.fields
            .iter()
            .filter(move |&&f| self.name_bytes(f).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |&f| self.value(f))
    }

    /// Whether a field named `name` (ASCII case-insensitive) was received.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every field line in the order received: the name as sent and the value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.fields.iter().map(move |&f| {
            let name = std::str::from_utf8(self.name_bytes(f))
                .expect("field names were checked to be tokens (ASCII) when parsed");
            (name, self.value(f))
        })
    }

    /// Fields received in another framing (HTTP/2's HPACK, already checked by the `http` crate's
    /// types against the same rules), copied into one section so the rest of the server sees one
    /// request type. `host` first, when given (HTTP/2's `:authority`, RFC 9113 §8.3.1).
    /// `storage` is a recycled list whose field storage is reused (see `header_pool`), and
    /// `section_len` the section's size as field lines ("name: value\r\n" each), so that the
    /// section is allocated once. `None` if the fields are too large to index (over 4 GiB).
    pub fn from_fields<'a>(
        mut storage: Headers,
        section_len: usize,
        host: Option<&[u8]>,
        fields: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
    ) -> Option<Headers> {
        let mut ranges = storage.take_fields();
        let mut section = Vec::with_capacity(section_len);
        let mut push = |name: &[u8], value: &[u8]| {
            let name_start = section.len();
            section.extend_from_slice(name);
            let value_start = section.len() + 2;
            section.extend_from_slice(b": ");
            section.extend_from_slice(value);
            section.extend_from_slice(b"\r\n");
            ranges.push(Field::new(
                name_start..name_start + name.len(),
                value_start..value_start + value.len(),
            )?);
            Some(())
        };
        if let Some(host) = host {
            push(b"host", host)?;
        }
        for (name, value) in fields {
            push(name.as_str().as_bytes(), value.as_bytes())?;
        }
        Some(Headers::new(Bytes::from(section), ranges))
    }

    /// The fields as an `http::HeaderMap` (names lowercased, values zero-copy slices of the
    /// head), for code that needs the `http` crate's type. Allocates: not for the hot path.
    pub fn to_header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.fields.len());
        for &f in &self.fields {
            // The parser enforced what these constructors check (token names up to 65535 bytes,
            // RFC 9110 §5.5 values), so neither can fail.
            let name = HeaderName::from_bytes(self.name_bytes(f))
                .expect("field names were checked to be tokens when parsed");
            let value = HeaderValue::from_maybe_shared(self.section.slice(f.value_range()))
                .expect("field values were checked against RFC 9110 §5.5 when parsed");
            map.append(name, value);
        }
        map
    }
}

impl PartialEq for Headers {
    /// Same field lines (names as sent, values) in the same order; where they lie does not count.
    fn eq(&self, other: &Headers) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(name, value)| (name, String::from_utf8_lossy(value))),
            )
            .finish()
    }
}

/// A field value without the optional whitespace around it (RFC 9110 §5.6.3: `OWS = *( SP /
/// HTAB )`), as list elements and parameters are read. Our parser already trims each whole field
/// line; this is for the pieces of a list (`a, b ; q=0.5`).
pub fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |last| last + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(
        section: &'static [u8],
        fields: &[(std::ops::Range<usize>, std::ops::Range<usize>)],
    ) -> Headers {
        let fields = fields
            .iter()
            .map(|(n, v)| Field::new(n.clone(), v.clone()).unwrap())
            .collect();
        Headers::new(Bytes::from_static(section), fields)
    }

    /// "Host: x", "X-A: 1", "x-a: 2", "Y: caf\xe9".
    fn sample() -> Headers {
        let section = b"Host: x\r\nX-A: 1\r\nx-a: 2\r\nY: caf\xe9\r\n";
        headers(
            section,
            &[
                (0..4, 6..7),
                (9..12, 14..15),
                (17..20, 22..23),
                (25..26, 28..32),
            ],
        )
    }

    #[test]
    fn field_value_table_is_what_header_value_accepts() {
        for b in 0..=255u8 {
            assert_eq!(
                FIELD_VALUE[usize::from(b)],
                HeaderValue::from_bytes(&[b'a', b, b'a']).is_ok(),
                "{b:#04x}"
            );
        }
    }

    #[test]
    fn word_at_a_time_check_agrees_with_the_table_at_every_position() {
        for b in 0..=255u8 {
            for len in 1..20 {
                for pos in 0..len {
                    let mut value = vec![b'a'; len];
                    value[pos] = b;
                    assert_eq!(
                        is_field_value(&value),
                        FIELD_VALUE[usize::from(b)],
                        "{b:#04x} at {pos} of {len}"
                    );
                }
            }
        }
        assert!(is_field_value(b""));
    }

    #[test]
    fn get_matches_names_case_insensitively_and_returns_the_first() {
        let h = sample();
        assert_eq!(h.len(), 4);
        assert!(!h.is_empty());
        assert_eq!(h.get("host"), Some(&b"x"[..]));
        assert_eq!(h.get("HOST"), Some(&b"x"[..]));
        assert_eq!(h.get("x-a"), Some(&b"1"[..]));
        assert_eq!(h.get("x-b"), None);
        assert!(h.contains("X-a"));
        assert!(!h.contains("hos"));
        assert_eq!(h.get_all("X-A").collect::<Vec<_>>(), [b"1", b"2"]);
        assert_eq!(h.get_all("nope").count(), 0);
    }

    #[test]
    fn get_str_only_for_visible_ascii() {
        let h = sample();
        assert_eq!(h.get_str("host"), Some("x"));
        assert_eq!(h.get_str("y"), None);
        assert_eq!(h.get("y"), Some(&b"caf\xe9"[..]));
    }

    #[test]
    fn iter_keeps_order_and_names_as_sent() {
        let h = sample();
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Host", "X-A", "x-a", "Y"]);
    }

    #[test]
    fn to_header_map_has_every_field() {
        let map = sample().to_header_map();
        assert_eq!(map.len(), 4);
        assert_eq!(map["host"], "x");
        let xa: Vec<_> = map.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
        assert_eq!(map["y"].as_bytes(), b"caf\xe9");
    }

    #[test]
    fn fields_from_another_framing_become_one_section_in_recycled_storage() {
        let mut map = http::HeaderMap::new();
        map.insert("user-agent", HeaderValue::from_static("h2load"));
        map.append("accept", HeaderValue::from_static("a"));
        map.append("accept", HeaderValue::from_static("b"));
        let storage = Headers::with_capacity(8).recycle();
        let expected = b"host: example.com\r\nuser-agent: h2load\r\naccept: a\r\naccept: b\r\n";
        let h = Headers::from_fields(storage, expected.len(), Some(b"example.com"), map.iter())
            .unwrap();
        assert_eq!(&h.section[..], &expected[..]);
        assert_eq!(h.capacity(), 8, "the recycled field storage is reused");
        assert_eq!(h.get("host"), Some(&b"example.com"[..]));
        assert_eq!(h.get_all("accept").collect::<Vec<_>>(), [&b"a"[..], b"b"]);
        // A wrong size hint costs only a reallocation.
        let small = Headers::from_fields(Headers::default(), 1, None, map.iter()).unwrap();
        assert_eq!(small.len(), 3);
        assert_eq!(small.get("user-agent"), Some(&b"h2load"[..]));
    }

    #[test]
    fn recycle_keeps_the_storage_and_drops_the_head() {
        let h = sample();
        let cap = h.capacity();
        let h = h.recycle();
        assert!(h.is_empty());
        assert_eq!(h.capacity(), cap);
        assert!(h.section.is_empty());
        assert_eq!(Headers::default().capacity(), 0);
    }

    #[test]
    fn field_refuses_names_over_65535_bytes_and_offsets_over_4_gib() {
        let f = Field::new(3..65538, 65540..65541).expect("a 65535-byte name fits");
        assert_eq!((f.name_range(), f.value_range()), (3..65538, 65540..65541));
        assert!(Field::new(3..65539, 65540..65541).is_none());
        let top = u32::MAX as usize;
        let f = Field::new(top - 9..top - 5, top - 3..top).expect("offsets up to u32::MAX fit");
        assert_eq!(
            (f.name_range(), f.value_range()),
            (top - 9..top - 5, top - 3..top)
        );
        assert!(Field::new(top - 9..top - 5, top - 3..top + 1).is_none());
    }

    #[test]
    fn a_field_stays_small() {
        assert!(std::mem::size_of::<Field>() <= 16);
    }
}

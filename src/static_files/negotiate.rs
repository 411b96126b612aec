//! Content-coding negotiation: which of the codings we can send the client accepts best
//! (`Accept-Encoding`, RFC 9110 §12.5.3), and the names, file suffixes and `Content-Encoding`
//! values of those codings.
//!
//! Owns: parsing `Accept-Encoding` field lines (no allocation) and the choice. Sans-IO: it does
//! not look for precompressed files, compress anything, or write `Vary` (the caller adds
//! `Vary: Accept-Encoding` to every response whose coding could have differed, RFC 9110 §12.5.5).

use crate::http1::{is_token, trim_ows};
use http::HeaderValue;

/// A content coding (RFC 9110 §8.4.1) that the server can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `br`, RFC 7932.
    Brotli,
    /// `zstd`, RFC 8878 (with the HTTP window limit of RFC 9659 §3).
    Zstd,
    /// `gzip`, RFC 1952 (RFC 9110 §8.4.1.3).
    Gzip,
    /// `identity`: no coding (RFC 9110 §12.5.3).
    Identity,
}

impl Encoding {
    /// Every coding, in the server's order of preference, which breaks ties between equal
    /// q-values: brotli and zstd are smaller than gzip at the same effort, brotli slightly
    /// smaller than zstd on text (see compress.rs); identity costs the most bytes on the wire.
    pub const PREFERENCE: [Encoding; 4] = [
        Encoding::Brotli,
        Encoding::Zstd,
        Encoding::Gzip,
        Encoding::Identity,
    ];

    /// The coding's registered name (RFC 9110 §8.4.1, §18.6), as sent in `Content-Encoding`.
    pub const fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "identity",
        }
    }

    /// The suffix of a precompressed sibling (`app.js` → `app.js.br`), as `brotli`, `zstd` and
    /// `gzip` write them and as nginx's `gzip_static`/`brotli_static` look them up. Empty for
    /// identity: the file itself.
    pub const fn file_suffix(self) -> &'static str {
        match self {
            Encoding::Brotli => ".br",
            Encoding::Zstd => ".zst",
            Encoding::Gzip => ".gz",
            Encoding::Identity => "",
        }
    }

    /// The `Content-Encoding` value to send, or `None` for identity: identity is the absence of
    /// a coding and is not sent in `Content-Encoding` (RFC 9110 §8.4.1, §12.5.3). Built from
    /// static strings, so this never allocates.
    pub const fn content_encoding(self) -> Option<HeaderValue> {
        match self {
            Encoding::Brotli => Some(HeaderValue::from_static("br")),
            Encoding::Zstd => Some(HeaderValue::from_static("zstd")),
            Encoding::Gzip => Some(HeaderValue::from_static("gzip")),
            Encoding::Identity => None,
        }
    }

    /// Index into [`Weights`]; the same order as [`Encoding::PREFERENCE`].
    const fn index(self) -> usize {
        match self {
            Encoding::Brotli => 0,
            Encoding::Zstd => 1,
            Encoding::Gzip => 2,
            Encoding::Identity => 3,
        }
    }
}

/// A qvalue in thousandths (RFC 9110 §12.4.2 allows at most three decimals): 0..=1000.
type Weight = u16;

const Q_MAX: Weight = 1000;

/// The weights a request gave, per coding we know (indexed by [`Encoding::index`]) and for `*`.
/// `None`: not listed.
#[derive(Default)]
struct Weights {
    coding: [Option<Weight>; 4],
    star: Option<Weight>,
    /// Some field line had at least one well-formed element.
    any_listed: bool,
}

impl Weights {
    /// A coding listed twice is a client bug the RFC does not settle; the lower weight wins,
    /// so an explicit refusal (`q=0`) is never overridden by a later duplicate.
    fn record(slot: &mut Option<Weight>, q: Weight) {
        *slot = Some(slot.map_or(q, |old| old.min(q)));
    }

    /// The weight of `encoding` under RFC 9110 §12.5.3, or `None` if it is not acceptable.
    ///
    /// A listed coding has its own weight; `*` gives its weight to every coding "not explicitly
    /// listed in the field" (identity included: the RFC names `*;q=0` as one way to refuse it).
    /// An unlisted coding with no `*` is not acceptable, except identity, which "is acceptable
    /// by default unless specifically excluded". We rank that default identity below every coding
    /// the client listed with q > 0: a client that sends only `gzip;q=0.5` supports gzip and
    /// said nothing about preferring the uncompressed bytes, so it gets gzip. (Ranking it at q=1
    /// would answer such clients uncompressed; nginx likewise compresses whenever gzip has q > 0.)
    fn weight(&self, encoding: Encoding) -> Option<Weight> {
        let explicit = self.coding[encoding.index()].or(self.star);
        let q = match (explicit, encoding) {
            (Some(q), _) => q,
            // Lowest rank that is still acceptable: loses every tie by preference order too.
            (None, Encoding::Identity) => 0,
            (None, _) => return None,
        };
        match (explicit, q) {
            // RFC 9110 §12.4.2: "a value of 0 means not acceptable".
            (Some(_), 0) => None,
            _ => Some(q),
        }
    }
}

/// Picks the content coding to send (RFC 9110 §12.5.3).
///
/// - `accept_encoding`: every `Accept-Encoding` field line of the request, in order (a field
///   sent on several lines is one comma-separated list, RFC 9110 §5.3). No line at all means
///   the header is absent.
/// - `available`: the codings the caller can produce for this response (precompressed siblings
///   found, or a compressible body). Identity is always available (it is the file itself),
///   whether listed or not.
///
/// The coding with the highest q-value wins; ties go to the server's preference
/// ([`Encoding::PREFERENCE`]: br > zstd > gzip > identity). Codings are case-insensitive
/// (§8.4.1), `x-gzip` is gzip (§8.4.1.3), unknown codings and malformed elements are ignored.
///
/// Returns `None` only when the client refused identity (`identity;q=0`, or `*;q=0` without
/// identity listed) and accepts none of `available`. RFC 9110 §12.5.3 allows answering that
/// with 406 *or* ignoring the header; the caller decides. We suggest sending identity anyway,
/// as nginx, Apache and most servers do: a 406 helps no real client, and a client that truly
/// cannot take identity can still reject the response.
///
/// No header (the iterator yields nothing) gives identity: §12.5.3 says any coding is then
/// acceptable, but a client that says nothing may not decode anything, so we send the bytes
/// as they are (as nginx's `gzip` does). An empty header also gives identity (§12.5.3: "the user
/// agent does not want any content coding").
pub fn choose_encoding<'a>(
    accept_encoding: impl Iterator<Item = &'a [u8]>,
    available: &[Encoding],
) -> Option<Encoding> {
    let mut weights = Weights::default();
    let mut any_line = false;
    for line in accept_encoding {
        any_line = true;
        parse_line(line, &mut weights);
    }
    if !any_line || !weights.any_listed {
        return Some(Encoding::Identity);
    }
    let mut best: Option<(Encoding, Weight)> = None;
    for encoding in Encoding::PREFERENCE {
        if encoding != Encoding::Identity && !available.contains(&encoding) {
            continue;
        }
        let Some(q) = weights.weight(encoding) else {
            continue;
        };
        // Strictly greater: on a tie the earlier (preferred) coding stays.
        if best.is_none_or(|(_, best_q)| q > best_q) {
            best = Some((encoding, q));
        }
    }
    best.map(|(encoding, _)| encoding)
}

/// Parses one field line: `#( codings [ weight ] )` (RFC 9110 §12.5.3), where the list syntax
/// (§5.6.1) allows empty elements and optional whitespace around commas.
fn parse_line(line: &[u8], weights: &mut Weights) {
    for element in line.split(|&b| b == b',') {
        let element = trim_ows(element);
        if element.is_empty() {
            continue;
        }
        if let Some((coding, q)) = parse_element(element) {
            weights.any_listed = true;
            match coding {
                Coding::Known(encoding) => {
                    Weights::record(&mut weights.coding[encoding.index()], q)
                }
                Coding::Star => Weights::record(&mut weights.star, q),
                // Well-formed but not ours (`deflate`, `compress`, ...): ignored (§12.5.3).
                Coding::Other => {}
            }
        }
    }
}

enum Coding {
    Known(Encoding),
    Star,
    Other,
}

/// `codings [ weight ]`, or `None` if malformed. `codings = content-coding / "identity" / "*"`,
/// `content-coding = token` (§8.4.1), `weight = OWS ";" OWS "q=" qvalue` (§12.4.2).
///
/// Any parameter other than one `q` makes the element malformed: the grammar allows none, and
/// guessing what `gzip;level=9` means is worse than ignoring it.
fn parse_element(element: &[u8]) -> Option<(Coding, Weight)> {
    let (name, rest) = match element.iter().position(|&b| b == b';') {
        Some(i) => (trim_ows(&element[..i]), Some(&element[i + 1..])),
        None => (element, None),
    };
    if !is_token(name) {
        return None;
    }
    let q = match rest {
        None => Q_MAX,
        Some(param) => {
            let param = trim_ows(param);
            // "q=" is case-insensitive: parameter names are (§5.6.6), and §12.4.2 says so.
            let value = match param {
                [b'q' | b'Q', b'=', value @ ..] => value,
                _ => return None,
            };
            parse_qvalue(value)?
        }
    };
    let coding = if name == b"*" {
        Coding::Star
    } else if name.eq_ignore_ascii_case(b"br") {
        Coding::Known(Encoding::Brotli)
    } else if name.eq_ignore_ascii_case(b"zstd") {
        Coding::Known(Encoding::Zstd)
    } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
        // §8.4.1.3: "A recipient SHOULD consider "x-gzip" to be equivalent to "gzip"."
        Coding::Known(Encoding::Gzip)
    } else if name.eq_ignore_ascii_case(b"identity") {
        Coding::Known(Encoding::Identity)
    } else {
        Coding::Other
    };
    Some((coding, q))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (RFC 9110 §12.4.2), in
/// thousandths. Anything else (`0.5000`, `2`, `.5`, `1.5`) is malformed.
fn parse_qvalue(value: &[u8]) -> Option<Weight> {
    let (&first, rest) = value.split_first()?;
    let fraction = match rest {
        [] => &[][..],
        [b'.', digits @ ..] if digits.len() <= 3 => digits,
        _ => return None,
    };
    if !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Weight = 0;
    let mut scale: Weight = 100;
    for &d in fraction {
        thousandths += Weight::from(d - b'0') * scale;
        scale /= 10;
    }
    match first {
        b'0' => Some(thousandths),
        b'1' if thousandths == 0 => Some(Q_MAX),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: &[Encoding] = &[Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];

    fn choose(lines: &[&str], available: &[Encoding]) -> Option<Encoding> {
        choose_encoding(lines.iter().map(|l| l.as_bytes()), available)
    }

    #[test]
    fn absent_header_gives_identity() {
        assert_eq!(choose(&[], ALL), Some(Encoding::Identity));
    }

    #[test]
    fn empty_header_gives_identity() {
        assert_eq!(choose(&[""], ALL), Some(Encoding::Identity));
        assert_eq!(choose(&[" , ,"], ALL), Some(Encoding::Identity));
    }

    #[test]
    fn ties_broken_by_server_preference() {
        // What browsers send today.
        assert_eq!(
            choose(&["gzip, deflate, br, zstd"], ALL),
            Some(Encoding::Brotli)
        );
        assert_eq!(choose(&["gzip, zstd"], ALL), Some(Encoding::Zstd));
        assert_eq!(choose(&["gzip, deflate"], ALL), Some(Encoding::Gzip));
        assert_eq!(choose(&["identity, gzip"], ALL), Some(Encoding::Gzip));
    }

    #[test]
    fn higher_qvalue_wins_over_server_preference() {
        assert_eq!(choose(&["br;q=0.5, gzip"], ALL), Some(Encoding::Gzip));
        assert_eq!(choose(&["br;q=0.8, zstd;q=0.9"], ALL), Some(Encoding::Zstd));
        assert_eq!(
            choose(&["gzip;q=0.1, identity"], ALL),
            Some(Encoding::Identity)
        );
    }

    #[test]
    fn only_available_codings_are_chosen() {
        assert_eq!(
            choose(&["br, gzip"], &[Encoding::Gzip]),
            Some(Encoding::Gzip)
        );
        assert_eq!(choose(&["br"], &[Encoding::Gzip]), Some(Encoding::Identity));
        assert_eq!(choose(&["br, gzip, zstd"], &[]), Some(Encoding::Identity));
    }

    #[test]
    fn q_zero_excludes_a_coding() {
        assert_eq!(choose(&["br;q=0, gzip"], ALL), Some(Encoding::Gzip));
        assert_eq!(choose(&["gzip;q=0"], ALL), Some(Encoding::Identity));
        assert_eq!(choose(&["gzip;q=0.000"], ALL), Some(Encoding::Identity));
    }

    #[test]
    fn identity_q_zero_excludes_identity() {
        assert_eq!(choose(&["identity;q=0"], ALL), None);
        assert_eq!(choose(&["identity;q=0, gzip"], ALL), Some(Encoding::Gzip));
        assert_eq!(choose(&["identity;q=0, gzip"], &[]), None);
    }

    #[test]
    fn star_q_zero_excludes_everything_unlisted_including_identity() {
        assert_eq!(choose(&["*;q=0"], ALL), None);
        assert_eq!(choose(&["*;q=0, gzip"], ALL), Some(Encoding::Gzip));
        assert_eq!(choose(&["*;q=0, identity"], ALL), Some(Encoding::Identity));
        assert_eq!(
            choose(&["*;q=0, identity;q=0.5"], ALL),
            Some(Encoding::Identity)
        );
    }

    #[test]
    fn star_matches_codings_not_listed() {
        assert_eq!(choose(&["*"], ALL), Some(Encoding::Brotli));
        assert_eq!(choose(&["*"], &[Encoding::Gzip]), Some(Encoding::Gzip));
        assert_eq!(choose(&["br;q=0, *"], ALL), Some(Encoding::Zstd));
        assert_eq!(choose(&["gzip, *;q=0.5"], ALL), Some(Encoding::Gzip));
        assert_eq!(
            choose(&["*;q=0.5, identity"], ALL),
            Some(Encoding::Identity)
        );
    }

    #[test]
    fn unlisted_identity_ranks_below_listed_codings() {
        assert_eq!(choose(&["gzip;q=0.001"], ALL), Some(Encoding::Gzip));
        assert_eq!(choose(&["gzip;q=0.5"], ALL), Some(Encoding::Gzip));
    }

    #[test]
    fn codings_are_case_insensitive() {
        assert_eq!(choose(&["GZIP"], ALL), Some(Encoding::Gzip));
        assert_eq!(choose(&["Br;Q=1"], ALL), Some(Encoding::Brotli));
        assert_eq!(choose(&["ZSTD, IDENTITY;q=0"], ALL), Some(Encoding::Zstd));
    }

    #[test]
    fn x_gzip_is_gzip() {
        assert_eq!(choose(&["x-gzip"], ALL), Some(Encoding::Gzip));
        assert_eq!(choose(&["x-gzip;q=0, *"], ALL), Some(Encoding::Brotli));
        assert_eq!(choose(&["X-GZIP"], &[Encoding::Gzip]), Some(Encoding::Gzip));
    }

    #[test]
    fn unknown_codings_are_ignored() {
        assert_eq!(
            choose(&["deflate, compress"], ALL),
            Some(Encoding::Identity)
        );
        assert_eq!(choose(&["deflate, gzip;q=0.5"], ALL), Some(Encoding::Gzip));
    }

    #[test]
    fn malformed_elements_are_ignored() {
        for line in [
            "gzip;q=2",
            "gzip;q=1.5",
            "gzip;q=0.5000",
            "gzip;q=.5",
            "gzip;q=",
            "gzip;level=9",
            "gzip;q=0.5;x=1",
            "gz ip",
            "gzip;",
            "\"gzip\"",
            "gzip;q=1.001",
            "gzip;q =1",
        ] {
            assert_eq!(choose(&[line], ALL), Some(Encoding::Identity), "{line}");
        }
        // A malformed refusal is ignored too: identity stays acceptable.
        assert_eq!(choose(&["identity;q=x"], ALL), Some(Encoding::Identity));
        assert_eq!(choose(&["br;q=x, gzip"], ALL), Some(Encoding::Gzip));
    }

    #[test]
    fn whitespace_around_elements_and_parameters_is_allowed() {
        assert_eq!(
            choose(&["  br ; q=0.9 ,\tgzip\t"], ALL),
            Some(Encoding::Gzip)
        );
        assert_eq!(choose(&["br\t;\tq=1"], ALL), Some(Encoding::Brotli));
    }

    #[test]
    fn several_field_lines_form_one_list() {
        assert_eq!(choose(&["gzip", "br"], ALL), Some(Encoding::Brotli));
        assert_eq!(choose(&["br;q=0.1", "gzip"], ALL), Some(Encoding::Gzip));
        assert_eq!(choose(&["gzip", "identity;q=0", ""], &[]), None);
    }

    #[test]
    fn duplicate_coding_keeps_the_lower_weight() {
        assert_eq!(choose(&["br;q=0, br"], ALL), Some(Encoding::Identity));
        assert_eq!(choose(&["br", "br;q=0"], ALL), Some(Encoding::Identity));
    }

    #[test]
    fn qvalue_grammar() {
        assert_eq!(parse_qvalue(b"1"), Some(1000));
        assert_eq!(parse_qvalue(b"1."), Some(1000));
        assert_eq!(parse_qvalue(b"1.000"), Some(1000));
        assert_eq!(parse_qvalue(b"0"), Some(0));
        assert_eq!(parse_qvalue(b"0.5"), Some(500));
        assert_eq!(parse_qvalue(b"0.05"), Some(50));
        assert_eq!(parse_qvalue(b"0.001"), Some(1));
        assert_eq!(parse_qvalue(b"0.999"), Some(999));
        for bad in [
            &b""[..],
            b"1.1",
            b"0.1234",
            b"2",
            b"-0",
            b"0,5",
            b"0.a",
            b"01",
        ] {
            assert_eq!(parse_qvalue(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn suffixes_and_content_encoding_values() {
        let expected = [
            (Encoding::Brotli, ".br", Some("br")),
            (Encoding::Zstd, ".zst", Some("zstd")),
            (Encoding::Gzip, ".gz", Some("gzip")),
            (Encoding::Identity, "", None),
        ];
        for (encoding, suffix, value) in expected {
            assert_eq!(encoding.file_suffix(), suffix);
            assert_eq!(
                encoding.content_encoding().as_ref().map(|v| v.as_bytes()),
                value.map(str::as_bytes)
            );
            if let Some(value) = value {
                assert_eq!(encoding.token(), value);
            }
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_picks_an_available_coding(
            lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..4),
            mask in 0u8..8,
        ) {
            let available: Vec<Encoding> = ALL
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, e)| *e)
                .collect();
            if let Some(chosen) = choose_encoding(lines.iter().map(Vec::as_slice), &available) {
                prop_assert!(chosen == Encoding::Identity || available.contains(&chosen));
            }
        }

        #[test]
        fn never_panics_on_header_like_input(
            line in "[ \t,;=qQ.0-9a-zA-Z*-]{0,64}",
        ) {
            let _ = choose_encoding(std::iter::once(line.as_bytes()), ALL);
        }
    }
}

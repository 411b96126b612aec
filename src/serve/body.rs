//! Gathering a request body that arrives in pieces (HTTP/1.1 chunks or reads, HTTP/2 DATA frames)
//! into the one `Bytes` a `Request` carries.

use bytes::{Bytes, BytesMut};

/// A body that arrived in one piece is passed on without a copy; only a second piece makes the
/// pieces be copied into one buffer.
#[derive(Default)]
pub(crate) struct BodyJoiner {
    first: Option<Bytes>,
    joined: BytesMut,
}

impl BodyJoiner {
    pub(crate) fn push(&mut self, data: Bytes) {
        if self.first.is_none() && self.joined.is_empty() {
            self.first = Some(data);
            return;
        }
        if let Some(first) = self.first.take() {
            self.joined.extend_from_slice(&first);
        }
        self.joined.extend_from_slice(&data);
    }

    /// Bytes gathered so far.
    pub(crate) fn len(&self) -> usize {
        self.first.as_ref().map_or(self.joined.len(), Bytes::len)
    }

    pub(crate) fn finish(self) -> Bytes {
        self.first.unwrap_or_else(|| self.joined.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_piece_is_not_copied_and_several_are_joined_in_order() {
        let piece = Bytes::from_static(b"whole");
        let mut one = BodyJoiner::default();
        one.push(piece.clone());
        assert_eq!(one.len(), 5);
        assert_eq!(one.finish().as_ptr(), piece.as_ptr());

        let mut many = BodyJoiner::default();
        for part in [&b"ab"[..], b"", b"cd", b"e"] {
            many.push(Bytes::copy_from_slice(part));
        }
        assert_eq!(many.len(), 5);
        assert_eq!(many.finish(), Bytes::from_static(b"abcde"));
        assert!(BodyJoiner::default().finish().is_empty());
    }
}

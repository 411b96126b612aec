//! Arbitrary bytes through `HeadParser` and `BodyDecoder`, whole, split at a position taken
//! from the input, and one byte at a time: must never panic, and the outcome must not depend on
//! how the bytes were split into reads. See `percore::http1::fuzz_drive`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    percore::http1::fuzz_drive(data);
});

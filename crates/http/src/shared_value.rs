//! Header values made per request without an allocation each.
//!
//! Why it exists: a value built from bytes (`HeaderValue::from_bytes`) copies them into a new
//! allocation, and its first clone allocates again (the copy's reference count). A proxy builds
//! such values for every request (a fresh request id, sent upstream and back to the client) and
//! clones them. [`shared_header_value`] writes the bytes into a
//! block of 4 KiB kept per thread instead and hands out a slice of it: values share the block's
//! one reference count, so neither making nor cloning one allocates, and the block is reused in
//! place once every value cut from it has been dropped (a new one is allocated only while older
//! values are still alive).
//!
//! The cost: a value kept for long keeps its whole block alive. Values of a request live as long
//! as the request, so this is for those, not for values stored for the process's life.

use std::cell::RefCell;

use bytes::BytesMut;
use http::HeaderValue;

/// Size of a thread's block.
const BLOCK_BYTES: usize = 4096;
/// Longest value cut from a block; longer ones get an allocation of their own.
const MAX_SHARED_BYTES: usize = BLOCK_BYTES / 8;

thread_local! {
    /// This thread's block: its unused rest (values already cut from it are not part of it).
    static BLOCK: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// `bytes` as a header value (`None` when they are not a valid one, as `HeaderValue::from_bytes`
/// decides), cut from this thread's block (module documentation).
pub fn shared_header_value(bytes: &[u8]) -> Option<HeaderValue> {
    if bytes.len() > MAX_SHARED_BYTES {
        return HeaderValue::from_bytes(bytes).ok();
    }
    BLOCK.with_borrow_mut(|block| {
        if block.capacity() - block.len() < bytes.len() {
            // Empty (everything written was split off): reuses the block when no value cut from
            // it is alive any more, else allocates a new one.
            block.reserve(BLOCK_BYTES);
        }
        block.extend_from_slice(bytes);
        HeaderValue::from_maybe_shared(block.split().freeze()).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_the_bytes_given_and_invalid_ones_are_refused() {
        let values: Vec<HeaderValue> = (0..2000)
            .map(|index| shared_header_value(format!("10.0.{}.{}", index / 256, index % 256).as_bytes()))
            .collect::<Option<_>>()
            .expect("valid values");
        for (index, value) in values.iter().enumerate() {
            assert_eq!(value, &format!("10.0.{}.{}", index / 256, index % 256));
            assert_eq!(value.clone(), *value);
        }
        assert!(shared_header_value(b"new\nline").is_none());
        assert!(shared_header_value(b"fine").is_some_and(|value| value == "fine"));
        assert!(shared_header_value(b"").is_some_and(|value| value.is_empty()));
        let long = "x".repeat(MAX_SHARED_BYTES + 1);
        assert!(shared_header_value(long.as_bytes()).is_some_and(|value| value == long.as_str()));
    }
}

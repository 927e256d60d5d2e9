//! Reading a streamed HTTP body of newline-delimited JSON, as etcd's watch and Kubernetes' watch
//! send it: one object per line, for as long as the connection stays open.

use serde::de::DeserializeOwned;

use crate::remote::chain;

/// Longest line accepted (a Kubernetes EndpointSlice of 1,000 endpoints is well under 1 MiB); a
/// longer one means a broken peer, not a bigger service.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// The lines of one streamed response, parsed one at a time.
pub(crate) struct JsonLines {
    response: reqwest::Response,
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no newline.
    scanned: usize,
}

impl JsonLines {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: Vec::new(),
            scanned: 0,
        }
    }

    /// The next non-empty line as a `T`; `Ok(None)` when the stream ends cleanly. `Err` carries a
    /// reason for operators: the connection broke, a line is not a `T`, or a line is too long.
    pub(crate) async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, String> {
        loop {
            if let Some(offset) = self.buffer[self.scanned..].iter().position(|b| *b == b'\n') {
                let end = self.scanned + offset;
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                self.scanned = 0;
                if line.trim_ascii().is_empty() {
                    continue;
                }
                return parse(&line).map(Some);
            }
            self.scanned = self.buffer.len();
            match self.response.chunk().await {
                Ok(Some(chunk)) if self.buffer.len() + chunk.len() > MAX_LINE => {
                    return Err(format!("a streamed line is longer than {MAX_LINE} bytes"));
                }
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) if self.buffer.trim_ascii().is_empty() => return Ok(None),
                Ok(None) => {
                    let last = std::mem::take(&mut self.buffer);
                    self.scanned = 0;
                    return parse(&last).map(Some);
                }
                Err(error) => return Err(format!("the stream broke: {}", chain(&error))),
            }
        }
    }
}

fn parse<T: DeserializeOwned>(line: &[u8]) -> Result<T, String> {
    serde_json::from_slice(line).map_err(|e| format!("a streamed line is not the expected JSON: {e}"))
}

//! HTTP/1.1 on the wire for the fast path: reading request heads into `http` types, writing heads,
//! and finding where a chunked body ends.
//!
//! Why a module of its own: this is the only code of the gateway that reads or writes HTTP/1.1
//! bytes itself (everything else goes through hyper), so its rules are kept together and tested
//! here: which requests the fast path takes at all (anything else is handed to hyper untouched),
//! how a head becomes `http::request::Parts` without copying its bytes, and the framing of
//! responses (RFC 9112 §6).

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode, Uri, Version};
use keel_http::{REQUEST_ID_HEADER, REQUEST_ID_HEADER_NAME, SecurityHeaders};

use crate::headers::{self, UpstreamFields};

/// What a buffer holding the start of a request says.
pub(super) enum Head {
    /// A complete head the fast path takes, `len` bytes long.
    Take(Taken),
    /// More bytes are needed.
    Partial,
    /// A head (or bytes) the fast path leaves to the general stack: another protocol or version,
    /// a body, an upgrade, `Expect`, a reserved path, a parse error.
    Decline,
}

/// Where the parts of a taken head are in its buffer.
pub(super) struct Taken {
    len: usize,
    method: Range<usize>,
    target: Range<usize>,
    fields: Vec<(Range<usize>, Range<usize>)>,
    /// The client asked to close the connection after this request.
    pub(super) close: bool,
}

impl Taken {
    /// The head's length in bytes.
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

/// What decides whether a request is the fast path's.
#[derive(Debug, Clone)]
pub(super) struct Admission {
    /// Most header fields parsed (the server's HTTP/1 limit).
    pub(super) max_headers: usize,
    /// Paths the router serves itself (`/healthz`, …): requests to them are declined.
    pub(super) reserved_paths: Vec<String>,
}

impl Admission {
    /// Whether requests to `path` are left to the router.
    pub(super) fn is_reserved(&self, path: &str) -> bool {
        self.reserved_paths.iter().any(|reserved| reserved == path)
    }
}

/// Reads the start of `buffer` as a request head.
pub(super) fn parse_request(buffer: &[u8], admission: &Admission) -> Head {
    // Most heads fit the array on the stack; only one with more fields is parsed again, with
    // room for as many as the limit allows (a heap allocation per request otherwise).
    let mut stack: [MaybeUninit<httparse::Header<'_>>; 64] = [const { MaybeUninit::uninit() }; 64];
    let mut storage: Vec<MaybeUninit<httparse::Header<'_>>> = Vec::new();
    let mut request = httparse::Request::new(&mut []);
    let mut parsed = request.parse_with_uninit_headers(buffer, &mut stack[..admission.max_headers.min(64)]);
    if matches!(parsed, Err(httparse::Error::TooManyHeaders)) && admission.max_headers > 64 {
        storage.resize_with(admission.max_headers, MaybeUninit::uninit);
        request = httparse::Request::new(&mut []);
        parsed = request.parse_with_uninit_headers(buffer, &mut storage);
    }
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Decline,
    };
    let (Some(method), Some(target), Some(1)) = (request.method, request.path, request.version) else {
        return Head::Decline;
    };
    if !target.starts_with('/') || method == "CONNECT" {
        return Head::Decline;
    }
    // Checked again on the parsed URI (a fragment is not part of its path).
    let path = target.split_once(['?', '#']).map_or(target, |(path, _)| path);
    if admission.is_reserved(path) {
        return Head::Decline;
    }
    let base = buffer.as_ptr() as usize;
    let range = |part: &[u8]| {
        let start = part.as_ptr() as usize - base;
        start..start + part.len()
    };
    let mut close = false;
    let mut fields = Vec::with_capacity(request.headers.len());
    for field in request.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("content-length") {
            if field.value.trim_ascii() != b"0" {
                return Head::Decline;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return Head::Decline;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in field.value.split(|byte| *byte == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Head::Decline;
                }
            }
        }
        fields.push((range(name.as_bytes()), range(field.value)));
    }
    Head::Take(Taken {
        len,
        method: range(method.as_bytes()),
        target: range(target.as_bytes()),
        fields,
        close,
    })
}

/// The request head `taken` describes, its bytes `head` (the buffer [`parse_request`] read, cut
/// to the head), its fields in `headers` (emptied first; a map kept from an earlier request
/// keeps its memory): values share `head`'s memory. With it, the value of its first
/// `X-Request-ID` field, found on the way (`ObservedRequest::begin_with_sent_id`). `None` when a
/// part does not make an `http` value (the caller hands the connection over, and the general
/// stack answers).
pub(super) fn request_parts(
    head: &Bytes,
    taken: &Taken,
    mut headers: HeaderMap,
) -> Option<(Parts, Option<HeaderValue>)> {
    let method = Method::from_bytes(&head[taken.method.clone()]).ok()?;
    let uri = Uri::from_maybe_shared(head.slice(taken.target.clone())).ok()?;
    headers.clear();
    headers.reserve(taken.fields.len());
    let mut sent_id = None;
    for (name, value) in &taken.fields {
        let name = HeaderName::from_bytes(&head[name.clone()]).ok()?;
        // Identical `Content-Length: 0` fields (the only kind taken) count once, as hyper keeps them.
        if name == header::CONTENT_LENGTH && headers.contains_key(header::CONTENT_LENGTH) {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(head.slice(value.clone())).ok()?;
        if sent_id.is_none() && name == REQUEST_ID_HEADER_NAME {
            sent_id = Some(value.clone());
        }
        headers.append(name, value);
    }
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.headers = headers;
    Some((parts, sent_id))
}

/// Appends the head of the request `parts` (the client's) as it goes upstream to `out`: the
/// target `uri` (origin form) and the fields `fields` says (the client's fields that pass, then
/// the gateway's), the fields the general path sends after applying `fields` to its `HeaderMap`.
pub(super) fn write_request_head(parts: &Parts, uri: &Uri, fields: &UpstreamFields, out: &mut BytesMut) {
    out.put_slice(parts.method.as_str().as_bytes());
    out.put_u8(b' ');
    let target = uri.path_and_query().map_or("/", |target| target.as_str());
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        if fields.passes(name) {
            put_field(name.as_str().as_bytes(), value.as_bytes(), out);
        }
    }
    for (name, value) in fields.set() {
        put_field(name.as_str().as_bytes(), value.as_bytes(), out);
    }
    out.put_slice(b"\r\n");
}

/// Appends a response head with `status` and `headers` to `out` (`headers` complete: framing and
/// `Connection` included).
pub(super) fn write_response_head(status: StatusCode, headers: &HeaderMap, out: &mut BytesMut) {
    write_status_line(status, out);
    write_fields(headers, out);
    out.put_slice(b"\r\n");
}

fn write_fields(headers: &HeaderMap, out: &mut BytesMut) {
    for (name, value) in headers {
        put_field(name.as_str().as_bytes(), value.as_bytes(), out);
    }
}

/// How a response's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body: a `HEAD` request's response, `204`, `304`.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`, passed on as it comes.
    Chunked,
    /// Until the connection closes.
    UntilClose,
}

/// The framing of a response with `status` and header `fields` (names any case) to a request of
/// `method`; `Err` for contradictory or invalid lengths.
pub(super) fn response_framing<'a>(
    method: &Method,
    status: StatusCode,
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
) -> Result<Framing, &'static str> {
    if *method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Empty);
    }
    let named = |wanted: &'static [u8]| {
        fields
            .clone()
            .filter(move |(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value)
    };
    if let Some(last) = named(b"transfer-encoding").last() {
        let chunked = last
            .rsplit(|byte| *byte == b',')
            .next()
            .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Ok(if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for value in named(b"content-length") {
        for item in value.split(|byte| *byte == b',') {
            let parsed = std::str::from_utf8(item.trim_ascii())
                .ok()
                .filter(|digits| !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()))
                .and_then(|digits| digits.parse::<u64>().ok())
                .ok_or("invalid Content-Length")?;
            match length {
                Some(seen) if seen != parsed => return Err("conflicting Content-Length values"),
                _ => length = Some(parsed),
            }
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// What the gateway puts on a proxied response besides the upstream's own fields: what the
/// general path adds to the response's `HeaderMap` (the stack's `ObservedRequest::finish`, the
/// rate-limit decision's headers, the framing, `Date`, `Connection: close`).
pub(super) struct Stamp<'a> {
    /// `X-Request-ID` (replaces the upstream's).
    pub(super) request_id: Option<&'a HeaderValue>,
    /// The rate-limit headers (replace the upstream's).
    pub(super) decision: Option<&'a keel_ratelimit::Decision>,
    /// Added unless the upstream set them.
    pub(super) security: &'a SecurityFields,
    /// How the body is relayed: `Content-Length` or `Transfer-Encoding` follow it.
    pub(super) framing: Framing,
    /// The request was a `HEAD`: the upstream's `Content-Length` (of the body a `GET` would get)
    /// is passed on, as hyper does; on a `204` or `304` to another method it is left out.
    pub(super) answers_head: bool,
    /// The connection closes after this response.
    pub(super) close: bool,
}

/// The security headers every response gets (`http.security_headers`), with their fields
/// serialized once: most upstreams set none of them, and the block is then written whole.
#[derive(Debug)]
pub(super) struct SecurityFields {
    headers: SecurityHeaders,
    block: Box<[u8]>,
}

impl SecurityFields {
    /// `headers`, serialized.
    pub(super) fn new(headers: SecurityHeaders) -> Self {
        let mut block = BytesMut::new();
        for (name, value) in headers.iter() {
            put_field(name.as_str().as_bytes(), value.as_bytes(), &mut block);
        }
        Self {
            headers,
            block: Box::from(&block[..]),
        }
    }

    /// The headers.
    pub(super) fn headers(&self) -> &SecurityHeaders {
        &self.headers
    }
}

/// Appends the head relayed for an upstream's response with `status` and `fields` to `out`,
/// field by field, with no `HeaderMap` in between: the upstream's end-to-end fields (not the
/// hop-by-hop ones of the `headers` module, nor those `stamp` replaces), names in lowercase as
/// hyper writes them, then `stamp`'s.
pub(super) fn write_proxied_response_head<'a>(
    (status, reason): (StatusCode, &[u8]),
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    stamp: &Stamp<'_>,
    out: &mut BytesMut,
) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    match reason {
        b"" => out.put_slice(status.canonical_reason().unwrap_or("").as_bytes()),
        reason => out.put_slice(reason),
    }
    out.put_slice(b"\r\n");
    // Empty, without allocating, unless the upstream sent `Connection` with options.
    let named_by_connection: Vec<&[u8]> = fields
        .clone()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"connection"))
        .flat_map(|(_, value)| headers::connection_options(value))
        .collect();
    let keep_length = stamp.answers_head;
    // Whether an upstream field called `name` is passed on.
    let passes = |name: &[u8]| {
        !(headers::is_hop_by_hop_name(name)
            || named_by_connection
                .iter()
                .any(|named| named.eq_ignore_ascii_case(name))
            || (!keep_length && name.eq_ignore_ascii_case(b"content-length"))
            || (stamp.request_id.is_some() && name.eq_ignore_ascii_case(REQUEST_ID_HEADER.as_bytes()))
            || stamp.decision.is_some_and(|decision| decision.replaces(name)))
    };
    let security_headers = stamp.security.headers();
    let mut has_date = false;
    // Bit i: the upstream set security header i itself.
    let mut present = 0_u64;
    for (name, value) in fields.clone() {
        if !passes(name) {
            continue;
        }
        has_date |= name.eq_ignore_ascii_case(b"date");
        for (index, (security, _)) in security_headers.iter().enumerate().take(64) {
            if name.eq_ignore_ascii_case(security.as_str().as_bytes()) {
                present |= 1 << index;
            }
        }
        let start = out.len();
        out.put_slice(name);
        out[start..].make_ascii_lowercase();
        put_field_value(value, out);
    }
    if let Some(decision) = stamp.decision {
        decision.for_each_field(|name, value| put_field(name.as_str().as_bytes(), value, out));
    }
    if present == 0 && security_headers.len() <= 64 {
        out.extend_from_slice(&stamp.security.block);
    } else {
        for (index, (name, value)) in security_headers.iter().enumerate() {
            let set_upstream = match index {
                0..64 => present & (1 << index) != 0,
                _ => fields
                    .clone()
                    .any(|(field, _)| field.eq_ignore_ascii_case(name.as_str().as_bytes()) && passes(field)),
            };
            if !set_upstream {
                put_field(name.as_str().as_bytes(), value.as_bytes(), out);
            }
        }
    }
    if let Some(id) = stamp.request_id {
        put_field(REQUEST_ID_HEADER.as_bytes(), id.as_bytes(), out);
    }
    match stamp.framing {
        Framing::Chunked => put_field(b"transfer-encoding", b"chunked", out),
        Framing::Length(length) => {
            put_field(
                b"content-length",
                itoa::Buffer::new().format(length).as_bytes(),
                out,
            );
        }
        Framing::Empty | Framing::UntilClose => {}
    }
    if !has_date {
        with_date(|date| put_field(b"date", date, out));
    }
    if stamp.close {
        put_field(b"connection", b"close", out);
    }
    out.put_slice(b"\r\n");
}

/// Calls `use_date` with the current time as an HTTP date (RFC 9110 §5.6.7), formatted at most
/// once a second per thread, as hyper keeps it: every response carries `Date`, and formatting
/// it anew costs more than the rest of the head's fields together.
pub(super) fn with_date<R>(use_date: impl FnOnce(&[u8]) -> R) -> R {
    /// The date last formatted on this thread, and the second it is of.
    struct CachedDate {
        second: u64,
        text: String,
    }
    thread_local! {
        static DATE: std::cell::RefCell<CachedDate> = const {
            std::cell::RefCell::new(CachedDate { second: u64::MAX, text: String::new() })
        };
    }
    let now = std::time::SystemTime::now();
    let second = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    DATE.with_borrow_mut(|cached| {
        if cached.second != second {
            cached.second = second;
            cached.text = httpdate::fmt_http_date(now);
        }
        use_date(cached.text.as_bytes())
    })
}

/// `HTTP/1.1 <code> <canonical reason>\r\n`.
fn write_status_line(status: StatusCode, out: &mut BytesMut) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
}

/// `<name>: <value>\r\n`.
#[inline]
fn put_field(name: &[u8], value: &[u8], out: &mut BytesMut) {
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name);
    put_field_value(value, out);
}

/// `: <value>\r\n`, after a field's name.
#[inline]
fn put_field_value(value: &[u8], out: &mut BytesMut) {
    out.reserve(value.len() + 4);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Finds where a chunked body ends as its bytes pass, without changing them.
///
/// Strict (RFC 9112 §7.1): every line ends in CRLF, a size line is hex digits, optional
/// whitespace and extensions after a `;`, with no control characters, and each line is bounded.
/// The bytes are passed on as sent, so the client must read the same message boundaries the
/// gateway found: anything a lenient reader could split differently is refused, and the response
/// is cut short.
#[derive(Debug)]
pub(super) struct ChunkedScanner {
    state: Chunk,
    /// Bytes of the current size or trailer line, and of the whole trailer section, bounded.
    line_bytes: usize,
    trailer_bytes: usize,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// In the size's hex digits.
    Size {
        value: u64,
        digits: u8,
    },
    /// After the size: whitespace before a `;` or the line end.
    SizeSpace {
        value: u64,
    },
    /// In the extensions.
    Extension {
        value: u64,
    },
    /// After the size line's CR.
    SizeLf {
        value: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// In a trailer line (`empty`: nothing on it yet).
    Trailer {
        empty: bool,
    },
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// Longest size line (with extensions) or trailer line.
const MAX_LINE_BYTES: usize = 4096;
/// Largest trailer section passed on.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

impl ChunkedScanner {
    /// A scanner at the start of a chunked body.
    pub(super) fn new() -> Self {
        Self {
            state: Chunk::Size { value: 0, digits: 0 },
            line_bytes: 0,
            trailer_bytes: 0,
        }
    }

    /// Scans `input`, the next bytes of the body: how many of them belong to it (all, unless the
    /// body ends inside `input`), or how many were valid and why the next one is not.
    pub(super) fn scan(&mut self, input: &[u8]) -> Result<usize, (usize, &'static str)> {
        let mut at = 0;
        while at < input.len() {
            match self.state {
                Chunk::Done => break,
                Chunk::Data(remaining) => {
                    let available = (input.len() - at) as u64;
                    let take = remaining.min(available);
                    at += take as usize; // take <= available, a usize
                    self.state = match remaining - take {
                        0 => Chunk::DataCr,
                        left => Chunk::Data(left),
                    };
                }
                state => {
                    self.state = self.step(state, input[at]).map_err(|why| (at, why))?;
                    at += 1;
                }
            }
        }
        Ok(at)
    }

    /// Whether the body's last byte has been scanned.
    pub(super) fn is_done(&self) -> bool {
        matches!(self.state, Chunk::Done)
    }

    fn step(&mut self, state: Chunk, byte: u8) -> Result<Chunk, &'static str> {
        let in_line = !matches!(state, Chunk::DataCr | Chunk::DataLf);
        if in_line {
            self.line_bytes += 1;
            if self.line_bytes > MAX_LINE_BYTES {
                return Err("chunk line too long");
            }
        }
        if matches!(state, Chunk::Trailer { .. } | Chunk::TrailerLf { .. }) {
            self.trailer_bytes += 1;
            if self.trailer_bytes > MAX_TRAILER_BYTES {
                return Err("trailer section too large");
            }
        }
        let control = (byte < 0x20 && byte != b'\t') || byte == 0x7f;
        let next = match state {
            Chunk::Size { value, digits } => match byte {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if digits >= 16 {
                        return Err("chunk size too large");
                    }
                    let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
                    Chunk::Size {
                        value: value << 4 | digit,
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return Err("chunk size missing"),
                b' ' | b'\t' => Chunk::SizeSpace { value },
                b';' => Chunk::Extension { value },
                b'\r' => Chunk::SizeLf { value },
                _ => return Err("invalid chunk size"),
            },
            Chunk::SizeSpace { value } => match byte {
                b' ' | b'\t' => state,
                b';' => Chunk::Extension { value },
                b'\r' => Chunk::SizeLf { value },
                _ => return Err("invalid chunk size line"),
            },
            Chunk::Extension { value } => match byte {
                b'\r' => Chunk::SizeLf { value },
                _ if control => return Err("control character in a chunk extension"),
                _ => state,
            },
            Chunk::SizeLf { value } => match byte {
                b'\n' => {
                    self.line_bytes = 0;
                    match value {
                        0 => Chunk::Trailer { empty: true },
                        size => Chunk::Data(size),
                    }
                }
                _ => return Err("CR without LF in a chunk size line"),
            },
            Chunk::DataCr => match byte {
                b'\r' => Chunk::DataLf,
                _ => return Err("chunk data longer than its size"),
            },
            Chunk::DataLf => match byte {
                b'\n' => Chunk::Size { value: 0, digits: 0 },
                _ => return Err("CR without LF after chunk data"),
            },
            Chunk::Trailer { empty } => match byte {
                b'\r' => Chunk::TrailerLf { empty },
                _ if control => return Err("control character in a trailer"),
                _ => Chunk::Trailer { empty: false },
            },
            Chunk::TrailerLf { empty } => match byte {
                b'\n' if empty => Chunk::Done,
                b'\n' => {
                    self.line_bytes = 0;
                    Chunk::Trailer { empty: true }
                }
                _ => return Err("CR without LF in a trailer"),
            },
            Chunk::Data(_) | Chunk::Done => state,
        };
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission() -> Admission {
        Admission {
            max_headers: 100,
            reserved_paths: vec!["/healthz".to_owned()],
        }
    }

    fn take(request: &[u8]) -> Option<(Bytes, Taken)> {
        match parse_request(request, &admission()) {
            Head::Take(taken) => Some((Bytes::copy_from_slice(&request[..taken.len()]), taken)),
            Head::Partial | Head::Decline => None,
        }
    }

    #[test]
    fn a_plain_request_becomes_parts_sharing_its_bytes() {
        let raw = b"GET /api/v1/users?limit=5 HTTP/1.1\r\nHost: gw\r\nX-A: 1\r\nX-A: 2\r\nConnection: keep-alive, close\r\n\r\nGET /next";
        let Some((head, taken)) = take(raw) else {
            panic!("declined")
        };
        assert_eq!(taken.len(), raw.len() - "GET /next".len());
        assert!(taken.close);
        let Some((parts, _)) = request_parts(&head, &taken, HeaderMap::new()) else {
            panic!("no parts")
        };
        assert_eq!(parts.method, Method::GET);
        assert_eq!(parts.uri, "/api/v1/users?limit=5");
        let values: Vec<_> = parts.headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        let mut out = BytesMut::new();
        let fields = UpstreamFields::of(&parts, None, HeaderValue::from_static("upstream:80"), None, None);
        write_request_head(&parts, &parts.uri, &fields, &mut out);
        assert!(
            out.starts_with(b"GET /api/v1/users?limit=5 HTTP/1.1\r\n"),
            "{out:?}"
        );
        assert!(out.ends_with(b"\r\n\r\n"));
        // The map kept for the next request holds that request's fields only.
        let Some((next_head, next_taken)) = take(b"GET /next HTTP/1.1\r\nHost: gw\r\n\r\n") else {
            panic!("declined")
        };
        let Some((next, None)) = request_parts(&next_head, &next_taken, parts.headers) else {
            panic!("no parts, or a request id")
        };
        assert_eq!(next.headers.len(), 1);
        let Some((with_ids, sent_id)) =
            take(b"GET / HTTP/1.1\r\nX-Request-Id: first\r\nx-request-id: second\r\n\r\n")
                .and_then(|(head, taken)| request_parts(&head, &taken, HeaderMap::new()))
        else {
            panic!("declined")
        };
        assert_eq!(
            sent_id.as_ref(),
            with_ids.headers.get(REQUEST_ID_HEADER_NAME),
            "the first, as a lookup finds it"
        );
        assert_eq!(sent_id.as_ref().map(HeaderValue::as_bytes), Some(&b"first"[..]));
        assert_eq!(
            next.headers.get("host").map(HeaderValue::as_bytes),
            Some(&b"gw"[..])
        );
        assert!(next.headers.get("x-a").is_none());
    }

    #[test]
    fn the_upstream_head_has_the_fields_the_general_path_sends() {
        let heads: &[&[u8]] = &[
            b"GET /a HTTP/1.1\r\nHost: gw\r\nAccept: */*\r\n\r\n",
            b"GET /a?q=1 HTTP/1.1\r\nHost: gw\r\nX-Request-ID: abc\r\nX-Forwarded-For: 203.0.113.1\r\nX-Forwarded-For: 198.51.100.2\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, X-Hop, X-Request-ID\r\nX-Hop: 1\r\nX-Request-ID: abc\r\nKeep-Alive: 5\r\nProxy-Authorization: x\r\nTE: trailers\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: gw\r\nX-User-Id: admin\r\nX_User_Id: admin\r\nX_Other: 1\r\nX-Keel-Session-Id: s\r\nX-Keel-Client-Ip: 1.2.3.4\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
            b"DELETE /a HTTP/1.1\r\nX-Request-ID: <bad>\r\nX-Request-ID: two\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n",
        ];
        let origin = crate::client_address::Origin {
            peer: std::net::IpAddr::from([192, 0, 2, 7]),
            client: std::net::IpAddr::from([192, 0, 2, 7]),
            via_trusted_proxy: false,
        };
        for raw in heads {
            let Some((head, taken)) = take(raw) else {
                panic!("declined")
            };
            let Some((mut parts, _)) = request_parts(&head, &taken, HeaderMap::new()) else {
                panic!("no parts")
            };
            let fields = UpstreamFields::of(
                &parts,
                None,
                HeaderValue::from_static("upstream:80"),
                Some(origin),
                None,
            );
            let mut out = BytesMut::new();
            write_request_head(&parts, &parts.uri, &fields, &mut out);
            let mut storage = [httparse::EMPTY_HEADER; 32];
            let mut written = httparse::Request::new(&mut storage);
            assert!(matches!(written.parse(&out), Ok(httparse::Status::Complete(len)) if len == out.len()));
            let mut fast: Vec<(String, Vec<u8>)> = written
                .headers
                .iter()
                .map(|field| (field.name.to_ascii_lowercase(), field.value.to_vec()))
                .collect();
            fields.apply(&mut parts.headers);
            let mut general: Vec<(String, Vec<u8>)> = parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                .collect();
            fast.sort();
            general.sort();
            assert_eq!(fast, general, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn what_the_fast_path_does_not_serve_is_declined_untouched() {
        let declined: &[&[u8]] = &[
            b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
            b"GET /healthz#top HTTP/1.1\r\n\r\n",
            b"GET /x HTTP/1.0\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\n\r\n",
            b"GET http://other/x HTTP/1.1\r\n\r\n",
            b"CONNECT gw:443 HTTP/1.1\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET /x HTTP/1.1\r\nBad Header: 1\r\n\r\n",
        ];
        for raw in declined {
            assert!(
                matches!(parse_request(raw, &admission()), Head::Decline),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(matches!(
            parse_request(b"GET /x HTTP/1.1\r\nHo", &admission()),
            Head::Partial
        ));
        // An empty body declared is no body.
        assert!(take(b"DELETE /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n").is_some());
        // Duplicate empty lengths become one.
        let Some((head, taken)) = take(b"GET /x HTTP/1.1\r\nContent-Length: 0\r\ncontent-length: 0\r\n\r\n")
        else {
            panic!("declined")
        };
        let (parts, _) = request_parts(&head, &taken, HeaderMap::new()).unwrap_or_else(|| panic!("no parts"));
        assert_eq!(parts.headers.get_all(header::CONTENT_LENGTH).iter().count(), 1);
    }

    #[test]
    fn more_fields_than_the_limit_are_declined() {
        let mut raw = b"GET /x HTTP/1.1\r\n".to_vec();
        for index in 0..5 {
            raw.extend_from_slice(format!("x-{index}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let tight = Admission {
            max_headers: 4,
            ..admission()
        };
        assert!(matches!(parse_request(&raw, &tight), Head::Decline));
        let wide = Admission {
            max_headers: 200,
            ..admission()
        };
        assert!(matches!(parse_request(&raw, &wide), Head::Take(_)));
    }

    #[test]
    fn heads_with_more_fields_than_the_stack_holds_are_parsed_up_to_the_limit() {
        let head_of = |fields: usize| {
            let mut raw = b"GET /x HTTP/1.1\r\n".to_vec();
            for index in 0..fields {
                raw.extend_from_slice(format!("x-{index}: v{index}\r\n").as_bytes());
            }
            raw.extend_from_slice(b"\r\n");
            raw
        };
        let limit = Admission {
            max_headers: 150,
            ..admission()
        };
        for fields in [63, 64, 65, 150] {
            let Head::Take(taken) = parse_request(&head_of(fields), &limit) else {
                panic!("{fields} fields declined")
            };
            assert_eq!(taken.fields.len(), fields);
            let head = Bytes::from(head_of(fields));
            let (parts, _) =
                request_parts(&head, &taken, HeaderMap::new()).unwrap_or_else(|| panic!("no parts"));
            let last = format!("x-{}", fields - 1);
            assert_eq!(parts.headers[last.as_str()], format!("v{}", fields - 1).as_str());
        }
        assert!(matches!(parse_request(&head_of(151), &limit), Head::Decline));
        // A head of more fields than the stack holds that has not all arrived yet waits for the
        // rest, as one within it does.
        let partial = head_of(100);
        assert!(matches!(
            parse_request(&partial[..partial.len() - 2], &limit),
            Head::Partial
        ));
        // Under the stack's size the limit still holds.
        let small = Admission {
            max_headers: 10,
            ..admission()
        };
        assert!(matches!(parse_request(&head_of(10), &small), Head::Take(_)));
        assert!(matches!(parse_request(&head_of(11), &small), Head::Decline));
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let headers = |fields: &'static [(&'static str, &'static str)]| {
            fields
                .iter()
                .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
        };
        let ok = StatusCode::OK;
        let get = Method::GET;
        assert_eq!(
            response_framing(&Method::HEAD, ok, headers(&[("content-length", "5")])),
            Ok(Framing::Empty)
        );
        assert_eq!(
            response_framing(&get, StatusCode::NO_CONTENT, headers(&[])),
            Ok(Framing::Empty)
        );
        assert_eq!(
            response_framing(&get, ok, headers(&[("content-length", "5")])),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            response_framing(
                &get,
                ok,
                headers(&[("content-length", "5"), ("content-length", "5")])
            ),
            Ok(Framing::Length(5))
        );
        assert!(response_framing(&get, ok, headers(&[("content-length", "5, 6")])).is_err());
        assert!(response_framing(&get, ok, headers(&[("content-length", "-1")])).is_err());
        assert!(response_framing(&get, ok, headers(&[("content-length", "+5")])).is_err());
        assert_eq!(
            response_framing(
                &get,
                ok,
                headers(&[("transfer-encoding", "gzip, chunked"), ("content-length", "5")])
            ),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            response_framing(&get, ok, headers(&[("transfer-encoding", "gzip")])),
            Ok(Framing::UntilClose)
        );
        assert_eq!(response_framing(&get, ok, headers(&[])), Ok(Framing::UntilClose));
    }

    /// The head [`write_proxied_response_head`] writes for `fields` with `stamp`, as text.
    fn proxied_head(status: StatusCode, fields: &[(&str, &str)], stamp: &Stamp<'_>) -> String {
        let mut out = BytesMut::new();
        let fields = fields
            .iter()
            .map(|(name, value)| (name.as_bytes(), value.as_bytes()));
        write_proxied_response_head((status, b""), fields, stamp, &mut out);
        String::from_utf8(out.to_vec()).unwrap_or_default()
    }

    #[test]
    fn a_proxied_head_keeps_the_end_to_end_fields_and_adds_what_the_general_path_adds() {
        let security = [
            (
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            ),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
        ];
        let security = SecurityFields::new(SecurityHeaders::from(security));
        let request_id = HeaderValue::from_static("req-1");
        let decision = keel_ratelimit::Decision {
            allowed: true,
            limit: 10,
            remaining: 9,
            reset_after: std::time::Duration::from_secs(6),
            retry_after: None,
        };
        let stamp = Stamp {
            request_id: Some(&request_id),
            decision: Some(&decision),
            security: &security,
            framing: Framing::Length(2),
            answers_head: false,
            close: true,
        };
        let upstream = [
            ("Content-Type", "application/json"),
            ("Connection", "keep-alive, X-Hop"),
            ("x-hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authenticate", "Basic"),
            ("Content-Length", "2"),
            ("X-Request-ID", "upstream-id"),
            ("X-RateLimit-Remaining", "1000"),
            ("Retry-After", "7"),
            ("X-Frame-Options", "SAMEORIGIN"),
            ("Date", "Thu, 01 Jan 2026 00:00:00 GMT"),
            ("Set-Cookie", "a=1"),
            ("set-cookie", "b=2"),
        ];
        let head = proxied_head(StatusCode::OK, &upstream, &stamp);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\n\
             content-type: application/json\r\n\
             retry-after: 7\r\n\
             x-frame-options: SAMEORIGIN\r\n\
             date: Thu, 01 Jan 2026 00:00:00 GMT\r\n\
             set-cookie: a=1\r\n\
             set-cookie: b=2\r\n\
             x-ratelimit-limit: 10\r\n\
             x-ratelimit-remaining: 9\r\n\
             x-ratelimit-reset: 6\r\n\
             referrer-policy: no-referrer\r\n\
             x-request-id: req-1\r\n\
             content-length: 2\r\n\
             connection: close\r\n\r\n"
        );
        // None of them set upstream: all of them, in their order.
        let head = proxied_head(StatusCode::OK, &[("Date", "x")], &stamp);
        assert!(
            head.contains("\r\nx-frame-options: DENY\r\nreferrer-policy: no-referrer\r\n"),
            "{head}"
        );
    }

    #[test]
    fn a_proxied_head_keeps_the_upstreams_reason_phrase() {
        let stamp = Stamp {
            request_id: None,
            decision: None,
            security: &SecurityFields::new(SecurityHeaders::from([])),
            framing: Framing::Length(0),
            answers_head: false,
            close: false,
        };
        let mut out = BytesMut::new();
        let fields = [(&b"date"[..], &b"x"[..])].into_iter();
        write_proxied_response_head((StatusCode::OK, b"Fine Thanks"), fields, &stamp, &mut out);
        assert!(out.starts_with(b"HTTP/1.1 200 Fine Thanks\r\n"));
    }

    #[test]
    fn a_proxied_heads_framing_fields_follow_how_its_body_is_relayed() {
        let security = SecurityFields::new(SecurityHeaders::from([]));
        let stamp = |framing| Stamp {
            request_id: None,
            decision: None,
            security: &security,
            framing,
            answers_head: false,
            close: false,
        };
        let upstream = [
            ("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
            ("transfer-encoding", "chunked"),
            ("content-length", "5"),
            ("x-request-id", "kept without an id of the gateway's"),
        ];
        let chunked = proxied_head(StatusCode::OK, &upstream, &stamp(Framing::Chunked));
        assert!(
            chunked.ends_with(
                "x-request-id: kept without an id of the gateway's\r\ntransfer-encoding: chunked\r\n\r\n"
            ),
            "{chunked}"
        );
        assert!(!chunked.contains("content-length"), "{chunked}");
        let until_close = proxied_head(StatusCode::OK, &upstream, &stamp(Framing::UntilClose));
        assert!(!until_close.contains("content-length") && !until_close.contains("transfer-encoding"));
        // A 304 to a GET: no length (hyper leaves it out too); to a HEAD the length describes
        // the body a GET would get, and is passed on.
        let not_modified = proxied_head(StatusCode::NOT_MODIFIED, &upstream, &stamp(Framing::Empty));
        assert!(
            not_modified.starts_with("HTTP/1.1 304 Not Modified\r\n"),
            "{not_modified}"
        );
        assert!(!not_modified.contains("content-length"), "{not_modified}");
        assert!(!not_modified.contains("transfer-encoding"), "{not_modified}");
        let head = Stamp {
            answers_head: true,
            ..stamp(Framing::Empty)
        };
        let head = proxied_head(StatusCode::OK, &upstream, &head);
        assert!(head.contains("content-length: 5\r\n"), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
        // Without a Date of the upstream's, one is added (as hyper does).
        let dated = proxied_head(StatusCode::OK, &[], &stamp(Framing::Length(0)));
        assert!(
            dated.contains("\r\ndate: ") && dated.contains(" GMT\r\n"),
            "{dated}"
        );
    }

    #[test]
    fn the_cached_date_is_the_current_http_date() {
        let before = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let first = with_date(|date| String::from_utf8(date.to_vec()).unwrap());
        let second = with_date(|date| String::from_utf8(date.to_vec()).unwrap());
        let after = std::time::SystemTime::now();
        for date in [&first, &second] {
            let parsed = httpdate::parse_http_date(date).unwrap();
            assert!(before <= parsed && parsed <= after, "{date} is not now");
            assert_eq!(date.len(), "Thu, 26 Nov 2026 21:55:09 GMT".len());
        }
    }

    #[test]
    fn the_chunked_scanner_finds_the_end_across_reads() {
        let body = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for split in 1..body.len() {
            let mut scanner = ChunkedScanner::new();
            let first = scanner.scan(&body[..split]).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(first, split.min(body.len() - 4));
            let second = scanner.scan(&body[split..]).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(first + second, body.len() - 4, "split at {split}");
            assert!(scanner.is_done());
        }
        let mut bad = ChunkedScanner::new();
        assert!(bad.scan(b"zz\r\n").is_err());
        let mut long = ChunkedScanner::new();
        assert_eq!(
            long.scan(b"2\r\nabc\r\n"),
            Err((5, "chunk data longer than its size"))
        );
    }
}

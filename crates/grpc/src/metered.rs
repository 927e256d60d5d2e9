//! Recording a call's outcome when its gRPC status is known.
//!
//! The status of a successful call arrives in the trailers, after the body; a call that fails
//! before any message is "trailers-only", with the status in the headers. [`MeteredBody`] wraps a
//! response body and records once, when it sees the status, or as `Cancelled` if the body is dropped
//! before the status arrived (the peer went away).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// The `service` and `method` labels of a served call to something the server does not have.
const UNKNOWN: &str = "unknown";

/// Which side of the call is recording.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    Server,
    Client,
}

/// One call's metric labels and start time; records at most once.
#[derive(Debug)]
pub(crate) struct CallRecorder {
    side: Side,
    service: String,
    method: String,
    started: Instant,
    done: bool,
}

impl CallRecorder {
    pub(crate) fn new(side: Side, service: String, method: String) -> Self {
        Self {
            side,
            service,
            method,
            started: Instant::now(),
            done: false,
        }
    }

    /// Records the call with the status found in `headers` (headers or trailers), if any.
    /// Returns whether it recorded.
    pub(crate) fn record_from(&mut self, headers: &HeaderMap) -> bool {
        match status_of(headers) {
            Some(code) => {
                self.record(code);
                true
            }
            None => false,
        }
    }

    pub(crate) fn record(&mut self, code: tonic::Code) {
        if self.done {
            return;
        }
        self.done = true;
        let (count, duration) = match self.side {
            Side::Server => ("keel_grpc_requests_total", "keel_grpc_request_duration_seconds"),
            Side::Client => (
                "keel_grpc_client_requests_total",
                "keel_grpc_client_request_duration_seconds",
            ),
        };
        // A served call the server does not implement names a service and method its caller
        // made up: labelled as such, they would add a series per made-up name.
        let (service, method) = match (self.side, code) {
            (Side::Server, tonic::Code::Unimplemented) => (UNKNOWN.to_owned(), UNKNOWN.to_owned()),
            _ => (self.service.clone(), self.method.clone()),
        };
        let labels = [
            ("service", service),
            ("method", method),
            ("code", format!("{code:?}")),
        ];
        metrics::counter!(count, &labels).increment(1);
        metrics::histogram!(duration, &labels).record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for CallRecorder {
    fn drop(&mut self) {
        self.record(tonic::Code::Cancelled);
    }
}

fn status_of(headers: &HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(tonic::Code::from_i32(value))
}

pin_project_lite::pin_project! {
    /// A response body that records its call's status when the trailers pass through.
    pub(crate) struct MeteredBody<B> {
        #[pin]
        inner: B,
        recorder: Option<CallRecorder>,
    }
}

impl<B> MeteredBody<B> {
    pub(crate) fn new(inner: B, recorder: CallRecorder) -> Self {
        Self {
            inner,
            recorder: Some(recorder),
        }
    }
}

impl<B: Body<Data = Bytes>> Body for MeteredBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Some(recorder) = this.recorder.as_mut() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        recorder.record_from(trailers);
                    }
                }
                Poll::Ready(Some(Err(_))) => recorder.record(tonic::Code::Internal),
                // The stream ended without trailers: the status never came.
                Poll::Ready(None) => recorder.record(tonic::Code::Unknown),
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

//! `ServiceError` ↔ `tonic::Status`: the one place the gRPC status vocabulary is translated.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{FieldViolation, ServiceError};

/// The status a server answers for `error`.
///
/// Field violations travel as a `google.rpc.BadRequest` detail (field → `field`, code →
/// `reason`, message → `description`), a known retry delay as a `google.rpc.RetryInfo` detail, so
/// [`from_status`] gives back an equal error. `Internal` keeps its message for the peer's logs; the
/// REST edge never shows it to end users.
pub fn to_status(error: ServiceError) -> Status {
    // No wildcard arm: a new variant must choose its code here.
    match error {
        ServiceError::InvalidArgument { message, violations } => {
            let violations: Vec<_> = violations.into_iter().map(to_field_violation).collect();
            if violations.is_empty() {
                return Status::invalid_argument(message);
            }
            let details = ErrorDetails::with_bad_request(violations);
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        ServiceError::NotFound(detail) => Status::not_found(detail),
        ServiceError::AlreadyExists(detail) => Status::already_exists(detail),
        ServiceError::FailedPrecondition(detail) => Status::failed_precondition(detail),
        ServiceError::Unauthenticated(detail) => Status::unauthenticated(detail),
        ServiceError::PermissionDenied(detail) => Status::permission_denied(detail),
        ServiceError::RateLimited {
            message,
            retry_after_secs,
        } => match retry_after_secs {
            Some(seconds) => {
                let details = ErrorDetails::with_retry_info(Some(Duration::from_secs(seconds)));
                Status::with_error_details(Code::ResourceExhausted, message, details)
            }
            None => Status::resource_exhausted(message),
        },
        ServiceError::Unavailable(detail) => Status::unavailable(detail),
        ServiceError::DeadlineExceeded(detail) => Status::deadline_exceeded(detail),
        ServiceError::Internal(detail) => Status::internal(detail),
    }
}

/// The error a caller sees for a status a server answered.
///
/// Codes without a variant of their own are folded into the nearest one: `OUT_OF_RANGE` is an
/// invalid argument, `ABORTED` a failed precondition (the state changed under the call),
/// `CANCELLED` unavailable (no answer came), and `OK` (not an error), `UNKNOWN`, `UNIMPLEMENTED` and
/// `DATA_LOSS` are internal errors naming the code. Undecodable details are ignored, never fatal.
pub fn from_status(status: &Status) -> ServiceError {
    let message = status.message().to_owned();
    // No wildcard arm: every gRPC code is placed explicitly.
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => ServiceError::InvalidArgument {
            message,
            violations: field_violations(status),
        },
        Code::NotFound => ServiceError::NotFound(message),
        Code::AlreadyExists => ServiceError::AlreadyExists(message),
        Code::FailedPrecondition | Code::Aborted => ServiceError::FailedPrecondition(message),
        Code::Unauthenticated => ServiceError::Unauthenticated(message),
        Code::PermissionDenied => ServiceError::PermissionDenied(message),
        Code::ResourceExhausted => ServiceError::RateLimited {
            message,
            retry_after_secs: retry_after_secs(status),
        },
        Code::Unavailable | Code::Cancelled => ServiceError::Unavailable(message),
        Code::DeadlineExceeded => ServiceError::DeadlineExceeded(message),
        Code::Internal => ServiceError::Internal(message),
        Code::Ok | Code::Unknown | Code::Unimplemented | Code::DataLoss => {
            ServiceError::Internal(format!("{:?}: {message}", status.code()))
        }
    }
}

fn to_field_violation(violation: FieldViolation) -> tonic_types::FieldViolation {
    tonic_types::FieldViolation {
        field: violation.field,
        description: violation.message,
        reason: violation.code,
        localized_message: None,
    }
}

fn field_violations(status: &Status) -> Vec<FieldViolation> {
    let details = status.get_error_details();
    let Some(bad_request) = details.bad_request() else {
        return Vec::new();
    };
    bad_request
        .field_violations
        .iter()
        .map(|v| FieldViolation {
            field: v.field.clone(),
            code: v.reason.clone(),
            message: v.description.clone(),
        })
        .collect()
}

/// Whole seconds to wait, rounded up so a client never retries early.
fn retry_after_secs(status: &Status) -> Option<u64> {
    let details = status.get_error_details();
    let delay = details.retry_info()?.retry_delay?;
    Some(delay.as_secs() + u64::from(delay.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(error: ServiceError) -> ServiceError {
        from_status(&to_status(error))
    }

    #[test]
    fn every_variant_survives_the_wire_unchanged() {
        let errors = [
            ServiceError::InvalidArgument {
                message: "invalid e-mail".into(),
                violations: Vec::new(),
            },
            ServiceError::NotFound("user".into()),
            ServiceError::AlreadyExists("e-mail taken".into()),
            ServiceError::FailedPrecondition("system role".into()),
            ServiceError::Unauthenticated("bad token".into()),
            ServiceError::PermissionDenied("no".into()),
            ServiceError::RateLimited {
                message: "slow down".into(),
                retry_after_secs: Some(30),
            },
            ServiceError::RateLimited {
                message: "slow down".into(),
                retry_after_secs: None,
            },
            ServiceError::Unavailable("identity: down".into()),
            ServiceError::DeadlineExceeded("5000 ms".into()),
        ];
        for error in errors {
            assert_eq!(round_trip(error.clone()), error);
        }
    }

    #[test]
    fn field_violations_keep_field_code_and_message() {
        let error = ServiceError::InvalidArgument {
            message: "the request was rejected".into(),
            violations: vec![
                FieldViolation {
                    field: "email".into(),
                    code: "invalid_email".into(),
                    message: "not an e-mail address".into(),
                },
                FieldViolation {
                    field: "permissions[2]".into(),
                    code: "unknown_permission".into(),
                    message: "no such permission".into(),
                },
            ],
        };
        let status = to_status(error.clone());
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(from_status(&status), error);
    }

    #[test]
    fn internal_errors_keep_their_text_for_logs() {
        let back = round_trip(ServiceError::Internal("pool exhausted".into()));
        assert_eq!(back, ServiceError::Internal("pool exhausted".into()));
    }

    #[test]
    fn codes_without_a_variant_fold_into_the_nearest_one() {
        let cases = [
            (Status::out_of_range("page"), "invalid request: page"),
            (Status::aborted("raced"), "precondition failed: raced"),
            (Status::cancelled("gone"), "unavailable: gone"),
            (
                Status::unimplemented("nope"),
                "internal error: Unimplemented: nope",
            ),
            (Status::data_loss("lost"), "internal error: DataLoss: lost"),
            (Status::unknown("odd"), "internal error: Unknown: odd"),
            (Status::ok("fine"), "internal error: Ok: fine"),
        ];
        for (status, expected) in cases {
            assert_eq!(from_status(&status).to_string(), expected);
        }
    }

    #[test]
    fn a_sub_second_retry_delay_rounds_up() {
        let details = ErrorDetails::with_retry_info(Some(Duration::from_millis(1500)));
        let status = Status::with_error_details(Code::ResourceExhausted, "wait", details);
        assert_eq!(
            from_status(&status),
            ServiceError::RateLimited {
                message: "wait".into(),
                retry_after_secs: Some(2)
            }
        );
    }
}

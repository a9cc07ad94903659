//! The API's one error type: a status, a stable machine-readable code and a message for
//! people. The cause of a 500 is logged, never sent to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 400 for a request that cannot be understood as sent; `code` says what kind.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 422 for a well-formed request with a value that is not acceptable: names the field.
    pub fn invalid_value(field: &str, message: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
            format!("field `{field}`: {message}"),
        )
    }

    /// A failure inside Rivetr: the client gets a generic message, the log gets the cause.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error while serving a request");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has details",
        )
    }

    /// 503 while the database is locked, 507 while its disk is full: the state of the
    /// server, not of the request, so the same request can succeed later.
    pub fn database_fault(fault: crate::db::Fault) -> Self {
        match fault {
            crate::db::Fault::Locked => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_locked",
                format!(
                    "the database is locked (another process holds it) and did not come free \
                     within {} ms; the request may not have been carried out: try again",
                    crate::db::REQUEST_WAIT.as_millis()
                ),
            ),
            crate::db::Fault::Full => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "disk_full",
                "the file system holding Rivetr's database is full; the request was not \
                 carried out: free space there and try again",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.code == "database_locked";
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut res = (self.status, Json(body)).into_response();
        if retry_after {
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        res
    }
}

/// The shape of every error response, for the OpenAPI document.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `not_found`, `unauthorized`, `invalid_json`, ...
    pub code: String,
    /// For people: says what was wrong and where (the field, the header).
    pub message: String,
}

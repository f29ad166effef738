//! The HTTP edge for internal failures: log the detail with the request's context, answer with a
//! safe body. Feature modules (OAuth, MCP) have their own error enums with protocol-specific shapes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({
                "error": "server_error",
                "error_description": "The server could not complete the request. Try again later."
            })),
        )
            .into_response()
    }
}

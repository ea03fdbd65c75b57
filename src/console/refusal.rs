//! Why the console did not serve a request, as the handlers return it (`?`) and as the
//! browser gets it. Causes of failures are logged where they happen, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use tracing::warn;

/// A request the console refuses or could not serve.
#[derive(Debug)]
pub enum Refusal {
    /// Not signed in, on a page: to the login page, then back to `next`.
    SignIn {
        /// The path (and query) to return to.
        next: String,
    },
    /// Not signed in, on anything but a page (a POST, a live fragment): 401.
    Unauthenticated,
    /// Signed in, but their role does not allow it, or (proxy mode) the request did not come
    /// through the proxy: 403.
    Forbidden(String),
    /// No such thing, or one outside the user's orgs (the same answer on purpose): 404.
    NotFound(&'static str),
    /// A form or filter that cannot be read: 400.
    BadRequest(String),
    /// The database gave no connection: 503.
    Unavailable,
    /// Anything else: 500 (logged by [`internal`]).
    Failed,
}

/// Logs an unexpected failure and turns it into a 500.
pub fn internal(e: impl std::fmt::Display) -> Refusal {
    warn!(error = %e, "a console request failed");
    Refusal::Failed
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::SignIn { next } => {
                let next = percent_encoding::utf8_percent_encode(
                    &next,
                    percent_encoding::NON_ALPHANUMERIC,
                );
                Redirect::to(&format!("/login?next={next}")).into_response()
            }
            Refusal::Unauthenticated => (StatusCode::UNAUTHORIZED, "sign in first").into_response(),
            Refusal::Forbidden(why) => (StatusCode::FORBIDDEN, why).into_response(),
            Refusal::NotFound(what) => {
                (StatusCode::NOT_FOUND, format!("no such {what}")).into_response()
            }
            Refusal::BadRequest(why) => (StatusCode::BAD_REQUEST, why).into_response(),
            Refusal::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable",
            )
                .into_response(),
            Refusal::Failed => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request failed; the console's log says why",
            )
                .into_response(),
        }
    }
}

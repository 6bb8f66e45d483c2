//! `GET /readyz` on the join API, open like `/livez`: 200 while the
//! controller is ready ([`render::readyz`] says when), 503 otherwise.
//! `?verbose` gives every check's state and reason;
//! `Accept: application/json` the same as JSON (what `plinth status` asks).

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::board::View;
use super::render::{self, Report};

pub fn routes(view: View) -> Router {
    Router::new().route("/readyz", get(readyz)).with_state(view)
}

async fn readyz(
    State(view): State<View>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let table = view.snapshot();
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    let verbose = query.as_deref().is_some_and(|query| {
        query.split('&').any(|pair| {
            pair == "verbose" || (pair.starts_with("verbose=") && pair != "verbose=false")
        })
    });
    let (code, body) = render::readyz(&table, verbose);
    let status = StatusCode::from_u16(code).expect("200 and 503 are status codes");
    if wants_json {
        return (status, axum::Json(Report::of(&table))).into_response();
    }
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

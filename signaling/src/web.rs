//! The browser client, embedded into the binary so the server is one file to deploy.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "../web-client/"]
#[exclude = "test/*"]
#[allow_missing = true]
struct Assets;

/// Serve a file of the client; pages (`/`, `/teach/…`, `/join/…`, `/vote/…`) all load the one `index.html`.
pub fn asset(path: &str) -> Response {
    let path = path.trim_start_matches('/');
    let is_page = path.is_empty()
        || path.starts_with("teach/")
        || path.starts_with("join/")
        || path.starts_with("vote/");
    let path = if is_page { "index.html" } else { path };
    match Assets::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            let mut response = file.data.into_owned().into_response();
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(mime.as_ref()) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            // Pages must see a new deployment at once; assets are small, so no long caching either.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

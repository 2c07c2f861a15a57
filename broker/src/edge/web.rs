//! The web app, served from the files embedded at build time (`build.rs`): `/` is the app,
//! `/assets/*` its content-hashed files. Every response carries a strict
//! Content-Security-Policy (no inline script or style, connections only back to this origin),
//! hashed assets are cached for good and the page itself is revalidated, and clients that take
//! gzip get the copy compressed at build time.

use actix_web::{http::header, HttpRequest, HttpResponse};

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// What the page may do: its own scripts (and libsodium's WebAssembly), its own styles,
/// connections to this origin (`/ws`), nothing else; no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

fn secure(mut response: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    response
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    response
}

/// Whether the broker was built with the web app.
pub fn built() -> bool {
    !ASSETS.is_empty()
}

/// `GET /` and `GET /assets/…`.
pub async fn serve(req: HttpRequest) -> HttpResponse {
    let path = match req.path() {
        "/" => "/index.html",
        other => other,
    };
    let Some((_, content_type, body, gzipped)) = ASSETS.iter().find(|(p, ..)| *p == path) else {
        if !built() && path == "/index.html" {
            return secure(HttpResponse::ServiceUnavailable())
                .content_type("text/plain; charset=utf-8")
                .body("This broker was built without its web app: run scripts/web.sh and build the broker again.\n");
        }
        return secure(HttpResponse::NotFound()).content_type("text/plain; charset=utf-8").body("not found\n");
    };
    let cache = if path.starts_with("/assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let gzip = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut response = secure(HttpResponse::Ok());
    response
        .content_type(*content_type)
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::VARY, "Accept-Encoding"));
    if gzip {
        response.insert_header((header::CONTENT_ENCODING, "gzip")).body(*gzipped)
    } else {
        response.body(*body)
    }
}

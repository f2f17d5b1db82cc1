//! The web page: one HTML file with its script and styles inside, shipped in
//! the crate (no build step), served at the scope's root. It reads the REST
//! API every two seconds and draws the job graph (coloured by backpressure,
//! shaded by busy time, with throughput per vertex), the checkpoint history
//! and timeline, the failures and the supervision state, with savepoint /
//! stop / cancel buttons when writes are allowed.

use actix_web::{web, HttpRequest, HttpResponse};

use super::Jobs;

const PAGE: &str = include_str!("page.html");

/// The page, with its base set to the scope's path so that its requests
/// stay relative to wherever the host mounted the scope.
pub(crate) async fn page(request: HttpRequest, jobs: web::Data<Jobs>) -> HttpResponse {
    let path = request.path();
    let base = format!("{}/", path.trim_end_matches('/'));
    let html = PAGE.replace("{{BASE}}", &html_attribute(&base)).replace(
        "{{WRITES}}",
        if jobs.writes_allowed() {
            "true"
        } else {
            "false"
        },
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html)
}

fn html_attribute(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

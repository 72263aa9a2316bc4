//! The web UI, served at `/` of the API listener from files embedded in the binary (`ui/assets/`;
//! plain ES modules and CSS, no build step and no Node at run time).
//!
//! Guarantees:
//! - Every asset is served under a name with its content hash (`/assets/app.3f9c0a1b2c4d.js`),
//!   cached by browsers for a year as `immutable`; the page (`index.html`, served for every UI
//!   route so links such as `/traces/{id}` can be shared and reloaded) is `no-cache` and names the
//!   current hashes, for the stylesheet and the entry module directly and for the modules they
//!   import through an import map. A new binary is therefore never mixed with an old cached file.
//! - The page carries a Content-Security-Policy that allows only this origin's scripts, styles
//!   and connections (the import map is allowed by its own hash), no framing, no referrer.
//! - The assets hold no data and need no key: the UI asks for one when the API does and sends it
//!   with each request from the page's memory (`sessionStorage`), never in a URL.
//! - `/api/`, `/healthz`, `/readyz` and `/metrics` are untouched: the UI's routes are fixed
//!   paths, and an unknown `/assets/` file is a 404.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// The embedded files: name under `ui/assets/`, content, media type.
const FILES: &[(&str, &[u8], &str)] = &[
    ("app.css", include_bytes!("../../ui/assets/app.css"), CSS),
    ("main.js", include_bytes!("../../ui/assets/main.js"), JS),
    ("api.js", include_bytes!("../../ui/assets/api.js"), JS),
    ("format.js", include_bytes!("../../ui/assets/format.js"), JS),
    ("traces.js", include_bytes!("../../ui/assets/traces.js"), JS),
    ("trace.js", include_bytes!("../../ui/assets/trace.js"), JS),
    ("live.js", include_bytes!("../../ui/assets/live.js"), JS),
    ("usage.js", include_bytes!("../../ui/assets/usage.js"), JS),
    ("lists.js", include_bytes!("../../ui/assets/lists.js"), JS),
    ("icon.svg", include_bytes!("../../ui/assets/icon.svg"), SVG),
];
const PAGE: &str = include_str!("../../ui/assets/index.html");
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The UI's routes; each answers the page, which reads its path.
const PAGES: &[&str] = &[
    "/",
    "/traces",
    "/traces/{trace_id}",
    "/live",
    "/usage",
    "/anomalies",
    "/alerts",
];

struct Asset {
    body: &'static [u8],
    media_type: &'static str,
}

struct Site {
    /// By hashed name.
    assets: HashMap<String, Asset>,
    page: String,
    /// The page's Content-Security-Policy.
    policy: HeaderValue,
}

/// `name.ext` as `name.<12 hex of its SHA-256>.ext`.
fn hashed(name: &str, body: &[u8]) -> String {
    let digest = hex::encode(&Sha256::digest(body)[..6]);
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{digest}.{ext}"),
        None => format!("{name}.{digest}"),
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

static SITE: LazyLock<Site> = LazyLock::new(|| {
    let mut assets = HashMap::new();
    let mut names = HashMap::new();
    for (name, body, media_type) in FILES {
        let hashed = hashed(name, body);
        names.insert(*name, format!("/assets/{hashed}"));
        assets.insert(hashed, Asset { body, media_type });
    }
    let imports: serde_json::Map<String, serde_json::Value> = FILES
        .iter()
        .filter(|(_, _, media_type)| *media_type == JS)
        .map(|(name, _, _)| (format!("/assets/{name}"), names[name].clone().into()))
        .collect();
    let import_map = serde_json::json!({ "imports": imports }).to_string();
    let page = PAGE
        .replace("{{importmap}}", &import_map)
        .replace("{{app.css}}", &names["app.css"])
        .replace("{{main.js}}", &names["main.js"])
        .replace("{{icon.svg}}", &names["icon.svg"]);
    // The policy admits the inline import map by the hash of its text as the page has it.
    let script_hash = base64(&Sha256::digest(inline_script(&page).as_bytes()));
    let policy = HeaderValue::from_str(&format!(
        "default-src 'none'; script-src 'self' 'sha256-{script_hash}'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    ))
    .expect("the policy is ASCII");
    Site {
        assets,
        page,
        policy,
    }
});

/// The text of the page's inline script (the import map).
fn inline_script(page: &str) -> &str {
    const OPEN: &str = "<script type=\"importmap\">";
    let start = page.find(OPEN).map_or(0, |at| at + OPEN.len());
    let end = page[start..]
        .find("</script>")
        .map_or(start, |at| start + at);
    &page[start..end]
}

/// The UI's routes, to merge into the API's router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route("/assets/{file}", get(asset));
    for path in PAGES {
        router = router.route(path, get(page));
    }
    router
}

async fn page() -> Response {
    let site: &'static Site = &SITE;
    let mut response = site.page.as_str().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, site.policy.clone());
    secure(headers);
    response
}

async fn asset(Path(file): Path<String>) -> Response {
    let Some(asset) = SITE.assets.get(&file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.media_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    secure(headers);
    response
}

fn secure(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_by_its_hash() {
        let site = &*SITE;
        for (name, body, _) in FILES {
            let hashed = hashed(name, body);
            assert!(site.assets.contains_key(&hashed), "{hashed}");
            if *name != "app.css" && *name != "icon.svg" {
                assert!(
                    site.page
                        .contains(&format!("\"/assets/{name}\":\"/assets/{hashed}\"")),
                    "{name} is in the import map"
                );
            }
        }
        assert!(!site.page.contains("{{"), "every placeholder is filled");
    }

    #[test]
    fn the_policy_allows_exactly_the_import_map() {
        let site = &*SITE;
        let script = inline_script(&site.page);
        assert!(script.trim().starts_with("{\"imports\":{"), "{script}");
        let digest = base64(&Sha256::digest(script.as_bytes()));
        let policy = site.policy.to_str().expect("ASCII");
        assert!(policy.contains(&format!("'sha256-{digest}'")));
    }
}

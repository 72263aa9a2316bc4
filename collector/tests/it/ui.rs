//! The web UI as the API listener serves it: the page at every UI route, assets by content hash
//! with immutable caching, a policy that admits only the page's own scripts, the API untouched,
//! and `api.ui: false` turning it off. (What the pages do is tested in a browser: `ui/test`.)

use hyper::{Method, StatusCode};

use crate::harness::{Collector, default_config_with};

async fn get(c: &Collector, path: &str) -> crate::harness::Reply {
    c.request(
        Method::GET,
        format!("http://{}{path}", c.api),
        &[],
        Vec::new(),
    )
    .await
}

fn header<'a>(reply: &'a crate::harness::Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn the_api_listener_serves_the_ui_with_hashed_immutable_assets() {
    let c = Collector::start().await;
    let page = get(&c, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let policy = header(&page, "content-security-policy");
    assert!(policy.contains("script-src 'self' 'sha256-"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let html = String::from_utf8(page.body.to_vec()).expect("utf-8");

    // Every UI route is the same page, so links can be shared and reloaded.
    for route in [
        "/traces",
        "/traces/0123456789abcdef0123456789abcdef",
        "/live",
        "/usage",
        "/anomalies",
        "/alerts",
    ] {
        let reply = get(&c, route).await;
        assert_eq!(reply.status, StatusCode::OK, "{route}");
        assert_eq!(reply.body, page.body, "{route}");
    }

    // The page names its assets by hash; each is served immutable with its type, and its bytes
    // hash to its name.
    let mut names: Vec<&str> = html
        .split("/assets/")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').expect("quoted")])
        .filter(|name| name.matches('.').count() == 2)
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 9, "{names:?}");
    for name in &names {
        let reply = get(&c, &format!("/assets/{name}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{name}");
        assert_eq!(
            header(&reply, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        let expected_type = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            _ => "image/svg+xml",
        };
        assert_eq!(header(&reply, "content-type"), expected_type, "{name}");
        assert_eq!(header(&reply, "x-content-type-options"), "nosniff");
        use sha2::Digest;
        let digest = hex::encode(&sha2::Sha256::digest(&reply.body)[..6]);
        assert_eq!(name.split('.').nth(1), Some(digest.as_str()), "{name}");
    }
    assert_eq!(
        get(&c, "/assets/main.js").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&c, "/assets/../Cargo.toml").await.status,
        StatusCode::NOT_FOUND
    );

    // The API and status endpoints are untouched.
    let traces = get(&c, "/api/v1/traces").await;
    assert_eq!(traces.status, StatusCode::OK);
    assert_eq!(header(&traces, "content-type"), "application/json");
    assert_eq!(get(&c, "/api/v1/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&c, "/healthz").await.status, StatusCode::OK);
    assert_eq!(get(&c, "/nope").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_ui_can_be_turned_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = default_config_with(&dir, |text| {
        text.replace(
            "extensions:\n  api:\n",
            "extensions:\n  api:\n    ui: false\n",
        )
    });
    let c = Collector::start_with(config, dir).await;
    assert_eq!(get(&c, "/").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&c, "/traces").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&c, "/api/v1/traces").await.status, StatusCode::OK);
}

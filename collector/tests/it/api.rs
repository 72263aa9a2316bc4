//! The query API's contract for clients: health, bad parameters, unknown traces.

use hyper::StatusCode;

use crate::harness::{Collector, default_config_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_bad_requests_are_answered_clearly() {
    let c = Collector::start().await;
    assert_eq!(c.get("/healthz").await.json()["status"], "ok");
    assert_eq!(c.get("/readyz").await.json()["status"], "ready");

    for (path, fragment) in [
        ("/api/v1/traces?from=yesterday", "RFC 3339"),
        ("/api/v1/traces?limit=0", "limit"),
        ("/api/v1/traces?limit=abc", "limit"),
        ("/api/v1/traces?cursor=xyz", "cursor"),
        ("/api/v1/traces?servcie=a", "unknown parameter servcie"),
        ("/api/v1/traces?errors_only=maybe", "errors_only"),
        ("/api/v1/traces?q=%20--%20", "no words"),
        ("/api/v1/traces?q=a+b+c+d+e+f+g+h+i", "at most 8 words"),
        (
            "/api/v1/traces?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "earlier",
        ),
        ("/api/v1/traces/not-a-trace", "not a trace id"),
        ("/api/v1/analytics/summary?group_by=colour", "group_by"),
        ("/api/v1/analytics/summary?bucket=soon", "bucket"),
        ("/api/v1/analytics/summary?bucket=10ms", "at least 1s"),
    ] {
        let reply = c.get(path).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        let message = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(fragment), "{path}: {message}");
    }
    let unknown = c.get(&format!("/api/v1/traces/{}", "ab".repeat(16))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(c.get("/api/v1/nothing").await.status, StatusCode::NOT_FOUND);
    let empty = c.get("/api/v1/traces").await.json();
    assert_eq!(
        empty,
        serde_json::json!({"traces": [], "next_cursor": null})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_bucket_by_time_and_filter_by_range() {
    let c = Collector::start().await;
    let reply = c
        .post_otlp(
            "/v1/traces",
            &[("content-type", "application/json")],
            llmscope_core::test_util::fixtures::OPENLLMETRY_OPENAI_CHAT
                .as_bytes()
                .to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let all = c
        .eventually("/api/v1/analytics/summary?bucket=1h", |s| {
            s["groups"][0]["requests"] == 2
        })
        .await;
    let bucket = all["groups"][0]["bucket_start"]
        .as_str()
        .expect("bucket_start")
        .to_owned();
    assert!(bucket.ends_with(":00:00Z"), "{bucket}");
    // The fixture was recorded on 2026-11-27; a range before it is empty.
    let before = c
        .get("/api/v1/analytics/summary?to=2026-01-01T00:00:00Z")
        .await
        .json();
    assert_eq!(before["groups"], serde_json::json!([]));
    let around = c.get("/api/v1/traces?from=2026-11-01T00:00:00%2B01:00&to=2026-12-31T00:00:00Z&model=gpt-4o-mini").await.json();
    assert_eq!(around["traces"].as_array().map(Vec::len), Some(1));
    // The list's own filters: any span's user and session, and errors.
    let count = |json: serde_json::Value| json["traces"].as_array().map(Vec::len);
    for (query, expected) in [
        ("user=user-7", 1),
        ("user=user-8", 0),
        ("session=sess-42&model=gpt-4o-mini", 1),
        ("session=sess-42&errors_only=true", 0),
        ("errors_only=false&user=user-7", 1),
        // Words of the root's name (`agent-run`; the calls' `openai.chat` are not), any case.
        ("q=Agent", 1),
        ("q=RUN%20agent", 1),
        ("q=openai%20chat", 0),
        ("q=agent-run&user=user-7", 1),
        ("q=agent%20walk", 0),
    ] {
        let listed = c.get(&format!("/api/v1/traces?{query}")).await.json();
        assert_eq!(count(listed), Some(expected), "{query}");
    }
    let metrics = String::from_utf8(c.get("/metrics").await.body).expect("utf-8");
    assert!(metrics.contains("llmscope_receiver_accepted_items_total{receiver=\"otlp\",transport=\"http\",signal=\"traces\"} 3"), "{metrics}");
    // The durable queue holds both requests on disk; the exporter's cursor has passed them.
    let gauge = |metrics: &str, series: &str| -> Option<u64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    };
    assert!(
        gauge(&metrics, "llmscope_queue_bytes{pipeline=\"traces\"}") > Some(0),
        "{metrics}"
    );
    let pending = "llmscope_queue_pending_bytes{pipeline=\"traces\",exporter=\"sqlite\"}";
    let mut left = gauge(&metrics, pending);
    for _ in 0..50 {
        if left == Some(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = gauge(
            &String::from_utf8(c.get("/metrics").await.body).expect("utf-8"),
            pending,
        );
    }
    assert_eq!(left, Some(0), "{metrics}");
    let ready = c.get("/readyz").await.json();
    let traces = &ready["queues"]["traces"];
    assert!(traces["bytes"].as_u64() > Some(0), "{ready}");
    assert_eq!(traces["dropped_records"], 0, "{ready}");
    let sqlite = &traces["exporters"]["sqlite"];
    assert_eq!(sqlite["pending_bytes"], 0, "{ready}");
    for count in ["retries", "dead_letter_items", "dropped_items"] {
        assert_eq!(sqlite[count], 0, "{count}: {ready}");
    }
    assert_eq!(
        traces["exporters"]["sqlite"]["oldest_unexported_age_seconds"], 0,
        "{ready}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_of_closed_ranges_are_cached_no_longer_than_their_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A 2 s TTL: the second export and its listing must land while the first answer is
    // cached, also on a loaded machine (400 ms failed under load).
    let config = default_config_with(&dir, |text| {
        text.replacen(
            "    store: sqlite\n",
            "    store: sqlite\n    cache:\n      closed_ttl: 2s\n",
            1,
        )
    });
    let c = Collector::start_with(config, dir).await;
    let json = [("content-type", "application/json")];
    let fixtures = llmscope_core::test_util::fixtures::OPENLLMETRY_OPENAI_CHAT;
    assert_eq!(
        c.post_otlp("/v1/traces", &json, fixtures.as_bytes().to_vec())
            .await
            .status,
        StatusCode::OK
    );
    // The fixture's calls happened at 08:05 on 2026-11-27: this hour is a closed range.
    let closed = "/api/v1/analytics/summary?from=2026-11-27T08:00:00Z&to=2026-11-27T09:00:00Z";
    c.eventually("/api/v1/traces", |l| {
        l["traces"].as_array().is_some_and(|t| t.len() == 1)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    assert_eq!(c.get(closed).await.json()["groups"][0]["requests"], 2);

    let other = llmscope_core::test_util::fixtures::OPENINFERENCE_OPENAI_CHAT;
    assert_eq!(
        c.post_otlp("/v1/traces", &json, other.as_bytes().to_vec())
            .await
            .status,
        StatusCode::OK
    );
    c.eventually("/api/v1/traces", |l| {
        l["traces"].as_array().is_some_and(|t| t.len() == 2)
    })
    .await;
    let hits = || {
        c.telemetry()
            .value("llmscope_query_cache_total", &[("result", "hit")])
    };
    let before = hits();
    assert_eq!(
        c.get(closed).await.json()["groups"][0]["requests"],
        2,
        "served from the cache"
    );
    assert_eq!(hits(), before + 1);
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    assert_eq!(
        c.get(closed).await.json()["groups"][0]["requests"],
        4,
        "not stale past closed_ttl"
    );
}

/// With Redis, the cache is shared: one collector's answer serves another's identical query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collectors_share_the_query_cache_through_redis() {
    let Some(url) = llmscope_core::test_util::service_url("LLMSCOPE_TEST_REDIS_URL") else {
        return;
    };
    let start = |url: String| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = default_config_with(&dir, |text| {
            text.replacen(
                "    store: sqlite\n",
                &format!("    store: sqlite\n    cache:\n      redis_url: {url}\n"),
                1,
            )
        });
        Collector::start_with(config, dir).await
    };
    let (a, b) = (start(url.clone()).await, start(url).await);
    // A range no other test asks for: a unique provider filter.
    let query = format!(
        "/api/v1/analytics/summary?from=2026-11-27T08:00:00Z&to=2026-11-27T09:00:00Z&provider=p{}",
        std::process::id()
    );
    assert_eq!(a.get(&query).await.status, StatusCode::OK);
    let hit = |c: &Collector| {
        c.telemetry()
            .value("llmscope_query_cache_total", &[("result", "hit")])
    };
    assert_eq!(hit(&b), 0);
    assert_eq!(b.get(&query).await.status, StatusCode::OK);
    assert_eq!(hit(&b), 1, "b answered from a's cached response");
}

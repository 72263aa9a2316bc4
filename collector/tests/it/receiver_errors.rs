//! Every OTLP error case gets the right status and a message that says what is wrong, is
//! counted, and leaves the process serving.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use llmscope_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use llmscope_core::test_util::fixtures;
use prost::Message;
use serde_json::json;

use crate::harness::{Collector, gzip};

const JSON: (&str, &str) = ("content-type", "application/json");
const PROTO: (&str, &str) = ("content-type", "application/x-protobuf");

fn fixture_request() -> ExportTraceServiceRequest {
    serde_json::from_str(fixtures::OPENLLMETRY_OPENAI_CHAT).expect("fixture")
}

async fn assert_still_serving(c: &Collector) {
    let ok = c
        .post_otlp(
            "/v1/traces",
            &[JSON],
            fixtures::OTLP_TRACE.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(
        ok.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&ok.body)
    );
    assert_eq!(c.get("/healthz").await.status, StatusCode::OK);
}

fn refused(c: &Collector, reason: &str) -> u64 {
    c.telemetry().value(
        "llmscope_receiver_refused_requests_total",
        &[
            ("receiver", "otlp"),
            ("transport", "http"),
            ("reason", reason),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_400_with_a_message_in_the_request_encoding() {
    let c = Collector::start().await;

    let reply = c
        .post_otlp(
            "/v1/traces",
            &[PROTO],
            vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.headers["content-type"], "application/x-protobuf");
    let status = RpcStatus::decode(&reply.body[..]).expect("google.rpc.Status");
    assert_eq!(status.code, 3);
    assert!(
        status.message.contains("malformed OTLP protobuf"),
        "{}",
        status.message
    );

    let reply = c
        .post_otlp(
            "/v1/traces",
            &[JSON],
            br#"{"resourceSpans": [{"scopeSpans": 7}]}"#.to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.headers["content-type"], "application/json");
    let message = reply.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("malformed OTLP/JSON") && message.contains("line 1"),
        "{message}"
    );

    let bad_id = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not-hex", "spanId": "0102030405060708"}]}]}]});
    let reply = c
        .post_otlp("/v1/traces", &[JSON], bad_id.to_string().into_bytes())
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let reply = c
        .post_otlp(
            "/v1/logs",
            &[JSON, ("content-encoding", "gzip")],
            b"not gzip".to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid gzip"))
    );

    assert_eq!(refused(&c, "malformed"), 3);
    assert_eq!(refused(&c, "bad_gzip"), 1);
    assert_still_serving(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_media_types_and_encodings_get_415() {
    let c = Collector::start().await;
    for headers in [
        vec![("content-type", "text/plain")],
        vec![],
        vec![JSON, ("content-encoding", "br")],
    ] {
        let reply = c.post_otlp("/v1/traces", &headers, b"{}".to_vec()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{headers:?}"
        );
        assert!(
            reply.json()["message"]
                .as_str()
                .is_some_and(|m| m.contains("unsupported"))
        );
    }
    // Parameters on the media type are fine.
    let reply = c
        .post_otlp(
            "/v1/metrics",
            &[("content-type", "application/json; charset=utf-8")],
            fixtures::OTLP_METRICS.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_still_serving(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_gzip_bombs_get_413() {
    let c = Collector::start().await;
    let limit = llmscope::receiver::DEFAULT_MAX_REQUEST_BYTES as usize;

    let reply = c
        .post_otlp("/v1/traces", &[PROTO], vec![0u8; limit + 1])
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);

    // 200 MiB of zeros compresses to a few hundred KiB: small on the wire, huge inflated.
    let bomb = gzip(&vec![0u8; 200 * 1024 * 1024]);
    assert!(bomb.len() < limit / 10);
    let reply = c
        .post_otlp("/v1/traces", &[PROTO, ("content-encoding", "gzip")], bomb)
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.body.len() < 1024);

    assert_eq!(refused(&c, "too_large"), 2);
    assert_still_serving(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_json_and_protobuf_are_answered_in_kind_with_partial_success() {
    let c = Collector::start().await;
    let reply = c
        .post_otlp(
            "/v1/traces",
            &[JSON, ("content-encoding", "gzip")],
            gzip(fixtures::OPENINFERENCE_OPENAI_CHAT.as_bytes()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({}));

    let mut request = fixture_request();
    let spans = &mut request.resource_spans[0].scope_spans[0].spans;
    spans[0].trace_id = vec![0; 16];
    let reply = c
        .post_otlp("/v1/traces", &[PROTO], request.encode_to_vec())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/x-protobuf");
    let response = llmscope_core::otlp::collector::trace::v1::ExportTraceServiceResponse::decode(
        &reply.body[..],
    )
    .expect("response");
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("invalid id"),
        "{}",
        partial.error_message
    );

    // The accepted spans of that request are stored; the refused one is counted.
    let list = c
        .eventually("/api/v1/traces?service=svc-openllmetry", |l| {
            l["traces"][0]["span_count"] == 2
        })
        .await;
    assert_eq!(list["traces"][0]["llm_calls"], 1);
    let counted = c.telemetry().value(
        "llmscope_receiver_refused_items_total",
        &[
            ("receiver", "otlp"),
            ("transport", "http"),
            ("signal", "traces"),
            ("reason", "invalid_id"),
        ],
    );
    assert_eq!(counted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_refuses_malformed_messages_with_invalid_argument_and_reports_partial_success() {
    let c = Collector::start().await;

    // A gRPC frame whose payload is not an ExportTraceServiceRequest.
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let garbage = [0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01];
    let mut frame = vec![0u8];
    frame.extend((garbage.len() as u32).to_be_bytes());
    frame.extend(garbage);
    let request = hyper::Request::post(format!(
        "http://{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        c.grpc
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(Full::new(Bytes::from(frame)))
    .expect("request");
    let response = client.request(request).await.expect("response");
    let header_status = response.headers().get("grpc-status").cloned();
    let collected = response.into_body().collect().await.expect("body");
    let status = header_status.or_else(|| {
        collected
            .trailers()
            .and_then(|t| t.get("grpc-status").cloned())
    });
    assert_eq!(
        status.as_ref().and_then(|s| s.to_str().ok()),
        Some("3"),
        "INVALID_ARGUMENT"
    );

    let mut grpc = TraceServiceClient::connect(format!("http://{}", c.grpc))
        .await
        .expect("connect");
    let mut request = fixture_request();
    request.resource_spans[0].scope_spans[0].spans[1].span_id = vec![1, 2, 3];
    let response = grpc.export(request).await.expect("export").into_inner();
    assert_eq!(response.partial_success.map(|p| p.rejected_spans), Some(1));
    let ok = grpc
        .export(fixture_request())
        .await
        .expect("still serving")
        .into_inner();
    assert_eq!(ok.partial_success, None);
}

/// `google.rpc.Status`, as OTLP/HTTP error bodies carry it.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_accepts_64_bit_integers_as_numbers_or_strings_and_uppercase_hex_ids() {
    let c = Collector::start().await;
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "numbers"}}]},
        "scopeSpans": [{"spans": [
            {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
             "name": "as numbers", "kind": 3,
             "startTimeUnixNano": 1544712660000000000u64, "endTimeUnixNano": 1544712661000000000u64,
             "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": 12}},
                            {"key": "gen_ai.request.model", "value": {"stringValue": "m"}}],
             "status": {"code": 2, "message": "boom"}},
            {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B175",
             "name": "as strings", "startTimeUnixNano": "1544712660500000000",
             "endTimeUnixNano": "1544712660600000000",
             "attributes": [{"key": "n", "value": {"intValue": "9007199254740993"}}]}
        ]}]
    }]});
    let reply = c
        .post_otlp("/v1/traces", &[JSON], body.to_string().into_bytes())
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let trace = c
        .eventually("/api/v1/traces/5b8efff798038103d269b633813fc60c", |t| {
            t["spans"].as_array().is_some_and(|s| s.len() == 2)
        })
        .await;
    let first = &trace["spans"][0];
    assert_eq!(first["start_time"], "2018-12-13T14:51:00Z");
    assert_eq!(first["duration_ms"], 1000.0);
    assert_eq!(first["kind"], "client");
    assert_eq!(first["status"], "error");
    assert_eq!(first["gen_ai"]["input_tokens"], 12);
    assert_eq!(trace["spans"][1]["attributes"]["n"], 9007199254740993i64);
    assert_eq!(trace["spans"][1]["start_time"], "2018-12-13T14:51:00.5Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_with_empty_lists_omitted_is_accepted() {
    // Proto3's JSON mapping omits empty repeated fields: `{"arrayValue": {}}` is an empty array.
    let c = Collector::start().await;
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0102030405060708090a0b0c0d0e0f10",
        "spanId": "0102030405060708",
        "name": "with empty lists",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000001000000",
        "attributes": [
            {"key": "stop", "value": {"arrayValue": {}}},
            {"key": "meta", "value": {"kvlistValue": {}}}
        ]
    }]}]}]});
    let reply = c
        .post_otlp("/v1/traces", &[JSON], body.to_string().into_bytes())
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let trace = c
        .eventually("/api/v1/traces/0102030405060708090a0b0c0d0e0f10", |t| {
            t["spans"].as_array().is_some_and(|s| s.len() == 1)
        })
        .await;
    assert_eq!(trace["spans"][0]["attributes"]["stop"], json!([]));
    // What is malformed for another reason still says so.
    let reply = c
        .post_otlp(
            "/v1/traces",
            &[JSON],
            br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 7, "attributes": [{"key": "a", "value": {"arrayValue": {}}}]}]}]}]}"#.to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&reply.body).contains("malformed OTLP/JSON"));
}

/// A protobuf length-delimited field: tag, length, bytes.
fn field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// An `ExportTraceServiceRequest` of one span whose one attribute has `value` (an encoded
/// `AnyValue`), encoded by hand so a value nested thousands deep is never a Rust structure.
fn request_with_attribute(value: &[u8]) -> Vec<u8> {
    let attribute = [field(1, b"deep"), field(2, value)].concat();
    let span = [
        field(1, &[7; 16]),
        field(2, &[8; 8]),
        field(5, b"nested"),
        field(9, &attribute),
    ]
    .concat();
    let scope_spans = field(2, &span);
    let resource_spans = field(2, &scope_spans);
    field(1, &resource_spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_nested_thousands_deep_get_400_and_huge_attribute_counts_stay_bounded() {
    let c = Collector::start().await;
    const DEPTH: usize = 5_000;

    // kvlist in kvlist, 5,000 deep, as protobuf: AnyValue { kvlist_value { values [ KeyValue {
    // key, value: AnyValue { ... } } ] } }.
    let mut value = field(1, b"leaf");
    for _ in 0..DEPTH {
        let key_value = [field(1, b"k"), field(2, &value)].concat();
        value = field(6, &field(1, &key_value));
    }
    let reply = c
        .post_otlp("/v1/traces", &[PROTO], request_with_attribute(&value))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // The same as OTLP/JSON.
    let mut json_value = r#"{"stringValue":"leaf"}"#.to_owned();
    for _ in 0..DEPTH {
        json_value =
            format!(r#"{{"kvlistValue":{{"values":[{{"key":"k","value":{json_value}}}]}}}}"#);
    }
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"07070707070707070707070707070707","spanId":"0808080808080808","name":"nested","attributes":[{{"key":"deep","value":{json_value}}}]}}]}}]}}]}}"#
    );
    let reply = c.post_otlp("/v1/traces", &[JSON], body.into_bytes()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = String::from_utf8_lossy(&reply.body).to_string();
    assert!(
        message.contains("recursion") || message.contains("depth"),
        "{message}"
    );
    assert_eq!(refused(&c, "malformed"), 2);

    // 300,000 attributes on one span (about 5 MB, under the body limit): taken, and the process
    // serving.
    let attributes: Vec<u8> = (0..300_000)
        .flat_map(|i| {
            let value = field(1, format!("v{i}").as_bytes());
            field(
                9,
                &[
                    field(1, format!("attribute.{i}").as_bytes()),
                    field(2, &value),
                ]
                .concat(),
            )
        })
        .collect();
    let span = [
        field(1, &[9; 16]),
        field(2, &[9; 8]),
        field(5, b"wide"),
        attributes,
    ]
    .concat();
    let body = field(1, &field(2, &field(2, &span)));
    assert!(body.len() < llmscope::receiver::DEFAULT_MAX_REQUEST_BYTES as usize);
    let reply = c.post_otlp("/v1/traces", &[PROTO], body).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_still_serving(&c).await;
}

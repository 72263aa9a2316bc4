use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::otlp::logs::v1::LogRecord;
use llmscope_core::semconv as sc;
use llmscope_core::telemetry::Telemetry;
use llmscope_core::test_util::{fixtures, kv, logs, records_of, span, spans_of, traces};
use llmscope_core::{Processor, attr};
use proptest::prelude::*;
use serde_json::{Value as J, json};

use super::*;
use crate::normalize::Normalize;

fn scanner(config: &RedactConfig) -> Scanner {
    Scanner::new(config).expect("scanner")
}

fn masked(text: &str) -> String {
    scanner(&RedactConfig::default())
        .redact(text)
        .text
        .unwrap_or_else(|| text.to_owned())
}

#[test]
fn every_detector_masks_real_values() {
    let cases = [
        (
            "write to john.smith@example.org today",
            "write to [REDACTED:EMAIL] today",
        ),
        ("call +1 415 555 0100 now", "call [REDACTED:PHONE] now"),
        ("call (415) 555-0100 now", "call [REDACTED:PHONE] now"),
        ("ring +44 20 7946 0958.", "ring [REDACTED:PHONE]."),
        (
            "card 4111 1111 1111 1111 exp",
            "card [REDACTED:CREDIT_CARD] exp",
        ),
        ("ssn 123-45-6789.", "ssn [REDACTED:SSN]."),
        (
            "iban DE89 3704 0044 0532 0130 00 ok",
            "iban [REDACTED:IBAN] ok",
        ),
        ("from 192.168.10.42:", "from [REDACTED:IPV4]:"),
        ("from 2001:db8::8a2e:370:7334 x", "from [REDACTED:IPV6] x"),
        (
            "key sk-proj-abcdefghijklmnopqrstuvwxyz012345 x",
            "key [REDACTED:OPENAI_API_KEY] x",
        ),
        (
            "key sk-ant-api03-abcdefghijklmnopqrstuvwxyz-_0123 x",
            "key [REDACTED:ANTHROPIC_API_KEY] x",
        ),
        (
            "ours lls_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ x",
            "ours [REDACTED:LLMSCOPE_API_KEY] x",
        ),
        (
            "aws AKIAIOSFODNN7EXAMPLE x",
            "aws [REDACTED:AWS_ACCESS_KEY] x",
        ),
        (
            "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789 x",
            "gh [REDACTED:GITHUB_TOKEN] x",
        ),
        (
            "bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U x",
            "bearer [REDACTED:JWT] x",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY----- done",
            "[REDACTED:PRIVATE_KEY] done",
        ),
        (
            "db password=hunter2!x and",
            "db password=[REDACTED:SECRET] and",
        ),
        (
            "{\"api_key\": \"abc123def\"}",
            "{\"api_key\": \"[REDACTED:SECRET]\"}",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(masked(input), want, "{input}");
    }
}

#[test]
fn lookalikes_are_left_alone() {
    for text in [
        "order 4111 1111 1111 1112 shipped",
        "it is 12:30:45 in Paris",
        "version 2024-07-18 and id 1234567890",
        "sk-short",
        "666-12-3456 is not an SSN",
        "naïve café – 東京 e-mail at example dot com",
        "GB82 WEST 1234 5698 7654 33",
    ] {
        assert_eq!(masked(text), text);
    }
}

#[test]
fn actions_hash_drop_and_off_and_the_allow_list() {
    let mut config = RedactConfig {
        hash_key: llmscope_core::config::Secret::new("a-key-of-sixteen-chars"),
        allow: vec![r"[^@]+@mycompany\.com".into()],
        ..Default::default()
    };
    config.detectors.insert("email".into(), Action::Hash);
    config.detectors.insert("ipv4".into(), Action::Off);
    config.detectors.insert("credit_card".into(), Action::Drop);
    assert!(config.validate().is_ok());
    let s = scanner(&config);
    let a = s
        .redact("mail jane@example.com and jane@example.com, cc ops@mycompany.com from 10.0.0.1")
        .text
        .expect("changed");
    let hash = a.split_whitespace().nth(1).expect("hash").to_owned();
    assert!(
        hash.starts_with("[EMAIL:") && hash.len() == "[EMAIL:]".len() + 12,
        "{hash}"
    );
    assert!(!hash.bytes().any(|b| b.is_ascii_digit()));
    assert_eq!(
        a,
        format!("mail {hash} and {hash}, cc ops@mycompany.com from 10.0.0.1")
    );
    let other_key = RedactConfig {
        hash_key: llmscope_core::config::Secret::new("another-key-of-16ch"),
        ..config.clone()
    };
    assert!(
        !scanner(&other_key)
            .redact("jane@example.com")
            .text
            .expect("changed")
            .contains(&hash)
    );
    assert!(s.redact("pay with 4111111111111111").drop);

    let no_key = RedactConfig {
        hash_key: Default::default(),
        ..config
    };
    assert!(no_key.validate().unwrap_err().starts_with("hash_key"));
}

#[test]
fn user_patterns_are_detected_and_named() {
    let config = RedactConfig {
        patterns: vec![Pattern {
            name: "employee_id".into(),
            regex: r"\bEMP-[0-9]{6}\b".into(),
            validator: None,
            action: None,
        }],
        ..Default::default()
    };
    assert!(config.validate().is_ok());
    assert_eq!(
        scanner(&config).redact("by EMP-123456.").text.as_deref(),
        Some("by [REDACTED:EMPLOYEE_ID].")
    );
    let bad = RedactConfig {
        patterns: vec![Pattern {
            name: "x".into(),
            regex: "(".into(),
            validator: None,
            action: None,
        }],
        ..Default::default()
    };
    assert!(bad.validate().unwrap_err().starts_with("patterns:"));
}

#[test]
fn user_patterns_take_a_validator_and_deny_lists_match_whole_terms() {
    let config: RedactConfig = serde_yaml::from_str(
        r#"
patterns:
  - name: account
    regex: '\bACC[0-9]{16}\b'
    validator: luhn
terms:
  - name: customer
    terms: [Acme Corp, Globex, "C++ Team", Müller]
  - name: codename
    terms: [Bluebird]
    case_sensitive: true
    action: hash
hash_key: a-key-of-sixteen-chars
"#,
    )
    .expect("config");
    assert_eq!(config.validate(), Ok(()));
    let s = scanner(&config);
    let redact = |text: &str| s.redact(text).text.unwrap_or_else(|| text.to_owned());
    assert_eq!(
        redact("pay ACC4111111111111111 now"),
        "pay [REDACTED:ACCOUNT] now"
    );
    assert_eq!(
        redact("pay ACC4111111111111112 now"),
        "pay ACC4111111111111112 now"
    );
    assert_eq!(
        redact("acme corp and GLOBEX met the C++ Team and Frau Müller"),
        "[REDACTED:CUSTOMER] and [REDACTED:CUSTOMER] met the [REDACTED:CUSTOMER] and Frau \
         [REDACTED:CUSTOMER]"
    );
    assert_eq!(
        redact("Globexx and Acme Corporation"),
        "Globexx and Acme Corporation"
    );
    assert!(redact("Project Bluebird ships").starts_with("Project [CODENAME:"));
    assert_eq!(redact("a bluebird sang"), "a bluebird sang");
    let found = s.redact("Acme Corp").found;
    assert_eq!(s.names(found).collect::<Vec<_>>(), ["customer"]);

    let refused = |yaml: &str| {
        serde_yaml::from_str::<RedactConfig>(yaml)
            .expect("config")
            .validate()
            .unwrap_err()
    };
    assert!(
        refused("patterns: [{name: a, regex: x, validator: crc}]")
            .starts_with("patterns[0].validator: unknown validator \"crc\"; known: luhn")
    );
    assert_eq!(
        refused("terms: [{name: a, terms: []}]"),
        "terms[0].terms: list at least one term"
    );
    assert_eq!(
        refused("terms: [{name: a, terms: [x, ' ']}]"),
        "terms[0].terms[1]: a term cannot be empty"
    );
    assert!(refused("terms: [{name: email, terms: [x]}]").contains("is taken"));
    assert!(
        refused("patterns: [{name: a, regex: x}]\nterms: [{name: a, terms: [y]}]")
            .starts_with("terms[0].name: \"a\" is taken")
    );
    assert!(refused("phone_regions: [US, XX]").starts_with("phone_regions: unknown region \"XX\""));
}

#[test]
fn phone_regions_decide_which_national_numbers_are_found() {
    let only_us: RedactConfig = serde_yaml::from_str("phone_regions: [us]").expect("config");
    assert_eq!(only_us.validate(), Ok(()));
    let s = scanner(&only_us);
    let redact = |text: &str| s.redact(text).text.unwrap_or_else(|| text.to_owned());
    assert_eq!(redact("call (020) 7946 0018"), "call (020) 7946 0018");
    assert_eq!(redact("call +44 20 7946 0018"), "call [REDACTED:PHONE]");
    assert_eq!(redact("call (415) 555-0100"), "call [REDACTED:PHONE]");
    assert_eq!(masked("call (020) 7946 0018"), "call [REDACTED:PHONE]");
}

fn redact_batch(mut batch: llmscope_core::Batch) -> (llmscope_core::Batch, Telemetry) {
    let telemetry = Telemetry::default();
    Redact::new(&RedactConfig::default(), &telemetry)
        .expect("redact")
        .process(&mut batch)
        .expect("process");
    (batch, telemetry)
}

fn pii_types(attrs: &[llmscope_core::otlp::common::v1::KeyValue]) -> Vec<String> {
    match attr::get(attrs, sc::PII_TYPES) {
        Some(v) => attr::to_json(v)
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        None => Vec::new(),
    }
}

#[test]
fn spans_keep_shape_and_record_what_was_found() {
    let messages = json!([{"role": "user", "parts": [{"type": "text", "content": "I am jane@example.com, card 4111 1111 1111 1111"}]}]);
    let attrs = vec![
        kv(sc::INPUT_MESSAGES, messages.to_string().as_str()),
        kv("user.email", "jane@example.com"),
        kv(sc::REQUEST_MODEL, "gpt-4o"),
        kv(
            "llm.input_messages.0.message.content",
            "call +1 415 555 0100",
        ),
    ];
    let mut s = span(1, 1, "chat", attrs);
    s.events.push(llmscope_core::otlp::trace::v1::span::Event {
        name: "gen_ai.content.prompt".into(),
        attributes: vec![kv("gen_ai.prompt", "ssn 123-45-6789")],
        ..Default::default()
    });
    let (batch, telemetry) = redact_batch(traces("svc", vec![s]));
    let out = spans_of(&batch)[0];
    let content: J =
        serde_json::from_str(attr::get_str(&out.attributes, sc::INPUT_MESSAGES).expect("kept"))
            .expect("still JSON");
    assert_eq!(
        content,
        json!([{"role": "user", "parts": [{"type": "text", "content": "I am [REDACTED:EMAIL], card [REDACTED:CREDIT_CARD]"}]}])
    );
    assert_eq!(
        attr::get_str(&out.attributes, "user.email"),
        Some("[REDACTED:EMAIL]"),
        "every attribute is scanned"
    );
    assert_eq!(
        attr::get_str(&out.attributes, "llm.input_messages.0.message.content"),
        Some("call [REDACTED:PHONE]")
    );
    assert_eq!(
        attr::get_str(&out.events[0].attributes, "gen_ai.prompt"),
        Some("ssn [REDACTED:SSN]")
    );
    assert_eq!(
        pii_types(&out.attributes),
        vec!["credit_card", "email", "phone", "ssn"]
    );
    assert_eq!(
        telemetry.value("llmscope_redact_detections_total", &[("type", "email")]),
        1
    );
}

#[test]
fn log_events_structured_content_and_bodies_are_redacted() {
    let structured = attr::from_json(
        &json!([{"role": "user", "parts": [{"type": "text", "content": "mail bob@corp.io"}]}]),
    );
    let mut record = LogRecord {
        event_name: "gen_ai.client.inference.operation.details".into(),
        body: Some(attr::from_json(&json!({"content": "my IP is 8.8.8.8"}))),
        ..Default::default()
    };
    record
        .attributes
        .push(llmscope_core::otlp::common::v1::KeyValue {
            key: sc::INPUT_MESSAGES.into(),
            value: Some(structured),
            ..Default::default()
        });
    record.attributes.push(kv("blob.input.value", "x"));
    let mut bytes_record = LogRecord::default();
    bytes_record
        .attributes
        .push(kv("input.value", Value::BytesValue(vec![1, 2, 3])));
    let (batch, telemetry) = redact_batch(logs("svc", vec![record, bytes_record]));
    let records = records_of(&batch);
    let content =
        attr::to_json(attr::get(&records[0].attributes, sc::INPUT_MESSAGES).expect("kept"));
    assert_eq!(content[0]["parts"][0]["content"], "mail [REDACTED:EMAIL]");
    let body = records[0]
        .body
        .as_ref()
        .map(attr::any_to_json)
        .expect("body");
    assert_eq!(body, json!({"content": "my IP is [REDACTED:IPV4]"}));
    assert_eq!(pii_types(&records[0].attributes), vec!["email", "ipv4"]);
    assert_eq!(
        attr::get_str(&records[1].attributes, "input.value"),
        Some(UNPROCESSABLE),
        "fails closed"
    );
    assert_eq!(pii_types(&records[1].attributes), vec!["unprocessable"]);
    assert_eq!(
        telemetry.value("llmscope_redact_unprocessable_total", &[]),
        1
    );
}

#[test]
fn the_drop_action_removes_the_attribute() {
    let mut config = RedactConfig::default();
    config.detectors.insert("secret".into(), Action::Drop);
    let mut batch = traces(
        "svc",
        vec![span(
            1,
            1,
            "x",
            vec![
                kv("input.value", "token: abcdef123"),
                kv("output.value", "fine"),
            ],
        )],
    );
    Redact::new(&config, &Telemetry::default())
        .expect("redact")
        .process(&mut batch)
        .expect("process");
    let attrs = &spans_of(&batch)[0].attributes;
    assert!(!attr::has(attrs, "input.value"));
    assert_eq!(attr::get_str(attrs, "output.value"), Some("fine"));
    assert_eq!(pii_types(attrs), vec!["secret"]);
}

/// Every string anywhere in `attrs` (nested values too), with its key.
fn strings(attrs: &[llmscope_core::otlp::common::v1::KeyValue], out: &mut Vec<(String, String)>) {
    for kv in attrs {
        if let Some(value) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            out.push((kv.key.clone(), attr::to_json(value).to_string()));
        }
    }
}

#[test]
fn after_the_chain_no_attribute_of_any_fixture_holds_a_detected_value() {
    let s = scanner(&RedactConfig::default());
    let telemetry = Telemetry::default();
    let mut checked = 0;
    for fixture in [
        fixtures::OPENLLMETRY_OPENAI_CHAT,
        fixtures::OPENINFERENCE_OPENAI_CHAT,
        fixtures::OPENINFERENCE_LANGCHAIN_CHAT,
        fixtures::OPENINFERENCE_ANTHROPIC_CHAT,
        fixtures::OPENINFERENCE_JS_OPENAI_CHAT,
        fixtures::OPENLLMETRY_JS_OPENAI_CHAT,
        fixtures::OPENLLMETRY_LANGCHAIN_CHAT,
        fixtures::OTEL_GENAI_OPENAI_CHAT,
        fixtures::LOGFIRE_OPENAI_CHAT,
        fixtures::OPENLIT_OPENAI_CHAT,
        fixtures::LITELLM_OPENAI_CHAT,
        fixtures::MLFLOW_OPENAI_CHAT,
        fixtures::VERCEL_AI_OPENAI_CHAT,
        fixtures::LANGFUSE_OPENAI_CHAT,
        fixtures::OTLP_TRACE,
        fixtures::OTLP_EVENTS,
    ] {
        let mut batch = fixtures::traces_batch(fixture);
        let mut chain: Vec<Box<dyn Processor>> = vec![
            Box::new(Normalize::default()),
            Box::new(crate::cost::Cost::new(&Default::default(), &telemetry).expect("cost")),
            Box::new(Redact::new(&RedactConfig::default(), &telemetry).expect("redact")),
            Box::new(crate::anomaly::Anomaly::new(Default::default(), &telemetry)),
        ];
        for p in &mut chain {
            p.process(&mut batch).expect("process");
        }
        let Payload::Traces(resources) = &batch.payload else {
            unreachable!()
        };
        let mut seen = Vec::new();
        for r in resources {
            strings(
                r.resource.as_ref().map_or(&[][..], |r| &r.attributes),
                &mut seen,
            );
            for sc in &r.scope_spans {
                strings(
                    sc.scope.as_ref().map_or(&[][..], |s| &s.attributes),
                    &mut seen,
                );
                for span in &sc.spans {
                    seen.push(("(span name)".into(), span.name.clone()));
                    strings(&span.attributes, &mut seen);
                    for event in &span.events {
                        strings(&event.attributes, &mut seen);
                    }
                }
            }
        }
        checked += seen.len();
        for (key, text) in seen {
            assert!(!s.detects(&text), "{key}: {text}");
            assert!(
                !text.contains("example.org") && !text.contains("555 0100"),
                "{key}: {text}"
            );
        }
    }
    for fixture in [fixtures::OTLP_LOGS, fixtures::OTEL_GENAI_OPENAI_CHAT_LOGS] {
        let mut batch = fixtures::logs_batch(fixture);
        Redact::new(&RedactConfig::default(), &telemetry)
            .expect("redact")
            .process(&mut batch)
            .expect("process");
        for record in records_of(&batch) {
            let mut seen = Vec::new();
            strings(&record.attributes, &mut seen);
            checked += seen.len();
            for (key, text) in seen {
                assert!(!s.detects(&text), "{key}: {text}");
            }
        }
    }
    assert!(checked > 50, "{checked} values checked");
}

#[test]
fn content_under_any_key_is_redacted_by_default_and_only_listed_keys_when_narrowed() {
    let content = "Reach me at jane.doe@example.com or +1 415 555 0100";
    let make = || {
        let mut batch = traces(
            "svc",
            vec![span(
                1,
                1,
                "task",
                vec![
                    kv("gen_ai.task.input", content),
                    kv("llm.openai.messages", content),
                    kv("mlflow.spanInputs", content),
                    kv("gen_ai.request.model", "gpt-4o-mini"),
                    kv("user.id", "jane.doe@example.com"),
                    kv("app.note", content),
                ],
            )],
        );
        let Payload::Traces(resources) = &mut batch.payload else {
            unreachable!()
        };
        resources[0]
            .resource
            .get_or_insert_default()
            .attributes
            .push(kv("owner.email", "ops@example.com"));
        resources[0].scope_spans[0]
            .scope
            .get_or_insert_default()
            .attributes
            .push(kv("scope.note", content));
        resources[0].scope_spans[0].spans[0].events.push(
            llmscope_core::otlp::trace::v1::span::Event {
                name: "mlflow.chunk.item.0".into(),
                attributes: vec![kv("mlflow.chunk.value", content)],
                ..Default::default()
            },
        );
        batch
    };
    let redacted = "Reach me at [REDACTED:EMAIL] or [REDACTED:PHONE]";
    let run = |config: &RedactConfig| {
        let mut batch = make();
        Redact::new(config, &Telemetry::default())
            .expect("redact")
            .process(&mut batch)
            .expect("process");
        batch
    };

    let batch = run(&RedactConfig::default());
    let span = spans_of(&batch)[0].clone();
    for key in [
        "gen_ai.task.input",
        "llm.openai.messages",
        "mlflow.spanInputs",
        "app.note",
    ] {
        assert_eq!(
            attr::get_str(&span.attributes, key),
            Some(redacted),
            "{key}"
        );
    }
    assert_eq!(
        attr::get_str(&span.events[0].attributes, "mlflow.chunk.value"),
        Some(redacted)
    );
    assert_eq!(
        attr::get_str(&span.attributes, "gen_ai.request.model"),
        Some("gpt-4o-mini")
    );
    assert_eq!(
        attr::get_str(&span.attributes, "user.id"),
        Some("jane.doe@example.com"),
        "ids are kept as sent: analytics group by them"
    );
    assert_eq!(pii_types(&span.attributes), vec!["email", "phone"]);
    let Payload::Traces(resources) = &batch.payload else {
        unreachable!()
    };
    let resource = &resources[0].resource.as_ref().expect("resource").attributes;
    assert_eq!(
        attr::get_str(resource, "owner.email"),
        Some("[REDACTED:EMAIL]")
    );
    assert_eq!(pii_types(resource), vec!["email"]);
    let scope = &resources[0].scope_spans[0]
        .scope
        .as_ref()
        .expect("scope")
        .attributes;
    assert_eq!(attr::get_str(scope, "scope.note"), Some(redacted));

    // Widened by `attributes`, narrowed by `skip_attributes`.
    let config = RedactConfig {
        attributes: vec!["user.id".into()],
        skip_attributes: vec!["app.*".into()],
        ..RedactConfig::default()
    };
    let span = spans_of(&run(&config))[0].clone();
    assert_eq!(
        attr::get_str(&span.attributes, "user.id"),
        Some("[REDACTED:EMAIL]")
    );
    assert_eq!(attr::get_str(&span.attributes, "app.note"), Some(content));

    // `scan: listed`: the GenAI content attributes only.
    let listed = RedactConfig {
        scan: Scan::Listed,
        ..RedactConfig::default()
    };
    let span = spans_of(&run(&listed))[0].clone();
    assert_eq!(
        attr::get_str(&span.attributes, "gen_ai.task.input"),
        Some(content)
    );
}

/// Text fragments: words, non-ASCII, and values every detector should find.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,10}",
        2 => "[ \n,.;:()\"'-]{1,2}",
        1 => "(café|東京|naïve|Привет|–|😀)",
        1 => "[a-z]{2,8}(\\.[a-z]{2,5})?@[a-z]{2,8}\\.(com|org|io)",
        1 => "\\+[1-9][0-9] [0-9]{3} [0-9]{3} [0-9]{4}",
        1 => "(4111 1111 1111 1111|5500-0000-0000-0004|378282246310005)",
        1 => "[1-8][0-9]{2}-[1-9][0-9]-[1-9][0-9]{3}",
        1 => "(10|172|192)\\.[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}",
        1 => "sk-proj-[A-Za-z0-9]{24}",
        1 => "AKIA[A-Z0-9]{16}",
        1 => "(password|api_key|token)=[a-z0-9!]{4,12}",
        1 => "[0-9]{1,6}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..40).prop_map(|parts| parts.join(" "))
}

/// [`text`] with what the phone detector's context rules read: cue words, labels, groups of
/// three, national numbers, long emails that shrink to a mask, IPv6 pieces.
fn text_with_context() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => fragment(),
        1 => "(call|phone|tel|order #|id)",
        1 => "[0-9]{3}[ .][0-9]{3}[ .][0-9]{3}",
        1 => "0[1-9]( ?[0-9]{2}){4}",
        1 => "[0-9a-f]{0,4}::[0-9a-f]{1,4}",
        1 => "[a-z]{20,40}@example\\.com",
    ];
    prop::collection::vec(piece, 0..40).prop_map(|parts| parts.join(" "))
}

/// Every built-in's shapes, their near misses and pieces, and the bytes its start rule names
/// (`starts`), beside words and non-ASCII text, glued together or apart.
fn detector_material() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => fragment(),
        2 => "[A-Za-z0-9._%+-]{1,70}@[a-z0-9-]{1,10}(\\.[a-z]{1,4}){0,3}",
        1 => "-----BEGIN (RSA )?PRIVATE KEY-----[A-Za-z0-9+/= \n]{0,40}(-----END PRIVATE KEY-----)?",
        1 => "eyJ[A-Za-z0-9_-]{6,12}\\.eyJ[A-Za-z0-9_-]{6,12}\\.[A-Za-z0-9_-]{0,8}",
        1 => "sk-(ant-[a-z]{2,4}[0-9]{2}-|proj-)?[A-Za-z0-9_-]{15,25}",
        1 => "lls_[A-Za-z0-9]{40,45}",
        1 => "(AKIA|ASIA|AROA)[A-Z0-9]{14,17}",
        1 => "(gh[pousr]_[A-Za-z0-9]{34,38}|github_pat_[A-Za-z0-9_]{20,24})",
        2 => "(?i)(password|pwd|client[_-]?secret|refresh_token|api-key|TOKEN)[\"']?[ \t]{0,4}[:=][ \t]{0,4}[\"']?[a-z0-9!/]{0,12}",
        1 => "[A-Z]{2}[0-9]{2}( ?[A-Z0-9]{4}){1,7}( ?[A-Z0-9]{1,3})?",
        1 => "(DE89 3704 0044 0532 0130 00|GB82WEST12345698765432)",
        2 => "[+(]{0,2}[0-9]{1,4}[) .-]{0,2}[0-9]{2,4}([ ./-][0-9]{2,4}){0,4}( ?(x|ext\\.?) ?[0-9]{1,4})?",
        1 => "[0-9a-fA-F]{0,5}(:[0-9a-fA-F]{0,5}){1,8}",
        1 => "[0-9]{1,3}(\\.[0-9]{1,3}){2,4}",
        1 => "[@:=+(.-]{1,3}",
    ];
    let glue = prop_oneof![3 => Just(" "), 1 => Just(""), 1 => Just("\n"), 1 => Just(", ")];
    prop::collection::vec((piece, glue), 0..30).prop_map(|parts| {
        parts
            .into_iter()
            .flat_map(|(p, g)| [p, g.to_owned()])
            .collect()
    })
}

/// A user pattern and a deny-list beside the built-ins: they are searched for everywhere.
fn with_custom_patterns() -> RedactConfig {
    serde_yaml::from_str(
        r#"
patterns:
  - {name: ticket, regex: "TCK-[0-9]{4}"}
  - {name: word_end, regex: "[a-z]+ing\\b"}
terms:
  - {name: customers, terms: [customer, "Acme Inc."]}
"#,
    )
    .expect("config")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn candidates_find_what_a_search_over_every_byte_finds(input in detector_material()) {
        for config in [RedactConfig::default(), with_custom_patterns()] {
            let s = scanner(&config);
            prop_assert_eq!(s.matches(&input), s.matches_by_full_search(&input), "{:?}", input);
        }
    }

    #[test]
    fn redaction_leaves_nothing_detectable_and_is_idempotent(input in text_with_context()) {
        let s = scanner(&RedactConfig::default());
        let once = s.redact(&input).text.unwrap_or(input.clone());
        prop_assert!(!s.detects(&once), "still detectable: {once}");
        prop_assert!(s.redact(&once).text.is_none(), "second pass changed {once}");
    }

    #[test]
    fn json_stays_valid_with_the_same_shape(leaves in prop::collection::vec(text(), 1..6)) {
        let s = scanner(&RedactConfig::default());
        let doc = json!({"messages": leaves.iter().map(|t| json!({"role": "user", "content": t})).collect::<Vec<_>>(), "n": 3});
        let mut value = Value::StringValue(doc.to_string());
        let mut found = 0;
        let _ = value::redact_value(&s, &mut value, &mut found, 0).expect("processable");
        let Value::StringValue(out) = value else { panic!("still a string") };
        let parsed: J = serde_json::from_str(&out).expect("valid JSON");
        prop_assert_eq!(parsed["messages"].as_array().map(Vec::len), Some(leaves.len()));
        prop_assert_eq!(&parsed["n"], &json!(3));
        prop_assert!(!s.detects(&out), "still detectable: {}", out);
        // In place or parsed, each leaf ends as if redacted on its own.
        for (i, leaf) in leaves.iter().enumerate() {
            let alone = s.redact(leaf).text.unwrap_or_else(|| leaf.clone());
            prop_assert_eq!(parsed["messages"][i]["content"].as_str(), Some(alone.as_str()));
        }
    }

    #[test]
    fn arbitrary_input_never_panics(input in any::<String>()) {
        let s = scanner(&RedactConfig::default());
        let _ = s.redact(&input);
        let mut v = Value::StringValue(input);
        let mut found = 0;
        let _ = value::redact_value(&s, &mut v, &mut found, 0);
    }
}

#[test]
fn a_value_streamed_across_events_is_redacted_where_it_is_split() {
    use llmscope_core::otlp::trace::v1::span::Event;
    let chunk = |i: usize, content: &str| Event {
        name: format!("mlflow.chunk.item.{i}"),
        attributes: vec![kv(
            "mlflow.chunk.value",
            json!({"id": "chatcmpl-1", "choices": [{"delta": {"content": content}}]})
                .to_string()
                .as_str(),
        )],
        ..Default::default()
    };
    let plain = |i: usize, content: &str| Event {
        name: format!("token.{i}"),
        attributes: vec![kv("text", content)],
        ..Default::default()
    };
    let pieces = [
        "Call ",
        "+1 ",
        "415 ",
        "555 ",
        "0100 ",
        "or jane.doe@",
        "example.com.",
    ];
    let mut s = span(1, 1, "chat", vec![]);
    s.events = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| chunk(i, p))
        .collect();
    s.events
        .extend(pieces.iter().enumerate().map(|(i, p)| plain(i, p)));
    let (batch, _) = redact_batch(traces("svc", vec![s]));
    let out = spans_of(&batch)[0];
    let contents: Vec<String> = out.events[..pieces.len()]
        .iter()
        .map(|e| {
            let doc: J = serde_json::from_str(
                attr::get_str(&e.attributes, "mlflow.chunk.value").expect("value"),
            )
            .expect("still JSON");
            assert_eq!(doc["id"], "chatcmpl-1", "identical pieces are no stream");
            doc["choices"][0]["delta"]["content"]
                .as_str()
                .expect("content")
                .to_owned()
        })
        .collect();
    assert_eq!(
        contents.concat(),
        "Call [REDACTED:PHONE] or [REDACTED:EMAIL]."
    );
    let texts: Vec<&str> = out.events[pieces.len()..]
        .iter()
        .map(|e| attr::get_str(&e.attributes, "text").unwrap_or_default())
        .collect();
    assert_eq!(texts.concat(), "Call [REDACTED:PHONE] or [REDACTED:EMAIL].");
    assert_eq!(pii_types(&out.attributes), vec!["email", "phone"]);
}

#[test]
fn a_mask_that_brings_a_cue_word_closer_is_redacted_to_a_fixed_point() {
    let s = scanner(&RedactConfig::default());
    // The cue word is more than 40 bytes before the number until the email becomes a mask.
    let text = "phone: jane.doe.from.accounting@example.com or 335 843 264";
    let one_pass = s
        .apply(text, &s.find(text))
        .text
        .expect("the email is masked");
    assert_eq!(one_pass, "phone: [REDACTED:EMAIL] or 335 843 264");
    assert!(s.matches(text).unsettled);
    assert_eq!(masked(text), "phone: [REDACTED:EMAIL] or [REDACTED:PHONE]");

    // Hits away from refused candidates need one pass only.
    let plain = "mail jane@example.com or call +1 415 555 0100 about order 2024-11-03";
    let matches = s.matches(plain);
    assert_eq!(matches.hits.len(), 2);
    assert!(!matches.unsettled);
}

#[test]
fn a_cue_word_counts_in_its_own_json_string_only() {
    let s = scanner(&RedactConfig::default());
    let redacted = |doc: J| {
        let mut value = Value::StringValue(doc.to_string());
        let mut found = 0;
        let _ = value::redact_value(&s, &mut value, &mut found, 0).expect("processable");
        let Value::StringValue(out) = value else {
            panic!("still a string")
        };
        serde_json::from_str::<J>(&out).expect("valid JSON")
    };
    let apart = redacted(json!([{"content": "call"}, {"content": "335 843 264"}]));
    assert_eq!(apart[1]["content"], "335 843 264");
    let together = redacted(json!([{"content": "call 335 843 264"}]));
    assert_eq!(together[0]["content"], "call [REDACTED:PHONE]");
}

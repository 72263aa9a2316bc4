//! Custom events and scores on the reference store, against what `data::custom_events` holds;
//! `conformance` checks that every other store answers the same.

use llmscope_core::Exporter;
use llmscope_exporters::query::{
    EventQuery, Filter, GroupBy, QueryStore, SummaryQuery, score_summary,
};
use llmscope_exporters::sqlite::{SqliteConfig, SqliteStore};

use crate::data::{self, DAY_START, HOUR};

pub async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(SqliteConfig {
        path: dir.path().join("events.db"),
        ..Default::default()
    })
    .expect("sqlite");
    for batch in data::batches() {
        store.export(&batch).await.expect("export");
    }
    (dir, store)
}

fn trace_hex(i: u64) -> String {
    format!("{:016x}{}", 1000 + i / 3, "07".repeat(8))
}

pub fn event_queries() -> Vec<EventQuery> {
    let all = EventQuery {
        project: "default".into(),
        name: None,
        score_name: None,
        trace_id: None,
        service: None,
        from_ns: None,
        to_ns: None,
        limit: 100,
    };
    let at = |minute: u64| (DAY_START + 7 * HOUR + minute * 60_000_000_000) as i64;
    vec![
        all.clone(),
        EventQuery {
            name: Some("llmscope.score".into()),
            ..all.clone()
        },
        EventQuery {
            name: Some("llmscope.score".into()),
            score_name: Some("helpfulness".into()),
            ..all.clone()
        },
        EventQuery::of_trace("default", &trace_hex(0), 100),
        EventQuery {
            service: Some("agent".into()),
            limit: 2,
            ..all.clone()
        },
        EventQuery {
            from_ns: Some(at(6)),
            to_ns: Some(at(8)),
            ..all.clone()
        },
        EventQuery {
            project: "another-project".into(),
            ..all
        },
    ]
}

async fn names(store: &dyn QueryStore, q: &EventQuery) -> Vec<String> {
    let rows = store.events(q).await.expect("events");
    rows.into_iter().map(|e| e.name).collect()
}

#[tokio::test]
async fn custom_events_are_listed_newest_first_without_content_events() {
    let (_dir, store) = sqlite().await;
    let q = event_queries();
    let score = "llmscope.score".to_owned();
    assert_eq!(
        names(&store, &q[0]).await,
        [
            "deploy",
            "tool.retry",
            "user.feedback_opened",
            "llmscope.score",
            "llmscope.score",
            "llmscope.score",
            "llmscope.score",
            "llmscope.score"
        ]
    );
    assert_eq!(names(&store, &q[1]).await, vec![score.clone(); 5]);
    assert_eq!(names(&store, &q[2]).await, vec![score.clone(); 3]);
    assert_eq!(
        names(&store, &q[3]).await,
        ["tool.retry", "llmscope.score", "llmscope.score"]
    );
    assert_eq!(names(&store, &q[4]).await, ["deploy", "tool.retry"]);
    assert_eq!(
        names(&store, &q[5]).await,
        ["tool.retry", "user.feedback_opened"]
    );
    assert!(names(&store, &q[6]).await.is_empty());

    let events = store.events(&q[3]).await.expect("events");
    let retry = &events[0];
    assert_eq!(retry.attributes["attempt"], 2);
    assert_eq!(retry.span_id, None);
    assert_eq!(retry.service.as_deref(), Some("agent"));
    let commented = events[2].score().expect("a score");
    assert_eq!(commented.comment.as_deref(), Some("clear answer"));
    assert_eq!(commented.value.as_number(), Some(0.8));
    let deploy = &store.events(&q[0]).await.expect("events")[0];
    assert_eq!(deploy.body, Some(serde_json::json!("deploy finished")));
    assert_eq!(deploy.trace_id, None);
}

pub fn score_queries() -> Vec<(SummaryQuery, &'static str)> {
    let filter = Filter {
        project: "default".into(),
        ..Default::default()
    };
    let q = |filter: Filter, group_by, bucket_ns| SummaryQuery {
        filter,
        group_by,
        bucket_ns,
    };
    let mut out = Vec::new();
    for group_by in GroupBy::ALL {
        for name in ["helpfulness", "thumbs", "label", "nobody-gave-this"] {
            out.push((q(filter.clone(), group_by, None), name));
        }
    }
    let later = Filter {
        from_ns: Some((DAY_START + HOUR) as i64),
        ..filter.clone()
    };
    let claude = Filter {
        model: Some("claude-3-5-haiku".into()),
        ..filter.clone()
    };
    out.extend([
        (q(later, GroupBy::Model, None), "helpfulness"),
        (q(claude, GroupBy::Model, None), "helpfulness"),
        (q(filter, GroupBy::Model, Some(HOUR as i64)), "helpfulness"),
    ]);
    out
}

type View = Vec<(Option<i64>, Option<String>, i64, Option<f64>)>;

pub async fn score_view(store: &dyn QueryStore, q: &SummaryQuery, name: &str) -> View {
    let groups = score_summary(store, q, name).await.expect("scores");
    groups
        .into_iter()
        .map(|g| (g.bucket_start_ns, g.key, g.count, g.mean))
        .collect()
}

#[tokio::test]
async fn a_score_counts_toward_the_groups_of_the_calls_it_judges() {
    let (_dir, store) = sqlite().await;
    let q = score_queries();
    let find = |group_by: GroupBy, name: &str| {
        q.iter()
            .find(|(s, n)| s.group_by == group_by && *n == name)
            .expect("query")
    };
    let some = |s: &str| Some(s.to_owned());
    let (by_model, name) = find(GroupBy::Model, "helpfulness");
    assert_eq!(
        score_view(&store, by_model, name).await,
        vec![
            (None, some("claude-3-5-haiku"), 2, Some(0.5)),
            (None, some("gpt-4o"), 1, Some(0.8)),
            (None, some("gpt-4o-mini"), 1, Some(0.8)),
        ]
    );
    let (by_user, name) = find(GroupBy::User, "helpfulness");
    assert_eq!(
        score_view(&store, by_user, name).await,
        vec![
            (None, some("user-0"), 1, Some(0.8)),
            (None, some("user-1"), 2, Some(0.5)),
            (None, some("user-2"), 1, Some(0.8)),
        ]
    );
    let (by_service, name) = find(GroupBy::Service, "thumbs");
    assert_eq!(
        score_view(&store, by_service, name).await,
        vec![(None, some("agent"), 1, Some(1.0))]
    );
    let (by_model, name) = find(GroupBy::Model, "label");
    let labels = score_view(&store, by_model, name).await;
    assert_eq!(labels.len(), 3);
    assert!(
        labels
            .iter()
            .all(|(_, _, n, mean)| *n == 1 && mean.is_none())
    );
    let (by_model, name) = find(GroupBy::Model, "nobody-gave-this");
    assert!(score_view(&store, by_model, name).await.is_empty());

    let n = q.len();
    assert_eq!(
        score_view(&store, &q[n - 3].0, "helpfulness").await,
        vec![
            (None, some("claude-3-5-haiku"), 2, Some(0.5)),
            (None, some("gpt-4o"), 1, Some(0.8)),
        ],
        "calls before `from` are not judged"
    );
    assert_eq!(
        score_view(&store, &q[n - 2].0, "helpfulness").await,
        vec![(None, some("claude-3-5-haiku"), 2, Some(0.5))]
    );
    let hour = |h: u64| Some((DAY_START + h * HOUR) as i64);
    assert_eq!(
        score_view(&store, &q[n - 1].0, "helpfulness").await,
        vec![
            (hour(0), some("gpt-4o-mini"), 1, Some(0.8)),
            (hour(1), some("claude-3-5-haiku"), 2, Some(0.5)),
            (hour(2), some("gpt-4o"), 1, Some(0.8)),
        ]
    );
}

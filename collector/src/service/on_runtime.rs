//! A query store whose calls run on the main runtime. The APIs serve on their own runtime;
//! without this, a store's pooled connections (PostgreSQL's, ClickHouse's HTTP client) opened by
//! a query would do their I/O on the API runtime, and the exporters writing through the same
//! pool would wait for the API's thread whenever subscribers keep it busy.

use std::future::Future;
use std::sync::Arc;

use llmscope_exporters::query::{
    AnomalyQuery, BoxFuture, EventQuery, EventRow, QueryError, QueryStore, Result, ScoredCall,
    SummaryGroup, SummaryQuery, TracePage, TraceQuery,
};
use llmscope_exporters::record::{AnomalyRow, SpanRecord};
use tokio::runtime::Handle;

pub struct OnRuntime {
    inner: Arc<dyn QueryStore>,
    main: Handle,
}

impl OnRuntime {
    pub fn wrap(inner: Arc<dyn QueryStore>, main: Handle) -> Arc<dyn QueryStore> {
        Arc::new(Self { inner, main })
    }

    fn run<'a, T, F>(&self, call: impl FnOnce(Arc<dyn QueryStore>) -> F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let task = self.main.spawn(call(Arc::clone(&self.inner)));
        Box::pin(async move {
            task.await
                .map_err(|e| QueryError(format!("query task failed: {e}")))?
        })
    }
}

impl QueryStore for OnRuntime {
    fn traces<'a>(&'a self, query: &'a TraceQuery) -> BoxFuture<'a, Result<TracePage>> {
        let query = query.clone();
        self.run(|s| async move { s.traces(&query).await })
    }

    fn trace<'a>(
        &'a self,
        project: &'a str,
        trace_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<SpanRecord>>>> {
        let (project, trace_id) = (project.to_owned(), trace_id.to_owned());
        self.run(|s| async move { s.trace(&project, &trace_id).await })
    }

    fn summary<'a>(&'a self, query: &'a SummaryQuery) -> BoxFuture<'a, Result<Vec<SummaryGroup>>> {
        let query = query.clone();
        self.run(|s| async move { s.summary(&query).await })
    }

    fn anomalies<'a>(&'a self, query: &'a AnomalyQuery) -> BoxFuture<'a, Result<Vec<AnomalyRow>>> {
        let query = query.clone();
        self.run(|s| async move { s.anomalies(&query).await })
    }

    fn events<'a>(&'a self, query: &'a EventQuery) -> BoxFuture<'a, Result<Vec<EventRow>>> {
        let query = query.clone();
        self.run(|s| async move { s.events(&query).await })
    }

    fn scored_calls<'a>(
        &'a self,
        query: &'a SummaryQuery,
        score: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ScoredCall>>> {
        let (query, score) = (query.clone(), score.to_owned());
        self.run(|s| async move { s.scored_calls(&query, &score).await })
    }

    fn ready(&self) -> BoxFuture<'_, Result<()>> {
        self.run(|s| async move { s.ready().await })
    }
}

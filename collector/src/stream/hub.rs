//! The hub: subscribers by project, each with its own bounded queue, and a short replay buffer
//! per watched project.
//!
//! Guarantees:
//! - Publishing never waits for a subscriber: a full queue loses its oldest message and counts
//!   it, and the subscriber is told how many it lost before its next message.
//! - A subscriber sees only its project's messages that pass its filter.
//! - Message ids are `<epoch>-<sequence>`, increasing within a process; a reconnect naming an id
//!   still in the replay buffer resumes right after it, otherwise it is told what was missed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::StreamConfig;
use super::message::{Filter, Message};
use crate::telemetry::{Counter, Telemetry, metrics};

/// A project's replay buffer is dropped after this long without subscribers.
const REPLAY_IDLE: Duration = Duration::from_secs(120);

/// What a subscriber reads next.
#[derive(Debug, Clone)]
pub enum Item {
    Message(String, Arc<Message>),
    /// This many messages were lost (`None`: an unknown number, e.g. across a restart).
    Dropped(Option<u64>, &'static str),
}

struct Queue {
    items: VecDeque<(u64, Arc<Message>)>,
    dropped: u64,
    /// Said once, first: what a resumed connection missed.
    missed: Option<(Option<u64>, &'static str)>,
}

struct Subscriber {
    queue: Mutex<Queue>,
    notify: Notify,
    capacity: usize,
}

/// The subscribers of one project that share a filter: each message is checked once per
/// group, however many subscribe with that filter.
/// A group whose last member left is kept for `REPLAY_IDLE`, so what a reconnect with that
/// filter would resume is still built and kept.
struct Group {
    filter: Filter,
    members: Vec<Arc<Subscriber>>,
    /// Since when it has had no member.
    idle_since: Option<Instant>,
}

impl Group {
    fn live(&self) -> bool {
        !self.members.is_empty() || self.idle_since.is_some_and(|t| t.elapsed() < REPLAY_IDLE)
    }
}

struct Replay {
    items: VecDeque<(u64, Arc<Message>)>,
    idle_since: Option<Instant>,
}

impl Replay {
    /// Watched now, or within `REPLAY_IDLE`.
    fn fresh(&self) -> bool {
        self.idle_since.is_none_or(|t| t.elapsed() < REPLAY_IDLE)
    }
}

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many stream subscribers on this collector ({0}); try again later")]
    Total(usize),
    #[error("too many stream subscribers for this project ({0}); try again later")]
    Project(usize),
}

pub struct Hub {
    config: StreamConfig,
    /// Random per process: ids from another process or another collector are told apart.
    pub epoch: String,
    sequence: AtomicU64,
    subscribers: RwLock<HashMap<String, Vec<Group>>>,
    total: AtomicUsize,
    replay: Mutex<HashMap<String, Replay>>,
    sent: Counter,
    dropped: Counter,
    /// Notified when a project gains its first subscriber here (the fan-out says so at once).
    pub interest: Notify,
}

impl Hub {
    pub fn new(config: StreamConfig, telemetry: &Telemetry) -> Arc<Self> {
        let mut epoch = [0u8; 4];
        let _ = getrandom::fill(&mut epoch);
        let hub = Arc::new(Self {
            config,
            epoch: hex::encode(epoch),
            sequence: AtomicU64::new(0),
            subscribers: RwLock::default(),
            total: AtomicUsize::new(0),
            replay: Mutex::default(),
            sent: telemetry.counter(&metrics::STREAM_MESSAGES, &[("result", "queued")]),
            dropped: telemetry.counter(
                &metrics::STREAM_MESSAGES,
                &[("result", "dropped_slow_subscriber")],
            ),
            interest: Notify::new(),
        });
        let weak = Arc::downgrade(&hub);
        telemetry.gauge(&metrics::STREAM_SUBSCRIBERS, &[], move || {
            weak.upgrade()
                .map_or(0, |h| h.total.load(Ordering::Relaxed) as u64)
        });
        hub
    }

    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Whether anyone here watches `project`, or did lately (its replay is kept for
    /// reconnects): messages for it are worth building.
    pub fn watched(&self, project: &str) -> bool {
        read(&self.subscribers)
            .get(project)
            .is_some_and(|groups| groups.iter().any(Group::live))
    }

    /// Projects watched here, or lately.
    pub fn watched_projects(&self) -> Vec<String> {
        let mut subscribers = write(&self.subscribers);
        subscribers.retain(|_, groups| {
            groups.retain(Group::live);
            !groups.is_empty()
        });
        subscribers.keys().cloned().collect()
    }

    /// Delivers messages to this collector's subscribers of `project`.
    pub fn publish(&self, project: &str, messages: Vec<Arc<Message>>) {
        if messages.is_empty() {
            return;
        }
        let first = self
            .sequence
            .fetch_add(messages.len() as u64, Ordering::Relaxed)
            + 1;
        let numbered: Vec<(u64, Arc<Message>)> = (first..).zip(messages).collect();
        {
            let subscribed = self.watched(project);
            let mut replays = lock(&self.replay);
            let keep = match replays.get(project) {
                Some(r) => r.fresh(),
                None => subscribed,
            };
            if keep {
                let r = replays.entry(project.to_owned()).or_insert_with(|| Replay {
                    items: VecDeque::new(),
                    idle_since: None,
                });
                for item in &numbered {
                    if r.items.len() == self.config.replay {
                        r.items.pop_front();
                    }
                    if self.config.replay > 0 {
                        r.items.push_back(item.clone());
                    }
                }
            } else {
                replays.remove(project);
            }
        }
        let subscribers = read(&self.subscribers);
        let Some(groups) = subscribers.get(project) else {
            return;
        };
        for group in groups.iter().filter(|g| !g.members.is_empty()) {
            let matching: Vec<&(u64, Arc<Message>)> = numbered
                .iter()
                .filter(|(_, m)| group.filter.matches(m))
                .collect();
            if matching.is_empty() {
                continue;
            }
            for s in &group.members {
                {
                    let mut q = lock(&s.queue);
                    for (id, m) in &matching {
                        if q.items.len() >= s.capacity {
                            q.items.pop_front();
                            q.dropped += 1;
                            self.dropped.add(1);
                        }
                        q.items.push_back((*id, Arc::clone(m)));
                    }
                }
                self.sent.add(matching.len() as u64);
                s.notify.notify_one();
            }
        }
    }

    /// Whether a subscriber here would take `message` (so it is worth building in full).
    pub fn wants(&self, project: &str, message: &Message) -> bool {
        read(&self.subscribers)
            .get(project)
            .is_some_and(|groups| groups.iter().any(|g| g.live() && g.filter.matches(message)))
    }

    /// A new subscriber of `project`, resuming after `last_event_id` when the replay holds it.
    pub fn subscribe(
        self: &Arc<Self>,
        project: &str,
        filter: Filter,
        last_event_id: Option<&str>,
    ) -> Result<Subscription, Refused> {
        let mut subscribers = write(&self.subscribers);
        let total = self.total.load(Ordering::Relaxed);
        if total >= self.config.max_subscribers {
            return Err(Refused::Total(self.config.max_subscribers));
        }
        let groups = subscribers.entry(project.to_owned()).or_default();
        let members: usize = groups.iter().map(|g| g.members.len()).sum();
        if members >= self.config.max_subscribers_per_project {
            return Err(Refused::Project(self.config.max_subscribers_per_project));
        }
        let mut queue = Queue {
            items: VecDeque::new(),
            dropped: 0,
            missed: None,
        };
        if let Some(last) = last_event_id {
            self.resume(project, &filter, last, &mut queue);
        }
        let subscriber = Arc::new(Subscriber {
            queue: Mutex::new(queue),
            notify: Notify::new(),
            capacity: self.config.buffer.max(1),
        });
        if !groups.iter().any(Group::live) {
            self.interest.notify_one();
        }
        groups.retain(Group::live);
        match groups.iter_mut().find(|g| g.filter == filter) {
            Some(g) => {
                g.members.push(Arc::clone(&subscriber));
                g.idle_since = None;
            }
            None => groups.push(Group {
                filter,
                members: vec![Arc::clone(&subscriber)],
                idle_since: None,
            }),
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = lock(&self.replay).get_mut(project) {
            r.idle_since = None;
        }
        Ok(Subscription {
            hub: Arc::clone(self),
            project: project.to_owned(),
            subscriber,
        })
    }

    fn resume(&self, project: &str, filter: &Filter, last: &str, queue: &mut Queue) {
        let same_epoch = last
            .split_once('-')
            .filter(|(epoch, _)| *epoch == self.epoch)
            .and_then(|(_, seq)| seq.parse::<u64>().ok());
        let Some(after) = same_epoch else {
            queue.missed = Some((None, "unknown_event_id"));
            return;
        };
        let replays = lock(&self.replay);
        let items = replays.get(project).map(|r| &r.items);
        let oldest = items.and_then(|i| i.front()).map(|(id, _)| *id);
        match oldest {
            Some(oldest) if oldest <= after + 1 => {}
            Some(oldest) => queue.missed = Some((Some(oldest - after - 1), "replay_exceeded")),
            None => {
                let now = self.sequence.load(Ordering::Relaxed);
                if now > after {
                    queue.missed = Some((Some(now - after), "replay_exceeded"));
                }
            }
        }
        for (id, m) in items.into_iter().flatten() {
            if *id > after && filter.matches(m) {
                queue.items.push_back((*id, Arc::clone(m)));
            }
        }
    }

    fn leave(&self, project: &str, subscriber: &Arc<Subscriber>) {
        let mut subscribers = write(&self.subscribers);
        let Some(groups) = subscribers.get_mut(project) else {
            return;
        };
        for g in groups.iter_mut() {
            let before = g.members.len();
            g.members.retain(|s| !Arc::ptr_eq(s, subscriber));
            if g.members.len() < before {
                self.total.fetch_sub(1, Ordering::Relaxed);
                if g.members.is_empty() {
                    g.idle_since = Some(Instant::now());
                }
            }
        }
        groups.retain(Group::live);
        if groups.iter().all(|g| g.members.is_empty())
            && let Some(r) = lock(&self.replay).get_mut(project)
        {
            r.idle_since = Some(Instant::now());
        }
        if groups.is_empty() {
            subscribers.remove(project);
        }
    }

    pub fn id(&self, sequence: u64) -> String {
        format!("{}-{sequence}", self.epoch)
    }
}

/// One subscriber's end; leaving the hub when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    project: String,
    subscriber: Arc<Subscriber>,
}

impl Subscription {
    /// The next item, waiting for one.
    pub async fn next(&self) -> Item {
        loop {
            if let Some(item) = self.try_next() {
                return item;
            }
            self.subscriber.notify.notified().await;
        }
    }

    pub fn try_next(&self) -> Option<Item> {
        let mut q = lock(&self.subscriber.queue);
        if let Some((count, reason)) = q.missed.take() {
            return Some(Item::Dropped(count, reason));
        }
        if q.dropped > 0 {
            let n = std::mem::take(&mut q.dropped);
            return Some(Item::Dropped(Some(n), "slow_subscriber"));
        }
        q.items
            .pop_front()
            .map(|(id, m)| Item::Message(self.hub.id(id), m))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.leave(&self.project, &self.subscriber);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::message::Kind;

    fn hub(buffer: usize, replay: usize, per_project: usize) -> Arc<Hub> {
        let config = StreamConfig {
            buffer,
            replay,
            max_subscribers_per_project: per_project,
            ..Default::default()
        };
        Hub::new(config, &Telemetry::default())
    }

    fn spans(n: usize) -> Vec<Arc<Message>> {
        (0..n)
            .map(|i| {
                Arc::new(Message {
                    kind: Kind::Span,
                    llm_call: true,
                    error: false,
                    keys: Default::default(),
                    json: i.to_string().into(),
                })
            })
            .collect()
    }

    fn drain(s: &Subscription) -> Vec<String> {
        std::iter::from_fn(|| s.try_next())
            .map(|item| match item {
                Item::Message(_, m) => m.json.to_string(),
                Item::Dropped(n, why) => format!("dropped {n:?} {why}"),
            })
            .collect()
    }

    #[test]
    fn a_slow_subscriber_loses_the_oldest_and_is_told_first() {
        let h = hub(2, 0, 10);
        let s = h
            .subscribe("p", Filter::default_llm_calls(), None)
            .expect("in");
        h.publish("p", spans(5));
        h.publish("other", spans(1));
        assert_eq!(drain(&s), ["dropped Some(3) slow_subscriber", "3", "4"]);
    }

    #[test]
    fn a_reconnect_resumes_from_the_replay_or_says_how_much_it_missed() {
        let h = hub(100, 3, 10);
        let first = h
            .subscribe("p", Filter::default_llm_calls(), None)
            .expect("in");
        h.publish("p", spans(10)); // ids 1..=10; the replay keeps 8, 9, 10
        drop(first);
        let resumed = h
            .subscribe("p", Filter::default_llm_calls(), Some(&h.id(8)))
            .expect("in");
        assert_eq!(drain(&resumed), ["8", "9"]);
        let late = h
            .subscribe("p", Filter::default_llm_calls(), Some(&h.id(2)))
            .expect("in");
        assert_eq!(
            drain(&late),
            ["dropped Some(5) replay_exceeded", "7", "8", "9"]
        );
        let elsewhere = h
            .subscribe("p", Filter::default_llm_calls(), Some("0000-1"))
            .expect("in");
        assert_eq!(drain(&elsewhere), ["dropped None unknown_event_id"]);
    }

    #[test]
    fn limits_hold_and_leaving_frees_a_place() {
        let h = hub(10, 10, 1);
        let s = h
            .subscribe("p", Filter::default_llm_calls(), None)
            .expect("in");
        assert_eq!(
            h.subscribe("p", Filter::default_llm_calls(), None).err(),
            Some(Refused::Project(1))
        );
        assert!(h.subscribe("q", Filter::default_llm_calls(), None).is_ok());
        h.publish("p", spans(1));
        drop(s);
        assert!(h.subscribe("p", Filter::default_llm_calls(), None).is_ok());
        assert!(h.watched("p"), "watched lately: its replay is kept");
        assert!(!h.watched("never"));
    }
}

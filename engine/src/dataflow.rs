//! The dataflow runtime: timely workers that tail the log and maintain every view.
//!
//! Worker 0 reads the durable log in chunks, decodes each event once, and feeds a whole chunk
//! at one timestamp: the seq of the chunk's last event. After a checkpoint it reads only the
//! log past it, having fed the feed views' stored inputs in one round first. The other
//! workers close their inputs and receive their share of the data through differential's
//! exchange by key. One timestamp
//! per chunk (not per event) lets every reduce run once per chunk and key, which is what keeps
//! the views cheap under load; and a frontier past `t` still means exactly "every event up to
//! seq `t` is reflected", which is the view's watermark. Idle workers park and are unparked
//! when the log head moves (or when data reaches them).

use crate::background::Pace;
use crate::tailer::{FedLog, Tailer};
use crate::views::feed_inputs::FeedFact;
use crate::views::inputs::{Collections, MessageRef, NamedIn, Sinks};
use crate::views::{Resumed, Views};
use differential_dataflow::input::InputSession;
use girok_schemas::{Payload, RoomId, Seq, UserId, decode_event};
use girok_storage::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use timely::communication::WorkerGuards;
use timely::dataflow::ProbeHandle;

/// Log entries read per step.
const CHUNK: usize = 4096;
/// Longest a worker parks before looking at the log again without being woken.
const PARK: Duration = Duration::from_millis(250);
/// While serving, a new chunk enters at most this often. Every round costs the same fixed
/// progress-tracking work whatever it carries: at a few thousand events/s one event per round
/// took a third of a core, and gathering a few milliseconds of events cuts that several times
/// for at most this much more view latency (replay feeds without waiting).
const MIN_ROUND: Duration = Duration::from_millis(5);
/// Under load the gap between rounds grows with the rounds' own length, so that the views
/// take about a twentieth of the time the rounds span, up to 20 ms (the most a view lags the
/// log because of it): with every view scheduled on each round (about half a millisecond of
/// CPU on this kind of machine), 200 rounds a second took a ninth of a core at any rate from
/// 2,000 to 10,000 messages/s, on the core that delivers them.
const ROUNDS: Pace = Pace {
    share: 20,
    min: MIN_ROUND,
    max: Duration::from_millis(20),
};

/// The differential collections, one per kind of fact in the log.
struct Inputs {
    /// `(room, (seq, time))` per live message.
    messages: InputSession<Seq, (RoomId, MessageRef), isize>,
    /// `(message seq, latest edit seq)` per edited live message.
    edits: InputSession<Seq, (Seq, Seq), isize>,
    /// `(room, user, (joined seq, time))` per current membership.
    members: InputSession<Seq, (RoomId, UserId, MessageRef), isize>,
    /// `(room, user, read up to)` per reader's current marker.
    reads: InputSession<Seq, (RoomId, UserId, Seq), isize>,
    /// `(author, post seq)` per live post.
    posts: InputSession<Seq, (UserId, Seq), isize>,
    /// `(post seq, edit seq)` per post edit.
    post_edits: InputSession<Seq, (Seq, Seq), isize>,
    /// `(post seq, (liker, like seq, post author))` per current like.
    likes: InputSession<Seq, (Seq, (UserId, Seq, UserId)), isize>,
    /// `(post seq, (comment seq, commenter, post author))` per live comment.
    comments: InputSession<Seq, (Seq, (Seq, UserId, UserId)), isize>,
    /// `(follower, followee, follow seq)` per current follow.
    follows: InputSession<Seq, (UserId, UserId, Seq), isize>,
    /// `(post or comment seq, (version seq, named users))` per version that names someone,
    /// and per post edit.
    mentions: InputSession<Seq, (Seq, NamedIn), isize>,
    /// `(user, matched seq)` for both users of every match.
    matches: InputSession<Seq, (UserId, Seq), isize>,
    /// The current value behind members and reads, so that a change can retract
    /// it: the log says "joined", "left", "read up to", not what they replace. Only worker 0
    /// feeds, in log order, so this is exact (and replay rebuilds it the same way).
    joined: HashMap<(RoomId, UserId), MessageRef>,
    read: HashMap<(RoomId, UserId), Seq>,
    /// The latest edit of each edited live message: a new edit retracts it, and so does the
    /// message's deletion (so the views need not join every message with its liveness).
    edited: HashMap<Seq, Seq>,
    /// The feed facts fed in this chunk, for the view store (`feed_inputs.rs`).
    facts: Vec<(FeedFact, isize)>,
}

impl Inputs {
    /// Feeds one event at timestamp `time` (its chunk's last seq).
    fn feed(&mut self, seq: Seq, time: Seq, bytes: &[u8], views: &Views) {
        let event = match decode_event(bytes) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(seq, %error, "log entry skipped by the views");
                views.note_undecodable();
                return;
            }
        };
        // Joins and leaves, whichever event makes them (a match's opens its room).
        for membership in event.memberships() {
            let key = (membership.room, membership.user);
            if membership.joined {
                let joined = (seq, event.commit_time_ms);
                if let Some(previous) = self.joined.insert(key, joined) {
                    self.members.update_at((key.0, key.1, previous), time, -1);
                }
                self.members.update_at((key.0, key.1, joined), time, 1);
            } else if let Some(joined) = self.joined.remove(&key) {
                self.members.update_at((key.0, key.1, joined), time, -1);
            }
        }
        match event.payload {
            Payload::MessageSent { room, .. } => {
                self.messages
                    .update_at((room, (seq, event.commit_time_ms)), time, 1);
                // Sending marks the room read up to your own message.
                if let Some(sender) = event.actor {
                    self.move_marker(room, sender, seq, time);
                }
            }
            Payload::MessagesRead { room, up_to } => {
                if let Some(reader) = event.actor {
                    self.move_marker(room, reader, up_to, time);
                }
            }
            Payload::MessageDeleted {
                room,
                message_seq,
                message_time_ms,
                ..
            } => {
                self.messages
                    .update_at((room, (message_seq, message_time_ms)), time, -1);
                if let Some(edit) = self.edited.remove(&message_seq) {
                    self.edits.update_at((message_seq, edit), time, -1);
                }
            }
            Payload::MessageEdited { message_seq, .. } => {
                if let Some(previous) = self.edited.insert(message_seq, seq) {
                    self.edits.update_at((message_seq, previous), time, -1);
                }
                self.edits.update_at((message_seq, seq), time, 1);
            }
            Payload::MemberJoined { .. } | Payload::MemberLeft { .. } => {}
            // Not stored as a feed fact: the notifications it makes are a map's output, in
            // the view store, and never retracted (as follows, `feed_inputs.rs`).
            Payload::Matched { user_a, user_b, .. } => {
                self.matches.update_at((user_a, seq), time, 1);
                self.matches.update_at((user_b, seq), time, 1);
            }
            _ => {
                if let Some(actor) = event.actor {
                    self.feed_social(actor, seq, time, event.payload);
                }
            }
        }
    }

    /// Feeds a post, like, comment or follow by `actor`. (Accounts and sessions feed no view:
    /// the sequencer's write model has them.)
    fn feed_social(&mut self, actor: UserId, seq: Seq, time: Seq, payload: Payload) {
        let (fact, diff) = match payload {
            Payload::PostCreated { mentions, .. } => {
                self.record_first_mentions(seq, mentions, time);
                (FeedFact::Post { author: actor, seq }, 1)
            }
            Payload::PostEdited {
                post_seq, mentions, ..
            } => {
                let mention = FeedFact::Mention {
                    target: post_seq,
                    version: seq,
                    named: mentions,
                };
                self.record(mention, time, 1);
                let edit = FeedFact::PostEdit {
                    post: post_seq,
                    edit: seq,
                };
                (edit, 1)
            }
            Payload::PostDeleted { post_seq, .. } => (
                FeedFact::Post {
                    author: actor,
                    seq: post_seq,
                },
                -1,
            ),
            Payload::CommentAdded {
                post_seq,
                post_author,
                mentions,
                ..
            } => {
                self.record_first_mentions(seq, mentions, time);
                let comment = FeedFact::Comment {
                    post: post_seq,
                    comment: seq,
                    commenter: actor,
                    author: post_author,
                };
                (comment, 1)
            }
            Payload::CommentDeleted {
                comment_seq,
                post_seq,
                post_author,
                ..
            } => {
                let comment = FeedFact::Comment {
                    post: post_seq,
                    comment: comment_seq,
                    commenter: actor,
                    author: post_author,
                };
                (comment, -1)
            }
            Payload::PostLiked {
                post_seq,
                post_author,
                ..
            } => {
                let like = FeedFact::Like {
                    post: post_seq,
                    liker: actor,
                    like: seq,
                    author: post_author,
                };
                (like, 1)
            }
            Payload::PostUnliked {
                post_seq,
                post_author,
                like_seq,
                ..
            } => {
                let like = FeedFact::Like {
                    post: post_seq,
                    liker: actor,
                    like: like_seq,
                    author: post_author,
                };
                (like, -1)
            }
            Payload::UserFollowed { user } => {
                let follow = FeedFact::Follow {
                    follower: actor,
                    followee: user,
                    seq,
                };
                (follow, 1)
            }
            Payload::UserUnfollowed { user, follow_seq } => {
                let follow = FeedFact::Follow {
                    follower: actor,
                    followee: user,
                    seq: follow_seq,
                };
                (follow, -1)
            }
            _ => return,
        };
        self.record(fact, time, diff);
    }

    /// The users a new post or comment (`seq`) names, if any: its first version.
    fn record_first_mentions(&mut self, seq: Seq, named: Vec<UserId>, time: Seq) {
        if !named.is_empty() {
            let mention = FeedFact::Mention {
                target: seq,
                version: seq,
                named,
            };
            self.record(mention, time, 1);
        }
    }

    /// Feeds a feed fact and notes it for the view store (all but follows).
    fn record(&mut self, fact: FeedFact, time: Seq, diff: isize) {
        // Follows are not stored: every view over them is a map whose output is
        // (`feed_inputs.rs`).
        if !matches!(fact, FeedFact::Follow { .. }) {
            self.facts.push((fact.clone(), diff));
        }
        self.feed_fact(fact, time, diff);
    }

    /// Feeds a feed fact (or its retraction) to its input collection.
    fn feed_fact(&mut self, fact: FeedFact, time: Seq, diff: isize) {
        match fact {
            FeedFact::Post { author, seq } => self.posts.update_at((author, seq), time, diff),
            FeedFact::PostEdit { post, edit } => {
                self.post_edits.update_at((post, edit), time, diff)
            }
            FeedFact::Like {
                post,
                liker,
                like,
                author,
            } => self
                .likes
                .update_at((post, (liker, like, author)), time, diff),
            FeedFact::Comment {
                post,
                comment,
                commenter,
                author,
            } => self
                .comments
                .update_at((post, (comment, commenter, author)), time, diff),
            FeedFact::Follow {
                follower,
                followee,
                seq,
            } => self
                .follows
                .update_at((follower, followee, seq), time, diff),
            FeedFact::Mention {
                target,
                version,
                named,
            } => self
                .mentions
                .update_at((target, (version, named)), time, diff),
        }
    }

    /// Moves a reader's marker forward to `up_to` (never back).
    fn move_marker(&mut self, room: RoomId, user: UserId, up_to: Seq, time: Seq) {
        let previous = self.read.get(&(room, user)).copied();
        if previous.is_some_and(|p| p >= up_to) {
            return;
        }
        if let Some(previous) = previous {
            self.reads.update_at((room, user, previous), time, -1);
        }
        self.reads.update_at((room, user, up_to), time, 1);
        self.read.insert((room, user), up_to);
    }

    /// The sessions as collections in `scope`, for the views to build on.
    fn collections<'s>(&mut self, scope: timely::dataflow::Scope<'s, Seq>) -> Collections<'s> {
        Collections {
            messages: self.messages.to_collection(scope),
            edits: self.edits.to_collection(scope),
            members: self.members.to_collection(scope),
            reads: self.reads.to_collection(scope),
            posts: self.posts.to_collection(scope),
            post_edits: self.post_edits.to_collection(scope),
            likes: self.likes.to_collection(scope),
            comments: self.comments.to_collection(scope),
            follows: self.follows.to_collection(scope),
            mentions: self.mentions.to_collection(scope),
            matches: self.matches.to_collection(scope),
        }
    }

    fn advance_to(&mut self, next: Seq) {
        crate::advance_inputs!(self, next;
            messages, edits, members, reads, posts, post_edits, likes, comments, follows, mentions,
            matches);
    }
}

/// Running workers.
pub struct Dataflow {
    stop: Arc<AtomicBool>,
    store: Arc<Store>,
    guards: Option<WorkerGuards<()>>,
}

/// How the dataflow runs.
#[derive(Clone, Copy, Debug)]
pub struct DataflowConfig {
    /// Timely worker threads.
    pub workers: usize,
}

/// Starts timely workers over `store`, maintaining `views` (which hold what `resumed` says
/// was loaded). With `until`, the workers stop by themselves once every view reflects the log
/// up to that seq (replay).
pub fn start(
    store: Arc<Store>,
    views: Arc<Views>,
    config: DataflowConfig,
    until: Option<Seq>,
    resumed: Resumed,
) -> crate::Result<Dataflow> {
    let workers = config.workers;
    let stop = Arc::new(AtomicBool::new(false));
    let drain = Arc::new(Drain::default());
    let config = timely::Config::process(workers.max(1));
    let guards = {
        let (store, stop) = (store.clone(), stop.clone());
        timely::execute(config, move |worker| {
            let context = WorkerContext {
                store: &store,
                views: &views,
                stop: &stop,
                drain: &drain,
            };
            run_worker(worker, context, until, resumed)
        })
        .map_err(|e| crate::Error::Internal(format!("cannot start dataflow workers: {e}")))?
    };
    Ok(Dataflow {
        stop,
        store,
        guards: Some(guards),
    })
}

impl Dataflow {
    /// Stops the workers and waits for them.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        self.store.head().unpark_all();
        self.join();
    }

    /// Waits for workers that stop by themselves (`until`).
    pub fn join(&mut self) {
        if let Some(guards) = self.guards.take() {
            for result in guards.join() {
                if let Err(error) = result {
                    tracing::error!(%error, "dataflow worker failed");
                }
            }
        }
    }
}

impl Drop for Dataflow {
    fn drop(&mut self) {
        if self.guards.is_some() {
            self.stop.store(true, Ordering::Release);
            self.store.head().unpark_all();
            self.join();
        }
    }
}

/// What every worker shares.
struct WorkerContext<'a> {
    store: &'a Arc<Store>,
    views: &'a Arc<Views>,
    stop: &'a AtomicBool,
    drain: &'a Drain,
}

fn run_worker(
    worker: &mut timely::worker::Worker,
    context: WorkerContext<'_>,
    until: Option<Seq>,
    resumed: Resumed,
) {
    let WorkerContext {
        store,
        views,
        stop,
        drain,
    } = context;
    let index = worker.index();
    store.head().unpark_on_advance(std::thread::current());
    if until.is_none() {
        // Serving: writes and live deliveries come first (replay has the machine to itself).
        crate::background::lower_priority_somewhat("dataflow worker");
    }

    let mut inputs = Inputs {
        messages: InputSession::new(),
        edits: InputSession::new(),
        members: InputSession::new(),
        reads: InputSession::new(),
        posts: InputSession::new(),
        post_edits: InputSession::new(),
        likes: InputSession::new(),
        comments: InputSession::new(),
        follows: InputSession::new(),
        mentions: InputSession::new(),
        matches: InputSession::new(),
        joined: HashMap::new(),
        read: HashMap::new(),
        edited: HashMap::new(),
        facts: Vec::new(),
    };
    if index == 0 && resumed.seq > 0 {
        // The feeder's current values are those the loaded chat views hold.
        inputs.joined = (views.memberships.all().into_iter())
            .map(|(room, user, joined)| ((room, user), joined))
            .collect();
        inputs.read = (views.receipts.all().into_iter())
            .map(|(room, user, up_to)| ((room, user), up_to))
            .collect();
        inputs.edited = views.room_history.latest_edits().into_iter().collect();
    }
    let probe = ProbeHandle::new();
    worker.dataflow::<Seq, _, _>(|scope| {
        let collections = inputs.collections(scope);
        let sinks = Sinks {
            probe: &probe,
            views,
        };
        crate::views::build(&collections, &sinks);
    });

    // Only worker 0 reads the log; the others close their inputs (dropping a session closes
    // it), so the frontier follows worker 0 alone.
    let mut inputs = (index == 0).then_some(inputs);
    // Everything up to the checkpoint is in the view store: the log is read after it.
    let mut tail = Tailer::new(FedLog::new(store.clone()), resumed.seq + 1, until, "views");
    if let Some(feeding) = inputs.as_mut() {
        if resumed.seq > 0 {
            restore_feed_inputs(feeding, resumed.seq, views);
        }
        // Nothing else precedes the first seq to read: the frontier can move there at once.
        feeding.advance_to(tail.position());
    }
    let mut last_fed = Instant::now();
    // Whether a round is in flight (fed at `last_fed`, not yet through every view), and how
    // long the last one took.
    let mut in_round = false;
    let mut last_round = Duration::ZERO;
    let mut persist_errors = ErrorLog::default();
    while !stop.load(Ordering::Acquire) {
        let next = tail.position();
        let limit = tail.limit();
        let mut more_pending = false;
        // Adaptive batching: a new chunk enters only once the previous one is fully through
        // every view. Under load, the log grows meanwhile, so chunks get larger and rounds
        // fewer (each round has a fixed cost); when idle, a single event is a round of its own.
        let previous_done = !probe.less_than(&next);
        let wait = match until {
            None => ROUNDS.gap(last_round).saturating_sub(last_fed.elapsed()),
            Some(_) => Duration::ZERO,
        };
        // Worker 0 has events to feed and nothing in flight.
        let due = inputs.is_some() && next <= limit && previous_done;
        if let Some(inputs) = inputs.as_mut()
            && due
            && wait.is_zero()
        {
            last_fed = Instant::now();
            in_round = true;
            match tail.next_chunk(CHUNK) {
                Ok(entries) => {
                    if let Some(&(last, _)) = entries.last() {
                        for (seq, bytes) in &entries {
                            inputs.feed(*seq, last, bytes, views);
                        }
                        if !inputs.facts.is_empty() {
                            views.feed_inputs.add(std::mem::take(&mut inputs.facts));
                        }
                        inputs.advance_to(tail.position());
                    }
                    more_pending = tail.position() <= limit;
                }
                Err(retry) => std::thread::sleep(retry.after),
            }
        }
        if more_pending && previous_done {
            worker.step();
        } else if due && !wait.is_zero() {
            // Events wait for the next round: gather them a little longer. Nothing is in
            // flight (the last round is through), so there is nothing to step: sleep through
            // the gap rather than park, which every durable write would cut short (a wake-up
            // and a step of the dataflow each, a thousand times a second at 2,000 messages/s).
            std::thread::sleep(wait);
        } else {
            worker.step_or_park(Some(PARK));
        }
        if index == 0 {
            let fed = tail.position();
            if !probe.less_than(&fed) {
                if std::mem::take(&mut in_round) {
                    last_round = last_fed.elapsed();
                }
                // Everything fed is through every view and nothing newer was fed: the views'
                // rows are exactly those up to `fed - 1`.
                if let Err(error) = views.persist(fed.saturating_sub(1), false) {
                    persist_errors.note(&error);
                }
            }
            publish(&probe, views);
            drain.fed.store(fed, Ordering::Release);
        }
        if let Some(target) = until
            && views.watermark.get() >= target.min(store.head().get())
        {
            break;
        }
    }
    if index == 0 {
        drain.fed.store(tail.position(), Ordering::Release);
        drain.done_feeding.store(true, Ordering::Release);
    }
    finish(worker, &probe, views, drain);
    store.head().forget_thread(std::thread::current().id());
}

/// Feeds the feed views' inputs as `Views::resume` loaded them from the view store (checked
/// against the checkpoint `seq`), in one round at that seq: the stateful feed views (joins,
/// reduces) are rebuilt from the stored facts instead of the history.
fn restore_feed_inputs(inputs: &mut Inputs, seq: Seq, views: &Views) {
    let started = Instant::now();
    let facts = views.feed_inputs.take_loaded();
    let restored = facts.len();
    for fact in facts {
        inputs.feed_fact(fact, seq, 1);
    }
    tracing::info!(
        seq,
        facts = restored,
        feed_ms = started.elapsed().as_millis(),
        "feed views' inputs restored"
    );
}

/// Longest the workers take, once stopped, to finish the round in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// What the workers share to finish together: how far worker 0 fed, and whether it stopped.
#[derive(Default)]
struct Drain {
    fed: AtomicU64,
    done_feeding: AtomicBool,
}

/// Once stopped: every worker steps until the round in flight is through (the others' share of
/// it included), then worker 0 writes the last rows with a checkpoint, so that the
/// next start resumes from here. Given up after [`DRAIN`]: the next start then resumes from
/// the last checkpoint and replays the log after it.
fn finish(
    worker: &mut timely::worker::Worker,
    probe: &ProbeHandle<Seq>,
    views: &Views,
    drain: &Drain,
) {
    let deadline = Instant::now() + DRAIN;
    loop {
        let done = drain.done_feeding.load(Ordering::Acquire);
        let fed = drain.fed.load(Ordering::Acquire);
        if done && !probe.less_than(&fed) {
            if worker.index() == 0
                && let Err(error) = views.persist(fed.saturating_sub(1), true)
            {
                tracing::warn!(%error, "cannot write the views' last checkpoint");
            }
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                "the dataflow's last round did not finish; the views keep their previous checkpoint"
            );
            return;
        }
        worker.step_or_park(Some(Duration::from_millis(1)));
    }
}

/// Moves every view's watermark to just below the probe's frontier (every output of the one
/// dataflow is probed by it, so all views are complete up to there), and no further than the
/// views' rows are written (reads of those views are served from the view store).
fn publish(probe: &ProbeHandle<Seq>, views: &Views) {
    if let Some(frontier) = probe.with_frontier(|f| f.first().copied())
        && frontier > 0
    {
        views
            .watermark
            .advance((frontier - 1).min(views.persisted()));
    }
}

/// Logs a failing view-store write at most once a second (the loop tries again every turn).
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
}

impl ErrorLog {
    fn note(&mut self, error: &girok_storage::Error) {
        if self
            .last
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            self.last = Some(Instant::now());
            tracing::error!(%error, "cannot write the views' rows to the view store; views wait");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_paced_by_their_length_within_bounds() {
        // Short rounds (idle, or a light load) keep the 5-ms pace.
        assert_eq!(ROUNDS.gap(Duration::ZERO), MIN_ROUND);
        assert_eq!(ROUNDS.gap(Duration::from_micros(100)), MIN_ROUND);
        // Longer rounds space the next one out, 20 times their length...
        assert_eq!(
            ROUNDS.gap(Duration::from_micros(600)),
            Duration::from_millis(12)
        );
        // ...up to the bound on how far a view lags the log because of it.
        assert_eq!(ROUNDS.gap(Duration::from_millis(3)), ROUNDS.max);
        assert_eq!(ROUNDS.gap(Duration::from_secs(10)), ROUNDS.max);
    }
}

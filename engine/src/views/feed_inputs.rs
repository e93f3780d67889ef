//! The feed views' inputs kept in the view store, so that a start restores them without
//! reading the log. Post stats and notifications are built by joins and reduces whose
//! arrangements cannot be saved; what can be saved is their input collections as they stand:
//! live posts, current likes and comments (a deleted post's stay, as in the collections: the
//! views join them with live posts), every post edit and mention version. The feeder records
//! every such fact it feeds ([`FeedFact`]); the net change goes to `view_feed_input` in the
//! batch that carries the checkpoint, and a start feeds the rows back to the dataflow in one
//! round at the checkpoint's seq, then the log after it. The outputs are functions of the
//! inputs, so they come out as a replay from seq 1 would build them (the tests compare the
//! digests).
//!
//! Follows are not stored: every view over them is a stateless map whose output is in the view
//! store (followers, following, follow notifications), so a restore round would have nothing
//! to compute from them, and a later unfollow retracts its follow from the maps' outputs as a
//! diff whether or not the follow was fed since the start. A view that comes to join or reduce
//! follows must store them again (with a new `persisted::VIEWS_FORMAT`).

use super::Digest;
use super::persisted::{PendingRows, u64_at};
use girok_schemas::{Seq, UserId};
use girok_storage::{ViewStore, ViewTable, ViewWrite};
use parking_lot::Mutex;

/// One fact of a feed view's input collection, as the feeder feeds it. Stored facts are fed
/// back as they are at start, never derived again from the log: a change to these facts, to
/// their rows, or to how the feeder derives them from events (`dataflow.rs`, `feed_social`)
/// must change `persisted::VIEWS_FORMAT`, so that stores written before are rebuilt.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FeedFact {
    /// A live post.
    Post { author: UserId, seq: Seq },
    /// An edit of a post (every edit ever made).
    PostEdit { post: Seq, edit: Seq },
    /// A current like of a post.
    Like {
        post: Seq,
        liker: UserId,
        like: Seq,
        author: UserId,
    },
    /// A live comment.
    Comment {
        post: Seq,
        comment: Seq,
        commenter: UserId,
        author: UserId,
    },
    /// A current follow.
    Follow {
        follower: UserId,
        followee: UserId,
        seq: Seq,
    },
    /// A version of a post or comment (`target`) and the users it names.
    Mention {
        target: Seq,
        version: Seq,
        named: Vec<UserId>,
    },
}

/// The first key byte of each kind of fact.
const POST: u8 = 0;
const POST_EDIT: u8 = 1;
const LIKE: u8 = 2;
const COMMENT: u8 = 3;
const FOLLOW: u8 = 4;
const MENTION: u8 = 5;

impl FeedFact {
    /// The fact as a row: a key that names it uniquely (every fact carries the seq of the event
    /// that made it) and, for mentions, the named users as the value.
    fn row(&self) -> (Vec<u8>, Vec<u8>) {
        let mut key = Vec::with_capacity(57);
        let mut value = Vec::new();
        match self {
            FeedFact::Post { author, seq } => {
                key.push(POST);
                key.extend_from_slice(author.as_bytes());
                key.extend_from_slice(&seq.to_be_bytes());
            }
            FeedFact::PostEdit { post, edit } => {
                key.push(POST_EDIT);
                key.extend_from_slice(&post.to_be_bytes());
                key.extend_from_slice(&edit.to_be_bytes());
            }
            FeedFact::Like {
                post,
                liker,
                like,
                author,
            } => {
                key.push(LIKE);
                key.extend_from_slice(&post.to_be_bytes());
                key.extend_from_slice(liker.as_bytes());
                key.extend_from_slice(&like.to_be_bytes());
                key.extend_from_slice(author.as_bytes());
            }
            FeedFact::Comment {
                post,
                comment,
                commenter,
                author,
            } => {
                key.push(COMMENT);
                key.extend_from_slice(&post.to_be_bytes());
                key.extend_from_slice(&comment.to_be_bytes());
                key.extend_from_slice(commenter.as_bytes());
                key.extend_from_slice(author.as_bytes());
            }
            FeedFact::Follow {
                follower,
                followee,
                seq,
            } => {
                key.push(FOLLOW);
                key.extend_from_slice(follower.as_bytes());
                key.extend_from_slice(followee.as_bytes());
                key.extend_from_slice(&seq.to_be_bytes());
            }
            FeedFact::Mention {
                target,
                version,
                named,
            } => {
                key.push(MENTION);
                key.extend_from_slice(&target.to_be_bytes());
                key.extend_from_slice(&version.to_be_bytes());
                for user in named {
                    value.extend_from_slice(user.as_bytes());
                }
            }
        }
        (key, value)
    }

    /// Reads a row written by [`FeedFact::row`]; `None` for one it did not write.
    fn parse(key: &[u8], value: &[u8]) -> Option<FeedFact> {
        let (&kind, rest) = key.split_first()?;
        let user = |at: usize| rest.get(at..at + 16).and_then(UserId::from_slice);
        let seq = |at: usize| u64_at(rest, at);
        let fact = match (kind, rest.len()) {
            (POST, 24) => FeedFact::Post {
                author: user(0)?,
                seq: seq(16)?,
            },
            (POST_EDIT, 16) => FeedFact::PostEdit {
                post: seq(0)?,
                edit: seq(8)?,
            },
            (LIKE, 48) => FeedFact::Like {
                post: seq(0)?,
                liker: user(8)?,
                like: seq(24)?,
                author: user(32)?,
            },
            (COMMENT, 48) => FeedFact::Comment {
                post: seq(0)?,
                comment: seq(8)?,
                commenter: user(16)?,
                author: user(32)?,
            },
            (FOLLOW, 40) => FeedFact::Follow {
                follower: user(0)?,
                followee: user(16)?,
                seq: seq(32)?,
            },
            (MENTION, 16) if value.len().is_multiple_of(16) => FeedFact::Mention {
                target: seq(0)?,
                version: seq(8)?,
                named: value
                    .chunks_exact(16)
                    .map(UserId::from_slice)
                    .collect::<Option<_>>()?,
            },
            _ => return None,
        };
        Some(fact)
    }
}

/// The feed inputs' rows: the net change since the last sealing batch, and the digest of the
/// whole collection (every fact fed, less every fact retracted), which the checkpoint records
/// and a start checks the rows against.
#[derive(Default)]
pub(crate) struct FeedInputRows {
    pending: PendingRows<FeedFact>,
    digest: Mutex<Digest>,
    /// The stored facts a start loaded, until worker 0 feeds them.
    loaded: Mutex<Vec<FeedFact>>,
}

impl FeedInputRows {
    /// Records facts fed (diff 1) or retracted (diff -1).
    pub(crate) fn add(&self, facts: Vec<(FeedFact, isize)>) {
        {
            let mut digest = self.digest.lock();
            for (fact, diff) in &facts {
                digest.apply(fact, *diff);
            }
        }
        self.pending.add(facts);
    }

    /// The digest of the collection as fed so far.
    pub(crate) fn digest(&self) -> Digest {
        *self.digest.lock()
    }

    /// Moves the net change since the last call into `out` as rows: a fact that came is put,
    /// one that went is deleted (a fact is unique: it carries its event's seq).
    pub(crate) fn take_writes(&self, out: &mut Vec<ViewWrite>) {
        for (fact, diff) in self.pending.take() {
            let (key, value) = fact.row();
            out.push(if diff > 0 {
                ViewWrite::Put(ViewTable::FeedInput, key, value)
            } else {
                ViewWrite::Delete(ViewTable::FeedInput, key)
            });
        }
    }

    /// Reads the rows on disk (once) and checks them against `expected` (the checkpoint's
    /// digest). When they agree, keeps the facts for [`FeedInputRows::take_loaded`] and takes
    /// `expected` as the collection's digest. A row that does not parse counts as a
    /// disagreement.
    pub(crate) fn load(&self, disk: &ViewStore, expected: Digest) -> girok_storage::Result<bool> {
        let mut found = Digest::default();
        let mut facts = Vec::new();
        let mut unreadable = false;
        disk.for_each(ViewTable::FeedInput, |key, value| {
            match FeedFact::parse(key, value) {
                Some(fact) => {
                    found.apply(&fact, 1);
                    facts.push(fact);
                }
                None => unreadable = true,
            }
            Ok(())
        })?;
        let agree = !unreadable && found == expected;
        if agree {
            *self.digest.lock() = found;
            *self.loaded.lock() = facts;
        }
        Ok(agree)
    }

    /// The facts [`FeedInputRows::load`] read, once (worker 0 feeds them).
    pub(crate) fn take_loaded(&self) -> Vec<FeedFact> {
        std::mem::take(&mut *self.loaded.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_fact_reads_back_as_written_and_foreign_rows_do_not_parse() {
        let (a, b) = (UserId::new_v7(), UserId::new_v7());
        let facts = [
            FeedFact::Post { author: a, seq: 7 },
            FeedFact::PostEdit { post: 7, edit: 9 },
            FeedFact::Like {
                post: 7,
                liker: b,
                like: 10,
                author: a,
            },
            FeedFact::Comment {
                post: 7,
                comment: 11,
                commenter: b,
                author: a,
            },
            FeedFact::Follow {
                follower: b,
                followee: a,
                seq: 12,
            },
            FeedFact::Mention {
                target: 7,
                version: 9,
                named: vec![a, b],
            },
            FeedFact::Mention {
                target: 11,
                version: 13,
                named: vec![],
            },
        ];
        for fact in facts {
            let (key, value) = fact.row();
            assert_eq!(FeedFact::parse(&key, &value), Some(fact));
        }
        assert_eq!(FeedFact::parse(&[POST, 1, 2], &[]), None);
        assert_eq!(FeedFact::parse(&[99; 25], &[]), None);
        assert_eq!(FeedFact::parse(&[MENTION; 17], &[1, 2, 3]), None);
        assert_eq!(FeedFact::parse(&[], &[]), None);
    }

    #[test]
    fn rows_hold_the_net_collection_and_a_start_checks_them_against_the_digest() {
        let disk = ViewStore::temporary(1 << 20).unwrap();
        let rows = FeedInputRows::default();
        let (a, b, c) = (UserId::new_v7(), UserId::new_v7(), UserId::new_v7());
        let post = FeedFact::Post { author: a, seq: 1 };
        let like = FeedFact::Like {
            post: 1,
            liker: b,
            like: 3,
            author: a,
        };
        let edit = FeedFact::PostEdit { post: 1, edit: 5 };
        let mention = FeedFact::Mention {
            target: 1,
            version: 6,
            named: vec![c],
        };
        rows.add(vec![(post.clone(), 1), (edit.clone(), 1)]);
        rows.add(vec![(like.clone(), 1), (like.clone(), -1)]);
        let mut writes = Vec::new();
        rows.take_writes(&mut writes);
        assert_eq!(writes.len(), 2, "a like and its unlike net to nothing");
        disk.write(&writes, true).unwrap();
        rows.add(vec![(edit.clone(), -1), (mention.clone(), 1)]);
        let mut writes = Vec::new();
        rows.take_writes(&mut writes);
        disk.write(&writes, true).unwrap();

        let fresh = FeedInputRows::default();
        assert!(fresh.load(&disk, rows.digest()).unwrap());
        assert_eq!(fresh.take_loaded(), vec![post.clone(), mention]);
        assert!(fresh.take_loaded().is_empty(), "taken once");
        assert_eq!(fresh.digest(), rows.digest());
        let other = FeedInputRows::default();
        assert!(!other.load(&disk, Digest::default()).unwrap());
        assert!(other.take_loaded().is_empty());
        assert_eq!(
            other.digest(),
            Digest::default(),
            "kept only when they agree"
        );
    }
}

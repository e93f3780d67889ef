//! Room lists and read receipts: for every user, the rooms they are a member of with the seq
//! they joined at (the list orders rooms by the later of that and the room's last message),
//! and for every room, how far each member has read it ("read up to" a seq, moved by read
//! receipts and by the member's own sends).
//!
//! Unread counts are read from these two views together: the number of the room's live
//! messages (the `room_history` view) above the reader's marker. A join of members with
//! messages inside the dataflow would materialise one record per unread (member, message)
//! pair, which for a 1,000-member room is 1,000 records per message; counting at read time
//! over the history's ordered seqs costs one range walk per listed room instead.
//!
//! Both are small (one entry per membership) and read on every room list, so they are served
//! from memory; they are also written to the view store (`view_membership`, `view_receipt`)
//! with the chat checkpoint, so that a start loads them instead of replaying the log.

use super::inputs::{Collections, MessageRef, Sinks, View, materialize};
use super::persisted::{PersistedIndex, key2, u64_at};
use super::{Digest, Update};
use differential_dataflow::VecCollection;
use girok_schemas::{RoomId, Seq, UserId};
use girok_storage::{ViewStore, ViewTable, ViewWrite};
use std::sync::Arc;
use uuid::Uuid;

/// Memberships, `(user, (room, (joined seq, time)))`, over `members`, `(room, user, (joined
/// seq, time))` per current membership (already current: the feeder retracts the previous
/// value); re-keyed by user for room lists.
pub fn memberships<'s>(
    members: VecCollection<'s, Seq, (RoomId, UserId, MessageRef)>,
) -> VecCollection<'s, Seq, (UserId, (RoomId, MessageRef))> {
    members.map(|(room, user, joined)| (user, (room, joined)))
}

/// Read receipts, `(room, (user, read up to))`, over `reads`, `(room, user, read-up-to seq)`
/// per member's current marker (already current, like members).
pub fn receipts<'s>(
    reads: VecCollection<'s, Seq, (RoomId, UserId, Seq)>,
) -> VecCollection<'s, Seq, (RoomId, (UserId, Seq))> {
    reads.map(|(room, user, up_to)| (room, (user, up_to)))
}

impl View for MembershipStore {
    fn open(disk: &Arc<ViewStore>) -> Self {
        MembershipStore {
            rows: PersistedIndex::new(disk, ViewTable::Membership),
        }
    }

    fn build(inputs: &Collections<'_>, sinks: &Sinks<'_>) {
        let memberships = memberships(inputs.members.clone());
        materialize(memberships, sinks, |v, u| v.memberships.apply(u));
    }

    fn digests(&self) -> Vec<(&'static str, Digest)> {
        vec![("memberships", self.digest())]
    }
}

impl View for ReceiptStore {
    fn open(disk: &Arc<ViewStore>) -> Self {
        ReceiptStore {
            rows: PersistedIndex::new(disk, ViewTable::Receipt),
        }
    }

    fn build(inputs: &Collections<'_>, sinks: &Sinks<'_>) {
        let receipts = receipts(inputs.reads.clone());
        materialize(receipts, sinks, |v, u| v.receipts.apply(u));
    }

    fn digests(&self) -> Vec<(&'static str, Digest)> {
        vec![("read_receipts", self.digest())]
    }
}

/// Two ids as one key of 32 bytes.
fn ids_key(a: Uuid, b: Uuid) -> Vec<u8> {
    key2(a.as_bytes(), b.as_bytes())
}

/// The two ids of a 32-byte key.
fn ids_of(key: &[u8]) -> Option<(Uuid, Uuid)> {
    Some((
        Uuid::from_slice(key.get(..16)?).ok()?,
        Uuid::from_slice(key.get(16..32)?).ok()?,
    ))
}

/// The materialised memberships: a user's rooms.
pub struct MembershipStore {
    rows: PersistedIndex<UserId, (RoomId, MessageRef)>,
}

impl MembershipStore {
    pub(crate) fn apply(&self, updates: &[Update<UserId, (RoomId, MessageRef)>]) {
        self.rows.apply(updates);
    }

    /// Moves the diffs gathered since the last call into `out` as rows
    /// (`user ++ room -> joined seq ++ time`).
    pub(crate) fn take_writes(&self, out: &mut Vec<ViewWrite>) {
        self.rows.take_writes(out, |(user, (room, (seq, time)))| {
            (
                ids_key(user.0, room.0),
                key2(&seq.to_be_bytes(), &time.to_be_bytes()),
            )
        });
    }

    /// Loads the memberships from the view store (at start, before the dataflow runs).
    pub(crate) fn load(&self) -> girok_storage::Result<()> {
        self.rows.load(|key, value| {
            let (user, room) = ids_of(key)?;
            let joined = (u64_at(value, 0)?, u64_at(value, 8)? as i64);
            Some((UserId(user), (RoomId(room), joined)))
        })
    }

    /// `(room, user, joined)` per current membership (the feeder's starting state).
    pub(crate) fn all(&self) -> Vec<(RoomId, UserId, MessageRef)> {
        self.rows
            .index
            .entries()
            .into_iter()
            .map(|(user, (room, joined))| (room, user, joined))
            .collect()
    }

    /// `(room, (joined seq, time))` for every room the user is a member of.
    pub fn rooms_of(&self, user: UserId) -> Vec<(RoomId, MessageRef)> {
        self.rows.index.values(&user)
    }

    /// When `user` joined `room`, if they are a member.
    pub fn joined(&self, user: UserId, room: RoomId) -> Option<MessageRef> {
        self.rows
            .index
            .last_in_range(&user, (room, (0, i64::MIN))..=(room, (Seq::MAX, i64::MAX)))
            .map(|(_, joined)| joined)
    }

    /// The order-independent digest of the whole view.
    pub fn digest(&self) -> Digest {
        self.rows.index.digest()
    }
}

/// The materialised read receipts.
pub struct ReceiptStore {
    rows: PersistedIndex<RoomId, (UserId, Seq)>,
}

impl ReceiptStore {
    pub(crate) fn apply(&self, updates: &[Update<RoomId, (UserId, Seq)>]) {
        self.rows.apply(updates);
    }

    /// Moves the diffs gathered since the last call into `out` as rows
    /// (`room ++ user -> read up to`).
    pub(crate) fn take_writes(&self, out: &mut Vec<ViewWrite>) {
        self.rows.take_writes(out, |(room, (user, up_to))| {
            (ids_key(room.0, user.0), up_to.to_be_bytes().to_vec())
        });
    }

    /// Loads the receipts from the view store (at start, before the dataflow runs).
    pub(crate) fn load(&self) -> girok_storage::Result<()> {
        self.rows.load(|key, value| {
            let (room, user) = ids_of(key)?;
            Some((RoomId(room), (UserId(user), u64_at(value, 0)?)))
        })
    }

    /// `(room, user, read up to)` per marker (the feeder's starting state).
    pub(crate) fn all(&self) -> Vec<(RoomId, UserId, Seq)> {
        self.rows
            .index
            .entries()
            .into_iter()
            .map(|(room, (user, up_to))| (room, user, up_to))
            .collect()
    }

    /// Every `(user, read up to)` of a room (members who never read are absent).
    pub fn receipts(&self, room: RoomId) -> Vec<(UserId, Seq)> {
        self.rows.index.values(&room)
    }

    /// How far `user` has read `room` (0: nothing).
    pub fn read_up_to(&self, room: RoomId, user: UserId) -> Seq {
        self.rows
            .index
            .last_in_range(&room, (user, 0)..=(user, Seq::MAX))
            .map_or(0, |(_, seq)| seq)
    }

    /// The order-independent digest of the whole view.
    pub fn digest(&self) -> Digest {
        self.rows.index.digest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_moved_receipt_replaces_the_old_one_in_any_order() {
        let room = RoomId(Uuid::from_u128(1));
        let (ann, bob) = (UserId(Uuid::from_u128(2)), UserId(Uuid::from_u128(3)));
        let disk = Arc::new(ViewStore::temporary(1 << 20).unwrap());
        let store = ReceiptStore::open(&disk);
        // Within one batch the retraction may come first.
        store.apply(&[((room, (ann, 5)), 9, -1), ((room, (ann, 9)), 9, 1)]);
        store.apply(&[((room, (ann, 5)), 5, 1), ((room, (bob, 7)), 7, 1)]);
        assert_eq!(store.read_up_to(room, ann), 9);
        assert_eq!(store.read_up_to(room, bob), 7);
        assert_eq!(store.receipts(room), vec![(ann, 9), (bob, 7)]);
        assert_eq!(store.read_up_to(RoomId(Uuid::from_u128(9)), ann), 0);

        let other_order = ReceiptStore::open(&disk);
        other_order.apply(&[((room, (bob, 7)), 7, 1), ((room, (ann, 9)), 9, 1)]);
        assert_eq!(store.digest(), other_order.digest());
    }
}

#[cfg(test)]
mod dataflow_tests {
    use super::*;
    use differential_dataflow::AsCollection;
    use timely::dataflow::operators::capture::Extract;
    use timely::dataflow::operators::{Capture, ToStream};
    use uuid::Uuid;

    #[test]
    fn memberships_are_keyed_by_user_and_receipts_by_room_diff_for_diff() {
        let (room, other) = (RoomId(Uuid::from_u128(1)), RoomId(Uuid::from_u128(2)));
        let (ann, bob) = (UserId(Uuid::from_u128(3)), UserId(Uuid::from_u128(4)));
        let (members, reads) = timely::example(move |scope| {
            // Ann joins two rooms, Bob joins one and leaves it; Ann's marker moves from 5 to 8.
            let members = vec![
                ((room, ann, (2, 20)), 2, 1),
                ((other, ann, (3, 30)), 3, 1),
                ((room, bob, (4, 40)), 4, 1),
                ((room, bob, (4, 40)), 9, -1),
            ]
            .into_iter()
            .to_stream(scope)
            .as_collection();
            let reads = vec![
                ((room, ann, 5), 5, 1),
                ((room, ann, 5), 8, -1),
                ((room, ann, 8), 8, 1),
            ]
            .into_iter()
            .to_stream(scope)
            .as_collection();
            (
                memberships(members).inner.capture(),
                receipts(reads).inner.capture(),
            )
        });
        fn sorted<T: Ord>(mut updates: Vec<T>) -> Vec<T> {
            updates.sort();
            updates
        }
        let members: Vec<_> = members.extract().into_iter().flat_map(|(_, d)| d).collect();
        assert_eq!(
            sorted(members),
            sorted(vec![
                ((ann, (room, (2, 20))), 2, 1),
                ((ann, (other, (3, 30))), 3, 1),
                ((bob, (room, (4, 40))), 4, 1),
                ((bob, (room, (4, 40))), 9, -1),
            ])
        );
        let reads: Vec<_> = reads.extract().into_iter().flat_map(|(_, d)| d).collect();
        assert_eq!(
            sorted(reads),
            sorted(vec![
                ((room, (ann, 5)), 5, 1),
                ((room, (ann, 5)), 8, -1),
                ((room, (ann, 8)), 8, 1),
            ])
        );
    }
}

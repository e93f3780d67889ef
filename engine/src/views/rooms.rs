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

use super::inputs::{Collections, MessageRef, Sinks, View, ViewSettings, materialize};
use super::{CountedIndex, Digest, Update};
use differential_dataflow::VecCollection;
use girok_schemas::{RoomId, Seq, UserId};

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
    fn build(inputs: &Collections<'_>, sinks: &Sinks<'_>, _: &ViewSettings) {
        let memberships = memberships(inputs.members.clone());
        materialize(memberships, sinks, |v, u| v.memberships.apply(u));
    }

    fn digests(&self) -> Vec<(&'static str, Digest)> {
        vec![("memberships", self.digest())]
    }
}

impl View for ReceiptStore {
    fn build(inputs: &Collections<'_>, sinks: &Sinks<'_>, _: &ViewSettings) {
        let receipts = receipts(inputs.reads.clone());
        materialize(receipts, sinks, |v, u| v.receipts.apply(u));
    }

    fn digests(&self) -> Vec<(&'static str, Digest)> {
        vec![("read_receipts", self.digest())]
    }
}

/// The materialised memberships: a user's rooms.
#[derive(Default)]
pub struct MembershipStore {
    index: CountedIndex<UserId, (RoomId, MessageRef)>,
}

impl MembershipStore {
    pub(crate) fn apply(&self, updates: &[Update<UserId, (RoomId, MessageRef)>]) {
        self.index.apply(updates);
    }

    /// `(room, (joined seq, time))` for every room the user is a member of.
    pub fn rooms_of(&self, user: UserId) -> Vec<(RoomId, MessageRef)> {
        self.index.values(&user)
    }

    /// When `user` joined `room`, if they are a member.
    pub fn joined(&self, user: UserId, room: RoomId) -> Option<MessageRef> {
        self.index
            .last_in_range(&user, (room, (0, i64::MIN))..=(room, (Seq::MAX, i64::MAX)))
            .map(|(_, joined)| joined)
    }

    /// The order-independent digest of the whole view.
    pub fn digest(&self) -> Digest {
        self.index.digest()
    }
}

/// The materialised read receipts.
#[derive(Default)]
pub struct ReceiptStore {
    index: CountedIndex<RoomId, (UserId, Seq)>,
}

impl ReceiptStore {
    pub(crate) fn apply(&self, updates: &[Update<RoomId, (UserId, Seq)>]) {
        self.index.apply(updates);
    }

    /// Every `(user, read up to)` of a room (members who never read are absent).
    pub fn receipts(&self, room: RoomId) -> Vec<(UserId, Seq)> {
        self.index.values(&room)
    }

    /// How far `user` has read `room` (0: nothing).
    pub fn read_up_to(&self, room: RoomId, user: UserId) -> Seq {
        self.index
            .last_in_range(&room, (user, 0)..=(user, Seq::MAX))
            .map_or(0, |(_, seq)| seq)
    }

    /// The order-independent digest of the whole view.
    pub fn digest(&self) -> Digest {
        self.index.digest()
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
        let store = ReceiptStore::default();
        // Within one batch the retraction may come first.
        store.apply(&[((room, (ann, 5)), 9, -1), ((room, (ann, 9)), 9, 1)]);
        store.apply(&[((room, (ann, 5)), 5, 1), ((room, (bob, 7)), 7, 1)]);
        assert_eq!(store.read_up_to(room, ann), 9);
        assert_eq!(store.read_up_to(room, bob), 7);
        assert_eq!(store.receipts(room), vec![(ann, 9), (bob, 7)]);
        assert_eq!(store.read_up_to(RoomId(Uuid::from_u128(9)), ann), 0);

        let other_order = ReceiptStore::default();
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

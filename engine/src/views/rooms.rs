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

use super::inputs::{Collections, MessageRef, Sinks, materialize};
use super::{CountedIndex, Digest, Update};
use differential_dataflow::VecCollection;
use girok_schemas::{RoomId, Seq, UserId};

/// The views over `members`, `(room, user, (joined seq, time))` per current membership, and `reads`,
/// `(room, user, read-up-to seq)` per member's current marker. Both arrive already current
/// (the feeder retracts the previous value); the views re-key them for their readers.
pub fn rooms<'s>(
    members: VecCollection<'s, Seq, (RoomId, UserId, MessageRef)>,
    reads: VecCollection<'s, Seq, (RoomId, UserId, Seq)>,
) -> RoomViews<'s> {
    RoomViews {
        memberships: members.map(|(room, user, joined)| (user, (room, joined))),
        receipts: reads.map(|(room, user, up_to)| (room, (user, up_to))),
    }
}

/// The outputs.
pub struct RoomViews<'s> {
    /// `(user, (room, (joined seq, time)))`.
    pub memberships: VecCollection<'s, Seq, (UserId, (RoomId, MessageRef))>,
    /// `(room, (user, read up to))`.
    pub receipts: VecCollection<'s, Seq, (RoomId, (UserId, Seq))>,
}

/// Builds the views over the inputs and materializes them.
pub(crate) fn build(inputs: &Collections<'_>, sinks: &Sinks<'_>) {
    let RoomViews {
        memberships,
        receipts,
    } = rooms(inputs.members.clone(), inputs.reads.clone());
    materialize(memberships, sinks, |v, u| v.memberships.apply(u));
    materialize(receipts, sinks, |v, u| v.receipts.apply(u));
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

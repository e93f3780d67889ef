//! The write model as a function of the log: how each event changes the keyspaces the
//! sequencer checks commands against (each domain's `apply.rs` says it for its own events).
//! The sequencer applies it to every event it appends (in the same atomic batch; matching's
//! tickets, matches and skip exclusions written behind, at its checkpoints:
//! `matching/rows.rs`), and `girok replay` applies it to the whole log to rebuild the write
//! model from scratch, so both always agree.

use crate::error::{Error, Result};
use girok_schemas::Event;
use girok_storage::{Store, Table, Txn};
use std::sync::Arc;

/// Every write-model table: all but the log.
pub fn tables() -> impl Iterator<Item = Table> {
    Table::ALL.into_iter().filter(|t| *t != Table::SeqEvent)
}

/// Applies one event's whole effect on the write model: each domain applies its own events.
/// `skips`: the rebuild's skip exclusions, kept in memory until it writes them
/// ([`SkipRows::write`](crate::matching::rows::SkipRows::write)).
pub(crate) fn apply(
    txn: &mut Txn<'_>,
    event: &Event,
    skips: &mut crate::matching::rows::SkipRows,
) -> Result<()> {
    apply_others(txn, event)?;
    crate::matching::apply::apply(txn, event, skips)
}

/// The same, as the sequencer applies it: without matching's tickets, matches and skip
/// exclusions, which its stage writes behind.
pub(crate) fn apply_live(txn: &mut Txn<'_>, event: &Event) -> Result<()> {
    apply_others(txn, event)?;
    crate::matching::apply::apply_live(txn, event)
}

fn apply_others(txn: &mut Txn<'_>, event: &Event) -> Result<()> {
    // Media first: what a post's edit or deletion or a new avatar takes from a media, it reads
    // from the post's and the user's records as they were before the event.
    crate::media::apply::apply(txn, event)?;
    crate::chat::apply::apply(txn, event)?;
    crate::accounts::apply::apply(txn, event)?;
    crate::feed::apply::apply(txn, event)
}

/// Rebuilds the whole write model from the log: clears every write-model table and applies
/// every event, in chunks. Returns the number of events applied. Only for a data directory no
/// server is using (`girok replay`).
pub fn rebuild(store: &Arc<Store>, mut progress: impl FnMut(u64)) -> Result<u64> {
    for table in tables() {
        store.clear(table)?;
    }
    let mut tail = store.tail(1);
    let mut applied = 0;
    // The skip exclusions' spans, from none (the tables are empty), written after each chunk.
    let mut skips = crate::matching::rows::SkipRows::default();
    loop {
        let chunk = tail.next_chunk(4096, None)?;
        if chunk.is_empty() {
            return Ok(applied);
        }
        let events = chunk
            .iter()
            .map(|(seq, bytes)| {
                girok_schemas::decode_event(bytes)
                    .map_err(|source| Error::Decode { seq: *seq, source })
            })
            .collect::<Result<Vec<_>>>()?;
        store.rewrite(|txn| {
            for event in &events {
                apply(txn, event, &mut skips)?;
            }
            skips.write(txn)
        })?;
        applied += events.len() as u64;
        progress(applied);
    }
}

/// An order-sensitive hash of every write-model entry (tables in declaration order, keys in
/// order): equal before and after a rebuild when the write model is a function of the log.
pub fn digest(store: &Store) -> Result<u64> {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for table in tables() {
        hasher.update(table.name().as_bytes());
        for (key, value) in store.scan_prefix(table, &[])? {
            hasher.update(&(key.len() as u64).to_be_bytes());
            hasher.update(&key);
            hasher.update(&(value.len() as u64).to_be_bytes());
            hasher.update(&value);
        }
    }
    Ok(hasher.digest())
}

/// One write-model entry: table, key, value.
pub type Entry = (Table, Vec<u8>, Vec<u8>);

/// Every entry of every write-model table, for comparing a rebuilt write model with a live one.
pub fn snapshot(store: &Store) -> Result<Vec<Entry>> {
    let mut all = Vec::new();
    for table in tables() {
        for (key, value) in store.scan_prefix(table, &[])? {
            all.push((table, key, value));
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use girok_schemas::fixture::MatchCycle;
    use girok_schemas::proto::RoomRecord;
    use girok_schemas::{RoomId, UserId};
    use girok_storage::StoreConfig;
    use prost::Message;

    /// The write model after applying `events`, with the match room's `created_seq` left out
    /// (the older form's is its `chat.room.created`).
    fn model_after<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<Entry> {
        let mut model = model_of(|txn, skips| {
            for event in events {
                apply(txn, event, skips)?;
            }
            Ok(())
        });
        for (table, _, value) in &mut model {
            if *table == Table::RoomidRoom {
                let mut room = RoomRecord::decode(value.as_slice()).unwrap();
                room.created_seq = 0;
                *value = room.encode_to_vec();
            }
        }
        model
    }

    /// The write model that `write` leaves in a new store, as a rebuild writes it.
    fn model_of(
        write: impl FnOnce(&mut Txn<'_>, &mut crate::matching::rows::SkipRows) -> Result<()>,
    ) -> Vec<Entry> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        let mut skips = crate::matching::rows::SkipRows::default();
        store
            .rewrite(|txn| {
                write(txn, &mut skips)?;
                skips.write(txn)
            })
            .unwrap();
        snapshot(&store).unwrap()
    }

    /// The model without what no check asks of a match room: its member rows and count
    /// (its members are the match's, `chat/membership.rs`).
    fn without_match_members(model: Vec<Entry>) -> Vec<Entry> {
        model
            .into_iter()
            .filter(|(table, ..)| *table != Table::RoomidUseridMember)
            .map(|(table, key, value)| match table {
                Table::RoomidRoom => {
                    let mut room = RoomRecord::decode(value.as_slice()).unwrap();
                    assert!(room.matched);
                    room.member_count = 0;
                    (table, key, room.encode_to_vec())
                }
                _ => (table, key, value),
            })
            .collect()
    }

    fn member_rows(model: &[Entry]) -> usize {
        model
            .iter()
            .filter(|(table, ..)| *table == Table::RoomidUseridMember)
            .count()
    }

    #[test]
    fn a_match_and_a_skip_as_one_event_each_leave_what_the_older_five_events_left_but_member_rows()
    {
        let (ann, bob, room) = (UserId::new_v7(), UserId::new_v7(), RoomId::new_v7());
        let older = MatchCycle::new(ann, bob, room, false);
        let newer = MatchCycle::new(ann, bob, room, true);

        let matched_model = model_after(&newer.until_matched);
        let older_matched = model_after(&older.until_matched);
        assert_eq!(member_rows(&matched_model), 0);
        assert_eq!(member_rows(&older_matched), 2);
        assert_eq!(
            without_match_members(matched_model),
            without_match_members(older_matched)
        );

        let skipped_model = model_after(newer.events());
        let older_skipped = model_after(older.events());
        assert_eq!(member_rows(&skipped_model), 0);
        assert_eq!(member_rows(&older_skipped), 0);
        assert_eq!(
            without_match_members(skipped_model),
            without_match_members(older_skipped)
        );
    }

    #[test]
    fn a_skip_removes_the_member_rows_a_match_room_got_before_they_were_left_out() {
        let (ann, bob, room) = (UserId::new_v7(), UserId::new_v7(), RoomId::new_v7());
        let newer = MatchCycle::new(ann, bob, room, true);
        let model = model_of(|txn, skips| {
            for event in &newer.until_matched {
                apply(txn, event, skips)?;
            }
            // As a build before stop 61 left a match room's members.
            for user in [ann, bob] {
                let key = crate::records::member_key(room, user);
                txn.put(Table::RoomidUseridMember, key, Vec::new());
            }
            for event in &newer.skip {
                apply(txn, event, skips)?;
            }
            Ok(())
        });
        assert_eq!(member_rows(&model), 0);
    }
}

//! Who is in a room, said once for the writer and the readers. A group or direct room's
//! members have rows (`roomid_userid_member`). A match room's members are its match's two
//! users while the match lasts, as matching's rows say (each user's current match, kept by the
//! matching stage and written behind): a match and its end write no membership, which took
//! five of six write-model writes out of every match cycle (README, Benchmarks → Random
//! matching, stop 61). A match room has member rows only from an older build, and only while
//! that match lasts (its skip deletes them), so they agree with the match: readers ask a row
//! first (one lookup for a group or direct room's member) and the match only without one.

use girok_schemas::proto::RoomRecord;

/// Whether a room's members are its match's (and not its rows).
pub(crate) fn by_match(record: &RoomRecord) -> bool {
    record.matched
}

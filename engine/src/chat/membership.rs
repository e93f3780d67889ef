//! Who is in a room, said once for the writer and the readers. A group or direct room's
//! members have rows (`roomid_userid_member`). A match room's members are its match's two
//! users while the match lasts, as matching's rows say (each user's current match, kept by the
//! matching stage and written behind): a match and its end write no membership, which took
//! four write-model writes out of every match cycle (README, Benchmarks → Random matching,
//! stop 61). Rows a match room got before that are not asked.

use girok_schemas::proto::RoomRecord;

/// Whether a room's members are its match's (and not its rows).
pub(crate) fn by_match(record: &RoomRecord) -> bool {
    record.matched
}

//! Commands: what a client asks the engine to change, one enum per domain (each validated by
//! its domain before it reaches the sequencer, so that the writer thread only does write-model
//! checks).

use crate::accounts::AccountCommand;
use crate::chat::ChatCommand;
use crate::error::Result;
use crate::feed::FeedCommand;
use crate::matching::MatchingCommand;
use crate::media::MediaCommand;
use girok_schemas::{EventId, UserId};

/// A request to change state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Rooms, members, read receipts and messages.
    Chat(ChatCommand),
    /// Accounts and sessions (validated by the accounts module before submission).
    Account(AccountCommand),
    /// Posts, likes, comments, follows and notification receipts.
    Feed(FeedCommand),
    /// The matching queue, matches and blocks.
    Matching(MatchingCommand),
    /// Uploads, their processing and deletion.
    Media(MediaCommand),
}

/// A command with the principal who issued it, as the sequencer receives it.
pub struct Submission {
    pub actor: UserId,
    pub command: Command,
    /// Pre-generated so the writer thread does not spend time on it.
    pub new_id: EventId,
}

/// The actor of girok's own commands (a matching wave or checkpoint, a processed upload) and
/// of those that name their user themselves (account commands): the nil id, nobody's.
pub(crate) const NOBODY: UserId = UserId(uuid::Uuid::nil());

impl Submission {
    /// One of girok's own commands, as [`NOBODY`].
    pub(crate) fn by_girok(command: Command) -> Submission {
        Submission {
            actor: NOBODY,
            command,
            new_id: EventId::new_v7(),
        }
    }
}

impl Command {
    /// Checks and normalizes client input (account commands are built already validated by
    /// the accounts module).
    pub fn validated(self) -> Result<Command> {
        Ok(match self {
            Command::Chat(command) => Command::Chat(command.validated()?),
            Command::Feed(command) => Command::Feed(command.validated()?),
            Command::Matching(command) => Command::Matching(command.validated()?),
            Command::Media(command) => Command::Media(command.validated()?),
            account @ Command::Account(_) => account,
        })
    }
}

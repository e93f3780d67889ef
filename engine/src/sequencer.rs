//! The sequencer: runs on the log writer thread and hands each command to its domain's stage,
//! which decides against the write model whether it may happen and, if so, appends its events
//! (each event's effect on the write model joins the same atomic batch, see `staging`). It
//! only dispatches: the rules live in `chat::stage`, `accounts::stage`, `feed::stage`,
//! `matching::stage` (which also decides matches) and `media::stage`. Blocks are shared by chat
//! and matching; chat asks matching who is in a match room.

use crate::ack::Ack;
use crate::chat::ChatStage;
use crate::command::{Command, Submission};
use crate::error::{Error, Result};
use crate::hot::HotObjects;
use crate::matching::blocks::Blocks;
use crate::matching::{MatchingConfig, MatchingStage, PoolGauge};
use girok_storage::{Durability, Stager, Txn, WrittenKeys};
use std::sync::Arc;

/// The engine's [`Stager`].
pub struct Sequencer {
    chat: ChatStage,
    matching: MatchingStage,
    blocks: Blocks,
    /// How durable matching's queue commands are before they are answered.
    queue_durability: Durability,
    /// Readers' copies of write-model records, dropped once a batch that changes them commits.
    hot: Arc<HotObjects>,
}

impl Stager for Sequencer {
    type Command = Submission;
    type Accepted = Ack;
    type Rejected = Error;

    fn committed(&mut self, written: &WrittenKeys) {
        self.hot.forget(written);
    }

    fn durability(&self, submission: &Submission) -> Durability {
        match &submission.command {
            Command::Matching(command) if command.moves_the_queue() => self.queue_durability,
            _ => Durability::Sync,
        }
    }

    fn reset(&mut self) {
        self.chat.reset();
        self.matching.reset();
        self.blocks.reset();
        self.hot.clear();
    }

    fn stage(&mut self, submission: Submission, txn: &mut Txn<'_>) -> Result<Ack> {
        let Submission {
            actor,
            command,
            new_id,
        } = submission;
        match command {
            Command::Chat(command) => {
                let (blocks, matches) = (&mut self.blocks, &mut self.matching);
                self.chat
                    .stage(txn, blocks, matches, actor, new_id, command)
            }
            Command::Account(command) => crate::accounts::stage(txn, new_id, command),
            Command::Feed(command) => crate::feed::stage(txn, actor, new_id, command),
            Command::Matching(command) => {
                self.matching
                    .stage(txn, &mut self.blocks, actor, new_id, command)
            }
            Command::Media(command) => crate::media::stage(txn, actor, new_id, command),
        }
    }
}

impl Sequencer {
    /// A sequencer whose group rooms hold at most `max_room_members`, that matches by
    /// `matching` (publishing its pool's figures to `pool`), keeping the readers' caches in
    /// `hot` current.
    pub fn new(
        max_room_members: usize,
        matching: MatchingConfig,
        pool: Arc<PoolGauge>,
        hot: Arc<HotObjects>,
    ) -> Self {
        Self {
            chat: ChatStage::new(max_room_members),
            queue_durability: matching.durability,
            matching: MatchingStage::new(matching, pool),
            blocks: Blocks::default(),
            hot,
        }
    }
}

//! Matching commands: joining and leaving the queue, skipping a match, blocking users, and the
//! two girok itself submits (a wave of the matcher, a lost connection). Client input is
//! validated here, before the sequencer sees it.

use crate::error::{Error, Result};
use crate::limits::{MAX_MATCH_LANGUAGE_CHARS, MAX_MATCH_TAG_CHARS, MAX_MATCH_TAGS};
use crate::write_kind::WriteKind;
use girok_schemas::{Seq, UserId};

/// What a user asks of the matching queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchingCommand {
    /// Opens the actor's ticket (one at a time), matched at once if a compatible partner
    /// waits.
    Join {
        /// Interest tags, lowercased and deduplicated by validation.
        tags: Vec<String>,
        language: Option<String>,
    },
    /// Withdraws the actor's open ticket.
    Leave,
    /// Ends the actor's current match (both leave its room); re-queues the actor with the
    /// match's preferences when `requeue`.
    Skip { requeue: bool },
    /// The actor blocks `user`: never matched again, no direct messages between them; a
    /// current match with them ends.
    Block { user: UserId },
    /// The actor takes their block of `user` back.
    Unblock { user: UserId },
    /// The actor's last live connection went away: their open ticket closes if it was
    /// opened at or before `opened_through` (the log's durable head then: a ticket opened
    /// since, by a reconnect that joined again, stays). girok submits it.
    Disconnected { opened_through: Seq },
    /// A wave of the matcher: relaxes preferences of tickets that waited, pairs what became
    /// compatible, expires tickets past their time (girok submits it).
    Wave,
    /// Writes the tickets', matches' and skip exclusions' rows that changed since the last
    /// checkpoint (girok submits it when one is due and nothing else came, and at shutdown:
    /// `rows.rs`).
    Checkpoint,
}

impl MatchingCommand {
    /// Joins and skips spend the `matching` budget; blocks and unblocks, changes of the
    /// social graph as follows are, the `follows` one; leaving spends none (it is bounded by
    /// the joins), nor do girok's own commands.
    pub(crate) fn write_kind(&self) -> Option<WriteKind> {
        match self {
            MatchingCommand::Join { .. } | MatchingCommand::Skip { .. } => {
                Some(WriteKind::Matching)
            }
            MatchingCommand::Block { .. } | MatchingCommand::Unblock { .. } => {
                Some(WriteKind::Follows)
            }
            MatchingCommand::Leave
            | MatchingCommand::Disconnected { .. }
            | MatchingCommand::Wave
            | MatchingCommand::Checkpoint => None,
        }
    }

    /// Whether the command only moves the queue (tickets, matches, skips, the rows of their
    /// checkpoint): what a power loss may take back of these under `matching.durability =
    /// buffered` a user can do again (join again, skip again). They take that durability;
    /// blocks, the safety tool and a lasting change of the social graph, are always fsynced.
    pub(crate) fn moves_the_queue(&self) -> bool {
        match self {
            MatchingCommand::Join { .. }
            | MatchingCommand::Leave
            | MatchingCommand::Skip { .. }
            | MatchingCommand::Disconnected { .. }
            | MatchingCommand::Wave
            | MatchingCommand::Checkpoint => true,
            MatchingCommand::Block { .. } | MatchingCommand::Unblock { .. } => false,
        }
    }

    /// Checks and normalizes client input.
    pub fn validated(self) -> Result<MatchingCommand> {
        match self {
            MatchingCommand::Join { tags, language } => Ok(MatchingCommand::Join {
                tags: normalized_tags(tags)?,
                language: language
                    .map(|language| normalized_language(&language))
                    .transpose()?
                    .flatten(),
            }),
            other => Ok(other),
        }
    }
}

/// Up to [`MAX_MATCH_TAGS`] tags of 1 to [`MAX_MATCH_TAG_CHARS`] letters, digits or `-`,
/// lowercased, duplicates dropped, in their first order.
fn normalized_tags(tags: Vec<String>) -> Result<Vec<String>> {
    let mut normalized: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        if !word(&tag, MAX_MATCH_TAG_CHARS) {
            return Err(Error::invalid(
                "tags",
                format!(
                    "each tag is 1 to {MAX_MATCH_TAG_CHARS} letters, digits or '-' (got {tag:?})"
                ),
            ));
        }
        if !normalized.contains(&tag) {
            // Refused at the first tag too many: a long list costs no more than this.
            if normalized.len() == MAX_MATCH_TAGS {
                return Err(Error::invalid(
                    "tags",
                    format!("at most {MAX_MATCH_TAGS} tags"),
                ));
            }
            normalized.push(tag);
        }
    }
    Ok(normalized)
}

/// A language code such as `en` or `pt-br` (lowercased); empty means none.
fn normalized_language(language: &str) -> Result<Option<String>> {
    let language = language.trim().to_lowercase();
    if language.is_empty() {
        return Ok(None);
    }
    if !word(&language, MAX_MATCH_LANGUAGE_CHARS) {
        return Err(Error::invalid(
            "language",
            format!("1 to {MAX_MATCH_LANGUAGE_CHARS} letters, digits or '-'"),
        ));
    }
    Ok(Some(language))
}

fn word(text: &str, max_chars: usize) -> bool {
    let count = text.chars().count();
    (1..=max_chars).contains(&count) && text.chars().all(|c| c.is_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(tags: &[&str], language: Option<&str>) -> Result<MatchingCommand> {
        MatchingCommand::Join {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            language: language.map(Into::into),
        }
        .validated()
    }

    #[test]
    fn tags_are_normalized_and_limited() {
        assert_eq!(
            join(&["Music", " music", "k-pop", "한국어"], Some(" EN ")).unwrap(),
            MatchingCommand::Join {
                tags: vec!["music".into(), "k-pop".into(), "한국어".into()],
                language: Some("en".into()),
            }
        );
        assert_eq!(
            join(&[], Some("")).unwrap(),
            MatchingCommand::Join {
                tags: vec![],
                language: None,
            }
        );
        let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
        assert_eq!(join(&eleven, None).unwrap_err().code(), "INVALID_ARGUMENT");
        assert!(join(&eleven[..10], None).is_ok());
        for bad in ["", "two words", "dot.ted", "x!"] {
            assert_eq!(
                join(&[bad], None).unwrap_err().code(),
                "INVALID_ARGUMENT",
                "{bad:?}"
            );
        }
        assert!(join(&[&"a".repeat(MAX_MATCH_TAG_CHARS)], None).is_ok());
        assert!(join(&[&"a".repeat(MAX_MATCH_TAG_CHARS + 1)], None).is_err());
        assert!(join(&[], Some("en_US")).is_err());
        assert!(join(&[], Some("pt-BR")).is_ok());
    }
}

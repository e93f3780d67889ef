//! One policy for the text people type. A *name* (a display name, a room title) is one line
//! that others read as someone's identity: trimmed, 1 to N characters, no control character,
//! and none of the invisible characters that make a name pass for another or reorder the text
//! around it — bidirectional embeddings, overrides, isolates and marks, zero-width spaces, word
//! joiners, the byte-order mark, soft hyphens, invisible operators. (Zero-width joiner and
//! non-joiner stay: emoji sequences and several scripts need them.) A *body* (a message, a
//! post, a comment, a bio) may hold lines and tabs and any script's marks, but no other
//! control character, NUL included.

use crate::error::{Error, Result};

/// Invisible characters a name may not hold (besides control characters).
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                  // soft hyphen
        | '\u{034F}'                // combining grapheme joiner
        | '\u{061C}'                // Arabic letter mark
        | '\u{115F}' | '\u{1160}'   // Hangul fillers
        | '\u{180E}'                // Mongolian vowel separator
        | '\u{200B}'                // zero-width space
        | '\u{200E}' | '\u{200F}'   // left-to-right and right-to-left marks
        | '\u{202A}'..='\u{202E}'   // bidirectional embeddings and overrides
        | '\u{2028}' | '\u{2029}'   // line and paragraph separators
        | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}'   // bidirectional isolates
        | '\u{206A}'..='\u{206F}'   // deprecated format characters
        | '\u{3164}'                // Hangul filler
        | '\u{FEFF}'                // byte-order mark, zero-width no-break space
        | '\u{FFA0}'                // halfwidth Hangul filler
        | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotations
    )
}

/// A name: trimmed, 1 to `max_chars` characters, nothing control or invisible.
pub fn name(field: &'static str, value: &str, max_chars: usize) -> Result<String> {
    let trimmed = value.trim();
    let count = trimmed.chars().count();
    if count == 0 || count > max_chars {
        return Err(Error::invalid(
            field,
            format!("1 to {max_chars} characters (got {count})"),
        ));
    }
    if let Some(c) = trimmed.chars().find(|&c| c.is_control() || invisible(c)) {
        return Err(Error::invalid(
            field,
            format!(
                "must not contain control or invisible formatting characters (U+{:04X})",
                c as u32
            ),
        ));
    }
    Ok(trimmed.to_owned())
}

/// A body's characters: no control character but newlines and tabs (NUL included).
pub fn body(field: &'static str, value: &str) -> Result<()> {
    match value
        .chars()
        .find(|&c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        Some(c) => Err(Error::invalid(
            field,
            format!(
                "must not contain control characters other than newlines and tabs (U+{:04X})",
                c as u32
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_what_hides_or_reorders() {
        assert_eq!(name("n", "  Ann  ", 50).unwrap(), "Ann");
        assert_eq!(name("n", "Zoë 👩‍👩‍👧", 50).unwrap(), "Zoë 👩‍👩‍👧");
        assert_eq!(name("n", "می‌خواهم", 50).unwrap(), "می‌خواهم"); // ZWNJ stays
        for bad in [
            "",
            "   ",
            "a\u{0000}b",
            "admin\u{202E}gnp.exe",
            "a\u{2066}b",
            "ad\u{200B}min",
            "\u{FEFF}root",
            "x\u{200F}",
            "a\nb",
        ] {
            assert!(name("n", bad, 50).is_err(), "{bad:?}");
        }
        assert!(name("n", &"a".repeat(51), 50).is_err());
    }

    #[test]
    fn bodies_keep_lines_and_scripts_but_no_controls() {
        assert!(body("b", "line one\nline two\r\n\tindented \u{202E} مرحبا").is_ok());
        assert!(body("b", "nul \u{0000} here").is_err());
        assert!(body("b", "bell \u{0007}").is_err());
        assert!(body("b", "escape \u{001B}[31m").is_err());
    }
}

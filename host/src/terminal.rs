//! Text that reaches a terminal or a log line: whatever a plugin, a config
//! or a file said, it cannot move the cursor, ring the bell, start a new
//! line that looks like one of Plinth's, or reorder what is shown.

use std::borrow::Cow;

/// Characters a terminal acts on instead of showing: C0 and C1 controls,
/// DEL, and the Unicode bidirectional overrides and isolates ("Trojan
/// source").
fn acts_on_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with each such character written as an escape (`\u{1b}`, `\n`),
/// borrowed when there is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts_on_terminal) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if acts_on_terminal(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Longest run of non-blank text an error line repeats whole.
const MAX_WORD_CHARS: usize = 200;

/// An error message as one line: whitespace runs (a parser's newlines)
/// folded to one space, every word longer than a line's worth cut (a parser
/// quoting a megabyte value back), and control characters escaped.
pub fn one_line(message: &str) -> String {
    let words: Vec<String> = message
        .split_whitespace()
        .map(|word| {
            if word.chars().count() <= MAX_WORD_CHARS {
                return escape(word).into_owned();
            }
            let head: String = word.chars().take(MAX_WORD_CHARS / 2).collect();
            format!("{}…[{} bytes]", escape(&head), word.len())
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::{escape, one_line};

    #[test]
    fn one_line_folds_whitespace_and_cuts_huge_words() {
        let line = one_line(&format!(
            "invalid type:\n  string \"{}\", expected u16",
            "9".repeat(500_000)
        ));
        assert!(
            line.len() < 300 && line.contains("500003 bytes") && line.ends_with("expected u16"),
            "{line}"
        );
    }

    #[test]
    fn controls_newlines_and_bidi_overrides_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escape("ok\x1b[2J\x07\nplinth: error: forged\u{202e}"),
            "ok\\u{1b}[2J\\u{7}\\nplinth: error: forged\\u{202e}"
        );
        assert!(matches!(
            escape("plain é ünïcode"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
    }
}

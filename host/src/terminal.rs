//! Text that reaches a terminal, a log line, a journal entry or an HTTP
//! answer from somewhere Plinth does not control: a plugin's reason, a
//! server's error message, etcd's log, a name stored in etcd. Whatever it
//! says, it cannot move the cursor, ring the bell, start a new line that
//! looks like one of Plinth's (or a second `READY=1` in an sd_notify
//! datagram), or reorder what is shown.

use std::borrow::Cow;

/// Characters a terminal acts on instead of showing: C0 and C1 controls,
/// DEL, the Unicode bidirectional overrides and isolates ("Trojan source"),
/// and the zero-width characters that hide text.
fn acts_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
        )
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

/// `text` escaped, and cut after `max_chars` of it with `…`: for text of
/// any length shown where a line is expected.
pub fn clipped(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", escape(&text[..end])),
        None => escape(text).into_owned(),
    }
}

/// An error and its causes as [`one_line`], `: `-separated (a client
/// library's own text often says only "error sending request").
pub fn error_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        line.push_str(": ");
        line.push_str(&error.to_string());
        cause = error.source();
    }
    one_line(&line)
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
    use super::*;

    #[test]
    fn controls_newlines_bidi_and_zero_width_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escape("ok\x1b[2J\x07\nplinth: error: forged\u{202e}\u{200b}"),
            "ok\\u{1b}[2J\\u{7}\\nplinth: error: forged\\u{202e}\\u{200b}"
        );
        assert!(matches!(escape("plain é ünïcode"), Cow::Borrowed(_)));
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
    }

    #[test]
    fn clipped_cuts_on_characters_after_escaping_nothing_it_keeps() {
        assert_eq!(clipped("ééééé", 3), "ééé…");
        assert_eq!(clipped("short", 5), "short");
        assert_eq!(clipped("a\nb", 10), "a\\nb");
    }

    #[test]
    fn error_lines_follow_the_source_chain_on_one_line() {
        let io = std::io::Error::other("connection\n  refused\x1b");
        let outer = crate::data_dir::DataDirError::Prepare {
            path: "/d".into(),
            source: io,
        };
        assert_eq!(
            error_line(&outer),
            "cannot prepare the data dir /d: connection refused\\u{1b}"
        );
    }

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
}

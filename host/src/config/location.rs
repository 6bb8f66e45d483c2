//! Where in the user's YAML a problem is: every config error names the
//! file, line and column, so an operator goes straight to it.

use super::ConfigError;

/// A YAML error as `FILE:LINE:COLUMN: message`. serde_yaml knows no
/// location for an error about the document as a whole or one of its
/// top-level keys: an unknown top-level key is found by its name at the
/// start of a line, anything else is about the document's first line.
pub(super) fn syntax_error(origin: &str, text: &str, error: &serde_yaml::Error) -> ConfigError {
    let mut message = error.to_string();
    let (line, column) = match error.location() {
        Some(location) => {
            let suffix = format!(" at line {} column {}", location.line(), location.column());
            message = message.replacen(&suffix, "", 1);
            (location.line(), location.column())
        }
        None => {
            let key = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(key, _)| format!("{key}:"));
            let line = text
                .lines()
                .position(|line| key.as_deref().is_some_and(|key| line.starts_with(key)))
                .or_else(|| {
                    text.lines().position(|line| {
                        let line = line.trim();
                        !line.is_empty() && !line.starts_with('#') && line != "---"
                    })
                })
                .unwrap_or(0);
            (line + 1, 1)
        }
    };
    ConfigError::Syntax {
        origin: origin.to_owned(),
        line,
        column,
        message,
    }
}

/// The line and column of the dotted `key` (`spec.api.port`) in a
/// block-style YAML document, when the document writes it.
pub(super) fn line_of(text: &str, key: &str) -> Option<(usize, usize)> {
    let mut parts = key.split('.');
    let mut wanted = parts.next()?;
    let mut parent_indent = None;
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        if parent_indent.is_some_and(|parent| indent <= parent) {
            // Past the end of the parent's block: the key is not written.
            return None;
        }
        let is_wanted = content
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.trim_start().starts_with(':'));
        if is_wanted {
            match parts.next() {
                Some(next) => {
                    parent_indent = Some(indent);
                    wanted = next;
                }
                None => return Some((number + 1, indent + 1)),
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::line_of;

    #[test]
    fn a_key_is_found_under_its_parents_only() {
        let text = "spec:\n  api:\n    # the port\n    port: 0\n  network:\n    port: 1\n";
        assert_eq!(line_of(text, "spec.api.port"), Some((4, 5)));
        assert_eq!(line_of(text, "spec.network.port"), Some((6, 5)));
        assert_eq!(line_of(text, "spec.api.address"), None);
        assert_eq!(line_of("spec: {api: {port: 0}}\n", "spec.api.port"), None);
    }
}

//! Bounds on a config document, checked before it is deserialised: YAML
//! can make a small file large (an alias repeats what its anchor holds, and
//! aliases nest), and the parser underneath takes time quadratic in the
//! nesting of flow collections (`[[[[...`). Each limit is far above any
//! real ClusterConfig (a few KiB, six levels deep) and far below what hurts.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Deepest nesting of collections, block or flow.
pub(crate) const MAX_DEPTH: usize = 32;
/// Most nodes (scalars and collections) once every alias is expanded.
pub(crate) const MAX_NODES: usize = 20_000;
/// Most bytes of scalars once every alias is expanded.
pub(crate) const MAX_EXPANDED_BYTES: usize = 1 << 20;

/// Refuse a document whose flow collections nest deeper than
/// [`MAX_DEPTH`], by a scan of its text: the YAML parser would spend
/// minutes before its own recursion limit stopped it. Brackets inside
/// quoted scalars and comments do not count; the scan may over-count
/// brackets in a plain scalar, which only refuses a document nobody writes.
pub(crate) fn check_flow_depth(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    let mut at_line_start_or_space = true;
    while let Some(c) = chars.next() {
        match c {
            '#' if at_line_start_or_space => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' => {
                while let Some(c) = chars.next() {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!(
                        "collections are nested more than {MAX_DEPTH} levels deep; a ClusterConfig needs six"
                    ));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at_line_start_or_space = c.is_whitespace();
    }
    Ok(())
}

/// Walk the document as the deserialiser would see it, aliases expanded,
/// and refuse it when it exceeds [`MAX_NODES`], [`MAX_EXPANDED_BYTES`] or
/// [`MAX_DEPTH`]. The walk keeps nothing, so the check itself is cheap; it
/// stops at the first node past a limit.
pub(crate) fn check_expansion(text: &str) -> Result<(), String> {
    let mut budget = Budget {
        nodes: 0,
        bytes: 0,
        exceeded: None,
    };
    let result = Walk {
        budget: &mut budget,
        depth: 0,
    }
    .deserialize(serde_yaml::Deserializer::from_str(text));
    match (budget.exceeded, result) {
        (Some(limit), _) => Err(limit),
        // A syntax error is the real parse's to report, with its line.
        (None, _) => Ok(()),
    }
}

struct Budget {
    nodes: usize,
    bytes: usize,
    exceeded: Option<String>,
}

impl Budget {
    fn spend<E: de::Error>(&mut self, bytes: usize, depth: usize) -> Result<(), E> {
        self.nodes += 1;
        self.bytes += bytes;
        let exceeded = if depth > MAX_DEPTH {
            Some(format!(
                "collections are nested more than {MAX_DEPTH} levels deep; a ClusterConfig needs six"
            ))
        } else if self.nodes > MAX_NODES {
            Some(format!(
                "the document has more than {MAX_NODES} values once its aliases are expanded; write it out without aliases, or smaller"
            ))
        } else if self.bytes > MAX_EXPANDED_BYTES {
            Some(format!(
                "the document holds more than {} KiB of text once its aliases are expanded; write it out without aliases, or smaller",
                MAX_EXPANDED_BYTES / 1024
            ))
        } else {
            None
        };
        match exceeded {
            Some(message) => {
                self.exceeded = Some(message.clone());
                Err(E::custom(message))
            }
            None => Ok(()),
        }
    }
}

/// One node of the walk, `depth` collections down.
struct Walk<'a> {
    budget: &'a mut Budget,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Walk<'_> {
    fn child(&mut self) -> Walk<'_> {
        Walk {
            budget: self.budget,
            depth: self.depth + 1,
        }
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.budget.spend(1, self.depth)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.budget.spend(8, self.depth)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.budget.spend(8, self.depth)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.budget.spend(8, self.depth)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.budget.spend(text.len(), self.depth)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.budget.spend(0, self.depth)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.budget.spend(0, self.depth)
    }

    fn visit_some<D: Deserializer<'de>>(mut self, deserializer: D) -> Result<(), D::Error> {
        self.child().deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        mut self,
        deserializer: D,
    ) -> Result<(), D::Error> {
        self.child().deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.budget.spend(0, self.depth)?;
        while seq.next_element_seed(self.child())?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.budget.spend(0, self.depth)?;
        while map.next_key_seed(self.child())?.is_some() {
            map.next_value_seed(self.child())?;
        }
        Ok(())
    }

    fn visit_enum<A: de::EnumAccess<'de>>(mut self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!tag value`): count the tag, walk the value.
        use de::VariantAccess;
        let ((), variant) = data.variant_seed(self.child())?;
        variant.newtype_variant_seed(self.child())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_aliases_are_refused_before_they_expand() {
        // Nine levels of ten aliases each: 10^9 strings if expanded.
        let mut text = String::from("a0: &a0 [\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"]\n");
        for level in 1..10 {
            let prev = level - 1;
            let refs = vec![format!("*a{prev}"); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        let error = check_expansion(&text).unwrap_err();
        assert!(error.contains("aliases are expanded"), "{error}");
    }

    #[test]
    fn deep_flow_nesting_is_refused_by_the_scan_and_quotes_do_not_count() {
        let deep = format!("spec: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(check_flow_depth(&deep).unwrap_err().contains("nested"));
        let quoted = format!(
            "metadata: {{name: \"{}\"}}\n# {}\n",
            "[".repeat(100),
            "{".repeat(100)
        );
        check_flow_depth(&quoted).unwrap();
        check_expansion(crate::config::DEFAULT_YAML).unwrap();
    }
}

//! Commands (scripts) as users write them: a string split into words like
//! keepalived splits `script "/usr/bin/check --fast"`, an array of words,
//! or a table `{ command = ..., shell = true, user = "nobody" }`.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::schema::{Documented, DocumentedTable, Shape, Table};

/// A program to run. Without `shell` it is executed directly (no shell
/// expansion), which is what keepalived does too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandSpec {
    /// Program and arguments; with `shell`, one element holding the line.
    pub command: Vec<String>,
    /// Run through `/bin/sh -c`.
    pub shell: bool,
    /// Run as this user (`user` or `user:group`); the global
    /// `script_user` when absent.
    pub user: Option<String>,
}

impl Serialize for CommandSpec {
    /// An array of words when that says everything, else a table.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if !self.shell && self.user.is_none() {
            return self.command.serialize(s);
        }
        let mut map = s.serialize_map(None)?;
        if self.shell {
            map.serialize_entry("command", &self.command.join(" "))?;
            map.serialize_entry("shell", &true)?;
        } else {
            map.serialize_entry("command", &self.command)?;
        }
        if let Some(user) = &self.user {
            map.serialize_entry("user", user)?;
        }
        map.end()
    }
}

impl CommandSpec {
    /// A command from a line split into words, keepalived style.
    pub fn from_line(line: &str) -> Result<Self, String> {
        Ok(CommandSpec {
            command: split_words(line)?,
            shell: false,
            user: None,
        })
    }

    /// The program (first word), if any.
    pub fn program(&self) -> Option<&str> {
        if self.shell {
            // The first word of the shell line, when it is a plain path.
            self.command
                .first()
                .and_then(|line| line.split_whitespace().next())
        } else {
            self.command.first().map(String::as_str)
        }
    }
}

/// Splits a command line into words: whitespace separates, double or
/// single quotes group, backslash escapes the next character.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                    in_word = true;
                }
            }
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unterminated quote in command `{line}`"));
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("empty command".to_owned());
    }
    Ok(words)
}

/// The table form of a command.
#[derive(Deserialize, Documented)]
#[serde(deny_unknown_fields)]
struct CommandTable {
    /// The command line, or its words.
    #[key(required, keepalived = "the quoted script")]
    command: CommandWords,
    /// Run the line through `/bin/sh -c`.
    #[key(default_is = "false", vrrpd_only)]
    #[serde(default)]
    shell: bool,
    /// Run as this user (`user` or `user:group`).
    #[key(
        default_is = "`global.script_user`",
        keepalived = "USER [GROUP] after a notify script"
    )]
    #[serde(default)]
    user: Option<String>,
}

/// The keys of a command's table form, for vrrpd.toml(5).
pub(super) fn command_table() -> &'static Table {
    CommandTable::table()
}

impl Documented for CommandWords {
    fn shape() -> Shape {
        Shape::Value("a command line or an array of words")
    }
}

/// The `command` value inside a table: a line or an array of words.
enum CommandWords {
    Line(String),
    Words(Vec<String>),
}

impl<'de> Deserialize<'de> for CommandWords {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CommandWords;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command line or an array of words")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CommandWords, E> {
                Ok(CommandWords::Line(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<CommandWords, A::Error> {
                let spec = CommandVisitor { allow_table: false }.visit_seq(seq)?;
                Ok(CommandWords::Words(spec.command))
            }
        }
        d.deserialize_any(V)
    }
}

struct CommandVisitor {
    allow_table: bool,
}

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = CommandSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.allow_table {
            f.write_str("a command line, an array of words, or a table { command = ..., shell = ..., user = ... }")
        } else {
            f.write_str("a command line or an array of words")
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<CommandSpec, E> {
        CommandSpec::from_line(v).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CommandSpec, A::Error> {
        let mut command = Vec::new();
        while let Some(word) = seq.next_element::<String>()? {
            command.push(word);
        }
        if command.is_empty() || command[0].is_empty() {
            return Err(de::Error::custom("empty command"));
        }
        Ok(CommandSpec {
            command,
            shell: false,
            user: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CommandSpec, A::Error> {
        if !self.allow_table {
            return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
        }
        let t = CommandTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
        let command = match (t.command, t.shell) {
            (CommandWords::Line(line), true) if !line.trim().is_empty() => vec![line],
            // A shell line given as words is the same line joined.
            (CommandWords::Words(words), true) => vec![words.join(" ")],
            (CommandWords::Line(line), _) => split_words(&line).map_err(de::Error::custom)?,
            (CommandWords::Words(words), false) => words,
        };
        Ok(CommandSpec {
            command,
            shell: t.shell,
            user: t.user,
        })
    }
}

impl<'de> Deserialize<'de> for CommandSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CommandVisitor { allow_table: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct T {
        c: CommandSpec,
    }

    #[test]
    fn splits_like_keepalived() {
        assert_eq!(
            split_words(r#"/usr/bin/check "a b" c\ d 'e'"#),
            Ok(vec![
                "/usr/bin/check".to_owned(),
                "a b".to_owned(),
                "c d".to_owned(),
                "e".to_owned()
            ])
        );
        assert!(split_words("\"open").is_err());
        assert!(split_words("   ").is_err());
    }

    #[test]
    fn three_forms() {
        let t: T = toml::from_str("c = \"pidof nginx\"").expect("string");
        assert_eq!(t.c.command, ["pidof", "nginx"]);
        let t: T = toml::from_str("c = [\"curl\", \"-sf\", \"http://127.0.0.1/\"]").expect("array");
        assert_eq!(t.c.command.len(), 3);
        let t: T = toml::from_str(
            "c = { command = \"test -f /x || exit 1\", shell = true, user = \"nobody\" }",
        )
        .expect("table");
        assert!(t.c.shell);
        assert_eq!(t.c.program(), Some("test"));
        assert_eq!(t.c.user.as_deref(), Some("nobody"));
        assert!(toml::from_str::<T>("c = []").is_err());
        assert!(toml::from_str::<T>("c = 3").is_err());
        assert!(toml::from_str::<T>("c = { command = \"x\", bogus = 1 }").is_err());
    }
}

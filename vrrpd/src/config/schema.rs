//! The configuration schema as data, for vrrpd.toml(5): every table of
//! [`super::raw`] derives [`Documented`] (vrrpd-schema-derive), which
//! lists its keys with their doc comments, serde names and aliases, what
//! `#[key(...)]` says (default, keepalived name) and, through the field
//! types, the tables nested in them. A field whose type has no
//! `Documented` does not compile; a key without a default or a keepalived
//! name fails `manual::config_page`'s tests.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use vrrp_core::{Priority, Vrid};

pub use vrrpd_schema_derive::Documented;

use super::command::CommandSpec;
use super::duration::Dur;

/// A type a key can hold.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not `Documented`: vrrpd.toml(5) cannot say what a key of this type holds",
    note = "derive(Documented) on a table struct or an enum of names; for a single value, add the type to `value!` in config/schema.rs"
)]
pub trait Documented {
    /// What a value of it is written as.
    fn shape() -> Shape;
}

/// A struct that is a table of keys.
pub trait DocumentedTable {
    /// Its keys.
    fn table() -> &'static Table;
}

/// What a key's value is written as.
#[derive(Clone, Copy)]
pub enum Shape {
    /// A single value: "integer", "duration", ...
    Value(&'static str),
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// A table with its own keys.
    Table(fn() -> &'static Table),
    /// An array of these.
    List(fn() -> Shape),
    /// Tables named by the user: `[section.NAME]`.
    Named(fn() -> Shape),
    /// A string (described) or, for more options, a table.
    StringOrTable(&'static str, fn() -> &'static Table),
}

/// A table: its doc comment and its keys, in declaration order.
pub struct Table {
    /// The Rust type (to tell tables apart).
    pub type_name: &'static str,
    /// Its doc comment.
    pub doc: &'static str,
    /// Its keys.
    pub keys: &'static [Key],
}

/// One key of a table.
pub struct Key {
    /// The TOML name.
    pub name: &'static str,
    /// Other names accepted (keepalived's spellings).
    pub aliases: &'static [&'static str],
    /// The field's doc comment.
    pub doc: &'static str,
    /// The value taken when it is not written (`None`: not said).
    pub default: Option<DefaultValue>,
    /// keepalived's equivalent (`None`: not said).
    pub keepalived: Option<Keepalived>,
    /// What the value is, when the type does not say it well.
    pub value: Option<&'static str>,
    /// The type's shape.
    pub shape: fn() -> Shape,
}

/// A key's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultValue {
    /// This TOML value (what `vrrpd check` prints).
    Toml(&'static str),
    /// Depends on something else, as said.
    Text(&'static str),
    /// None: the key must be written.
    Required,
}

/// A key's keepalived equivalent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keepalived {
    /// The keyword of the same name.
    Same,
    /// This keyword or form.
    Named(&'static str),
    /// keepalived has no such setting.
    None,
}

impl Shape {
    /// The table holding keys, for a table, an array of tables or named
    /// tables (not the table form of a string-or-table value).
    pub fn table(self) -> Option<&'static Table> {
        match self {
            Shape::Table(t) => Some(t()),
            Shape::List(inner) | Shape::Named(inner) => inner().table(),
            Shape::Value(_) | Shape::Choice(_) | Shape::StringOrTable(..) => None,
        }
    }
}

macro_rules! value {
    ($($ty:ty => $what:expr),* $(,)?) => {
        $(impl Documented for $ty {
            fn shape() -> Shape {
                Shape::Value($what)
            }
        })*
    };
}

value! {
    bool => "boolean",
    u8 => "integer",
    u16 => "integer",
    u32 => "integer",
    usize => "integer",
    i32 => "integer",
    String => "string",
    Dur => "duration",
    IpAddr => "IP address",
    SocketAddr => "address:port",
    Vrid => "integer 1..255",
    Priority => "integer 1..255",
    super::raw::UseVmac => "true, or an interface name",
    super::raw::Lifetime => "seconds, or \"forever\"",
    super::raw::Fifo => "a FIFO path, or { path = PATH, user = \"user[:group]\" }",
}

/// The keys of a command's table form (`{ command = ..., shell = ...,
/// user = ... }`).
pub fn command_table() -> &'static Table {
    super::command::command_table()
}

impl Documented for CommandSpec {
    fn shape() -> Shape {
        Shape::StringOrTable(
            "a command line or an array of words",
            super::command::command_table,
        )
    }
}

impl<T: Documented> Documented for Option<T> {
    fn shape() -> Shape {
        T::shape()
    }
}

impl<T: Documented> Documented for Vec<T> {
    fn shape() -> Shape {
        Shape::List(T::shape)
    }
}

impl<T: Documented> Documented for BTreeMap<String, T> {
    fn shape() -> Shape {
        Shape::Named(T::shape)
    }
}

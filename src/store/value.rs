//! Column values: how each Rust field type is written to and read from both backends.
//!
//! The store builds its SQL from table descriptions (see `entities.rs`); this module is the
//! one place that knows how a field type maps to a column of SQLite and of PostgreSQL.
//! It does not know tables or queries.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use crate::secret::Secret;

/// One column value, ready to bind. `None` binds SQL NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
    Time(Option<DateTime<Utc>>),
}

/// The text form of timestamps on SQLite: fixed width, UTC, microseconds, so that text order
/// is time order and range filters work with plain comparisons.
pub fn sqlite_timestamp(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// What kind of value a column holds: how a filter typed as text is read for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Int,
    Text,
    Bool,
    Time,
    /// Text that is a secret: never filtered on, never written to the audit log.
    Secret,
}

/// A Rust type that can be stored in one column.
pub trait Field: Sized {
    /// The kind of column it is stored in.
    const KIND: ColumnKind;
    fn to_value(&self) -> Value;
    /// # Errors
    /// The column is missing or holds a value of another type.
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, sqlx::Error>;
    /// # Errors
    /// The column is missing or holds a value of another type.
    fn from_pg(row: &PgRow, column: &str) -> Result<Self, sqlx::Error>;
}

macro_rules! native_field {
    ($ty:ty, $kind:ident, |$v:ident| $to:expr) => {
        impl Field for $ty {
            const KIND: ColumnKind = ColumnKind::$kind;
            fn to_value(&self) -> Value {
                let $v = self;
                $to
            }
            fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, sqlx::Error> {
                row.try_get(column)
            }
            fn from_pg(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
                row.try_get(column)
            }
        }
    };
}

native_field!(i64, Int, |v| Value::Int(Some(*v)));
native_field!(Option<i64>, Int, |v| Value::Int(*v));
native_field!(String, Text, |v| Value::Text(Some(v.clone())));
native_field!(Option<String>, Text, |v| Value::Text(v.clone()));
native_field!(bool, Bool, |v| Value::Bool(*v));
native_field!(DateTime<Utc>, Time, |v| Value::Time(Some(*v)));
native_field!(Option<DateTime<Utc>>, Time, |v| Value::Time(*v));

impl Field for Secret {
    const KIND: ColumnKind = ColumnKind::Secret;
    fn to_value(&self) -> Value {
        Value::Text(Some(self.expose().to_owned()))
    }
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, sqlx::Error> {
        row.try_get::<String, _>(column).map(Secret::new)
    }
    fn from_pg(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        row.try_get::<String, _>(column).map(Secret::new)
    }
}

/// The error for a text column whose value is not one of an enum's names.
#[derive(Debug, thiserror::Error)]
#[error("{value:?} is not a valid {type_name}; expected one of {expected}")]
pub struct UnknownVariant {
    pub type_name: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Defines an enum stored as text: its names are the database values, the JSON values and what
/// operators type. Generates `as_str`, `FromStr`, `Display`, serde and [`Field`].
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        /// The first variant is the default (the database's column default too).
        impl Default for $name {
            fn default() -> Self {
                Self::ALL[0]
            }
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::store::value::UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::store::value::UnknownVariant {
                        type_name: stringify!($name),
                        value: s.to_owned(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::store::value::Field for $name {
            const KIND: $crate::store::value::ColumnKind = $crate::store::value::ColumnKind::Text;
            fn to_value(&self) -> $crate::store::value::Value {
                $crate::store::value::Value::Text(Some(self.as_str().to_owned()))
            }
            fn from_sqlite(row: &sqlx::sqlite::SqliteRow, column: &str) -> Result<Self, sqlx::Error> {
                let text: String = sqlx::Row::try_get(row, column)?;
                text.parse().map_err(|e| sqlx::Error::ColumnDecode { index: column.to_owned(), source: Box::new(e) })
            }
            fn from_pg(row: &sqlx::postgres::PgRow, column: &str) -> Result<Self, sqlx::Error> {
                let text: String = sqlx::Row::try_get(row, column)?;
                text.parse().map_err(|e| sqlx::Error::ColumnDecode { index: column.to_owned(), source: Box::new(e) })
            }
        }
    };
}

//! Store errors, each saying whose fault it is: the caller's data (duplicate, number taken,
//! reference, check, append-only, not found) or the database (unavailable, other).

use std::time::Duration;

use super::entities::OwnerKind;

/// An error from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The number is already used by another extension, IVR, queue or conference.
    #[error("number {number} is already used by {}", describe_owner(*.owner))]
    NumberTaken {
        number: String,
        owner: Option<(OwnerKind, i64)>,
    },
    /// A unique column already holds this value in another row.
    #[error("{table}: duplicate value ({detail})")]
    Duplicate { table: &'static str, detail: String },
    /// A referenced row does not exist, or the row is still referenced by others.
    #[error("{table}: reference refused ({detail})")]
    Reference { table: &'static str, detail: String },
    /// A value was refused by a check constraint or a NOT NULL column.
    #[error("{table}: value refused ({detail})")]
    Invalid { table: &'static str, detail: String },
    /// The table keeps every row forever: UPDATE and DELETE are refused by the database.
    #[error("{table} is append-only: rows can not be changed or deleted")]
    AppendOnly { table: &'static str },
    /// No row with this id.
    #[error("{table} {id} does not exist")]
    NotFound { table: &'static str, id: i64 },
    /// A filter or order named a column the table does not have (a caller bug).
    #[error("{table} has no column {column:?}")]
    UnknownColumn { table: &'static str, column: String },
    /// The database could not be reached within the configured time.
    #[error("database unreachable after {waited:?}: {source}")]
    Unavailable {
        waited: Duration,
        #[source]
        source: sqlx::Error,
    },
    /// The database URL is not one this build understands.
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// Applying migrations failed.
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

fn describe_owner(owner: Option<(OwnerKind, i64)>) -> String {
    match owner {
        Some((kind, id)) => format!("{kind} {id}"),
        None => "another entry of the numbering plan".to_owned(),
    }
}

impl StoreError {
    /// Classifies a database error raised while writing `table`.
    pub(crate) fn from_sqlx(table: &'static str, err: sqlx::Error) -> Self {
        let sqlx::Error::Database(db) = &err else {
            return StoreError::Database(err);
        };
        let message = db.message().to_owned();
        if message.contains("append-only") {
            return StoreError::AppendOnly { table };
        }
        let detail = match db.constraint() {
            Some(constraint) => format!("{message} [{constraint}]"),
            None => message.clone(),
        };
        match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation if detail.contains("numbering_plan") => {
                StoreError::NumberTaken {
                    number: String::new(),
                    owner: None,
                }
            }
            sqlx::error::ErrorKind::UniqueViolation => StoreError::Duplicate { table, detail },
            sqlx::error::ErrorKind::ForeignKeyViolation => StoreError::Reference { table, detail },
            // SQLite reports `on delete restrict` as a trigger constraint, not a foreign key.
            _ if message.contains("FOREIGN KEY constraint failed") => {
                StoreError::Reference { table, detail }
            }
            sqlx::error::ErrorKind::CheckViolation | sqlx::error::ErrorKind::NotNullViolation => {
                StoreError::Invalid { table, detail }
            }
            _ => StoreError::Database(err),
        }
    }
}

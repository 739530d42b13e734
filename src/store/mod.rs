//! Persistence: the data model on SQLite (embedded default) or PostgreSQL, through sqlx.
//!
//! One [`Store`] hides the backend. Every table is described by an [`Entity`] (see
//! `entities.rs`), and the generic operations here — insert, get, update, delete, list — build
//! their SQL from that description, so both backends run the same code. Migrations are
//! embedded in the binary and applied by [`Store::migrate`]. Database rules (foreign keys, the
//! numbering plan, append-only CDRs) live in the schema itself; this module turns their errors
//! into [`StoreError`]s that say what was refused.
//!
//! What this module does not do: cache, decide what a configuration means (that is
//! `pbx::snapshot`), or know anything about SIP.
#![allow(clippy::disallowed_methods)] // IO driver: connects with retry, sleeps between tries

pub mod entities;
mod error;
pub mod seed;
pub mod value;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, Postgres, Row, SqlSafeStr, Sqlite, Transaction};

pub use entities::*;
pub use error::StoreError;
use value::{Value, sqlite_timestamp};

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        }
    }
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Keep retrying an unreachable PostgreSQL for this long before giving up.
    pub retry_for: Duration,
    /// Pool size.
    pub max_connections: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            retry_for: Duration::from_secs(60),
            max_connections: 8,
        }
    }
}

/// The database: a connection pool on one of the two backends. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on either backend. Dropped without [`Tx::commit`] it rolls back.
pub struct Tx {
    inner: TxInner,
}

enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// A borrowed connection of either backend: what the generic operations run on.
enum Conn<'a> {
    Sqlite(&'a mut sqlx::SqliteConnection),
    Postgres(&'a mut sqlx::PgConnection),
}

enum Rows {
    Sqlite(Vec<SqliteRow>),
    Postgres(Vec<PgRow>),
}

/// Filters, order and paging for [`Store::list`].
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// `column = value` conditions, all of which must hold.
    pub equals: Vec<(String, Value)>,
    /// `column <op> value` conditions, all of which must hold (besides `equals`).
    pub compares: Vec<(String, Compare, Value)>,
    /// Column to order by, then `id`. Default: `id`.
    pub order_by: Option<String>,
    /// Newest (largest) first instead of ascending. NULLs come first ascending, last
    /// descending, on both backends.
    pub descending: bool,
    /// Keyset paging: only rows after this (value of `order_by`, id) in the query's order.
    /// The value must not be NULL.
    pub after: Option<(Value, i64)>,
    pub limit: Option<i64>,
    pub offset: i64,
}

/// A comparison of [`ListQuery::compares`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    /// The text column contains the value (SQL `like`, with `%` and `_` in the value taken
    /// literally).
    Contains,
}

impl Compare {
    fn operator(self) -> &'static str {
        match self {
            Compare::Less => "<",
            Compare::LessOrEqual => "<=",
            Compare::Greater => ">",
            Compare::GreaterOrEqual => ">=",
            Compare::Contains => "like",
        }
    }
}

impl ListQuery {
    /// Only rows whose `column` equals `value`.
    pub fn filter(mut self, column: &str, value: Value) -> Self {
        self.equals.push((column.to_owned(), value));
        self
    }

    /// Only rows where `column <op> value`.
    pub fn compare(mut self, column: &str, op: Compare, value: Value) -> Self {
        self.compares.push((column.to_owned(), op, value));
        self
    }

    pub fn order_by(mut self, column: &str) -> Self {
        self.order_by = Some(column.to_owned());
        self
    }
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "schema",
    include_str!("../../migrations/sqlite/0001_schema.sql"),
)];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "schema",
    include_str!("../../migrations/postgres/0001_schema.sql"),
)];

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://...`). A missing SQLite file is
    /// created. An unreachable PostgreSQL is retried with backoff for `options.retry_for`.
    ///
    /// # Errors
    /// An unsupported URL, or a database that stays unreachable.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            return Self::connect_sqlite(url, options).await;
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Self::connect_postgres(url, options).await;
        }
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }

    async fn connect_sqlite(url: &str, options: &ConnectOptions) -> Result<Store, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl(url.to_owned()))?
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = connect.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .connect_with(connect)
            .await
            .map_err(StoreError::Database)?;
        Ok(Store {
            backend: Backend::Sqlite(pool),
        })
    }

    async fn connect_postgres(url: &str, options: &ConnectOptions) -> Result<Store, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl(url.to_owned()))?;
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(250);
        // Probe with single connections (they fail fast when the server is down), then open
        // the pool once the server answers.
        loop {
            let left = options.retry_for.saturating_sub(started.elapsed());
            let attempt = tokio::time::timeout(
                left.clamp(Duration::from_secs(1), Duration::from_secs(10)),
                sqlx::PgConnection::connect_with(&connect),
            )
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut));
            match attempt {
                Ok(probe) => {
                    let _ = probe.close().await;
                    break;
                }
                Err(err)
                    if is_transient(&err) && started.elapsed() + delay <= options.retry_for =>
                {
                    tracing::warn!(error = %err, retry_in = ?delay, "PostgreSQL unreachable, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(err) => {
                    return Err(StoreError::Unavailable {
                        waited: started.elapsed(),
                        source: err,
                    });
                }
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await
            .map_err(StoreError::Database)?;
        Ok(Store {
            backend: Backend::Postgres(pool),
        })
    }

    pub fn backend(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Applies the embedded migrations that are not applied yet. Idempotent.
    ///
    /// # Errors
    /// A migration fails, or the database holds migrations this binary does not know.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let (list, migrator_result) = match &self.backend {
            Backend::Sqlite(pool) => {
                let m = migrator(SQLITE_MIGRATIONS);
                (SQLITE_MIGRATIONS, m.run(pool).await)
            }
            Backend::Postgres(pool) => {
                let m = migrator(POSTGRES_MIGRATIONS);
                (POSTGRES_MIGRATIONS, m.run(pool).await)
            }
        };
        migrator_result?;
        tracing::debug!(migrations = list.len(), "database schema is current");
        Ok(())
    }

    /// Begins a transaction for writing. On SQLite it takes the write lock at once (`begin
    /// immediate`): a transaction that read first and wrote later would fail at once, past
    /// the busy timeout, whenever another connection wrote in between.
    ///
    /// # Errors
    /// The database refuses or is unreachable.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let inner = match &self.backend {
            Backend::Sqlite(pool) => TxInner::Sqlite(
                pool.begin_with("begin immediate")
                    .await
                    .map_err(StoreError::Database)?,
            ),
            Backend::Postgres(pool) => {
                TxInner::Postgres(pool.begin().await.map_err(StoreError::Database)?)
            }
        };
        Ok(Tx { inner })
    }

    /// Begins a read-only transaction that sees one consistent state of the whole database
    /// (SQLite: one read transaction; PostgreSQL: repeatable read), for building snapshots.
    ///
    /// # Errors
    /// The database refuses or is unreachable.
    pub async fn begin_consistent_read(&self) -> Result<Tx, StoreError> {
        let mut tx = match &self.backend {
            Backend::Sqlite(pool) => Tx {
                inner: TxInner::Sqlite(pool.begin().await.map_err(StoreError::Database)?),
            },
            Backend::Postgres(_) => self.begin().await?,
        };
        if let TxInner::Postgres(pg) = &mut tx.inner {
            sqlx::query("set transaction isolation level repeatable read, read only")
                .execute(&mut **pg)
                .await
                .map_err(StoreError::Database)?;
        }
        Ok(tx)
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        match &self.backend {
            Backend::Sqlite(pool) => match pool.acquire().await {
                Ok(mut c) => c.ping().await.is_ok(),
                Err(_) => false,
            },
            Backend::Postgres(pool) => match pool.acquire().await {
                Ok(mut c) => c.ping().await.is_ok(),
                Err(_) => false,
            },
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }

    /// Runs raw SQL (several statements allowed) outside the entity model. For tests and
    /// maintenance; the application itself goes through the typed operations.
    ///
    /// # Errors
    /// Whatever the database says, classified for `table`.
    pub async fn execute_raw(&self, table: &'static str, sql: &str) -> Result<u64, StoreError> {
        let result = match &self.backend {
            Backend::Sqlite(pool) => sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
            Backend::Postgres(pool) => sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        };
        result.map_err(|e| StoreError::from_sqlx(table, e))
    }
}

/// Generates the typed operations on both [`Store`] (each on its own pooled connection,
/// autocommit) and [`Tx`] (inside the transaction).
macro_rules! operations {
    ($(
        $(#[$meta:meta])*
        fn $name:ident<$($g:ident: $bound:path),*>($($arg:ident: $ty:ty),*) -> $ret:ty;
    )*) => {
        impl Store {
            $(
                $(#[$meta])*
                pub async fn $name<$($g: $bound),*>(&self, $($arg: $ty),*) -> Result<$ret, StoreError> {
                    match &self.backend {
                        Backend::Sqlite(pool) => {
                            let mut c = pool.acquire().await.map_err(StoreError::Database)?;
                            ops::$name::<$($g),*>(Conn::Sqlite(&mut *c), $($arg),*).await
                        }
                        Backend::Postgres(pool) => {
                            let mut c = pool.acquire().await.map_err(StoreError::Database)?;
                            ops::$name::<$($g),*>(Conn::Postgres(&mut *c), $($arg),*).await
                        }
                    }
                }
            )*
        }
        impl Tx {
            $(
                $(#[$meta])*
                pub async fn $name<$($g: $bound),*>(&mut self, $($arg: $ty),*) -> Result<$ret, StoreError> {
                    ops::$name::<$($g),*>(self.conn(), $($arg),*).await
                }
            )*
        }
    };
}

operations! {
    /// Inserts `entity` (its `id` is ignored) and returns the new id.
    ///
    /// # Errors
    /// The database refuses the row: see [`StoreError`].
    fn insert<E: Entity>(entity: &E) -> i64;
    /// The row with this id, if any.
    ///
    /// # Errors
    /// Database failure.
    fn get<E: Entity>(id: i64) -> Option<E>;
    /// Rewrites every column of the row `entity.id()`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::AppendOnly`], or a refused value.
    fn update<E: Entity>(entity: &E) -> ();
    /// Deletes the row with this id.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::AppendOnly`], or the row is still referenced.
    fn delete<E: Entity>(id: i64) -> ();
    /// Rows matching `query`, ordered and paged as it says.
    ///
    /// # Errors
    /// A filter names an unknown column, or database failure.
    fn list<E: Entity>(query: &ListQuery) -> Vec<E>;
    /// Every row of the table, by id.
    ///
    /// # Errors
    /// Database failure.
    fn all<E: Entity>() -> Vec<E>;
    /// How many rows match `query` (paging ignored).
    ///
    /// # Errors
    /// A filter names an unknown column, or database failure.
    fn count<E: Entity>(query: &ListQuery) -> i64;
    /// Inserts `entity`, or, when a row with the same values in `conflict` (a unique key)
    /// exists, rewrites that row's other columns. One statement on both backends.
    ///
    /// # Errors
    /// A column named in `conflict` does not exist, or the database refuses the row.
    fn upsert<E: Entity>(entity: &E, conflict: &[&str]) -> ();
    /// [`Store::upsert`] for many rows, in multi-row statements (a round trip per 200 rows
    /// instead of per row). Rows must not repeat a `conflict` key within one call.
    ///
    /// # Errors
    /// As [`Store::upsert`].
    fn upsert_many<E: Entity>(entities: &[E], conflict: &[&str]) -> ();
    /// Deletes every row matching `query` (its filters; paging ignored); returns how many.
    ///
    /// # Errors
    /// A filter names an unknown column, the table is append-only, or database failure.
    fn delete_where<E: Entity>(query: &ListQuery) -> u64;
    /// Who owns `number` in the numbering plan, if anyone.
    ///
    /// # Errors
    /// Database failure.
    fn number_owner<>(number: &str) -> Option<(OwnerKind, i64)>;
    /// A value of the `meta` table.
    ///
    /// # Errors
    /// Database failure.
    fn meta<>(key: &str) -> Option<String>;
    /// Sets a value of the `meta` table.
    ///
    /// # Errors
    /// Database failure.
    fn set_meta<>(key: &str, value: &str) -> ();
    /// Sets one column of the row `id`, leaving the others as they are.
    ///
    /// # Errors
    /// An unknown column, [`StoreError::NotFound`], or a refused value.
    fn set_column<E: Entity>(id: i64, column: &str, value: Value) -> ();
    /// Whether `table` (a table name of the data model, never caller input) has a row `id`.
    ///
    /// # Errors
    /// Database failure.
    fn exists<>(table: &'static str, id: i64) -> bool;
}

impl Tx {
    fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => Conn::Sqlite(tx),
            TxInner::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    /// Commits the transaction.
    ///
    /// # Errors
    /// The database refuses the commit.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await,
            TxInner::Postgres(tx) => tx.commit().await,
        }
        .map_err(StoreError::Database)
    }
}

fn migrator(list: &[(i64, &str, &'static str)]) -> Migrator {
    let migrations = list
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Owned(description.to_owned()),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // "the database system is starting up" / "too many connections"
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57P03" | "53300")),
        _ => false,
    }
}

/// The generic operations, written once against [`Conn`].
mod ops {
    use super::*;

    pub(super) async fn insert<E: Entity>(
        mut conn: Conn<'_>,
        entity: &E,
    ) -> Result<i64, StoreError> {
        if let Some(kind) = E::NUMBERED {
            check_number_free::<E>(&mut conn, kind, entity, 0).await?;
        }
        let columns = quoted_columns(E::COLUMNS);
        let placeholders = vec!["?"; E::COLUMNS.len()].join(", ");
        let sql = format!(
            "insert into {} ({columns}) values ({placeholders}) returning id",
            E::TABLE
        );
        let rows = fetch(&mut conn, E::TABLE, &sql, entity.values()).await?;
        first_i64(&rows).ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    pub(super) async fn get<E: Entity>(
        mut conn: Conn<'_>,
        id: i64,
    ) -> Result<Option<E>, StoreError> {
        let sql = format!(
            "select {} from {} where id = ?",
            select_list(E::COLUMNS),
            E::TABLE
        );
        let rows = fetch(&mut conn, E::TABLE, &sql, vec![Value::Int(Some(id))]).await?;
        Ok(decode::<E>(rows)?.into_iter().next())
    }

    pub(super) async fn update<E: Entity>(
        mut conn: Conn<'_>,
        entity: &E,
    ) -> Result<(), StoreError> {
        if let Some(kind) = E::NUMBERED {
            check_number_free::<E>(&mut conn, kind, entity, entity.id()).await?;
        }
        let assignments = E::COLUMNS
            .iter()
            .map(|c| format!("\"{c}\" = ?"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("update {} set {assignments} where id = ?", E::TABLE);
        let mut args = entity.values();
        args.push(Value::Int(Some(entity.id())));
        let affected = execute(&mut conn, E::TABLE, &sql, args).await?;
        if affected == 0 {
            return Err(StoreError::NotFound {
                table: E::TABLE,
                id: entity.id(),
            });
        }
        Ok(())
    }

    pub(super) async fn delete<E: Entity>(mut conn: Conn<'_>, id: i64) -> Result<(), StoreError> {
        let sql = format!("delete from {} where id = ?", E::TABLE);
        let affected = execute(&mut conn, E::TABLE, &sql, vec![Value::Int(Some(id))]).await?;
        if affected == 0 {
            return Err(StoreError::NotFound {
                table: E::TABLE,
                id,
            });
        }
        Ok(())
    }

    pub(super) async fn list<E: Entity>(
        mut conn: Conn<'_>,
        query: &ListQuery,
    ) -> Result<Vec<E>, StoreError> {
        let (where_clause, mut args) = where_clause::<E>(query)?;
        let (direction, nulls) = if query.descending {
            (" desc", " nulls last")
        } else {
            ("", " nulls first")
        };
        let order = match &query.order_by {
            Some(column) => format!(
                "\"{}\"{direction}{nulls}, id{direction}",
                known_column::<E>(column)?
            ),
            None => format!("id{direction}"),
        };
        let mut sql = format!(
            "select {} from {}{where_clause} order by {order}",
            select_list(E::COLUMNS),
            E::TABLE
        );
        if let Some(limit) = query.limit {
            sql.push_str(" limit ? offset ?");
            args.push(Value::Int(Some(limit)));
            args.push(Value::Int(Some(query.offset)));
        }
        let rows = fetch(&mut conn, E::TABLE, &sql, args).await?;
        decode::<E>(rows)
    }

    pub(super) async fn all<E: Entity>(conn: Conn<'_>) -> Result<Vec<E>, StoreError> {
        list::<E>(conn, &ListQuery::default()).await
    }

    pub(super) async fn count<E: Entity>(
        mut conn: Conn<'_>,
        query: &ListQuery,
    ) -> Result<i64, StoreError> {
        let (where_clause, args) = where_clause::<E>(query)?;
        let sql = format!("select count(*) from {}{where_clause}", E::TABLE);
        let rows = fetch(&mut conn, E::TABLE, &sql, args).await?;
        Ok(first_i64(&rows).unwrap_or(0))
    }

    pub(super) async fn upsert<E: Entity>(
        mut conn: Conn<'_>,
        entity: &E,
        conflict: &[&str],
    ) -> Result<(), StoreError> {
        for column in conflict {
            known_column::<E>(column)?;
        }
        let updates = E::COLUMNS
            .iter()
            .filter(|c| !conflict.contains(c))
            .map(|c| format!("\"{c}\" = excluded.\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "insert into {} ({}) values ({}) on conflict ({}) do update set {updates}",
            E::TABLE,
            quoted_columns(E::COLUMNS),
            vec!["?"; E::COLUMNS.len()].join(", "),
            quoted_columns(conflict),
        );
        execute(&mut conn, E::TABLE, &sql, entity.values()).await?;
        Ok(())
    }

    pub(super) async fn upsert_many<E: Entity>(
        mut conn: Conn<'_>,
        entities: &[E],
        conflict: &[&str],
    ) -> Result<(), StoreError> {
        const ROWS_PER_STATEMENT: usize = 200;
        for column in conflict {
            known_column::<E>(column)?;
        }
        let updates = E::COLUMNS
            .iter()
            .filter(|c| !conflict.contains(c))
            .map(|c| format!("\"{c}\" = excluded.\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let row = format!("({})", vec!["?"; E::COLUMNS.len()].join(", "));
        for chunk in entities.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "insert into {} ({}) values {} on conflict ({}) do update set {updates}",
                E::TABLE,
                quoted_columns(E::COLUMNS),
                vec![row.as_str(); chunk.len()].join(", "),
                quoted_columns(conflict),
            );
            let args = chunk.iter().flat_map(Entity::values).collect();
            execute(&mut conn, E::TABLE, &sql, args).await?;
        }
        Ok(())
    }

    pub(super) async fn delete_where<E: Entity>(
        mut conn: Conn<'_>,
        query: &ListQuery,
    ) -> Result<u64, StoreError> {
        let (where_clause, args) = where_clause::<E>(query)?;
        let sql = format!("delete from {}{where_clause}", E::TABLE);
        execute(&mut conn, E::TABLE, &sql, args).await
    }

    pub(super) async fn number_owner(
        mut conn: Conn<'_>,
        number: &str,
    ) -> Result<Option<(OwnerKind, i64)>, StoreError> {
        let sql = "select owner_kind, owner_id from numbering_plan where number = ?";
        let rows = fetch(&mut conn, "numbering_plan", sql, vec![text(number)]).await?;
        let pair = match rows {
            Rows::Sqlite(rows) => rows
                .first()
                .map(|r| {
                    Ok::<_, sqlx::Error>((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?))
                })
                .transpose(),
            Rows::Postgres(rows) => rows
                .first()
                .map(|r| {
                    Ok::<_, sqlx::Error>((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?))
                })
                .transpose(),
        }
        .map_err(StoreError::Database)?;
        Ok(pair.and_then(|(kind, id)| kind.parse().ok().map(|k| (k, id))))
    }

    pub(super) async fn meta(mut conn: Conn<'_>, key: &str) -> Result<Option<String>, StoreError> {
        let rows = fetch(
            &mut conn,
            "meta",
            "select value from meta where key = ?",
            vec![text(key)],
        )
        .await?;
        match rows {
            Rows::Sqlite(rows) => rows.first().map(|r| r.try_get::<String, _>(0)).transpose(),
            Rows::Postgres(rows) => rows.first().map(|r| r.try_get::<String, _>(0)).transpose(),
        }
        .map_err(StoreError::Database)
    }

    pub(super) async fn set_meta(
        mut conn: Conn<'_>,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let sql = "insert into meta (key, value) values (?, ?) on conflict (key) do update set value = excluded.value";
        execute(&mut conn, "meta", sql, vec![text(key), text(value)]).await?;
        Ok(())
    }

    pub(super) async fn set_column<E: Entity>(
        mut conn: Conn<'_>,
        id: i64,
        column: &str,
        value: Value,
    ) -> Result<(), StoreError> {
        let column = known_column::<E>(column)?;
        let sql = format!("update {} set \"{column}\" = ? where id = ?", E::TABLE);
        let affected =
            execute(&mut conn, E::TABLE, &sql, vec![value, Value::Int(Some(id))]).await?;
        if affected == 0 {
            return Err(StoreError::NotFound {
                table: E::TABLE,
                id,
            });
        }
        Ok(())
    }

    pub(super) async fn exists(
        mut conn: Conn<'_>,
        table: &'static str,
        id: i64,
    ) -> Result<bool, StoreError> {
        let sql = format!("select 1 from {table} where id = ?");
        let rows = fetch(&mut conn, table, &sql, vec![Value::Int(Some(id))]).await?;
        Ok(match rows {
            Rows::Sqlite(rows) => !rows.is_empty(),
            Rows::Postgres(rows) => !rows.is_empty(),
        })
    }

    async fn check_number_free<E: Entity>(
        conn: &mut Conn<'_>,
        kind: OwnerKind,
        entity: &E,
        own_id: i64,
    ) -> Result<(), StoreError> {
        let Some(Value::Text(Some(number))) = E::COLUMNS
            .iter()
            .position(|c| *c == "number")
            .map(|i| entity.values().swap_remove(i))
        else {
            return Ok(());
        };
        let conn = match conn {
            Conn::Sqlite(c) => Conn::Sqlite(c),
            Conn::Postgres(c) => Conn::Postgres(c),
        };
        match number_owner(conn, &number).await? {
            Some((owner_kind, owner_id)) if !(owner_kind == kind && owner_id == own_id) => {
                Err(StoreError::NumberTaken {
                    number,
                    owner: Some((owner_kind, owner_id)),
                })
            }
            _ => Ok(()),
        }
    }

    fn text(s: &str) -> Value {
        Value::Text(Some(s.to_owned()))
    }

    fn known_column<E: Entity>(column: &str) -> Result<&str, StoreError> {
        if column == "id" || E::COLUMNS.contains(&column) {
            Ok(column)
        } else {
            Err(StoreError::UnknownColumn {
                table: E::TABLE,
                column: column.to_owned(),
            })
        }
    }

    fn where_clause<E: Entity>(query: &ListQuery) -> Result<(String, Vec<Value>), StoreError> {
        if query.equals.is_empty() && query.compares.is_empty() && query.after.is_none() {
            return Ok((String::new(), Vec::new()));
        }
        let mut parts = Vec::with_capacity(query.equals.len() + query.compares.len());
        let mut args = Vec::with_capacity(parts.capacity());
        for (column, value) in &query.equals {
            let column = known_column::<E>(column)?;
            if is_null(value) {
                parts.push(format!("\"{column}\" is null"));
            } else {
                parts.push(format!("\"{column}\" = ?"));
                args.push(value.clone());
            }
        }
        for (column, op, value) in &query.compares {
            let column = known_column::<E>(column)?;
            match (op, value) {
                (Compare::Contains, Value::Text(Some(text))) => {
                    // lower() on both sides: SQLite's like ignores ASCII case, PostgreSQL's
                    // does not.
                    parts.push(format!("lower(\"{column}\") like lower(?) escape '!'"));
                    args.push(Value::Text(Some(format!("%{}%", like_literal(text)))));
                }
                _ => {
                    parts.push(format!("\"{column}\" {} ?", op.operator()));
                    args.push(value.clone());
                }
            }
        }
        if let Some((value, id)) = &query.after {
            let op = if query.descending { "<" } else { ">" };
            match &query.order_by {
                Some(column) => {
                    let column = known_column::<E>(column)?;
                    parts.push(format!(
                        "(\"{column}\" {op} ? or (\"{column}\" = ? and id {op} ?))"
                    ));
                    args.push(value.clone());
                    args.push(value.clone());
                }
                None => parts.push(format!("id {op} ?")),
            }
            args.push(Value::Int(Some(*id)));
        }
        Ok((format!(" where {}", parts.join(" and ")), args))
    }

    /// `text` with the `like` wildcards (and the escape character `!`) escaped.
    fn like_literal(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for ch in text.chars() {
            if matches!(ch, '%' | '_' | '!') {
                out.push('!');
            }
            out.push(ch);
        }
        out
    }

    fn is_null(value: &Value) -> bool {
        matches!(
            value,
            Value::Int(None) | Value::Text(None) | Value::Time(None)
        )
    }

    fn quoted_columns(columns: &[&str]) -> String {
        columns
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn select_list(columns: &[&str]) -> String {
        format!("id, {}", quoted_columns(columns))
    }

    fn decode<E: Entity>(rows: Rows) -> Result<Vec<E>, StoreError> {
        match rows {
            Rows::Sqlite(rows) => rows
                .iter()
                .map(E::from_sqlite)
                .collect::<Result<Vec<E>, _>>(),
            Rows::Postgres(rows) => rows.iter().map(E::from_pg).collect(),
        }
        .map_err(StoreError::Database)
    }

    fn first_i64(rows: &Rows) -> Option<i64> {
        match rows {
            Rows::Sqlite(rows) => rows.first().and_then(|r| r.try_get::<i64, _>(0).ok()),
            Rows::Postgres(rows) => rows.first().and_then(|r| r.try_get::<i64, _>(0).ok()),
        }
    }

    /// `?` placeholders become `$1, $2, ...` on PostgreSQL. Our generated SQL never holds a `?`
    /// inside a literal.
    fn postgres_placeholders(sql: &str) -> String {
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for ch in sql.chars() {
            if ch == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(ch);
            }
        }
        out
    }

    async fn fetch(
        conn: &mut Conn<'_>,
        table: &'static str,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<Rows, StoreError> {
        let result = match conn {
            Conn::Sqlite(c) => {
                let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()));
                for v in args {
                    q = bind_sqlite(q, v);
                }
                q.fetch_all(&mut **c).await.map(Rows::Sqlite)
            }
            Conn::Postgres(c) => {
                let mut q = sqlx::query(AssertSqlSafe(postgres_placeholders(sql)));
                for v in args {
                    q = bind_pg(q, v);
                }
                q.fetch_all(&mut **c).await.map(Rows::Postgres)
            }
        };
        result.map_err(|e| StoreError::from_sqlx(table, e))
    }

    async fn execute(
        conn: &mut Conn<'_>,
        table: &'static str,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<u64, StoreError> {
        let result = match conn {
            Conn::Sqlite(c) => {
                let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()));
                for v in args {
                    q = bind_sqlite(q, v);
                }
                q.execute(&mut **c).await.map(|r| r.rows_affected())
            }
            Conn::Postgres(c) => {
                let mut q = sqlx::query(AssertSqlSafe(postgres_placeholders(sql)));
                for v in args {
                    q = bind_pg(q, v);
                }
                q.execute(&mut **c).await.map(|r| r.rows_affected())
            }
        };
        result.map_err(|e| StoreError::from_sqlx(table, e))
    }

    type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;
    type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

    fn bind_sqlite(q: SqliteQuery<'_>, v: Value) -> SqliteQuery<'_> {
        match v {
            Value::Int(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
            Value::Bool(v) => q.bind(v),
            Value::Time(v) => q.bind(v.as_ref().map(sqlite_timestamp)),
        }
    }

    fn bind_pg(q: PgQuery<'_>, v: Value) -> PgQuery<'_> {
        match v {
            Value::Int(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
            Value::Bool(v) => q.bind(v),
            Value::Time(v) => q.bind(v),
        }
    }
}

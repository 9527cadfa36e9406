//! Writers of rows into relational databases (PostgreSQL, MariaDB).
//!
//! | module | holds |
//! | --- | --- |
//! | `postgres` | `PostgreSQLWriter` (tokio-postgres) |
//! | `mariadb` | `MariaDBWriter` (mysql_async) |
//! | `settings` | the parameters both share (connection, table, batching, retries) |
//! | `columns` | the column mapping: field paths, SQL types, row values |
//! | `writer` | batching, upsert, retry with back-off, dead letters |
//! | `backend` | what a client must do, and the thread that owns its runtime |
//! | `tls` | the rustls client configuration |

mod backend;
mod columns;
mod mariadb;
mod postgres;
mod settings;
mod tls;
mod writer;

use starlog_processors::config::ProcessorRegistry;

/// Adds this module's classes to `registry`.
pub(crate) fn register(registry: &mut ProcessorRegistry) {
    postgres::register(registry);
    mariadb::register(registry);
}

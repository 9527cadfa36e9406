//! `MariaDBWriter`: alerts as rows of a MariaDB (or MySQL) table, through
//! `mysql_async` (TLS with rustls). Batches are multi-row
//! `INSERT ... ON DUPLICATE KEY UPDATE` statements in one transaction.

use std::marker::PhantomData;
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, SslOpts, TxOpts, Value};
use starlog_processors::config::{ConfigError, Params, ProcessorRegistry, ProcessorSpec};

use super::backend::{Backend, DbError};
use super::columns::{Layout, SqlType, SqlValue};
use super::settings::{Settings, TlsMode};
use super::writer::WriterSpec;

/// The class name.
pub(crate) const CLASS: &str = "MariaDBWriter";

/// Adds the class.
pub(crate) fn register(registry: &mut ProcessorRegistry) {
    registry.register(CLASS, parse);
}

/// Parameters: see `docs/processors/databases.md`.
fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let settings = Settings::parse(p, &["mysql", "mariadb"])?;
    if let Err(e) = Opts::from_url(&mysql_url(&settings.url)) {
        return Err(p.error("url", format!("not a MariaDB URL: {e}")));
    }
    Ok(Box::new(WriterSpec::<MariaDb> {
        class: CLASS,
        settings: Arc::new(settings),
        backend: PhantomData,
    }))
}

/// `mysql_async` reads `mysql://` URLs only; `mariadb://` is accepted as a synonym.
fn mysql_url(url: &str) -> String {
    url.strip_prefix("mariadb://")
        .map_or_else(|| url.to_owned(), |rest| format!("mysql://{rest}"))
}

/// A connection.
pub(crate) struct MariaDb {
    conn: Conn,
}

fn quote(ident: &str) -> String {
    // Identifiers are checked to be plain (letters, digits, `_`) at load.
    ident
        .split('.')
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(".")
}

fn sql_type(t: SqlType, key: bool) -> &'static str {
    match t {
        SqlType::BigInt => "BIGINT",
        SqlType::Integer => "INT",
        // MariaDB's FLOAT compares and prints poorly (6 digits); a float's
        // value is kept exactly in a DOUBLE.
        SqlType::Double | SqlType::Real => "DOUBLE",
        // A key must have a bounded length.
        SqlType::Text if key => "VARCHAR(255)",
        SqlType::Text => "TEXT",
        SqlType::Boolean => "BOOLEAN",
        SqlType::Bytes if key => "VARBINARY(255)",
        SqlType::Bytes => "LONGBLOB",
    }
}

/// Sorts an error into what the writer does with it.
fn classify(e: mysql_async::Error) -> DbError {
    match e {
        mysql_async::Error::Server(s) => {
            let msg = format!("{} (error {}, SQLSTATE {})", s.message, s.code, s.state);
            match (s.code, s.state.get(..2).unwrap_or("")) {
                // access denied
                (1044 | 1045 | 1698, _) | (_, "28") => DbError::Auth(msg),
                // unknown database, unknown column, no such table
                (1049 | 1054 | 1146, _) => DbError::Schema(msg),
                // data exceptions, constraint violations, row too large
                (1118 | 1406 | 1264 | 1366 | 4025 | 3819 | 1048, _) | (_, "22" | "23") => {
                    DbError::Refused(msg)
                }
                _ => DbError::Other(msg),
            }
        }
        mysql_async::Error::Url(u) => DbError::Schema(format!("not a MariaDB URL: {u}")),
        other => DbError::Unavailable(other.to_string()),
    }
}

fn value(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::NULL,
        SqlValue::Int(i) => Value::Int(*i),
        // MariaDB cannot store NaN or infinities.
        SqlValue::Float(f) if !f.is_finite() => Value::NULL,
        SqlValue::Float(f) => Value::Double(*f),
        SqlValue::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
        SqlValue::Bool(b) => Value::Int(i64::from(*b)),
        SqlValue::Bytes(b) => Value::Bytes(b.clone()),
    }
}

impl MariaDb {
    fn upsert_sql(layout: &Layout, rows: usize) -> String {
        let cols: Vec<String> = layout.columns.iter().map(|c| quote(&c.name)).collect();
        let one = format!("({})", vec!["?"; cols.len()].join(", "));
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            quote(&layout.table),
            cols.join(", "),
            vec![one.as_str(); rows].join(", ")
        );
        let key = &cols[layout.key];
        let updates: Vec<String> = cols
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != layout.key)
            .map(|(_, c)| format!("{c} = VALUES({c})"))
            .collect();
        sql.push_str(" ON DUPLICATE KEY UPDATE ");
        if updates.is_empty() {
            sql.push_str(&format!("{key} = {key}"));
        } else {
            sql.push_str(&updates.join(", "));
        }
        sql
    }
}

impl Backend for MariaDb {
    async fn connect(settings: &Settings, password: Option<&str>) -> Result<Self, DbError> {
        let opts = Opts::from_url(&mysql_url(&settings.url))
            .map_err(|e| DbError::Schema(format!("not a MariaDB URL: {e}")))?;
        let builder = OptsBuilder::from_opts(opts)
            .pass(password.map(str::to_owned))
            .prefer_socket(false);
        let tls = if settings.tls == TlsMode::Disable {
            None
        } else {
            // mysql_async builds its rustls configuration with the process's
            // default provider: make it `ring` (no-op when one is installed).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut ssl = SslOpts::default();
            if let Some(ca) = &settings.ca {
                super::tls::ca_certificates(ca)?;
                ssl = ssl.with_root_certs(vec![ca.clone().into()]);
            }
            Some(ssl)
        };
        let conn = match Conn::new(builder.clone().ssl_opts(tls.clone())).await {
            Ok(c) => c,
            Err(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            )) if settings.tls == TlsMode::Prefer => {
                tracing::info!(url = %settings.url, "the server offers no TLS; connecting without (tls: prefer)");
                Conn::new(builder.ssl_opts(None::<SslOpts>))
                    .await
                    .map_err(classify)?
            }
            Err(e) => return Err(classify(e)),
        };
        tracing::info!(url = %settings.url, tls = tls.is_some(), "connected to MariaDB");
        Ok(MariaDb { conn })
    }

    async fn ensure_table(&mut self, layout: &Layout) -> Result<Vec<String>, DbError> {
        let columns: Vec<String> = layout
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let key = i == layout.key;
                let not_null = if key { " NOT NULL" } else { "" };
                format!("{} {}{not_null}", quote(&c.name), sql_type(c.ty, key))
            })
            .collect();
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
            quote(&layout.table),
            columns.join(", "),
            quote(layout.key_name())
        );
        self.conn
            .query_drop(create)
            .await
            .map_err(|e| match classify(e) {
                DbError::Refused(m) => DbError::Other(m),
                other => other,
            })?;
        let (schema, table) = match layout.table.split_once('.') {
            Some((s, t)) => (Some(s.to_owned()), t.to_owned()),
            None => (None, layout.table.clone()),
        };
        let names: Vec<String> = self
            .conn
            .exec(
                "SELECT column_name FROM information_schema.columns \
                 WHERE table_name = ? AND table_schema = COALESCE(?, DATABASE())",
                (table, schema),
            )
            .await
            .map_err(classify)?;
        Ok(names)
    }

    async fn upsert(&mut self, layout: &Layout, rows: &[&[SqlValue]]) -> Result<(), DbError> {
        let n = layout.columns.len().max(1);
        // At most 65535 placeholders per statement.
        let per_statement = (65_535 / n).max(1);
        let mut tx = self
            .conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(classify)?;
        for chunk in rows.chunks(per_statement) {
            let params: Vec<Value> = chunk.iter().flat_map(|r| r.iter().map(value)).collect();
            tx.exec_drop(Self::upsert_sql(layout, chunk.len()), params)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }
}

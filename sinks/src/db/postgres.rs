//! `PostgreSQLWriter`: alerts as rows of a PostgreSQL table, through
//! `tokio-postgres` (TLS with rustls). Batches are multi-row
//! `INSERT ... ON CONFLICT (key) DO UPDATE` statements in one transaction.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::BytesMut;
use starlog_processors::config::{ConfigError, Params, ProcessorRegistry, ProcessorSpec};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

use super::backend::{Backend, DbError};
use super::columns::{Layout, SqlType, SqlValue};
use super::settings::{Settings, TlsMode};
use super::writer::WriterSpec;

/// The class name.
pub(crate) const CLASS: &str = "PostgreSQLWriter";

/// Adds the class.
pub(crate) fn register(registry: &mut ProcessorRegistry) {
    registry.register(CLASS, parse);
}

/// Parameters: see `docs/processors/databases.md`.
fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let settings = Settings::parse(p, &["postgresql", "postgres"])?;
    if let Err(e) = settings.url.parse::<tokio_postgres::Config>() {
        return Err(p.error("url", format!("not a PostgreSQL URL: {e}")));
    }
    Ok(Box::new(WriterSpec::<Postgres> {
        class: CLASS,
        settings: Arc::new(settings),
        backend: PhantomData,
    }))
}

/// A connection and its prepared statements.
pub(crate) struct Postgres {
    client: Client,
    /// Upsert statements by number of rows.
    statements: HashMap<usize, Statement>,
}

fn quote(ident: &str) -> String {
    // Identifiers are checked to be plain (letters, digits, `_`) at load.
    ident
        .split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".")
}

fn sql_type(t: SqlType) -> &'static str {
    match t {
        SqlType::BigInt => "BIGINT",
        SqlType::Integer => "INTEGER",
        SqlType::Double => "DOUBLE PRECISION",
        SqlType::Real => "REAL",
        SqlType::Text => "TEXT",
        SqlType::Boolean => "BOOLEAN",
        SqlType::Bytes => "BYTEA",
    }
}

/// Sorts an error into what the writer does with it.
fn classify(e: &tokio_postgres::Error) -> DbError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let mut msg = format!("{} (SQLSTATE {code})", db.message());
        if let Some(detail) = db.detail() {
            msg.push_str(": ");
            msg.push_str(detail);
        }
        return match code.get(..2).unwrap_or("") {
            // data exception, integrity constraint violation, program limit exceeded
            "22" | "23" | "54" => DbError::Refused(msg),
            "28" => DbError::Auth(msg),
            // undefined database, undefined or mistyped column, privileges
            "3D" | "42" => DbError::Schema(msg),
            // connection exception, insufficient resources, operator intervention
            "08" | "53" | "57" => DbError::Unavailable(msg),
            _ => DbError::Other(msg),
        };
    }
    let text = e.to_string();
    if text.contains("password missing") {
        return DbError::Auth(text);
    }
    if text.contains("serializing parameter") {
        let cause = e.source().map(ToString::to_string).unwrap_or_default();
        return DbError::Refused(format!("{text}: {cause}"));
    }
    let cause = e.source().map(|c| format!(": {c}")).unwrap_or_default();
    DbError::Unavailable(format!("{text}{cause}"))
}

impl Postgres {
    fn upsert_sql(layout: &Layout, rows: usize) -> String {
        let cols: Vec<String> = layout.columns.iter().map(|c| quote(&c.name)).collect();
        let n = cols.len();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ",
            quote(&layout.table),
            cols.join(", ")
        );
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..n {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push('$');
                sql.push_str(&(r * n + c + 1).to_string());
            }
            sql.push(')');
        }
        let updates: Vec<String> = cols
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != layout.key)
            .map(|(_, c)| format!("{c} = EXCLUDED.{c}"))
            .collect();
        sql.push_str(&format!(" ON CONFLICT ({}) ", cols[layout.key]));
        if updates.is_empty() {
            sql.push_str("DO NOTHING");
        } else {
            sql.push_str("DO UPDATE SET ");
            sql.push_str(&updates.join(", "));
        }
        sql
    }
}

impl Backend for Postgres {
    async fn connect(settings: &Settings, password: Option<&str>) -> Result<Self, DbError> {
        let mut config: tokio_postgres::Config = settings
            .url
            .parse()
            .map_err(|e| DbError::Schema(format!("not a PostgreSQL URL: {e}")))?;
        if let Some(p) = password {
            config.password(p);
        }
        config.connect_timeout(settings.connect_timeout);
        let client = match settings.tls {
            TlsMode::Disable => {
                config.ssl_mode(SslMode::Disable);
                let (client, connection) = config.connect(NoTls).await.map_err(|e| classify(&e))?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "PostgreSQL connection closed");
                    }
                });
                client
            }
            mode => {
                config.ssl_mode(if mode == TlsMode::Require {
                    SslMode::Require
                } else {
                    SslMode::Prefer
                });
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(super::tls::client_config(
                    settings.ca.as_deref(),
                )?);
                let (client, connection) = config.connect(tls).await.map_err(|e| classify(&e))?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "PostgreSQL connection closed");
                    }
                });
                client
            }
        };
        tracing::info!(url = %settings.url, "connected to PostgreSQL");
        Ok(Postgres {
            client,
            statements: HashMap::new(),
        })
    }

    async fn ensure_table(&mut self, layout: &Layout) -> Result<Vec<String>, DbError> {
        let columns: Vec<String> = layout
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let not_null = if i == layout.key { " NOT NULL" } else { "" };
                format!("{} {}{not_null}", quote(&c.name), sql_type(c.ty))
            })
            .collect();
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
            quote(&layout.table),
            columns.join(", "),
            quote(layout.key_name())
        );
        if let Err(e) = self.client.batch_execute(&create).await {
            // Two writers creating the same table at once collide on the
            // catalog's unique index: retried (the second time it exists).
            return Err(match classify(&e) {
                DbError::Refused(m) => DbError::Other(m),
                other => other,
            });
        }
        let (schema, table) = match layout.table.split_once('.') {
            Some((s, t)) => (Some(s), t),
            None => (None, layout.table.as_str()),
        };
        let rows = self
            .client
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_name = $1 AND table_schema = COALESCE($2, current_schema())",
                &[&table, &schema],
            )
            .await
            .map_err(|e| classify(&e))?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    async fn upsert(&mut self, layout: &Layout, rows: &[&[SqlValue]]) -> Result<(), DbError> {
        let n = layout.columns.len().max(1);
        // PostgreSQL takes at most 65535 parameters per statement.
        let per_statement = (65_535 / n).max(1);
        let mut statements = Vec::new();
        for chunk in rows.chunks(per_statement) {
            let len = chunk.len();
            if !self.statements.contains_key(&len) {
                let st = self
                    .client
                    .prepare(&Self::upsert_sql(layout, len))
                    .await
                    .map_err(|e| classify(&e))?;
                self.statements.insert(len, st);
            }
            if let Some(st) = self.statements.get(&len) {
                statements.push((st.clone(), chunk));
            }
        }
        let tx = self.client.transaction().await.map_err(|e| classify(&e))?;
        for (st, chunk) in statements {
            let params: Vec<&(dyn ToSql + Sync)> = chunk
                .iter()
                .flat_map(|r| r.iter().map(|v| v as &(dyn ToSql + Sync)))
                .collect();
            tx.execute(&st, &params).await.map_err(|e| classify(&e))?;
        }
        tx.commit().await.map_err(|e| classify(&e))
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

fn mismatch(what: &str, ty: &Type) -> BoxError {
    format!("cannot store {what} in a column of type {ty}").into()
}

impl ToSql for SqlValue {
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            SqlValue::Null => Ok(IsNull::Yes),
            SqlValue::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                _ if <&str as ToSql>::accepts(ty) => i.to_string().as_str().to_sql(ty, out),
                _ => Err(mismatch("an integer", ty)),
            },
            SqlValue::Float(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ if <&str as ToSql>::accepts(ty) => f.to_string().as_str().to_sql(ty, out),
                _ => Err(mismatch("a float", ty)),
            },
            SqlValue::Text(s) if <&str as ToSql>::accepts(ty) => s.as_str().to_sql(ty, out),
            SqlValue::Text(_) => Err(mismatch("text", ty)),
            SqlValue::Bool(b) if <bool as ToSql>::accepts(ty) => b.to_sql(ty, out),
            SqlValue::Bool(_) => Err(mismatch("a boolean", ty)),
            SqlValue::Bytes(b) if <&[u8] as ToSql>::accepts(ty) => b.as_slice().to_sql(ty, out),
            SqlValue::Bytes(_) => Err(mismatch("bytes", ty)),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

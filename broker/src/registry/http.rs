//! The Confluent-Schema-Registry-compatible REST API.
//!
//! Bodies are parsed as JSON whatever their content type: clients send
//! `application/vnd.schemaregistry.v1+json`, which a stock JSON extractor
//! would refuse. Errors use Confluent's shape,
//! `{"error_code": 40401, "message": "..."}`, so client libraries raise the
//! exceptions their users expect.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::compat::Compatibility;
use super::error::RegistryError;
use super::store::{Resolved, SchemaStore, VersionRef};

/// Largest request body accepted (schemas are tens of KB).
const MAX_BODY: usize = 16 * 1024 * 1024;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Store = Arc<SchemaStore>;

struct Json(Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], self.0.to_string()).into_response()
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code) = self.codes();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error = %self, "schema registry failure");
        }
        let body = json!({ "error_code": code, "message": self.to_string() });
        (
            status,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            body.to_string(),
        )
            .into_response()
    }
}

type Reply = Result<Json, RegistryError>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<Value>>,
}

fn schema_body(bytes: &Bytes) -> Result<SchemaBody, RegistryError> {
    let body: SchemaBody = serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::BadRequest(format!("expected {{\"schema\": \"...\"}}: {e}")))?;
    if let Some(t) = body.schema_type.as_deref() {
        if !t.eq_ignore_ascii_case("AVRO") {
            return Err(RegistryError::InvalidSchema(format!(
                "schema type {t} is not supported; only AVRO"
            )));
        }
    }
    if body.references.as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(RegistryError::InvalidSchema(
            "schema references are not supported".to_string(),
        ));
    }
    Ok(body)
}

fn version_ref(v: &str) -> Result<VersionRef, RegistryError> {
    if v == "latest" || v == "-1" {
        return Ok(VersionRef::Latest);
    }
    match v.parse::<i32>() {
        Ok(n) if n >= 1 => Ok(VersionRef::Number(n)),
        _ => Err(RegistryError::InvalidVersion(v.to_string())),
    }
}

fn resolved(r: Resolved) -> Value {
    json!({ "subject": r.subject, "version": r.version, "id": r.id, "schema": r.schema })
}

#[derive(Debug, Deserialize, Default)]
struct DeleteQuery {
    #[serde(default)]
    permanent: bool,
}

async fn register(State(store): State<Store>, Path(subject): Path<String>, body: Bytes) -> Reply {
    let body = schema_body(&body)?;
    let id = blocking(store, move |s| s.register(&subject, &body.schema)).await?;
    Ok(Json(json!({ "id": id })))
}

async fn lookup(State(store): State<Store>, Path(subject): Path<String>, body: Bytes) -> Reply {
    let body = schema_body(&body)?;
    Ok(Json(resolved(store.lookup(&subject, &body.schema)?)))
}

async fn subjects(State(store): State<Store>) -> Reply {
    Ok(Json(json!(store.subjects())))
}

async fn versions(State(store): State<Store>, Path(subject): Path<String>) -> Reply {
    Ok(Json(json!(store.versions(&subject)?)))
}

async fn version(State(store): State<Store>, Path((subject, v)): Path<(String, String)>) -> Reply {
    Ok(Json(resolved(store.version(&subject, version_ref(&v)?)?)))
}

async fn version_schema(
    State(store): State<Store>,
    Path((subject, v)): Path<(String, String)>,
) -> Result<Response, RegistryError> {
    let r = store.version(&subject, version_ref(&v)?)?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], r.schema).into_response())
}

async fn schema_by_id(State(store): State<Store>, Path(id): Path<String>) -> Reply {
    let id: u32 = id.parse().map_err(|_| RegistryError::SchemaNotFound)?;
    Ok(Json(json!({ "schema": store.schema_by_id(id)? })))
}

async fn schema_types() -> Reply {
    Ok(Json(json!(["AVRO"])))
}

async fn compatibility(
    State(store): State<Store>,
    Path((subject, v)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let body = schema_body(&body)?;
    let ok = store.is_compatible(&subject, version_ref(&v)?, &body.schema)?;
    Ok(Json(json!({ "is_compatible": ok })))
}

#[derive(Debug, Deserialize)]
struct ConfigBody {
    compatibility: String,
}

fn parse_level(bytes: &Bytes) -> Result<Compatibility, RegistryError> {
    let body: ConfigBody = serde_json::from_slice(bytes).map_err(|e| {
        RegistryError::BadRequest(format!("expected {{\"compatibility\": \"...\"}}: {e}"))
    })?;
    Compatibility::parse(&body.compatibility)
        .ok_or(RegistryError::InvalidCompatibility(body.compatibility))
}

async fn get_global_config(State(store): State<Store>) -> Reply {
    Ok(Json(
        json!({ "compatibilityLevel": store.compatibility(None).as_str() }),
    ))
}

async fn put_global_config(State(store): State<Store>, body: Bytes) -> Reply {
    let level = parse_level(&body)?;
    blocking(store, move |s| s.set_compatibility(None, Some(level))).await?;
    Ok(Json(json!({ "compatibility": level.as_str() })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigQuery {
    #[serde(default)]
    default_to_global: bool,
}

async fn get_subject_config(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(q): Query<ConfigQuery>,
) -> Reply {
    let level = match store.subject_compatibility(&subject) {
        Some(l) => l,
        None if q.default_to_global => store.compatibility(None),
        None => return Err(RegistryError::NoSubjectCompatibility(subject)),
    };
    Ok(Json(json!({ "compatibilityLevel": level.as_str() })))
}

async fn put_subject_config(
    State(store): State<Store>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Reply {
    let level = parse_level(&body)?;
    blocking(store, move |s| {
        s.set_compatibility(Some(&subject), Some(level))
    })
    .await?;
    Ok(Json(json!({ "compatibility": level.as_str() })))
}

async fn delete_subject_config(State(store): State<Store>, Path(subject): Path<String>) -> Reply {
    let Some(level) = store.subject_compatibility(&subject) else {
        return Err(RegistryError::NoSubjectCompatibility(subject));
    };
    blocking(store, move |s| s.set_compatibility(Some(&subject), None)).await?;
    Ok(Json(json!({ "compatibilityLevel": level.as_str() })))
}

async fn delete_subject(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Reply {
    let deleted = blocking(store, move |s| s.delete_subject(&subject, q.permanent)).await?;
    Ok(Json(json!(deleted)))
}

async fn delete_version(
    State(store): State<Store>,
    Path((subject, v)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Reply {
    let v = version_ref(&v)?;
    let n = blocking(store, move |s| s.delete_version(&subject, v, q.permanent)).await?;
    Ok(Json(json!(n)))
}

/// Runs a store call that writes to disk on the blocking pool.
async fn blocking<T: Send + 'static>(
    store: Store,
    f: impl FnOnce(&SchemaStore) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| RegistryError::Storage(format!("registry task failed: {e}")))?
}

/// The registry's routes over `store`.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/types", get(schema_types))
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility),
        )
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(store)
}

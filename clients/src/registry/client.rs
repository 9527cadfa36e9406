//! The two Confluent REST calls Starlog needs.
//!
//! `GET /schemas/ids/{id}` against the upstream registry and
//! `POST /subjects/{subject}/versions` against the local one. Failures are
//! sorted by what the caller can do about them: an id the registry does
//! not have ([`RegistryError::NotFound`]) and a schema the registry refuses
//! ([`RegistryError::Refused`]) are facts about the data; anything else
//! (connection refused, timeout, a 5xx, a garbled answer) means the
//! registry is unavailable right now ([`RegistryError::Unavailable`]).

use std::time::Duration;

use crate::TlsConfig;
use serde::Deserialize;

use super::http::{BaseUrl, HttpClient, HttpError, Response};

/// Why a registry call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry has no schema with this id.
    #[error("{registry} registry {url} has no schema id {id}")]
    NotFound {
        /// "upstream" or "local".
        registry: &'static str,
        /// Base URL.
        url: String,
        /// The id.
        id: u32,
    },
    /// The registry refused the request (an incompatible or invalid
    /// schema, a schema type other than Avro).
    #[error("{registry} registry {url} refused {what}: {message}")]
    Refused {
        /// "upstream" or "local".
        registry: &'static str,
        /// Base URL.
        url: String,
        /// What was asked.
        what: String,
        /// The registry's message.
        message: String,
    },
    /// The registry could not answer.
    #[error("{registry} registry unavailable: {reason}")]
    Unavailable {
        /// "upstream" or "local".
        registry: &'static str,
        /// What went wrong.
        reason: String,
    },
}

impl RegistryError {
    /// True when trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// A Confluent-compatible registry.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: HttpClient,
    role: &'static str,
    url: String,
}

#[derive(Deserialize)]
struct SchemaById {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct Registered {
    id: u32,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// Percent-encodes a path segment (subjects may hold any character).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn message(r: &Response) -> String {
    match serde_json::from_slice::<ErrorBody>(&r.body) {
        Ok(ErrorBody {
            error_code,
            message: Some(m),
        }) => match error_code {
            Some(c) => format!("{m} (error code {c})"),
            None => m,
        },
        _ => format!(
            "HTTP {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
        ),
    }
}

impl RegistryClient {
    /// A client for the registry at `url` ("upstream" or "local" names it
    /// in errors).
    pub fn new(
        role: &'static str,
        url: &str,
        basic_auth: Option<(&str, &str)>,
        tls: Option<TlsConfig>,
        timeout: Duration,
    ) -> Result<Self, HttpError> {
        let base = BaseUrl::parse(url)?;
        Ok(Self {
            http: HttpClient::new(base, basic_auth, tls, timeout),
            role,
            url: url.to_owned(),
        })
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn unavailable(&self, reason: String) -> RegistryError {
        RegistryError::Unavailable {
            registry: self.role,
            reason,
        }
    }

    /// The Avro schema text registered under `id`.
    pub async fn schema_text(&self, id: u32) -> Result<String, RegistryError> {
        let r = self
            .http
            .get(&format!("/schemas/ids/{id}"))
            .await
            .map_err(|e| self.unavailable(e.to_string()))?;
        match r.status {
            200 => {
                let s: SchemaById = serde_json::from_slice(&r.body).map_err(|e| {
                    self.unavailable(format!("GET /schemas/ids/{id}: unexpected body: {e}"))
                })?;
                match s.schema_type.as_deref() {
                    None | Some("AVRO") => Ok(s.schema),
                    Some(other) => Err(RegistryError::Refused {
                        registry: self.role,
                        url: self.url.clone(),
                        what: format!("schema id {id}"),
                        message: format!("schema type {other} is not Avro"),
                    }),
                }
            }
            404 => Err(RegistryError::NotFound {
                registry: self.role,
                url: self.url.clone(),
                id,
            }),
            s if s >= 500 || s == 429 || s == 408 => {
                Err(self.unavailable(format!("GET /schemas/ids/{id}: {}", message(&r))))
            }
            _ => Err(RegistryError::Refused {
                registry: self.role,
                url: self.url.clone(),
                what: format!("GET /schemas/ids/{id}"),
                message: message(&r),
            }),
        }
    }

    /// Registers `schema` under `subject` and returns its id (the same id
    /// when the schema is already registered).
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let path = format!("/subjects/{}/versions", encode_segment(subject));
        let body = serde_json::json!({ "schema": schema, "schemaType": "AVRO" }).to_string();
        let r = self
            .http
            .post_json(&path, body.as_bytes())
            .await
            .map_err(|e| self.unavailable(e.to_string()))?;
        match r.status {
            200 => serde_json::from_slice::<Registered>(&r.body)
                .map(|x| x.id)
                .map_err(|e| self.unavailable(format!("POST {path}: unexpected body: {e}"))),
            s if s >= 500 || s == 429 || s == 408 => {
                Err(self.unavailable(format!("POST {path}: {}", message(&r))))
            }
            _ => Err(RegistryError::Refused {
                registry: self.role,
                url: self.url.clone(),
                what: format!("registering under subject {subject}"),
                message: message(&r),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("ztf-buffer-value"), "ztf-buffer-value");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn error_bodies_become_messages() {
        let r = Response {
            status: 409,
            body: br#"{"error_code":409,"message":"incompatible"}"#.to_vec(),
        };
        assert_eq!(message(&r), "incompatible (error code 409)");
        let r = Response {
            status: 502,
            body: b"<html>bad gateway</html>".to_vec(),
        };
        assert!(message(&r).starts_with("HTTP 502"));
    }
}

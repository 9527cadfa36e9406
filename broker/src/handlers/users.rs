//! DescribeUserScramCredentials (Describe on the cluster) and
//! AlterUserScramCredentials (Alter on the cluster): Kafka's user admin
//! APIs over the broker's security store. A client sends the salt and the
//! salted password, never the password; the store keeps StoredKey and
//! ServerKey derived from them. The per-user errors are Kafka's.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use starlog_security::{AclOperation, ScramCredential, ScramMechanism, SecurityChange};

use super::access::Access;
use super::acls::store_error;
use crate::broker::Broker;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// Handles DescribeUserScramCredentials: every user (no list, or an empty
/// one), or those named; a name twice is DUPLICATE_RESOURCE, an unknown one
/// RESOURCE_NOT_FOUND.
pub fn describe(
    broker: &Broker,
    req: DescribeUserScramCredentialsRequest,
    access: &Access<'_>,
) -> DescribeUserScramCredentialsResponse {
    if !access.cluster(AclOperation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(s("not authorized to describe the cluster's users")));
    }
    let state = broker.security.state();
    // User name → named more than once.
    let mut asked: BTreeMap<String, bool> = BTreeMap::new();
    match req.users.filter(|u| !u.is_empty()) {
        None => {
            for user in state.users.keys() {
                asked.insert(user.clone(), false);
            }
        }
        Some(users) => {
            for u in users {
                asked
                    .entry(u.name.to_string())
                    .and_modify(|twice| *twice = true)
                    .or_insert(false);
            }
        }
    }
    let results = asked
        .into_iter()
        .map(|(user, twice)| {
            let result = DescribeUserScramCredentialsResult::default().with_user(s(user.clone()));
            if twice {
                return result
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(Some(s(format!(
                        "cannot describe the SCRAM credentials of {user} twice in one request"
                    ))));
            }
            match state.users.get(&user).filter(|m| !m.is_empty()) {
                Some(creds) => result.with_credential_infos(
                    creds
                        .values()
                        .map(|c| {
                            CredentialInfo::default()
                                .with_mechanism(c.mechanism.code())
                                .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX))
                        })
                        .collect(),
                ),
                None => result
                    .with_error_code(ResponseError::ResourceNotFound.code())
                    .with_error_message(Some(s(format!(
                        "attempt to describe a user credential that does not exist: {user}"
                    )))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// Why one user's alteration is refused.
type Refused = (ResponseError, String);

fn mechanism(code: i8) -> Result<ScramMechanism, Refused> {
    ScramMechanism::from_code(code).map_err(|_| {
        (
            ResponseError::UnsupportedSaslMechanism,
            format!("unknown SCRAM mechanism code {code}"),
        )
    })
}

fn named(user: &str) -> Result<(), Refused> {
    if user.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "username must not be empty".into(),
        ));
    }
    if user == crate::security::INTERNAL_USER {
        return Err((
            ResponseError::UnacceptableCredential,
            format!("{user} is the broker's own principal; its password is made at each start"),
        ));
    }
    Ok(())
}

/// Handles AlterUserScramCredentials: deletions and upsertions, one result
/// per user. A user altered twice in one request is DUPLICATE_RESOURCE and
/// left unchanged; deleting a credential that is not there is
/// RESOURCE_NOT_FOUND; an unknown mechanism UNSUPPORTED_SASL_MECHANISM;
/// an empty name, too few or too many iterations, or an empty salt or
/// salted password UNACCEPTABLE_CREDENTIAL.
pub async fn alter(
    broker: &Broker,
    req: AlterUserScramCredentialsRequest,
    access: &Access<'_>,
) -> AlterUserScramCredentialsResponse {
    let result = |user: &str, refused: Option<&Refused>| {
        let r = AlterUserScramCredentialsResult::default().with_user(s(user));
        match refused {
            None => r,
            Some((code, why)) => r
                .with_error_code(code.code())
                .with_error_message(Some(s(why.clone()))),
        }
    };
    // Users in the order first named.
    let mut order: Vec<String> = Vec::new();
    let mut changes: BTreeMap<String, Result<SecurityChange, Refused>> = BTreeMap::new();
    let mut record = |user: String, change: Result<SecurityChange, Refused>| {
        if let Some(previous) = changes.get_mut(&user) {
            *previous = Err((
                ResponseError::DuplicateResource,
                format!("the credentials of {user} cannot be altered twice in one request"),
            ));
        } else {
            order.push(user.clone());
            changes.insert(user, change);
        }
    };
    if !access.cluster(AclOperation::Alter) {
        let refused = (
            ResponseError::ClusterAuthorizationFailed,
            "not authorized to alter the cluster's users".to_string(),
        );
        let users = req
            .deletions
            .iter()
            .map(|d| d.name.to_string())
            .chain(req.upsertions.iter().map(|u| u.name.to_string()));
        let mut seen = std::collections::BTreeSet::new();
        let results = users
            .filter(|u| seen.insert(u.clone()))
            .map(|u| result(&u, Some(&refused)))
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(results);
    }
    let state = broker.security.state();
    for d in &req.deletions {
        let user = d.name.to_string();
        let change = named(&user)
            .and_then(|()| mechanism(d.mechanism))
            .and_then(|m| {
                if state.credential(&user, m).is_none() {
                    return Err((
                        ResponseError::ResourceNotFound,
                        format!("{user} has no {m} credential to delete"),
                    ));
                }
                Ok(SecurityChange::DeleteCredential {
                    user: user.clone(),
                    mechanism: m,
                })
            });
        record(user, change);
    }
    for u in &req.upsertions {
        let user = u.name.to_string();
        let change = named(&user)
            .and_then(|()| mechanism(u.mechanism))
            .and_then(|m| {
                if u.salt.is_empty() || u.salted_password.is_empty() {
                    return Err((
                        ResponseError::UnacceptableCredential,
                        "empty salt or salted password".into(),
                    ));
                }
                let iterations = u32::try_from(u.iterations).map_err(|_| {
                    (
                        ResponseError::UnacceptableCredential,
                        format!("iteration count {} is negative", u.iterations),
                    )
                })?;
                let credential = ScramCredential::from_salted_password(
                    m,
                    &u.salted_password,
                    u.salt.to_vec(),
                    iterations,
                )
                .map_err(|e| (ResponseError::UnacceptableCredential, e.to_string()))?;
                Ok(SecurityChange::SetCredential {
                    user: user.clone(),
                    credential,
                })
            });
        record(user, change);
    }
    let mut results = Vec::with_capacity(order.len());
    for user in order {
        let outcome = match changes.remove(&user) {
            Some(Ok(change)) => match broker.security.change(change).await {
                Ok(_) => {
                    tracing::info!(%user, principal = %access.principal(), "SCRAM credential altered");
                    None
                }
                Err(e) => Some(store_error(&e)),
            },
            Some(Err(refused)) => Some(refused),
            None => None,
        };
        results.push(result(&user, outcome.as_ref()));
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_internal_user_and_an_empty_name_are_refused() {
        let (code, why) = named(crate::security::INTERNAL_USER).unwrap_err();
        assert_eq!(code, ResponseError::UnacceptableCredential);
        assert!(why.contains("broker's own principal"), "{why}");
        assert_eq!(
            named("").unwrap_err().0,
            ResponseError::UnacceptableCredential
        );
        assert!(named("alice").is_ok());
    }
}

//! DescribeAcls (Describe on the cluster), CreateAcls and DeleteAcls (Alter
//! on the cluster): Kafka's ACL admin APIs over the broker's
//! [`SecurityStore`](crate::security::SecurityStore). Changes go through
//! the store (a file alone, the metadata log in a cluster) and are in force
//! once it has them.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use starlog_security::{
    AclBinding, AclEntry, AclFilter, AclOperation, ChangeOutcome, PatternType, Permission,
    Principal, ResourcePattern, ResourceType, SecurityChange,
};

use super::access::Access;
use crate::broker::Broker;
use crate::security::StoreError;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// The Kafka error for a change the store could not make.
pub(super) fn store_error(e: &StoreError) -> (ResponseError, String) {
    let code = match e {
        StoreError::NotCommitted(_) => ResponseError::RequestTimedOut,
        _ => ResponseError::UnknownServerError,
    };
    tracing::warn!(error = %e, "security change not stored");
    (code, e.to_string())
}

/// A DescribeAcls / DeleteAcls filter from its wire fields.
#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    Ok(AclFilter {
        resource_type: ResourceType::from_code(resource_type).map_err(|e| e.to_string())?,
        name: name.map(|n| n.to_string()),
        pattern_type: PatternType::from_code(pattern_type).map_err(|e| e.to_string())?,
        principal: principal
            .map(|p| Principal::parse(p))
            .transpose()
            .map_err(|e| e.to_string())?,
        host: host.map(|h| h.to_string()),
        operation: AclOperation::from_code(operation).map_err(|e| e.to_string())?,
        permission: Permission::from_code(permission).map_err(|e| e.to_string())?,
    })
}

/// An ACL to create from its wire fields, checked.
fn binding(c: &AclCreation) -> Result<AclBinding, String> {
    let acl = AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::from_code(c.resource_type).map_err(|e| e.to_string())?,
            name: c.resource_name.to_string(),
            pattern_type: PatternType::from_code(c.resource_pattern_type)
                .map_err(|e| e.to_string())?,
        },
        entry: AclEntry {
            principal: Principal::parse(&c.principal).map_err(|e| e.to_string())?,
            host: c.host.to_string(),
            operation: AclOperation::from_code(c.operation).map_err(|e| e.to_string())?,
            permission: Permission::from_code(c.permission_type).map_err(|e| e.to_string())?,
        },
    };
    acl.validate().map_err(|e| e.to_string())?;
    Ok(acl)
}

/// Handles DescribeAcls.
pub fn describe(
    broker: &Broker,
    req: DescribeAclsRequest,
    access: &Access<'_>,
) -> DescribeAclsResponse {
    if !access.cluster(AclOperation::Describe) {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(s("not authorized to describe the cluster's ACLs")));
    }
    let f = match filter(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(why) => {
            return DescribeAclsResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(s(why)))
        }
    };
    let mut resources: BTreeMap<ResourcePattern, Vec<AclDescription>> = BTreeMap::new();
    for acl in broker.security.authorizer().matching(&f) {
        resources.entry(acl.pattern).or_default().push(
            AclDescription::default()
                .with_principal(s(acl.entry.principal.to_string()))
                .with_host(s(acl.entry.host))
                .with_operation(acl.entry.operation.code())
                .with_permission_type(acl.entry.permission.code()),
        );
    }
    DescribeAclsResponse::default().with_resources(
        resources
            .into_iter()
            .map(|(p, acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(p.resource_type.code())
                    .with_resource_name(s(p.name))
                    .with_pattern_type(p.pattern_type.code())
                    .with_acls(acls)
            })
            .collect(),
    )
}

/// Handles CreateAcls: each ACL is checked, the valid ones are stored in
/// one change; an ACL already there is not an error (as in Kafka).
pub async fn create(
    broker: &Broker,
    req: CreateAclsRequest,
    access: &Access<'_>,
) -> CreateAclsResponse {
    let failed = |code: ResponseError, why: &str| {
        AclCreationResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(s(why)))
    };
    if !access.cluster(AclOperation::Alter) {
        let results = req
            .creations
            .iter()
            .map(|_| {
                failed(
                    ResponseError::ClusterAuthorizationFailed,
                    "not authorized to alter the cluster's ACLs",
                )
            })
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let checked: Vec<Result<AclBinding, String>> = req.creations.iter().map(binding).collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let stored = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        match broker
            .security
            .change(SecurityChange::CreateAcls {
                acls: valid.clone(),
            })
            .await
        {
            Ok(ChangeOutcome::Created(results)) => Ok(results),
            Ok(other) => Err((
                ResponseError::UnknownServerError,
                format!("unexpected outcome {other:?}"),
            )),
            Err(e) => Err(store_error(&e)),
        }
    };
    let mut outcomes = match &stored {
        Ok(results) => results.clone(),
        Err(_) => Vec::new(),
    }
    .into_iter();
    let results = checked
        .into_iter()
        .map(|c| match (c, &stored) {
            (Err(why), _) => failed(ResponseError::InvalidRequest, &why),
            (Ok(_), Err((code, why))) => failed(*code, why),
            (Ok(acl), Ok(_)) => match outcomes.next() {
                Some(Ok(_)) => {
                    tracing::info!(%acl, principal = %access.principal(), "ACL created");
                    AclCreationResult::default()
                }
                Some(Err(e)) => failed(ResponseError::InvalidRequest, &e.to_string()),
                None => failed(ResponseError::UnknownServerError, "no outcome for this ACL"),
            },
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// Handles DeleteAcls: every ACL each filter selects is removed, in one
/// change; each filter's result lists what it removed.
pub async fn delete(
    broker: &Broker,
    req: DeleteAclsRequest,
    access: &Access<'_>,
) -> DeleteAclsResponse {
    let failed = |code: ResponseError, why: &str| {
        DeleteAclsFilterResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(s(why)))
    };
    if !access.cluster(AclOperation::Alter) {
        let results = req
            .filters
            .iter()
            .map(|_| {
                failed(
                    ResponseError::ClusterAuthorizationFailed,
                    "not authorized to alter the cluster's ACLs",
                )
            })
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let checked: Vec<Result<AclFilter, String>> = req
        .filters
        .iter()
        .map(|f: &DeleteAclsFilter| {
            filter(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let stored = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        match broker
            .security
            .change(SecurityChange::DeleteAcls { filters: valid })
            .await
        {
            Ok(ChangeOutcome::Deleted(results)) => Ok(results),
            Ok(other) => Err((
                ResponseError::UnknownServerError,
                format!("unexpected outcome {other:?}"),
            )),
            Err(e) => Err(store_error(&e)),
        }
    };
    let mut outcomes = match &stored {
        Ok(results) => results.clone(),
        Err(_) => Vec::new(),
    }
    .into_iter();
    let results = checked
        .into_iter()
        .map(|c| match (c, &stored) {
            (Err(why), _) => failed(ResponseError::InvalidRequest, &why),
            (Ok(_), Err((code, why))) => failed(*code, why),
            (Ok(_), Ok(_)) => {
                let gone = outcomes.next().unwrap_or_default();
                for acl in &gone {
                    tracing::info!(%acl, principal = %access.principal(), "ACL deleted");
                }
                DeleteAclsFilterResult::default().with_matching_acls(
                    gone.into_iter()
                        .map(|acl| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(acl.pattern.resource_type.code())
                                .with_resource_name(s(acl.pattern.name))
                                .with_pattern_type(acl.pattern.pattern_type.code())
                                .with_principal(s(acl.entry.principal.to_string()))
                                .with_host(s(acl.entry.host))
                                .with_operation(acl.entry.operation.code())
                                .with_permission_type(acl.entry.permission.code())
                        })
                        .collect(),
                )
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

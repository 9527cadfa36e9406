//! `starlog users` and `starlog acls`: SCRAM users and Kafka ACLs, managed
//! either offline or online.
//!
//! * Offline, `--config starlog.yaml` with the broker stopped: the change is
//!   written into the data directory's `__meta/security.json`
//!   (`LocalSecurityStore::change_now`). That is how the first administrator
//!   is made before a broker has ever started. In a cluster the file is read
//!   at start-up and proposed to the metadata group; the cluster takes its
//!   users only if it never had a user, its ACLs only if it never had an ACL
//!   (so once a cluster runs, manage it online).
//! * Online, `--bootstrap-server HOST:PORT` (with `--sasl-mechanism`,
//!   `--user`, `--password-stdin` for the login and `--ca` for TLS): through
//!   Kafka's DescribeAcls / CreateAcls / DeleteAcls and
//!   Describe/AlterUserScramCredentials (the clients' `Admin`).
//!
//! Passwords are read from stdin, one line each: the login's first (when
//! `--sasl-mechanism` is given), then the user's for `users set`. No
//! password, salt or key is ever printed.

use std::io::{BufRead, Write as _};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use starlog_broker::config::BrokerConfig;
use starlog_broker::security::{LocalSecurityStore, SecurityStore};
use starlog_clients::admin::{ScramChange, UserScramCredentials};
use starlog_clients::{Admin, ClientConfig, SaslConfig, SaslMechanism, TlsConfig};
use starlog_security::{
    AclBinding, AclEntry, AclFilter, AclOperation, ChangeOutcome, PatternType, Permission,
    Principal, ResourcePattern, ResourceType, ScramCredential, ScramMechanism, SecurityChange,
    DEFAULT_ITERATIONS,
};

/// `starlog users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List the users and their SCRAM mechanisms (never a password, salt or key).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Set (add or replace) a user's SCRAM credential. The password is read
    /// from stdin (`--password-stdin`); only its salted hash is stored.
    Set {
        /// The user name.
        name: String,
        /// SCRAM-SHA-512 or SCRAM-SHA-256.
        #[arg(long, value_parser = parse_mechanism, default_value = "SCRAM-SHA-512")]
        mechanism: ScramMechanism,
        /// PBKDF2 iterations (4096 to 1000000).
        #[arg(long, default_value_t = DEFAULT_ITERATIONS)]
        iterations: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a user's SCRAM credential (every mechanism, unless --mechanism).
    Delete {
        /// The user name.
        name: String,
        /// Only this mechanism's credential.
        #[arg(long, value_parser = parse_mechanism)]
        mechanism: Option<ScramMechanism>,
        #[command(flatten)]
        target: Target,
    },
}

/// `starlog acls …`.
#[derive(Debug, Subcommand)]
pub enum AclsCommand {
    /// List ACLs (all, or those on the resources named).
    List {
        #[command(flatten)]
        resources: Resources,
        /// Only the ACLs of this principal (`User:alice`).
        #[arg(long, value_parser = parse_principal)]
        principal: Option<Principal>,
        #[command(flatten)]
        target: Target,
    },
    /// Add ACLs: every principal × operation × resource given.
    Add {
        #[command(flatten)]
        acl: AclArgs,
        #[command(flatten)]
        target: Target,
    },
    /// Remove ACLs: those matching every principal × operation × resource
    /// given (no principal or operation: any).
    Remove {
        #[command(flatten)]
        acl: AclArgs,
        #[command(flatten)]
        target: Target,
    },
}

/// Where the users and ACLs are: a stopped broker's configuration, or a
/// running broker.
#[derive(Debug, Args)]
pub struct Target {
    /// Offline: the broker's YAML configuration (the broker must be
    /// stopped); the change goes into its data directory.
    #[arg(long, short, conflicts_with = "bootstrap_server")]
    config: Option<PathBuf>,
    /// Online: a running broker, HOST:PORT.
    #[arg(long)]
    bootstrap_server: Option<String>,
    /// Online: log in with SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
    #[arg(long, value_parser = parse_sasl, requires = "user", requires = "bootstrap_server")]
    sasl_mechanism: Option<SaslMechanism>,
    /// Online: the user to log in as (with --sasl-mechanism).
    #[arg(long, requires = "sasl_mechanism")]
    user: Option<String>,
    /// Read passwords from stdin, one line each: the login's first (with
    /// --sasl-mechanism), then the new one for `users set`.
    #[arg(long)]
    password_stdin: bool,
    /// Online: connect with TLS, trusting the CA certificates in this PEM file.
    #[arg(long, requires = "bootstrap_server")]
    ca: Option<PathBuf>,
}

/// The resources an ACL command names.
#[derive(Debug, Args)]
pub struct Resources {
    /// A topic (a prefix with `--resource-pattern-type prefixed`; `*` for every topic).
    #[arg(long)]
    topic: Vec<String>,
    /// A consumer group.
    #[arg(long)]
    group: Vec<String>,
    /// The cluster.
    #[arg(long)]
    cluster: bool,
    /// A transactional id.
    #[arg(long)]
    transactional_id: Vec<String>,
    /// literal or prefixed (adding, removing: literal when not given);
    /// listing also takes any (the default) and match.
    #[arg(long, value_parser = parse_pattern_type)]
    resource_pattern_type: Option<PatternType>,
}

/// An ACL command's principals, operations, host and resources.
#[derive(Debug, Args)]
pub struct AclArgs {
    /// A principal to allow (`User:alice`, `User:*`).
    #[arg(long, value_parser = parse_principal)]
    allow_principal: Vec<Principal>,
    /// A principal to deny.
    #[arg(long, value_parser = parse_principal)]
    deny_principal: Vec<Principal>,
    /// An operation: Read, Write, Create, Delete, Alter, Describe,
    /// ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All.
    #[arg(long, value_parser = parse_operation)]
    operation: Vec<AclOperation>,
    /// The client host the ACL applies to (adding: `*` when not given;
    /// removing: any).
    #[arg(long)]
    host: Option<String>,
    #[command(flatten)]
    resources: Resources,
}

fn parse_principal(s: &str) -> Result<Principal, String> {
    Principal::parse(s).map_err(|e| e.to_string())
}

fn parse_operation(s: &str) -> Result<AclOperation, String> {
    match AclOperation::parse(s) {
        Ok(AclOperation::Any) => Err("`Any` is only for filters".into()),
        other => other.map_err(|e| e.to_string()),
    }
}

fn parse_pattern_type(s: &str) -> Result<PatternType, String> {
    PatternType::parse(s).map_err(|e| e.to_string())
}

fn parse_mechanism(s: &str) -> Result<ScramMechanism, String> {
    ScramMechanism::parse(s).map_err(|e| e.to_string())
}

fn parse_sasl(s: &str) -> Result<SaslMechanism, String> {
    match s.to_ascii_uppercase().as_str() {
        "PLAIN" => Ok(SaslMechanism::Plain),
        "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
        "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
        _ => Err(format!(
            "unknown SASL mechanism `{s}` (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
        )),
    }
}

impl Resources {
    /// Each resource named, with the pattern type (`default` when none given).
    fn patterns(&self, default: PatternType) -> anyhow::Result<Vec<ResourcePattern>> {
        let pattern_type = self.resource_pattern_type.unwrap_or(default);
        let mut out = Vec::new();
        let named = [
            (ResourceType::Topic, &self.topic, "--topic"),
            (ResourceType::Group, &self.group, "--group"),
            (
                ResourceType::TransactionalId,
                &self.transactional_id,
                "--transactional-id",
            ),
        ];
        for (resource_type, names, arg) in named {
            for name in names {
                if name.is_empty() {
                    bail!("{arg}: empty name");
                }
                out.push(ResourcePattern {
                    resource_type,
                    name: name.clone(),
                    pattern_type,
                });
            }
        }
        if self.cluster {
            out.push(ResourcePattern {
                resource_type: ResourceType::Cluster,
                name: starlog_security::acl::CLUSTER_NAME.into(),
                pattern_type: match pattern_type {
                    PatternType::Prefixed => PatternType::Literal,
                    p => p,
                },
            });
        }
        Ok(out)
    }
}

impl AclArgs {
    fn principals(&self) -> Vec<(Permission, Principal)> {
        let allow = self
            .allow_principal
            .iter()
            .map(|p| (Permission::Allow, p.clone()));
        let deny = self
            .deny_principal
            .iter()
            .map(|p| (Permission::Deny, p.clone()));
        allow.chain(deny).collect()
    }

    /// The ACLs to add: every principal × operation × resource.
    fn bindings(&self) -> anyhow::Result<Vec<AclBinding>> {
        let principals = self.principals();
        if principals.is_empty() {
            bail!("name at least one --allow-principal or --deny-principal (e.g. User:alice)");
        }
        if self.operation.is_empty() {
            bail!("name at least one --operation (e.g. Read)");
        }
        let patterns = self.resources.patterns(PatternType::Literal)?;
        if patterns.is_empty() {
            bail!("name at least one resource: --topic, --group, --cluster or --transactional-id");
        }
        if let Some(PatternType::Any | PatternType::Match) = self.resources.resource_pattern_type {
            bail!("--resource-pattern-type: adding takes literal or prefixed");
        }
        let host = self.host.clone().unwrap_or_else(|| "*".into());
        let mut out = Vec::new();
        for pattern in &patterns {
            for (permission, principal) in &principals {
                for operation in &self.operation {
                    let acl = AclBinding {
                        pattern: pattern.clone(),
                        entry: AclEntry {
                            principal: principal.clone(),
                            host: host.clone(),
                            operation: *operation,
                            permission: *permission,
                        },
                    };
                    acl.validate().with_context(|| format!("ACL `{acl}`"))?;
                    out.push(acl);
                }
            }
        }
        Ok(out)
    }

    /// The filters of a removal: per resource, principal and operation
    /// given (none given: any).
    fn filters(&self) -> anyhow::Result<Vec<AclFilter>> {
        let patterns = self.resources.patterns(PatternType::Literal)?;
        if patterns.is_empty() {
            bail!("name at least one resource: --topic, --group, --cluster or --transactional-id");
        }
        let principals: Vec<(Permission, Option<Principal>)> = match self.principals() {
            p if p.is_empty() => vec![(Permission::Any, None)],
            p => p.into_iter().map(|(perm, who)| (perm, Some(who))).collect(),
        };
        let operations = match self.operation.as_slice() {
            [] => vec![AclOperation::Any],
            ops => ops.to_vec(),
        };
        let mut out = Vec::new();
        for pattern in &patterns {
            for (permission, principal) in &principals {
                for operation in &operations {
                    out.push(AclFilter {
                        resource_type: pattern.resource_type,
                        name: Some(pattern.name.clone()),
                        pattern_type: pattern.pattern_type,
                        principal: principal.clone(),
                        host: self.host.clone(),
                        operation: *operation,
                        permission: *permission,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// The filters of a listing: every ACL, or those on the resources named.
fn list_filters(
    resources: &Resources,
    principal: Option<&Principal>,
) -> anyhow::Result<Vec<AclFilter>> {
    let patterns = resources.patterns(PatternType::Any)?;
    let base = AclFilter {
        principal: principal.cloned(),
        ..AclFilter::any()
    };
    if patterns.is_empty() {
        return Ok(vec![base]);
    }
    Ok(patterns
        .into_iter()
        .map(|p| AclFilter {
            resource_type: p.resource_type,
            name: Some(p.name),
            pattern_type: p.pattern_type,
            ..base.clone()
        })
        .collect())
}

/// Reads the passwords a command needs from stdin, one line each.
struct Passwords {
    lines: std::io::Lines<std::io::StdinLock<'static>>,
    enabled: bool,
}

impl Passwords {
    fn new(enabled: bool) -> Self {
        Self {
            lines: std::io::stdin().lock().lines(),
            enabled,
        }
    }

    fn next(&mut self, whose: &str) -> anyhow::Result<String> {
        if !self.enabled {
            bail!("{whose} password is read from stdin: add --password-stdin");
        }
        let line = self
            .lines
            .next()
            .with_context(|| format!("stdin ended before {whose} password"))?
            .context("reading stdin")?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            bail!("{whose} password (from stdin) is empty");
        }
        Ok(password)
    }
}

/// Where a command runs.
enum Place {
    Offline(LocalSecurityStore),
    Online(Admin, tokio::runtime::Runtime),
}

impl Target {
    fn open(&self, passwords: &mut Passwords) -> anyhow::Result<Place> {
        match (&self.config, &self.bootstrap_server) {
            (Some(path), None) => {
                let cfg = BrokerConfig::load(path)
                    .with_context(|| format!("--config {}", path.display()))?;
                refuse_if_running(&cfg)?;
                let meta = cfg.data_dir.join("__meta");
                if cfg.cluster.is_some() && cluster_has_started(&cfg) {
                    tracing::warn!(
                        "this broker has been part of a running cluster: its users and ACLs are \
                         the metadata log's, and this file is only taken by a cluster that never \
                         had users (ACLs); use --bootstrap-server to change a running cluster"
                    );
                }
                let store = LocalSecurityStore::open(&meta, cfg.security.policy())
                    .with_context(|| format!("opening the users and ACLs in {}", meta.display()))?;
                Ok(Place::Offline(store))
            }
            (None, Some(server)) => {
                let mut config = ClientConfig::new(server);
                config.client_id = "starlog-cli".into();
                if let Some(mechanism) = self.sasl_mechanism {
                    let username = self.user.clone().unwrap_or_default();
                    let password = passwords.next("the login's (--user)")?;
                    config.sasl = Some(SaslConfig {
                        mechanism,
                        username,
                        password,
                    });
                }
                if let Some(ca) = &self.ca {
                    let pem = std::fs::read(ca).with_context(|| format!("--ca {}", ca.display()))?;
                    config.tls = Some(TlsConfig::with_ca_pem(pem));
                }
                config
                    .validate()
                    .with_context(|| format!("--bootstrap-server {server}"))?;
                let admin = Admin::new(config)
                    .with_context(|| format!("--bootstrap-server {server}"))?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the async runtime")?;
                Ok(Place::Online(admin, runtime))
            }
            _ => bail!(
                "say where: --config starlog.yaml (the broker stopped) or --bootstrap-server HOST:PORT"
            ),
        }
    }
}

/// Offline changes with the broker running would be lost (the broker keeps
/// its own copy): refuse when a configured Kafka address is taken.
fn refuse_if_running(cfg: &BrokerConfig) -> anyhow::Result<()> {
    let addrs: Vec<std::net::SocketAddr> = if cfg.listeners.is_empty() {
        vec![cfg.listen]
    } else {
        cfg.listeners.iter().map(|l| l.listen).collect()
    };
    for addr in addrs.into_iter().filter(|a| a.port() != 0) {
        if let Err(e) = std::net::TcpListener::bind(addr) {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                bail!(
                    "{addr} is in use: is the broker of this configuration running? --config \
                     changes a stopped broker's files; for a running one use --bootstrap-server"
                );
            }
        }
    }
    Ok(())
}

/// Whether this broker's copy of the cluster metadata log holds anything.
fn cluster_has_started(cfg: &BrokerConfig) -> bool {
    std::fs::read_dir(&cfg.data_dir)
        .map(|entries| {
            entries.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("__cluster_metadata")
            })
        })
        .unwrap_or(false)
}

/// Runs a `starlog users` command; what to print.
pub fn users(cmd: UsersCommand) -> anyhow::Result<String> {
    match cmd {
        UsersCommand::List { target } => {
            let mut passwords = Passwords::new(target.password_stdin);
            let listed = match target.open(&mut passwords)? {
                Place::Offline(store) => store
                    .state()
                    .users
                    .iter()
                    .map(|(user, creds)| UserScramCredentials {
                        user: user.clone(),
                        credentials: creds
                            .values()
                            .map(|c| (c.mechanism, i32::try_from(c.iterations).unwrap_or(i32::MAX)))
                            .collect(),
                    })
                    .collect(),
                Place::Online(admin, rt) => rt
                    .block_on(admin.describe_user_scram_credentials(None))
                    .context("listing users")?,
            };
            Ok(render_users(&listed))
        }
        UsersCommand::Set {
            name,
            mechanism,
            iterations,
            target,
        } => {
            check_user_name(&name)?;
            let mut passwords = Passwords::new(target.password_stdin);
            match target.open(&mut passwords)? {
                Place::Offline(store) => {
                    let password = passwords.next(&format!("user {name}'s"))?;
                    let credential = ScramCredential::new(mechanism, &password, iterations)
                        .with_context(|| format!("user {name}"))?;
                    store.change_now(&SecurityChange::SetCredential {
                        user: name.clone(),
                        credential,
                    })?;
                }
                Place::Online(admin, rt) => {
                    let password = passwords.next(&format!("user {name}'s"))?;
                    let iterations = i32::try_from(iterations)
                        .map_err(|_| anyhow::anyhow!("--iterations {iterations}: too large"))?;
                    rt.block_on(admin.alter_user_scram_credentials(&[ScramChange::Upsert {
                        user: name.clone(),
                        mechanism,
                        password,
                        iterations,
                    }]))
                    .with_context(|| format!("setting user {name}"))?;
                }
            }
            Ok(format!("user {name}: {mechanism} credential set\n"))
        }
        UsersCommand::Delete {
            name,
            mechanism,
            target,
        } => {
            let mut passwords = Passwords::new(target.password_stdin);
            let mechanisms: Vec<ScramMechanism> = match mechanism {
                Some(m) => vec![m],
                None => ScramMechanism::ALL.to_vec(),
            };
            let deleted: Vec<ScramMechanism> = match target.open(&mut passwords)? {
                Place::Offline(store) => {
                    let mut deleted = Vec::new();
                    for m in mechanisms {
                        let out = store.change_now(&SecurityChange::DeleteCredential {
                            user: name.clone(),
                            mechanism: m,
                        })?;
                        if out == ChangeOutcome::Credential(true) {
                            deleted.push(m);
                        }
                    }
                    deleted
                }
                Place::Online(admin, rt) => {
                    let have = rt
                        .block_on(admin.describe_user_scram_credentials(None))
                        .context("listing users")?;
                    let have: Vec<ScramMechanism> = have
                        .iter()
                        .filter(|u| u.user == name)
                        .flat_map(|u| u.credentials.iter().map(|(m, _)| *m))
                        .filter(|m| mechanisms.contains(m))
                        .collect();
                    if !have.is_empty() {
                        let changes: Vec<ScramChange> = have
                            .iter()
                            .map(|m| ScramChange::Delete {
                                user: name.clone(),
                                mechanism: *m,
                            })
                            .collect();
                        rt.block_on(admin.alter_user_scram_credentials(&changes))
                            .with_context(|| format!("deleting user {name}"))?;
                    }
                    have
                }
            };
            if deleted.is_empty() {
                bail!(
                    "user {name} has no {} credential",
                    mechanism.map_or("SCRAM".to_string(), |m| m.to_string())
                );
            }
            let names: Vec<&str> = deleted.iter().map(|m| m.name()).collect();
            Ok(format!("user {name}: {} deleted\n", names.join(", ")))
        }
    }
}

fn check_user_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.chars().any(|c| c.is_control() || c == ',' || c == '=') {
        bail!("user name `{name}`: empty, or holds a control character, `,` or `=` (SCRAM cannot carry it)");
    }
    Ok(())
}

fn render_users(users: &[UserScramCredentials]) -> String {
    let mut out = format!("{:<24} {:<15} {}\n", "USER", "MECHANISM", "ITERATIONS");
    for u in users {
        for (m, iterations) in &u.credentials {
            out.push_str(&format!("{:<24} {:<15} {}\n", u.user, m.name(), iterations));
        }
    }
    out
}

/// Runs a `starlog acls` command; what to print.
pub fn acls(cmd: AclsCommand) -> anyhow::Result<String> {
    match cmd {
        AclsCommand::List {
            resources,
            principal,
            target,
        } => {
            let filters = list_filters(&resources, principal.as_ref())?;
            let mut passwords = Passwords::new(target.password_stdin);
            let mut found: Vec<AclBinding> = match target.open(&mut passwords)? {
                Place::Offline(store) => {
                    let all = store.state().acls;
                    all.into_iter()
                        .filter(|a| filters.iter().any(|f| f.matches(a)))
                        .collect()
                }
                Place::Online(admin, rt) => {
                    let mut found = Vec::new();
                    for f in &filters {
                        found.extend(
                            rt.block_on(admin.describe_acls(f))
                                .context("listing ACLs")?,
                        );
                    }
                    found
                }
            };
            found.sort();
            found.dedup();
            Ok(render_acls(&found))
        }
        AclsCommand::Add { acl, target } => {
            let bindings = acl.bindings()?;
            let mut passwords = Passwords::new(target.password_stdin);
            match target.open(&mut passwords)? {
                Place::Offline(store) => {
                    let out = store.change_now(&SecurityChange::CreateAcls {
                        acls: bindings.clone(),
                    })?;
                    if let ChangeOutcome::Created(results) = out {
                        for (r, a) in results.iter().zip(&bindings) {
                            if let Err(e) = r {
                                bail!("ACL `{a}`: {e}");
                            }
                        }
                    }
                }
                Place::Online(admin, rt) => rt
                    .block_on(admin.create_acls(&bindings))
                    .context("adding ACLs")?,
            }
            Ok(format!("added:\n{}", render_acls(&bindings)))
        }
        AclsCommand::Remove { acl, target } => {
            let filters = acl.filters()?;
            let mut passwords = Passwords::new(target.password_stdin);
            let deleted: Vec<AclBinding> = match target.open(&mut passwords)? {
                Place::Offline(store) => {
                    match store.change_now(&SecurityChange::DeleteAcls { filters })? {
                        ChangeOutcome::Deleted(per_filter) => per_filter.concat(),
                        _ => Vec::new(),
                    }
                }
                Place::Online(admin, rt) => rt
                    .block_on(admin.delete_acls(&filters))
                    .context("removing ACLs")?
                    .concat(),
            };
            Ok(format!("removed:\n{}", render_acls(&deleted)))
        }
    }
}

fn render_acls(acls: &[AclBinding]) -> String {
    let mut out = format!(
        "{:<10} {:<24} {:<16} {:<16} {:<16} {:<9} {}\n",
        "PERMISSION", "PRINCIPAL", "HOST", "OPERATION", "RESOURCE", "PATTERN", "NAME"
    );
    for a in acls {
        out.push_str(&format!(
            "{:<10} {:<24} {:<16} {:<16} {:<16} {:<9} {}\n",
            a.entry.permission.as_str(),
            a.entry.principal.to_string(),
            a.entry.host,
            a.entry.operation.as_str(),
            a.pattern.resource_type.as_str(),
            a.pattern.pattern_type.as_str(),
            a.pattern.name
        ));
    }
    out
}

/// Writes a command's output to stdout.
pub fn print(text: &str) -> anyhow::Result<()> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing to stdout")
}

//! `EmailNotifier`: an e-mail per alert, or a digest of the alerts of the
//! last N minutes (Lasair sends daily digests), over SMTP with STARTTLS and
//! a login whose password comes from the environment.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};
use starlog_processors::config::{BuildContext, ConfigError, Params, ProcessorSpec};
use starlog_processors::CandidateProcessor;

use super::delivery::{
    parse_dead_letter_topic, DeadLetters, Deliver, DeliveryError, Notifier, Schedule,
};
use super::template::{Survey, Template};
use super::throttle::Limits;

const CLASS: &str = "EmailNotifier";

const DEFAULT_SUBJECT: &str = "[{filter}] {survey} alert {alert_id} on {object_id}";
const DEFAULT_BODY: &str = "Object {object_id}, alert {alert_id} ({survey})\n\
Position: RA {ra:.6f} Dec {dec:.6f} ({ra:hms} {dec:dms})\n\
Time: {mjd:iso} (MJD {mjd:.5f})\n\
Magnitude: {magnitude:.3f} ± {magnitude_err:.3f} in band {band}\n\
Matches: {matches}\n";

/// One alert's rendered e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mail {
    subject: String,
    body: String,
}

struct SmtpSender {
    transport: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
    filter: String,
    rate_per_minute: u64,
    dead_letter_topic: String,
}

impl SmtpSender {
    fn send(&self, subject: String, body: String) -> Result<(), DeliveryError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = builder
            .body(body)
            .map_err(|e| DeliveryError::permanent(format!("building the message: {e}")))?;
        self.transport.send(&message).map(|_| ()).map_err(|e| {
            let reason = format!("SMTP: {e}");
            if e.is_permanent() {
                DeliveryError::permanent(reason)
            } else {
                DeliveryError::transient(reason)
            }
        })
    }
}

impl Deliver for SmtpSender {
    type Message = Mail;

    fn deliver(&mut self, batch: &[&Mail]) -> Result<(), DeliveryError> {
        if let [one] = batch {
            return self.send(one.subject.clone(), one.body.clone());
        }
        let subject = format!("[{}] digest: {} alerts", self.filter, batch.len());
        let mut body = format!("{} alerts from {}.\n", batch.len(), self.filter);
        for (i, mail) in batch.iter().enumerate() {
            body.push_str(&format!(
                "\n--- {}. {}\n\n{}\n",
                i + 1,
                mail.subject,
                mail.body
            ));
        }
        self.send(subject, body)
    }

    fn summary(&mut self, suppressed: u64) -> Option<Result<(), DeliveryError>> {
        Some(self.send(
            format!("[{}] rate limit reached", self.filter),
            format!(
                "The rate limit of {} messages a minute was reached: {suppressed} alert(s) were not e-mailed.\n\
                 They are in the dead-letter topic {}.\n",
                self.rate_per_minute, self.dead_letter_topic
            ),
        ))
    }
}

#[derive(Debug, Clone)]
struct SmtpConfig {
    host: String,
    port: u16,
    starttls: bool,
    username: Option<String>,
    password_env: Option<String>,
    ca_pem: Option<Vec<u8>>,
}

#[derive(Debug)]
struct EmailSpec {
    smtp: SmtpConfig,
    from: Mailbox,
    to: Vec<Mailbox>,
    filter: String,
    subject: Template,
    body: Template,
    schedule: Schedule,
    limits: Limits,
    dead_letter_topic: String,
}

impl EmailSpec {
    fn transport(&self, path: &str) -> Result<SmtpTransport, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: format!("{path}.params.smtp.{key}"),
            message,
        };
        let s = &self.smtp;
        let mut builder = SmtpTransport::builder_dangerous(s.host.clone())
            .port(s.port)
            .hello_name(ClientId::Domain("starlog".to_owned()))
            .timeout(Some(self.limits.timeout));
        if s.starttls {
            let mut tls = TlsParameters::builder(s.host.clone());
            if let Some(pem) = &s.ca_pem {
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| invalid("ca_file", format!("not a PEM certificate: {e}")))?;
                tls = tls.add_root_certificate(cert);
            }
            let tls = tls
                .build_rustls()
                .map_err(|e| invalid("host", format!("TLS parameters: {e}")))?;
            builder = builder.tls(Tls::Required(tls));
        }
        if let (Some(user), Some(var)) = (&s.username, &s.password_env) {
            // Read when the notifier is built, so a rotated secret needs a reload, not a rebuild.
            let password = std::env::var(var).map_err(|_| {
                invalid(
                    "password_env",
                    format!("the environment variable {var} is not set"),
                )
            })?;
            builder = builder
                .credentials(Credentials::new(user.clone(), password))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(builder.build())
    }
}

impl ProcessorSpec for EmailSpec {
    fn build(
        &self,
        ctx: &BuildContext,
        path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        let sender = SmtpSender {
            transport: self.transport(path)?,
            from: self.from.clone(),
            to: self.to.clone(),
            filter: self.filter.clone(),
            rate_per_minute: self.limits.rate_per_minute,
            dead_letter_topic: self.dead_letter_topic.clone(),
        };
        let (subject, body) = (self.subject.clone(), self.body.clone());
        let notifier = Notifier::start(
            CLASS,
            self.filter.clone(),
            sender,
            self.limits.clone(),
            self.schedule,
            DeadLetters {
                topic: self.dead_letter_topic.clone(),
                sink: ctx.topic_sink.clone(),
                notifier: CLASS,
            },
            Box::new(move |c, filter| Mail {
                subject: subject.render(c, filter),
                body: body.render(c, filter),
            }),
        )
        .map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: format!("starting the delivery thread: {e}"),
        })?;
        Ok(Box::new(notifier))
    }
}

fn mailbox(p: &Params<'_>, key: &str, text: &str) -> Result<Mailbox, ConfigError> {
    text.parse::<Mailbox>()
        .map_err(|e| p.error(key, format!("`{text}` is not an e-mail address: {e}")))
}

fn parse_smtp(p: &mut Params<'_>) -> Result<SmtpConfig, ConfigError> {
    let node = p.get("smtp");
    if node.is_none() {
        return Err(p.error(
            "smtp",
            "missing, expected {host, port, username, password_env}",
        ));
    }
    let mut s = Params::new(p.path_of("smtp"), node, p.base_dir())?;
    let host = s.required_str("host", "an SMTP server host name")?;
    let port = s.optional_u64("port", "a port number", 587)?;
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| s.error("port", format!("{port} is not a port number")))?;
    let starttls = s.choice("tls", &["starttls", "none"], Some("starttls"))? == "starttls";
    let username = s.optional_str("username", "a login name")?;
    let password_env = s.optional_str("password_env", "an environment variable name")?;
    if username.is_some() != password_env.is_some() {
        return Err(s.error(
            if username.is_some() {
                "password_env"
            } else {
                "username"
            },
            "username and password_env go together",
        ));
    }
    if username.is_some() && !starttls {
        return Err(s.error("tls", "a login is only sent over STARTTLS"));
    }
    let ca_pem = match s.optional_str("ca_file", "a PEM CA certificate file")? {
        Some(f) => {
            let path = s.base_dir().join(f);
            Some(
                std::fs::read(&path)
                    .map_err(|e| s.error("ca_file", format!("{}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    s.finish()?;
    Ok(SmtpConfig {
        host,
        port,
        starttls,
        username,
        password_env,
        ca_pem,
    })
}

/// Parameters: `survey` (required), `smtp` (`host` required, `port` 587,
/// `tls` `starttls` | `none`, `username` with `password_env`, `ca_file`),
/// `from` and `to` (required), `filter_name` (default `starlog`),
/// `subject` and `body` (templates), `mode` (`per_alert` | `digest`),
/// `digest_minutes` (default 1440), `dead_letter_topic`, and the limits of
/// [`Limits::parse`] (rate default 30 a minute; in digest mode `max_batch`
/// is the most alerts per digest e-mail, default 1000).
///
/// # Errors
/// Missing or mistyped parameters, unknown template fields, bad addresses.
pub(crate) fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let survey = Survey::parse(p)?;
    let smtp = parse_smtp(p)?;
    let from_text = p.required_str("from", "an e-mail address")?;
    let from = mailbox(p, "from", &from_text)?;
    let to_path = p.path_of("to");
    let to_text = p
        .optional_str_list("to", "e-mail addresses")?
        .unwrap_or_default();
    if to_text.is_empty() {
        return Err(p.error("to", "missing, expected a list of e-mail addresses"));
    }
    let to = to_text
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.parse::<Mailbox>().map_err(|e| ConfigError::Invalid {
                path: format!("{to_path}[{i}]"),
                message: format!("`{t}` is not an e-mail address: {e}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let filter = p
        .optional_str("filter_name", "the filter's name")?
        .unwrap_or_else(|| "starlog".to_owned());
    let subject = Template::param(p, "subject", &survey, Some(DEFAULT_SUBJECT))?;
    let body = Template::param(p, "body", &survey, Some(DEFAULT_BODY))?;
    let digest = p.choice("mode", &["per_alert", "digest"], Some("per_alert"))? == "digest";
    let digest_minutes = p
        .optional_f64("digest_minutes", "a number of minutes")?
        .unwrap_or(1440.0);
    if digest_minutes <= 0.0 {
        return Err(p.error("digest_minutes", "must be greater than 0"));
    }
    if !digest && p.get("digest_minutes").is_some() {
        return Err(p.error("digest_minutes", "only applies to mode: digest"));
    }
    let dead_letter_topic = parse_dead_letter_topic(p)?;
    let mut limits = Limits::parse(p, 30)?;
    let schedule = if digest {
        if p.get("max_batch").is_none() {
            limits.max_batch = 1000;
        }
        Schedule::Digest(Duration::from_secs_f64(digest_minutes * 60.0))
    } else {
        Schedule::Immediate
    };
    Ok(Box::new(EmailSpec {
        smtp,
        from,
        to,
        filter,
        subject,
        body,
        schedule,
        limits,
        dead_letter_topic,
    }))
}

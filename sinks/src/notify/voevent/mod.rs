//! `VOEventWriter`: a VOEvent 2.0 packet per alert, sent over the VOEvent
//! Transport Protocol to one or more receivers (brokers such as Comet), for
//! robotic follow-up.

mod packet;
mod transport;

use starlog_processors::config::{BuildContext, ConfigError, Params, ProcessorSpec};
use starlog_processors::CandidateProcessor;

use super::delivery::{parse_dead_letter_topic, DeadLetters, Notifier, Schedule};
use super::template::{Survey, Template};
use super::throttle::Limits;

const CLASS: &str = "VOEventWriter";

/// Params sent when `fields` is not given.
const DEFAULT_FIELDS: &[&str] = &[
    "object_id",
    "alert_id",
    "magnitude",
    "magnitude_err",
    "band",
];

#[derive(Debug)]
struct VoEventSpec {
    config: packet::PacketConfig,
    receivers: Vec<String>,
    limits: Limits,
    dead_letter_topic: String,
}

impl ProcessorSpec for VoEventSpec {
    fn build(
        &self,
        ctx: &BuildContext,
        path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        let sender = transport::VtpSender::new(
            self.receivers.clone(),
            self.config.author_ivorn.clone(),
            self.limits.timeout,
        );
        let config = self.config.clone();
        let notifier = Notifier::start(
            CLASS,
            self.config.filter.clone(),
            sender,
            self.limits.clone(),
            Schedule::Immediate,
            DeadLetters {
                topic: self.dead_letter_topic.clone(),
                sink: ctx.topic_sink.clone(),
                notifier: CLASS,
            },
            Box::new(move |c, _filter| packet::render(&config, c)),
        )
        .map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: format!("starting the delivery thread: {e}"),
        })?;
        Ok(Box::new(notifier))
    }
}

fn check_authority(p: &Params<'_>, authority: &str) -> Result<(), ConfigError> {
    let ok = !authority.is_empty()
        && authority.len() >= 3
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        && authority
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(p.error(
            "authority",
            format!(
                "`{authority}` is not an IVOA authority id (letters, digits and -._~, at least 3 characters, e.g. `starlog.example`)"
            ),
        ))
    }
}

/// Parameters: `survey` (`ztf` | `rubin`, required: fields are checked
/// against it), `authority` (required), `stream` (default `alerts`),
/// `role` (default `observation`), `filter_name` (required), `fields`
/// (default: object_id, alert_id, magnitude, magnitude_err, band),
/// `receivers` (required, `host:port`), `contact_name`, `contact_email`,
/// `position_error_arcsec` (default 1), `importance`, `description`
/// (a template), `dead_letter_topic`, and the limits of
/// [`Limits::parse`] (`max_batch` must be 1).
///
/// # Errors
/// Missing or mistyped parameters, unknown fields.
pub(crate) fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let survey = Survey::parse(p)?;
    let authority = p.required_str("authority", "an IVOA authority id")?;
    check_authority(p, &authority)?;
    let stream = p
        .optional_str("stream", "a resource key")?
        .unwrap_or_else(|| "alerts".to_owned());
    if stream.contains(['#', '?', ' ']) || stream.starts_with('/') {
        return Err(p.error("stream", format!("`{stream}` is not a resource key")));
    }
    let role = p.choice(
        "role",
        &["observation", "test", "utility", "prediction"],
        Some("observation"),
    )?;
    let filter = p.required_str("filter_name", "the filter's name (VOEvent Why/Name)")?;
    let fields = match p.optional_str_list("fields", "field names")? {
        Some(f) => f,
        None => DEFAULT_FIELDS.iter().map(|s| (*s).to_owned()).collect(),
    };
    let fields_path = p.path_of("fields");
    for (i, f) in fields.iter().enumerate() {
        if !survey.has(f) {
            return Err(ConfigError::Invalid {
                path: format!("{fields_path}[{i}]"),
                message: format!(
                    "`{f}` is not a field of {} alerts (fields of other schema versions go in extra_fields)",
                    survey.family
                ),
            });
        }
    }
    let receivers = p
        .optional_str_list("receivers", "host:port addresses")?
        .unwrap_or_default();
    if receivers.is_empty() {
        return Err(p.error(
            "receivers",
            "missing, expected a list of host:port addresses",
        ));
    }
    let receivers_path = p.path_of("receivers");
    for (i, r) in receivers.iter().enumerate() {
        let port_ok = r
            .rsplit_once(':')
            .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(ConfigError::Invalid {
                path: format!("{receivers_path}[{i}]"),
                message: format!("`{r}` is not a host:port address"),
            });
        }
    }
    let contact_name = p.optional_str("contact_name", "a name")?;
    let contact_email = p.optional_str("contact_email", "an e-mail address")?;
    let position_error_arcsec = p
        .optional_f64("position_error_arcsec", "a radius in arcsec")?
        .unwrap_or(1.0);
    if position_error_arcsec < 0.0 {
        return Err(p.error("position_error_arcsec", "must not be negative"));
    }
    let importance = p.optional_f64("importance", "a number between 0 and 1")?;
    if importance.is_some_and(|i| !(0.0..=1.0).contains(&i)) {
        return Err(p.error("importance", "must be between 0 and 1"));
    }
    let description = match p.get("description") {
        Some(_) => Some(Template::param(p, "description", &survey, None)?),
        None => None,
    };
    let dead_letter_topic = parse_dead_letter_topic(p)?;
    let limits = Limits::parse(p, 0)?;
    if limits.max_batch != 1 {
        return Err(p.error(
            "max_batch",
            "VOEvents are one packet per alert: max_batch must be 1",
        ));
    }
    let author_ivorn = format!("ivo://{authority}");
    Ok(Box::new(VoEventSpec {
        config: packet::PacketConfig {
            stream_ivorn: format!("{author_ivorn}/{stream}"),
            author_ivorn,
            role,
            filter,
            fields,
            contact_name,
            contact_email,
            position_error_deg: position_error_arcsec / 3600.0,
            importance,
            description,
        },
        receivers,
        limits,
        dead_letter_topic,
    }))
}

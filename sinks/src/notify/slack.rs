//! `SlackNotifier`: a Slack incoming-webhook message per alert, or per
//! batch of alerts already waiting (`max_batch` > 1), with a templated text
//! and link; rate-limited, with a summary message once the limit lifts.

use std::sync::Arc;

use starlog_processors::config::{BuildContext, ConfigError, Params, ProcessorSpec};
use starlog_processors::CandidateProcessor;

use super::delivery::{
    parse_dead_letter_topic, DeadLetters, Deliver, DeliveryError, Notifier, Retry, Schedule,
};
use super::http::{self, Client, Url};
use super::template::{Survey, Template};
use super::throttle::Limits;

const CLASS: &str = "SlackNotifier";

/// The default text of one alert.
const DEFAULT_TEXT: &str =
    "{survey} {object_id} (alert {alert_id}) at {ra:.5f} {dec:.5f}: mag {magnitude:.2f} ± {magnitude_err:.2f} in {band}, MJD {mjd:.5f}";

/// One alert's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlackLine {
    text: String,
    link: Option<String>,
}

impl SlackLine {
    fn render(&self) -> String {
        match &self.link {
            Some(l) => format!("{} <{l}>", self.text),
            None => self.text.clone(),
        }
    }
}

struct SlackSender {
    client: Client,
    filter: String,
    username: Option<String>,
    rate_per_minute: u64,
    dead_letter_topic: String,
}

impl SlackSender {
    fn post(&self, text: &str) -> Result<(), DeliveryError> {
        let mut payload = serde_json::json!({ "text": text });
        if let Some(u) = &self.username {
            payload["username"] = serde_json::Value::String(u.clone());
        }
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        let response = self
            .client
            .post_json(&body)
            .map_err(|e| DeliveryError::transient(format!("posting to the webhook: {e}")))?;
        match response.status {
            200..=299 => Ok(()),
            429 | 408 | 500..=599 => Err(DeliveryError {
                reason: format!(
                    "webhook answered HTTP {}: {}",
                    response.status, response.body
                ),
                retry: Retry::Later(response.retry_after),
            }),
            s => Err(DeliveryError::permanent(format!(
                "webhook answered HTTP {s}: {}",
                response.body
            ))),
        }
    }
}

impl Deliver for SlackSender {
    type Message = SlackLine;

    fn deliver(&mut self, batch: &[&SlackLine]) -> Result<(), DeliveryError> {
        let text = if let [one] = batch {
            one.render()
        } else {
            let mut t = format!("{} alerts from {}:", batch.len(), self.filter);
            for line in batch {
                t.push_str("\n• ");
                t.push_str(&line.render());
            }
            t
        };
        self.post(&text)
    }

    fn summary(&mut self, suppressed: u64) -> Option<Result<(), DeliveryError>> {
        Some(self.post(&format!(
            "{}: rate limit of {} messages a minute reached, {suppressed} alert(s) not posted (they are in the dead-letter topic {})",
            self.filter, self.rate_per_minute, self.dead_letter_topic
        )))
    }
}

#[derive(Debug)]
struct SlackSpec {
    url: Url,
    ca_pem: Option<Vec<u8>>,
    filter: String,
    username: Option<String>,
    text: Template,
    link: Option<Template>,
    limits: Limits,
    dead_letter_topic: String,
}

impl ProcessorSpec for SlackSpec {
    fn build(
        &self,
        ctx: &BuildContext,
        path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let tls = if self.url.tls {
            Some(Arc::new(
                http::tls_config(self.ca_pem.as_deref()).map_err(invalid)?,
            ))
        } else {
            None
        };
        let sender = SlackSender {
            client: Client::new(self.url.clone(), tls, self.limits.timeout),
            filter: self.filter.clone(),
            username: self.username.clone(),
            rate_per_minute: self.limits.rate_per_minute,
            dead_letter_topic: self.dead_letter_topic.clone(),
        };
        let (text, link) = (self.text.clone(), self.link.clone());
        let notifier = Notifier::start(
            CLASS,
            self.filter.clone(),
            sender,
            self.limits.clone(),
            Schedule::Immediate,
            DeadLetters {
                topic: self.dead_letter_topic.clone(),
                sink: ctx.topic_sink.clone(),
                notifier: CLASS,
            },
            Box::new(move |c, filter| SlackLine {
                text: text.render(c, filter),
                link: link.as_ref().map(|l| l.render(c, filter)),
            }),
        )
        .map_err(|e| invalid(format!("starting the delivery thread: {e}")))?;
        Ok(Box::new(notifier))
    }
}

/// Parameters: `survey` (required), `webhook_url` or `webhook_url_env`
/// (the name of an environment variable holding it; one is required),
/// `ca_file` (an extra CA for https), `filter_name` (default `starlog`),
/// `username`, `text` (a template), `link` (a template, e.g.
/// `https://lasair-ztf.lsst.ac.uk/objects/{objectId}/`), `dead_letter_topic`,
/// and the limits of [`Limits::parse`] (rate default 60 a minute).
///
/// # Errors
/// Missing or mistyped parameters, unknown template fields, an unset
/// environment variable.
pub(crate) fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let survey = Survey::parse(p)?;
    let direct = p.optional_str("webhook_url", "a webhook URL")?;
    let env = p.optional_str("webhook_url_env", "an environment variable name")?;
    let (url_text, key) = match (direct, env) {
        (Some(u), None) => (u, "webhook_url"),
        (None, Some(var)) => (
            std::env::var(&var).map_err(|_| {
                p.error(
                    "webhook_url_env",
                    format!("the environment variable {var} is not set"),
                )
            })?,
            "webhook_url_env",
        ),
        (Some(_), Some(_)) => {
            return Err(p.error(
                "webhook_url",
                "give webhook_url or webhook_url_env, not both",
            ))
        }
        (None, None) => {
            return Err(p.error(
                "webhook_url",
                "missing, expected a webhook URL (or webhook_url_env)",
            ))
        }
    };
    let url = Url::parse(&url_text)
        .ok_or_else(|| p.error(key, "not an http:// or https:// URL with a host"))?;
    let ca_pem = match p.optional_str("ca_file", "a PEM file of CA certificates")? {
        Some(f) => {
            let path = p.base_dir().join(f);
            Some(
                std::fs::read(&path)
                    .map_err(|e| p.error("ca_file", format!("{}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let filter = p
        .optional_str("filter_name", "the filter's name")?
        .unwrap_or_else(|| "starlog".to_owned());
    let username = p.optional_str("username", "a name")?;
    let text = Template::param(p, "text", &survey, Some(DEFAULT_TEXT))?;
    let link = match p.get("link") {
        Some(_) => Some(Template::param(p, "link", &survey, None)?),
        None => None,
    };
    let dead_letter_topic = parse_dead_letter_topic(p)?;
    let limits = Limits::parse(p, 60)?;
    Ok(Box::new(SlackSpec {
        url,
        ca_pem,
        filter,
        username,
        text,
        link,
        limits,
        dead_letter_topic,
    }))
}

//! Notifications (VOEvent, Slack, e-mail).
//!
//! Every notifier renders its message on the chain's thread from templates
//! ([`template`]) compiled at load, and hands it to a delivery thread of
//! its own through a bounded queue ([`delivery`]), under the limits of
//! [`throttle`]: the chain never waits for a receiver, and an alert that
//! cannot be delivered is dead-lettered with the reason.

mod delivery;
mod email;
mod http;
mod slack;
mod template;
mod throttle;
mod voevent;

use starlog_processors::config::ProcessorRegistry;

/// Adds this module's classes to `registry`.
pub(crate) fn register(registry: &mut ProcessorRegistry) {
    registry.register("VOEventWriter", voevent::parse);
    registry.register("SlackNotifier", slack::parse);
    registry.register("EmailNotifier", email::parse);
}

//! Notifier and stream configurations that cannot work are refused at load
//! time, with the YAML path of the fault: a template naming a field the
//! survey's alerts do not have, an unknown format, a field list entry, a
//! missing receiver, a bad address, an unset secret, a JSON shape without
//! its fields.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::load;

fn refused(processor: &str) -> String {
    let yaml = format!(
        "type: processing-node\nname: bad\nsource: {{ topic: alerts }}\nprocessors:\n  - class: ExpressionFilter\n    params: {{ expression: \"magnitude < 19\" }}\n{processor}"
    );
    match load(&yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

fn assert_refused(processor: &str, path: &str, words: &[&str]) {
    let e = refused(processor);
    assert!(e.contains(path), "error without the path {path}: {e}");
    for w in words {
        assert!(e.contains(w), "error without `{w}`: {e}");
    }
}

#[test]
fn a_slack_template_naming_a_missing_field_is_refused_with_its_path() {
    assert_refused(
        "  - class: SlackNotifier\n    params:\n      survey: ztf\n      webhook_url: http://127.0.0.1:9/x\n      text: \"{objectId} {candidate.magpfs:.2f}\"\n",
        "processors[1].params.text",
        &["`candidate.magpfs` is not a field of ZTF alerts"],
    );
    // A Rubin field is not a ZTF field, and the other way round.
    assert_refused(
        "  - class: SlackNotifier\n    params:\n      survey: ztf\n      webhook_url: http://127.0.0.1:9/x\n      link: \"https://example.org/{diaObjectId}\"\n",
        "processors[1].params.link",
        &["`diaObjectId`"],
    );
    assert_refused(
        "  - class: SlackNotifier\n    params:\n      survey: rubin\n      webhook_url: http://127.0.0.1:9/x\n      text: \"{objectId}\"\n",
        "processors[1].params.text",
        &["`objectId` is not a field of Rubin alerts"],
    );
}

#[test]
fn email_and_voevent_templates_and_fields_are_checked() {
    let smtp = "      smtp: { host: 127.0.0.1, port: 2525, tls: none }\n      from: a@b.test\n      to: [c@d.test]\n";
    assert_refused(
        &format!("  - class: EmailNotifier\n    params:\n      survey: ztf\n{smtp}      subject: \"{{objectId}} {{candidate.nope}}\"\n"),
        "processors[1].params.subject",
        &["`candidate.nope`"],
    );
    assert_refused(
        &format!("  - class: EmailNotifier\n    params:\n      survey: ztf\n{smtp}      body: \"{{jd:when}}\"\n"),
        "processors[1].params.body",
        &["unknown format `when`"],
    );
    assert_refused(
        &format!("  - class: EmailNotifier\n    params:\n      survey: ztf\n{smtp}      body: \"{{jd\"\n"),
        "processors[1].params.body",
        &["unclosed"],
    );
    let vo = "  - class: VOEventWriter\n    params:\n      survey: ztf\n      authority: starlog.test\n      filter_name: f\n      receivers: [\"127.0.0.1:8098\"]\n";
    assert_refused(
        &format!("{vo}      fields: [objectId, candidate.magpsf, candidate.bogus]\n"),
        "processors[1].params.fields[2]",
        &["`candidate.bogus` is not a field of ZTF alerts"],
    );
    assert_refused(
        &format!("{vo}      description: \"{{nothing}}\"\n"),
        "processors[1].params.description",
        &["`nothing`"],
    );
    assert_refused(
        &format!("{vo}      max_batch: 5\n"),
        "processors[1].params.max_batch",
        &["one packet per alert"],
    );
}

#[test]
fn addresses_receivers_and_secrets_are_checked() {
    assert_refused(
        "  - class: VOEventWriter\n    params: { survey: ztf, authority: starlog.test, filter_name: f }\n",
        "processors[1].params.receivers",
        &["missing"],
    );
    assert_refused(
        "  - class: VOEventWriter\n    params: { survey: ztf, authority: starlog.test, filter_name: f, receivers: [\"127.0.0.1\"] }\n",
        "processors[1].params.receivers[0]",
        &["host:port"],
    );
    assert_refused(
        "  - class: VOEventWriter\n    params: { survey: ztf, authority: \"a b\", filter_name: f, receivers: [\"h:1\"] }\n",
        "processors[1].params.authority",
        &["IVOA authority"],
    );
    assert_refused(
        "  - class: SlackNotifier\n    params: { survey: ztf, webhook_url: \"ftp://x/y\" }\n",
        "processors[1].params.webhook_url",
        &["http"],
    );
    assert_refused(
        "  - class: SlackNotifier\n    params: { survey: ztf, webhook_url_env: STARLOG_TEST_NO_SUCH_VARIABLE }\n",
        "processors[1].params.webhook_url_env",
        &["STARLOG_TEST_NO_SUCH_VARIABLE is not set"],
    );
    assert_refused(
        "  - class: SlackNotifier\n    params: { webhook_url: \"http://h/x\" }\n",
        "processors[1].params.survey",
        &["missing"],
    );
    assert_refused(
        "  - class: EmailNotifier\n    params: { survey: ztf, smtp: { host: h, username: u }, from: a@b.test, to: [c@d.test] }\n",
        "processors[1].params.smtp.password_env",
        &["go together"],
    );
    assert_refused(
        "  - class: EmailNotifier\n    params: { survey: ztf, smtp: { host: h }, from: a@b.test, to: [c@d.test, not-an-address] }\n",
        "processors[1].params.to[1]",
        &["not an e-mail address"],
    );
    assert_refused(
        "  - class: EmailNotifier\n    params: { survey: ztf, smtp: { host: h, prot: 25 }, from: a@b.test, to: [c@d.test] }\n",
        "processors[1].params.smtp.prot",
        &["unknown parameter"],
    );
    assert_refused(
        "  - class: SlackNotifier\n    params: { survey: ztf, webhook_url: \"http://h/x\", rate_limit: 5 }\n",
        "processors[1].params.rate_limit",
        &["unknown parameter"],
    );
}

#[test]
fn kafka_topic_writer_shapes_are_checked() {
    assert_refused(
        "  - class: KafkaTopicWriter\n    params: { topic: t, format: json, shape: fields }\n",
        "processors[1].params.fields",
        &["missing"],
    );
    assert_refused(
        "  - class: KafkaTopicWriter\n    params: { topic: t, format: avro, shape: lite_lightcurve }\n",
        "processors[1].params.shape",
        &["only applies to format: json"],
    );
    assert_refused(
        "  - class: KafkaTopicWriter\n    params: { topic: t, format: json, fields: [objectId] }\n",
        "processors[1].params.fields",
        &["only applies to shape: fields"],
    );
    assert_refused(
        "  - class: KafkaTopicWriter\n    params: { topic: t, format: json, shape: lite, include_cutouts: true }\n",
        "processors[1].params.shape",
        &["one of full, fields, lite_lightcurve"],
    );
}

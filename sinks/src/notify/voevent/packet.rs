//! VOEvent 2.0 packets (IVOA Recommendation, 2011) for one alert, and the
//! Transport packets of the VOEvent Transport Protocol.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use starlog_processors::{AlertFamily, Candidate};

use crate::notify::template::{self, Template};

/// TAI - UTC since 2017-01-01, seconds (Rubin times are TAI).
const TAI_MINUS_UTC_S: f64 = 37.0;

/// Escapes text for XML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Now, UTC, as `YYYY-MM-DDTHH:MM:SS`.
pub(crate) fn now_iso() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let iso = template::iso_from_mjd(40_587.0 + secs / 86_400.0);
    iso.split('.').next().unwrap_or(&iso).to_owned()
}

/// What every packet of one writer shares.
#[derive(Debug, Clone)]
pub(crate) struct PacketConfig {
    /// `ivo://authority` (no trailing slash).
    pub author_ivorn: String,
    /// `ivo://authority/stream`: packets are `<stream>#<alert id>`.
    pub stream_ivorn: String,
    /// `observation`, `test`, `utility` or `prediction`.
    pub role: String,
    /// The filter's name (Why/Name).
    pub filter: String,
    /// Fields sent as What/Param.
    pub fields: Vec<String>,
    /// Who/Author/contactName and contactEmail.
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    /// Error2Radius, degrees.
    pub position_error_deg: f64,
    /// Why/@importance.
    pub importance: Option<f64>,
    /// A top-level Description.
    pub description: Option<Template>,
}

/// A rendered packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packet {
    /// Its IVORN.
    pub ivorn: String,
    /// The XML document.
    pub xml: String,
}

/// The VOEvent packet for `c`.
pub(crate) fn render(cfg: &PacketConfig, c: &Candidate) -> Packet {
    let ivorn = format!("{}#{}", cfg.stream_ivorn, c.alert_id());
    let mut x = String::with_capacity(4096);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<voe:VOEvent xmlns:voe=\"http://www.ivoa.net/xml/VOEvent/v2.0\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://www.ivoa.net/xml/VOEvent/v2.0 http://www.ivoa.net/xml/VOEvent/VOEvent-v2.0.xsd\" \
         version=\"2.0\" role=\"{}\" ivorn=\"{}\">",
        escape(&cfg.role),
        escape(&ivorn)
    );
    // Who
    x.push_str("  <Who>\n");
    let _ = writeln!(
        x,
        "    <AuthorIVORN>{}</AuthorIVORN>",
        escape(&cfg.author_ivorn)
    );
    let _ = writeln!(x, "    <Date>{}</Date>", now_iso());
    if cfg.contact_name.is_some() || cfg.contact_email.is_some() {
        x.push_str("    <Author>\n");
        if let Some(n) = &cfg.contact_name {
            let _ = writeln!(x, "      <contactName>{}</contactName>", escape(n));
        }
        if let Some(e) = &cfg.contact_email {
            let _ = writeln!(x, "      <contactEmail>{}</contactEmail>", escape(e));
        }
        x.push_str("    </Author>\n");
    }
    x.push_str("  </Who>\n");
    // What
    x.push_str("  <What>\n");
    for name in &cfg.fields {
        if let Some((value, data_type)) = template::param_value(c, name) {
            let _ = writeln!(
                x,
                "    <Param name=\"{}\" value=\"{}\" dataType=\"{data_type}\"/>",
                escape(name),
                escape(&value)
            );
        }
    }
    x.push_str("  </What>\n");
    // WhereWhen
    let time = c.mjd().map(|mjd| match c.family() {
        AlertFamily::Ztf => mjd,
        AlertFamily::Rubin => mjd - TAI_MINUS_UTC_S / 86_400.0,
    });
    x.push_str(
        "  <WhereWhen>\n    <ObsDataLocation>\n      <ObservatoryLocation id=\"GEOLUN\"/>\n      \
         <ObservationLocation>\n        <AstroCoordSystem id=\"UTC-ICRS-TOPO\"/>\n        \
         <AstroCoords coord_system_id=\"UTC-ICRS-TOPO\">\n",
    );
    if let Some(mjd) = time {
        let _ = writeln!(
            x,
            "          <Time unit=\"s\">\n            <TimeInstant>\n              <ISOTime>{}</ISOTime>\n            </TimeInstant>\n          </Time>",
            template::iso_from_mjd(mjd)
        );
    }
    let _ = writeln!(
        x,
        "          <Position2D unit=\"deg\">\n            <Name1>RA</Name1>\n            <Name2>Dec</Name2>\n            \
         <Value2>\n              <C1>{}</C1>\n              <C2>{}</C2>\n            </Value2>\n            \
         <Error2Radius>{}</Error2Radius>\n          </Position2D>",
        c.ra(),
        c.dec(),
        cfg.position_error_deg
    );
    x.push_str("        </AstroCoords>\n      </ObservationLocation>\n    </ObsDataLocation>\n  </WhereWhen>\n");
    // Why
    match cfg.importance {
        Some(i) => {
            let _ = writeln!(x, "  <Why importance=\"{i}\">");
        }
        None => x.push_str("  <Why>\n"),
    }
    let _ = writeln!(x, "    <Name>{}</Name>", escape(&cfg.filter));
    for m in c.matches() {
        let _ = writeln!(
            x,
            "    <Inference relation=\"associated\">\n      <Name>{}</Name>\n      <Concept>{}</Concept>\n      \
             <Description>cross-match: {} source {} at RA {} Dec {}, {:.3} arcsec away</Description>\n    </Inference>",
            escape(&m.sourceid),
            escape(&m.catalogid),
            escape(&m.catalogid),
            escape(&m.sourceid),
            m.sourcera,
            m.sourcedec,
            m.distance * 3600.0
        );
    }
    x.push_str("  </Why>\n");
    if let Some(t) = &cfg.description {
        let _ = writeln!(
            x,
            "  <Description>{}</Description>",
            escape(&t.render(c, &cfg.filter))
        );
    }
    x.push_str("</voe:VOEvent>\n");
    Packet { ivorn, xml: x }
}

/// A Transport `iamalive` answer from `local` to a receiver's `origin`.
pub(crate) fn iamalive_response(origin: &str, local: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <trn:Transport xmlns:trn=\"http://www.telescope-networks.org/xml/Transport/v1.1\" version=\"1.0\" role=\"iamalive\">\n  \
         <Origin>{}</Origin>\n  <Response>{}</Response>\n  <TimeStamp>{}Z</TimeStamp>\n</trn:Transport>\n",
        escape(origin),
        escape(local),
        now_iso()
    )
}

/// The value of attribute `name` of the root element of `xml`.
pub(crate) fn root_attribute<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    // Skip the XML declaration and comments: the root is the first `<` followed by a letter.
    let start = xml
        .match_indices('<')
        .find(|(i, _)| xml[i + 1..].chars().next().is_some_and(char::is_alphabetic))?
        .0;
    let end = start + xml[start..].find('>')?;
    let tag = &xml[start..end];
    for quote in ['"', '\''] {
        let pattern = format!(" {name}={quote}");
        if let Some(p) = tag.find(&pattern) {
            let v = &tag[p + pattern.len()..];
            return v.find(quote).map(|e| &v[..e]);
        }
    }
    None
}

/// The text of the first element named `name` (no namespace prefix) in `xml`.
pub(crate) fn element_text<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find("</")?;
    Some(xml[start..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_parsing() {
        let ack = "<?xml version='1.0' encoding='UTF-8'?>\n<trn:Transport xmlns:trn=\"x\" version=\"1.0\" role=\"ack\"><Origin>ivo://a/b#1</Origin><Meta><Result>ok</Result></Meta></trn:Transport>";
        assert_eq!(root_attribute(ack, "role"), Some("ack"));
        assert_eq!(root_attribute(ack, "version"), Some("1.0"));
        assert_eq!(element_text(ack, "Origin"), Some("ivo://a/b#1"));
        assert_eq!(element_text(ack, "Result"), Some("ok"));
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}

# Notification tests (sinks/tests/voevent.rs, email.rs): the Comet VOEvent
# broker (twistd comet) and its VOEvent 2.0 schema, xmllint to validate
# packets against it, and aiosmtpd as the SMTP server. Sourced by scripts/test.
command -v xmllint >/dev/null 2>&1 || apt_missing+=(libxml2-utils)
{ python3 -c 'import comet' 2>/dev/null && command -v twistd >/dev/null 2>&1; } || pip_missing+=(comet)
python3 -c 'import aiosmtpd' 2>/dev/null || pip_missing+=(aiosmtpd)
pip_check+=(comet aiosmtpd)

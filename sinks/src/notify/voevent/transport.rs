//! The VOEvent Transport Protocol (VTP, IVOA Note 2009), author side: each
//! packet is a 4-byte big-endian length then the XML; the receiver answers
//! with a Transport `ack` or `nak` naming the event, and may send `iamalive`
//! packets, which are answered in kind. Receivers commonly close the
//! connection after each submission (Comet does): the connection is checked
//! before reuse and opened again when needed. A receiver that cannot be
//! reached is not tried again before a back-off (doubling from 0.5 s, at
//! most 30 s) has passed.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::packet::{element_text, iamalive_response, root_attribute, Packet};
use crate::notify::delivery::{Deliver, DeliveryError};

/// Largest Transport packet accepted from a receiver.
const MAX_FRAME: usize = 1 << 20;
/// First reconnect back-off.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest reconnect back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One receiver.
#[derive(Debug)]
struct Receiver {
    address: String,
    stream: Option<TcpStream>,
    failures: u32,
    down_until: Option<Instant>,
}

/// What went wrong with one receiver.
#[derive(Debug)]
enum SendError {
    /// Try again later (network).
    Transient(String),
    /// The receiver refused the event (nak).
    Refused(String),
}

impl Receiver {
    fn new(address: String) -> Self {
        Receiver {
            address,
            stream: None,
            failures: 0,
            down_until: None,
        }
    }

    /// True when the open connection is still usable (the peer did not close it).
    fn alive(stream: &TcpStream) -> bool {
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut b = [0u8; 1];
        let alive = match stream.peek(&mut b) {
            Ok(0) => false,
            // Unsolicited data (an iamalive) is handled by the read loop.
            Ok(_) => true,
            Err(e) => e.kind() == ErrorKind::WouldBlock,
        };
        stream.set_nonblocking(false).is_ok() && alive
    }

    fn connect(&mut self, timeout: Duration) -> Result<TcpStream, SendError> {
        if let Some(until) = self.down_until {
            let now = Instant::now();
            if now < until {
                return Err(SendError::Transient(format!(
                    "{} unreachable, next reconnect in {} ms",
                    self.address,
                    until.duration_since(now).as_millis()
                )));
            }
        }
        let result = (|| {
            let addrs = self.address.to_socket_addrs()?;
            let mut last = None;
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, timeout) {
                    Ok(s) => return Ok(s),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| {
                std::io::Error::new(ErrorKind::NotFound, "the name resolved to no address")
            }))
        })();
        match result {
            Ok(s) => {
                self.failures = 0;
                self.down_until = None;
                s.set_read_timeout(Some(timeout))
                    .and_then(|()| s.set_write_timeout(Some(timeout)))
                    .and_then(|()| s.set_nodelay(true))
                    .map_err(|e| SendError::Transient(format!("{}: {e}", self.address)))?;
                tracing::debug!(receiver = %self.address, "VTP connection open");
                Ok(s)
            }
            Err(e) => {
                self.failures += 1;
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << self.failures.saturating_sub(1).min(10))
                    .min(MAX_BACKOFF);
                self.down_until = Some(Instant::now() + backoff);
                Err(SendError::Transient(format!(
                    "connecting to {}: {e}",
                    self.address
                )))
            }
        }
    }

    fn send(
        &mut self,
        packet: &Packet,
        local_ivorn: &str,
        timeout: Duration,
    ) -> Result<(), SendError> {
        let mut stream = match self.stream.take() {
            Some(s) if Self::alive(&s) => s,
            _ => self.connect(timeout)?,
        };
        let result = exchange(&mut stream, packet, local_ivorn);
        match &result {
            Ok(()) | Err(SendError::Refused(_)) => self.stream = Some(stream),
            // The connection is in an unknown state: open a new one next time.
            Err(SendError::Transient(_)) => {}
        }
        result.map_err(|e| match e {
            SendError::Transient(r) => SendError::Transient(format!("{}: {r}", self.address)),
            SendError::Refused(r) => SendError::Refused(format!("{}: {r}", self.address)),
        })
    }
}

fn write_frame(stream: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| std::io::Error::new(ErrorKind::InvalidInput, "packet over 4 GiB"))?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame)?;
    stream.flush()
}

fn read_frame(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("a {len}-byte packet (limit {MAX_FRAME})"),
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    String::from_utf8(body)
        .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "a packet that is not UTF-8"))
}

/// Sends `packet` and waits for its ack or nak, answering iamalives.
fn exchange(stream: &mut TcpStream, packet: &Packet, local_ivorn: &str) -> Result<(), SendError> {
    let io = |e: std::io::Error| {
        SendError::Transient(if e.kind() == ErrorKind::UnexpectedEof {
            "the receiver closed the connection before acknowledging".to_owned()
        } else {
            e.to_string()
        })
    };
    write_frame(stream, packet.xml.as_bytes()).map_err(io)?;
    loop {
        let reply = read_frame(stream).map_err(io)?;
        let origin = element_text(&reply, "Origin").unwrap_or("");
        match root_attribute(&reply, "role") {
            Some("iamalive") => {
                write_frame(stream, iamalive_response(origin, local_ivorn).as_bytes())
                    .map_err(io)?;
            }
            Some("ack") if origin == packet.ivorn => return Ok(()),
            Some("nak") if origin == packet.ivorn => {
                let why = element_text(&reply, "Result").unwrap_or("no reason given");
                return Err(SendError::Refused(format!("nak: {why}")));
            }
            Some(role @ ("ack" | "nak")) => {
                tracing::debug!(role, origin, expected = %packet.ivorn, "VTP reply for another event, ignored");
            }
            other => {
                return Err(SendError::Transient(format!(
                    "unexpected packet (role {other:?}) instead of an ack"
                )))
            }
        }
    }
}

/// Sends each packet to every receiver; remembers which receivers took the
/// current packet so that a retry only goes to the others.
#[derive(Debug)]
pub(crate) struct VtpSender {
    receivers: Vec<Receiver>,
    local_ivorn: String,
    timeout: Duration,
    current: Option<String>,
    acked: Vec<bool>,
    /// Receivers that refused the current packet, with their reasons.
    refusals: Vec<String>,
}

impl VtpSender {
    pub(crate) fn new(receivers: Vec<String>, local_ivorn: String, timeout: Duration) -> Self {
        let n = receivers.len();
        VtpSender {
            receivers: receivers.into_iter().map(Receiver::new).collect(),
            local_ivorn,
            timeout,
            current: None,
            acked: vec![false; n],
            refusals: Vec::new(),
        }
    }
}

impl Deliver for VtpSender {
    type Message = Packet;

    fn deliver(&mut self, batch: &[&Packet]) -> Result<(), DeliveryError> {
        let mut transient = Vec::new();
        for packet in batch {
            if self.current.as_deref() != Some(packet.ivorn.as_str()) {
                self.current = Some(packet.ivorn.clone());
                self.acked.iter_mut().for_each(|a| *a = false);
                self.refusals.clear();
            }
            for (i, r) in self.receivers.iter_mut().enumerate() {
                if self.acked[i] {
                    continue;
                }
                match r.send(packet, &self.local_ivorn, self.timeout) {
                    Ok(()) => {
                        self.acked[i] = true;
                        tracing::debug!(receiver = %r.address, ivorn = %packet.ivorn, "VOEvent acknowledged");
                    }
                    Err(SendError::Transient(e)) => transient.push(e),
                    Err(SendError::Refused(e)) => {
                        // Refused for good: do not send it to this receiver again.
                        self.acked[i] = true;
                        self.refusals.push(e);
                    }
                }
            }
        }
        if !transient.is_empty() {
            let mut all = transient;
            all.extend(self.refusals.iter().cloned());
            return Err(DeliveryError::transient(all.join("; ")));
        }
        if !self.refusals.is_empty() {
            return Err(DeliveryError::permanent(self.refusals.join("; ")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// The protocol exchange on a loopback socket: an `iamalive` from the
    /// receiver before its ack is answered with an `iamalive` carrying the
    /// receiver's Origin and the author's IVORN, then the ack completes the
    /// submission; a nak is a refusal with its reason.
    #[test]
    fn iamalive_is_answered_and_ack_or_nak_ends_the_exchange() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut answers = Vec::new();
            for role in ["ack", "nak"] {
                let (mut s, _) = listener.accept().unwrap();
                let event = read_frame(&mut s).unwrap();
                assert!(event.contains("ivorn=\"ivo://a.test/s#1\""), "{event}");
                let alive = "<?xml version='1.0'?><trn:Transport xmlns:trn=\"http://www.telescope-networks.org/xml/Transport/v1.1\" version=\"1.0\" role=\"iamalive\"><Origin>ivo://receiver.test/r</Origin><TimeStamp>2026-01-01T00:00:00Z</TimeStamp></trn:Transport>";
                write_frame(&mut s, alive.as_bytes()).unwrap();
                answers.push(read_frame(&mut s).unwrap());
                let reply = format!(
                    "<?xml version='1.0'?><trn:Transport xmlns:trn=\"http://www.telescope-networks.org/xml/Transport/v1.1\" version=\"1.0\" role=\"{role}\"><Origin>ivo://a.test/s#1</Origin><Response>ivo://receiver.test/r</Response><TimeStamp>2026-01-01T00:00:00Z</TimeStamp><Meta><Result>seen it</Result></Meta></trn:Transport>"
                );
                write_frame(&mut s, reply.as_bytes()).unwrap();
            }
            answers
        });
        let packet = Packet {
            ivorn: "ivo://a.test/s#1".to_owned(),
            xml: "<voe:VOEvent ivorn=\"ivo://a.test/s#1\" role=\"test\" version=\"2.0\"/>"
                .to_owned(),
        };
        let mut r = Receiver::new(addr.to_string());
        let timeout = Duration::from_secs(10);
        assert!(r.send(&packet, "ivo://a.test", timeout).is_ok());
        r.stream = None;
        match r.send(&packet, "ivo://a.test", timeout) {
            Err(SendError::Refused(why)) => assert!(why.ends_with("nak: seen it"), "{why}"),
            other => panic!("{other:?}"),
        }
        for answer in server.join().unwrap() {
            assert_eq!(root_attribute(&answer, "role"), Some("iamalive"));
            assert_eq!(
                element_text(&answer, "Origin"),
                Some("ivo://receiver.test/r")
            );
            assert_eq!(element_text(&answer, "Response"), Some("ivo://a.test"));
        }
    }
}

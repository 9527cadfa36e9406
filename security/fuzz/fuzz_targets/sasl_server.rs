//! Fuzzes the SASL server: arbitrary token sequences into `SaslServer` with
//! a fixed user store. Byte 0 picks the mechanism; the rest is split at
//! 0xFF (never in a valid token) into up to four tokens, and `@@` in a token
//! becomes the combined nonce of the last server-first message, so the
//! fuzzer reaches the client-final checks. Nothing may panic, no token
//! sequence may authenticate (no password is known for the stored keys),
//! and after an error or the end every token is refused.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use starlog_security::{
    Mechanism, SaslError, SaslServer, ScramCredential, ScramMechanism, SecurityChange,
    SecurityState, Step,
};

fn users() -> &'static SecurityState {
    static USERS: OnceLock<SecurityState> = OnceLock::new();
    USERS.get_or_init(|| {
        let mut s = SecurityState::default();
        for m in ScramMechanism::ALL {
            // From a salted password: no key derivation, and no password
            // that a fuzzer could find.
            if let Ok(credential) =
                ScramCredential::from_salted_password(m, &[7u8; 64], b"fuzz-salt".to_vec(), 4096)
            {
                s.apply(&SecurityChange::SetCredential {
                    user: "alice".into(),
                    credential,
                });
            }
        }
        s
    })
}

fn replace_nonce(token: &[u8], nonce: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len() + nonce.len());
    let mut i = 0;
    while i < token.len() {
        if token[i..].starts_with(b"@@") {
            out.extend_from_slice(nonce);
            i += 2;
        } else {
            out.push(token[i]);
            i += 1;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mechanism = Mechanism::ALL[usize::from(pick) % Mechanism::ALL.len()];
    // A fixed server nonce keeps runs deterministic.
    let mut server = SaslServer::with_nonce(mechanism, "fuzz-server-nonce");
    let mut nonce = Vec::new();
    let mut ended = false;
    for token in rest.split(|&b| b == 0xFF).take(4) {
        let token = replace_nonce(token, &nonce);
        let result = server.step(&token, users());
        if ended {
            assert!(matches!(result, Err(SaslError::TooManySteps { .. })));
        }
        match result {
            Ok(Step::Continue(server_first)) => {
                nonce = server_first
                    .split(|&b| b == b',')
                    .find_map(|p| p.strip_prefix(b"r="))
                    .unwrap_or_default()
                    .to_vec();
            }
            Ok(Step::Done { principal, .. }) => panic!("authenticated as {principal}"),
            Err(e) => {
                let _ = (e.to_string(), e.client_message());
                ended = true;
            }
        }
        assert_eq!(ended, server.is_finished());
    }
});

//! The SASL server mechanisms end to end: RFC 7677's SCRAM-SHA-256 example,
//! both SCRAM mechanisms against the client of `starlog_security::scram`,
//! PLAIN, every refusal, and arbitrary bytes at every step.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use proptest::prelude::*;
use starlog_security::scram::ScramClient;
use starlog_security::{
    ChangeOutcome, Mechanism, Principal, SaslError, SaslServer, ScramCredential, ScramMechanism,
    SecurityChange, SecurityState, Step, DEFAULT_ITERATIONS,
};

const SHA256: Mechanism = Mechanism::Scram(ScramMechanism::Sha256);
const SHA512: Mechanism = Mechanism::Scram(ScramMechanism::Sha512);
const INVALID: &str = "Authentication failed: Invalid username or password";

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn add(state: &mut SecurityState, user: &str, credential: ScramCredential) {
    let outcome = state.apply(&SecurityChange::SetCredential {
        user: user.to_owned(),
        credential,
    });
    assert_eq!(outcome, ChangeOutcome::Credential(true));
}

/// alice: both mechanisms; bob: SCRAM-SHA-256 only; "a,b=c": SHA-512.
/// Made once (key derivation is slow in a debug build).
fn users() -> SecurityState {
    static USERS: OnceLock<SecurityState> = OnceLock::new();
    USERS.get_or_init(make_users).clone()
}

fn make_users() -> SecurityState {
    let mut s = SecurityState::default();
    for m in ScramMechanism::ALL {
        add(
            &mut s,
            "alice",
            ok(ScramCredential::new(m, "alice-pw", 4096)),
        );
    }
    add(
        &mut s,
        "bob",
        ok(ScramCredential::new(ScramMechanism::Sha256, "bob-pw", 4096)),
    );
    add(
        &mut s,
        "a,b=c",
        ok(ScramCredential::new(ScramMechanism::Sha512, "odd-pw", 4096)),
    );
    s
}

fn cont(step: Result<Step, SaslError>) -> String {
    match step {
        Ok(Step::Continue(bytes)) => ok(String::from_utf8(bytes)),
        other => panic!("expected Continue, got {other:?}"),
    }
}

fn done(step: Result<Step, SaslError>) -> (Principal, Vec<u8>) {
    match step {
        Ok(Step::Done {
            principal,
            response,
        }) => (principal, response),
        other => panic!("expected Done, got {other:?}"),
    }
}

fn err(step: Result<Step, SaslError>) -> SaslError {
    match step {
        Err(e) => e,
        Ok(s) => panic!("expected an error, got {s:?}"),
    }
}

/// The whole SCRAM exchange with the client; the server's principal.
fn scram_login(
    mechanism: ScramMechanism,
    users: &SecurityState,
    user: &str,
    password: &str,
) -> Result<Principal, SaslError> {
    let mut server = SaslServer::new(Mechanism::Scram(mechanism));
    let mut client = ok(ScramClient::new(mechanism, user, password));
    let server_first = match server.step(client.client_first().as_bytes(), users)? {
        Step::Continue(b) => ok(String::from_utf8(b)),
        s => panic!("expected Continue, got {s:?}"),
    };
    let client_final = ok(client.handle_server_first(&server_first));
    let (principal, server_final) = done(server.step(client_final.as_bytes(), users));
    // The client checks the server's signature: the server proved the credential.
    ok(client.verify_server_final(&ok(String::from_utf8(server_final))));
    assert!(server.is_finished());
    Ok(principal)
}

#[test]
fn rfc_7677_example_exchange_end_to_end() {
    // RFC 7677 §3: user "user", password "pencil".
    let salt = ok(B64.decode("W22ZaJ0SNY7soEsUEjb6gQ=="));
    let mut state = SecurityState::default();
    add(
        &mut state,
        "user",
        ok(ScramCredential::with_salt(
            ScramMechanism::Sha256,
            "pencil",
            salt,
            4096,
        )),
    );
    let mut server = SaslServer::with_nonce(SHA256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    let server_first = cont(server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &state));
    assert_eq!(
        server_first,
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    );
    let (principal, server_final) = done(server.step(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        &state,
    ));
    assert_eq!(principal, Principal::user("user"));
    assert_eq!(
        server_final,
        b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
    );
    assert!(matches!(
        server.step(b"c=biws", &state),
        Err(SaslError::TooManySteps { .. })
    ));

    // The moved client, with the RFC's client nonce, against the same server.
    let mut server = SaslServer::with_nonce(SHA256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    let mut client = ScramClient::with_nonce(
        ScramMechanism::Sha256,
        "user",
        "pencil",
        "rOprNGfwEbeRWgbNEkqO",
    );
    let server_first = cont(server.step(client.client_first().as_bytes(), &state));
    let client_final = ok(client.handle_server_first(&server_first));
    let (_, server_final) = done(server.step(client_final.as_bytes(), &state));
    ok(client.verify_server_final(&ok(String::from_utf8(server_final))));
}

#[test]
fn both_scram_mechanisms_against_the_client() {
    let users = users();
    for m in ScramMechanism::ALL {
        assert_eq!(
            ok(scram_login(m, &users, "alice", "alice-pw")),
            Principal::user("alice")
        );
    }
    assert_eq!(
        ok(scram_login(ScramMechanism::Sha256, &users, "bob", "bob-pw")),
        Principal::user("bob")
    );
    // Escaped names (`,` and `=`) come back unescaped.
    assert_eq!(
        ok(scram_login(
            ScramMechanism::Sha512,
            &users,
            "a,b=c",
            "odd-pw"
        )),
        Principal::user("a,b=c")
    );
}

#[test]
fn scram_wrong_password_and_unknown_user_fail_alike_at_the_proof() {
    let users = users();
    let attempt = |m: ScramMechanism, user: &str, pw: &str| {
        let mut server = SaslServer::new(Mechanism::Scram(m));
        let mut client = ok(ScramClient::new(m, user, pw));
        let server_first = cont(server.step(client.client_first().as_bytes(), &users));
        let client_final = ok(client.handle_server_first(&server_first));
        let e = err(server.step(client_final.as_bytes(), &users));
        assert!(server.is_finished());
        (server_first, e)
    };
    let (_, wrong) = attempt(ScramMechanism::Sha512, "alice", "nope");
    assert!(matches!(wrong, SaslError::BadCredentials { ref user, .. } if user == "alice"));
    // bob has no SHA-512 credential: for SHA-512 he is unknown.
    let (_, no_512) = attempt(ScramMechanism::Sha512, "bob", "bob-pw");
    assert!(matches!(no_512, SaslError::UnknownUser { ref user, .. } if user == "bob"));
    let (first1, unknown) = attempt(ScramMechanism::Sha512, "mallory", "x");
    let (first2, _) = attempt(ScramMechanism::Sha512, "mallory", "y");
    assert!(matches!(unknown, SaslError::UnknownUser { ref user, .. } if user == "mallory"));
    for e in [&wrong, &no_512, &unknown] {
        assert_eq!(e.client_message(), INVALID);
        assert!(e.is_credential_failure());
    }
    // The stand-in server-first has a real one's shape, and the same salt each time.
    let salt = |f: &str| {
        f.split(',')
            .find_map(|p| p.strip_prefix("s="))
            .map(str::to_owned)
    };
    assert_eq!(salt(&first1), salt(&first2));
    let salt = ok(B64.decode(salt(&first1).unwrap_or_default()));
    assert_eq!(salt.len(), 32);
    assert!(first1.ends_with(&format!(",i={DEFAULT_ITERATIONS}")));
    let (first_other, _) = attempt(ScramMechanism::Sha512, "trudy", "x");
    assert_ne!(
        first_other.split(',').nth(1),
        first1.split(',').nth(1),
        "stand-in salts differ by user"
    );
    // The detail is in the log message only.
    assert!(unknown.to_string().contains("mallory"));
    assert!(!unknown.client_message().contains("mallory"));
}

#[test]
fn plain_good_and_bad() {
    let users = users();
    let plain = |token: &[u8]| SaslServer::new(Mechanism::Plain).step(token, &users);
    assert_eq!(
        done(plain(b"\0alice\0alice-pw")),
        (Principal::user("alice"), Vec::new())
    );
    assert_eq!(
        done(plain(b"alice\0alice\0alice-pw")).0,
        Principal::user("alice")
    );
    // bob has only SCRAM-SHA-256: PLAIN falls back to it.
    assert_eq!(done(plain(b"\0bob\0bob-pw")).0, Principal::user("bob"));

    let wrong = err(plain(b"\0alice\0alice-pw "));
    assert!(matches!(wrong, SaslError::BadCredentials { .. }));
    let unknown = err(plain(b"\0mallory\0alice-pw"));
    assert!(matches!(unknown, SaslError::UnknownUser { .. }));
    assert_eq!(wrong.client_message(), INVALID);
    assert_eq!(unknown.client_message(), INVALID);

    let other = err(plain(b"admin\0alice\0alice-pw"));
    assert!(matches!(other, SaslError::AuthzidMismatch { ref authzid, .. } if authzid == "admin"));
    assert!(other
        .client_message()
        .contains("authorization id that is different from username"));

    for bad in [
        &b"alice-pw"[..],
        b"\0alice",
        b"\0alice\0pw\0x",
        b"\0\0pw",
        b"\0alice\0",
        b"\0al\xffice\0pw",
        b"",
    ] {
        assert!(
            matches!(err(plain(bad)), SaslError::Malformed { .. }),
            "{bad:?}"
        );
    }
    let mut big = b"\0alice\0".to_vec();
    big.resize(5000, b'x');
    assert!(matches!(err(plain(&big)), SaslError::TooLarge { .. }));

    // One message only.
    let mut server = SaslServer::new(Mechanism::Plain);
    done(server.step(b"\0alice\0alice-pw", &users));
    assert!(matches!(
        server.step(b"\0alice\0alice-pw", &users),
        Err(SaslError::TooManySteps { .. })
    ));
}

/// A client-first with a fixed client nonce, the server's answer and the combined nonce.
fn first(server: &mut SaslServer, users: &SecurityState, user: &str) -> (String, String) {
    let server_first = cont(server.step(format!("n,,n={user},r=cnonce").as_bytes(), users));
    let nonce = server_first
        .split(',')
        .find_map(|p| p.strip_prefix("r="))
        .unwrap_or_default()
        .to_owned();
    assert!(nonce.starts_with("cnonce") && nonce.len() > "cnonce".len());
    (server_first, nonce)
}

#[test]
fn scram_client_first_refusals() {
    let users = users();
    let refuse = |token: &str| err(SaslServer::new(SHA512).step(token.as_bytes(), &users));

    let cb = refuse("p=tls-unique,,n=alice,r=abc");
    assert!(matches!(cb, SaslError::ChannelBinding { ref binding, .. } if binding == "tls-unique"));
    assert_eq!(
        cb.client_message(),
        "Authentication failed: channel binding is not supported"
    );
    assert!(matches!(
        refuse("n,a=admin,n=alice,r=abc"),
        SaslError::AuthzidMismatch { .. }
    ));
    let token = refuse("n,,n=alice,r=abc,tokenauth=true");
    assert!(matches!(token, SaslError::TokenAuth { .. }));
    assert_eq!(
        token.client_message(),
        "Authentication failed: delegation tokens are not supported"
    );
    for bad in [
        "",
        "n",
        "n,",
        "x,,n=alice,r=abc",
        "n,admin,n=alice,r=abc",
        "n,a=a=b,n=alice,r=abc",
        "n,,m=ext,n=alice,r=abc",
        "n,,r=abc",
        "n,,n=alice",
        "n,,n=,r=abc",
        "n,,n=al=ice,r=abc",
        "n,,n=alice,r=",
        "n,,n=alice,r=a\u{7f}b",
        "n,,n=alice,r=abc,r=def",
        "n,,n=alice,r=abc,n=bob",
        "n,,n=alice,r=abc,x=1,x=2",
        "n,,n=alice,r=abc,x",
        "n,,n=alice,r=abc,=1",
        "n,,r=abc,n=alice",
    ] {
        assert!(
            matches!(refuse(bad), SaslError::Malformed { .. }),
            "{bad:?}"
        );
    }
    assert!(matches!(
        err(SaslServer::new(SHA512).step(b"n,,n=al\xffice,r=abc", &users)),
        SaslError::Malformed { .. }
    ));
    // Accepted: `y` (client could bind, thinks we cannot), an authzid equal
    // to the user, an unknown optional extension.
    for good in [
        "y,,n=alice,r=abc",
        "n,a=alice,n=alice,r=abc",
        "n,,n=alice,r=abc,x=1",
    ] {
        cont(SaslServer::new(SHA512).step(good.as_bytes(), &users));
    }
}

#[test]
fn scram_client_final_refusals() {
    let users = users();
    let refuse_final = |msg: &dyn Fn(&str) -> String| {
        let mut server = SaslServer::new(SHA512);
        let (_, nonce) = first(&mut server, &users, "alice");
        let e = err(server.step(msg(&nonce).as_bytes(), &users));
        assert!(server.is_finished());
        e
    };
    let proof = B64.encode([0u8; 64]);
    // A wrong proof (right length, right everything else).
    assert!(matches!(
        refuse_final(&|n| format!("c=biws,r={n},p={proof}")),
        SaslError::BadCredentials { .. }
    ));
    // The nonce: the client's alone, with more, or another.
    for nonce in [
        |_: &str| "cnonce".to_owned(),
        |n: &str| format!("{n}x"),
        |n: &str| n[..n.len() - 1].to_owned(),
    ] {
        let e = refuse_final(&|n| format!("c=biws,r={},p={proof}", nonce(n)));
        assert!(matches!(e, SaslError::NonceMismatch { .. }), "{e}");
        assert_eq!(
            e.client_message(),
            "Authentication failed: Invalid client nonce in the final client message."
        );
    }
    let malformed: [&dyn Fn(&str) -> String; 12] = [
        &|n| format!("c=biws,r={n}"),
        &|n| format!("r={n},p={proof}"),
        &|n| format!("c=biws,p={proof},r={n}"),
        &|n| format!("c=biws,r={n},r={n},p={proof}"),
        &|n| format!("c=biws,r={n},p={proof},p={proof}"),
        &|n| format!("c=biws,c=biws,r={n},p={proof}"),
        &|n| format!("c=eSws,r={n},p={proof}"), // "y,," is not this exchange's header
        &|n| format!("c=!!,r={n},p={proof}"),
        &|n| format!("c=biws,r={n},p=!!"),
        &|n| format!("c=biws,r={n},p=AAAA"),
        &|n| format!("c=biws,r={n},tokenauth,p={proof}"),
        &|_| "\u{0}\u{ff}".to_owned(),
    ];
    for (i, m) in malformed.iter().enumerate() {
        let e = refuse_final(m);
        assert!(matches!(e, SaslError::Malformed { .. }), "case {i}: {e}");
    }
    assert!(matches!(
        refuse_final(&|n| format!("c=biws,r={n},tokenauth=true,p={proof}")),
        SaslError::TokenAuth { .. }
    ));
    // Steps past the end: after an error and after success.
    let mut server = SaslServer::new(SHA512);
    assert!(server.step(b"garbage", &users).is_err());
    assert!(matches!(
        server.step(b"n,,n=alice,r=abc", &users),
        Err(SaslError::TooManySteps { .. })
    ));
}

#[test]
fn a_replayed_client_final_is_refused() {
    let users = users();
    let m = ScramMechanism::Sha512;
    // A recorded successful exchange.
    let mut client = ok(ScramClient::new(m, "alice", "alice-pw"));
    let client_first = client.client_first();
    let mut server = SaslServer::new(Mechanism::Scram(m));
    let server_first = cont(server.step(client_first.as_bytes(), &users));
    let client_final = ok(client.handle_server_first(&server_first));
    done(server.step(client_final.as_bytes(), &users));
    // Replayed to a new exchange: the server's nonce is new, so the recorded
    // client-final does not carry this exchange's combined nonce.
    let mut replay = SaslServer::new(Mechanism::Scram(m));
    let new_first = cont(replay.step(client_first.as_bytes(), &users));
    assert_ne!(new_first, server_first);
    assert!(matches!(
        replay.step(client_final.as_bytes(), &users),
        Err(SaslError::NonceMismatch { .. })
    ));
}

#[test]
fn mechanism_names() {
    assert_eq!(Mechanism::parse("PLAIN"), Some(Mechanism::Plain));
    assert_eq!(Mechanism::parse("scram-sha-512"), Some(SHA512));
    assert_eq!(Mechanism::parse("SCRAM-SHA-256"), Some(SHA256));
    assert_eq!(Mechanism::parse("GSSAPI"), None);
    for m in Mechanism::ALL {
        assert_eq!(Mechanism::parse(m.name()), Some(m));
        let json = ok(serde_json::to_string(&m));
        assert_eq!(json, format!("\"{}\"", m.name()));
        assert_eq!(ok(serde_json::from_str::<Mechanism>(&json)), m);
    }
    assert!(serde_json::from_str::<Mechanism>("\"OAUTHBEARER\"").is_err());
}

fn mechanism() -> impl Strategy<Value = Mechanism> {
    prop::sample::select(Mechanism::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary tokens at every step never panic, and an exchange that
    /// errs or ends refuses every later token.
    #[test]
    fn arbitrary_tokens_never_panic(
        m in mechanism(),
        tokens in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..5),
    ) {
        let users = users();
        let mut server = SaslServer::new(m);
        let mut ended = false;
        for t in &tokens {
            let r = server.step(t, &users);
            if ended {
                prop_assert!(
                    matches!(r, Err(SaslError::TooManySteps { .. })),
                    "{:?}",
                    r
                );
            }
            match r {
                Ok(Step::Done { .. }) | Err(_) => ended = true,
                Ok(Step::Continue(_)) => {}
            }
            let _ = server.is_finished();
        }
    }

    /// A valid client-first, then arbitrary (or mangled valid) client-finals.
    #[test]
    fn arbitrary_client_finals_never_panic(
        user in prop::sample::select(vec!["alice", "bob", "mallory", "a=2Cb=3Dc"]),
        tail in prop::collection::vec(any::<u8>(), 0..200),
        cut in 0usize..200,
        flip in any::<u8>(),
    ) {
        let users = users();
        let mut server = SaslServer::new(SHA512);
        let _ = first(&mut server, &users, user);
        let r = server.step(&tail, &users);
        prop_assert!(!matches!(r, Ok(Step::Done { .. })), "garbage authenticated");
        let mut server = SaslServer::new(SHA512);
        let (_, nonce) = first(&mut server, &users, user);
        let mut valid = format!("c=biws,r={nonce},p={}", B64.encode([0u8; 64])).into_bytes();
        let at = cut % valid.len();
        valid[at] ^= flip;
        let r = server.step(&valid, &users);
        prop_assert!(!matches!(r, Ok(Step::Done { .. })), "a zero proof authenticated");
        prop_assert!(server.step(&tail, &users).is_err());
    }
}

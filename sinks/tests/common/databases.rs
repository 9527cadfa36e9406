//! Real database servers for the tests: PostgreSQL and MariaDB from the
//! Debian packages (`scripts/deps/databases.sh` installs them), each
//! started once per test binary on a temporary data directory and a
//! loopback port, and shared by every test of the binary.
//!
//! A server runs as the `postgres` / `mysql` system user when the tests run
//! as root (the servers refuse root), as the current user otherwise. A
//! small shell watchdog stops it and removes its directory when the test
//! process exits. Rows are read back with the servers' own command-line
//! clients (`psql`, `mariadb`), independently of the writers' client crates.
//! Also here: a TCP proxy the tests cut to make a database unreachable.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The password of the test user `starlog` on both servers.
pub const PASSWORD: &str = "s3cret-test-pw";

/// The user that may log in over TLS only (`hostssl` / `REQUIRE SSL`).
pub const TLS_USER: &str = "starlog_tls";

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// Loopback port.
    pub port: u16,
    /// The CA that signed the server's certificate (PEM).
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server has.
    pub other_ca: PathBuf,
    /// Its directory (data, socket, logs).
    pub dir: PathBuf,
    /// A file holding [`PASSWORD`].
    pub password_file: PathBuf,
    /// The server's log.
    pub log: PathBuf,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Finds a program on PATH or in `extra` directories.
fn find(program: &str, extra: &[PathBuf]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain(extra.iter().cloned()) {
        let p = dir.join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{program} not found on PATH or in {extra:?}: install the Debian packages postgresql and \
         mariadb-server (scripts/deps/databases.sh does it when scripts/test runs)"
    );
}

fn free_port() -> u16 {
    // Below the ephemeral range, so that no outgoing connection takes it.
    // Each call starts further on: two servers started at once by this
    // process (PostgreSQL and MariaDB, from two test threads) would
    // otherwise both find the same port free before either binds it.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let start = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * 977;
    for i in start..start + 2000 {
        let port = 21_000 + ((std::process::id().wrapping_mul(7) + i * 131) % 10_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port");
}

fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `cmd` as `user` when we are root.
fn as_user(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `server` under a watchdog that stops it (by the pid in
/// `pid_file`) and removes `dir` once this test process is gone.
fn spawn_with_watchdog(server: Command, pid_file: &Path, dir: &Path, log: &Path) {
    let mut argv: Vec<String> = vec![server.get_program().to_string_lossy().into_owned()];
    argv.extend(server.get_args().map(|a| a.to_string_lossy().into_owned()));
    let quoted: Vec<String> = argv
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let script = format!(
        "{cmd} >>'{log}' 2>&1 &\n\
         while kill -0 {parent} 2>/dev/null; do sleep 0.5; done\n\
         pid=$(head -1 '{pidf}' 2>/dev/null)\n\
         [ -n \"$pid\" ] && kill -TERM \"$pid\" 2>/dev/null\n\
         for i in $(seq 1 40); do [ -n \"$pid\" ] && kill -0 \"$pid\" 2>/dev/null || break; sleep 0.25; done\n\
         [ -n \"$pid\" ] && kill -KILL \"$pid\" 2>/dev/null\n\
         rm -rf '{dir}'\n",
        cmd = quoted.join(" "),
        log = log.display(),
        parent = std::process::id(),
        pidf = pid_file.display(),
        dir = dir.display(),
    );
    // Not waited for: the watchdog outlives this process by design.
    #[allow(clippy::zombie_processes)]
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server's watchdog");
}

fn wait_for(what: &str, log: &Path, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start within 60 s; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn chown(dir: &Path, user: Option<&str>) {
    if let Some(u) = user {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", u]).arg(dir);
                c
            },
            "chown",
        );
    }
}

fn write_password(dir: &Path) -> PathBuf {
    let f = dir.join("password");
    std::fs::write(&f, format!("{PASSWORD}\n")).unwrap();
    f
}

/// Writes a CA, a server certificate for 127.0.0.1 / localhost signed by
/// it (`server.pem`, `server.key`, mode 0600) and an unrelated CA into `dir`:
/// (ca, other_ca, cert, key).
fn write_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let issuer = ca("starlog test database CA");
    let other = ca("starlog test unrelated CA");
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("other-ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, issuer.pem()).unwrap();
    std::fs::write(&paths.1, other.pem()).unwrap();
    std::fs::write(&paths.2, cert.pem()).unwrap();
    std::fs::write(&paths.3, key.serialize_pem()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&paths.3, std::fs::Permissions::from_mode(0o600)).unwrap();
    paths
}

fn pg_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    dirs
}

/// The shared PostgreSQL server (user `starlog`, database `starlog`).
pub fn postgres() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let bins = pg_bin_dirs();
        let initdb = find("initdb", &bins);
        let postgres = initdb.with_file_name("postgres");
        let user = is_root().then_some("postgres");
        let dir = temp_dir("starlog-pg");
        let password_file = write_password(&dir);
        let (ca, other_ca, cert, key) = write_certificates(&dir);
        let data = dir.join("data");
        let log = dir.join("server.log");
        chown(&dir, user);
        let mut init = as_user(user, &initdb);
        init.arg("-D")
            .arg(&data)
            .args([
                "-U",
                "starlog",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", password_file.display()));
        run(init, "initdb");
        // The TLS user may not log in without TLS.
        let hba = data.join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!("hostnossl all {TLS_USER} 127.0.0.1/32 reject\n{rules}"),
        )
        .unwrap();
        let port = free_port();
        let mut server = as_user(user, &postgres);
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "ssl=on",
            ])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", cert.display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", key.display()));
        spawn_with_watchdog(server, &data.join("postmaster.pid"), &dir, &log);
        let s = Server {
            port,
            ca,
            other_ca,
            dir,
            password_file,
            log,
        };
        wait_for("PostgreSQL", &s.log, || {
            psql_try(&s, "postgres", "SELECT 1").is_ok()
        });
        psql_in(&s, "postgres", "CREATE DATABASE starlog");
        psql_in(
            &s,
            "postgres",
            &format!("CREATE ROLE {TLS_USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'"),
        );
        s
    })
}

fn psql_try(s: &Server, db: &str, sql: &str) -> Result<String, String> {
    let psql = find("psql", &pg_bin_dirs());
    let out = Command::new(psql)
        .args(["-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &s.port.to_string(),
            "-U",
            "starlog",
            "-d",
            db,
        ])
        .args(["-c", sql])
        .env("PGPASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn psql_in(s: &Server, db: &str, sql: &str) -> String {
    psql_try(s, db, sql).unwrap_or_else(|e| panic!("psql {sql}: {e}"))
}

/// [`psql`], or the error message.
pub fn try_psql(sql: &str) -> Result<Vec<Vec<String>>, String> {
    psql_try(postgres(), "starlog", sql).map(|t| lines(&t))
}

/// Runs SQL in the `starlog` database with `psql`; rows as tab-separated lines.
pub fn psql(sql: &str) -> Vec<Vec<String>> {
    lines(&psql_in(postgres(), "starlog", sql))
}

fn lines(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// The shared MariaDB server (user `starlog`@`127.0.0.1`, database `starlog`).
pub fn mariadb() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let sbin = [PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")];
        let install = find("mariadb-install-db", &sbin);
        let mariadbd = find("mariadbd", &sbin);
        let user = is_root().then_some("mysql");
        let dir = temp_dir("starlog-mariadb");
        let password_file = write_password(&dir);
        let (ca, other_ca, cert, key) = write_certificates(&dir);
        let data = dir.join("data");
        let log = dir.join("server.log");
        chown(&dir, user);
        let mut init = Command::new(&install);
        init.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=socket", "--skip-test-db"]);
        if let Some(u) = user {
            init.arg(format!("--user={u}"));
        }
        run(init, "mariadb-install-db");
        let port = free_port();
        let socket = dir.join("mysqld.sock");
        let pid = dir.join("mysqld.pid");
        let mut server = Command::new(&mariadbd);
        server
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", pid.display()))
            .args([
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=2",
                "--skip-name-resolve",
            ])
            .arg(format!("--ssl-ca={}", ca.display()))
            .arg(format!("--ssl-cert={}", cert.display()))
            .arg(format!("--ssl-key={}", key.display()));
        if let Some(u) = user {
            server.arg(format!("--user={u}"));
        }
        spawn_with_watchdog(server, &pid, &dir, &log);
        let s = Server {
            port,
            ca,
            other_ca,
            dir,
            password_file,
            log,
        };
        // The install made root@localhost log in through the socket as the
        // system root user; as another user, through its own account.
        let root_sql = |sql: &str| -> Result<String, String> {
            let client = find("mariadb", &sbin);
            let mut c = Command::new(client);
            c.arg("--no-defaults")
                .arg(format!("--socket={}", socket.display()));
            if user.is_some() {
                c.args(["-u", "root"]);
            }
            let out = c
                .args(["-e", sql])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        };
        wait_for("MariaDB", &s.log, || root_sql("SELECT 1").is_ok());
        root_sql(&format!(
            "CREATE USER 'starlog'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
             GRANT ALL ON *.* TO 'starlog'@'127.0.0.1'; CREATE DATABASE starlog; \
             CREATE USER '{TLS_USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL; \
             GRANT ALL ON *.* TO '{TLS_USER}'@'127.0.0.1';"
        ))
        .unwrap_or_else(|e| panic!("creating the MariaDB user: {e}"));
        s
    })
}

/// Runs SQL in the `starlog` database with the `mariadb` client; rows as tab-separated lines.
pub fn mariadb_sql(sql: &str) -> Vec<Vec<String>> {
    let s = mariadb();
    let client = find("mariadb", &[PathBuf::from("/usr/bin")]);
    let out = Command::new(client)
        .args([
            "--no-defaults",
            "-B",
            "-N",
            "-h",
            "127.0.0.1",
            "-P",
            &s.port.to_string(),
        ])
        .args(["-u", "starlog", "starlog", "-e", sql])
        .env("MYSQL_PWD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mariadb {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(&String::from_utf8_lossy(&out.stdout))
}

/// A TCP proxy to a server, which a test can cut (connections dropped,
/// new ones refused) and restore: the database becomes unreachable while
/// the server itself runs on.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Proxies 127.0.0.1:`port` → 127.0.0.1:`target`.
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, conns2) = (Arc::clone(&up), Arc::clone(&conns));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                {
                    let mut c = conns2.lock().unwrap();
                    c.push(client.try_clone().unwrap());
                    c.push(server.try_clone().unwrap());
                }
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy { port, up, conns }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

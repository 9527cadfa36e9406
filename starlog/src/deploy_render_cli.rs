//! `starlog deploy render` and `starlog deploy probe` (a module of the
//! binary): the site rendered onto compose, Kubernetes or systemd
//! (`starlog_deploy::render`), and the HTTP health probe the compose
//! rendering's health checks run (the image has no shell nor curl).

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use starlog_deploy::render::{self, Options, Target};
use starlog_deploy::site::Site;

/// `starlog deploy render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// What to render for: compose, kubernetes or systemd.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(Target::NAMES))]
    target: String,
    /// The site file.
    site: PathBuf,
    /// The folder the files are written in (made if missing; files of the
    /// same names are replaced).
    #[arg(long)]
    out: PathBuf,
    /// The container image (compose, kubernetes).
    #[arg(long)]
    image: Option<String>,
    /// Where `starlog` is installed (systemd).
    #[arg(long)]
    starlog_bin: Option<String>,
    /// Where the configuration is installed (systemd): the units read
    /// `<config-dir>/<site>/...`.
    #[arg(long)]
    config_dir: Option<String>,
}

/// `starlog deploy probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The URL to GET, e.g. http://127.0.0.1:8081/metrics (plain HTTP).
    url: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

/// Renders the site and lists the files written.
pub fn render(args: RenderArgs) -> anyhow::Result<()> {
    let target = Target::from_name(&args.target)
        .with_context(|| format!("unknown target {:?}", args.target))?;
    let site = Site::load(&args.site)?;
    let mut opts = Options::default();
    if let Some(image) = args.image {
        opts.image = image;
    }
    if let Some(bin) = args.starlog_bin {
        opts.starlog_bin = bin;
    }
    if let Some(dir) = args.config_dir {
        opts.config_dir = dir;
    }
    let rendered = render::render(&site, target, &args.out, &opts)?;
    rendered.write(&args.out)?;
    let mut out = std::io::stdout();
    for file in rendered.files.keys() {
        writeln!(out, "{}", args.out.join(file).display()).context("writing the list")?;
    }
    Ok(())
}

/// GETs the URL; succeeds on a 2xx answer.
pub fn probe(args: ProbeArgs) -> anyhow::Result<()> {
    let rest = args
        .url
        .strip_prefix("http://")
        .with_context(|| format!("{}: only http:// URLs are probed", args.url))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let timeout = Duration::from_secs(args.timeout.max(1));
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {authority}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .with_context(|| format!("asking {}", args.url))?;
    let mut head = [0u8; 32];
    let mut got = 0;
    while got < 12 {
        let n = stream
            .read(&mut head[got..])
            .with_context(|| format!("reading the answer of {}", args.url))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let status = std::str::from_utf8(&head[..got])
        .ok()
        .and_then(|s| s.split(' ').nth(1))
        .unwrap_or("");
    anyhow::ensure!(
        status.starts_with('2'),
        "{} answered {:?}",
        args.url,
        String::from_utf8_lossy(&head[..got])
    );
    Ok(())
}

/// `starlog deploy topics`.
#[derive(Debug, clap::Args)]
pub struct TopicsArgs {
    /// The buffer's bootstrap servers.
    #[arg(long)]
    bootstrap: String,
    /// A topic to have: NAME:PARTITIONS:REPLICATION (repeat).
    #[arg(long = "topic", required = true)]
    topics: Vec<String>,
    /// A topic config: NAME:KEY=VALUE (repeat).
    #[arg(long = "config")]
    configs: Vec<String>,
    /// Seconds to keep trying while the brokers come up.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

/// Creates the topics that do not exist yet, retrying until the buffer
/// answers (the rendered sites' topic step: a compose service, a
/// Kubernetes Job, a systemd oneshot unit).
pub fn topics(args: TopicsArgs) -> anyhow::Result<()> {
    use starlog_clients::admin::NewTopic;
    let mut wanted = Vec::new();
    for t in &args.topics {
        let bad = || anyhow::anyhow!("--topic {t:?}: want NAME:PARTITIONS:REPLICATION");
        let mut parts = t.rsplitn(3, ':');
        let (Some(replication), Some(partitions), Some(name)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let mut topic = NewTopic::new(name, partitions.parse().map_err(|_| bad())?);
        topic.replication_factor = replication.parse().map_err(|_| bad())?;
        wanted.push(topic);
    }
    for c in &args.configs {
        let bad = || anyhow::anyhow!("--config {c:?}: want NAME:KEY=VALUE");
        let (name, kv) = c.split_once(':').ok_or_else(bad)?;
        let (k, v) = kv.split_once('=').ok_or_else(bad)?;
        let topic = wanted
            .iter_mut()
            .find(|t| t.name == name)
            .with_context(|| format!("--config {c:?}: no --topic {name}"))?;
        topic.configs.push((k.to_owned(), v.to_owned()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let attempt = runtime.block_on(async {
            let once = async {
                let admin = starlog_clients::Admin::new(starlog_clients::ClientConfig::new(
                    args.bootstrap.as_str(),
                ))?;
                let existing = admin.list_topics().await?;
                let missing: Vec<NewTopic> = wanted
                    .iter()
                    .filter(|t| !existing.contains(&t.name))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    admin.create_topics(&missing).await?;
                }
                Ok::<_, starlog_clients::ClientError>(missing)
            };
            match tokio::time::timeout(Duration::from_secs(10), once).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("no answer within 10 s".to_owned()),
            }
        });
        match attempt {
            Ok(created) => {
                let names: Vec<&str> = created.iter().map(|t| t.name.as_str()).collect();
                writeln!(std::io::stdout(), "created: {names:?}").context("writing")?;
                return Ok(());
            }
            Err(e) if std::time::Instant::now() >= deadline => {
                anyhow::bail!("the topics could not be created on {}: {e}", args.bootstrap)
            }
            Err(e) => {
                tracing::info!(error = %e, "buffer not ready; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

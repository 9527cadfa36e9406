//! systemd units: one per component instance, on one machine with the
//! local platform's addresses (`listeners.host`, each port plus the
//! instance), all parts of `starlog-<site>.target`.
//!
//! * `starlog-<site>-<buffer>-<i>.service`: a broker, its data in
//!   `/var/lib/starlog/<site>/<buffer>-<i>` (`StateDirectory=`, owned by
//!   the unit's dynamic user);
//! * `starlog-<site>-<node>-<i>.service`: a processing-node instance;
//! * `starlog-<site>-<mirror>.service`: a mirror.
//!
//! The configuration files go in `<config_dir>/<site>/` (the rendering's
//! `config/` folder, copied there). SIGTERM stops each gracefully;
//! `Restart=on-failure` restarts a crash.

use std::fmt::Write as _;

use super::broker::{self, Instance};
use super::{comment, left_out, Addressing, Options, RenderError, Rendered, Target};
use crate::site::{Placement, Site};

const A: Addressing = Addressing::Local;

fn unit_name(site: &Site, what: &str) -> String {
    format!("starlog-{}-{what}", site.name)
}

/// One `.service` unit.
struct Unit<'a> {
    description: String,
    after: Vec<String>,
    exec: String,
    state_dir: Option<String>,
    target: &'a str,
    /// Runs once (a buffer's topic step) rather than for good.
    oneshot: bool,
}

impl Unit<'_> {
    fn text(&self, header: &str) -> String {
        let mut u = String::from(header);
        let _ = writeln!(u, "[Unit]");
        let _ = writeln!(u, "Description={}", self.description);
        let _ = writeln!(u, "PartOf={}", self.target);
        let mut after = vec!["network-online.target".to_owned()];
        after.extend(self.after.iter().cloned());
        let _ = writeln!(u, "After={}", after.join(" "));
        let mut wants = vec!["network-online.target".to_owned()];
        wants.extend(self.after.iter().cloned());
        let _ = writeln!(u, "Wants={}", wants.join(" "));
        let _ = writeln!(u);
        let _ = writeln!(u, "[Service]");
        if self.oneshot {
            let _ = writeln!(u, "Type=oneshot");
            let _ = writeln!(u, "RemainAfterExit=yes");
        } else {
            let _ = writeln!(u, "Type=exec");
        }
        let _ = writeln!(u, "ExecStart={}", self.exec);
        let _ = writeln!(u, "DynamicUser=yes");
        if let Some(dir) = &self.state_dir {
            let _ = writeln!(u, "StateDirectory={dir}");
        }
        if !self.oneshot {
            let _ = writeln!(u, "Restart=on-failure");
            let _ = writeln!(u, "RestartSec=2");
        }
        let _ = writeln!(u, "KillSignal=SIGTERM");
        let _ = writeln!(u, "TimeoutStopSec=60");
        let _ = writeln!(u, "LimitNOFILE=65536");
        let _ = writeln!(u, "Environment=RUST_LOG=info");
        let _ = writeln!(u);
        let _ = writeln!(u, "[Install]");
        let _ = writeln!(u, "WantedBy={}", self.target);
        u
    }
}

pub(super) fn render(site: &Site, opts: &Options) -> Result<Rendered, RenderError> {
    let mut files = Rendered::default();
    let target = format!("starlog-{}.target", site.name);
    let etc = format!("{}/{}", opts.config_dir, site.name);
    let bin = &opts.starlog_bin;
    let header = comment(&[format!(
        "Rendered by `starlog deploy render --target systemd` from site {}.",
        site.name
    )]);
    let mut units = Vec::new();
    let mut brokers_of = std::collections::BTreeMap::<&str, Vec<String>>::new();
    for b in &site.buffers {
        let mut pipelines = Vec::new();
        for n in broker::in_broker_nodes(site, b) {
            let file = format!("{}.pipeline.yaml", n.name);
            files.add(format!("config/{file}"), broker::pipeline_text(site, n)?);
            pipelines.push(format!("{etc}/{file}"));
        }
        for i in 0..b.instances {
            let name = format!("{}-{i}", b.name);
            let file = format!("{name}.yaml");
            let state = format!("starlog/{}/{name}", site.name);
            files.add(
                format!("config/{file}"),
                broker::broker_yaml(
                    site,
                    b,
                    A,
                    Instance::One(i),
                    &format!("/var/lib/{state}"),
                    &pipelines,
                    None,
                ),
            );
            let unit = format!("{}.service", unit_name(site, &name));
            brokers_of.entry(&b.name).or_default().push(unit.clone());
            units.push((
                unit,
                Unit {
                    description: format!(
                        "Starlog site {}: broker {} of {} of buffer {}",
                        site.name,
                        i + 1,
                        b.instances,
                        b.name
                    ),
                    after: Vec::new(),
                    exec: format!("{bin} serve --config {etc}/{file}"),
                    state_dir: Some(state),
                    target: &target,
                    oneshot: false,
                },
            ));
        }
    }
    // Each buffer's topic step: after its brokers; its clients after it.
    for b in &site.buffers {
        let Some(args) = broker::topics_args(b, &A.bootstrap(b)) else {
            continue;
        };
        let unit = format!("{}.service", unit_name(site, &format!("{}-topics", b.name)));
        let brokers = brokers_of.get(b.name.as_str()).cloned().unwrap_or_default();
        units.push((
            unit.clone(),
            Unit {
                description: format!("Starlog site {}: topics of buffer {}", site.name, b.name),
                after: brokers,
                exec: format!("{bin} {}", args.join(" ")),
                state_dir: None,
                target: &target,
                oneshot: true,
            },
        ));
        brokers_of.entry(&b.name).or_default().push(unit);
    }
    let after = |buffers: &[&str]| -> Vec<String> {
        buffers
            .iter()
            .flat_map(|b| brokers_of.get(b).cloned().unwrap_or_default())
            .collect()
    };
    for m in &site.mirrors {
        let file = format!("{}.mirror.yaml", m.name);
        files.add(format!("config/{file}"), broker::mirror_text(site, m, A)?);
        let mut buffers = vec![m.buffer.as_str()];
        if let crate::site::Upstream::Buffer(up) = &m.upstream {
            buffers.push(up);
        }
        units.push((
            format!("{}.service", unit_name(site, &m.name)),
            Unit {
                description: format!("Starlog site {}: mirror {}", site.name, m.name),
                after: after(&buffers),
                exec: format!("{bin} mirror {etc}/{file} --no-progress"),
                state_dir: None,
                target: &target,
                oneshot: false,
            },
        ));
    }
    for n in &site.nodes {
        let Placement::Standalone { instances } = n.placement else {
            continue;
        };
        let b = broker::buffer(site, &n.buffer)?;
        let file = format!("{}.pipeline.yaml", n.name);
        files.add(format!("config/{file}"), broker::pipeline_text(site, n)?);
        for i in 0..instances {
            units.push((
                format!("{}.service", unit_name(site, &format!("{}-{i}", n.name))),
                Unit {
                    description: format!(
                        "Starlog site {}: processing node {}, instance {} of {instances}",
                        site.name,
                        n.name,
                        i + 1
                    ),
                    after: after(&[n.buffer.as_str()]),
                    exec: format!("{bin} process {etc}/{file} --bootstrap {}", A.bootstrap(b)),
                    state_dir: None,
                    target: &target,
                    oneshot: false,
                },
            ));
        }
    }
    let mut lines = vec![
        format!(
            "Rendered by `starlog deploy render --target systemd` from site {}.",
            site.name
        ),
        format!("Install: the units in /etc/systemd/system, config/ as {etc},"),
        format!("then `systemctl daemon-reload && systemctl start {target}`."),
    ];
    lines.extend(left_out(site, Target::Systemd));
    let mut t = comment(&lines);
    let _ = writeln!(t, "[Unit]");
    let _ = writeln!(t, "Description=Starlog site {}: every component", site.name);
    let _ = writeln!(
        t,
        "Wants={}",
        units
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(t);
    let _ = writeln!(t, "[Install]");
    let _ = writeln!(t, "WantedBy=multi-user.target");
    files.add(format!("units/{target}"), t);
    for (name, unit) in &units {
        files.add(format!("units/{name}"), unit.text(&header));
    }
    Ok(files)
}

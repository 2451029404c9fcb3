//! `dataplane`: runs, checks and inspects the allowed-address-pairs datapath.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use dataplane::{
    config::{self, ConfigErrors},
    datapath::{self, Datapath, Options},
    interfaces, show, trace,
};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(
    version,
    about = "eBPF/XDP datapath enforcing OpenStack allowed address pairs"
)]
struct Cli {
    /// Datapath instance: its state lives in /sys/fs/bpf/<instance>.
    #[arg(
        long,
        global = true,
        env = "DATAPLANE_INSTANCE",
        default_value = "dataplane"
    )]
    instance: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the datapath, attach it to every port's tap and enforce the configuration.
    Run {
        /// Configuration file (TOML or JSON, Neutron resource and field names).
        #[arg(long, short)]
        config: PathBuf,
        /// Ports the datapath is sized for.
        #[arg(long, default_value_t = Options::default().max_ports)]
        max_ports: u32,
        /// Connections the tracking table holds; when it is full the least
        /// recently used one is evicted (counted in `show conntrack` and
        /// the metrics).
        #[arg(long, default_value_t = Options::default().max_connections)]
        max_connections: u32,
        /// On SIGINT/SIGTERM, detach and remove everything (by default the
        /// datapath keeps running on its pinned links and maps, and the
        /// next `run` adopts it; `dataplane stop` removes it).
        #[arg(long)]
        cleanup: bool,
        /// Serve per-port, per-reason counters in the Prometheus text
        /// format at http://ADDR/metrics (for example 127.0.0.1:9477).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Stream drop events (port, reason, addresses) as they happen.
    Monitor {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Run a packet through the running datapath's programs
    /// (BPF_PROG_TEST_RUN, live maps) and print what they decide: the drop
    /// reason, or each port it reaches and whether that port accepts it.
    /// Changes no state (no group claim, no tracked connection); port
    /// counters do count the packet.
    Trace {
        /// The sending port (its id or tap name).
        port: String,
        /// icmp, tcp, udp, arp (a request for --dst) or arp-reply.
        #[arg(long, default_value = "icmp")]
        proto: String,
        /// Source address (default: the port's first fixed IP of --dst's family).
        #[arg(long)]
        src: Option<std::net::IpAddr>,
        /// Destination address.
        #[arg(long)]
        dst: Option<std::net::IpAddr>,
        /// Ethernet source (default: the port's MAC).
        #[arg(long)]
        src_mac: Option<config::MacAddr>,
        /// Ethernet destination (default: the MAC the datapath's neighbour
        /// table has for --via, or for --dst).
        #[arg(long)]
        dst_mac: Option<config::MacAddr>,
        /// Next hop (the gateway) for a destination on another network.
        #[arg(long)]
        via: Option<std::net::IpAddr>,
        #[arg(long, default_value_t = 40000)]
        sport: u16,
        #[arg(long, default_value_t = 0)]
        dport: u16,
        /// TCP flags as letters: S, A, F, R, P.
        #[arg(long, default_value = "S")]
        tcp_flags: String,
        /// Trace every frame of a pcap file instead (Ethernet link type).
        #[arg(long, conflicts_with_all = ["src", "dst", "src_mac", "dst_mac", "via"])]
        pcap: Option<PathBuf>,
        /// One JSON object per packet.
        #[arg(long)]
        json: bool,
    },
    /// Have the running agent apply FILE (validated here first, with the
    /// same errors as `check`); the agent watches FILE from then on.
    Apply {
        /// Configuration file.
        file: PathBuf,
    },
    /// Validate a configuration without changing anything.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Do not check that the taps exist (validate for another host).
        #[arg(long)]
        skip_interfaces: bool,
    },
    /// Show what the running datapath holds.
    Show {
        #[command(subcommand)]
        what: ShowWhat,
    },
    /// Remove an instance's pinned state (after a crash, or to start afresh).
    Stop,
}

#[derive(Subcommand)]
enum ShowWhat {
    /// Groups of ports sharing an address: members and the active one.
    Groups {
        #[arg(long)]
        json: bool,
    },
    /// Ports with their MACs, addresses, pairs and counters.
    Ports {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Tracked connections, by the port they belong to.
    Conntrack {
        #[arg(long)]
        json: bool,
    },
    /// Security groups with the connections their rules allowed.
    SecurityGroups {
        #[arg(long)]
        json: bool,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(errors) = e.downcast_ref::<ConfigErrors>() {
                eprintln!("{errors}");
                ExitCode::from(2)
            } else {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run {
            config,
            max_ports,
            max_connections,
            cleanup,
            metrics,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let opts = Options {
                instance: cli.instance,
                max_ports,
                max_connections,
                attach: true,
            };
            rt.block_on(run(opts, config, cleanup, metrics))
        }
        Command::Check {
            config,
            skip_interfaces,
        } => {
            let topology = config::load(&config)?;
            if !skip_interfaces {
                interfaces::resolve_taps(&topology)?;
            }
            println!(
                "configuration valid: {} network(s), {} subnet(s), {} port(s)",
                topology.networks.len(),
                topology.subnets.len(),
                topology.ports.len()
            );
            Ok(())
        }
        Command::Show { what } => {
            let dir = datapath::instance_dir(&cli.instance);
            match what {
                ShowWhat::Ports { json } => {
                    print_view(&show::ports(&dir)?, json, show::render_ports)
                }
                ShowWhat::SecurityGroups { json } => {
                    print_view(&show::security_groups(&dir)?, json, |v| {
                        show::render_security_groups(v)
                    })
                }
                ShowWhat::Conntrack { json } => {
                    print_view(&show::conntrack(&dir)?, json, show::render_conntrack)
                }
                ShowWhat::Groups { json } => {
                    print_view(&show::groups(&dir)?, json, |v| show::render_groups(v))
                }
            }
        }
        Command::Apply { file } => apply_command(&cli.instance, &file),
        Command::Trace {
            port,
            proto,
            src,
            dst,
            src_mac,
            dst_mac,
            via,
            sport,
            dport,
            tcp_flags,
            pcap,
            json,
        } => {
            let dir = datapath::instance_dir(&cli.instance);
            let probe = trace::Probe::open(&dir)?;
            let ports = show::ports(&dir)?;
            let source = trace::find_port(&ports, &port)?;
            let frames = match pcap {
                Some(path) => trace::read_pcap(&path)?,
                None => vec![probe.build(
                    &ports,
                    source,
                    &trace::Description {
                        proto,
                        src,
                        dst,
                        src_mac,
                        dst_mac,
                        via,
                        sport,
                        dport,
                        tcp_flags,
                    },
                )?],
            };
            for frame in frames {
                let t = probe.run(&ports, source, &frame)?;
                if json {
                    println!("{}", serde_json::to_string(&t)?);
                } else {
                    print!("{}", trace::render(&t));
                }
            }
            Ok(())
        }
        Command::Monitor { json, count } => {
            dataplane::monitor::run(&datapath::instance_dir(&cli.instance), json, count)
        }
        Command::Stop => {
            let dir = datapath::instance_dir(&cli.instance);
            datapath::pins::remove(&dir)?;
            println!("removed {}", dir.display());
            Ok(())
        }
    }
}

async fn run(
    opts: Options,
    config_path: PathBuf,
    cleanup: bool,
    metrics: Option<std::net::SocketAddr>,
) -> Result<()> {
    let topology = config::load(&config_path)?;
    let ifindexes = interfaces::resolve_taps(&topology)?;

    let instance = opts.instance.clone();
    let fresh = !datapath::instance_dir(&instance).exists();
    let mut dp = Datapath::open(opts)?;
    forward_ebpf_logs(&mut dp);
    let adopted = dp.adopt_links()?;
    if adopted > 0 {
        info!(
            links = adopted,
            "took over the XDP links of the previous run"
        );
    }

    let summary = match dp.apply(&topology, &ifindexes) {
        Ok(s) => s,
        Err(e) => {
            // Leave nothing behind that this run created.
            dp.shutdown(fresh).ok();
            return Err(e).context("applying the configuration");
        }
    };
    if let Some(addr) = metrics {
        dataplane::metrics::serve(addr, dp.dir().clone()).await?;
    }

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let (mut watcher, mut changed) = watch(&config_path)?;
    let mut config_path = config_path;
    let mut control = listen_control(&instance)?;
    let mut live = Live {
        topology,
        ifindexes,
        generation: summary.generation,
    };
    let mut taps = tokio::time::interval(std::time::Duration::from_secs(1));
    // Ready only now: until the handlers above exist, a SIGHUP would kill
    // the agent and an edit of the file or an `apply` would go unnoticed.
    info!(
        instance,
        ports = live.topology.ports.len(),
        pins = %dp.dir().display(),
        "datapath ready"
    );
    loop {
        tokio::select! {
            _ = sigint.recv() => { info!("SIGINT"); break }
            _ = sigterm.recv() => { info!("SIGTERM"); break }
            _ = sighup.recv() => reload(&mut dp, &config_path, &mut live),
            _ = taps.tick() => follow_taps(&mut dp, &mut live),
            Some(()) = changed.recv() => {
                // Editors write in several steps: let them finish.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                while changed.try_recv().is_ok() {}
                info!("configuration file changed");
                reload(&mut dp, &config_path, &mut live);
            }
            Some((path, reply)) = control.recv() => {
                let answer = match apply_file(&mut dp, &path, "apply") {
                    Ok(applied) => {
                        let generation = applied.generation;
                        live = applied;
                        // FILE is the configuration from now on.
                        match watch(&path) {
                            Ok((w, c)) => {
                                watcher = w;
                                changed = c;
                            }
                            Err(e) => warn!("cannot watch {}: {e:#}", path.display()),
                        }
                        config_path = path;
                        format!("ok {generation}")
                    }
                    Err(e) => format!("error {e:#}"),
                };
                let _ = reply.send(answer);
            }
        }
    }
    drop(watcher);
    let _ = std::fs::remove_file(control_socket(&instance));
    dp.shutdown(cleanup)?;
    if cleanup {
        info!("detached and unpinned");
    } else {
        info!(
            "exiting; the datapath keeps running on its pinned links and maps (`dataplane stop` removes it)"
        );
    }
    Ok(())
}

/// Watches the configuration file's directory (editors and config
/// management replace files rather than write them in place) and reports
/// changes to the file itself.
fn watch(
    path: &std::path::Path,
) -> Result<(
    notify::RecommendedWatcher,
    tokio::sync::mpsc::UnboundedReceiver<()>,
)> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let path = std::fs::canonicalize(path)?;
    let name = path.file_name().map(|n| n.to_os_string());
    let dir = path
        .parent()
        .context("configuration file without a directory")?
        .to_path_buf();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let ours = event
            .paths
            .iter()
            .any(|p| p.file_name().map(|n| n.to_os_string()) == name);
        let writes = matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
        );
        if ours && writes {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok((watcher, rx))
}

/// SIGHUP or a change of the file: applies the configuration file again. A file that does not
/// validate, or names a tap that does not exist, changes nothing: the last
/// good configuration stays live.
fn reload(dp: &mut Datapath, config_path: &std::path::Path, live: &mut Live) {
    if let Ok(applied) = apply_file(dp, config_path, "reload") {
        *live = applied;
    }
}

/// The configuration in force and the interfaces its taps resolved to.
struct Live {
    topology: config::Topology,
    ifindexes: Vec<u32>,
    generation: u64,
}

/// A VM that reboots gets a new tap (same name, new ifindex): once it is
/// back, apply the configuration again so that the port is re-attached.
/// A tap that is missing meanwhile just leaves its port idle.
fn follow_taps(dp: &mut Datapath, live: &mut Live) {
    let Ok(now) = interfaces::resolve_taps(&live.topology) else {
        return;
    };
    if now == live.ifindexes {
        return;
    }
    match dp.apply(&live.topology, &now) {
        Ok(summary) => {
            info!(
                generation = summary.generation,
                "a tap was re-created: its port is attached again"
            );
            live.ifindexes = now;
            live.generation = summary.generation;
        }
        Err(e) => warn!("re-attaching re-created taps: {e:#}"),
    }
}

/// Applies `path`; logs and returns the outcome. A file that does not
/// validate, or names a tap that does not exist, changes nothing: the last
/// good configuration stays live.
fn apply_file(dp: &mut Datapath, path: &std::path::Path, why: &str) -> Result<Live> {
    let result = config::load(path)
        .and_then(|t| {
            let ifindexes = interfaces::resolve_taps(&t)?;
            Ok((t, ifindexes))
        })
        .and_then(|(t, ifindexes)| {
            let summary = dp.apply(&t, &ifindexes)?;
            Ok(Live {
                topology: t,
                ifindexes,
                generation: summary.generation,
            })
        });
    match result {
        Ok(live) => {
            info!(
                ports = live.topology.ports.len(),
                generation = live.generation,
                "{why}: configuration applied"
            );
            Ok(live)
        }
        Err(e) => {
            if let Some(errors) = e.downcast_ref::<ConfigErrors>() {
                error!("{why}: {errors}; keeping the running configuration");
            } else {
                error!("{why}: {e:#}; keeping the running configuration");
            }
            Err(e)
        }
    }
}

/// Prints a `show` view as pretty JSON or as the view's text.
fn print_view<V: ?Sized + serde::Serialize>(
    view: &V,
    json: bool,
    render: impl FnOnce(&V) -> String,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(view)?);
    } else {
        print!("{}", render(view));
    }
    Ok(())
}

/// The control socket of a running agent.
fn control_socket(instance: &str) -> PathBuf {
    PathBuf::from(format!("/run/dataplane/{instance}.sock"))
}

/// Listens on the control socket: each connection sends the path of a
/// configuration file; the reply is "ok <generation>" or "config-error" /
/// "error" followed by the message.
fn listen_control(
    instance: &str,
) -> Result<tokio::sync::mpsc::Receiver<(PathBuf, tokio::sync::oneshot::Sender<String>)>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let path = control_socket(instance);
    std::fs::create_dir_all(path.parent().expect("/run/dataplane"))?;
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("control socket {}", path.display()))?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut request = String::new();
                if conn.read_to_string(&mut request).await.is_err() {
                    return;
                }
                let (reply_tx, reply_rx) = tokio::sync::oneshot::channel::<String>();
                if tx
                    .send((PathBuf::from(request.trim()), reply_tx))
                    .await
                    .is_err()
                {
                    return;
                }
                if let Ok(reply) = reply_rx.await {
                    let _ = conn.write_all(reply.as_bytes()).await;
                }
            });
        }
    });
    Ok(rx)
}

/// `dataplane apply FILE`: validates FILE here (same errors as `check`),
/// then has the running agent apply it and watch it from then on.
fn apply_command(instance: &str, file: &std::path::Path) -> Result<()> {
    use std::io::{Read, Write};
    let topology = config::load(file)?;
    interfaces::resolve_taps(&topology)?;
    let path = std::fs::canonicalize(file)?;
    let socket = control_socket(instance);
    let mut conn = std::os::unix::net::UnixStream::connect(&socket).with_context(|| {
        format!(
            "no running agent for instance {instance} ({} missing)",
            socket.display()
        )
    })?;
    conn.write_all(path.to_string_lossy().as_bytes())?;
    conn.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    match reply.split_once(' ') {
        Some(("ok", generation)) => {
            println!("applied {} as generation {generation}", path.display());
            Ok(())
        }
        _ => anyhow::bail!("the agent refused {}: {reply}", path.display()),
    }
}

/// Forwards aya-log records from the programs to this process's log.
fn forward_ebpf_logs(dp: &mut Datapath) {
    let logger = match aya_log::EbpfLogger::init(dp.ebpf_mut()) {
        Ok(l) => l,
        Err(e) => {
            warn!("eBPF logs unavailable: {e}");
            return;
        }
    };
    // SAFETY: the logger owns the ring buffer's fd, which stays open and
    // unchanged for as long as the AsyncFd owns the logger.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            warn!("eBPF logs unavailable: {e}");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}

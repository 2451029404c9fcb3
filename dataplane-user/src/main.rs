//! `dataplane`: runs, checks and inspects the allowed-address-pairs datapath.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use dataplane_agent::{
    agent::RunOptions,
    commands::{self, print_view},
    costs,
    datapath::{self, Options},
    launch::{self, EtcdRun, Origin},
    logging::{self, LogFormat},
    show, trace,
};
use dataplane_config::MacAddr;

#[derive(Parser)]
#[command(
    name = "dataplane",
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
    /// Log lines as text, or as one JSON object a line for log collectors.
    #[arg(
        long,
        global = true,
        env = "DATAPLANE_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the datapath, attach it to every port's tap and enforce the configuration.
    Run {
        /// Configuration file (TOML or JSON, Neutron resource and field names).
        #[arg(long, short, required_unless_present = "etcd", conflicts_with = "etcd")]
        config: Option<PathBuf>,
        #[command(flatten)]
        etcd: EtcdArgs,
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
        /// An external network whose provider:physical_network is PHYSNET
        /// is reached through the host interface IFNAME (as Neutron's
        /// bridge_mappings); repeatable.
        #[arg(long, value_name = "PHYSNET=IFNAME")]
        uplink: Vec<String>,
    },
    /// Write a configuration file into etcd as the agents' database
    /// (what Neutron's driver does): only the objects that differ are
    /// written, and the ones the file no longer holds are deleted.
    Publish {
        /// Configuration file (TOML or JSON, Neutron resource and field names).
        file: PathBuf,
        /// etcd endpoints.
        #[arg(long, required = true, value_delimiter = ',')]
        etcd: Vec<String>,
        /// Prefix of the layout in etcd.
        #[arg(long, default_value = "/aap")]
        etcd_prefix: String,
    },
    /// Stream drop events (time, port, reason, addresses) from now on.
    Monitor {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
        /// Only drops of this port (its id, name or tap); repeatable.
        #[arg(long)]
        port: Vec<String>,
        /// Only drops for this reason (as `show ports` names them, e.g.
        /// ipv4_src); repeatable.
        #[arg(long)]
        reason: Vec<String>,
        /// First the events the datapath queued before the monitor started
        /// (by default only drops from now on are shown).
        #[arg(long)]
        backlog: bool,
    },
    /// Run a packet through the running datapath's programs
    /// (BPF_PROG_TEST_RUN, live maps) and print what they decide: the drop
    /// reason, or each port it reaches and whether that port accepts it,
    /// with the routing step and the security groups that decided.
    /// Changes no state (no group claim, no tracked connection); port
    /// counters do count the packet. Exit status: 3 if the datapath drops
    /// the packet (with --pcap: any of the file's), 0 if it gets through
    /// (delivered, answered or passed to the host), 1 if it cannot be
    /// traced.
    Trace {
        /// The sending port (its id, name or tap), or an uplink (`run
        /// --uplink`'s interface): a frame from the external network, to
        /// a gateway or floating address (give --src).
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
        src_mac: Option<MacAddr>,
        /// Ethernet destination (default: the MAC the datapath's neighbour
        /// table has for --via, or for --dst).
        #[arg(long)]
        dst_mac: Option<MacAddr>,
        /// Next hop (the gateway) for a destination on another network
        /// (default: the gateway of the port's subnet when --dst is not on
        /// it).
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
    /// Validate a configuration without changing anything; list the ports
    /// whose tap does not exist on this host (they would wait for it).
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Do not look for the taps (validate for another host).
        #[arg(long)]
        skip_interfaces: bool,
    },
    /// Whether an agent runs the instance (PID, uptime), where its
    /// configuration comes from and what it watches, the generation in
    /// force and the last attempt (its error verbatim), ports waiting for
    /// their tap, ports whose interface loses frames, and a one-line
    /// verdict. Exit status: 0 when the verdict is ok, 4 when it is not,
    /// 1 for an instance that does not exist.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Show what the running datapath holds.
    Show {
        #[command(subcommand)]
        what: ShowWhat,
    },
    /// Remove an instance's datapath on purpose: the running agent detaches
    /// and removes it and exits (stop returns once it has), or, with no
    /// agent running, the pinned state it left is removed. An instance
    /// that does not exist is an error.
    Stop,
    /// Write shell completions and man pages into DIR (for packaging).
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

/// The database of many hosts (instead of `--config`).
#[derive(clap::Args)]
struct EtcdArgs {
    /// etcd endpoints (e.g. http://10.0.0.1:2379): read the configuration
    /// from etcd and join the other hosts.
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    /// Prefix of the layout in etcd.
    #[arg(long, default_value = "/aap")]
    etcd_prefix: String,
    /// This host's chassis name: ports whose binding:host_id it is are
    /// local (default: the host name).
    #[arg(long, requires = "etcd")]
    chassis: Option<String>,
    /// The underlay interface tunnels to other hosts run over.
    #[arg(long, requires = "etcd")]
    underlay_dev: Option<String>,
    /// This host's address on the underlay (the tunnels' source).
    #[arg(long, requires = "etcd")]
    underlay_ip: Option<std::net::Ipv4Addr>,
    /// Seconds this host's records outlive it in etcd (its lease), 1-10.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i64).range(1..=10))]
    lease_ttl: i64,
}

#[derive(Subcommand)]
enum ShowWhat {
    /// The hosts this one knows (chassis), with their underlay addresses.
    Chassis {
        #[arg(long)]
        json: bool,
    },
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
    /// Router gateways and floating IPs, SNAT connections, neighbours
    /// learned on external networks, and NAT counters.
    Nat {
        #[arg(long)]
        json: bool,
    },
    /// Security groups with the connections their rules allowed.
    SecurityGroups {
        #[arg(long)]
        json: bool,
    },
    /// What each program costs under the traffic of the next SECONDS: runs
    /// and mean ns per run, from the kernel's run-time statistics (switched
    /// on for the sample only).
    Programs {
        #[arg(long)]
        json: bool,
        /// How long to sample.
        #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
        sample: f64,
    },
    /// Networks, their ports, shared addresses (with the active member),
    /// routers and hosts, at a glance.
    Topology {
        #[arg(long, conflicts_with = "dot")]
        json: bool,
        /// A Graphviz graph (render with `dot -Tsvg`).
        #[arg(long)]
        dot: bool,
    },
}

/// Exit status of a configuration refused (invalid, or too large for the
/// datapath's limits), whichever command found it.
const EXIT_CONFIG: u8 = 2;
/// Exit status of `trace` when the datapath drops the packet.
const EXIT_DROPPED: u8 = 3;
/// Exit status of `status` when its verdict is not ok.
const EXIT_ATTENTION: u8 = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    if !matches!(cli.command, Command::Run { .. }) {
        // Rust ignores SIGPIPE, so a closed pipe (`dataplane show ... | head`)
        // turns every print into a panic. A command's output going nowhere
        // ends it quietly instead, as for any Unix filter. (The agent keeps
        // ignoring it: a client closing its control connection early must
        // not kill it.)
        // SAFETY: restoring the default disposition of one signal.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            if commands::is_config_error(&e) {
                eprintln!("{e:#}");
                ExitCode::from(EXIT_CONFIG)
            } else {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

// One flat match over the subcommands, each arm handing its arguments to
// the library: long only by the Trace arm's fields.
fn dispatch(cli: Cli) -> Result<ExitCode> {
    let instance = cli.instance;
    match cli.command {
        Command::Run {
            config,
            etcd,
            max_ports,
            max_connections,
            cleanup,
            metrics,
            uplink,
        } => launch::run(
            RunOptions {
                datapath: Options {
                    instance,
                    max_ports,
                    max_connections,
                    attach: true,
                },
                host: None,
                cleanup,
                metrics,
                uplinks: dataplane_agent::uplinks::parse(
                    &uplink,
                    dataplane_agent::interfaces::ifindex,
                )?,
            },
            match config {
                Some(file) => Origin::File(file),
                None => Origin::Etcd(EtcdRun {
                    endpoints: etcd.etcd,
                    prefix: etcd.etcd_prefix,
                    chassis: etcd.chassis,
                    underlay_dev: etcd.underlay_dev,
                    underlay_ip: etcd.underlay_ip,
                    lease_ttl: etcd.lease_ttl,
                }),
            },
        )
        .map(|()| ExitCode::SUCCESS),
        Command::Publish {
            file,
            etcd,
            etcd_prefix,
        } => {
            let (written, deleted) = launch::runtime()?
                .block_on(dataplane_agent::publish::file(&file, &etcd, &etcd_prefix))?;
            println!(
                "published {}: {written} object(s) written, {deleted} deleted",
                file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            config,
            skip_interfaces,
        } => {
            let checked = commands::check(&config, !skip_interfaces)?;
            let t = &checked.topology;
            println!(
                "configuration valid: {} network(s), {} subnet(s), {} port(s)",
                t.networks.len(),
                t.subnets.len(),
                t.ports.len()
            );
            if !checked.missing_taps.is_empty() {
                println!(
                    "{} port(s) would wait for their tap (not on this host yet):",
                    checked.missing_taps.len()
                );
                for m in &checked.missing_taps {
                    println!("  {m}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => {
            let view = dataplane_agent::status::status(&instance)?;
            print_view(&view, json, dataplane_agent::status::render)?;
            Ok(if view.verdict.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_ATTENTION)
            })
        }
        Command::Show { what } => show(&instance, what).map(|()| ExitCode::SUCCESS),
        Command::Apply { file } => {
            let generation = commands::apply(&instance, &file)?;
            println!("applied {} as generation {generation}", file.display());
            Ok(ExitCode::SUCCESS)
        }
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
            let description = trace::Description {
                proto,
                src,
                dst,
                src_mac,
                dst_mac,
                via,
                sport,
                dport,
                tcp_flags,
            };
            let traces = commands::trace(&instance, &port, description, pcap.as_deref())?;
            for t in &traces {
                if json {
                    println!("{}", serde_json::to_string(t)?);
                } else {
                    print!("{}", trace::render(t));
                }
            }
            Ok(if traces.iter().any(|t| t.dropped()) {
                ExitCode::from(EXIT_DROPPED)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Monitor {
            json,
            count,
            port,
            reason,
            backlog,
        } => {
            let filter = dataplane_agent::monitor::Filter::new(&instance, &port, &reason)?;
            let options = dataplane_agent::monitor::Options {
                json,
                count,
                backlog,
                filter,
            };
            dataplane_agent::monitor::run(&datapath::instance_dir(&instance), &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stop => {
            println!("{}", commands::stop(&instance)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::GenerateDocs { dir } => {
            dataplane_agent::clidocs::write(Cli::command(), &dir)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show(instance: &str, what: ShowWhat) -> Result<()> {
    let dir = datapath::instance_dir(instance);
    match what {
        ShowWhat::Chassis { json } => {
            print_view(&show::chassis(&dir)?, json, |v| show::render_chassis(v))
        }
        ShowWhat::Ports { json } => {
            let mut view = show::named_ports(&dir)?;
            show::with_interfaces(&mut view);
            print_view(&view, json, show::render_ports)
        }
        ShowWhat::SecurityGroups { json } => print_view(&show::security_groups(&dir)?, json, |v| {
            show::render_security_groups(v)
        }),
        ShowWhat::Conntrack { json } => {
            print_view(&show::conntrack(&dir)?, json, show::render_conntrack)
        }
        ShowWhat::Nat { json } => print_view(
            &dataplane_agent::nat_view::view(&dir)?,
            json,
            dataplane_agent::nat_view::render,
        ),
        ShowWhat::Groups { json } => {
            print_view(&show::groups(&dir)?, json, |v| show::render_groups(v))
        }
        ShowWhat::Programs { json, sample } => {
            let sample = std::time::Duration::try_from_secs_f64(sample)
                .ok()
                .filter(|d| !d.is_zero() && d.as_secs() <= 3600)
                .context("--sample: a number of seconds, more than 0 and at most 3600")?;
            print_view(&costs::sample(&dir, sample)?, json, costs::render)
        }
        ShowWhat::Topology { json, dot } => {
            let view = dataplane_agent::topology::view(&dir)?;
            if dot {
                print!("{}", dataplane_agent::topology::render_dot(&view));
                Ok(())
            } else {
                print_view(&view, json, dataplane_agent::topology::render)
            }
        }
    }
}

//! rtnetlink, as the agent and the readers use it: link events (a tap
//! appearing, going or renamed) and one-off questions about a link (its
//! kind, its veth peer, its counters, whether XDP is on it) or about a
//! network namespace (its id as this one sees it).

use std::{collections::VecDeque, io::ErrorKind, os::fd::AsRawFd};

use anyhow::{Context, Result, bail};
use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, LinkXdp},
    nsid::{NsidAttribute, NsidMessage},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tokio::io::unix::AsyncFd;

/// The multicast group of link events.
const RTNLGRP_LINK: u32 = 1;

/// A link appeared, changed or went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// RTM_NEWLINK (a new link, or a change of one: name, state, ...).
    New { ifindex: u32, name: String },
    /// RTM_DELLINK.
    Gone { ifindex: u32, name: String },
    /// The kernel dropped events (the socket's buffer was full): whatever
    /// changed meanwhile is unknown, so everything is to be looked at again.
    Lost,
}

/// Link events of this network namespace, as they happen.
pub struct LinkEvents {
    socket: AsyncFd<Socket>,
    queue: VecDeque<LinkEvent>,
}

impl LinkEvents {
    /// Subscribes; events from now on (what exists already is not told).
    pub fn subscribe() -> Result<LinkEvents> {
        let mut socket = Socket::new(NETLINK_ROUTE).context("netlink socket")?;
        socket
            .bind(&SocketAddr::new(0, 0))
            .context("binding the netlink socket")?;
        socket
            .add_membership(RTNLGRP_LINK)
            .context("subscribing to link events")?;
        // A burst of events (a host plugging many VMs) must not overflow:
        // an overflow costs a look at every tap.
        let _ = socket.set_rx_buf_sz(4 << 20);
        socket.set_non_blocking(true)?;
        // SAFETY: the socket's fd stays open and unchanged for as long as
        // the AsyncFd owns the socket.
        let socket = unsafe { AsyncFd::register(socket) }
            .map_err(|e| anyhow::anyhow!("registering the netlink socket: {e}"))?;
        Ok(LinkEvents {
            socket,
            queue: VecDeque::new(),
        })
    }

    /// The next event. Cancel-safe: what was read and not yet returned
    /// waits in the queue for the next call.
    pub async fn next(&mut self) -> Result<LinkEvent> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(e);
            }
            let mut guard = self.socket.readable().await?;
            let mut buf = vec![0u8; 64 << 10];
            match guard.try_io(|s| s.get_ref().recv(&mut &mut buf[..], 0)) {
                Ok(Ok(n)) => parse_events(&buf[..n], &mut self.queue),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.queue.push_back(LinkEvent::Lost)
                }
                Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e).context("reading link events"),
                Err(_would_block) => {}
            }
        }
    }
}

/// The link events in one datagram (several messages, possibly).
fn parse_events(mut buf: &[u8], out: &mut VecDeque<LinkEvent>) {
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        if len < 16 || len > buf.len() {
            return;
        }
        if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..len]) {
            match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                    out.push_back(LinkEvent::New {
                        ifindex: l.header.index,
                        name: name_of(&l),
                    })
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                    out.push_back(LinkEvent::Gone {
                        ifindex: l.header.index,
                        name: name_of(&l),
                    })
                }
                NetlinkPayload::Overrun(_) => out.push_back(LinkEvent::Lost),
                _ => {}
            }
        }
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
}

fn name_of(l: &LinkMessage) -> String {
    l.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// What a link is, as rtnetlink tells it.
#[derive(Clone, Debug, Default)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    pub up: bool,
    /// "veth", "tun", ... ("" when the kernel does not say).
    pub kind: String,
    /// The other end of a veth (or the lower link): its ifindex...
    pub peer_ifindex: Option<u32>,
    /// ... in the namespace this id names (None: this namespace).
    pub peer_netnsid: Option<i32>,
    /// An XDP program is attached.
    pub xdp: bool,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

impl Link {
    fn of(l: &LinkMessage) -> Link {
        let mut link = Link {
            ifindex: l.header.index,
            up: l.header.flags.contains(LinkFlags::Up),
            ..Link::default()
        };
        for a in &l.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Link(i) => link.peer_ifindex = Some(*i),
                LinkAttribute::LinkNetNsId(id) => link.peer_netnsid = Some(*id),
                LinkAttribute::LinkInfo(infos) => link.kind = kind(infos),
                LinkAttribute::Xdp(x) => link.xdp = x.iter().any(attached),
                LinkAttribute::Stats64(s) => {
                    link.rx_dropped = s.rx_dropped;
                    link.tx_dropped = s.tx_dropped;
                }
                _ => {}
            }
        }
        link
    }
}

fn kind(infos: &[LinkInfo]) -> String {
    infos
        .iter()
        .find_map(|i| match i {
            LinkInfo::Kind(InfoKind::Veth) => Some("veth".to_string()),
            LinkInfo::Kind(InfoKind::Tun) => Some("tun".to_string()),
            LinkInfo::Kind(k) => Some(k.to_string().to_lowercase()),
            _ => None,
        })
        .unwrap_or_default()
}

fn attached(x: &LinkXdp) -> bool {
    matches!(x, LinkXdp::ProgId(id) | LinkXdp::DrvProgId(id) | LinkXdp::SkbProgId(id) if *id != 0)
}

/// One question (a GET without NLM_F_DUMP) and its one answer, on a
/// socket of the calling thread's network namespace.
fn ask(message: RouteNetlinkMessage) -> Result<RouteNetlinkMessage> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    header.sequence_number = 1;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    msg.finalize();
    let mut out = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut out);
    socket.send(&out, 0)?;
    let (buf, _) = socket.recv_from_full()?;
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf)
        .map_err(|e| anyhow::anyhow!("netlink: {e}"))?;
    match msg.payload {
        NetlinkPayload::InnerMessage(m) => Ok(m),
        NetlinkPayload::Error(e) => Err(std::io::Error::from(e)).context("netlink request"),
        other => bail!("netlink: unexpected answer {:?}", other.message_type()),
    }
}

/// The link `ifindex` of the calling thread's namespace (None: no such
/// link).
pub fn link(ifindex: u32) -> Result<Option<Link>> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    match ask(RouteNetlinkMessage::GetLink(msg)) {
        Ok(RouteNetlinkMessage::NewLink(l)) => Ok(Some(Link::of(&l))),
        Ok(_) => Ok(None),
        Err(e) if no_such_device(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn no_such_device(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
            == Some(libc::ENODEV)
    })
}

/// The id under which this namespace knows the namespace of `netns`
/// (an open /proc/PID/ns/net or /run/netns/NAME), if it has one.
pub fn netnsid_of(netns: &std::fs::File) -> Result<Option<i32>> {
    let mut msg = NsidMessage::default();
    msg.attributes
        .push(NsidAttribute::Fd(netns.as_raw_fd() as u32));
    Ok(match ask(RouteNetlinkMessage::GetNsId(msg))? {
        RouteNetlinkMessage::NewNsId(m) => m.attributes.iter().find_map(|x| match x {
            NsidAttribute::Id(id) if *id >= 0 => Some(*id),
            _ => None,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_one_datagram_are_all_read() {
        let mut bytes = Vec::new();
        for (index, name, del) in [(7, "tapa", false), (8, "tapb", true)] {
            let mut l = LinkMessage::default();
            l.header.index = index;
            l.attributes.push(LinkAttribute::IfName(name.into()));
            let inner = if del {
                RouteNetlinkMessage::DelLink(l)
            } else {
                RouteNetlinkMessage::NewLink(l)
            };
            let mut m = NetlinkMessage::new(
                NetlinkHeader::default(),
                NetlinkPayload::InnerMessage(inner),
            );
            m.finalize();
            let mut b = vec![0; m.buffer_len()];
            m.serialize(&mut b);
            bytes.extend(b);
        }
        let mut out = VecDeque::new();
        parse_events(&bytes, &mut out);
        assert_eq!(
            Vec::from(out),
            vec![
                LinkEvent::New {
                    ifindex: 7,
                    name: "tapa".into()
                },
                LinkEvent::Gone {
                    ifindex: 8,
                    name: "tapb".into()
                },
            ]
        );
    }
}

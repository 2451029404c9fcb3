//! How `from_vm` is attached to the taps: BPF links pinned under
//! `links/<ifindex>`, which outlive the agent (the datapath keeps running
//! while the agent restarts) and which the next agent takes over with its
//! own program, atomically.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use aya::programs::{
    SchedClassifier, TcAttachType, Xdp, XdpMode,
    links::{FdLink, PinnedLink},
    tc::SchedClassifierLink,
    xdp::{XdpLink, XdpLinkId},
};
use tracing::{debug, info};

/// How `from_vm` is attached to a tap.
enum Attachment {
    /// A BPF link pinned under `links/<ifindex>`.
    Pinned { link: FdLink, pin: PathBuf },
    /// A netlink attachment (kernels without XDP links): ends with us.
    Owned(XdpLinkId),
}

/// The XDP attachments of `from_vm`, by ifindex.
#[derive(Default)]
pub struct Links {
    dir: PathBuf,
    by_ifindex: BTreeMap<u32, Attachment>,
}

impl Links {
    pub fn new(instance_dir: &Path) -> Links {
        Links {
            dir: instance_dir.join("links"),
            by_ifindex: BTreeMap::new(),
        }
    }

    pub fn contains(&self, ifindex: u32) -> bool {
        self.by_ifindex.contains_key(&ifindex)
    }

    pub fn ifindexes(&self) -> Vec<u32> {
        self.by_ifindex.keys().copied().collect()
    }

    fn pin(&self, ifindex: u32) -> PathBuf {
        self.dir.join(ifindex.to_string())
    }

    pub fn attach(&mut self, xdp: &mut Xdp, ifindex: u32) -> Result<()> {
        let pin = self.pin(ifindex);
        let id = xdp
            .attach_to_if_index(ifindex, XdpMode::default())
            .with_context(|| format!("attaching XDP to interface {ifindex}"))?;
        let link = xdp.take_link(id)?;
        let attachment = match FdLink::try_from(link) {
            Ok(fd_link) => {
                std::fs::create_dir_all(&self.dir)?;
                let pinned = fd_link
                    .pin(&pin)
                    .with_context(|| format!("pinning the XDP link at {}", pin.display()))?;
                Attachment::Pinned {
                    link: FdLink::from(pinned),
                    pin,
                }
            }
            Err(e) => {
                // A netlink attachment (the conversion dropped it): attach
                // again, owned by this process.
                debug!(ifindex, error = %e, "no XDP link; attaching through netlink");
                let id = xdp
                    .attach_to_if_index(ifindex, XdpMode::default())
                    .with_context(|| format!("attaching XDP to interface {ifindex}"))?;
                Attachment::Owned(id)
            }
        };
        self.by_ifindex.insert(ifindex, attachment);
        Ok(())
    }

    /// Takes over the links a previous run pinned: each gets this run's
    /// `from_vm` atomically (no packet meets a detached tap). Links of
    /// interfaces that are gone are removed.
    pub fn adopt(&mut self, xdp: &mut Xdp) -> Result<usize> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(0);
        };
        let mut adopted = 0;
        for entry in entries {
            let pin = entry?.path();
            let Some(ifindex) = pin
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let replaced = PinnedLink::from_pin(&pin)
                .map_err(anyhow::Error::from)
                .and_then(|pinned| {
                    let link = XdpLink::try_from(FdLink::from(pinned))?;
                    let id = xdp.attach_to_link(link)?;
                    Ok(FdLink::try_from(xdp.take_link(id)?)?)
                });
            match replaced {
                Ok(link) => {
                    self.by_ifindex
                        .insert(ifindex, Attachment::Pinned { link, pin });
                    adopted += 1;
                }
                Err(e) => {
                    info!(ifindex, error = %e, "dropping a pinned XDP link that cannot be adopted");
                    let _ = std::fs::remove_file(&pin);
                }
            }
        }
        Ok(adopted)
    }

    pub fn detach(&mut self, xdp: &mut Xdp, ifindex: u32) {
        match self.by_ifindex.remove(&ifindex) {
            // Detached at once (not when the kernel frees the link after
            // our fd and the pin are gone), then unpinned and closed.
            Some(Attachment::Pinned { link, pin }) => {
                if let Err(e) = super::pins::detach_link(&pin) {
                    debug!(ifindex, error = %e, "BPF_LINK_DETACH");
                }
                let _ = std::fs::remove_file(&pin);
                drop(link);
            }
            Some(Attachment::Owned(id)) => {
                // The interface may already be gone, and its XDP with it.
                if let Err(e) = xdp.detach(id) {
                    debug!(ifindex, error = %e, "detach");
                }
            }
            None => {}
        }
    }

    /// Pins of this run's links that are gone (someone removed them):
    /// those links end with this process.
    pub fn missing_pins(&self) -> Vec<PathBuf> {
        self.by_ifindex
            .values()
            .filter_map(|a| match a {
                Attachment::Pinned { pin, .. } if !pin.exists() => Some(pin.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn detach_all(&mut self, xdp: &mut Xdp) {
        for ifindex in self.ifindexes() {
            self.detach(xdp, ifindex);
        }
    }
}

/// Links of programs on interfaces that are not ports, by name
/// (`links/<kind>/<name>`: the tunnel's, the uplinks'): like the taps',
/// pinned, and taken over by the next run with its own program (one link
/// update, no gap).
pub struct NamedLinks {
    dir: PathBuf,
    held: BTreeMap<String, FdLink>,
}

impl NamedLinks {
    pub fn new(instance_dir: &Path, kind: &str) -> NamedLinks {
        NamedLinks {
            dir: instance_dir.join("links").join(kind),
            held: BTreeMap::new(),
        }
    }

    /// Attaches `xdp` to `ifindex` under `name`, taking over a previous
    /// run's link if it is still attached there.
    pub fn xdp(&mut self, name: &str, xdp: &mut Xdp, ifindex: u32) -> Result<()> {
        let pin = self.dir.join(name);
        let adopted = PinnedLink::from_pin(&pin)
            .map_err(anyhow::Error::from)
            .and_then(|pinned| {
                let link = XdpLink::try_from(FdLink::from(pinned))?;
                let id = xdp.attach_to_link(link)?;
                Ok(FdLink::try_from(xdp.take_link(id)?)?)
            });
        let link = match adopted {
            // A link whose interface is gone refuses the update.
            Ok(link) => link,
            _ => {
                let _ = std::fs::remove_file(&pin);
                let id = xdp
                    .attach_to_if_index(ifindex, XdpMode::default())
                    .with_context(|| format!("attaching {name} to interface {ifindex}"))?;
                let link = FdLink::try_from(xdp.take_link(id)?)
                    .map_err(|e| anyhow::anyhow!("{name}: no XDP link ({e})"))?;
                self.pin(name, link)?
            }
        };
        self.held.insert(name.to_string(), link);
        Ok(())
    }

    /// Attaches `tc` to the ingress of `ifname` (TCX) under `name`, taking
    /// over a previous run's link likewise.
    pub fn tc_ingress(&mut self, name: &str, tc: &mut SchedClassifier, ifname: &str) -> Result<()> {
        let pin = self.dir.join(name);
        let adopted = PinnedLink::from_pin(&pin)
            .map_err(anyhow::Error::from)
            .and_then(|pinned| {
                let link = SchedClassifierLink::try_from(FdLink::from(pinned))?;
                let id = tc.attach_to_link(link)?;
                Ok(FdLink::try_from(tc.take_link(id)?)?)
            });
        let link = match adopted {
            Ok(link) => link,
            _ => {
                let _ = std::fs::remove_file(&pin);
                let id = tc
                    .attach(ifname, TcAttachType::Ingress)
                    .with_context(|| format!("attaching {name} to {ifname}"))?;
                let link = FdLink::try_from(tc.take_link(id)?)
                    .map_err(|e| anyhow::anyhow!("{name}: no TCX link ({e})"))?;
                self.pin(name, link)?
            }
        };
        self.held.insert(name.to_string(), link);
        Ok(())
    }

    fn pin(&self, name: &str, link: FdLink) -> Result<FdLink> {
        std::fs::create_dir_all(&self.dir)?;
        let pin = self.dir.join(name);
        let pinned = link
            .pin(&pin)
            .with_context(|| format!("pinning {}", pin.display()))?;
        Ok(FdLink::from(pinned))
    }

    /// Detaches everything (removing the pins ends the links).
    pub fn detach_all(&mut self) {
        self.held.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

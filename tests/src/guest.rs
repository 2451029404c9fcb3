//! The guest image of the VM tier, made by the project from Debian's
//! packages: Debian's kernel (linux-image-amd64's current version, fetched
//! with `apt-get download`) and an initramfs of the host's busybox with the
//! libraries it links, the virtio modules and a small /init. Built once
//! per machine into /var/cache/aap-tests/ and rebuilt when an input
//! changes (the kernel's, busybox's or libc's version, the init script,
//! the module list).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{hostlock::HostLock, netns::run};

const CACHE: &str = "/var/cache/aap-tests";

/// Kernel modules the guest loads (Debian builds virtio as modules), in
/// dependency order as far as known; /init tries again those that failed
/// (there is no depmod data in the initramfs). Paths below
/// /lib/modules/VERSION/kernel/.
const MODULES: &[&str] = &[
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
];

/// The guest's /init: loads the modules, gives eth0 the address from the
/// kernel command line (`aap.ip=A/N`), says `aap-guest: ready`, then runs a
/// shell on the console without echo, so that what the test reads is what
/// its commands print.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
echo 1 > /proc/sys/kernel/printk
for pass in 1 2 3; do
    for m in /lib/modules/*.ko; do
        [ -e "$m.loaded" ] || { insmod "$m" 2>/dev/null && : > "$m.loaded"; }
    done
done
for m in /lib/modules/*.ko; do [ -e "$m.loaded" ] || echo "aap-guest: insmod $m failed"; done
for a in $(cat /proc/cmdline); do case "$a" in aap.ip=*) IP="${a#aap.ip=}";; esac; done
ip link set lo up
i=0
while ! ip link show eth0 >/dev/null 2>&1; do
    i=$((i+1)); [ $i -gt 200 ] && { echo "aap-guest: no eth0"; break; }; sleep 0.05
done
ip link set eth0 up
ip addr add "$IP" dev eth0
stty -echo
echo "aap-guest: ready $IP"
export PS1=
exec sh
"#;

pub struct Image {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// The image, built first if the cache lacks this version of it.
pub fn image() -> Result<Image> {
    let _lock = HostLock::take("guest-image")?;
    let kernel_pkg = kernel_package()?;
    let busybox = package_version("busybox")?;
    let libc = package_version("libc6")?;
    let key = fnv(&[
        kernel_pkg.as_str(),
        busybox.as_str(),
        libc.as_str(),
        INIT,
        &MODULES.join(","),
    ]);
    let dir = Path::new(CACHE).join(format!("guest-{key:016x}"));
    let image = Image {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.gz"),
    };
    if image.kernel.exists() && image.initrd.exists() {
        return Ok(image);
    }
    eprintln!("building the guest image from {kernel_pkg} and busybox {busybox}");
    let tmp = Path::new(CACHE).join(format!("guest-{key:016x}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    build(&tmp, &kernel_pkg)
        .with_context(|| format!("building the guest image in {}", tmp.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir)?;
    // Older versions of the image are of no further use.
    for e in std::fs::read_dir(CACHE)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("guest-") && e.path() != dir {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(image)
}

/// `linux-image-X=VERSION`: what linux-image-amd64 depends on now.
fn kernel_package() -> Result<String> {
    let out = run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let name = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: linux-image-"))
        .map(|n| format!("linux-image-{n}"))
        .context("apt-cache knows no linux-image-amd64: run apt-get update")?;
    let out = run(Command::new("apt-cache").args(["policy", &name]))?;
    let version = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: ").map(str::to_string))
        .with_context(|| format!("no candidate version of {name}"))?;
    Ok(format!("{name}={version}"))
}

fn package_version(name: &str) -> Result<String> {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Version}", name]))
        .with_context(|| format!("{name} is not installed: run cargo xtask setup"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn build(tmp: &Path, kernel_pkg: &str) -> Result<()> {
    run(Command::new("apt-get")
        .args(["download", "-q", kernel_pkg])
        .current_dir(tmp))?;
    let deb = std::fs::read_dir(tmp)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download wrote no .deb")?;
    let x = tmp.join("x");
    std::fs::create_dir_all(&x)?;
    let mut patterns = vec!["./boot/vmlinuz-*".to_string()];
    patterns.extend(
        MODULES
            .iter()
            .map(|m| format!("./lib/modules/*/kernel/{m}")),
    );
    run(Command::new("sh").arg("-c").arg(format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' --wildcards {}",
        deb.display(),
        x.display(),
        patterns
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(" ")
    )))?;
    let vmlinuz = std::fs::read_dir(x.join("boot"))?
        .flatten()
        .next()
        .context("no vmlinuz in the kernel package")?
        .path();
    std::fs::rename(vmlinuz, tmp.join("vmlinuz"))?;
    initramfs(tmp, &x)?;
    std::fs::remove_dir_all(&x)?;
    std::fs::remove_file(&deb)?;
    Ok(())
}

/// busybox and its libraries, /init and the modules (numbered: /init
/// loads them in order), packed with cpio (newc, owned by root) and gzip.
fn initramfs(tmp: &Path, extracted: &Path) -> Result<()> {
    let root = tmp.join("root");
    for d in ["bin", "dev", "proc", "sys", "lib/modules"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))?;
    for lib in libraries("/bin/busybox")? {
        let dest = root.join(lib.strip_prefix("/").unwrap_or(&lib));
        std::fs::create_dir_all(dest.parent().unwrap())?;
        // fs::copy follows symlinks: the library itself under its soname.
        std::fs::copy(&lib, &dest).with_context(|| format!("copying {}", lib.display()))?;
    }
    let init = root.join("init");
    std::fs::write(&init, INIT)?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
    let moddir = std::fs::read_dir(extracted.join("lib/modules"))?
        .flatten()
        .next()
        .context("no modules in the kernel package")?
        .path();
    for (i, m) in MODULES.iter().enumerate() {
        let src = moddir.join("kernel").join(m);
        if !src.exists() {
            bail!("{} is not in the kernel package", src.display());
        }
        let name = Path::new(m).file_name().unwrap().to_string_lossy();
        std::fs::copy(&src, root.join(format!("lib/modules/{i:02}-{name}")))?;
    }
    run(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1 > '{}'",
        root.display(),
        tmp.join("initrd.gz").display()
    )))?;
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

/// The shared libraries `binary` loads, by absolute path (none if it is
/// static: Debian's busybox is dynamic, busybox-static is not).
fn libraries(binary: &str) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x…)"; the vDSO has no file.
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// FNV-1a: a hash that stays the same across Rust versions (the cache
/// outlives the compiler that wrote it).
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

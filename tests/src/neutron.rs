//! A real Neutron API server for the tests: Neutron 29 from PyPI in a venv
//! created once and reused, a MariaDB (Debian's `mariadb-server`) started
//! by hand on a temporary datadir, `neutron-db-manage upgrade heads`, and
//! Neutron's WSGI application served on a free loopback port with the ML2
//! driver `aap` (../networking-aap) writing into a given etcd. No Keystone
//! (`auth_strategy = noauth`), no RabbitMQ (`transport_url = fake:/`).
//! Everything is stopped by PID on drop, also when a test fails.
//!
//! It does not know how agents run: a test starts etcd and the agents its
//! own way and gives the server etcd's URL. When etcd is reachable only
//! inside a network namespace (a test cloud's underlay), the server, the
//! CLI and [`Neutron::api`] run inside it ([`Options::inside`]): MariaDB
//! is reached through its unix socket, which no network namespace hides.

use std::{
    ffi::OsStr,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Where the venv lives: outside the repository, kept between runs, one
/// per content of the constraints and requirements files.
pub const CACHE: &str = "/var/cache/aap-tests";

/// Debian's python3 (not a pyenv one that may be first on PATH).
const PYTHON: &str = "/usr/bin/python3";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The driver package.
pub fn driver_dir() -> PathBuf {
    repo_root().join("networking-aap")
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The venv with Neutron, the openstack CLI, PyMySQL and etcd3gw (pinned by
/// networking-aap/constraints.txt) and the driver installed from this
/// checkout (editable). Created on first use (≈ 30–40 s), then reused; a
/// change of the constraints or requirements makes a new one.
pub fn venv() -> Result<PathBuf> {
    static VENV: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(|| make_venv().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn make_venv() -> Result<PathBuf> {
    let driver = driver_dir();
    let constraints = driver.join("constraints.txt");
    let requirements = driver.join("test-requirements.txt");
    let python_version = run(Command::new(PYTHON).arg("--version"))
        .context("Debian's python3 is missing (cargo xtask setup)")?;
    let sums = run(Command::new("sha256sum")
        .arg(&constraints)
        .arg(&requirements))?;
    let key: String = {
        let mut text: String = sums.split_whitespace().step_by(2).collect();
        text.push_str(python_version.trim());
        let hashed = run(Command::new("sh")
            .arg("-c")
            .arg("printf %s \"$1\" | sha256sum")
            .arg("sh")
            .arg(&text))?;
        hashed.chars().take(16).collect()
    };
    std::fs::create_dir_all(CACHE)?;
    let dir = PathBuf::from(CACHE).join(format!("neutron-venv-{key}"));
    // One creator at a time, also across test processes.
    let lock = std::fs::File::create(PathBuf::from(CACHE).join("neutron-venv.lock"))?;
    // SAFETY: flock on a file we hold open; released when it closes.
    unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    let done = dir.join(".complete");
    if !done.exists() {
        let started = Instant::now();
        eprintln!(
            "neutron: creating the venv {} (once, ≈ 40 s)",
            dir.display()
        );
        let _ = std::fs::remove_dir_all(&dir);
        run(Command::new(PYTHON).args(["-m", "venv"]).arg(&dir))?;
        run(Command::new(dir.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .arg("-c")
            .arg(&constraints))?;
        std::fs::write(&done, "")?;
        eprintln!("neutron: venv ready in {:.0?}", started.elapsed());
        // Older venvs (other constraints) only take space.
        for entry in std::fs::read_dir(CACHE)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("neutron-venv-") && entry.path() != dir {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    install_driver(&dir, &driver)?;
    Ok(dir)
}

/// Installs the driver from `driver` (editable: edits apply at the next
/// server start) unless the venv already points at this checkout.
fn install_driver(venv: &Path, driver: &Path) -> Result<()> {
    let installed = run(Command::new(venv.join("bin/python")).args([
        "-c",
        "import importlib.metadata as m\n\
         try:\n    print(m.distribution('networking-aap').read_text('direct_url.json') or '')\n\
         except m.PackageNotFoundError:\n    pass",
    ]))?;
    let url = format!("file://{}", driver.display());
    if installed.contains(&format!("\"{url}\"")) {
        return Ok(());
    }
    run(Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "-e",
        ])
        .arg(driver))?;
    Ok(())
}

/// Stops a child: SIGTERM, then SIGKILL after `grace`.
fn stop_child(child: &mut Child, grace: Duration) {
    crate::process::stop(child, libc::SIGTERM, grace);
}

/// A MariaDB server on a temporary datadir, reached through a unix socket
/// only (no TCP port to collide on).
pub struct Mariadb {
    pub socket: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// Server options for install and runs alike. Durability is not what a
/// test needs; speed is (migrations take 3-5 s instead of a minute), and
/// a small redo log keeps a datadir copy small.
const MARIADB_OPTS: &[&str] = &[
    "--user=root",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=16M",
];

impl Mariadb {
    /// A new, empty server (mariadb-install-db, ≈ 3 s).
    pub fn start() -> Result<Mariadb> {
        let db = Mariadb::unstarted()?;
        run(Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", db.datadir().display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(MARIADB_OPTS))
        .context("mariadb-install-db (is mariadb-server installed? `cargo xtask setup`)")?;
        db.launched()
    }

    /// A server on a copy of the datadir `template` (see [`Mariadb::save`]).
    pub fn start_copy(template: &Path) -> Result<Mariadb> {
        let db = Mariadb::unstarted()?;
        run(Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(template)
            .arg(db.datadir()))?;
        db.launched()
    }

    fn unstarted() -> Result<Mariadb> {
        let dir = tempfile::tempdir()?;
        Ok(Mariadb {
            socket: dir.path().join("mysql.sock"),
            dir,
            child: None,
        })
    }

    fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn launched(mut self) -> Result<Mariadb> {
        self.launch()?;
        Ok(self)
    }

    fn launch(&mut self) -> Result<()> {
        let log = self.dir.path().join("mariadb.log");
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.datadir().display()))
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("mariadb.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .arg("--skip-networking")
            .args(MARIADB_OPTS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mariadbd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.sql("SELECT 1").is_err() {
            if let Some(c) = &mut self.child {
                if let Some(status) = c.try_wait()? {
                    bail!(
                        "mariadbd exited ({status}):\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!("mariadbd not ready after 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Stops the server cleanly, copies its datadir to `dest` (atomically:
    /// a copy in a temporary name, then renamed; if `dest` appeared
    /// meanwhile, that one stays), and starts it again.
    pub fn save(&mut self, dest: &Path) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(30));
        }
        let tmp = dest.with_extension(crate::netns::unique("tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        run(Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(self.datadir())
            .arg(&tmp))?;
        if std::fs::rename(&tmp, dest).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        self.launch()
    }

    pub fn sql(&self, statement: &str) -> Result<String> {
        run(Command::new("mariadb")
            .arg("--no-defaults")
            .arg("-S")
            .arg(&self.socket)
            .args(["-u", "root", "-N", "-e", statement]))
    }

    /// An SQLAlchemy URL of database `name` for PyMySQL.
    pub fn url(&self, name: &str) -> String {
        format!(
            "mysql+pymysql://root@/{name}?unix_socket={}&charset=utf8mb4",
            self.socket.display()
        )
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(10));
        }
    }
}

/// What the server is configured with.
#[derive(Clone, Debug)]
pub struct Options {
    pub etcd_url: String,
    pub prefix: String,
    /// The driver's `check_interval`: how soon it notices that etcd lost
    /// its data.
    pub check_interval: f64,
    /// The network namespace (its path) the server, the CLI and
    /// [`Neutron::api`] run in; None: this one.
    pub netns: Option<String>,
}

impl Options {
    pub fn new(etcd_url: &str) -> Options {
        Options {
            etcd_url: etcd_url.to_string(),
            prefix: "/aap".to_string(),
            check_interval: 1.0,
            netns: None,
        }
    }

    /// The server, its clients and its loopback port inside `ns` (where
    /// `etcd_url` is reachable).
    pub fn inside(mut self, ns: &crate::netns::Netns) -> Options {
        self.netns = Some(ns.path());
        self
    }
}

/// Neutron's API with the driver, on its own MariaDB.
pub struct Neutron {
    /// `http://127.0.0.1:PORT` (in [`Options::netns`] if set), what
    /// OS_ENDPOINT is set to.
    pub url: String,
    pub options: Options,
    venv: PathBuf,
    dir: tempfile::TempDir,
    log: PathBuf,
    child: Option<Child>,
    // Dropped after the server (fields drop after Drop::drop).
    db: Mariadb,
}

impl Neutron {
    /// Venv (once), MariaDB, schema (migrated once, then copied),
    /// configuration, server; returns once the API listens (≈ 4 s after
    /// the first time).
    pub fn start(options: Options) -> Result<Neutron> {
        let venv = venv()?;
        let started = Instant::now();
        // The migrated schema of this venv's Neutron, kept as a datadir:
        // later servers start on a copy instead of migrating again.
        let template = venv.join("mariadb-neutron-schema");
        let fresh = !template.exists();
        let db = if fresh {
            let db = Mariadb::start()?;
            db.sql("CREATE DATABASE neutron CHARACTER SET utf8mb4")?;
            db
        } else {
            Mariadb::start_copy(&template)?
        };
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("neutron.log");
        let mut n = Neutron {
            url: String::new(),
            options,
            venv,
            dir,
            log,
            child: None,
            db,
        };
        n.write_config()?;
        if fresh {
            let t = Instant::now();
            run(Command::new(n.venv.join("bin/neutron-db-manage"))
                .arg("--config-file")
                .arg(n.dir.path().join("neutron.conf"))
                .arg("--config-file")
                .arg(n.dir.path().join("ml2_conf.ini"))
                .args(["upgrade", "heads"]))?;
            eprintln!("neutron: schema migrated in {:.1?}", t.elapsed());
            n.db.save(&template)?;
        }
        n.spawn()?;
        eprintln!(
            "neutron: database and server up in {:.1?} at {}",
            started.elapsed(),
            n.url
        );
        Ok(n)
    }

    fn write_config(&self) -> Result<()> {
        let d = self.dir.path();
        let paste = self.venv.join("etc/neutron/api-paste.ini");
        let conf = format!(
            "[DEFAULT]\n\
             core_plugin = ml2\n\
             service_plugins = router\n\
             auth_strategy = noauth\n\
             transport_url = fake:/\n\
             notify_nova_on_port_status_changes = false\n\
             notify_nova_on_port_data_changes = false\n\
             api_paste_config = {paste}\n\
             api_workers = 1\n\
             rpc_workers = 0\n\
             host = neutron-test\n\
             debug = true\n\
             use_stderr = true\n\
             state_path = {state}\n\
             \n\
             [database]\n\
             connection = {db}\n\
             \n\
             [oslo_concurrency]\n\
             lock_path = {state}/lock\n",
            paste = paste.display(),
            state = d.join("state").display(),
            db = self.db.url("neutron"),
        );
        let ml2 = format!(
            "[ml2]\n\
             type_drivers = vxlan,flat\n\
             tenant_network_types = vxlan\n\
             mechanism_drivers = aap\n\
             extension_drivers = port_security\n\
             \n\
             [ml2_type_vxlan]\n\
             vni_ranges = 1000:1999\n\
             \n\
             [ml2_type_flat]\n\
             flat_networks = public\n\
             \n\
             [aap]\n\
             etcd_url = {}\n\
             prefix = {}\n\
             check_interval = {}\n",
            self.options.etcd_url, self.options.prefix, self.options.check_interval,
        );
        std::fs::create_dir_all(d.join("state/lock"))?;
        std::fs::write(d.join("neutron.conf"), conf)?;
        std::fs::write(d.join("ml2_conf.ini"), ml2)?;
        Ok(())
    }

    fn spawn(&mut self) -> Result<()> {
        let port_file = self.dir.path().join("api.port");
        let _ = std::fs::remove_file(&port_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = self
            .command(self.venv.join("bin/python"))
            .arg(repo_root().join("tests/neutron/serve.py"))
            .arg("127.0.0.1")
            .arg(&port_file)
            .env("OS_NEUTRON_CONFIG_DIR", self.dir.path())
            .env("OS_NEUTRON_CONFIG_FILES", "neutron.conf;ml2_conf.ini")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the Neutron API")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                self.url = format!("http://127.0.0.1:{}", port.trim());
                return Ok(());
            }
            if let Some(c) = &mut self.child {
                if let Some(status) = c.try_wait()? {
                    bail!("the Neutron API exited ({status}):\n{}", self.log_tail(60));
                }
            }
            if Instant::now() > deadline {
                bail!("the Neutron API not up after 60 s:\n{}", self.log_tail(60));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGTERM, by PID); the database stays.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(5));
        }
    }

    /// Starts the server again on the same database (a new port): the
    /// driver starts anew and resyncs etcd.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let t = Instant::now();
        self.spawn()?;
        eprintln!("neutron: restarted in {:.1?}", t.elapsed());
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn db_pid(&self) -> Option<u32> {
        self.db.pid()
    }

    /// `program`, in the server's namespace if it has one. nsenter execs
    /// it (no fork), so the child's PID is the program's.
    fn command(&self, program: impl AsRef<OsStr>) -> Command {
        match &self.options.netns {
            Some(path) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={path}")).arg("--").arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// The `openstack` CLI of the venv against this server, without
    /// Keystone; fails with its output if it fails.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let mut cmd = self.command(self.venv.join("bin/openstack"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("OS_") {
                cmd.env_remove(k);
            }
        }
        run(cmd
            .env("OS_AUTH_TYPE", "none")
            .env("OS_ENDPOINT", &self.url)
            .args(args))
        .with_context(|| format!("openstack {}", args.join(" ")))
    }

    /// [`Neutron::cli`] with `-f json`, parsed.
    pub fn cli_json(&self, args: &[&str]) -> Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-f", "json"]);
        let out = self.cli(&all)?;
        serde_json::from_str(&out).with_context(|| format!("parsing {out:?}"))
    }

    /// One request to the API without the CLI (no 1 s start-up, and the
    /// moment it returns is the moment the server answered): `method`
    /// `path` (under /v2.0) with an optional JSON body; returns the parsed
    /// body of a 2xx answer.
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let Some(ns) = &self.options.netns else {
            return http(&self.url, method, path, body);
        };
        let (url, method, path) = (self.url.clone(), method.to_string(), path.to_string());
        let body = body.cloned();
        crate::netns::run_in(ns, move || http(&url, &method, &path, body.as_ref()))
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Log lines at ERROR or CRITICAL, and the driver's warnings; left
    /// out: ML2's "Failed to bind port" (an ERROR while a host has no live
    /// agent) and oslo.cache's missing optional memcache module.
    pub fn errors(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                // "DATE TIME PID LEVEL logger ..."
                let mut words = l.split_whitespace().skip(3);
                match (words.next(), words.next()) {
                    (Some("ERROR" | "CRITICAL"), _) => true,
                    (Some("WARNING"), Some(logger)) => logger.starts_with("networking_aap"),
                    _ => false,
                }
            })
            .filter(|l| !l.contains("Failed to bind port"))
            .filter(|l| !l.contains("No module named 'memcache'"))
            .map(str::to_string)
            .collect()
    }
}

/// One HTTP/1.0 request to the API at `url` (see [`Neutron::api`]).
fn http(url: &str, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
    use std::io::{Read as _, Write as _};
    let addr = url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        conn,
        "{method} /v2.0{path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    let (head, payload) = answer
        .split_once("\r\n\r\n")
        .with_context(|| format!("no HTTP header in {answer:?}"))?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if !status.starts_with('2') {
        bail!("{method} {path}: {head}\n{payload}");
    }
    if payload.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(payload).with_context(|| format!("parsing {payload:?}"))
}

impl Drop for Neutron {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `etcdctl watch --prefix` in the background, recording when each change
/// arrived: how soon after an API call returned its object was in etcd.
pub struct EtcdWatch {
    child: Child,
    events: Arc<Mutex<Vec<WatchEvent>>>,
}

#[derive(Clone, Debug)]
pub struct WatchEvent {
    pub at: Instant,
    /// "PUT" or "DELETE".
    pub kind: String,
    pub key: String,
    pub value: String,
}

impl EtcdWatch {
    /// Watches `prefix` on the etcd at `url`; returns once the watch is
    /// established.
    pub fn start(url: &str, prefix: &str) -> Result<EtcdWatch> {
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", url, "watch", "--prefix", prefix])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("etcdctl watch")?;
        let stdout = child.stdout.take().expect("piped");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(kind)) = lines.next() {
                if kind != "PUT" && kind != "DELETE" {
                    continue;
                }
                let at = Instant::now();
                let key = lines.next().and_then(|l| l.ok()).unwrap_or_default();
                let value = if kind == "PUT" {
                    lines.next().and_then(|l| l.ok()).unwrap_or_default()
                } else {
                    String::new()
                };
                sink.lock().unwrap().push(WatchEvent {
                    at,
                    kind,
                    key,
                    value,
                });
            }
        });
        // etcdctl prints nothing until an event: write a probe key under
        // the prefix until the watch shows it (no layout parses its name).
        let w = EtcdWatch { child, events };
        let probe = format!("{prefix}.watch-probe");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !w.events().iter().any(|e| e.key == probe) {
            run(Command::new("etcdctl").env("ETCDCTL_API", "3").args([
                "--endpoints",
                url,
                "put",
                &probe,
                "1",
            ]))?;
            if Instant::now() > deadline {
                bail!("etcdctl watch saw nothing within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        run(Command::new("etcdctl").env("ETCDCTL_API", "3").args([
            "--endpoints",
            url,
            "del",
            &probe,
        ]))?;
        Ok(w)
    }

    pub fn events(&self) -> Vec<WatchEvent> {
        self.events.lock().unwrap().clone()
    }

    /// The first change of `key` that arrived after `since`, waiting up to
    /// `within` for it.
    pub fn wait_change(&self, key: &str, since: Instant, within: Duration) -> Result<WatchEvent> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self
                .events()
                .into_iter()
                .find(|e| e.key == key && e.at >= since)
            {
                return Ok(e);
            }
            if Instant::now() > deadline {
                bail!("no change of {key} within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for EtcdWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

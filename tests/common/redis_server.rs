#![allow(dead_code)]
//! A real `redis-server` (Debian's package), started by the test on a free loopback port and
//! killed when dropped. A test that cannot start it fails: it never skips.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct RedisServer {
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server with no persistence on a free loopback port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (e.g. `["--requirepass", "x"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_on(free_port(), extra)
    }

    /// Starts a server on `port` with extra arguments.
    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("tjg-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let mut server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.spawn();
        server
    }

    /// `redis://127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: u8) -> String {
        format!("redis://{}/{db}", self.addr)
    }

    /// Kills the server (as a crash would: no shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.addr.port().to_string(),
            ])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "redis-server could not be started ({e}): install Debian's redis-server \
                     package (`apt-get install redis-server`; .ci/run does)"
                )
            });
        self.child = Some(child);
        // Ready when *this* server answers PING (not merely when something listens on the
        // port: another test may have taken it), and still running.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("redis-server on {} exited at start: {status}", self.addr);
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
                && self.cli(&["PING"]) == "PONG"
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on {} within 10 s",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis-cli` against this server (with its password, if it has one): its trimmed output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.addr.port().to_string()]);
        if let Some(at) = self.extra.iter().position(|a| a == "--requirepass") {
            command.args(["--no-auth-warning", "-a", &self.extra[at + 1]]);
        }
        if let Some(at) = self.extra.iter().position(|a| a == "--tls-ca-cert-file") {
            command.args(["--tls", "--cacert", &self.extra[at + 1]]);
        }
        let output = command
            .args(args)
            .output()
            .expect("redis-cli (Debian's redis-tools, installed with redis-server)");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Makes the server stop answering for `secs` seconds (`DEBUG SLEEP`, which needs
    /// `--enable-debug-command yes`), from a blocking task; returns once the sleep has surely
    /// begun, with the task to await at the end.
    pub async fn sleep(&self, secs: u32) -> tokio::task::JoinHandle<()> {
        let port = self.addr.port().to_string();
        let task = tokio::task::spawn_blocking(move || {
            Command::new("redis-cli")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "DEBUG",
                    "SLEEP",
                    &secs.to_string(),
                ])
                .output()
                .expect("redis-cli");
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        task
    }

    /// Waits (up to 5 s) until `channel` has `n` subscribers, without blocking the runtime.
    pub async fn await_subscribers(&self, channel: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let port = self.addr.port().to_string();
        loop {
            let (port, channel_name) = (port.clone(), channel.to_owned());
            let out = tokio::task::spawn_blocking(move || {
                let output = Command::new("redis-cli")
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port,
                        "PUBSUB",
                        "NUMSUB",
                        &channel_name,
                    ])
                    .output()
                    .expect("redis-cli");
                String::from_utf8_lossy(&output.stdout).trim().to_owned()
            })
            .await
            .unwrap();
            if out
                .lines()
                .nth(1)
                .and_then(|l| l.trim().parse::<usize>().ok())
                >= Some(n)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{channel} never had {n} subscribers: {out}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A server that speaks only TLS on its port, with a certificate for 127.0.0.1 signed by a CA
/// made for it (by `openssl`); returns the server and the CA certificate (PEM).
pub fn start_tls() -> (RedisServer, Vec<u8>) {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("tjg-redis-tls-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for the certificates");
    let path = |name: &str| dir.join(name).to_str().expect("a UTF-8 path").to_owned();
    std::fs::write(path("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl (Debian's openssl package)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                &path("ca.key"),
                "-out",
                &path("ca.crt"),
                "-days",
                "2",
                "-subj",
                "/CN=tjg test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                &path("server.key"),
                "-out",
                &path("server.csr"),
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("server.csr"),
        "-CA",
        &path("ca.crt"),
        "-CAkey",
        &path("ca.key"),
        "-CAcreateserial",
        "-out",
        &path("server.crt"),
        "-days",
        "2",
        "-extfile",
        &path("san.ext"),
    ]);
    let ca = std::fs::read(path("ca.crt")).unwrap();
    let server = RedisServer::start_on(
        port,
        &[
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path("server.crt"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("ca.crt"),
            "--tls-auth-clients",
            "no",
        ],
    );
    (server, ca)
}

/// A real 3-node Redis Cluster (no replicas) on loopback: three `redis-server
/// --cluster-enabled yes` joined by `redis-cli --cluster create`, every slot covered.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let port = cluster_port();
                let dir =
                    std::env::temp_dir().join(format!("tjg-redis-{}-{port}", std::process::id()));
                let conf = dir.join("nodes.conf");
                RedisServer::start_on(
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        conf.to_str().expect("a UTF-8 temporary directory"),
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        // Ready when every node sees every slot assigned.
        let deadline = Instant::now() + Duration::from_secs(15);
        for node in &nodes {
            while !node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "the cluster never became ready");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self { nodes }
    }

    /// `redis://127.0.0.1:<port>` of each node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://{}", n.addr))
            .collect()
    }
}

/// A free port whose cluster bus port (port + 10 000) is free too.
fn cluster_port() -> u16 {
    for _ in 0..1000 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().expect("its address").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    // Ephemeral ports are usually above 55 000 minus 10 000; fall back to a fixed range.
    (20_000..30_000)
        .find(|p| {
            TcpListener::bind(("127.0.0.1", *p)).is_ok()
                && TcpListener::bind(("127.0.0.1", *p + 10_000)).is_ok()
        })
        .expect("a free port pair for a cluster node")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

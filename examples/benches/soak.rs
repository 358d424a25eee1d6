//! A fault-schedule soak of `live_server` (issue 32): one server reading files, a remote
//! document and (with the `etcd` feature) an etcd prefix, under steady HTTP load, while
//! a seeded schedule of faults plays against every source at once:
//!
//! - file edits, valid and invalid, saved in place, by rename and the way vim does;
//! - the remote document changed (valid and invalid), its server down and up again,
//!   answering 500s, dripping its body, serving a body over the 16 MiB cap;
//! - etcd puts (valid and invalid), etcd killed and restarted, its history compacted;
//! - SIGHUPs, admin refreshes and rollbacks;
//! - the state dir's disk full for a while (a 2 MiB tmpfs; mounting it needs root).
//!
//! Checked all along: no request fails; every answer's `x-eac-version` equals its body's,
//! never goes back on a connection, and is a published version; no answer carries what
//! a rejected candidate held (`bad-…` messages, a `max_body_bytes` out of its range).
//! Then the schedule quiets, every source gets a last value, and the server must serve
//! all of them (no lost trigger); RSS, descriptors and threads of the last quarter are
//! compared with the first's; the server is stopped and started again on its state dir,
//! and the durable history must have no gap.
//!
//! ```sh
//! cargo bench -p eac-examples --features etcd --bench soak -- --minutes 10 [--seed 1] [--threads 4]
//! cargo bench --profile dev -p eac-examples --features etcd --bench soak -- --seconds 30 --require-disk-full 1
//! ```
//!
//! The second line is CI's form. Without `--features etcd` the soak runs without etcd.
//! It exits 1 on any violation, listing them.

#[path = "common/fleet.rs"]
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{flag, listening_address, read_answer};
use eac_examples::doc_server::{Answer, DocServer, Document};

/// The admin token the soak uses for refreshes and rollbacks.
const TOKEN: &str = "soak-admin-token";
/// How often the server polls the remote document.
const POLL_MS: u64 = 200;
/// The remote's document is the `limits` section; a valid one has this plus a counter.
const REMOTE_BASE: u64 = 100_000;
/// The largest `max_body_bytes` the schema accepts; a bad remote document asks more.
const MAX_BODY: u64 = 16_777_216;
/// How long the last writes may take to be served once the faults stop: the remote's
/// poll may be in its backoff after the schedule's failures (up to 2ⁿ × the interval).
const CONVERGE: Duration = Duration::from_secs(30);
/// The soak's own file in the config dir: after `app.toml` in name order, so it wins.
const SOAK_FILE: &str = "zz-soak.toml";

fn main() {
    let seconds = flag("--seconds", flag("--minutes", 10) * 60).max(10);
    let seed = flag("--seed", 1);
    let threads = flag("--threads", 4).max(1) as usize;
    let require_disk_full = flag("--require-disk-full", 0) == 1;
    let run = Duration::from_secs(seconds);
    println!("soak: live_server for {seconds} s, seed {seed}, {threads} load threads");

    let mut violations = Violations::default();
    let config = tempfile::tempdir().expect("a config dir");
    std::fs::write(config.path().join("app.toml"), eac_tests::APP_TOML).unwrap();
    write_file(config.path(), &file_doc("file-0"), Save::InPlace);
    let state_parent = tempfile::tempdir().expect("a state dir's parent");
    let state = state_parent.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let disk = SmallDisk::mount(&state);
    match (&disk, require_disk_full) {
        (Err(why), true) => {
            eprintln!("soak: the full-disk fault needs a small tmpfs and cannot mount one: {why}");
            std::process::exit(1);
        }
        (Err(why), false) => println!("soak: no full-disk fault ({why})"),
        (Ok(_), _) => {}
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut remote = Remote::start(&runtime);
    let mut etcd = Etcd::start();

    let mut server = Server::start(config.path(), &state, &remote.url(), etcd.endpoint());
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(Mutex::new(Published::default()));
    let events = {
        let (address, published, stop) = (server.address, published.clone(), stop.clone());
        std::thread::spawn(move || follow_events(address, &published, &stop))
    };
    // The events stream is open (it told the version served when it connected) before
    // any load starts: every version the load sees was published after, or is that one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while published.lock().unwrap().connected_at.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let first = status_version(server.address);
    published.lock().unwrap().versions.insert(first);

    let load: Vec<_> = (0..threads)
        .map(|_| {
            let (address, stop) = (server.address, stop.clone());
            std::thread::spawn(move || load(address, &stop))
        })
        .collect();
    let sampler = {
        let (pid, stop) = (server.pid(), stop.clone());
        std::thread::spawn(move || sample(pid, &stop))
    };

    // The schedule.
    let start = Instant::now();
    let quiet_at = run.mul_f64(0.8);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut counts = FaultCounts::default();
    let mut n = 0u64;
    let mut disk_full_until: Option<Instant> = None;
    while start.elapsed() < quiet_at {
        n += 1;
        if let Some(until) = disk_full_until
            && Instant::now() >= until
        {
            disk.as_ref().unwrap().free();
            disk_full_until = None;
        }
        let fault = Fault::pick(&mut rng, &remote, &etcd, disk.is_ok(), disk_full_until);
        counts.add(fault);
        match fault {
            Fault::FileValid => {
                let save = Save::pick(&mut rng);
                write_file(config.path(), &file_doc(&format!("file-{n}")), save);
            }
            Fault::FileInvalid => {
                let doc = if rng.bool() {
                    format!("[greeting\nmessage = \"bad-file-{n}\"\n")
                } else {
                    format!(
                        "{}[limits]\nrequest_timeout_ms = 0\n",
                        file_doc(&format!("bad-file-{n}"))
                    )
                };
                write_file(config.path(), &doc, Save::pick(&mut rng));
            }
            Fault::RemoteValid => remote.set(&remote_doc(REMOTE_BASE + n)),
            Fault::RemoteInvalid => remote.set(&if rng.bool() {
                remote_doc(MAX_BODY * 4)
            } else {
                "[limits\nmax_body_bytes = ".to_owned()
            }),
            Fault::RemoteDown => remote.down(&runtime),
            Fault::RemoteUp => remote.up(&runtime),
            Fault::Remote500 => remote.answer_times(Answer::Status(500), 1 + rng.usize(..4)),
            Fault::RemoteDrip => remote.answer_times(Answer::Drip(Duration::from_millis(40)), 1),
            Fault::RemoteOversized => remote.oversized(),
            Fault::EtcdValid => etcd.put_features(&format!("{{\"shout\": {}}}", rng.bool())),
            Fault::EtcdInvalid => etcd.put_features(if rng.bool() {
                "{\"shout\": \"loud\"}"
            } else {
                "{\"shout\": tru"
            }),
            Fault::EtcdRestart => etcd.restart(),
            Fault::EtcdCompact => etcd.compact(),
            Fault::Sighup => signal(server.pid(), "-HUP"),
            Fault::Refresh => {
                let _ = admin(server.address, "POST", "/_internal/eac/refresh");
            }
            Fault::Rollback => rollback(server.address, &mut rng),
            Fault::DiskFull => {
                disk.as_ref().unwrap().fill();
                disk_full_until =
                    Some(Instant::now() + Duration::from_millis(2000 + rng.u64(..4000)));
            }
        }
        std::thread::sleep(Duration::from_millis(50 + rng.u64(..300)));
    }

    // Quiet: every fault undone, every source given a last value, which must all be served.
    if disk_full_until.is_some() {
        disk.as_ref().unwrap().free();
    }
    remote.up(&runtime);
    remote.answer_times(Answer::Document, 1);
    remote.set(&remote_doc(4242));
    etcd.ensure_up();
    etcd.put_features("{\"shout\": true}");
    write_file(config.path(), &file_doc("file-final"), Save::Rename);
    let want_message = if etcd.on() {
        "FILE-FINAL"
    } else {
        "file-final"
    };
    let quiet = Instant::now();
    let converged = loop {
        // `/pinned` shows the files' message and the remote's cap; `/` the message as
        // etcd's `shout` makes it.
        if let Ok((200, _, pinned)) = get(server.address, "/pinned")
            && pinned.contains("\"message\":\"file-final\"")
            && pinned.contains("\"max_body_bytes\":4242")
            && let Ok((200, _, root)) = get(server.address, "/")
            && root.contains(&format!("\"message\":\"{want_message}\""))
        {
            break Some(quiet.elapsed());
        }
        if quiet.elapsed() > CONVERGE {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if converged.is_none() {
        violations.add(format!(
            "lost trigger: {} s after the last writes the server does not serve them (GET /pinned: {:?}, GET /: {:?})",
            CONVERGE.as_secs(),
            get(server.address, "/pinned").map(|(_, _, body)| body),
            get(server.address, "/").map(|(_, _, body)| body)
        ));
    }
    // Let the load run on the quiet configuration until the run's end.
    while start.elapsed() < run {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let load: Vec<Load> = load.into_iter().map(|t| t.join().unwrap()).collect();
    let samples = sampler.join().unwrap();

    // The history across a restart.
    let before = history(server.address);
    let code = server.stop();
    if code != Some(0) {
        violations.add(format!("live_server exited {code:?} on SIGTERM, not 0"));
    }
    let _ = events.join();
    let server2 = Server::start(config.path(), &state, &remote.url(), etcd.endpoint());
    let after = history(server2.address);
    let gap = history_gap(&before, &after);
    if let Some(gap) = &gap {
        violations.add(format!("the durable history after a restart: {gap}"));
    }
    let log = server.log() + &server2.log();
    let logged = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    let (store_failed, store_caught_up) = (
        logged("cannot write the history store"),
        logged("the history store caught up"),
    );
    drop(server2);
    for line in log.lines().filter(|l| l.contains("panicked")) {
        violations.add(format!("live_server panicked: {line}"));
    }

    // The figures.
    let published = published.lock().unwrap();
    let total: u64 = load.iter().map(|l| l.requests).sum();
    let failed: u64 = load.iter().map(|l| l.failed).sum();
    for l in &load {
        for v in &l.violations {
            violations.add(v.clone());
        }
        for version in &l.versions {
            if !published.versions.contains(version) && !published.lagged {
                violations.add(format!(
                    "an answer carried version {version}, never published"
                ));
            }
        }
    }
    if failed > 0 {
        violations.add(format!("{failed} of {total} requests failed"));
    }
    let flat = Flatness::of(&samples);
    violations.extend(flat.violations());
    let seen: BTreeSet<u64> = load
        .iter()
        .flat_map(|l| l.versions.iter().copied())
        .collect();

    println!();
    println!("| what | figure |");
    println!("|---|---|");
    println!(
        "| run | {seconds} s, seed {seed}, {threads} load threads, etcd {} |",
        if etcd.on() { "on" } else { "off (no feature)" }
    );
    println!("| faults | {} ({}) |", counts.total(), counts);
    println!("| requests | {total}, failed {failed} |");
    println!(
        "| versions published (events) | {}, rejections {}, versions seen by the load {} |",
        published.versions.len(),
        published.rejected,
        seen.len()
    );
    println!(
        "| last writes served after | {} |",
        converged.map_or("never (lost trigger)".to_owned(), |d| format!(
            "{:.0} ms",
            d.as_secs_f64() * 1e3
        ))
    );
    println!(
        "| RSS, first / last quarter (median) | {:.1} / {:.1} MB |",
        flat.rss.0 as f64 / 1e6,
        flat.rss.1 as f64 / 1e6
    );
    println!(
        "| descriptors, first / last quarter (max) | {} / {} |",
        flat.fds.0, flat.fds.1
    );
    println!(
        "| threads, first / last quarter (max) | {} / {} |",
        flat.threads.0, flat.threads.1
    );
    println!(
        "| the full disk | history writes failed {store_failed} times, caught up {store_caught_up} times |"
    );
    println!(
        "| history across a restart | {} versions kept, {} |",
        after.len(),
        gap.as_deref().unwrap_or("no gap")
    );
    println!("| violations | {} |", violations.0.len());
    drop(disk);
    etcd.stop();
    runtime.block_on(remote.stop());
    if !violations.0.is_empty() {
        eprintln!("\nsoak: {} violation(s):", violations.0.len());
        for v in violations.0.iter().take(40) {
            eprintln!("- {v}");
        }
        std::process::exit(1);
    }
}

#[derive(Default)]
struct Violations(Vec<String>);

impl Violations {
    fn add(&mut self, v: String) {
        self.0.push(v);
    }
    fn extend(&mut self, vs: Vec<String>) {
        self.0.extend(vs);
    }
}

/// The soak file's content: the greeting.
fn file_doc(message: &str) -> String {
    format!("[greeting]\nmessage = \"{message}\"\n")
}

/// The remote document: the limits' body cap.
fn remote_doc(max_body_bytes: u64) -> String {
    format!("[limits]\nmax_body_bytes = {max_body_bytes}\n")
}

/// How an edit is saved.
#[derive(Clone, Copy)]
enum Save {
    InPlace,
    Rename,
    Vim,
}

impl Save {
    fn pick(rng: &mut fastrand::Rng) -> Save {
        [Save::InPlace, Save::Rename, Save::Vim][rng.usize(..3)]
    }
}

fn write_file(dir: &Path, content: &str, save: Save) {
    let path = dir.join(SOAK_FILE);
    match save {
        Save::InPlace => std::fs::write(&path, content).unwrap(),
        Save::Rename => {
            let tmp = dir.join(".zz-soak.toml.tmp");
            std::fs::write(&tmp, content).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
        Save::Vim => {
            let backup = dir.join(".zz-soak.toml~");
            let _ = std::fs::rename(&path, &backup);
            std::fs::write(&path, content).unwrap();
            let _ = std::fs::remove_file(&backup);
        }
    }
}

/// The faults, and how often each is picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    FileValid,
    FileInvalid,
    RemoteValid,
    RemoteInvalid,
    RemoteDown,
    RemoteUp,
    Remote500,
    RemoteDrip,
    RemoteOversized,
    EtcdValid,
    EtcdInvalid,
    EtcdRestart,
    EtcdCompact,
    Sighup,
    Refresh,
    Rollback,
    DiskFull,
}

impl Fault {
    fn pick(
        rng: &mut fastrand::Rng,
        remote: &Remote,
        etcd: &Etcd,
        disk: bool,
        disk_full: Option<Instant>,
    ) -> Fault {
        let mut weighted: Vec<(Fault, u32)> = vec![
            (Fault::FileValid, 12),
            (Fault::FileInvalid, 5),
            (Fault::Sighup, 3),
            (Fault::Refresh, 3),
            (Fault::Rollback, 2),
        ];
        if remote.is_up() {
            weighted.extend([
                (Fault::RemoteValid, 8),
                (Fault::RemoteInvalid, 4),
                (Fault::RemoteDown, 2),
                (Fault::Remote500, 3),
                (Fault::RemoteDrip, 2),
                (Fault::RemoteOversized, 1),
            ]);
        } else {
            weighted.push((Fault::RemoteUp, 6));
        }
        if etcd.on() {
            weighted.extend([
                (Fault::EtcdValid, 8),
                (Fault::EtcdInvalid, 4),
                (Fault::EtcdRestart, 1),
                (Fault::EtcdCompact, 2),
            ]);
        }
        if disk && disk_full.is_none() {
            weighted.push((Fault::DiskFull, 3));
        }
        let total: u32 = weighted.iter().map(|(_, w)| w).sum();
        let mut at = rng.u32(..total);
        for (fault, w) in weighted {
            if at < w {
                return fault;
            }
            at -= w;
        }
        unreachable!("the weights add up")
    }
}

#[derive(Default)]
struct FaultCounts(std::collections::BTreeMap<Fault, u32>);

impl FaultCounts {
    fn add(&mut self, fault: Fault) {
        *self.0.entry(fault).or_default() += 1;
    }
    fn total(&self) -> u32 {
        self.0.values().sum()
    }
}

impl std::fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k:?} {v}")).collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// The remote document's server, which the schedule takes down and brings back on the
/// same address.
struct Remote {
    server: Option<DocServer>,
    addr: SocketAddr,
    document: String,
}

impl Remote {
    fn start(runtime: &tokio::runtime::Runtime) -> Remote {
        let server = runtime
            .block_on(DocServer::start("127.0.0.1:0".parse().unwrap()))
            .expect("a remote document server");
        let document = remote_doc(REMOTE_BASE);
        server.set(Document::text("application/toml", document.clone()));
        Remote {
            addr: server.addr(),
            server: Some(server),
            document,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/app.toml", self.addr)
    }

    fn is_up(&self) -> bool {
        self.server.is_some()
    }

    fn set(&mut self, document: &str) {
        self.document = document.to_owned();
        if let Some(server) = &self.server {
            server.set(Document::text("application/toml", document));
        }
    }

    fn answer_times(&self, answer: Answer, times: usize) {
        if let Some(server) = &self.server {
            server.answer_times(answer, times);
        }
    }

    /// A body one byte over the 16 MiB cap, for about two polls; then the document again.
    fn oversized(&mut self) {
        let Some(server) = &self.server else { return };
        let mut body = String::with_capacity(16 * 1024 * 1024 + 64);
        body.push_str(&self.document);
        body.push('#');
        body.extend(std::iter::repeat_n('x', 16 * 1024 * 1024));
        body.push('\n');
        server.set(Document::text("application/toml", body));
        std::thread::sleep(Duration::from_millis(2 * POLL_MS));
        server.set(Document::text("application/toml", self.document.clone()));
    }

    fn down(&mut self, runtime: &tokio::runtime::Runtime) {
        if let Some(server) = self.server.take() {
            runtime.block_on(server.stop());
        }
    }

    fn up(&mut self, runtime: &tokio::runtime::Runtime) {
        if self.server.is_some() {
            return;
        }
        // The port was ours a moment ago; binding it again may take a few tries.
        for _ in 0..100 {
            if let Ok(server) = runtime.block_on(DocServer::start(self.addr)) {
                server.set(Document::text("application/toml", self.document.clone()));
                self.server = Some(server);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("cannot listen on {} again", self.addr);
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}

/// etcd, with the `etcd` feature.
#[cfg(feature = "etcd")]
struct Etcd {
    server: eac_tests::etcd::EtcdServer,
    client: eac_tests::etcd::BlockingClient,
    down: bool,
}

/// The prefix the server reads.
#[cfg(feature = "etcd")]
const PREFIX: &str = "/eac/soak/";

#[cfg(feature = "etcd")]
impl Etcd {
    fn start() -> Etcd {
        let server = eac_tests::etcd::EtcdServer::start();
        let mut client = server.blocking_client(PREFIX);
        client.put("features", "{\"shout\": false}");
        Etcd {
            server,
            client,
            down: false,
        }
    }
    fn on(&self) -> bool {
        true
    }
    fn endpoint(&self) -> Option<String> {
        Some(self.server.endpoint())
    }
    fn put_features(&mut self, value: &str) {
        self.ensure_up();
        self.client.put("features", value.to_owned());
    }
    /// Kills etcd; it comes back at the next etcd fault, or at the end.
    fn restart(&mut self) {
        if self.down {
            self.ensure_up();
        } else {
            self.server.kill();
            self.down = true;
        }
    }
    fn compact(&mut self) {
        self.ensure_up();
        // Nothing written since the last compaction: etcd refuses the same revision again.
        if let Err(e) = self.client.compact()
            && !e.to_string().contains("has been compacted")
        {
            panic!("compact: {e}");
        }
    }
    fn ensure_up(&mut self) {
        if self.down {
            self.server.restart();
            self.down = false;
            // The client's channel reconnects on its next call.
            self.client = self.server.blocking_client(PREFIX);
        }
    }
    fn stop(self) {}
}

#[cfg(not(feature = "etcd"))]
struct Etcd;

#[cfg(not(feature = "etcd"))]
impl Etcd {
    fn start() -> Etcd {
        Etcd
    }
    fn on(&self) -> bool {
        false
    }
    fn endpoint(&self) -> Option<String> {
        None
    }
    fn put_features(&mut self, _: &str) {}
    fn restart(&mut self) {}
    fn compact(&mut self) {}
    fn ensure_up(&mut self) {}
    fn stop(self) {}
}

/// The state dir on a 2 MiB tmpfs of its own, so that the schedule can fill its disk.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path) -> Result<SmallDisk, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m,mode=0700", "eac-soak-state"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed (it needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk {
            dir: dir.to_owned(),
        })
    }

    fn filler(&self) -> PathBuf {
        self.dir.join(".soak-filler")
    }

    /// Writes a file until the disk has no room left.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.filler()).unwrap();
        let block = vec![0u8; 16 * 1024];
        while f.write_all(&block).is_ok() {}
        // The last partial block: fill byte by byte.
        while f.write_all(&[0]).is_ok() {}
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A running `live_server`.
struct Server {
    child: Child,
    address: SocketAddr,
    log: tempfile::NamedTempFile,
}

impl Server {
    fn start(config: &Path, state: &Path, remote: &str, etcd: Option<String>) -> Server {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_live_server"));
        command
            .args(["--config-dir", config.to_str().unwrap()])
            .args(["--state-dir", state.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--remote", remote])
            .env("EAC_REFRESH_ENDPOINT_TOKEN", TOKEN)
            .env("EAC_REFRESH_POLL_INTERVAL_MS", POLL_MS.to_string())
            .env("EAC_REFRESH_COOLDOWN_MS", "0")
            .env("EAC_REFRESH_BACKOFF_MS", "100")
            .env("RUST_LOG", "warn,eac_accessor::history=info")
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("the log file"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("APP_")) {
            command.env_remove(key);
        }
        if let Some(etcd) = etcd {
            command
                .args(["--etcd", &etcd])
                .env("EAC_ETCD_PREFIX", "/eac/soak/");
        }
        let mut child = command.spawn().expect("start live_server");
        let address = listening_address(&mut child, log.path());
        Server {
            child,
            address,
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// SIGTERM, and its exit code.
    fn stop(&mut self) -> Option<i32> {
        signal(self.pid(), "-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status();
}

/// What one load thread saw.
#[derive(Default)]
struct Load {
    requests: u64,
    failed: u64,
    versions: BTreeSet<u64>,
    violations: Vec<String>,
}

/// Asks `GET /` and `GET /pinned` in turn on a kept-alive connection until told to stop.
fn load(address: SocketAddr, stop: &AtomicBool) -> Load {
    let mut seen = Load::default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut last = 0u64;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let path = if i.is_multiple_of(2) { "/" } else { "/pinned" };
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match TcpStream::connect(address) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    last = 0;
                    conn.insert(BufReader::new(s))
                }
                Err(e) => {
                    seen.requests += 1;
                    seen.failed += 1;
                    record(&mut seen.violations, format!("connect: {e}"));
                    continue;
                }
            },
        };
        seen.requests += 1;
        match exchange(c, address, path) {
            Err(e) => {
                seen.failed += 1;
                record(&mut seen.violations, format!("GET {path}: {e}"));
                conn = None;
            }
            Ok((status, header, body)) => {
                if status != 200 {
                    seen.failed += 1;
                    record(&mut seen.violations, format!("GET {path}: {status} {body}"));
                }
                if let Some(v) = check(path, header, &body, last) {
                    record(&mut seen.violations, v);
                }
                last = last.max(header);
                seen.versions.insert(header);
            }
        }
    }
    seen
}

/// At most a few of one thread's violations are kept: one is enough to fail.
fn record(violations: &mut Vec<String>, v: String) {
    if violations.len() < 10 {
        violations.push(v);
    }
}

/// What an answer must be: one version (the header's is the body's), not older than the
/// last on this connection, and nothing a rejected candidate held.
fn check(path: &str, header: u64, body: &str, last: u64) -> Option<String> {
    let json: serde_json::Value = match serde_json::from_str(body) {
        Ok(json) => json,
        Err(e) => return Some(format!("GET {path}: not JSON ({e}): {body}")),
    };
    if json["version"].as_u64() != Some(header) {
        return Some(format!("GET {path}: x-eac-version {header}, body {body}"));
    }
    if header < last {
        return Some(format!(
            "GET {path}: version {header} after {last} on one connection"
        ));
    }
    let message = json["message"].as_str().unwrap_or_default();
    if message.is_empty() || message.to_ascii_lowercase().starts_with("bad") {
        return Some(format!(
            "GET {path}: a rejected candidate's message: {body}"
        ));
    }
    if let Some(max) = json.get("max_body_bytes") {
        match max.as_u64() {
            Some(m) if (1..=MAX_BODY).contains(&m) => {}
            _ => return Some(format!("GET {path}: a rejected candidate's limits: {body}")),
        }
    }
    None
}

/// One request on a kept-alive connection: the status, the `x-eac-version`, the body.
fn exchange(
    conn: &mut BufReader<TcpStream>,
    address: SocketAddr,
    path: &str,
) -> std::io::Result<(u16, u64, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n");
    conn.get_mut().write_all(request.as_bytes())?;
    read_answer(conn)
}

/// One request on a connection of its own.
fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: bool,
) -> std::io::Result<(u16, u64, String)> {
    let s = TcpStream::connect(address)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut conn = BufReader::new(s);
    let auth = if token {
        format!("x-eac-refresh-token: {TOKEN}\r\n")
    } else {
        String::new()
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    conn.get_mut().write_all(request.as_bytes())?;
    read_answer(&mut conn)
}

fn get(address: SocketAddr, path: &str) -> std::io::Result<(u16, u64, String)> {
    request(address, "GET", path, false)
}

fn admin(address: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, u64, String)> {
    request(address, method, path, true)
}

fn status_version(address: SocketAddr) -> u64 {
    let (_, _, body) = get(address, "/_internal/eac/status").expect("GET status");
    let json: serde_json::Value = serde_json::from_str(&body).expect("status is JSON");
    json["version"].as_u64().expect("status has a version")
}

/// The kept versions and their hashes, oldest first.
fn history(address: SocketAddr) -> Vec<(u64, String)> {
    let (_, _, body) = get(address, "/_internal/eac/history").expect("GET history");
    let json: serde_json::Value = serde_json::from_str(&body).expect("history is JSON");
    let mut versions: Vec<(u64, String)> = json["versions"]
        .as_array()
        .expect("history has versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap_or(0),
                v["hash"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    versions.sort();
    versions
}

/// What is wrong with the history read after a restart, given the one before it.
fn history_gap(before: &[(u64, String)], after: &[(u64, String)]) -> Option<String> {
    let last = before.last()?;
    if !after.contains(last) {
        return Some(format!(
            "the last version before it, {last:?}, is not kept after it ({after:?})"
        ));
    }
    for pair in after.windows(2) {
        if pair[1].0 != pair[0].0 + 1 {
            return Some(format!(
                "versions {} and {} with none between",
                pair[0].0, pair[1].0
            ));
        }
    }
    None
}

/// A rollback to a kept version other than the served one.
fn rollback(address: SocketAddr, rng: &mut fastrand::Rng) {
    let Ok((200, _, body)) = get(address, "/_internal/eac/history") else {
        return;
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
        return;
    };
    let current = json["current"].as_u64();
    let kept: Vec<u64> = json["versions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v["version"].as_u64())
                .filter(|v| Some(*v) != current)
                .collect()
        })
        .unwrap_or_default();
    if kept.is_empty() {
        return;
    }
    let to = kept[rng.usize(..kept.len())];
    let _ = admin(address, "POST", &format!("/_internal/eac/rollback?to={to}"));
}

/// The versions the event stream told of.
#[derive(Default)]
struct Published {
    versions: BTreeSet<u64>,
    rejected: u64,
    connected_at: Option<Instant>,
    /// The stream missed events (it lagged or reconnected): versions cannot be checked.
    lagged: bool,
}

/// Follows `GET events` until told to stop (or the server goes).
fn follow_events(address: SocketAddr, published: &Mutex<Published>, stop: &AtomicBool) {
    let Ok(s) = TcpStream::connect(address) else {
        published.lock().unwrap().lagged = true;
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut conn = BufReader::new(s);
    let request = format!("GET /_internal/eac/events HTTP/1.1\r\nHost: {address}\r\n\r\n");
    if conn.get_mut().write_all(request.as_bytes()).is_err() {
        published.lock().unwrap().lagged = true;
        return;
    }
    published.lock().unwrap().connected_at = Some(Instant::now());
    let mut last: Option<u64> = None;
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match conn.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => break,
        }
        let Some(data) = line.trim_end().strip_prefix("data:") else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(data.trim()) else {
            continue;
        };
        let mut p = published.lock().unwrap();
        match event["type"].as_str() {
            Some("published") => {
                if let Some(v) = event["version"].as_u64() {
                    if last.is_some_and(|l| v != l + 1) {
                        p.lagged = true;
                    }
                    last = Some(v);
                    p.versions.insert(v);
                }
            }
            Some("rejected") => p.rejected += 1,
            _ => {}
        }
    }
    if !stop.load(Ordering::Relaxed) {
        published.lock().unwrap().lagged = true;
    }
}

/// One reading of the server's resources.
#[derive(Clone, Copy)]
struct Sample {
    rss: u64,
    fds: u64,
    threads: u64,
}

fn sample(pid: u32, stop: &AtomicBool) -> Vec<Sample> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(s) = read_sample(pid) {
            samples.push(s);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    samples
}

fn read_sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        rss: field("VmRSS:")? * 1024,
        fds,
        threads: field("Threads:")?,
    })
}

/// The first quarter's figures against the last quarter's.
struct Flatness {
    rss: (u64, u64),
    fds: (u64, u64),
    threads: (u64, u64),
}

impl Flatness {
    fn of(samples: &[Sample]) -> Flatness {
        let q = (samples.len() / 4).max(1);
        let (first, last) = (
            &samples[..q.min(samples.len())],
            &samples[samples.len().saturating_sub(q)..],
        );
        let median = |s: &[Sample]| {
            let mut rss: Vec<u64> = s.iter().map(|s| s.rss).collect();
            rss.sort_unstable();
            rss.get(rss.len() / 2).copied().unwrap_or(0)
        };
        let max = |s: &[Sample], f: fn(&Sample) -> u64| s.iter().map(f).max().unwrap_or(0);
        Flatness {
            rss: (median(first), median(last)),
            fds: (max(first, |s| s.fds), max(last, |s| s.fds)),
            threads: (max(first, |s| s.threads), max(last, |s| s.threads)),
        }
    }

    /// Flat: RSS within a quarter and 8 MB of the first quarter's (allocator arenas
    /// settle), descriptors and threads within a few of its highest (connections and
    /// blocking threads come and go with the faults).
    fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.rss.1 > self.rss.0 + self.rss.0 / 4 + 8_000_000 {
            v.push(format!("RSS grew: {} -> {} bytes", self.rss.0, self.rss.1));
        }
        if self.fds.1 > self.fds.0 + 8 {
            v.push(format!(
                "descriptors grew: {} -> {}",
                self.fds.0, self.fds.1
            ));
        }
        if self.threads.1 > self.threads.0 + 8 {
            v.push(format!(
                "threads grew: {} -> {}",
                self.threads.0, self.threads.1
            ));
        }
        v
    }
}

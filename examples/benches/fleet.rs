//! A fleet on one etcd: N `live_server` processes (8 by default) on one local etcd.
//!
//! 1. `etcdctl`-style puts (a plain client): from the put until all N serve the new
//!    version (their `x-eac-version`), p50 and p99.
//! 2. `live_server put --wait`: the propagation each member measures from the release
//!    record to its readers seeing the change (its fleet record), the slowest and the
//!    fastest member per put, p50 and p99; and the whole command's wall time.
//! 3. A bad put, after which no instance may have changed.
//! 4. The fleet at rest: etcd's revision must not move (no member writes).
//!
//! Across step 2 it also says where the CPU went, per put: etcd's, the members' (all
//! of them, and their context switches), and the `put` commands' (from `/proc`).
//!
//! Each member has a config folder of its own, in a folder of its own, as members on
//! separate hosts do; `--shared-config 1` gives them one folder in the temp dir, beside
//! their state dirs, as before 2026-12-06: each member then watches (by inotify) every
//! other member's reads of the folder and of its state dir, which cost 32 members more
//! than the fleet's own work (see BENCHMARKS.md).
//!
//! `cargo bench -p eac-examples --features etcd --bench fleet [-- --instances 32 --puts 100
//! --rest-secs 60 --shared-config 1]` (needs `etcd` on PATH).

#[path = "common/fleet.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Instance, PREFIX, flag, ms, percentile};
use eac_tests::APP_TOML;
use eac_tests::etcd::EtcdServer;

fn main() {
    let instances = flag("--instances", 8) as usize;
    let puts = flag("--puts", 100) as usize;
    let rest = Duration::from_secs(flag("--rest-secs", 60));
    let etcd = EtcdServer::start();
    let mut client = etcd.blocking_client(PREFIX);
    let mut put = |value: String| client.put("greeting", value);
    put(r#"{"message": "start"}"#.into());

    let shared_config = flag("--shared-config", 0) == 1;
    let folders: Vec<tempfile::TempDir> = (0..if shared_config { 1 } else { instances })
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let configs: Vec<std::path::PathBuf> = folders
        .iter()
        .map(|folder| {
            let config = match shared_config {
                true => folder.path().to_owned(),
                false => folder.path().join("config"),
            };
            std::fs::create_dir_all(&config).unwrap();
            std::fs::write(config.join("app.toml"), APP_TOML).unwrap();
            config
        })
        .collect();
    // Owner-only, as a state dir must be.
    let states: Vec<_> = (0..instances).map(|_| eac_tests::private_dir()).collect();
    let mut fleet: Vec<Instance> = states
        .iter()
        .enumerate()
        .map(|(n, s)| Instance::start(&configs[n % configs.len()], s.path(), &etcd.endpoint()))
        .collect();

    let mut latencies = Vec::with_capacity(puts);
    for i in 0..puts {
        let before: Vec<u64> = fleet.iter_mut().map(|s| s.get("/").0).collect();
        let started = Instant::now();
        put(format!(r#"{{"message": "put {i}"}}"#));
        let mut pending: Vec<usize> = (0..instances).collect();
        while !pending.is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "put {i} not served by all"
            );
            pending.retain(|&n| fleet[n].get("/").0 <= before[n]);
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "fleet: {instances} live_server on one etcd, etcdctl-style put -> all {instances} serve it, over {puts} puts: \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[latencies.len() - 1]),
    );

    // `live_server put --wait`: each member times its propagation from the release record.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let options = eac_accessor::source::EtcdOptions::new([etcd.endpoint()], PREFIX);
    let reader = runtime
        .block_on(eac_accessor::source::Etcd::connect(options))
        .expect("connect");
    let files = tempfile::tempdir().unwrap();
    let cpu_before = Usage::now();
    let (mut slowest, mut fastest, mut walls) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..puts {
        let file = files.path().join("greeting.json");
        std::fs::write(&file, format!(r#"{{"message": "released {i}"}}"#)).unwrap();
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_live_server"))
            .args(["put", "--etcd", &etcd.endpoint(), "--etcd-prefix", PREFIX])
            .args(["greeting", file.to_str().unwrap(), "--wait=10s"])
            .output()
            .expect("run live_server put");
        walls.push(started.elapsed());
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "put {i}: {stdout}");
        let view = runtime.block_on(reader.fleet_view()).expect("fleet view");
        let took: Vec<f64> = view["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["propagation"]["from"] == "release")
            .filter_map(|m| m["propagation"]["seconds"].as_f64())
            .collect();
        assert_eq!(took.len(), instances, "put {i}: {view}");
        let secs = |s: f64| Duration::from_secs_f64(s);
        slowest.push(secs(took.iter().copied().fold(0.0, f64::max)));
        fastest.push(secs(took.iter().copied().fold(f64::MAX, f64::min)));
    }
    let cpu = Usage::now().since(&cpu_before);
    for list in [&mut slowest, &mut fastest, &mut walls] {
        list.sort();
    }
    println!(
        "fleet: {instances} live_server, `live_server put --wait` x {puts}: release record -> \
         every member serving it (the slowest member's own figure): p50 {:.1} ms, p99 {:.1} ms, \
         max {:.1} ms; the fastest member: p50 {:.1} ms, p99 {:.1} ms; the command's wall \
         time (start, validate, write, wait for all ACKs): p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&slowest, 0.5)),
        ms(percentile(&slowest, 0.99)),
        ms(slowest[slowest.len() - 1]),
        ms(percentile(&fastest, 0.5)),
        ms(percentile(&fastest, 0.99)),
        ms(percentile(&walls, 0.5)),
        ms(percentile(&walls, 0.99)),
    );
    let per_put = |d: Duration| ms(d) / puts as f64;
    println!(
        "fleet: CPU per `put --wait` ({} threads per member): etcd {:.2} ms; the {instances} \
         members {:.2} ms ({:.3} ms each), {:.0} context switches each ({:.0} voluntary); the \
         `put` command {:.2} ms; load average {}",
        cpu.threads / instances.max(1) as u64,
        per_put(cpu.etcd),
        per_put(cpu.members),
        per_put(cpu.members) / instances as f64,
        (cpu.voluntary + cpu.involuntary) as f64 / (puts * instances) as f64,
        cpu.voluntary as f64 / (puts * instances) as f64,
        per_put(cpu.commands),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
    );

    // A bad put: every instance rejects it (its status names the revision), none changes.
    let before: Vec<u64> = fleet.iter_mut().map(|s| s.get("/").0).collect();
    let bad = put(r#"{"message": ""}"#.into());
    let named = format!("etcd:{PREFIX}greeting@{bad}");
    for instance in &mut fleet {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !instance.get("/_internal/eac/status").1.contains(&named) {
            assert!(Instant::now() < deadline, "bad put not rejected");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let after: Vec<u64> = fleet.iter_mut().map(|s| s.get("/").0).collect();
    let changed = after.iter().zip(&before).filter(|(a, b)| a != b).count();

    println!(
        "fleet: bad put rejected by {instances} of {instances}; instances that changed version: {changed}"
    );
    assert_eq!(changed, 0);

    // At rest: keep-alives hold the leases; nothing is written.
    let before = client.revision();
    std::thread::sleep(rest);
    let moved = client.revision() - before;
    println!(
        "fleet: {instances} live_server at rest for {} s: etcd's revision moved by {moved}",
        rest.as_secs()
    );
    assert_eq!(moved, 0, "a member at rest wrote to etcd");
    drop(fleet);
}

/// CPU time used so far by etcd, the `live_server` members and the waited-for `put`
/// commands (all children of this process), and the members' context switches and
/// threads, from `/proc`.
#[derive(Debug, Default)]
struct Usage {
    etcd: Duration,
    members: Duration,
    commands: Duration,
    voluntary: u64,
    involuntary: u64,
    threads: u64,
}

impl Usage {
    fn now() -> Usage {
        let me = std::process::id().to_string();
        let mut usage = Usage {
            // cutime + cstime: children waited for.
            commands: ticks(&stat(&me), 13, 14),
            ..Usage::default()
        };
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let fields = stat(&pid);
            if fields.get(1).map(String::as_str) != Some(me.as_str()) {
                continue;
            }
            let cpu = ticks(&fields, 11, 12);
            match fields[0].as_str() {
                "etcd" => usage.etcd += cpu,
                "live_server" => {
                    usage.members += cpu;
                    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter();
                    for task in tasks.flatten().flatten() {
                        usage.threads += 1;
                        let status = std::fs::read_to_string(task.path().join("status"));
                        for line in status.unwrap_or_default().lines() {
                            let count = |l: &str| l.trim().parse::<u64>().unwrap_or(0);
                            if let Some(n) = line.strip_prefix("voluntary_ctxt_switches:") {
                                usage.voluntary += count(n);
                            } else if let Some(n) = line.strip_prefix("nonvoluntary_ctxt_switches:")
                            {
                                usage.involuntary += count(n);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        usage
    }

    /// What was used from `before` to `self` (the threads as now).
    fn since(&self, before: &Usage) -> Usage {
        Usage {
            etcd: self.etcd.saturating_sub(before.etcd),
            members: self.members.saturating_sub(before.members),
            commands: self.commands.saturating_sub(before.commands),
            voluntary: self.voluntary.saturating_sub(before.voluntary),
            involuntary: self.involuntary.saturating_sub(before.involuntary),
            threads: self.threads,
        }
    }
}

/// `/proc/<pid>/stat` from its command name on: `[comm, ppid, …]` (the fields after the
/// state), so that field `n` of proc(5), counted from 1, is at `n - 3` but for the name.
fn stat(pid: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else {
        return vec![String::new(), String::new()];
    };
    let mut fields = vec![text[open + 1..close].to_owned()];
    fields.extend(
        text[close + 1..]
            .split_whitespace()
            .skip(1)
            .map(str::to_owned),
    );
    fields
}

/// Two clock-tick fields of [`stat`] summed (USER_HZ is 100 on Linux).
fn ticks(fields: &[String], a: usize, b: usize) -> Duration {
    let n = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((n(a) + n(b)) * 10)
}

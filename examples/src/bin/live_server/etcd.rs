//! `--etcd`: the configuration of a fleet, in an etcd prefix merged above the files and
//! below the environment. Needs the `etcd` feature of `eac-examples`.

use eac_accessor::reload::ReloadCoordinator;
use eac_accessor::{Builder, EaCAccessor};

use crate::options::Options;

/// What a build without the feature answers to `--etcd`.
#[cfg(not(feature = "etcd"))]
pub(crate) const NEEDS_FEATURE: &str = "--etcd needs the `etcd` feature, which this build lacks; run \
     `cargo run --release -p eac-examples --features etcd --bin live_server -- --etcd URL` \
     (building it needs `protoc`: `apt-get install protobuf-compiler`)";

/// The options for `endpoints` and `prefix`, with `EAC_FLEET_STALE_MS` (the fleet view's
/// stale window) and `EAC_ETCD_MAX_VALUE_BYTES` (the largest value read) from the
/// environment.
#[cfg(feature = "etcd")]
pub(crate) fn etcd_options(
    endpoints: &[String],
    prefix: &str,
) -> Result<eac_accessor::source::EtcdOptions, String> {
    let mut options = eac_accessor::source::EtcdOptions::new(endpoints, prefix);
    let mut settings = eac_accessor::settings::EnvSettings::from_env();
    if let Some(stale) = settings.millis("EAC_FLEET_STALE_MS") {
        options = options.stale_after(stale);
    }
    let bytes = |v: &str| match v.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a whole number of bytes, at least 1"),
    };
    if let Some(cap) = settings.parse("EAC_ETCD_MAX_VALUE_BYTES", bytes) {
        options = options.max_value_size(eac_accessor::source::SizeCap::bytes_exact(cap));
    }
    settings.finish(options).map_err(|e| e.to_string())
}

/// The etcd source when `--etcd` was given.
#[derive(Debug, Default)]
pub(crate) struct EtcdSource {
    #[cfg(feature = "etcd")]
    etcd: Option<eac_accessor::source::Etcd>,
    /// `--fleet-label`s, in the fleet record.
    #[cfg(feature = "etcd")]
    labels: std::collections::BTreeMap<String, String>,
}

/// The watch and the fleet record of a running server; stopped by [`Running::stop`].
#[derive(Debug, Default)]
pub(crate) struct Running {
    #[cfg(feature = "etcd")]
    tasks: Option<(
        eac_accessor::source::EtcdWatch,
        eac_accessor::fleet::FleetMember,
    )>,
}

impl EtcdSource {
    /// Connects and reads the prefix when `--etcd` was given; nothing otherwise.
    pub(crate) async fn connect(options: &Options) -> Result<EtcdSource, String> {
        if options.etcd.is_empty() {
            return Ok(EtcdSource::default());
        }
        #[cfg(feature = "etcd")]
        {
            use eac_accessor::source::{Etcd, LastGood};
            let mut etcd_options = etcd_options(&options.etcd, &options.etcd_prefix)?;
            // `--check` opens no state dir: it reads etcd or fails.
            if !options.check {
                let cache = LastGood::new(options.state_dir().join("etcd.cache"));
                etcd_options = etcd_options.cache(cache);
            }
            // As the remote's: a start that has neither the cluster nor a cache says so.
            let etcd = Etcd::connect(etcd_options).await.map_err(|e| {
                format!("cannot start: etcd cannot be read and no cache holds the prefix: {e}")
            })?;
            Ok(EtcdSource {
                etcd: Some(etcd),
                labels: options.fleet_labels.iter().cloned().collect(),
            })
        }
        #[cfg(not(feature = "etcd"))]
        Err(NEEDS_FEATURE.to_owned())
    }

    /// Adds the etcd source, if any, to `builder` (between the files and the env).
    pub(crate) fn add_to(&self, builder: Builder) -> Builder {
        #[cfg(feature = "etcd")]
        if let Some(etcd) = &self.etcd {
            return builder.source(etcd.clone());
        }
        builder
    }

    /// Watches the prefix through `reloads` and shows this instance in the fleet view
    /// as `id`.
    pub(crate) fn start(
        &self,
        reloads: &ReloadCoordinator,
        accessor: &EaCAccessor,
        id: &str,
    ) -> Running {
        #[cfg(feature = "etcd")]
        if let Some(etcd) = &self.etcd {
            tracing::info!(
                endpoints = ?etcd.options().endpoints(),
                prefix = etcd.options().prefix(),
                revision = etcd.revision(),
                id,
                "watching etcd"
            );
            return Running {
                tasks: Some((
                    etcd.watch(reloads),
                    etcd.join_fleet_with(
                        accessor,
                        id,
                        std::time::Duration::from_secs(10),
                        self.labels.clone(),
                    ),
                )),
            };
        }
        let _ = (reloads, accessor, id);
        Running::default()
    }
}

impl Running {
    /// Stops watching and leaves the fleet view (the record goes at once).
    pub(crate) async fn stop(self) {
        #[cfg(feature = "etcd")]
        if let Some((watch, member)) = self.tasks {
            watch.stop().await;
            member.leave().await;
        }
    }
}

/// This instance's name in the fleet view: host name and listen address.
pub(crate) fn instance_id(listen: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{listen}")
}

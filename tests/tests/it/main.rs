//! eac's integration tests, through the public API only (one binary, for link time).

mod canary;
mod concurrency;
mod durable;
#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "etcd")]
mod etcd_cache;
#[cfg(feature = "etcd")]
mod etcd_put;
#[cfg(feature = "etcd")]
mod etcd_release;
mod history;
mod hostile;
mod isolation;
mod metrics;
mod newcomer;
mod optional_section;
mod provenance;
mod publish;
mod redaction;
mod reject;
mod reload;
mod resolve;
mod restart;
mod secret_containers;
mod secrets;
mod sources;
mod subscribe;
mod unknown_keys;
mod watch;

use eac_accessor::{Builder, EaCAccessor, Errors, source::Dir};
use eac_tests::{ConfigDir, Features, Greeting, Limits, Upstream};

/// A builder with the four example sections and no source yet.
pub(crate) fn four_sections() -> Builder {
    EaCAccessor::builder()
        .section::<Greeting>()
        .section::<Limits>()
        .section::<Features>()
        .section::<Upstream>()
}

/// An accessor over the four example sections reading `dir`.
pub(crate) fn accessor_for(dir: &ConfigDir) -> Result<EaCAccessor, Errors> {
    four_sections().source(Dir::new(dir.path())).build()
}

use eac_accessor::EaCAccessor;
use tower_layer::Layer;

use super::EaCService;

/// A layer that pins one configuration snapshot per request and, by default, answers
/// with the version in an `x-eac-version` header.
///
/// ```
/// use eac_accessor::{EaCAccessor, source::{Format, Memory}};
/// use eac_tower::EaCLayer;
///
/// let accessor = EaCAccessor::builder()
///     .source(Memory::new("m", Format::Toml, ""))
///     .build()?;
/// let layer = EaCLayer::new(accessor); // add it to a Router or ServiceBuilder
/// # let _ = layer;
/// # Ok::<(), eac_accessor::Errors>(())
/// ```
#[derive(Debug, Clone)]
pub struct EaCLayer {
    accessor: EaCAccessor,
    version_header: bool,
    canary: bool,
}

impl EaCLayer {
    /// Pins `accessor`'s current snapshot into each request.
    pub fn new(accessor: EaCAccessor) -> Self {
        EaCLayer {
            accessor,
            version_header: true,
            canary: true,
        }
    }

    /// Whether requests take part in a running [canary](eac_accessor::canary) (default:
    /// yes): a share of them see the canary, and all of them are counted for the judge —
    /// and in a fleet's gray release, where every request is counted for the release's
    /// judge ([`EaCAccessor::meter`](eac_accessor::EaCAccessor::meter)). Turn it off for routes that are not user traffic — an admin surface, health
    /// probes — which then always see the current version and are not counted.
    pub fn canary(mut self, on: bool) -> Self {
        self.canary = on;
        self
    }

    /// Whether responses carry the `x-eac-version` header (default: yes).
    pub fn version_header(mut self, on: bool) -> Self {
        self.version_header = on;
        self
    }
}

impl<S> Layer<S> for EaCLayer {
    type Service = EaCService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let mut service = EaCService::new(inner, self.accessor.clone());
        service.version_header = self.version_header;
        service.canary = self.canary;
        service
    }
}

/// Adds [`EaCLayer`] to a `tower::ServiceBuilder` (with the `tower` crate's builder).
///
/// ```
/// use eac_accessor::{EaCAccessor, source::{Format, Memory}};
/// use eac_tower::ServiceBuilderExt;
/// use tower::ServiceBuilder;
///
/// let accessor = EaCAccessor::builder()
///     .source(Memory::new("m", Format::Toml, ""))
///     .build()?;
/// let builder = ServiceBuilder::new().pin_snapshot(accessor);
/// # let _ = builder;
/// # Ok::<(), eac_accessor::Errors>(())
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Pins one snapshot of `accessor` per request; see [`EaCLayer`].
    fn pin_snapshot(
        self,
        accessor: EaCAccessor,
    ) -> tower::ServiceBuilder<tower_layer::Stack<EaCLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for tower::ServiceBuilder<L> {
    fn pin_snapshot(
        self,
        accessor: EaCAccessor,
    ) -> tower::ServiceBuilder<tower_layer::Stack<EaCLayer, L>> {
        self.layer(EaCLayer::new(accessor))
    }
}

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

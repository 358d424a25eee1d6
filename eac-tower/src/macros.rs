//! Macros the middleware share.

/// Defines `get_ref`, `get_mut` and `into_inner` on a middleware whose inner service,
/// of type `S`, is its `inner` field (tower-http's way for its services).
macro_rules! define_inner_service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Unwraps the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

/// Defines the service of a live-bound layer: `$service<S>` holds the inner service and a
/// clone of `$layer` (whose `LiveValue` each request reads), with `new`, the accessors,
/// and `$layer`'s `Layer` impl.
#[cfg(feature = "axum")]
macro_rules! define_live_service {
    ($(#[$doc:meta])* pub struct $service:ident<S> for $layer:ident;) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $service<S> {
            inner: S,
            layer: $layer,
        }

        impl<S> $service<S> {
            /// Wraps `inner` with what `layer` describes.
            pub fn new(inner: S, layer: $layer) -> Self {
                $service { inner, layer }
            }

            define_inner_service_accessors!();
        }

        impl<S> tower_layer::Layer<S> for $layer {
            type Service = $service<S>;

            fn layer(&self, inner: S) -> Self::Service {
                $service::new(inner, self.clone())
            }
        }
    };
}

//! `EaCLayer` per-request cost against tower-http's `AddExtensionLayer` inserting an
//! `Arc` of the same snapshot, and `LiveTimeoutLayer` behind `EaCLayer`. Run: `cargo bench -p eac-tower --bench layer`.

mod fixture;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use eac_tower::{EaCLayer, LiveTimeoutLayer, PinnedSnapshot};
use tower::{Layer, ServiceBuilder, service_fn};
use tower_http::add_extension::AddExtensionLayer;

use fixture::{accessor, clock, handler, once};

fn bench(c: &mut Criterion) {
    let accessor = accessor();
    let snapshot = PinnedSnapshot(accessor.load_full());
    let mut eac = EaCLayer::new(accessor.clone()).layer(service_fn(handler));
    let mut eac_no_header = EaCLayer::new(accessor.clone())
        .version_header(false)
        .layer(service_fn(handler));
    let mut add_extension = AddExtensionLayer::new(snapshot).layer(service_fn(handler));
    let mut eac_timeout = ServiceBuilder::new()
        .layer(EaCLayer::new(accessor.clone()).version_header(false))
        .layer(LiveTimeoutLayer::new(accessor.clone(), |_| {
            Duration::from_secs(30)
        }))
        .service(service_fn(handler));
    let clock = clock();
    let _clock = clock.enter();

    let mut group = c.benchmark_group("per_request");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("eac_layer", |b| b.iter(|| once(&mut eac)));
    group.bench_function("eac_layer_no_header", |b| {
        b.iter(|| once(&mut eac_no_header))
    });
    group.bench_function("add_extension", |b| b.iter(|| once(&mut add_extension)));
    group.bench_function("eac_layer_no_header_live_timeout", |b| {
        b.iter(|| once(&mut eac_timeout))
    });
    group.finish();

    // Under `cargo test` the benches only smoke-run; the ratios need `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // Ratios measured in this run, interleaved so both see the same machine state.
    let time = |service: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..200_000 {
            service();
        }
        start.elapsed().as_secs_f64()
    };
    let (mut a, mut b, mut n) = (0.0, 0.0, 0.0);
    for _ in 0..5 {
        a += time(&mut || once(&mut eac_no_header));
        b += time(&mut || once(&mut add_extension));
        n += time(&mut || once(&mut eac));
    }
    println!(
        "ratio eac_layer_no_header/add_extension = {:.3} (target <= 1.1)",
        a / b
    );
    println!("ratio eac_layer_with_header/add_extension = {:.3}", n / b);
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! `EaCLayer` per-request cost against tower-http's `AddExtensionLayer` inserting an
//! `Arc` of the same snapshot. Run: `cargo bench -p eac-tower --bench layer`.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use eac_accessor::EaCAccessor;
use eac_accessor::source::{Format, Memory};
use eac_tower::{EaCLayer, PinnedSnapshot};
use futures_util::FutureExt;
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_http::add_extension::AddExtensionLayer;

fn accessor() -> EaCAccessor {
    let doc = "[greeting]\nmessage = \"hello\"\n[limits]\nmax_body_bytes = 1048576\n";
    // No section is read: the layer pins whatever is published.
    EaCAccessor::builder()
        .source(Memory::new("bench", Format::Toml, doc))
        .allow_unknown_keys(true)
        .build()
        .expect("valid")
}

async fn handler(request: Request<()>) -> Result<Response<()>, Infallible> {
    black_box(request.extensions().get::<PinnedSnapshot>());
    Ok(Response::new(()))
}

/// One request through `service`, polled to completion without a runtime (all ready).
fn once<S>(service: &mut S)
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    let ready = service.ready().now_or_never().expect("ready").expect("ok");
    let response = ready.call(Request::new(())).now_or_never().expect("done");
    black_box(response.expect("ok"));
}

fn bench(c: &mut Criterion) {
    let accessor = accessor();
    let snapshot = PinnedSnapshot(accessor.load_full());
    let mut eac = EaCLayer::new(accessor.clone()).layer(service_fn(handler));
    let mut eac_no_header = EaCLayer::new(accessor.clone())
        .version_header(false)
        .layer(service_fn(handler));
    let mut add_extension = AddExtensionLayer::new(snapshot).layer(service_fn(handler));

    let mut group = c.benchmark_group("per_request");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("eac_layer", |b| b.iter(|| once(&mut eac)));
    group.bench_function("eac_layer_no_header", |b| {
        b.iter(|| once(&mut eac_no_header))
    });
    group.bench_function("add_extension", |b| b.iter(|| once(&mut add_extension)));
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

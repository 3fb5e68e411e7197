//! Micro-benchmarks of the per-event work that does not touch a module: building the shared
//! JSON-RPC payload, building a raised event, and finding an event and its subscribers.
//!
//! `cargo bench -p evi-host --bench micro` (criterion; `-- --quick` for a short run).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use evi_abi::{EviParam, EviStr, EviValue};
use evi_host::event::RaisedEvent;
use evi_host::registry::Registry;
use evi_host::{ParamRef, ValueRef};

// As in the evid binary.
#[global_allocator]
static ALLOC: evi_host::alloc::MiMalloc = evi_host::alloc::MiMalloc;

/// The bench loop's event: three named params (reference §3.6), as OpenSIPS raises it.
fn bench_params() -> [ParamRef<'static>; 3] {
    [
        ParamRef::named("caller", ValueRef::Str(b"sip:alice@example.com")),
        ParamRef::named("duration", ValueRef::Int(1234)),
        ParamRef::named("reason", ValueRef::Str(b"normal \"clearing\"\n")),
    ]
}

fn payload(c: &mut Criterion) {
    let mut g = c.benchmark_group("payload");
    g.throughput(Throughput::Elements(1));
    let abi: Vec<EviParam> = vec![
        EviParam {
            name: EviStr::from_static("caller"),
            value: EviValue::str(EviStr::from_static("sip:alice@example.com")),
        },
        EviParam {
            name: EviStr::from_static("duration"),
            value: EviValue::int(1234),
        },
        EviParam {
            name: EviStr::from_static("reason"),
            value: EviValue::str(EviStr::from_static("normal \"clearing\"\n")),
        },
    ];
    g.bench_function("notification/3 named params", |b| {
        b.iter(|| evi_abi::payload::notification(black_box("E_BENCH"), black_box(&abi), None))
    });
    let many: Vec<EviParam> = (0..16)
        .map(|_| EviParam {
            name: EviStr::EMPTY,
            value: EviValue::str(EviStr::from_static("a value with a \\ and a \" to escape")),
        })
        .collect();
    g.bench_function("notification/16 positional escaped", |b| {
        b.iter(|| evi_abi::payload::notification(black_box("E_BENCH"), black_box(&many), None))
    });
    let params = bench_params();
    g.bench_function("raised event/build (shared)", |b| {
        b.iter(|| RaisedEvent::shared(1, "E_BENCH", black_box(&params), 0, 0))
    });
    g.bench_function("raised event/build + json", |b| {
        b.iter(|| {
            let ev = RaisedEvent::shared(1, "E_BENCH", black_box(&params), 0, 0);
            black_box(ev.json().len())
        })
    });
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let reg = Registry::default();
    for i in 0..1000 {
        let _ = reg.publish(&format!("E_EVENT_{i}"));
    }
    let id = reg.lookup("E_EVENT_500").unwrap_or_default();
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    g.bench_function("event by name (1000 events)", |b| {
        b.iter(|| reg.lookup(black_box("E_EVENT_500")))
    });
    g.bench_function("subscribers snapshot by id", |b| {
        b.iter(|| {
            reg.get(black_box(id))
                .map(|e| e.subscribers.load().len())
                .unwrap_or_default()
        })
    });
    g.finish();
}

criterion_group!(benches, payload, lookup);
criterion_main!(benches);

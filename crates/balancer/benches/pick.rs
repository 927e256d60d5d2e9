//! Cost of one pick (choose an instance, claim it, release the claim) over a steady set of 3 and
//! of 30 instances, for both strategies: the work the gateway and the clients add to every request.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use keel_balancer::{Balancer, BalancerConfig, Strategy};
use keel_registry::{Instances, ServiceInstance};

fn instances(count: u16) -> Instances {
    (0..count)
        .map(|n| ServiceInstance::new("bench", format!("bench-{n}"), "10.0.0.1").with_port("http", 8000 + n))
        .collect::<Vec<_>>()
        .into()
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for strategy in [Strategy::PowerOfTwoChoices, Strategy::RoundRobin] {
        for count in [3, 30] {
            let (_publish, watch) = tokio::sync::watch::channel(instances(count));
            let config = BalancerConfig {
                strategy,
                ..BalancerConfig::default()
            };
            let balancer = Arc::new(Balancer::builder("bench", watch, "http").config(&config).build());
            let name = format!("{strategy:?}");
            group.bench_with_input(BenchmarkId::new(name, count), &balancer, |b, balancer| {
                b.iter(|| balancer.pick());
            });
        }
    }
    group.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);

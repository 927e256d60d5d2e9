//! The balancer's behaviour as a caller sees it: which instance each pick gets as load, failures,
//! time and the registry's set change.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_registry::{Instances, ServiceInstance, ServiceRegistry, StaticRegistry};
use tokio::sync::watch;

use crate::{Balancer, BalancerConfig, Random, Strategy};

fn instance(id: &str, port: u16) -> ServiceInstance {
    ServiceInstance::new("things", id, "127.0.0.1").with_port("http", port)
}

fn set(instances: &[ServiceInstance]) -> Instances {
    instances.to_vec().into()
}

/// A balancer over a set the test publishes itself, and the publisher.
fn over(strategy: Strategy, instances: &[ServiceInstance]) -> (Balancer, watch::Sender<Instances>) {
    let (publish, watch) = watch::channel(set(instances));
    let config = BalancerConfig {
        strategy,
        ..BalancerConfig::default()
    };
    (
        Balancer::builder("things", watch, "http").config(&config).build(),
        publish,
    )
}

fn ids(balancer: &Balancer, picks: usize) -> Vec<String> {
    (0..picks)
        .map(|_| {
            balancer
                .pick()
                .map(|p| p.instance_id().to_owned())
                .unwrap_or_default()
        })
        .collect()
}

/// Answers from a script, then from the start of it again.
struct Scripted {
    answers: Vec<usize>,
    next: Mutex<usize>,
}

impl Random for Scripted {
    fn below(&self, bound: usize) -> usize {
        let mut next = self.next.lock().unwrap();
        let answer = self.answers[*next % self.answers.len()];
        *next += 1;
        answer % bound
    }
}

#[test]
fn round_robin_rotates_over_the_instances_in_order() {
    let (balancer, _publish) = over(
        Strategy::RoundRobin,
        &[instance("a", 1), instance("b", 2), instance("c", 3)],
    );
    assert_eq!(ids(&balancer, 7), ["a", "b", "c", "a", "b", "c", "a"]);
}

#[test]
fn power_of_two_choices_prefers_the_instance_with_fewer_requests_in_flight() {
    let instances = [instance("a", 1), instance("b", 2), instance("c", 3)];
    let (balancer, _publish) = over(Strategy::PowerOfTwoChoices, &instances);
    let busy = balancer.pick().unwrap();
    let held = busy.instance_id().to_owned();
    // Whatever two candidates are drawn, the busy one loses to either other.
    let picked = ids(&balancer, 200);
    assert!(
        picked.iter().all(|id| *id != held),
        "{held} picked while busy: {picked:?}"
    );
    assert!(
        picked.iter().any(|id| *id != picked[0]),
        "both idle ones are used: {picked:?}"
    );

    // Two instances: both are always the candidates, so the counts decide.
    let (balancer, _publish) = balancer_of_two();
    let first = balancer.pick().unwrap();
    let second = balancer.pick().unwrap();
    assert_ne!(first.instance_id(), second.instance_id(), "a tie alternates");
    let third = balancer.pick().unwrap();
    assert_eq!(
        third.instance_id(),
        first.instance_id(),
        "1 in flight each: the less recent"
    );
    // Now 2 in flight on one, 1 on the other.
    assert!(ids(&balancer, 20).iter().all(|id| id == second.instance_id()));
    drop((first, third));
    assert!(ids(&balancer, 20).iter().all(|id| id != second.instance_id()));
}

fn balancer_of_two() -> (Balancer, watch::Sender<Instances>) {
    over(Strategy::PowerOfTwoChoices, &[instance("a", 1), instance("b", 2)])
}

#[test]
fn power_of_two_choices_compares_the_two_drawn_candidates_only() {
    let (publish, watch) = watch::channel(set(&[instance("a", 1), instance("b", 2), instance("c", 3)]));
    // Draws (0, 2): "a" against "c", every time.
    let scripted = Scripted {
        answers: vec![0, 1],
        next: Mutex::new(0),
    };
    let balancer = Balancer::builder("things", watch, "http")
        .random(Arc::new(scripted))
        .build();
    let a = balancer.pick().unwrap();
    assert_eq!(
        a.instance_id(),
        "a",
        "a tie between never-picked goes to the first drawn"
    );
    assert_eq!(ids(&balancer, 3), ["c", "c", "c"], "b, idle, is never drawn");
    drop((a, publish));
}

#[tokio::test(start_paused = true)]
async fn a_failed_instance_is_ejected_for_the_configured_time_then_comes_back() {
    for strategy in [Strategy::PowerOfTwoChoices, Strategy::RoundRobin] {
        let (balancer, _publish) = over(strategy, &[instance("a", 1), instance("b", 2)]);
        let first = balancer.pick().unwrap();
        let failed = first.instance_id().to_owned();
        first.failed();
        drop(first);
        assert!(ids(&balancer, 20).iter().all(|id| *id != failed), "{strategy:?}");

        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(ids(&balancer, 20).iter().all(|id| *id != failed), "{strategy:?}");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(
            ids(&balancer, 4).contains(&failed),
            "{strategy:?}: back after 10 s"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn repeated_ejections_double_and_a_success_resets_them() {
    let (balancer, _publish) = over(Strategy::RoundRobin, &[instance("a", 1), instance("b", 2)]);
    let is_out = |id: &str| ids(&balancer, 6).iter().all(|picked| picked != id);
    let fail_a = || {
        let pick = (0..2)
            .filter_map(|_| balancer.pick())
            .find(|p| p.instance_id() == "a")
            .unwrap();
        pick.failed();
    };
    fail_a();
    tokio::time::advance(Duration::from_secs(10)).await;
    fail_a(); // second ejection in a row: 20 s
    tokio::time::advance(Duration::from_secs(19)).await;
    assert!(is_out("a"));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(!is_out("a"));

    let pick = (0..2)
        .filter_map(|_| balancer.pick())
        .find(|p| p.instance_id() == "a")
        .unwrap();
    pick.succeeded();
    drop(pick);
    fail_a(); // after a success: 10 s again
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(!is_out("a"));
}

#[tokio::test(start_paused = true)]
async fn when_every_instance_is_ejected_they_are_still_picked() {
    let (balancer, _publish) = balancer_of_two();
    for _ in 0..2 {
        let pick = balancer.pick().unwrap();
        pick.failed();
    }
    let picked = ids(&balancer, 10);
    assert!(picked.iter().all(|id| id == "a" || id == "b"), "{picked:?}");
    assert!(
        picked.contains(&"a".into()) && picked.contains(&"b".into()),
        "{picked:?}"
    );
}

#[tokio::test]
async fn a_deregistered_instance_is_never_picked_after_the_watch_publishes_its_removal() {
    let registry = StaticRegistry::new();
    let _ = registry.register(instance("a", 1)).await.unwrap();
    let _ = registry.register(instance("b", 2)).await.unwrap();
    let balancer = Balancer::builder("things", registry.watch("things").await.unwrap(), "http").build();
    assert!(ids(&balancer, 4).contains(&"b".into()));
    let held = balancer.pick();

    registry.deregister("things", "b").await.unwrap();
    assert!(ids(&balancer, 50).iter().all(|id| id == "a"));
    assert_eq!(balancer.instance_count(), 1);
    drop(held); // a pick of a removed instance ends harmlessly
}

#[test]
fn an_empty_set_or_instances_without_the_port_pick_nothing() {
    for strategy in [Strategy::PowerOfTwoChoices, Strategy::RoundRobin] {
        let (balancer, publish) = over(strategy, &[]);
        assert!(balancer.pick().is_none());
        let grpc_only = ServiceInstance::new("things", "g", "127.0.0.1").with_port("grpc", 9);
        publish.send(set(std::slice::from_ref(&grpc_only))).unwrap();
        assert!(balancer.pick().is_none());
        assert_eq!(balancer.instance_count(), 0);
        publish.send(set(&[grpc_only, instance("a", 1)])).unwrap();
        assert_eq!(ids(&balancer, 3), ["a", "a", "a"]);
    }
}

#[tokio::test(start_paused = true)]
async fn an_instance_keeps_its_record_while_it_stays_and_starts_clean_when_it_comes_back() {
    let (balancer, publish) = over(Strategy::RoundRobin, &[instance("a", 1), instance("b", 2)]);
    let pick = balancer.pick().unwrap();
    assert_eq!(pick.instance_id(), "a");
    pick.failed();
    drop(pick);

    publish
        .send(set(&[instance("a", 1), instance("b", 2), instance("c", 3)]))
        .unwrap();
    assert!(ids(&balancer, 9).iter().all(|id| id != "a"), "still ejected");

    publish.send(set(&[instance("b", 2), instance("c", 3)])).unwrap();
    assert!(ids(&balancer, 4).iter().all(|id| id != "a"));
    publish.send(set(&[instance("a", 1), instance("b", 2)])).unwrap();
    assert!(
        ids(&balancer, 4).contains(&"a".into()),
        "left and came back: clean record"
    );
}

#[test]
fn the_payload_is_made_once_per_instance_and_an_instance_without_one_is_left_out() {
    let made = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&made);
    let (publish, watch) = watch::channel(set(&[instance("a", 1), instance("bad", 2)]));
    let balancer = Balancer::builder("things", watch, "http").build_with(move |instance, endpoint| {
        counter.fetch_add(1, Ordering::Relaxed);
        (instance.id != "bad").then(|| format!("channel to {endpoint}"))
    });
    let pick = balancer.pick().unwrap();
    assert_eq!(pick.payload(), "channel to 127.0.0.1:1");
    publish
        .send(set(&[instance("a", 1), instance("bad", 2), instance("c", 3)]))
        .unwrap();
    assert_eq!(balancer.instance_count(), 2);
    // "a" kept its payload; "bad" was asked again (the set changed), "c" once.
    assert_eq!(made.load(Ordering::Relaxed), 4);
    // An address change is a new instance.
    publish.send(set(&[instance("a", 7)])).unwrap();
    assert_eq!(balancer.pick().unwrap().payload(), "channel to 127.0.0.1:7");
}

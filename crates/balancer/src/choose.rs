//! The strategies: which member of the current set the next pick gets.
//!
//! Why a module of its own: this is the per-request arithmetic, kept free of locks, allocation and
//! clock reads on the common path (no member ejected), and apart from the bookkeeping of sets.
//!
//! Ejected members are skipped while at least one member is not ejected. When every member is
//! ejected, the pick is made among all of them as if none were: an ejection is this process's
//! guess from its own failures, while the registry still lists the instances as healthy, and
//! refusing every request would turn a partial outage into a total one. The callers' other
//! defences (deadlines, the gRPC clients' circuit breaker, the gateway's fast 502) bound the cost
//! of trying an instance that really is down.

use std::sync::Arc;

use crate::member::{LazyNow, Member};
use crate::random::{Random, two_distinct};

/// Power of two choices: the index of the less loaded of two distinct random members that may be
/// picked; `None` for an empty set.
pub(crate) fn power_of_two<T>(
    members: &[Arc<Member<T>>],
    random: &dyn Random,
    now: &mut LazyNow,
) -> Option<usize> {
    match members.len() {
        0 => return None,
        1 => return Some(0),
        _ => {}
    }
    // Common path: neither candidate carries an ejection mark, so both may be picked. Drawing
    // from all members and falling back below only when a candidate is marked still draws every
    // pair of available members with equal probability.
    let (a, b) = two_distinct(random, members.len());
    if !members[a].health.is_marked() && !members[b].health.is_marked() {
        return Some(less_loaded(members, a, b));
    }
    let eligible = eligible(members, now);
    match eligible.len() {
        0 => None,
        1 => Some(eligible[0]),
        count => {
            let (x, y) = two_distinct(random, count);
            Some(less_loaded(members, eligible[x], eligible[y]))
        }
    }
}

/// Round robin: the member at `cursor` (modulo the set's size), or the next one after it that may
/// be picked; `None` for an empty set.
pub(crate) fn round_robin<T>(members: &[Arc<Member<T>>], cursor: u64, now: &mut LazyNow) -> Option<usize> {
    let count = members.len();
    if count == 0 {
        return None;
    }
    // The remainder is below `count`, a usize, so the conversion cannot fail.
    let start = usize::try_from(cursor % count as u64).unwrap_or_default();
    let available = (0..count)
        .map(|offset| (start + offset) % count)
        .find(|&index| members[index].health.is_available(now));
    Some(available.unwrap_or(start))
}

/// Of members `a` and `b`, the one with fewer requests in flight; on a tie, the one picked less
/// recently, so that an idle caller alternates rather than repeats.
fn less_loaded<T>(members: &[Arc<Member<T>>], a: usize, b: usize) -> usize {
    let (left, right) = (&members[a].health, &members[b].health);
    match left.in_flight().cmp(&right.in_flight()) {
        std::cmp::Ordering::Less => a,
        std::cmp::Ordering::Greater => b,
        std::cmp::Ordering::Equal if left.last_pick() <= right.last_pick() => a,
        std::cmp::Ordering::Equal => b,
    }
}

/// The indexes of the members that may be picked: those not ejected, or all when every one is.
fn eligible<T>(members: &[Arc<Member<T>>], now: &mut LazyNow) -> Vec<usize> {
    let available: Vec<usize> = (0..members.len())
        .filter(|&index| members[index].health.is_available(now))
        .collect();
    match available.is_empty() {
        true => (0..members.len()).collect(),
        false => available,
    }
}

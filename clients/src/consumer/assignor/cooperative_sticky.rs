//! The cooperative-sticky assignor.
//!
//! 1. Each partition stays with its current owner if the owner still
//!    subscribes to the topic (the highest generation wins a double claim).
//! 2. Balance: with `P` partitions and `M` members, `P % M` members may
//!    keep `ceil(P/M)`, the others `floor(P/M)`; the most loaded keep the
//!    larger quota. Extras are taken away, and in this round given to
//!    nobody: the owner revokes them and rejoins, and the next round hands
//!    them out. That is the cooperative rule: no partition is ever owned
//!    by two members.
//! 3. Partitions that nobody owned go to the least loaded subscriber.
//!
//! The balance assumes members share the same subscription (the common
//! case for a processing-node group); with different subscriptions it still
//! assigns every partition to a subscriber, just less evenly.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Member;
use crate::TopicPartition;

/// Computes the next assignment.
pub fn assign(
    members: &[Member],
    partitions: &HashMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = members
        .iter()
        .map(|m| (m.id.clone(), BTreeSet::new()))
        .collect();
    // Every partition of every subscribed topic.
    let mut all: BTreeSet<TopicPartition> = BTreeSet::new();
    for m in members {
        for t in &m.topics {
            if let Some(&n) = partitions.get(t) {
                all.extend((0..n).map(|p| TopicPartition::new(t.clone(), p)));
            }
        }
    }
    // 1. Keep valid ownership (highest generation wins).
    let mut owner: HashMap<TopicPartition, (&str, i32)> = HashMap::new();
    for m in members {
        for tp in &m.owned {
            if !all.contains(tp) || !m.topics.contains(&tp.topic) {
                continue;
            }
            let better = owner.get(tp).is_none_or(|(_, g)| m.generation > *g);
            if better {
                owner.insert(tp.clone(), (m.id.as_str(), m.generation));
            }
        }
    }
    for (tp, (id, _)) in &owner {
        if let Some(s) = out.get_mut(*id) {
            s.insert(tp.clone());
        }
    }
    // 2. Balance by taking extras away (revoked this round).
    let active: Vec<&Member> = members.iter().filter(|m| !m.topics.is_empty()).collect();
    let mut revoked: BTreeSet<TopicPartition> = BTreeSet::new();
    if !active.is_empty() {
        let p = all.len();
        let m = active.len();
        let (floor, mut at_ceil) = (p / m, p % m);
        let mut by_load: Vec<&Member> = active.clone();
        by_load.sort_by(|a, b| {
            out[&b.id]
                .len()
                .cmp(&out[&a.id].len())
                .then(a.id.cmp(&b.id))
        });
        for mem in by_load {
            let quota = if at_ceil > 0 {
                at_ceil -= 1;
                floor + 1
            } else {
                floor
            };
            if let Some(set) = out.get_mut(&mem.id) {
                while set.len() > quota {
                    // Give up the highest-numbered partitions first.
                    if let Some(tp) = set.iter().next_back().cloned() {
                        set.remove(&tp);
                        revoked.insert(tp);
                    }
                }
            }
        }
    }
    // 3. Unowned partitions to the least loaded subscriber.
    let owned_now: BTreeSet<TopicPartition> = out.values().flatten().cloned().collect();
    for tp in all
        .iter()
        .filter(|tp| !owned_now.contains(tp) && !revoked.contains(tp))
    {
        let target = members
            .iter()
            .filter(|m| m.topics.contains(&tp.topic))
            .min_by(|a, b| {
                out[&a.id]
                    .len()
                    .cmp(&out[&b.id].len())
                    .then(a.id.cmp(&b.id))
            });
        if let Some(t) = target {
            if let Some(s) = out.get_mut(&t.id) {
                s.insert(tp.clone());
            }
        }
    }
    out.into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, owned: &[i32], generation: i32) -> Member {
        Member {
            id: id.into(),
            topics: vec!["t".into()],
            owned: owned.iter().map(|p| TopicPartition::new("t", *p)).collect(),
            generation,
        }
    }

    fn parts(n: i32) -> HashMap<String, i32> {
        [("t".to_owned(), n)].into()
    }

    fn ids(v: &[TopicPartition]) -> Vec<i32> {
        v.iter().map(|tp| tp.partition).collect()
    }

    #[test]
    fn first_assignment_spreads_everything() {
        let a = assign(&[m("a", &[], -1), m("b", &[], -1)], &parts(5));
        assert_eq!(a["a"].len() + a["b"].len(), 5);
        assert!(a["a"].len().abs_diff(a["b"].len()) <= 1);
    }

    #[test]
    fn joining_member_gets_partitions_in_two_rounds_without_overlap() {
        // Round 1: a owns everything, b joins: a must give some up, and b
        // gets nothing a still owns.
        let r1 = assign(&[m("a", &[0, 1, 2, 3], 1), m("b", &[], -1)], &parts(4));
        assert_eq!(ids(&r1["a"]), vec![0, 1], "a keeps its quota");
        assert!(
            r1["b"].is_empty(),
            "revoked partitions are not handed out yet"
        );
        // Round 2: a revoked 2 and 3; now they go to b.
        let r2 = assign(&[m("a", &ids(&r1["a"]), 2), m("b", &[], -1)], &parts(4));
        assert_eq!(ids(&r2["a"]), vec![0, 1]);
        assert_eq!(ids(&r2["b"]), vec![2, 3]);
    }

    #[test]
    fn leaving_member_partitions_move_at_once_and_owners_are_sticky() {
        let r = assign(&[m("a", &[0, 2], 3), m("c", &[4, 5], 3)], &parts(6));
        // b left owning 1 and 3: they are unowned, so assigned immediately.
        assert_eq!(r["a"].len() + r["c"].len(), 6);
        for p in [0, 2] {
            assert!(ids(&r["a"]).contains(&p), "a keeps {p}");
        }
        for p in [4, 5] {
            assert!(ids(&r["c"]).contains(&p), "c keeps {p}");
        }
    }

    #[test]
    fn double_claims_go_to_the_newest_generation() {
        let r = assign(&[m("a", &[0], 1), m("b", &[0], 2)], &parts(2));
        assert_eq!(ids(&r["b"]), vec![0]);
        assert_eq!(ids(&r["a"]), vec![1]);
    }
}

//! The range assignor: per topic, members (sorted by id) take consecutive
//! ranges of partitions; the first `partitions % members` get one extra.

use std::collections::{BTreeMap, HashMap};

use super::Member;
use crate::TopicPartition;

/// Assigns every partition of every subscribed topic.
pub fn assign(
    members: &[Member],
    partitions: &HashMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, Vec<TopicPartition>> =
        members.iter().map(|m| (m.id.clone(), Vec::new())).collect();
    let mut topics: Vec<&String> = members.iter().flat_map(|m| m.topics.iter()).collect();
    topics.sort();
    topics.dedup();
    for topic in topics {
        let Some(&n) = partitions.get(topic) else {
            continue;
        };
        let mut subs: Vec<&Member> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .collect();
        subs.sort_by(|a, b| a.id.cmp(&b.id));
        let c = i32::try_from(subs.len()).unwrap_or(i32::MAX);
        if c == 0 || n <= 0 {
            continue;
        }
        let (per, extra) = (n / c, n % c);
        let mut start = 0;
        for (i, m) in subs.iter().enumerate() {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            let len = per + i32::from(i < extra);
            if let Some(v) = out.get_mut(&m.id) {
                v.extend((start..start + len).map(|p| TopicPartition::new(topic.clone(), p)));
            }
            start += len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, topics: &[&str]) -> Member {
        Member {
            id: id.into(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            owned: vec![],
            generation: -1,
        }
    }

    #[test]
    fn ranges_per_topic_with_extras_first() {
        let parts: HashMap<String, i32> = [("t".to_owned(), 5), ("u".to_owned(), 2)].into();
        let a = assign(
            &[m("b", &["t", "u"]), m("a", &["t"]), m("c", &["t", "u"])],
            &parts,
        );
        let ps = |id: &str| a[id].iter().map(|tp| format!("{tp}")).collect::<Vec<_>>();
        assert_eq!(ps("a"), vec!["t/0", "t/1"]);
        assert_eq!(ps("b"), vec!["t/2", "t/3", "u/0"]);
        assert_eq!(ps("c"), vec!["t/4", "u/1"]);
    }

    #[test]
    fn more_members_than_partitions_and_unknown_topics() {
        let parts: HashMap<String, i32> = [("t".to_owned(), 1)].into();
        let a = assign(&[m("a", &["t", "gone"]), m("b", &["t"])], &parts);
        assert_eq!(a["a"], vec![TopicPartition::new("t", 0)]);
        assert!(a["b"].is_empty());
    }
}

//! Assignor protocol selection.
//!
//! The coordinator never looks inside a protocol's metadata; it only picks the
//! protocol name the whole group will use. As in Kafka: only protocols every
//! member supports are candidates, each member votes for the first candidate in
//! its own preference order, and the candidate with most votes wins. Ties go to
//! the protocol the first list (the leader's) prefers, so the choice is
//! deterministic.

use bytes::Bytes;

/// One assignor a member offers in JoinGroup: its name and opaque metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Protocol {
    pub(super) name: String,
    pub(super) metadata: Bytes,
}

/// Picks the protocol for a group whose members offer `preferences` (each in
/// the member's preference order, leader first). `None` when no protocol is
/// common to all members or there are no members.
pub(super) fn select_protocol(preferences: &[&[Protocol]]) -> Option<String> {
    let first = preferences.first()?;
    let mut candidates: Vec<&str> = Vec::new();
    for protocol in first.iter() {
        let name = protocol.name.as_str();
        let everyone = preferences
            .iter()
            .all(|member| member.iter().any(|p| p.name == name));
        if everyone && !candidates.contains(&name) {
            candidates.push(name);
        }
    }
    if candidates.is_empty() {
        return None;
    }
    let mut votes = vec![0usize; candidates.len()];
    for member in preferences {
        let choice = member
            .iter()
            .find_map(|p| candidates.iter().position(|c| *c == p.name));
        if let Some(index) = choice {
            votes[index] += 1;
        }
    }
    let mut best = 0;
    for (index, count) in votes.iter().enumerate() {
        if *count > votes[best] {
            best = index;
        }
    }
    Some(candidates[best].to_owned())
}

#[cfg(test)]
mod tests {
    use super::{select_protocol, Protocol};
    use bytes::Bytes;

    fn offers(names: &[&str]) -> Vec<Protocol> {
        names
            .iter()
            .map(|n| Protocol {
                name: (*n).to_owned(),
                metadata: Bytes::from(n.as_bytes().to_vec()),
            })
            .collect()
    }

    #[test]
    fn majority_preference_wins() {
        let a = offers(&["range", "roundrobin"]);
        let b = offers(&["roundrobin", "range"]);
        let c = offers(&["roundrobin", "range"]);
        assert_eq!(
            select_protocol(&[&a, &b, &c]).as_deref(),
            Some("roundrobin")
        );
    }

    #[test]
    fn only_common_protocols_are_candidates() {
        let a = offers(&["cooperative-sticky", "range"]);
        let b = offers(&["range"]);
        assert_eq!(select_protocol(&[&a, &b]).as_deref(), Some("range"));
    }

    #[test]
    fn tie_goes_to_the_first_members_preference() {
        let a = offers(&["range", "roundrobin"]);
        let b = offers(&["roundrobin", "range"]);
        assert_eq!(select_protocol(&[&a, &b]).as_deref(), Some("range"));
        assert_eq!(select_protocol(&[&b, &a]).as_deref(), Some("roundrobin"));
    }

    #[test]
    fn no_common_protocol_or_no_member_gives_none() {
        let a = offers(&["range"]);
        let b = offers(&["sticky"]);
        assert_eq!(select_protocol(&[&a, &b]), None);
        assert_eq!(select_protocol(&[]), None);
        let empty = offers(&[]);
        assert_eq!(select_protocol(&[&empty]), None);
    }

    #[test]
    fn duplicate_names_in_one_offer_count_once() {
        let a = offers(&["range", "range", "roundrobin"]);
        let b = offers(&["roundrobin"]);
        assert_eq!(select_protocol(&[&a, &b]).as_deref(), Some("roundrobin"));
    }
}

//! Property tests of the offset translator: random interleavings of data and control entries,
//! conflicting-suffix truncations, compactions (retention) and restarts that lose a torn tail
//! of data batches. After every operation the translator must agree with a plain model, and
//! consumers must see dense Kafka offsets: data entries tile `[start, end)` without gaps and
//! control entries occupy no offset.

// Test helpers outside #[test] functions unwrap too: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use proptest::prelude::*;
use starlog_replication::eraftpb::EntryType;
use starlog_replication::{BatchSpan, ControlEntry, EntryLocation, OffsetTranslator};

#[derive(Debug, Clone)]
enum Op {
    Data { records: i64, bump: bool },
    Control { bump: bool },
    Truncate { at: f64 },
    Compact { at: f64 },
    Restart { lose: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1i64..5, any::<bool>()).prop_map(|(records, bump)| Op::Data { records, bump }),
        2 => any::<bool>().prop_map(|bump| Op::Control { bump }),
        1 => (0.0f64..1.0).prop_map(|at| Op::Truncate { at }),
        1 => (0.0f64..1.0).prop_map(|at| Op::Compact { at }),
        1 => (0usize..4).prop_map(|lose| Op::Restart { lose }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum M {
    Control(u64),
    Data(u64, i64),
}

/// The model: entries from `first`, the term before them and the offset they start at.
#[derive(Debug, Clone)]
struct Model {
    first: u64,
    prev_term: u64,
    start: i64,
    entries: Vec<M>,
    term: u64,
}

impl Model {
    fn term_of(m: &M) -> u64 {
        match *m {
            M::Control(t) | M::Data(t, _) => t,
        }
    }

    fn last(&self) -> u64 {
        self.first + self.entries.len() as u64 - 1
    }

    fn control(index: u64, term: u64) -> ControlEntry {
        ControlEntry {
            index,
            term,
            entry_type: EntryType::EntryNormal,
            data: Bytes::new(),
            context: Bytes::new(),
        }
    }

    /// (index, span) of every data entry.
    fn spans(&self) -> Vec<(u64, BatchSpan)> {
        let mut out = Vec::new();
        let mut off = self.start;
        for (i, m) in self.entries.iter().enumerate() {
            if let M::Data(term, n) = *m {
                out.push((
                    self.first + i as u64,
                    BatchSpan {
                        base_offset: off,
                        next_offset: off + n,
                        term,
                    },
                ));
                off += n;
            }
        }
        out
    }

    fn controls(&self) -> Vec<ControlEntry> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match *m {
                M::Control(t) => Some(Self::control(self.first + i as u64, t)),
                M::Data(..) => None,
            })
            .collect()
    }
}

fn check(t: &OffsetTranslator, m: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(t.first_index(), m.first);
    prop_assert_eq!(t.last_index(), m.last());
    prop_assert_eq!(t.start_offset(), m.start);
    prop_assert_eq!(t.term(m.first - 1), Some(m.prev_term));
    let spans = m.spans();
    let mut expected_offset = m.start;
    let mut spans_iter = spans.iter().peekable();
    for (i, e) in m.entries.iter().enumerate() {
        let index = m.first + i as u64;
        prop_assert_eq!(t.term(index), Some(Model::term_of(e)));
        match (*e, t.locate(index)) {
            (M::Control(term), Some(EntryLocation::Control(c))) => {
                prop_assert_eq!(c.term, term);
                prop_assert_eq!(c.index, index);
            }
            (M::Data(..), Some(EntryLocation::Data(span))) => {
                let (mi, ms) = spans_iter.next().unwrap();
                prop_assert_eq!(*mi, index);
                prop_assert_eq!(span, *ms);
                // Dense offsets: each batch starts where the previous one ended.
                prop_assert_eq!(span.base_offset, expected_offset);
                expected_offset = span.next_offset;
                for o in span.base_offset..span.next_offset {
                    prop_assert_eq!(t.index_of_offset(o), Some(index));
                }
            }
            (e, l) => prop_assert!(false, "index {}: model {:?}, translator {:?}", index, e, l),
        }
        prop_assert_eq!(t.offset_after(index), expected_offset);
    }
    prop_assert_eq!(t.end_offset(), expected_offset);
    prop_assert_eq!(t.index_of_offset(expected_offset), None);
    prop_assert_eq!(t.term(m.last() + 1), None);
    Ok(())
}

fn pick(lo: u64, hi: u64, at: f64) -> u64 {
    lo + ((hi - lo) as f64 * at) as u64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn translator_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut m = Model { first: 1, prev_term: 0, start: 0, entries: Vec::new(), term: 1 };
        let mut t = OffsetTranslator::new(1, 0, 0);
        for op in ops {
            match op {
                Op::Data { records, bump } => {
                    m.term += u64::from(bump);
                    let index = m.last() + 1;
                    let base = t.end_offset();
                    t.push_data(index, BatchSpan { base_offset: base, next_offset: base + records, term: m.term }).unwrap();
                    m.entries.push(M::Data(m.term, records));
                }
                Op::Control { bump } => {
                    m.term += u64::from(bump);
                    let index = m.last() + 1;
                    t.push_control(Model::control(index, m.term)).unwrap();
                    m.entries.push(M::Control(m.term));
                }
                Op::Truncate { at } => {
                    let from = pick(m.first, m.last() + 1, at);
                    let offset = t.truncate_from(from).unwrap();
                    let keep = (from - m.first) as usize;
                    m.entries.truncate(keep);
                    let expected: i64 = m.start + m.spans().iter().map(|(_, s)| s.next_offset - s.base_offset).sum::<i64>();
                    prop_assert_eq!(offset, expected, "truncation offset");
                    // A new leader's entries come with a higher term.
                    m.term += 1;
                }
                Op::Compact { at } => {
                    let to = pick(m.first, m.last() + 1, at);
                    t.compact_to(to).unwrap();
                    let drop = (to - m.first) as usize;
                    if drop > 0 {
                        m.prev_term = Model::term_of(&m.entries[drop - 1]);
                        let dropped: i64 = m.entries[..drop].iter().map(|e| match *e { M::Data(_, n) => n, M::Control(_) => 0 }).sum();
                        m.start += dropped;
                        m.entries.drain(..drop);
                        m.first = to;
                    }
                }
                Op::Restart { lose } => {
                    // The log keeps all but the last `lose` data batches (a torn tail); the
                    // state file keeps every control entry.
                    let spans = m.spans();
                    let kept = spans.len().saturating_sub(lose);
                    let mut r = OffsetTranslator::rebuild(m.first, m.prev_term, m.start, m.controls());
                    for (_, s) in &spans[..kept] {
                        r.push_batch(*s).unwrap();
                    }
                    let (rebuilt, stale) = r.finish().unwrap();
                    // Expected: everything before the first lost data entry.
                    let cut = spans.get(kept).map_or(m.entries.len(), |(i, _)| (i - m.first) as usize);
                    let stale_expected: Vec<u64> = m.controls().iter().map(|c| c.index).filter(|&i| i >= m.first + cut as u64).collect();
                    prop_assert_eq!(stale.iter().map(|c| c.index).collect::<Vec<_>>(), stale_expected);
                    m.entries.truncate(cut);
                    t = rebuilt;
                }
            }
            check(&t, &m)?;
        }
    }
}

#[test]
fn rebuild_refuses_a_batch_that_does_not_continue_the_log() {
    let mut r = OffsetTranslator::rebuild(1, 0, 0, vec![]);
    r.push_batch(BatchSpan {
        base_offset: 0,
        next_offset: 2,
        term: 1,
    })
    .unwrap();
    assert!(r
        .push_batch(BatchSpan {
            base_offset: 3,
            next_offset: 4,
            term: 1
        })
        .is_err());
    let mut r = OffsetTranslator::rebuild(1, 0, 0, vec![Model::control(1, 5)]);
    // A batch of an older term after a newer control entry: the log and the state disagree.
    assert!(r
        .push_batch(BatchSpan {
            base_offset: 0,
            next_offset: 1,
            term: 2
        })
        .is_err());
}

//! Fuzzes the record walk (varints, lengths, headers) of a records section: it must never
//! panic, and every value span it returns must lie inside the section.
#![no_main]

use libfuzzer_sys::fuzz_target;
use starlog_wire::value_spans;

fuzz_target!(|data: &[u8]| {
    let Some((&count, section)) = data.split_first() else {
        return;
    };
    let count = usize::from(count);
    if let Ok(spans) = value_spans(section, count) {
        assert_eq!(spans.len(), count);
        for (i, s) in spans.iter().enumerate() {
            assert_eq!(s.index, i);
            if let Some((start, len)) = s.value {
                assert!(start + len <= section.len());
            }
        }
    }
});

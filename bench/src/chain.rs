//! The in-broker processing chain option, reserved until it exists.
//!
//! The alert workload is meant to include, for Starlog, a chain of
//! processors running inside the broker next to the partition (the
//! processors issue). Until the broker can run one, the option is accepted
//! and every report says plainly that nothing was run, so no figure can be
//! mistaken for a run with a chain.

/// Report text for the in-broker chain option.
pub fn status(requested: Option<&str>) -> String {
    match requested {
        None => "not requested".to_string(),
        Some(chain) => format!(
            "not available yet: in-broker processors are not implemented in Starlog \
             (processors issue); chain `{chain}` was NOT run"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_chain_is_reported_as_not_run() {
        assert_eq!(status(None), "not requested");
        let s = status(Some("solar-system.yaml"));
        assert!(s.starts_with("not available yet"));
        assert!(s.contains("`solar-system.yaml` was NOT run"));
    }
}

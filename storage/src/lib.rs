//! Segmented, crash-safe partition log (work in progress).

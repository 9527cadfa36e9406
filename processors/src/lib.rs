//! Alert processing (work in progress).

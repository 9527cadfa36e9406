//! Classic consumer-group coordinator (work in progress).

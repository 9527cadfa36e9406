mod admin;
mod bad_input;
mod encoding;
mod join_sync;
mod offsets;
mod sessions;
mod support;

//! Example services built on eac. Each example is a binary in `src/bin`:
//!
//! - `live_server`: an HTTP server whose behaviour follows its configuration files.
//! - `doc_server`: serves one configuration file over HTTP with ETags, the remote
//!   document `live_server --remote` polls (see [`doc_server`]).

pub mod doc_server;

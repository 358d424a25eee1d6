//! Example services built on eac. Each example is a binary in `src/bin`:
//!
//! - `live_server`: an HTTP server whose behaviour follows its configuration files.

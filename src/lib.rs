//! p2pshare: a peer-to-peer file-sharing network over raw TCP.
//!
//! The crate has two layers, kept apart:
//!
//! * **Cores without I/O**: the wire codec ([`protocol`]), the index store and search
//!   ([`index::store`]), the shared-file catalog ([`peer::catalog`]) and the download
//!   plan ([`peer::plan`]). They take explicit time and return what to send; they never
//!   touch a socket, a clock or a thread.
//! * **A threaded runtime**: std::net listeners with one named thread per connection
//!   ([`net`]), the index service, the peer's server, index links, downloads and console.
//!
//! Only `main.rs` and the console print to the user; everything else logs.

pub mod bench;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod console;
pub mod eventlog;
pub mod index;
pub mod net;
pub mod output;
pub mod overlay;
pub mod peer;
pub mod protocol;
pub mod render;
pub mod signals;
pub mod units;

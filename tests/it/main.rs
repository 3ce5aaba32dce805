//! The integration tests: one binary that runs the real `p2pshare` on 127.0.0.1 with
//! ephemeral ports, each test in its own temporary folder, every child killed on drop
//! and a deadline on every wait. One module per area; `util` holds what they share.
//!
//! The tests run as threads of this one process, so none of them may change what the
//! process shares: the current directory and the environment stay as they are, and
//! whatever a child needs is set on the child's own command.

mod util;

mod basics;
mod cli;
mod console;
mod dht;
mod dht_interop;
mod durability;
mod fuzz_corpus;
mod hostile;
mod http;
mod http_schema;
mod http_tools;
mod limits;
mod live_folder;
mod newcomer;
mod overlay;
mod swarm;
mod upload;

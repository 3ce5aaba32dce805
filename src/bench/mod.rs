//! Load generators behind `p2pshare bench`. They measure; they never assert.

pub mod dht;
pub mod index_load;
pub mod overlay;

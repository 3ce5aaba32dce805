//! The index server: which peer holds which file; search; leases.
//!
//! [`store`] and [`search`] are the pure core; [`service`] turns requests into replies
//! around it and runs the lease sweep.

pub mod durable;
pub mod search;
pub mod service;
pub mod store;

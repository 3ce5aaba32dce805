//! The physical limit for one request per connection: a single thread that accepts,
//! reads once, writes a fixed holder row and closes, with nothing else (no parsing,
//! no lookup, no logging). What it serves per second is what the kernel's cost of a
//! TCP connection allows on this machine; bench/index.sh measures the classic dialect
//! (`get|name`, a new connection each) against it.
//!
//! Build: rustc -O bench/accept_loop.rs -o accept_loop
//! Usage: accept_loop PORT_FILE   (binds 127.0.0.1:0 and writes the port there)

use std::io::{Read, Write};
use std::net::TcpListener;

fn main() -> std::io::Result<()> {
    let port_file = std::env::args()
        .nth(1)
        .ok_or_else(|| std::io::Error::other("usage: accept_loop PORT_FILE"))?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    std::fs::write(port_file, listener.local_addr()?.port().to_string())?;
    let mut request = [0u8; 1024];
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if stream.read(&mut request).is_ok() {
            let _ = stream.write_all(b"127.0.0.1|bench-peer-0|40000");
        }
    }
    Ok(())
}

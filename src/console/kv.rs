//! The console's `kv`: the key-value store through the peer's own DHT node.

use super::events::terminal_safe;
use super::Console;
use crate::output;

impl Console<'_> {
    pub(super) fn kv(&self, args: &str) {
        let usage = "usage: kv put KEY VALUE | kv get KEY | kv rm KEY";
        let Some(dht) = self.peer.shared().dht.get() else {
            output::say(
                "this peer runs no DHT node (--no-dht): the key-value store is out of reach",
            );
            return;
        };
        let (op, rest) = args.trim().split_once(' ').unwrap_or((args.trim(), ""));
        let rest = rest.trim();
        match op {
            "put" => {
                let Some((key, value)) = rest.split_once(' ') else {
                    output::say(usage);
                    return;
                };
                match dht.kv_put(key, value.trim().as_bytes(), None) {
                    Ok(seq) => output::say(format!("stored {key} (seq {seq})")),
                    Err(e) => output::say(format!("kv put {key}: {e}")),
                }
            }
            "get" if !rest.is_empty() => match dht.kv_get(rest) {
                Ok(Some(read)) => output::say(format!(
                    "{rest} = {} (seq {})",
                    terminal_safe(&String::from_utf8_lossy(&read.value)),
                    read.seq
                )),
                Ok(None) => output::say(format!("{rest}: not found")),
                Err(e) => output::say(format!("kv get {rest}: {e}")),
            },
            "rm" if !rest.is_empty() => match dht.kv_rm(rest, None) {
                Ok(Some(seq)) => output::say(format!("removed {rest} (seq {seq})")),
                Ok(None) => output::say(format!("{rest}: not found")),
                Err(e) => output::say(format!("kv rm {rest}: {e}")),
            },
            _ => output::say(usage),
        }
    }
}

//! `p2pshare keygen --network` and `p2pshare kv put|get|rm`: the key-value store from
//! the command line, through a DHT node of the command's own.

use super::CmdError;
use crate::cli::{DhtClientFlags, KeygenArgs, KvGetArgs, KvPutArgs, KvRmArgs};
use crate::dht::{DhtNode, Network};
use crate::output;
use serde_json::json;
use std::io::{Read, Write};

/// `p2pshare keygen --network`.
pub fn keygen(a: KeygenArgs) -> Result<(), CmdError> {
    let (key, id_path) = Network::create(&a.out).map_err(CmdError::failed)?;
    if a.json {
        output::say(
            json!({
                "key": a.out.display().to_string(),
                "id_file": id_path.display().to_string(),
                "id": key.id().to_string(),
            })
            .to_string(),
        );
    } else {
        output::say(format!(
            "network key written to {} (writers: copy it to them; owner-only), its id {} to {}",
            a.out.display(),
            key.id(),
            id_path.display()
        ));
    }
    Ok(())
}

/// A DHT node for this command, bootstrapped from the seeds or --dht-bootstrap.
fn node(c: &DhtClientFlags) -> Result<DhtNode, CmdError> {
    let settings = c
        .dht
        .client_settings(&c.seeds.addrs()?)?
        .ok_or_else(|| CmdError::usage("the key-value store lives on the DHT: drop --no-dht"))?;
    if settings.network.is_none() {
        return Err(CmdError::failed(
            crate::dht::kv::KvError::NoNetwork.to_string(),
        ));
    }
    if settings.bootstrap.is_empty() && !settings.public {
        return Err(CmdError::usage(
            "no DHT node to start from: list seeds (config/seeds.txt, --seed) or give \
             --dht-bootstrap HOST:PORT",
        ));
    }
    DhtNode::start(settings, 0).map_err(CmdError::failed)
}

/// `p2pshare kv put KEY VALUE`.
pub fn put(a: KvPutArgs) -> Result<(), CmdError> {
    let value = if a.value == "-" {
        let mut v = Vec::new();
        std::io::stdin()
            .take(crate::dht::value::MAX_VALUE as u64 + 1)
            .read_to_end(&mut v)?;
        v
    } else {
        a.value.clone().into_bytes()
    };
    let node = node(&a.client)?;
    let seq = node
        .kv_put(&a.key, &value, a.cas)
        .map_err(|e| CmdError::failed(format!("kv put '{}': {e}", a.key)))?;
    if a.json {
        output::say(
            json!({
                "key": a.key,
                "value": String::from_utf8_lossy(&value),
                "status": "stored",
                "seq": seq,
            })
            .to_string(),
        );
    } else {
        output::say(format!("stored {} (seq {seq})", a.key));
    }
    Ok(())
}

/// `p2pshare kv get KEY`.
pub fn get(a: KvGetArgs) -> Result<(), CmdError> {
    let node = node(&a.client)?;
    let read = node
        .kv_get(&a.key)
        .map_err(|e| CmdError::failed(format!("kv get '{}': {e}", a.key)))?;
    let Some(read) = read else {
        if a.json {
            output::say(json!({ "key": a.key, "error": "not found" }).to_string());
            return Err(CmdError::failed("not found").reported());
        }
        return Err(CmdError::failed(format!("{}: not found", a.key)));
    };
    if a.json {
        output::say(
            json!({
                "key": a.key,
                "value": String::from_utf8_lossy(&read.value),
                "seq": read.seq,
            })
            .to_string(),
        );
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(&read.value)?;
        if !a.raw {
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    Ok(())
}

/// `p2pshare kv rm KEY`.
pub fn rm(a: KvRmArgs) -> Result<(), CmdError> {
    let node = node(&a.client)?;
    let removed = node
        .kv_rm(&a.key, a.cas)
        .map_err(|e| CmdError::failed(format!("kv rm '{}': {e}", a.key)))?;
    match removed {
        Some(seq) if a.json => {
            output::say(json!({ "key": a.key, "status": "removed", "seq": seq }).to_string())
        }
        Some(seq) => output::say(format!("removed {} (seq {seq})", a.key)),
        None if a.json => {
            output::say(json!({ "key": a.key, "error": "not found" }).to_string());
            return Err(CmdError::failed("not found").reported());
        }
        None => return Err(CmdError::failed(format!("{}: not found", a.key))),
    }
    Ok(())
}

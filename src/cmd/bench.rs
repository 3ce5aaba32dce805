//! `p2pshare bench`: load generators and the overlay simulator, for measuring (see
//! bench/BENCHMARKS.md).

use super::CmdError;
use crate::bench::index_load;
use crate::cli::{BenchDhtArgs, BenchIndexArgs, BenchOverlayArgs, LivenessMode};
use crate::net::Timeouts;
use serde_json::json;

/// `p2pshare bench index`.
pub fn index(a: BenchIndexArgs) -> Result<(), CmdError> {
    let op = index_load::Op::parse(&a.op).map_err(CmdError::usage)?;
    let cfg = index_load::LoadConfig {
        index: a.index.to_string(),
        op,
        connections: a.connections as usize,
        pipeline: if op == index_load::Op::ClassicGet {
            1
        } else {
            a.pipeline as usize
        },
        duration: a.duration,
        requests: a.requests,
        names: a.names as usize,
        populate: !a.no_populate,
        timeouts: Timeouts::default(),
    };
    let r = index_load::run(&cfg)?;
    if a.json {
        println!(
            "{}",
            json!({
                "op": a.op,
                "names": a.names,
                "populate_seconds": r.populate.as_secs_f64(),
                "connections": r.connections,
                "pipeline": r.pipeline,
                "requests": r.requests,
                "errors": r.errors,
                "seconds": r.elapsed.as_secs_f64(),
                "ops_per_sec": r.ops_per_sec(),
                "p50_us": r.p50_us,
                "p99_us": r.p99_us,
                "max_us": r.max_us,
            })
        );
    } else {
        if !r.populate.is_zero() {
            println!(
                "published {} names in {:.3}s",
                a.names,
                r.populate.as_secs_f64()
            );
        }
        println!(
            "{} x{} conns, pipeline {}: {} requests in {:.2}s = {:.0} ops/s; latency p50 {} us, p99 {} us, max {} us; {} errors",
            a.op,
            r.connections,
            r.pipeline,
            r.requests,
            r.elapsed.as_secs_f64(),
            r.ops_per_sec(),
            r.p50_us,
            r.p99_us,
            r.max_us,
            r.errors
        );
    }
    if r.errors > 0 && r.requests == 0 {
        return Err(CmdError::failed("every request failed"));
    }
    Ok(())
}

/// `p2pshare bench overlay`.
pub fn overlay(a: BenchOverlayArgs) -> Result<(), CmdError> {
    use crate::bench::overlay::{self, OverlayBench};
    use crate::overlay::sim::SimConfig;
    use crate::overlay::OverlayConfig;
    let overlay = match a.liveness {
        LivenessMode::Swim => OverlayConfig::default(),
        LivenessMode::Classic => OverlayConfig::classic(),
    };
    if !(0.0..1.0).contains(&a.loss) {
        return Err(CmdError::usage(format!(
            "--loss must be at least 0 and below 1, not {}",
            a.loss
        )));
    }
    if a.latency_max < a.latency_min {
        return Err(CmdError::usage("--latency-max is below --latency-min"));
    }
    let bench = OverlayBench {
        sim: SimConfig {
            peers: a.peers as usize,
            seeds: a.seeds as usize,
            seed: a.seed,
            latency_min: a.latency_min,
            latency_max: a.latency_max,
            overlay,
            ..SimConfig::default()
        },
        broadcasts: a.broadcasts,
        kills: a.kills.min(a.peers as usize / 2),
        loss: a.loss,
        loss_duration: a.loss_duration,
        ..OverlayBench::default()
    };
    let report = overlay::run(&bench);
    if let Some(path) = &a.json_out {
        std::fs::write(path, report.json().to_string() + "\n")
            .map_err(|e| CmdError::failed(format!("{}: {e}", path.display())))?;
    }
    if a.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

/// `p2pshare bench dht`.
pub fn dht(a: BenchDhtArgs) -> Result<(), CmdError> {
    use crate::bench::dht::{self, DhtBench};
    if !(0.0..1.0).contains(&a.kill) {
        return Err(CmdError::usage(format!(
            "--kill must be at least 0 and below 1, not {}",
            a.kill
        )));
    }
    if a.republish.is_zero() {
        return Err(CmdError::usage("--republish must be above zero"));
    }
    let bench = DhtBench {
        nodes: a.nodes as usize,
        keys: a.keys as usize,
        value_size: a.value_size as usize,
        missing: a.missing as usize,
        kill: a.kill,
        waves: a.waves as usize,
        sample: a.sample as usize,
        concurrency: a.concurrency as usize,
        republish: a.republish,
        seed: a.seed,
        ..DhtBench::default()
    };
    let started = std::time::Instant::now();
    let progress = move |line: &str| {
        eprintln!("[{:7.1} s] {line}", started.elapsed().as_secs_f64());
    };
    let report = dht::run(&bench, &progress).map_err(CmdError::failed)?;
    if let Some(path) = &a.json_out {
        std::fs::write(path, report.json().to_string() + "\n")
            .map_err(|e| CmdError::failed(format!("{}: {e}", path.display())))?;
    }
    if a.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

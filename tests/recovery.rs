//! Recovery: a failed job restarts from its latest completed checkpoint and its
//! keyed state ends exactly as if nothing had failed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use weir::{RestartStrategy, StreamEnv};

#[test]
fn a_failure_restarts_the_job_from_its_latest_checkpoint_with_exact_keyed_state() {
    let dir = std::env::temp_dir().join("weir-restart-smoke");
    let _ = std::fs::remove_dir_all(&dir);
    let env = StreamEnv::with_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(10));
    env.set_checkpoint_dir(dir.to_str().unwrap());
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 3,
        delay: Duration::from_millis(0),
    });
    let failed = Arc::new(AtomicBool::new(false));
    let f = failed.clone();
    let out = env
        .generate(2_000_000, |i| i)
        .map(move |i: u64| {
            if i == 1_500_000 && !f.swap(true, Ordering::SeqCst) {
                panic!("injected at {i}");
            }
            i % 100
        })
        .key_by(|k: &u64| *k)
        .sum(|_| 1u64)
        .collect();
    let result = env.execute_blocking("restart").unwrap();
    let mut max: HashMap<u64, u64> = HashMap::new();
    for (k, c) in out.take() {
        let e = max.entry(k).or_default();
        *e = (*e).max(c);
    }
    println!(
        "restarts {} checkpoints {}",
        result.restarts,
        result.checkpoints.len()
    );
    assert_eq!(result.restarts, 1);
    assert_eq!(max.len(), 100);
    assert!(max.values().all(|&c| c == 20_000), "{max:?}");
}

//! The output of `examples/dynamic_patterns.rs` (broadcast state), pinned by a
//! snapshot and checked to be the same at every parallelism, whichever stream
//! reaches a subtask first.

#[allow(dead_code)] // the example's `main` and its argument parser are not used here
#[path = "../examples/dynamic_patterns.rs"]
mod example;

use weir::StreamEnv;

fn run(parallelism: usize, pattern: example::Pattern) -> Vec<String> {
    let env = StreamEnv::with_parallelism(parallelism);
    let out = example::matches(&env, example::sample_actions(), pattern).collect();
    env.execute_blocking("dynamic patterns").unwrap();
    let mut lines: Vec<String> = out
        .take()
        .into_iter()
        .map(|(user, p)| format!("{user}\t{} -> {}", p.first, p.second))
        .collect();
    lines.sort();
    lines
}

fn pattern(first: &str, second: &str) -> example::Pattern {
    example::Pattern {
        first: first.into(),
        second: second.into(),
    }
}

#[test]
fn users_whose_last_two_actions_match_the_broadcast_pattern() {
    let lines = run(2, pattern("login", "logout"));
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn the_matches_do_not_depend_on_parallelism_or_arrival_order() {
    let expected = run(1, pattern("browse", "buy"));
    assert_eq!(
        expected,
        vec!["alice\tbrowse -> buy", "carol\tbrowse -> buy"]
    );
    for parallelism in [2, 3, 4] {
        for _ in 0..3 {
            assert_eq!(
                run(parallelism, pattern("browse", "buy")),
                expected,
                "parallelism {parallelism}"
            );
        }
    }
}

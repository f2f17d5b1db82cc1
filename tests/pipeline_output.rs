//! The output of `examples/pipeline.rs`, pinned by a snapshot.
//!
//! The example's module is compiled into this test (by path), so the test runs
//! exactly the pipeline the example declares, on the bundled sample text, into
//! a collecting sink instead of `print()`. Two subtasks interleave their output
//! in no fixed order, so the lines are sorted before the snapshot.

#[allow(dead_code)] // the example's `main` and its argument parser are not used here
#[path = "../examples/pipeline.rs"]
mod example;

use std::path::Path;

use weir::StreamEnv;

#[test]
fn the_example_pipeline_describes_every_word_of_the_sample() {
    let env = StreamEnv::with_parallelism(2);
    let out = example::word_lengths(&env, Path::new(example::SAMPLE)).collect();
    env.execute_blocking("pipeline").unwrap();

    let mut lines = out.take();
    lines.sort();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn words_are_maximal_alphanumeric_runs_lower_cased() {
    assert_eq!(
        example::words("A weir's crest, 2 metres high -- Über-flow!"),
        vec!["a", "weir", "s", "crest", "2", "metres", "high", "über", "flow"]
    );
    assert!(example::words(" \t--, ").is_empty());
}

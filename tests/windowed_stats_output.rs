//! The output of `examples/windowed_stats.rs` (event-time windows with late
//! data), pinned by snapshots on the bundled readings for each kind of
//! window, and checked against what Apache Flink 2.3's own window operator
//! printed for the same input and settings (`tests/data/windowed_stats/`,
//! written by `../shared/flink-peer/run.sh DIR WindowPeer ...`); the same at
//! every parallelism, batch size and state backend; bad input named.

#[allow(dead_code)] // the example's `main` and its argument parser are not used here
#[path = "../examples/windowed_stats.rs"]
mod windowed_stats;

use std::io::Write;
use std::path::Path;

use weir::{JobError, StreamEnv};
use windowed_stats::{Settings, WindowSpec};

/// The firings as JSON lines and the late records as CSV, each sorted.
fn run_on(
    env: &StreamEnv,
    input: &Path,
    settings: Settings,
) -> Result<(Vec<String>, Vec<String>), JobError> {
    let (stats, late) = windowed_stats::window_stats(env, input, settings);
    let stats = stats.collect();
    let late = late.collect();
    let result = env.execute_blocking("windowed-stats")?;
    let mut lines: Vec<String> = stats
        .take()
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    lines.sort();
    let mut late: Vec<String> = late.take().iter().map(|r| r.to_csv()).collect();
    late.sort();
    assert_eq!(
        result.counter("Window stats", "late_records"),
        late.len() as u64,
        "every late record is counted"
    );
    assert_eq!(result.counter("Window stats", "late_records_dropped"), 0);
    Ok((lines, late))
}

fn settings(window: &str, lateness: u64, ooo: u64) -> Settings {
    Settings {
        window: WindowSpec::parse(window).unwrap(),
        allowed_lateness_ms: lateness,
        out_of_orderness_ms: ooo,
    }
}

fn bundled(settings: Settings) -> (Vec<String>, Vec<String>) {
    run_on(
        &StreamEnv::with_parallelism(2),
        Path::new(windowed_stats::READINGS),
        settings,
    )
    .unwrap()
}

/// The non-empty lines of the file at `path`, sorted.
fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Flink's output for the bundled readings, sorted.
fn flink(name: &str) -> (Vec<String>, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/windowed_stats");
    (
        sorted_lines(&dir.join(format!("flink-{name}.jsonl"))),
        sorted_lines(&dir.join(format!("flink-{name}.late.csv"))),
    )
}

#[test]
fn tumbling_windows_fire_as_flinks() {
    let (lines, late) = bundled(settings("tumbling:1000", 0, 0));
    assert_eq!((lines.clone(), late.clone()), flink("tumbling_1000-0-0"));
    insta::assert_snapshot!(format!(
        "{}\n-- late\n{}",
        lines.join("\n"),
        late.join("\n")
    ));
}

#[test]
fn sliding_windows_fire_as_flinks() {
    let (lines, late) = bundled(settings("sliding:3000:1000", 0, 0));
    assert_eq!(
        (lines.clone(), late.clone()),
        flink("sliding_3000_1000-0-0")
    );
    insta::assert_snapshot!(format!(
        "{}\n-- late\n{}",
        lines.join("\n"),
        late.join("\n")
    ));
}

#[test]
fn session_windows_merge_as_flinks() {
    let (lines, late) = bundled(settings("session:2000", 0, 0));
    assert_eq!((lines.clone(), late.clone()), flink("session_2000-0-0"));
    insta::assert_snapshot!(format!(
        "{}\n-- late\n{}",
        lines.join("\n"),
        late.join("\n")
    ));
}

#[test]
fn allowed_lateness_fires_again_for_late_records_as_flink() {
    let (lines, late) = bundled(settings("sliding:3000:1000", 250, 100));
    assert_eq!((lines, late), flink("sliding_3000_1000-250-100"));
    // sensor-b's record at 900 is within the lateness of its session.
    let (lines, late) = bundled(settings("session:2000", 700, 300));
    assert_eq!((lines.clone(), late), flink("session_2000-700-300"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""key":"sensor-b","start":900,"end":8000"#)),
        "{lines:#?}"
    );
}

/// Random readings (`tests/data/windowed_stats/random/*/in.csv`, written by
/// `gen.py SEED N` there: up to six keys, records out of order by up to 20 s,
/// some late, in sessions that a late record may bridge) fire as Apache
/// Flink 2.3's window operator fired them (`flink.jsonl`, `flink.late.csv`,
/// from `run.sh DIR WindowPeer`), on the heap and on RocksDB. Each directory is named
/// `seed<N>-<window, ':' as '_'>-<allowed lateness ms>-<out-of-orderness ms>`.
#[test]
fn random_readings_fire_as_flinks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/windowed_stats/random");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 6, "{cases:?}");
    for case in cases {
        let name = case.file_name().unwrap().to_str().unwrap().to_string();
        let [_, window, lateness, ooo] = name.split('-').collect::<Vec<_>>()[..] else {
            panic!("{name}: not seed-window-lateness-ooo");
        };
        let settings = settings(
            &window.replace('_', ":"),
            lateness.parse().unwrap(),
            ooo.parse().unwrap(),
        );
        let expected = (
            sorted_lines(&case.join("flink.jsonl")),
            sorted_lines(&case.join("flink.late.csv")),
        );
        for parallelism in [1, 2] {
            let env = StreamEnv::with_parallelism(parallelism);
            let got = run_on(&env, &case.join("in.csv"), settings).unwrap();
            assert_eq!(got, expected, "{name} at parallelism {parallelism}");
        }
        #[cfg(feature = "rocksdb")]
        {
            let dir = tempfile::tempdir().unwrap();
            let env = StreamEnv::with_parallelism(2);
            env.set_state_backend(weir::state::RocksDbBackend::new().with_local_dirs([dir.path()]));
            let got = run_on(&env, &case.join("in.csv"), settings).unwrap();
            assert_eq!(got, expected, "{name} on RocksDB");
        }
    }
}

#[test]
fn output_does_not_depend_on_parallelism_or_batching() {
    for window in ["tumbling:1000", "sliding:3000:1000", "session:2000"] {
        let settings = settings(window, 250, 100);
        let expected = bundled(settings);
        for parallelism in [1, 3] {
            let env = StreamEnv::with_parallelism(parallelism);
            let got = run_on(&env, Path::new(windowed_stats::READINGS), settings).unwrap();
            assert_eq!(got, expected, "{window} at parallelism {parallelism}");
        }
        let env = StreamEnv::with_parallelism(2);
        env.set_batch_size(1);
        let got = run_on(&env, Path::new(windowed_stats::READINGS), settings).unwrap();
        assert_eq!(got, expected, "{window} with batches of one record");
    }
}

#[cfg(feature = "rocksdb")]
#[test]
fn output_is_the_same_on_rocksdb() {
    for window in ["tumbling:1000", "sliding:3000:1000", "session:2000"] {
        let settings = settings(window, 250, 100);
        let expected = bundled(settings);
        let dir = tempfile::tempdir().unwrap();
        let env = StreamEnv::with_parallelism(2);
        env.set_state_backend(weir::state::RocksDbBackend::new().with_local_dirs([dir.path()]));
        let got = run_on(&env, Path::new(windowed_stats::READINGS), settings).unwrap();
        assert_eq!(got, expected, "{window}");
    }
}

#[test]
fn a_malformed_line_is_an_error_naming_file_and_line() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"# readings\na,1000,5\n\na,2000\n").unwrap();
    let err = run_on(
        &StreamEnv::with_parallelism(2),
        file.path(),
        settings("tumbling:1000", 0, 0),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&file.path().display().to_string()), "{err}");
    assert!(err.contains(":4:"), "{err}");
    assert!(err.contains("expected 3 fields"), "{err}");
}

#[test]
fn window_specs_are_checked() {
    assert_eq!(
        WindowSpec::parse("sliding:3000:1000"),
        Ok(WindowSpec::Sliding(3000, 1000))
    );
    for bad in [
        "tumbling",
        "tumbling:0",
        "sliding:5",
        "session:x",
        "hopping:1",
    ] {
        assert!(WindowSpec::parse(bad).is_err(), "{bad}");
    }
}

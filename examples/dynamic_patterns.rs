//! Dynamic patterns: broadcast state in a keyed-broadcast connection.
//!
//! User actions arrive keyed by user; patterns (a first and a second action)
//! arrive on a broadcast stream, so every subtask knows the current pattern.
//! For each user, when the previous and the current action match the current
//! pattern, the job emits `(user, pattern)`.
//!
//! Which of the two streams reaches a subtask first is not fixed, so actions
//! that arrive before any pattern wait in keyed state, and the pattern's
//! arrival replays them for every user at once with `apply_to_keyed_state`:
//! the output is then the same whatever the timing.
//!
//! ```sh
//! cargo run --example dynamic_patterns
//! cargo run --example dynamic_patterns -- --pattern login,logout
//! ```

use std::process::ExitCode;

use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::state::{MapStateDescriptor, ValueStateDescriptor};
use weir::{
    Collector, DataStream, KeyedBroadcastContext, KeyedBroadcastProcessFunction, KeyedContext,
    Lifecycle, StreamEnv, UserError,
};

/// A user did something.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Who.
    pub user: String,
    /// What.
    pub action: String,
}

/// Two actions in a row.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pattern {
    /// The earlier action.
    pub first: String,
    /// The action right after it.
    pub second: String,
}

/// What the job keeps per user: the last action, and the actions that came
/// before any pattern did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    last: Option<String>,
    waiting: Vec<String>,
}

/// The keyed-broadcast function: matches each user's last two actions.
#[derive(Clone)]
pub struct MatchPatterns {
    history: ValueStateDescriptor<History>,
    patterns: MapStateDescriptor<String, Pattern>,
}

impl Default for MatchPatterns {
    fn default() -> Self {
        MatchPatterns {
            history: ValueStateDescriptor::new("history"),
            patterns: patterns_descriptor(),
        }
    }
}

/// The broadcast state: the current pattern under the key `"current"`.
pub fn patterns_descriptor() -> MapStateDescriptor<String, Pattern> {
    MapStateDescriptor::new("patterns")
}

/// Emits `(user, pattern)` for each action that completes the pattern.
fn follow(
    user: &str,
    history: &mut History,
    action: String,
    pattern: &Pattern,
    out: &mut Collector<(String, Pattern)>,
) {
    if history.last.as_deref() == Some(pattern.first.as_str()) && action == pattern.second {
        out.collect((user.to_string(), pattern.clone()));
    }
    history.last = Some(action);
}

impl Lifecycle for MatchPatterns {}

impl KeyedBroadcastProcessFunction<String, Action, Pattern, (String, Pattern)> for MatchPatterns {
    fn process_element(
        &mut self,
        action: Action,
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<(String, Pattern)>,
    ) -> Result<(), UserError> {
        let pattern = ctx
            .broadcast_state(&self.patterns)?
            .get(&"current".to_string())
            .cloned();
        let mut history = ctx.state(&self.history)?.value().unwrap_or_default();
        match pattern {
            Some(pattern) => follow(&action.user, &mut history, action.action, &pattern, out),
            None => history.waiting.push(action.action),
        }
        ctx.state(&self.history)?.update(history);
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        pattern: Pattern,
        ctx: &mut KeyedBroadcastContext<String>,
        out: &mut Collector<(String, Pattern)>,
    ) -> Result<(), UserError> {
        ctx.broadcast_state(&self.patterns)?
            .put("current".to_string(), pattern.clone());
        // Actions that came before the first pattern are judged now, in order.
        ctx.apply_to_keyed_state(&self.history, |user, mut state| {
            if let Some(mut history) = state.value() {
                for action in std::mem::take(&mut history.waiting) {
                    follow(user, &mut history, action, &pattern, out);
                }
                state.update(history);
            }
            Ok(())
        })
    }
}

/// The bundled actions: a few users clicking about.
pub fn sample_actions() -> Vec<Action> {
    let script = [
        ("alice", "login"),
        ("bob", "login"),
        ("alice", "browse"),
        ("carol", "login"),
        ("bob", "logout"),
        ("alice", "buy"),
        ("carol", "browse"),
        ("alice", "logout"),
        ("carol", "buy"),
        ("bob", "login"),
        ("carol", "logout"),
        ("bob", "logout"),
        ("dave", "login"),
        ("dave", "logout"),
        ("alice", "login"),
        ("alice", "logout"),
    ];
    script
        .iter()
        .map(|(u, a)| Action {
            user: u.to_string(),
            action: a.to_string(),
        })
        .collect()
}

/// The job: actions keyed by user, connected with the broadcast pattern.
pub fn matches(
    env: &StreamEnv,
    actions: Vec<Action>,
    pattern: Pattern,
) -> DataStream<(String, Pattern)> {
    let patterns = env
        .from_collection(vec![pattern])
        .broadcast_state(&[patterns_descriptor()]);
    env.from_collection(actions)
        .key_by(|a: &Action| a.user.clone())
        .connect(patterns)
        .process(MatchPatterns::default())
        .name("match patterns")
        .uid("match-patterns")
}

/// Finds users whose consecutive actions match a pattern.
#[derive(Debug, Parser)]
struct Args {
    /// The pattern as FIRST,SECOND.
    #[arg(long, default_value = "login,logout")]
    pattern: String,
    /// Parallelism of the matching operator.
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
}

fn parse_pattern(text: &str) -> Result<Pattern, String> {
    match text.split_once(',') {
        Some((first, second)) if !first.trim().is_empty() && !second.trim().is_empty() => {
            Ok(Pattern {
                first: first.trim().to_string(),
                second: second.trim().to_string(),
            })
        }
        _ => Err(format!(
            "--pattern {text:?}: expected FIRST,SECOND, e.g. login,logout"
        )),
    }
}

fn main() -> ExitCode {
    weir::cli::main(run)
}

fn run(args: Args) -> Result<(), String> {
    let pattern = parse_pattern(&args.pattern)?;
    let env = StreamEnv::with_parallelism(args.parallelism);
    let out = matches(&env, sample_actions(), pattern).collect();
    env.execute_blocking("dynamic patterns")
        .map_err(|e| e.to_string())?;
    let mut found = out.take();
    found.sort();
    weir::cli::write_lines(
        found
            .iter()
            .map(|(user, pattern)| format!("{user}\t{} -> {}", pattern.first, pattern.second)),
    )
}

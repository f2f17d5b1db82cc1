//! What `--dump-plan` prints and `weir check-restore --plan` reads: the
//! job's plan for a restore ([`JobPlan`]: operators with uid, parallelism,
//! max parallelism, key type; chains; backend) with the keyed states each
//! operator declares and their schemas ([`Plan`]); and the pre-flight check
//! of a snapshot against it ([`RestoreReport`]: per uid, then per declared
//! state).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::path::Path;

use serde::{Deserialize, Serialize};
use weir_actors::restore::{self, JobPlan, RestoreCheck};
use weir_actors::snapshot::OperatorSnapshot;

use crate::state::schema::{check_states, DeclaredState, StateCheck};

/// A job's plan for a restore, with its declared states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Operators, chains and backend.
    #[serde(flatten)]
    pub job: JobPlan,
    /// Per operator uid, the keyed states its function declares
    /// ([`Lifecycle::declare_states`](crate::Lifecycle::declare_states)).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub states: BTreeMap<String, Vec<DeclaredState>>,
}

impl Deref for Plan {
    type Target = JobPlan;
    fn deref(&self) -> &JobPlan {
        &self.job
    }
}

/// Whether a snapshot restores onto a job: per uid ([`RestoreCheck`]), and
/// per declared state ([`StateCheck`]); a refused state is among the
/// check's errors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// The verdict per uid.
    #[serde(flatten)]
    pub check: RestoreCheck,
    /// The verdict per declared state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<StateCheck>,
}

impl Deref for RestoreReport {
    type Target = RestoreCheck;
    fn deref(&self) -> &RestoreCheck {
        &self.check
    }
}

/// Checks whether the snapshot in `dir` restores onto `plan`, its declared
/// states included, without starting anything.
pub fn check_restore_dir(
    dir: &Path,
    plan: &Plan,
    allow_non_restored_state: bool,
) -> Result<RestoreReport, String> {
    let (storage, metadata) = restore::open_snapshot_dir(dir)?;
    let (metadata, subtasks) = restore::read(&storage, metadata.checkpoint_id)?;
    let mut check = restore::check(&metadata, &subtasks, &plan.job, allow_non_restored_state);
    let mut by_uid: BTreeMap<&str, Vec<&OperatorSnapshot>> = BTreeMap::new();
    for subtask in &subtasks {
        for (uid, snapshot) in &subtask.operators {
            by_uid.entry(uid.as_str()).or_default().push(snapshot);
        }
    }
    let mut states = Vec::new();
    for operator in &plan.job.operators {
        let declared = plan
            .states
            .get(&operator.uid)
            .map_or(&[][..], Vec::as_slice);
        let snapshots = by_uid
            .get(operator.uid.as_str())
            .map_or(&[][..], Vec::as_slice);
        states.extend(check_states(&operator.uid, declared, snapshots)?);
    }
    for state in &states {
        if let Some(error) = state.verdict.error() {
            check.job_errors.push(format!(
                "operator `{}`, state `{}`: {error}",
                state.uid, state.state
            ));
        }
    }
    Ok(RestoreReport { check, states })
}

impl fmt::Display for RestoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.states.is_empty() {
            let mut table = crate::inspect::table::Table::new(&[
                ("UID", crate::inspect::table::Align::Left),
                ("STATE", crate::inspect::table::Align::Left),
                ("VERSION", crate::inspect::table::Align::Right),
                ("SCHEMA", crate::inspect::table::Align::Left),
            ]);
            for s in &self.states {
                table.row(vec![
                    s.uid.clone(),
                    s.state.clone(),
                    s.version.to_string(),
                    s.verdict.to_string(),
                ]);
            }
            writeln!(f, "{table}")?;
        }
        write!(f, "{}", self.check)
    }
}

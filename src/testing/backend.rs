//! The state backend of a test body: one suite of state tests, run once per
//! backend.
//!
//! ```
//! use weir::state::HeapStateBackend;
//! use weir::testing::with_state_backend;
//! let n = with_state_backend(HeapStateBackend, None, || 1 + 1);
//! assert_eq!(n, 2);
//! ```

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::state::StateBackend;

type TestBackend = (Arc<dyn StateBackend>, Option<PathBuf>);

thread_local! {
    static BACKEND: RefCell<Option<TestBackend>> = const { RefCell::new(None) };
}

/// Runs `body` with `backend` as the state backend of the operator harnesses
/// it creates and of the jobs it builds without a backend set in code (on this
/// thread). `shared_dir` is the shared directory harness snapshots may put
/// files in (incremental snapshots); `None`: harness snapshots are full.
pub fn with_state_backend<R>(
    backend: impl StateBackend,
    shared_dir: Option<&Path>,
    body: impl FnOnce() -> R,
) -> R {
    struct Reset(Option<TestBackend>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let previous = self.0.take();
            BACKEND.with(|b| *b.borrow_mut() = previous);
        }
    }
    let previous = BACKEND.with(|b| {
        b.borrow_mut()
            .replace((Arc::new(backend), shared_dir.map(Path::to_path_buf)))
    });
    let _reset = Reset(previous);
    body()
}

/// The backend [`with_state_backend`] set on this thread.
pub(crate) fn test_backend() -> Option<Arc<dyn StateBackend>> {
    BACKEND.with(|b| b.borrow().as_ref().map(|(backend, _)| backend.clone()))
}

/// The shared directory [`with_state_backend`] set on this thread.
pub(crate) fn test_shared_dir() -> Option<PathBuf> {
    BACKEND.with(|b| b.borrow().as_ref().and_then(|(_, dir)| dir.clone()))
}

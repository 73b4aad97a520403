//! Synchronous file-system calls, run on glommio's blocking thread pool instead of a shard's
//! executor thread.
//!
//! A shard thread serves every partition it owns: an fsync, a directory walk or a
//! `remove_dir_all` made on it stalls all of their appends, fetches and group commits for as
//! long as the call takes. Calls without an io_uring form (metadata persistence with
//! `sync_all`, directory creation, listing and removal) go through [`run_blocking`]; the shard
//! keeps serving while they run, and the task that asked waits for the result.

/// Runs `call` on the current executor's blocking thread pool and waits for its result.
/// Must run inside a glommio executor.
pub async fn run_blocking<R, F>(call: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    glommio::executor().spawn_blocking(call).await
}

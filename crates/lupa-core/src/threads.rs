//! Tiles side by side on native threads: [`TileThreads`], the [`TileHelpers`] of the CLI and the
//! benchmarks, whose helpers are threads of this process running [`run_tile_task`] with the same
//! loaded models (the browser's are Web Workers, `web/pool.js`).
//!
//! Why: on `flex` only the convolutions use every core (Lupa's kernels over rayon); Burn's
//! element-wise work between them (SPAN's residuals, the pixel shuffle) and the tile's own
//! extraction, read-back and assembly run on one thread, so one tile at a time leaves cores idle
//! for about half the time. Two tiles at once fill them. The output does not change: every tile
//! is computed as it would be alone ([`crate::UpscaleJob::run_shared`]).
//!
//! ```no_run
//! # use lupa_core::{Job, TileThreads, SrModel};
//! # fn run(job: Job, model: &SrModel) -> lupa_core::Result<()> {
//! let done = std::thread::scope(|scope| {
//!     let mut threads = TileThreads::start(scope, vec![model], 1);
//!     pollster::block_on(job.run_shared(|_| Some(model), &mut threads, async |_| {
//!         std::ops::ControlFlow::Continue(())
//!     }))
//! })?;
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::thread::Scope;

use crate::error::LupaError;
use crate::model::SrModel;
use crate::pipeline::{TileDone, TileHelpers, TileTask, run_tile_task};

/// Helper threads for a job: each takes the next task from one queue, runs it with the model it
/// names and sends the tile back. Dropping it closes the queue; the threads end after their
/// current tile (the scope joins them).
#[derive(Debug)]
pub struct TileThreads {
    shared: Arc<Shared>,
    done: mpsc::Receiver<TileDone>,
    /// For tiles taken back unstarted ([`TileHelpers::reclaim`]).
    back: mpsc::Sender<TileDone>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    tasks: VecDeque<TileTask>,
    closed: bool,
}

impl TileThreads {
    /// Starts `threads` helper threads in `scope` running tiles with `models` (found by their
    /// registry id). Two tiles per thread may be out at once, so a thread's next tile is waiting
    /// when it finishes one.
    pub fn start<'scope, 'env>(
        scope: &'scope Scope<'scope, 'env>,
        models: Vec<&'env SrModel>,
        threads: usize,
    ) -> Self {
        let shared = Arc::new(Shared::default());
        let (back, done) = mpsc::channel();
        // The helpers run the convolution this thread would (the switch is per thread).
        let fused = crate::fused::enabled();
        for _ in 0..threads {
            let (shared, results, models) = (Arc::clone(&shared), back.clone(), models.clone());
            scope.spawn(move || {
                crate::fused::set_enabled(fused);
                while let Some(task) = shared.next() {
                    let index = task.index;
                    let result = match models.iter().find(|m| m.spec.id == task.model) {
                        Some(model) => {
                            catch_unwind(AssertUnwindSafe(|| pollster::block_on(run_tile_task(model, &task))))
                                .unwrap_or_else(|_| Err(LupaError::Backend(format!("tile {index} panicked"))))
                        }
                        None => Err(LupaError::NotLoaded { id: task.model.clone() }),
                    };
                    if results.send(TileDone { index, result }).is_err() {
                        break; // the job is over
                    }
                }
            });
        }
        Self { shared, done, back, capacity: 2 * threads }
    }
}

impl Shared {
    /// The next task, waiting for one; `None` once the queue is closed.
    fn next(&self) -> Option<TileTask> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(task) = queue.tasks.pop_front() {
                return Some(task);
            }
            if queue.closed {
                return None;
            }
            queue = self.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn with_queue<T>(&self, f: impl FnOnce(&mut Queue) -> T) -> T {
        f(&mut self.queue.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for TileThreads {
    fn drop(&mut self) {
        self.shared.with_queue(|q| {
            q.closed = true;
            q.tasks.clear();
        });
        self.shared.ready.notify_all();
    }
}

impl TileHelpers for TileThreads {
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn send(&mut self, task: TileTask) {
        self.shared.with_queue(|q| q.tasks.push_back(task));
        self.shared.ready.notify_one();
    }

    fn try_take(&mut self) -> Option<TileDone> {
        self.done.try_recv().ok()
    }

    fn wait(&mut self) -> impl Future<Output = TileDone> {
        // Natively the job is driven by `pollster`: blocking here is waiting.
        let done = self.done.recv().unwrap_or_else(|_| {
            unreachable!("this struct holds a sender, so the channel is never disconnected")
        });
        std::future::ready(done)
    }

    fn reclaim(&mut self) {
        let unstarted: Vec<TileTask> = self.shared.with_queue(|q| q.tasks.drain(..).collect());
        for task in unstarted {
            let unfinished = Err(LupaError::Backend("taken back unstarted".into()));
            // The receiver is ours: the send cannot fail.
            let _ = self.back.send(TileDone { index: task.index, result: unfinished });
        }
    }
}

//! What every long call shares: the engine settings, progress counted on the worker's thread,
//! and the work run without the GIL while the caller's thread watches for Ctrl-C.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use imgclf_runtime::{Device, EngineConfig, EngineKind, Precision, cores};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::Raise;

/// The engine settings of `engine` (`auto`, `ort`, `tract`) on the CPU, on every core.
pub(crate) fn engine_config(engine: &str) -> PyResult<EngineConfig> {
    device_config(engine, "cpu", "fp32", cores())
}

/// The engine settings of `engine` on `device` (`cpu`, `cuda`, `cuda:N`) at `precision`
/// (`fp32`, `tf32`), on `threads` threads, checked as the CLI checks its flags.
pub(crate) fn device_config(engine: &str, device: &str, precision: &str, threads: usize) -> PyResult<EngineConfig> {
    let value = |name: &str, e: String| PyValueError::new_err(format!("{name}: {e}"));
    let kind: EngineKind = engine.parse().map_err(|e| value("engine", e))?;
    let device: Device = device.parse().map_err(|e| value("device", e))?;
    let precision: Precision = precision.parse().map_err(|e| value("precision", e))?;
    let config = EngineConfig::new(kind, device, precision, threads);
    config.check().raise()?;
    Ok(config)
}

/// How far a long call is: units done of a total, which the work updates from its thread and
/// the caller's thread hands to a Python callback.
#[derive(Default)]
pub(crate) struct Counter {
    done: AtomicUsize,
    total: AtomicUsize,
}

impl Counter {
    pub(crate) fn start(&self, total: usize) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }

    pub(crate) fn advance(&self, n: usize) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
}

/// Runs `work` without the GIL on a thread of its own while this one checks for Ctrl-C every
/// 50 ms and hands `counter` to `progress(done, total)` when it moved; on Ctrl-C (or an error
/// in `progress`) `stop` is set, the library stops between batches, and the work's result (an
/// interruption) is returned.
pub(crate) fn interruptible<T: Send>(
    py: Python<'_>,
    stop: &AtomicBool,
    counter: &Counter,
    progress: Option<&Py<PyAny>>,
    work: impl FnOnce() -> T + Send,
) -> T {
    py.detach(|| {
        std::thread::scope(|scope| {
            let worker = scope.spawn(work);
            let mut shown = (usize::MAX, usize::MAX);
            loop {
                let finished = worker.is_finished();
                let total = counter.total.load(Ordering::Relaxed);
                let now = (counter.done.load(Ordering::Relaxed).min(total), total);
                Python::attach(|py| {
                    let mut ok = py.check_signals().is_ok();
                    if let (Some(callback), true) = (progress, now != shown && now.1 > 0) {
                        ok &= callback.call1(py, now).is_ok();
                        shown = now;
                    }
                    if !ok {
                        stop.store(true, Ordering::Relaxed);
                    }
                });
                if finished {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })
}

/// JSON text as Python objects (through the json module: no second serialiser).
pub(crate) fn json_to_py<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}

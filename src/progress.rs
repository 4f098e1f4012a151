//! Progress while scanning and hashing a big tree, or reading (pulling)
//! an image's layers: a live bar on a terminal (indicatif), a few plain
//! lines in a build log, nothing for a run that ends quickly. Counters are
//! global atomics so the walk only pays an atomic add per file, and a
//! layer read one per chunk.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

static FILES: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LAYER: AtomicU64 = AtomicU64::new(0);
static LAYERS: AtomicU64 = AtomicU64::new(0);
static LAYER_BYTES: AtomicU64 = AtomicU64::new(0);
/// The current layer's size, `u64::MAX` when unknown.
static LAYER_SIZE: AtomicU64 = AtomicU64::new(u64::MAX);

/// A layer starts: the `index`th (from 1) of `count`, `size` bytes as
/// stored when known.
pub fn begin_layer(index: usize, count: usize, size: Option<u64>) {
    LAYER.store(index as u64, Ordering::Relaxed);
    LAYERS.store(count as u64, Ordering::Relaxed);
    LAYER_BYTES.store(0, Ordering::Relaxed);
    LAYER_SIZE.store(size.unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Count bytes of the current layer read (as stored: compressed).
pub fn add_layer_bytes(bytes: u64) {
    LAYER_BYTES.fetch_add(bytes, Ordering::Relaxed);
}

/// "layer 2 of 5: 0.41 of 1.20 GB in 12 s".
fn layer_status(start: Instant) -> String {
    let gb = |b: u64| b as f64 / 1e9;
    let done = LAYER_BYTES.load(Ordering::Relaxed);
    let of = match LAYER_SIZE.load(Ordering::Relaxed) {
        u64::MAX => String::new(),
        size => format!(" of {:.2}", gb(size)),
    };
    format!(
        "layer {} of {}: {:.2}{of} GB in {:.0} s",
        LAYER.load(Ordering::Relaxed),
        LAYERS.load(Ordering::Relaxed),
        gb(done),
        start.elapsed().as_secs_f64()
    )
}

/// Count one hashed file.
pub fn add_file(bytes: u64) {
    FILES.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(bytes, Ordering::Relaxed);
}

/// On a terminal, the spinner appears after this long.
const TTY_FIRST: Duration = Duration::from_secs(1);
/// In a log, the first line comes after this long (short runs print nothing)…
const LOG_FIRST: Duration = Duration::from_secs(5);
/// …and the next ones at most this often.
const LOG_EVERY: Duration = Duration::from_secs(15);

fn file_status(start: Instant) -> String {
    let files = FILES.load(Ordering::Relaxed);
    let gb = BYTES.load(Ordering::Relaxed) as f64 / 1e9;
    format!(
        "{files} files, {gb:.2} GB hashed in {:.0} s",
        start.elapsed().as_secs_f64()
    )
}

/// Reports progress until dropped.
pub struct Progress {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Start reporting files hashed on stderr, labelled `what` (e.g.
    /// "scanning /").
    pub fn start(what: &str) -> Progress {
        FILES.store(0, Ordering::Relaxed);
        BYTES.store(0, Ordering::Relaxed);
        Progress::with(what, file_status)
    }

    /// Start reporting the layers read ([`begin_layer`],
    /// [`add_layer_bytes`]) on stderr, labelled `what` (e.g. "reading
    /// docker://…").
    pub fn layers(what: &str) -> Progress {
        begin_layer(0, 0, None);
        Progress::with(what, layer_status)
    }

    fn with(what: &str, status: fn(Instant) -> String) -> Progress {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let tty = std::io::stderr().is_terminal();
        let what = what.to_string();
        let signal = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let printed = AtomicBool::new(false);
            // On a terminal the spinner appears only once the run is
            // noticeably long, so quick runs don't flash.
            let mut bar: Option<indicatif::ProgressBar> = None;
            let mut next_log = LOG_FIRST;
            let (lock, cvar) = &*signal;
            let mut done = lock.lock().unwrap_or_else(|e| e.into_inner());
            while !*done {
                let wait = if tty {
                    Duration::from_millis(200)
                } else {
                    next_log.saturating_sub(start.elapsed())
                };
                done = cvar
                    .wait_timeout(done, wait)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
                if *done {
                    break;
                }
                if tty && bar.is_none() && start.elapsed() >= TTY_FIRST {
                    let spinner = indicatif::ProgressBar::new_spinner();
                    spinner.enable_steady_tick(Duration::from_millis(120));
                    bar = Some(spinner);
                }
                match &bar {
                    Some(bar) => bar.set_message(format!("{what}: {}", status(start))),
                    None if tty => {}
                    None if start.elapsed() >= next_log => {
                        eprintln!("ostree-finalize: {what}: {} so far", status(start));
                        printed.store(true, Ordering::Relaxed);
                        next_log = start.elapsed() + LOG_EVERY;
                    }
                    None => {}
                }
            }
            match bar {
                Some(bar) => bar.finish_and_clear(),
                None if printed.load(Ordering::Relaxed) => {
                    eprintln!("ostree-finalize: {what}: done, {}", status(start));
                }
                None => {}
            }
        });
        Progress {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

//! Durable file writes off the writer's path (DECISIONS 14): write a temp
//! file, fsync it, keep the old file as `.bak` as Java does, rename, fsync
//! the directory. Bursts coalesce: the latest content of a path wins, and
//! every change it contains is acknowledged once it is on disk.

use crossbeam_channel::{Receiver, Sender};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// Called with the outcome once the content holding a change is durable.
pub type Done = Box<dyn FnOnce(Result<(), String>) + Send>;

pub struct Job {
    pub path: PathBuf,
    pub content: Vec<u8>,
    pub done: Vec<Done>,
}

pub struct Persister {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Persister {
    pub fn spawn() -> std::io::Result<Persister> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("rocketns-persist".into())
            .spawn(move || run(rx))?;
        Ok(Persister {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues a write; the writer never waits for the disk.
    pub fn submit(&self, job: Job) {
        if let Some(tx) = &self.tx {
            if let Err(e) = tx.send(job) {
                for done in e.0.done {
                    done(Err("persistence stopped".into()));
                }
            }
        }
    }
}

impl Drop for Persister {
    /// Finishes every queued write before returning.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut latest: HashMap<PathBuf, (Vec<u8>, Vec<Done>)> = HashMap::new();
        for job in std::iter::once(first).chain(rx.try_iter()) {
            let slot = latest.entry(job.path).or_default();
            slot.0 = job.content;
            slot.1.extend(job.done);
        }
        for (path, (content, done)) in latest {
            let result = write_durably(&path, &content).map_err(|e| {
                log::error!("persisting {} failed: {e}", path.display());
                format!("persist {} failed: {e}", path.display())
            });
            for d in done {
                d(result.clone());
            }
        }
    }
}

/// Replaces `path` with `content` so that a crash at any instant leaves the
/// old or the new file, never a broken one.
pub fn write_durably(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
    }
    if path.exists() {
        let mut bak = path.as_os_str().to_owned();
        bak.push(".bak");
        // Best effort, as Java's: a missing .bak loses nothing.
        let _ = fs::copy(path, PathBuf::from(bak));
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

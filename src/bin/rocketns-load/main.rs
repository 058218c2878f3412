//! rocketns-load: the load generator that ships with rocketns.
//!
//! Modes: `lookup` (route lookups, closed or open loop), `register`
//! (brokers re-registering with churn), `mixed` (both at once), `storm`
//! (connect, one lookup, close), `abuse` (lookup latency on one shard
//! while hostile clients run, phase by phase) and `serve-fixed` (a trivial
//! responder that gives the ceiling of this machine and client, DECISIONS
//! 23). The client is one glommio executor thread with every connection a
//! local task (`abuse` adds a second one for its abusers). Every
//! run is bounded in time and count, talks only to the address it is given
//! and verifies every reply; errors are counted by kind, never fatal.
//!
//! This file starts the mode named on the command line and holds what the
//! modes share; `args` is the command line, `client` runs the client
//! modes and prints their summary, `abuse` and `abusers` are the abuse
//! mode, `fixed` is the responder and `report` turns runs into a table and
//! plots.

mod abuse;
mod abusers;
mod args;
mod client;
mod fixed;
mod lookup;
mod register;
mod report;
mod stats;
mod wire;

use args::{resolve, u64_of};
use clap::ArgMatches;
use glommio::{LocalExecutorBuilder, Placement};
use serde_json::{Map, Value};
use std::future::Future;
use std::time::{Duration, Instant};

/// The phases of a timed run: load starts at `start`, replies to requests
/// sent (or meant to be sent) in `[from, until)` are measured.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub start: Instant,
    pub from: Instant,
    pub until: Instant,
}

impl Window {
    fn new(warmup: Duration, duration: Duration) -> Window {
        let start = Instant::now();
        Window {
            start,
            from: start + warmup,
            until: start + warmup + duration,
        }
    }

    pub fn contains(&self, t: Instant) -> bool {
        t >= self.from && t < self.until
    }
}

fn main() {
    let m = args::cli().get_matches();
    let (name, sub) = m.subcommand().expect("a mode is required");
    let result = match name {
        "serve-fixed" => serve_fixed(sub),
        "report" => run_report(sub),
        "abuse" => abuse::run(sub),
        mode => client::run_client(mode, sub),
    };
    if let Err(e) = result {
        eprintln!("rocketns-load: {e}");
        std::process::exit(2);
    }
}

fn run_report(m: &ArgMatches) -> Result<(), String> {
    let input = m.get_one::<String>("input").expect("required");
    let out = m.get_one::<String>("out").expect("required");
    let table = report::write(input.as_ref(), out.as_ref())?;
    print!("{table}");
    Ok(())
}

/// Raises the open-file limit to its hard maximum and checks `need` fits.
fn ensure_fds(need: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Ok(());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    if need > lim.rlim_cur {
        return Err(format!(
            "this run needs about {need} file descriptors and the limit is {}; use fewer connections",
            lim.rlim_cur
        ));
    }
    Ok(())
}

/// Runs `f` on the client's one executor thread.
fn on_executor<T, G, F>(name: &str, f: G) -> Result<T, String>
where
    T: Send + 'static,
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(64 << 10)
        .name(name)
        .spawn(f)
        .map_err(|e| format!("starting the executor: {e}"))?
        .join()
        .map_err(|e| format!("executor: {e}"))
}

fn git_commit() -> Value {
    let out = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string().into(),
        _ => Value::Null,
    }
}

fn serve_fixed(m: &ArgMatches) -> Result<(), String> {
    let listen_text = m.get_one::<String>("listen").expect("required").clone();
    let listen = resolve(&listen_text)?;
    let duration = Duration::from_secs(u64_of(m, "duration-secs"));
    let json = m.get_flag("json");
    ensure_fds(0)?;
    eprintln!("rocketns-load serve-fixed: listening on {listen} for {duration:?}");
    let counts = on_executor("rocketns-fixed", move || async move {
        let c = fixed::serve(listen, duration).await?;
        Ok::<_, String>([
            c.connections.get(),
            c.requests.get(),
            c.broken_frames.get(),
            c.accept_errors.get(),
        ])
    })??;
    let [connections, requests, broken, accept_errors] = counts;
    println!(
        "rocketns-load serve-fixed: {connections} connections, {requests} requests answered in {} s ({:.1}/s), {broken} broken frames, {accept_errors} accept errors",
        duration.as_secs(),
        requests as f64 / duration.as_secs_f64()
    );
    if json {
        let mut o = Map::new();
        o.insert("mode".into(), "serve-fixed".into());
        o.insert("listen".into(), listen_text.into());
        o.insert("duration_s".into(), duration.as_secs().into());
        o.insert("connections_total".into(), connections.into());
        o.insert("requests_total".into(), requests.into());
        o.insert(
            "throughput_per_s".into(),
            ((requests as f64 / duration.as_secs_f64() * 10.0).round() / 10.0).into(),
        );
        let mut kinds = Map::new();
        if broken > 0 {
            kinds.insert("broken_frame".into(), broken.into());
        }
        if accept_errors > 0 {
            kinds.insert("accept".into(), accept_errors.into());
        }
        o.insert("errors_total".into(), (broken + accept_errors).into());
        o.insert("errors_by_kind".into(), Value::Object(kinds));
        o.insert("git_commit".into(), git_commit());
        println!("{}", Value::Object(o));
    }
    Ok(())
}

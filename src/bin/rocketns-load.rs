//! rocketns-load: the load generator that ships with rocketns.
//!
//! Modes: `lookup` (route lookups, closed or open loop), `register`
//! (brokers re-registering with churn), `mixed` (both at once), `storm`
//! (connect, one lookup, close) and `serve-fixed` (a trivial responder that
//! gives the ceiling of this machine and client, DECISIONS 23). The client
//! is one glommio executor thread with every connection a local task. Every
//! run is bounded in time and count, talks only to the address it is given
//! and verifies every reply; errors are counted by kind, never fatal.

#[path = "rocketns-load/fixed.rs"]
mod fixed;
#[path = "rocketns-load/lookup.rs"]
mod lookup;
#[path = "rocketns-load/register.rs"]
mod register;
#[path = "rocketns-load/report.rs"]
mod report;
#[path = "rocketns-load/stats.rs"]
mod stats;
#[path = "rocketns-load/wire.rs"]
mod wire;

use clap::parser::ValueSource;
use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use glommio::{LocalExecutorBuilder, Placement, Task};
use register::Churn;
use rocketns::protocol::frame::FRAME_SIZE_MAX;
use serde_json::{Map, Value};
use stats::Stats;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wire::{Mix, TopicSet, Verifier};

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

/// Options every client mode has.
struct Common {
    addr: SocketAddr,
    addr_text: String,
    duration: Duration,
    warmup: Duration,
    timeout: Duration,
    seed: u64,
    json: bool,
}

fn main() {
    let m = cli().get_matches();
    let (name, sub) = m.subcommand().expect("a mode is required");
    let result = match name {
        "serve-fixed" => serve_fixed(sub),
        "report" => run_report(sub),
        mode => run_client(mode, sub),
    };
    if let Err(e) = result {
        eprintln!("rocketns-load: {e}");
        std::process::exit(2);
    }
}

fn cli() -> Command {
    let lookup = topic_args(lookup_args(client_args(
        Command::new("lookup").about("GET_ROUTEINFO_BY_TOPIC from many connections"),
    )));
    let register = broker_args(
        client_args(Command::new("register").about("brokers re-registering their topics")),
        "30000",
        "none",
    );
    let mixed = lookup_args(broker_args(
        client_args(
            Command::new("mixed").about("registration churn and lookups of the brokers' topics"),
        ),
        "1000",
        "topics",
    ))
    .arg(missing_arg());
    let storm = topic_args(
        client_args(Command::new("storm").about("connect, one lookup, close; many times"))
            .arg(
                Arg::new("connections")
                    .long("connections")
                    .help("connections in all")
                    .value_parser(value_parser!(u64).range(1..=1_000_000))
                    .default_value("1000"),
            )
            .arg(
                Arg::new("concurrency")
                    .long("concurrency")
                    .help("connections open at once")
                    .value_parser(value_parser!(u64).range(1..=20_000))
                    .default_value("100"),
            ),
    );
    let serve = Command::new("serve-fixed")
        .about("answer every request with one fixed route (the ceiling of machine and client)")
        .arg(
            Arg::new("listen")
                .long("listen")
                .required(true)
                .help("HOST:PORT to listen on"),
        )
        .arg(duration_arg())
        .arg(json_arg());
    let report = Command::new("report")
        .about("JSON lines of runs (with --case and --label) to table.md and one SVG plot per case")
        .arg(
            Arg::new("input")
                .long("input")
                .required(true)
                .help("file of JSON lines"),
        )
        .arg(
            Arg::new("out")
                .long("out")
                .required(true)
                .help("folder for table.md and plots"),
        );
    Command::new("rocketns-load")
        .about("Load generator for a RocketMQ NameServer")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands([lookup, register, mixed, storm, serve, report])
}

fn duration_arg() -> Arg {
    Arg::new("duration-secs")
        .long("duration-secs")
        .help("measured seconds (max 600)")
        .value_parser(value_parser!(u64).range(1..=600))
        .default_value("10")
}

fn json_arg() -> Arg {
    Arg::new("json")
        .long("json")
        .action(ArgAction::SetTrue)
        .help("print one JSON summary line last on stdout")
}

fn missing_arg() -> Arg {
    Arg::new("missing-pct")
        .long("missing-pct")
        .help("percent of lookups for topics that do not exist")
        .value_parser(value_parser!(f64))
        .default_value("0")
}

fn client_args(c: Command) -> Command {
    c.arg(
        Arg::new("addr")
            .long("addr")
            .required(true)
            .help("HOST:PORT of the NameServer"),
    )
    .arg(duration_arg())
    .arg(
        Arg::new("warmup-secs")
            .long("warmup-secs")
            .help("seconds of load before measuring")
            .value_parser(value_parser!(u64).range(0..=60))
            .default_value("1"),
    )
    .arg(
        Arg::new("timeout-ms")
            .long("timeout-ms")
            .help("reply and connect timeout")
            .value_parser(value_parser!(u64).range(1..=60_000))
            .default_value("5000"),
    )
    .arg(
        Arg::new("seed")
            .long("seed")
            .help("seed of the topic choice")
            .value_parser(value_parser!(u64))
            .default_value("1"),
    )
    .arg(json_arg())
    .arg(
        Arg::new("label")
            .long("label")
            .help("what is measured (e.g. rocketns, peer), kept in the JSON line"),
    )
    .arg(
        Arg::new("case")
            .long("case")
            .help("name of the comparison this run belongs to, kept in the JSON line"),
    )
}

fn run_report(m: &ArgMatches) -> Result<(), String> {
    let input = m.get_one::<String>("input").expect("required");
    let out = m.get_one::<String>("out").expect("required");
    let table = report::write(input.as_ref(), out.as_ref())?;
    print!("{table}");
    Ok(())
}

fn lookup_args(c: Command) -> Command {
    c.arg(
        Arg::new("connections")
            .long("connections")
            .value_parser(value_parser!(u64).range(1..=20_000))
            .default_value("100"),
    )
    .arg(
        Arg::new("in-flight")
            .long("in-flight")
            .help("requests in flight per connection (open loop: the cap, default 256)")
            .value_parser(value_parser!(u64).range(1..=256))
            .default_value("1"),
    )
    .arg(
        Arg::new("rate")
            .long("rate")
            .help("open loop at this many lookups/s in all; latency from the intended send time")
            .value_parser(value_parser!(f64)),
    )
}

/// The topic mix of `lookup` and `storm`.
fn topic_args(c: Command) -> Command {
    c.arg(
        Arg::new("topics")
            .long("topics")
            .help("topics bench-topic-<i>, i < N")
            .value_parser(value_parser!(u64).range(1..=10_000_000))
            .default_value("1000"),
    )
    .arg(
        Arg::new("brokers")
            .long("brokers")
            .help("ask for register's topics bench-topic-<b>-<i> instead of --topics")
            .value_parser(value_parser!(u64).range(1..=10_000)),
    )
    .arg(
        Arg::new("topics-per-broker")
            .long("topics-per-broker")
            .help("with --brokers")
            .value_parser(value_parser!(u64).range(1..=1_000_000))
            .default_value("1000"),
    )
    .arg(missing_arg())
}

fn broker_args(c: Command, period: &'static str, churn: &'static str) -> Command {
    c.arg(
        Arg::new("brokers")
            .long("brokers")
            .value_parser(value_parser!(u64).range(1..=10_000))
            .default_value("10"),
    )
    .arg(
        Arg::new("topics-per-broker")
            .long("topics-per-broker")
            .value_parser(value_parser!(u64).range(1..=1_000_000))
            .default_value("1000"),
    )
    .arg(
        Arg::new("period-ms")
            .long("period-ms")
            .help("re-registration period")
            .value_parser(value_parser!(u64).range(10..=600_000))
            .default_value(period),
    )
    .arg(
        Arg::new("churn")
            .long("churn")
            .value_parser(["none", "version", "topics"])
            .default_value(churn),
    )
}

fn u64_of(m: &ArgMatches, id: &str) -> u64 {
    *m.get_one::<u64>(id).expect("defaulted")
}

fn common(m: &ArgMatches) -> Result<Common, String> {
    let addr_text = m.get_one::<String>("addr").expect("required").clone();
    let addr = resolve(&addr_text)?;
    Ok(Common {
        addr,
        addr_text,
        duration: Duration::from_secs(u64_of(m, "duration-secs")),
        warmup: Duration::from_secs(u64_of(m, "warmup-secs")),
        timeout: Duration::from_millis(u64_of(m, "timeout-ms")),
        seed: u64_of(m, "seed"),
        json: m.get_flag("json"),
    })
}

fn resolve(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("address {text}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {text} resolves to nothing"))
}

/// The topics `lookup` and `storm` ask for (`topic_args`).
fn topic_set_of(m: &ArgMatches) -> TopicSet {
    match m.get_one::<u64>("brokers") {
        Some(&brokers) => TopicSet::PerBroker {
            brokers,
            per_broker: u64_of(m, "topics-per-broker"),
        },
        None => TopicSet::Flat(u64_of(m, "topics")),
    }
}

fn mix_of(m: &ArgMatches, topics: TopicSet) -> Result<Mix, String> {
    let pct = *m.get_one::<f64>("missing-pct").expect("defaulted");
    if !(0.0..=100.0).contains(&pct) {
        return Err(format!("--missing-pct {pct} is not within 0..=100"));
    }
    Ok(Mix {
        topics,
        missing: pct / 100.0,
    })
}

/// Lookup settings of `lookup` and `mixed`.
struct LookupOpts {
    connections: usize,
    in_flight: usize,
    rate: Option<f64>,
}

fn lookup_opts(m: &ArgMatches) -> Result<LookupOpts, String> {
    let connections = u64_of(m, "connections") as usize;
    let rate = m.get_one::<f64>("rate").copied();
    if let Some(r) = rate {
        if !(r > 0.0 && r <= 10_000_000.0) {
            return Err(format!("--rate {r} is not within (0, 10000000]"));
        }
    }
    let explicit = m.value_source("in-flight") == Some(ValueSource::CommandLine);
    let in_flight = match (rate, explicit) {
        (Some(_), false) => 256,
        _ => u64_of(m, "in-flight") as usize,
    };
    Ok(LookupOpts {
        connections,
        in_flight,
        rate,
    })
}

fn register_ctx(m: &ArgMatches, c: &Common) -> Result<register::RegisterCtx, String> {
    let churn = match m.get_one::<String>("churn").map(String::as_str) {
        Some("version") => Churn::Version,
        Some("topics") => Churn::Topics,
        _ => Churn::None,
    };
    let ctx = register::RegisterCtx {
        addr: c.addr,
        timeout: c.timeout,
        brokers: u64_of(m, "brokers"),
        per_broker: u64_of(m, "topics-per-broker"),
        period: Duration::from_millis(u64_of(m, "period-ms")),
        churn,
        timestamp_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        stats: RefCell::new(Stats::default()),
        first: RefCell::new(Stats::default()),
    };
    let largest = register::largest_frame(&ctx);
    if largest > FRAME_SIZE_MAX {
        return Err(format!(
            "a registration of {} topics is {largest} bytes, above the {FRAME_SIZE_MAX}-byte frame limit: \
             spread the topics over more brokers (--brokers) with fewer each (--topics-per-broker)",
            ctx.per_broker
        ));
    }
    Ok(ctx)
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

/// Awaits `tasks` until `deadline`: what they returned, and the count of
/// those still running then (dropped, so cancelled).
async fn join_until<T: 'static>(tasks: Vec<Task<T>>, deadline: Instant) -> (Vec<T>, u64) {
    let total = tasks.len() as u64;
    let done = Rc::new(RefCell::new(Vec::with_capacity(tasks.len())));
    let all = {
        let done = done.clone();
        async move {
            for t in tasks {
                let v = t.await;
                done.borrow_mut().push(v);
            }
        }
    };
    let timer = glommio::timer::sleep(deadline.saturating_duration_since(Instant::now()));
    futures_lite::future::or(all, timer).await;
    let done = std::mem::take(&mut *done.borrow_mut());
    let stuck = total - done.len() as u64;
    (done, stuck)
}

/// What a client run hands back to the main thread.
#[derive(Default)]
struct Outcome {
    /// The main histogram: lookups, registrations, or storm connections.
    main: Stats,
    /// Mixed mode: the registrations.
    register: Option<Stats>,
    /// Register and mixed: the first registration of each broker.
    first: Option<Stats>,
    /// Seconds the figures in `main` are divided by.
    window: Duration,
    register_body_bytes: usize,
}

fn run_client(mode: &str, m: &ArgMatches) -> Result<(), String> {
    let c = common(m)?;
    let mut params = Map::new();
    params.insert("mode".into(), mode.into());
    params.insert("addr".into(), c.addr_text.clone().into());
    params.insert("duration_s".into(), c.duration.as_secs().into());
    params.insert("timeout_ms".into(), (c.timeout.as_millis() as u64).into());
    params.insert("client_threads".into(), 1.into());
    for key in ["label", "case"] {
        if let Some(v) = m.get_one::<String>(key) {
            params.insert(key.into(), v.clone().into());
        }
    }
    let drain = c.timeout + Duration::from_secs(1);
    let outcome = match mode {
        "lookup" => {
            let opts = lookup_opts(m)?;
            let mix = mix_of(m, topic_set_of(m))?;
            lookup_params(&mut params, &c, &opts, &mix);
            let fds = opts.connections as u64 * if opts.rate.is_some() { 2 } else { 1 };
            ensure_fds(fds + 64)?;
            let (addr, timeout, seed, warmup, duration) =
                (c.addr, c.timeout, c.seed, c.warmup, c.duration);
            on_executor("rocketns-load", move || async move {
                let streams = lookup::connect_all(addr, opts.connections, timeout).await;
                let window = Window::new(warmup, duration);
                let ctx = Rc::new(lookup_ctx(&opts, mix, addr, timeout, seed, window));
                let tasks = lookup::start(&ctx, streams);
                let (_, stuck) = join_until(tasks, window.until + drain).await;
                let mut main = ctx.take_stats();
                main.errors_n("tasks_stuck_at_end", stuck);
                Outcome {
                    main,
                    window: duration,
                    ..Outcome::default()
                }
            })?
        }
        "register" | "mixed" => {
            let rctx = register_ctx(m, &c)?;
            params.insert("brokers".into(), rctx.brokers.into());
            params.insert("topics_per_broker".into(), rctx.per_broker.into());
            params.insert("period_ms".into(), (rctx.period.as_millis() as u64).into());
            params.insert("churn".into(), rctx.churn.name().into());
            let body_bytes = register::largest_frame(&rctx);
            let lookups = if mode == "mixed" {
                let opts = lookup_opts(m)?;
                let mix = mix_of(
                    m,
                    TopicSet::PerBroker {
                        brokers: rctx.brokers,
                        per_broker: rctx.per_broker,
                    },
                )?;
                lookup_params(&mut params, &c, &opts, &mix);
                Some((opts, mix))
            } else {
                params.insert("warmup_s".into(), c.warmup.as_secs().into());
                params.insert("seed".into(), Value::Null);
                None
            };
            let conns = lookups.as_ref().map_or(0, |(o, _)| {
                o.connections as u64 * if o.rate.is_some() { 2 } else { 1 }
            });
            ensure_fds(conns + rctx.brokers + 64)?;
            let (addr, timeout, seed, warmup, duration) =
                (c.addr, c.timeout, c.seed, c.warmup, c.duration);
            on_executor("rocketns-load", move || async move {
                let rctx = Rc::new(rctx);
                let brokers = register::first_phase(&rctx).await;
                let streams = match &lookups {
                    Some((o, _)) => lookup::connect_all(addr, o.connections, timeout).await,
                    None => Vec::new(),
                };
                let window = Window::new(warmup, duration);
                let broker_tasks = register::start(&rctx, brokers, window);
                let lctx = lookups.map(|(opts, mix)| {
                    let ctx = Rc::new(lookup_ctx(&opts, mix, addr, timeout, seed, window));
                    (lookup::start(&ctx, streams), ctx)
                });
                let lctx = match lctx {
                    Some((tasks, ctx)) => {
                        let (_, stuck) = join_until(tasks, window.until + drain).await;
                        ctx.stats.borrow_mut().errors_n("tasks_stuck_at_end", stuck);
                        Some(ctx)
                    }
                    None => None,
                };
                // The brokers' connections close only now that lookups are done.
                let (brokers, stuck) = join_until(broker_tasks, window.until + drain).await;
                drop(brokers);
                let mut registrations = rctx.stats.take();
                registrations.errors_n("tasks_stuck_at_end", stuck);
                let first = Some(rctx.first.take());
                let (main, register) = match lctx {
                    Some(l) => (l.take_stats(), Some(registrations)),
                    None => (registrations, None),
                };
                Outcome {
                    main,
                    register,
                    first,
                    window: duration,
                    register_body_bytes: body_bytes,
                }
            })?
        }
        "storm" => {
            let total = u64_of(m, "connections") as usize;
            let concurrency = (u64_of(m, "concurrency") as usize).min(total);
            let mix = mix_of(m, topic_set_of(m))?;
            params.insert("connections".into(), total.into());
            params.insert("concurrency".into(), concurrency.into());
            topic_params(&mut params, &mix);
            params.insert("seed".into(), c.seed.into());
            params.insert("warmup_s".into(), 0.into());
            ensure_fds(concurrency as u64 + 64)?;
            let (addr, timeout, seed, duration) = (c.addr, c.timeout, c.seed, c.duration);
            on_executor("rocketns-load", move || async move {
                let start = Instant::now();
                let ctx = Rc::new(lookup::StormCtx {
                    addr,
                    timeout,
                    total,
                    mix,
                    seed,
                    until: start + duration,
                    next: Cell::new(0),
                    stats: RefCell::new(Stats::default()),
                    verifier: RefCell::new(Verifier::default()),
                });
                let tasks = lookup::start_storm(&ctx, concurrency);
                let (_, stuck) = join_until(tasks, start + duration + drain).await;
                let elapsed = start.elapsed().min(duration);
                let mut main = ctx.stats.take();
                main.errors_n("tasks_stuck_at_end", stuck);
                main.errors_n(
                    "not_attempted_in_time",
                    total.saturating_sub(ctx.next.get()) as u64,
                );
                Outcome {
                    main,
                    window: elapsed,
                    ..Outcome::default()
                }
            })?
        }
        other => return Err(format!("unknown mode {other}")),
    };
    report(mode, params, &outcome, c.json);
    Ok(())
}

fn lookup_ctx(
    opts: &LookupOpts,
    mix: Mix,
    addr: SocketAddr,
    timeout: Duration,
    seed: u64,
    window: Window,
) -> lookup::LookupCtx {
    lookup::LookupCtx {
        addr,
        timeout,
        in_flight: opts.in_flight,
        rate_per_conn: opts.rate.map(|r| r / opts.connections as f64),
        connections: opts.connections,
        mix,
        seed,
        window,
        stats: RefCell::new(Stats::default()),
        verifier: RefCell::new(Verifier::default()),
        served: RefCell::new(vec![false; opts.connections]),
    }
}

fn topic_params(params: &mut Map<String, Value>, mix: &Mix) {
    params.insert("topics".into(), mix.topics.len().into());
    let names = match mix.topics {
        TopicSet::Flat(_) => "bench-topic-<i>",
        TopicSet::PerBroker { .. } => "bench-topic-<b>-<i>",
    };
    params.insert("topic_names".into(), names.into());
    params.insert("missing_pct".into(), (mix.missing * 100.0).into());
}

fn lookup_params(params: &mut Map<String, Value>, c: &Common, o: &LookupOpts, mix: &Mix) {
    params.insert("connections".into(), o.connections.into());
    params.insert("in_flight".into(), o.in_flight.into());
    params.insert(
        "rate_per_s".into(),
        o.rate.map_or(Value::Null, |r| r.into()),
    );
    params.insert(
        "loop".into(),
        if o.rate.is_some() { "open" } else { "closed" }.into(),
    );
    topic_params(params, mix);
    params.insert("warmup_s".into(), c.warmup.as_secs().into());
    params.insert("seed".into(), c.seed.into());
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

fn report(mode: &str, mut params: Map<String, Value>, o: &Outcome, json: bool) {
    let what = match mode {
        "register" => "registrations",
        "storm" => "connect+lookup",
        _ => "lookups",
    };
    let mut human = format!("rocketns-load {mode}: ");
    let shown: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"')))
        .collect();
    human.push_str(&shown.join(" "));
    human.push('\n');
    human.push_str(&o.main.human(what, Some(o.window)));
    if let Some(r) = &o.register {
        human.push('\n');
        human.push_str(&r.human("registrations", Some(o.window)));
    }
    if let Some(f) = &o.first {
        human.push('\n');
        human.push_str(&f.human("first registration of each broker (connect included)", None));
        human.push_str(&format!(
            "\n  largest registration frame: {} bytes",
            o.register_body_bytes
        ));
    }
    println!("{human}");
    if !json {
        return;
    }
    o.main.to_json("", o.window, &mut params);
    if let Some(r) = &o.register {
        r.to_json("register_", o.window, &mut params);
    }
    if let Some(f) = &o.first {
        let mut first = Map::new();
        f.to_json("", o.window, &mut first);
        first.remove("throughput_per_s");
        for (k, v) in first {
            params.insert(format!("first_register_{k}"), v);
        }
        params.insert(
            "register_frame_bytes_max".into(),
            o.register_body_bytes.into(),
        );
    }
    params.insert("measured_s".into(), round3(o.window.as_secs_f64()).into());
    params.insert("git_commit".into(), git_commit());
    println!("{}", Value::Object(params));
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
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

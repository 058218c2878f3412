//! The client modes (`lookup`, `register`, `mixed`, `storm`): one run on
//! the client's executor, then its summary, human and JSON.

use crate::args::{
    common, lookup_opts, mix_of, register_ctx, topic_set_of, u64_of, Common, LookupOpts,
};
use crate::stats::Stats;
use crate::wire::{Mix, TopicSet, Verifier};
use crate::{ensure_fds, git_commit, lookup, on_executor, register, Window};
use clap::ArgMatches;
use glommio::Task;
use serde_json::{Map, Value};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Awaits `tasks` until `deadline`: what they returned, and the count of
/// those still running then (dropped, so cancelled).
pub async fn join_until<T: 'static>(tasks: Vec<Task<T>>, deadline: Instant) -> (Vec<T>, u64) {
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

pub fn run_client(mode: &str, m: &ArgMatches) -> Result<(), String> {
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

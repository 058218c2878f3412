//! The command line: every mode's arguments, and the settings read back
//! from them before a run starts.

use crate::register::{self, Churn};
use crate::stats::Stats;
use crate::wire::{Mix, TopicSet};
use clap::parser::ValueSource;
use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use rocketns::protocol::frame::FRAME_SIZE_MAX;
use std::cell::RefCell;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn cli() -> Command {
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
    let abuse = abuse_args(client_args(Command::new("abuse").about(
        "lookup latency on one shard while hostile clients run, phase by phase, \
         against no abuse in the same run; --duration-secs is per phase, --json \
         prints one line per phase, --seed seeds the large registration's names",
    )));
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
        .subcommands([lookup, register, mixed, storm, abuse, serve, report])
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

/// The `abuse` mode: the measuring client, the phases and each abuse's size.
fn abuse_args(c: Command) -> Command {
    c.arg(
        Arg::new("connections")
            .long("connections")
            .help("measuring connections, 1 lookup in flight each, closed loop")
            .value_parser(value_parser!(u64).range(1..=1000))
            .default_value("10"),
    )
    .arg(
        Arg::new("rate")
            .long("rate")
            .help("pace the measuring client at this many lookups/s in all (still 1 in flight per connection); default: as fast as replies come")
            .value_parser(value_parser!(f64)),
    )
    .arg(
        Arg::new("topic")
            .long("topic")
            .help("the topic the measuring client looks up; registered by the run's own broker")
            .default_value("T"),
    )
    .arg(
        Arg::new("phases")
            .long("phases")
            .help("comma-separated, in order: none, slow-readers, large-frames, flood")
            .default_value("none,slow-readers,large-frames,flood,none"),
    )
    .arg(
        Arg::new("gap-secs")
            .long("gap-secs")
            .help("unmeasured seconds after each phase, for the server to clear the abuse")
            .value_parser(value_parser!(u64).range(0..=60))
            .default_value("2"),
    )
    .arg(
        Arg::new("slow-readers")
            .long("slow-readers")
            .help("connections that pipeline lookups and never read")
            .value_parser(value_parser!(u64).range(1..=10_000))
            .default_value("300"),
    )
    .arg(
        Arg::new("slow-reader-rcvbuf")
            .long("slow-reader-rcvbuf")
            .help("SO_RCVBUF of a slow reader's socket, so the kernel does not absorb the replies")
            .value_parser(value_parser!(u64).range(1..=1 << 24))
            .default_value("4096"),
    )
    .arg(
        Arg::new("slow-reader-sndbuf")
            .long("slow-reader-sndbuf")
            .help("SO_SNDBUF of a slow reader's socket, so its lookups are not queued by the megabyte here")
            .value_parser(value_parser!(u64).range(1..=1 << 24))
            .default_value("65536"),
    )
    .arg(
        Arg::new("flood-conns")
            .long("flood-conns")
            .help("flood workers, each opening connection after connection")
            .value_parser(value_parser!(u64).range(1..=15_000))
            .default_value("1000"),
    )
    .arg(
        Arg::new("flood-hold-ms")
            .long("flood-hold-ms")
            .help("a flood connection the server keeps is closed after this long")
            .value_parser(value_parser!(u64).range(1..=60_000))
            .default_value("500"),
    )
    .arg(
        Arg::new("abuser-nice")
            .long("abuser-nice")
            .help("nice value of the abusers' thread, so it yields the CPU to the measuring thread")
            .value_parser(value_parser!(i64).range(0..=19))
            .default_value("19"),
    )
    .arg(
        Arg::new("metrics-addr")
            .long("metrics-addr")
            .help("HOST:PORT of the server's HTTP side: its counters per phase"),
    )
    .arg(
        Arg::new("server-pid")
            .long("server-pid")
            .help("the server's pid: its resident memory per phase, from /proc")
            .value_parser(value_parser!(u32)),
    )
    .arg(
        Arg::new("sample-ms")
            .long("sample-ms")
            .help("period of the metrics and memory samples")
            .value_parser(value_parser!(u64).range(10..=10_000))
            .default_value("250"),
    )
}

pub fn u64_of(m: &ArgMatches, id: &str) -> u64 {
    *m.get_one::<u64>(id).expect("defaulted")
}

/// Options every client mode has.
pub struct Common {
    pub addr: SocketAddr,
    pub addr_text: String,
    pub duration: Duration,
    pub warmup: Duration,
    pub timeout: Duration,
    pub seed: u64,
    pub json: bool,
}

pub fn common(m: &ArgMatches) -> Result<Common, String> {
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

pub fn resolve(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("address {text}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {text} resolves to nothing"))
}

/// The topics `lookup` and `storm` ask for (`topic_args`).
pub fn topic_set_of(m: &ArgMatches) -> TopicSet {
    match m.get_one::<u64>("brokers") {
        Some(&brokers) => TopicSet::PerBroker {
            brokers,
            per_broker: u64_of(m, "topics-per-broker"),
        },
        None => TopicSet::Flat(u64_of(m, "topics")),
    }
}

pub fn mix_of(m: &ArgMatches, topics: TopicSet) -> Result<Mix, String> {
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
pub struct LookupOpts {
    pub connections: usize,
    pub in_flight: usize,
    pub rate: Option<f64>,
}

pub fn lookup_opts(m: &ArgMatches) -> Result<LookupOpts, String> {
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

pub fn register_ctx(m: &ArgMatches, c: &Common) -> Result<register::RegisterCtx, String> {
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

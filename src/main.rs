//! `rocketns`: command line and start-up, as `mqnamesrv` (DECISIONS 4).

use clap::{Arg, ArgAction, Command};
use rocketns::clock::MonotonicClock;
use rocketns::config::{Config, KEYS};
use rocketns::preflight;
use rocketns::server::{self, Server};
use std::process::ExitCode;
use std::sync::Arc;

fn command() -> Command {
    let mut cmd = Command::new("rocketns")
        .about("A RocketMQ NameServer")
        // The last of a repeated flag wins: a container's args can override
        // the flags its image's entrypoint sets.
        .args_override_self(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            Arg::new("configFile")
                .short('c')
                .long("configFile")
                .value_name("FILE")
                .help("Name server config properties file"),
        )
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::Help)
                .help("Print help"),
        )
        .arg(
            Arg::new("namesrvAddr")
                .short('n')
                .long("namesrvAddr")
                .value_name("ADDR")
                .help("Name server address list, accepted and ignored as in Java"),
        )
        .arg(
            Arg::new("healthcheck")
                .long("healthcheck")
                .value_name("HOST:PORT[/PATH]")
                .num_args(0..=1)
                .default_missing_value("127.0.0.1:8080")
                .help("GET /healthz (or PATH, e.g. /readyz) of a running rocketns (default 127.0.0.1:8080), exit 0 on 200: a container HEALTHCHECK or exec probe without a shell or curl"),
        )
        .arg(
            Arg::new("printConfigItem")
                .short('p')
                .long("printConfigItem")
                .action(ArgAction::SetTrue)
                .help("Print all config items"),
        );
    for key in KEYS {
        cmd = cmd.arg(
            Arg::new(key.name)
                .long(key.name)
                .value_name("VALUE")
                .hide(true)
                .help("Any config key, overriding the file"),
        );
    }
    cmd.after_help("Any config key may also be given as --KEY VALUE (e.g. --listenPort 9876).")
}

fn main() -> ExitCode {
    let matches = match command().try_get_matches() {
        Ok(m) => m,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(1);
        }
    };
    if let Some(target) = matches.get_one::<String>("healthcheck") {
        return healthcheck(target);
    }
    let env = env_logger::Env::default().default_filter_or("info");
    env_logger::Builder::from_env(env).init();

    let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    let mut config = Config::defaults(&home, server::usable_cpus());
    if let Err(e) = load(&mut config, &matches, &home) {
        eprintln!("{e}");
        return ExitCode::from(255);
    }
    if matches.get_flag("printConfigItem") {
        for line in config.print_lines() {
            println!("{line}");
        }
        return ExitCode::SUCCESS;
    }
    log_config(&config);
    if let Err(why) = preflight_checks() {
        log::error!("{why}");
        eprintln!("rocketns cannot start: {why}");
        return ExitCode::from(1);
    }
    run(config)
}

/// `--healthcheck HOST:PORT[/PATH]`: exit 0 when it answers 200.
fn healthcheck(target: &str) -> ExitCode {
    let (addr, path) = match target.find('/') {
        Some(i) => target.split_at(i),
        None => (target, "/healthz"),
    };
    match rocketns::http::healthcheck(addr, path) {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("http://{addr}{path} answered {status}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("http://{addr}{path}: {e}");
            ExitCode::from(1)
        }
    }
}

/// The effective config at start, as Java logs it, after warnings about
/// keys rocketns ignores.
fn log_config(config: &Config) {
    for key in config.unknown_keys() {
        log::warn!("config key {key} is not known to rocketns and is ignored");
    }
    for key in config.unused_keys() {
        log::warn!("config key {key} is a Java NameServer key rocketns does not use; ignored");
    }
    for line in config.print_lines() {
        log::info!("{line}");
    }
}

/// io_uring and locked memory must work. (The connection caps are fitted
/// to the open-files limit by `Server::start`.)
fn preflight_checks() -> Result<(), String> {
    preflight::memlock()?;
    preflight::io_uring()
}

/// Starts the server, serves until SIGTERM or SIGINT, then stops it.
fn run(config: Config) -> ExitCode {
    // Every thread started from here on inherits the blocked signals, so
    // only `wait_for_signal` sees them.
    let signals = block_shutdown_signals();
    let bind_address = config.str("bindAddress").to_string();
    let server = match Server::start(config, Arc::new(MonotonicClock::default())) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            eprintln!("{e}");
            return ExitCode::from(255);
        }
    };
    // As Java, the address shows the port actually bound when 0 was asked.
    let port = server.local_addr().port();
    let boot =
        format!("The Name Server boot success. serializeType=JSON, address {bind_address}:{port}");
    log::info!("{boot}");
    println!("{boot}");
    let signal = wait_for_signal(&signals);
    log::info!("shutdown on signal {signal}: no longer accepting, finishing in-flight work");
    std::thread::spawn(move || {
        let again = wait_for_signal(&signals);
        eprintln!("second signal {again}: exiting now");
        std::process::exit(1);
    });
    let started = std::time::Instant::now();
    server.stop();
    log::info!("shutdown done in {} ms", started.elapsed().as_millis());
    ExitCode::SUCCESS
}

/// Blocks SIGTERM and SIGINT in this thread (and the threads it starts).
fn block_shutdown_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local set, then masking this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for one of the blocked signals.
fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut signal = 0;
    // SAFETY: sigwait reads the set and writes the signal number.
    unsafe { libc::sigwait(set, &mut signal) };
    signal
}

/// Applies the `-c` file, then the persisted config when
/// `configStoreReadAtStart` asks for it, then every `--KEY VALUE` flag, then
/// the defaults that depend on others (`rocketmqHome`, DECISIONS 21).
fn load(config: &mut Config, matches: &clap::ArgMatches, home: &str) -> Result<(), String> {
    if let Ok(dir) = std::env::var("ROCKETMQ_HOME") {
        config.set("rocketmqHome", &dir)?;
    }
    if let Some(file) = matches.get_one::<String>("configFile") {
        apply_file(config, file)?;
        config.set("configStorePath", file)?;
        config.config_file = Some(file.into());
        println!("load config properties file OK, {file}");
    }
    apply_flags(config, matches)?;
    let store = config.str("configStorePath").to_string();
    let is_c_file = config.config_file.as_deref() == Some(std::path::Path::new(&store));
    if config.bool("configStoreReadAtStart") && !is_c_file {
        match apply_file(config, &store) {
            Ok(()) => println!("load persisted config properties file OK, {store}"),
            Err(_) if !std::path::Path::new(&store).exists() => {}
            Err(e) => return Err(e),
        }
        // Flags win over the persisted file too.
        apply_flags(config, matches)?;
    }
    if config.str("rocketmqHome").is_empty() {
        if !matches.get_flag("printConfigItem") {
            log::warn!("rocketmqHome is not set (nor ROCKETMQ_HOME); using {home}");
        }
        config.set("rocketmqHome", home)?;
    }
    Ok(())
}

fn apply_file(config: &mut Config, file: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read config file {file}: {e}"))?;
    for (key, value) in rocketns::protocol::properties::parse(&text) {
        config.set(&key, &value)?;
    }
    Ok(())
}

fn apply_flags(config: &mut Config, matches: &clap::ArgMatches) -> Result<(), String> {
    for key in KEYS {
        if let Some(value) = matches.get_one::<String>(key.name) {
            config.set(key.name, value)?;
        }
    }
    Ok(())
}

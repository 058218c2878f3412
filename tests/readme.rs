//! The README's set-up commands, checked as a newcomer would use them on a
//! fresh clone. Its first fenced block holds exactly two commands (the
//! text before each `#` comment): the first must build and start the
//! server on its default port and stop cleanly on SIGTERM; the second must
//! name the test script, which must exist, be executable and parse
//! (running it from here would run this test again).

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The ports the README's server command listens on: remoting (as its
/// comment says) and HTTP, both from `conf/namesrv.properties` and the
/// defaults.
const REMOTING_PORT: u16 = 9876;
const HTTP_PORT: u16 = 8080;

/// `cargo run --release` compiles the release binary first: on a small
/// machine with a cold target directory that takes minutes.
const BOOT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The commands of the README's first fenced block, comments cut off.
fn setup_commands() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("README.md")).expect("README.md is readable");
    let lines: Vec<&str> = text.lines().collect();
    let open = lines
        .iter()
        .position(|l| l.trim_start().starts_with("```"))
        .expect("README.md has a fenced block");
    let close = lines[open + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with("```"))
        .map(|i| open + 1 + i)
        .expect("README.md's first fenced block is closed");
    let commands: Vec<String> = lines[open + 1..close]
        .iter()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        commands.len(),
        2,
        "README.md's first fenced block should hold the two set-up commands: {commands:?}"
    );
    commands
}

/// Why `port` cannot be had right now, if it cannot. Binds as the server
/// does (all addresses; std sets SO_REUSEADDR, as the server does).
fn port_taken(port: u16) -> Option<String> {
    match std::net::TcpListener::bind(("0.0.0.0", port)) {
        Ok(_) => None,
        Err(e) => Some(format!("port {port}: {e}")),
    }
}

/// The PATH a newcomer's shell has, with the cargo running these tests
/// first so `cargo` is the same toolchain.
fn path_with_this_cargo() -> std::ffi::OsString {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|c| c.parent().map(PathBuf::from))
    {
        dirs.push(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).expect("PATH entries join")
}

/// The spawned command, killed if the test ends before it was reaped.
struct Running {
    child: Child,
    reaped: bool,
}

impl Running {
    fn terminate(&mut self) {
        // SAFETY: kill(2) on the pid of a child this test spawned and has
        // not yet reaped, so the pid cannot have been reused.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM: {}", std::io::Error::last_os_error());
    }

    /// Its exit status, or `None` if it is still running after `limit`.
    fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.reaped = true;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines of the command's stderr (cargo's output, then the
/// server's log), for failure messages.
fn tail(lines: &Mutex<Vec<String>>) -> String {
    let lines = lines.lock().unwrap();
    let from = lines.len().saturating_sub(40);
    lines[from..].join("\n")
}

#[test]
fn readme_server_command_starts_the_server_and_stops_on_sigterm() {
    let commands = setup_commands();
    let command = &commands[0];
    if let Some(why) = [REMOTING_PORT, HTTP_PORT].into_iter().find_map(port_taken) {
        common::skip(&format!(
            "README server command `{command}`: {why} is in use on this machine"
        ));
        return;
    }
    // From the repository root, through a shell as typed; `exec` so the
    // pid is cargo's, and cargo run execs the server in turn.
    let started = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .current_dir(repo())
        .env("PATH", path_with_this_cargo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut running = Running {
        child,
        reaped: false,
    };
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let errors = Arc::new(Mutex::new(Vec::new()));
    {
        let errors = errors.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                errors.lock().unwrap().push(line);
            }
        });
    }

    let deadline = started + BOOT_TIMEOUT;
    let boot = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) if line.contains("boot success") => break line,
            Ok(_) => continue,
            Err(RecvTimeoutError::Timeout) => panic!(
                "`{command}` printed no boot line in {BOOT_TIMEOUT:?}; stderr:\n{}",
                tail(&errors)
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = running.wait_for(Duration::from_secs(10));
                // Let the stderr reader catch up before showing it.
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "`{command}` ended without a boot line ({status:?}); stderr:\n{}",
                    tail(&errors)
                );
            }
        }
    };
    let boot_secs = started.elapsed().as_secs_f64();
    // Keep stdout drained so the server never blocks on a full pipe.
    std::thread::spawn(move || lines_rx.iter().for_each(drop));
    println!("`{command}` booted in {boot_secs:.1} s (build included): {boot}");

    assert!(
        boot.ends_with(&format!(":{REMOTING_PORT}")),
        "the README says port {REMOTING_PORT}: {boot}"
    );
    std::net::TcpStream::connect(("127.0.0.1", REMOTING_PORT))
        .unwrap_or_else(|e| panic!("remoting port {REMOTING_PORT}: {e}"));
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], HTTP_PORT));
    assert_eq!(common::http_get(http, "/healthz"), (200, "ok\n".into()));

    running.terminate();
    let status = running
        .wait_for(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("`{command}` still running 30 s after SIGTERM"));
    assert_eq!(
        status.code(),
        Some(0),
        "`{command}` after SIGTERM: {status}; stderr:\n{}",
        tail(&errors)
    );
}

#[test]
fn readme_test_command_names_an_executable_script_that_parses() {
    let commands = setup_commands();
    let command = &commands[1];
    let script = command
        .split_whitespace()
        .next()
        .expect("a command has a first word");
    assert!(
        script.contains('/'),
        "`{command}` should name the test script by its path"
    );
    let path = repo().join(script);
    let meta = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("`{command}` names {}: {e}", path.display()));
    assert!(meta.is_file(), "{} is not a file", path.display());
    assert!(
        meta.permissions().mode() & 0o111 != 0,
        "{} is not executable",
        path.display()
    );
    let check = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash -n");
    assert!(
        check.status.success(),
        "bash -n {}: {}",
        path.display(),
        String::from_utf8_lossy(&check.stderr)
    );
}

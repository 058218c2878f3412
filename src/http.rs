//! The HTTP side (DECISIONS 6): read-only `/metrics`, `/healthz`,
//! `/readyz` and the address server's `/rocketmq/nsaddr` on
//! `httpListenPort` (0 turns it off), same address as the remoting port. Plain blocking threads: scrapes are rare, and nothing
//! here shares a core's executor.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Requests served at once; more are closed unanswered.
const CONCURRENT_MAX: usize = 16;
const REQUEST_BYTES_MAX: usize = 8 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// What an endpoint needs from the server.
pub trait Status: Send + Sync + 'static {
    fn metrics(&self) -> String;
    /// `Err(reason)` while routes should not be served yet.
    fn ready(&self) -> Result<(), String>;
    /// The NameServer list for `/rocketmq/nsaddr`; `None` when neither
    /// `nsaddrList` nor `nsaddrDnsName` is set.
    fn nsaddr(&self) -> Option<Result<String, String>>;
}

/// What Java's address-server client (`TopAddressing`) reads: `host:port`
/// entries joined by `;`. `list` wins; otherwise every address `dns_name`
/// resolves to (a headless Service lists only ready pods), at `port`,
/// sorted so that every NameServer answers the same text.
pub fn nsaddr_text(
    list: &[String],
    dns_name: Option<&str>,
    port: u16,
) -> Option<Result<String, String>> {
    use std::net::ToSocketAddrs;
    if !list.is_empty() {
        return Some(Ok(list.join(";")));
    }
    let name = dns_name?;
    let resolved = (name, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {name}: {e}"));
    Some(resolved.and_then(|addrs| {
        let mut addrs: Vec<String> = addrs.map(|a| a.to_string()).collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(format!("{name} resolves to no address"));
        }
        Ok(addrs.join(";"))
    }))
}

/// Serves until `stopping()` is true and `wake` unblocks the accept.
pub fn spawn<S: Status + Stopping>(listener: TcpListener, status: Arc<S>) -> std::io::Result<()> {
    let busy = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("rocketns-http".into())
        .spawn(move || {
            for stream in listener.incoming() {
                if status.stopping() {
                    break;
                }
                let Ok(stream) = stream else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if busy.fetch_add(1, Ordering::SeqCst) >= CONCURRENT_MAX {
                    busy.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                let (status, busy) = (status.clone(), busy.clone());
                let spawned = std::thread::Builder::new()
                    .name("rocketns-http-conn".into())
                    .spawn(move || {
                        let _ = serve(stream, &*status);
                        busy.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    log::warn!("HTTP: cannot start a thread for a request");
                }
            }
        })?;
    Ok(())
}

/// Tells whether the server is stopping, so the accept loop can end.
pub trait Stopping {
    fn stopping(&self) -> bool;
}

/// Unblocks the accept loop after a stop.
pub fn wake(addr: Option<std::net::SocketAddr>) {
    if let Some(addr) = addr {
        let _ = TcpStream::connect_timeout(&addr, IO_TIMEOUT);
    }
}

/// GETs `path` from `addr` (HOST:PORT) and returns the HTTP status: the
/// client side of `rocketns --healthcheck`.
pub fn healthcheck(addr: &str, path: &str) -> Result<u16, String> {
    use std::net::ToSocketAddrs;
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("resolves to no address")?;
    let mut stream = TcpStream::connect_timeout(&sock, IO_TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let _ = stream.take(1024).read_to_end(&mut head);
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP reply: {:?}", line.lines().next().unwrap_or("")))
}

fn serve(mut stream: TcpStream, status: &dyn Status) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 || buf.len() + n > REQUEST_BYTES_MAX {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (code, kind, body) = route(method, path, status);
    let reply = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(reply.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes())?;
    }
    Ok(())
}

fn route(method: &str, path: &str, status: &dyn Status) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != "GET" && method != "HEAD" {
        return (
            "405 Method Not Allowed",
            TEXT,
            "read-only endpoints\n".into(),
        );
    }
    match path {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            status.metrics(),
        ),
        "/healthz" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" => match status.ready() {
            Ok(()) => ("200 OK", TEXT, "ready\n".into()),
            Err(why) => ("503 Service Unavailable", TEXT, format!("{why}\n")),
        },
        "/rocketmq/nsaddr" => match status.nsaddr() {
            Some(Ok(list)) => ("200 OK", TEXT, list),
            Some(Err(why)) => ("503 Service Unavailable", TEXT, format!("{why}\n")),
            None => (
                "404 Not Found",
                TEXT,
                "nsaddr is not configured: set nsaddrList or nsaddrDnsName\n".into(),
            ),
        },
        _ => ("404 Not Found", TEXT, "not found\n".into()),
    }
}

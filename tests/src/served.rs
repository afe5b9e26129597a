//! Servers for the served-model tests: where llama.cpp's `llama-server` is, a free loopback
//! port, real servers started for a test's lifetime, and tiny HTTP servers that misbehave on
//! purpose (stall, garbage, overload).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::root;

/// The llama-server binary (scripts/llama-server.sh builds it; `$PONDER_LLAMA_SERVER`
/// overrides); `None` (skip) when it is not built, a failure under CI.
pub fn llama_server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PONDER_LLAMA_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/llama-server/bin/llama-server"));
    if path.is_file() {
        return Some(path);
    }
    let ci = std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false");
    assert!(
        !ci,
        "{} is missing: scripts/llama-server.sh builds it (scripts/test.sh runs it)",
        path.display()
    );
    eprintln!(
        "skipped: {} is missing (scripts/llama-server.sh builds it; under CI this fails)",
        path.display()
    );
    None
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A loopback server answering every connection with `answer` (given the connection's index
/// and the request's head), on its own thread; returns its base URL and the count of requests.
pub fn fake_server(
    answer: impl Fn(usize, &str, &mut TcpStream) + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let index = counter.fetch_add(1, Ordering::SeqCst);
            let answer = Arc::clone(&answer);
            std::thread::spawn(move || {
                let head = read_request(&mut stream);
                answer(index, &head, &mut stream);
            });
        }
    });
    (format!("http://{address}/v1"), count)
}

/// Reads one HTTP request (head and `Content-Length` body); returns the head.
pub fn read_request(stream: &mut TcpStream) -> String {
    read_request_and_body(stream).0
}

/// Reads one HTTP request; returns its head and body.
pub fn read_request_and_body(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    (head, body)
}

/// Writes one HTTP reply with a JSON body and closes.
pub fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A server a test started: it lives as long as the test process, run under a shell that waits
/// on a pipe from this process and kills the server when the pipe closes (however the test
/// process ended).
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _child: Child,
    _lifeline: ChildStdin,
}

/// Starts `program` with `args` and `envs` on loopback port `port` (the arguments say so), its
/// output in `target/tmp/NAME-PORT.log`, and waits until `GET health` answers 200; panics with
/// the log when it exits first or is not up within `timeout`.
pub fn start_test_server(
    name: &str,
    program: &Path,
    args: &[OsString],
    envs: &[(OsString, OsString)],
    port: u16,
    health: &str,
    timeout: Duration,
) -> TestServer {
    let log = root().join(format!("target/tmp/{name}-{port}.log"));
    std::fs::create_dir_all(log.parent().expect("a parent")).expect("target/tmp");
    let log_file = std::fs::File::create(&log).expect("log file");
    let mut child = Command::new("sh")
        .args([
            "-c",
            r#""$0" "$@" & server=$!; cat >/dev/null; kill $server; wait $server"#,
        ])
        .arg(program)
        .args(args)
        .envs(envs.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::piped())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    let lifeline = child.stdin.take().expect("piped stdin");
    let started = Instant::now();
    let address = format!("127.0.0.1:{port}");
    loop {
        if http_get_status(&address, health) == Some(200) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{name} exited ({status}) before it was ready:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < timeout,
            "{name} not ready after {} s:\n{}",
            timeout.as_secs(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "{name} ready at {address} after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    TestServer {
        base: format!("http://{address}"),
        _child: child,
        _lifeline: lifeline,
    }
}

/// The status of `GET path` on `address`, `None` when nothing answers.
pub fn http_get_status(address: &str, path: &str) -> Option<u16> {
    http_get(address, path).map(|(status, _)| status)
}

/// The status and body of `GET path` on `address`, `None` when nothing answers.
pub fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    // The rest (headers, then the body) until the server closes; chunk sizes, if any, stay in.
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    let body = rest
        .split_once("\r\n\r\n")
        .map_or(rest.as_str(), |(_, body)| body);
    Some((status, body.to_string()))
}

//! Servers for the served-model tests: where llama.cpp's `llama-server` is, a free loopback
//! port, and tiny HTTP servers that misbehave on purpose (stall, garbage, overload).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

//! Slow clients cannot starve `live_server`: started with a soft descriptor limit of
//! 1,024, it raises it, keeps answering real requests while 1,100 connections each send
//! half a request head, and drops those after the header read timeout. With the
//! connection cap full of such connections, a new one closes the one that has waited
//! longest for its head, so real requests are still answered at once; a connection
//! serving (an event stream) is never closed for this.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Auth, Launch, read_response, write_request};

#[test]
fn eleven_hundred_slow_connections_do_not_starve_real_requests() {
    let (config, state) = support::app_dirs();
    let server = Launch::new(config.path(), state.path())
        .env("EAC_HEADER_READ_TIMEOUT_MS", "1500")
        .shell("ulimit -Sn 1024")
        .start();
    assert!(
        server.log().contains("soft_before=1024"),
        "started with a soft limit of 1024:\n{}",
        server.log()
    );

    let mut slow = Vec::new();
    for _ in 0..1100 {
        let mut stream = TcpStream::connect(server.address).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: slow\r\nx-half: ")
            .unwrap();
        slow.push(stream);
    }
    // Real requests are answered while the slow ones hang on.
    for _ in 0..20 {
        let response = server.request("GET", "/", Auth::None);
        assert_eq!(response.status, 200);
    }
    // The slow ones are dropped once their head is late (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, stream) in slow.iter_mut().enumerate() {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        stream.set_read_timeout(Some(left)).unwrap();
        let mut rest = Vec::new();
        match stream.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("slow connection {i} was not dropped: {e}"),
        }
    }
    assert_eq!(server.request("GET", "/", Auth::None).status, 200);
    server.terminate();
}

#[test]
fn idle_connections_past_the_cap_make_room_for_real_requests() {
    const CAP: usize = 20;
    const IDLE: usize = 60;
    let (config, state) = support::app_dirs();
    // The header read timeout is far beyond the test: only making room frees slots.
    let server = Launch::new(config.path(), state.path())
        .env("EAC_MAX_CONNECTIONS", &CAP.to_string())
        .env("EAC_HEADER_READ_TIMEOUT_MS", "60000")
        .start();

    // An event stream holds a slot while it serves: never closed to make room.
    let mut events = event_stream(&server);

    // Three times the cap in connections that never complete their head.
    let mut idle = Vec::new();
    for _ in 0..IDLE {
        let mut stream = TcpStream::connect(server.address).unwrap();
        // The server may already have closed it to make room for the next ones.
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nhost: slow\r\nx-half: ");
        idle.push(stream);
    }

    // Real requests are answered at once, one after the other.
    real_requests_answered(&server, IDLE);

    // The connections beyond the cap were closed: the server holds at most `CAP` open.
    let mut closed = [false; IDLE];
    let deadline = Instant::now() + Duration::from_secs(10);
    for stream in &idle {
        stream.set_nonblocking(true).unwrap();
    }
    loop {
        for (stream, closed) in idle.iter_mut().zip(closed.iter_mut()) {
            *closed = *closed || eof(stream);
        }
        let n = closed.iter().filter(|c| **c).count();
        if n >= IDLE - CAP {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {IDLE} idle connections closed with a cap of {CAP}; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        server.log().split_whitespace().any(|w| w == "evicted=1"),
        "the first connection closed to make room is logged:\n{}",
        server.log()
    );

    // The event stream is still open.
    events.set_nonblocking(true).unwrap();
    assert!(!eof(&mut events), "the event stream was closed");

    drop(idle);
    drop(events);
    assert_eq!(server.request("GET", "/", Auth::None).status, 200);
    server.terminate();
}

/// A connection streaming the admin's events, its `200` head read.
fn event_stream(server: &support::Server) -> TcpStream {
    let mut events = TcpStream::connect(server.address).unwrap();
    events
        .write_all(b"GET /_internal/eac/events HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = [0u8; 12];
    events.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    events
}

/// Ten real requests in a row, each answered 200 within 5 s while `idle` idle
/// connections are open.
fn real_requests_answered(server: &support::Server, idle: usize) {
    for i in 0..10 {
        let started = Instant::now();
        let mut stream = TcpStream::connect(server.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write_request(&mut stream, "GET", "/", Auth::None);
        let response = read_response(&mut stream).unwrap_or_else(|e| {
            panic!(
                "real request {i} not answered with {idle} idle connections open: {e}\nlog:\n{}",
                server.log()
            )
        });
        assert_eq!(response.status, 200, "real request {i}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "real request {i} took {:?}",
            started.elapsed()
        );
    }
}

/// Whether the peer closed `stream` (non-blocking): end of file or reset.
fn eof(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn the_default_cap_leaves_descriptors_for_every_connection_it_admits() {
    let (config, state) = support::app_dirs();
    // Soft and hard limit 600: no raise, and a default cap derived from it.
    let server = Launch::new(config.path(), state.path())
        .env("EAC_HEADER_READ_TIMEOUT_MS", "60000")
        .shell("ulimit -n 600")
        .start();
    // More idle connections than descriptors: the cap must bite before they run out.
    let mut idle = Vec::new();
    for _ in 0..700 {
        let Ok(mut stream) = TcpStream::connect(server.address) else {
            break;
        };
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nhost: slow\r\nx-half: ");
        idle.push(stream);
    }
    real_requests_answered(&server, idle.len());
    assert!(
        !server.log().contains("accept failed"),
        "out of descriptors:\n{}",
        server.log()
    );
    drop(idle);
    server.terminate();
}

#[test]
fn a_connect_flood_after_sigterm_does_not_hold_the_process_past_its_grace() {
    let (config, state) = support::app_dirs();
    // One core for the server, both for the flood: clients connect faster than it accepts.
    let mut server = Launch::new(config.path(), state.path())
        .env("EAC_SHUTDOWN_GRACE_MS", "1000")
        .shell("taskset -p -c 0 $$ >/dev/null")
        .start();
    let address = server.address;
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    // Bounded: each flooder stops by itself after 20 s.
    let flooders: Vec<_> = (0..16)
        .map(|_| {
            let (stop, made) = (Arc::clone(&stop), Arc::clone(&made));
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    if TcpStream::connect(address).is_ok() {
                        made.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // The flood is on before the signal: a hundred connections made, within a bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    while made.load(Ordering::Relaxed) <= 100 {
        assert!(
            Instant::now() < deadline,
            "the flood made no 100 connections in 10 s"
        );
        std::thread::yield_now();
    }
    let signalled = Instant::now();
    server.signal("TERM");
    let code = server.wait_exit();
    let took = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    flooders.into_iter().for_each(|f| f.join().unwrap());
    assert_eq!(code, Some(0), "{}", server.log());
    // The grace is 1 s; the flood lasts 20 s. Exiting well before the flood ends is the
    // point, with room for a loaded machine.
    assert!(
        took < Duration::from_secs(8),
        "exited {took:?} after SIGTERM under a connect flood (grace 1 s)"
    );
}

#[test]
fn a_zero_connection_cap_or_header_timeout_is_refused_at_start() {
    let (config, state) = support::app_dirs();
    for (name, why) in [
        ("EAC_MAX_CONNECTIONS", "refuse every connection"),
        ("EAC_HEADER_READ_TIMEOUT_MS", "drop every connection"),
    ] {
        let (code, stderr) = Launch::new(config.path(), state.path())
            .env(name, "0")
            .run_to_end();
        assert_eq!(code, Some(1), "{name}=0: {stderr}");
        assert!(
            stderr.contains(&format!("{name}=0")) && stderr.contains(why),
            "{name}=0: {stderr}"
        );
    }
}

#[test]
fn a_keep_alive_connection_idle_past_the_header_timeout_is_closed_and_an_event_stream_is_not() {
    let (config, state) = support::app_dirs();
    let server = Launch::new(config.path(), state.path())
        .env("EAC_HEADER_READ_TIMEOUT_MS", "400")
        .start();
    // An event stream serves as long as it likes: it waits for no request head.
    let mut events = event_stream(&server);

    // One request answered on a keep-alive connection, then nothing.
    let mut idle = TcpStream::connect(server.address).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let answered = Instant::now();
    // Closed once idle past the timeout (the rest of the answer, then the end).
    let mut rest = Vec::new();
    match idle.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the idle keep-alive connection was not closed: {e}"),
    }
    let idled = answered.elapsed();
    assert!(
        idled >= Duration::from_millis(300) && idled < Duration::from_secs(5),
        "closed after {idled:?} idle, with a timeout of 400 ms"
    );

    // The event stream stays open while the sweep runs on, until it has been open three
    // times the timeout (a sweep every 100 ms).
    events.set_nonblocking(true).unwrap();
    let until = answered + Duration::from_millis(1200);
    while Instant::now() < until {
        assert!(!eof(&mut events), "the event stream was closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(events);
    server.terminate();
}

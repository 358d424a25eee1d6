//! Slow clients cannot starve `live_server`: started with a soft descriptor limit of
//! 1,024, it raises it, keeps answering real requests while 1,100 connections each send
//! half a request head, and drops those after the header read timeout.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use eac_tests::APP_TOML as APP;
use support::{Auth, Launch};

#[test]
fn eleven_hundred_slow_connections_do_not_starve_real_requests() {
    let config = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("app.toml"), APP).unwrap();
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

//! The console on a real port: HTTP over TCP, the live event stream, and a
//! graceful shutdown that does not hang on open streams.

mod support;

use nightshift_core::ids::{ExecutorId, HandlerName};
use nightshift_core::keyspace::{encode, executor_key, ExecutorInfo};
use nightshift_store::NewEvent;
use std::time::Duration;
use support::{seed, Fixture, PREFIX, TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn request(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

/// Reads from `s` until `needle` has been seen, or fails after 10 s.
async fn read_until(s: &mut TcpStream, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no `{needle}` within 10 s; got:\n{seen}"))
            .unwrap();
        assert!(n > 0, "stream closed before `{needle}`; got:\n{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test]
async fn serves_http_and_streams_changes_on_a_real_port_then_shuts_down() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(nightshift_console::serve(
        listener,
        f.state.clone(),
        async {
            let _ = stopped.await;
        },
    ));

    let mut health = request(addr, "/healthz").await;
    let mut text = String::new();
    health.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"status\":\"ok\""), "{text}");

    let mut stream = request(addr, "/api/v1/stream").await;
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "text/event-stream").await;
    read_until(&mut stream, &mut seen, "\r\n\r\n").await;

    // A new SQL event is pushed as a change. The stream's task may still be
    // reading the log's head, so keep appending until one arrives.
    let event = NewEvent {
        at_ms: 1,
        kind: "item_failed".into(),
        actor: "scheduler:s1".into(),
        dag: None,
        run_id: Some(nightshift_core::ids::RunId::new("r1")),
        job: None,
        item: None,
        executor: None,
        detail: serde_json::Value::Null,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("\"event_kind\":\"item_failed\"") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event change; got:\n{seen}"
        );
        f.store.append_event(&event).await.unwrap();
        let mut buf = [0u8; 4096];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await
        {
            assert!(n > 0, "stream closed");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(seen.contains("event: changed"), "{seen}");
    assert!(seen.contains("\"run\":\"r1\""), "{seen}");

    // A live key change (a new executor) is pushed too.
    let info = ExecutorInfo {
        id: ExecutorId::new("e9"),
        lease: 0,
        handlers: vec![HandlerName::new("noop")],
        capacity: 1,
        labels: Default::default(),
        host: "h".into(),
        pid: 1,
        version: "0".into(),
        started_at_ms: 1,
        handler_capacity: Default::default(),
        params_schemas: Default::default(),
    };
    f.coord
        .put(
            &executor_key(PREFIX, &info.id),
            encode(&info).unwrap(),
            None,
        )
        .await
        .unwrap();
    read_until(&mut stream, &mut seen, "\"executor\":\"e9\"").await;

    // Shutdown completes although the stream is still open.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("graceful shutdown hung on an open event stream")
        .unwrap()
        .unwrap();
}

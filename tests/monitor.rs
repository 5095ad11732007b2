//! The live monitor (`neuroloop run --monitor`), everything on loopback: the
//! page in headless Chromium shows detections as they happen; a browser that
//! stops reading changes nothing in the loop; tokens guard a monitor that has
//! one, and the CLI refuses a non-loopback monitor without one.

mod summary;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use neuroloop::runtime::monotonic_ns;
use summary::read_summary;
use tokio_tungstenite::tungstenite::{self, Message};

const TOKEN: &str = "test-token-0123456789abcdef";

/// A `neuroloop run` with its output in files, past the line that gives the
/// monitor's address.
struct Session {
    child: Child,
    addr: SocketAddr,
    out: PathBuf,
    stderr: PathBuf,
}

impl Session {
    fn start(dir: &Path, name: &str, args: &[&str]) -> Session {
        let out = dir.join(name);
        let stderr = dir.join(format!("{name}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_neuroloop"))
            .args(["run", "--out", out.to_str().unwrap()])
            .args(args)
            .stdout(std::fs::File::create(dir.join(format!("{name}.stdout"))).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut session = Session {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            out,
            stderr,
        };
        if args.contains(&"--monitor") {
            session.addr = session.wait_for_address();
        }
        session
    }

    /// The address in "monitor: http://ADDR/" (the session prints it before it starts).
    fn wait_for_address(&mut self) -> SocketAddr {
        loop {
            let text = std::fs::read_to_string(&self.stderr).unwrap();
            if let Some(rest) = text.split("monitor: http://").nth(1) {
                return rest.split('/').next().unwrap().parse().unwrap();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("run ended ({status}) before serving: {text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn interrupt(&self) {
        // SAFETY: plain syscall on our own child's pid.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) },
            0
        );
    }

    fn wait(mut self) -> (ExitStatus, serde_json::Value) {
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "{}",
            std::fs::read_to_string(&self.stderr).unwrap()
        );
        (status, read_summary(&self.out))
    }
}

/// One HTTP/1.1 request on loopback; the response's status code and body.
fn http(addr: SocketAddr, method: &str, path: &str, header: &str) -> (u16, String) {
    http_to_host(addr, &addr.to_string(), method, path, header)
}

/// [`http`] naming `host` in its Host header, as a browser does for the
/// name in its address bar.
fn http_to_host(
    addr: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    header: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{header}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {response:?}"));
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

/// A 60-s session on the rodent-ripple preset with `extra` appended to its
/// config, watched by a monitor on loopback.
fn monitored_rodent_session(dir: &Path, extra: &str) -> Session {
    let config = dir.join("rig.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n{extra}",
            include_str!("../src/presets/rodent-ripple.toml")
        ),
    )
    .unwrap();
    Session::start(
        dir,
        "s",
        &[
            "--config",
            config.to_str().unwrap(),
            "--duration-s",
            "60",
            "--monitor",
            "127.0.0.1:0",
        ],
    )
}

/// The monitor's updates over its websocket, each handed to `look` until it
/// returns something; `None` if the feed ends first.
async fn watch<T>(
    addr: SocketAddr,
    mut look: impl FnMut(&serde_json::Value) -> Option<T>,
) -> Option<T> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        if let Some(found) = look(&serde_json::from_str(&text).unwrap()) {
            return Some(found);
        }
    }
    None
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Headless Chromium driven over the DevTools protocol (its websocket), so
/// the test reads the page's DOM as the page's own scripts left it.
struct Browser {
    child: Child,
    devtools: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    session: String,
    next_id: u64,
}

impl Browser {
    async fn open(url: &str) -> Browser {
        use std::io::BufRead;
        let mut child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
                "--window-size=1400,900",
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium is installed (tests/run-all.sh installs it)");
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let endpoint = loop {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "chromium ended");
            if let Some(at) = line.find("ws://") {
                break line[at..].trim().to_string();
            }
        };
        // Keep draining its stderr so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let (devtools, _) = tokio_tungstenite::connect_async(endpoint).await.unwrap();
        let mut browser = Browser {
            child,
            devtools,
            session: String::new(),
            next_id: 0,
        };
        let target = browser
            .call("Target.createTarget", serde_json::json!({ "url": url }))
            .await;
        let attached = browser
            .call(
                "Target.attachToTarget",
                serde_json::json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser
    }

    /// One DevTools command (on the page once attached); its result.
    async fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        use futures_util::SinkExt;
        self.next_id += 1;
        let mut command =
            serde_json::json!({ "id": self.next_id, "method": method, "params": params });
        if !self.session.is_empty() {
            command["sessionId"] = self.session.clone().into();
        }
        self.devtools
            .send(Message::Text(command.to_string().into()))
            .await
            .unwrap();
        loop {
            let message = self.devtools.next().await.unwrap().unwrap();
            let reply: serde_json::Value =
                serde_json::from_str(message.to_text().unwrap()).unwrap();
            if reply["id"] == self.next_id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    async fn dom(&mut self) -> String {
        let params = serde_json::json!({
            "expression": "document.documentElement.outerHTML",
            "returnByValue": true,
        });
        let result = self.call("Runtime.evaluate", params).await;
        // Empty while the page is still loading.
        result["result"]["value"].as_str().unwrap_or("").to_string()
    }

    async fn screenshot(&mut self) -> Vec<u8> {
        let shot = self
            .call(
                "Page.captureScreenshot",
                serde_json::json!({ "format": "png" }),
            )
            .await;
        base64(shot["data"].as_str().unwrap())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Decode standard base64 (the screenshot DevTools sends).
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut bytes = Vec::with_capacity(digits.len() * 3 / 4);
    for group in digits.chunks(4) {
        let bits = group
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &d)| acc | u32::from(d) << (18 - 6 * i));
        bytes.extend_from_slice(&bits.to_be_bytes()[1..group.len()]);
    }
    bytes
}

/// The value cell of the page's counts row `name`.
fn count(dom: &str, name: &str) -> Option<u64> {
    let row = dom.split(&format!("id=\"counts-{name}\"")).nth(1)?;
    let cell = row.split("class=\"v\">").nth(1)?;
    cell.split('<').next()?.parse().ok()
}

/// The page, as a browser shows it, lists detections and stims while the
/// session runs; a screenshot of it is taken; a monitor without a token has
/// no disarm button and refuses the disarm request.
#[test]
fn the_page_shows_detections_as_they_happen() {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::start(
        dir.path(),
        "s",
        &["--duration-s", "60", "--monitor", "127.0.0.1:0"],
    );
    let url = format!("http://{}/", session.addr);
    let (code, page) = http(session.addr, "GET", "/", "");
    assert_eq!(code, 200);
    assert!(page.contains("<canvas id=\"env\""), "{page}");
    let rt = runtime();
    let (mut browser, dom, shot) = rt.block_on(async {
        let mut browser = Browser::open(&url).await;
        // Look once a second until a stim and a ripple are on the page.
        let mut dom = String::new();
        for _ in 0..60 {
            dom = browser.dom().await;
            if count(&dom, "stim").is_some_and(|n| n > 0) && dom.contains("data-kind=\"ripple\"") {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let shot = browser.screenshot().await;
        (browser, dom, shot)
    });
    assert!(count(&dom, "detections").is_some_and(|n| n > 0), "{dom}");
    assert!(count(&dom, "stim").is_some_and(|n| n > 0), "{dom}");
    assert!(dom.contains("data-kind=\"ripple\""), "{dom}");
    assert!(dom.contains("data-kind=\"stim\""), "{dom}");
    assert!(dom.contains(">live<"), "{dom}");
    assert!(dom.contains("<button id=\"disarm\" hidden"), "{dom}");
    assert!(shot.starts_with(b"\x89PNG") && shot.len() > 10_000);
    if let Ok(keep) = std::env::var("NEUROLOOP_MONITOR_SCREENSHOT") {
        std::fs::write(keep, &shot).unwrap();
    }
    let (code, _) = http(session.addr, "POST", "/disarm", "");
    assert_eq!(code, 403, "disarm without a token");
    // Without a token only pages of the loopback names are answered: a site
    // rebound to 127.0.0.1 (its own name as Host) or a page of another site
    // opening the websocket (its Origin) is refused.
    let port = session.addr.port();
    for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
        assert_eq!(
            http_to_host(session.addr, &host, "GET", "/", "").0,
            200,
            "{host}"
        );
    }
    let rebound = format!("attacker.example:{port}");
    assert_eq!(http_to_host(session.addr, &rebound, "GET", "/", "").0, 403);
    let cross_site = "Origin: http://attacker.example\r\n";
    assert_eq!(http(session.addr, "GET", "/ws", cross_site).0, 403);
    let same_site = format!("Origin: http://127.0.0.1:{port}\r\n");
    assert_eq!(http(session.addr, "GET", "/", &same_site).0, 200);
    // The page says how the session ended once it is disarmed and written,
    // and keeps saying it while its reconnection attempts fail (every 2 s).
    session.interrupt();
    let ended = rt.block_on(async {
        for _ in 0..20 {
            if browser.dom().await.contains("session interrupted") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        browser.dom().await
    });
    let (_, summary) = session.wait();
    assert_eq!(summary["status"], "interrupted");
    assert!(summary["monitor"]["connections"].as_u64().unwrap() >= 1);
    assert!(ended.contains("session interrupted"), "{ended}");
    assert!(ended.contains("outputs disarmed"), "{ended}");
}

/// A client that connects and then reads nothing for 10 s (the server's
/// sends to it back up, then it skips updates) changes nothing in the loop: the session logs the same events as one without a monitor, and
/// acquisition loses nothing. Meanwhile a reading client stamps when each
/// stim reaches it, on the monotonic clock the session stamps its deciding
/// sample's arrival with (docs/performance.md reports the numbers).
#[test]
fn a_stalled_client_changes_nothing_in_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let seconds = "20";
    let plain = Session::start(dir.path(), "plain", &["--duration-s", seconds]);
    let watched = Session::start(
        dir.path(),
        "watched",
        &["--duration-s", seconds, "--monitor", "127.0.0.1:0"],
    );
    let url = format!("ws://{}/ws", watched.addr);
    let rt = runtime();
    let latencies = rt.block_on(async {
        let (mut stalled, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        let hello = stalled.next().await.unwrap().unwrap();
        assert!(hello.to_text().unwrap().contains("\"type\":\"hello\""));
        let reading = tokio::spawn(stim_latencies(url.clone(), Duration::from_secs(12)));
        tokio::time::sleep(Duration::from_secs(10)).await;
        // Still served after the stall, having skipped what it missed.
        let mut after = 0;
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(until, stalled.next()).await {
            after += 1;
        }
        assert!(after > 0);
        drop(stalled);
        reading.await.unwrap()
    });
    let (plain_out, watched_out) = (plain.out.clone(), watched.out.clone());
    let (_, plain_summary) = plain.wait();
    let (_, summary) = watched.wait();
    let events = |dir: &Path| std::fs::read_to_string(dir.join("events.tsv")).unwrap();
    assert_eq!(events(&plain_out), events(&watched_out));
    assert!(events(&watched_out).contains("\tstim\t"));
    for s in [&plain_summary, &summary] {
        assert_eq!(s["status"], "complete");
        assert_eq!(s["runtime"]["acquisition_overrun_frames"], 0);
        assert_eq!(s["runtime"]["event_ring_full"], 0);
    }
    let monitor = &summary["monitor"];
    assert!(monitor["connections"].as_u64().unwrap() >= 2, "{monitor}");
    println!("monitor with a stalled client: {monitor}");
    println!(
        "block processing without / with the monitor: {} / {}",
        plain_summary["latency"]["block_processing"], summary["latency"]["block_processing"]
    );
    let mut ms: Vec<f64> = latencies.iter().map(|ns| *ns as f64 / 1e6).collect();
    ms.sort_by(f64::total_cmp);
    assert!(!ms.is_empty(), "no stim reached the reading client");
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "deciding sample's arrival -> stim at a websocket client: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        ms.len(),
        at(0.5),
        at(0.99),
        ms[ms.len() - 1]
    );
}

/// Read updates for `time`; for each stim, nanoseconds from its deciding
/// sample's arrival (as the session stamped it) to its receipt here.
async fn stim_latencies(url: String, time: Duration) -> Vec<u64> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let mut latencies = Vec::new();
    let until = Instant::now() + time;
    let mut first = true;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until.into(), ws.next()).await {
        let received = monotonic_ns();
        let Message::Text(text) = message else {
            continue;
        };
        let update: serde_json::Value = serde_json::from_str(&text).unwrap();
        // The hello repeats the past: only live updates measure latency.
        if std::mem::take(&mut first) {
            continue;
        }
        for event in update["events"].as_array().unwrap() {
            if event["kind"] == "stim" {
                let arrived = event["arrived_mono_ns"].as_u64().unwrap();
                latencies.push(received.saturating_sub(arrived));
            }
        }
    }
    latencies
}

/// Beyond loopback the CLI wants a token; with a token, a request without it
/// or with a wrong one gets 401 (page, websocket, disarm), and the disarm
/// button with it ends the session as Ctrl-C does.
#[test]
fn tokens_guard_the_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |args: &[&str], needle: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_neuroloop"))
            .args(["run", "--duration-s", "1", "--out"])
            .arg(dir.path().join("refused"))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} accepted: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
        assert!(!dir.path().join("refused").exists());
    };
    refused(&["--monitor", "0.0.0.0:0"], "--monitor-token");
    refused(&["--monitor", "[::]:0"], "--monitor-token");
    refused(
        &["--monitor", "127.0.0.1:0", "--monitor-token", "short"],
        "--monitor-token",
    );

    let session = Session::start(
        dir.path(),
        "s",
        &[
            "--duration-s",
            "60",
            "--monitor",
            "127.0.0.1:0",
            "--monitor-token",
            TOKEN,
        ],
    );
    let addr = session.addr;
    let stderr = std::fs::read_to_string(&session.stderr).unwrap();
    assert!(!stderr.contains(TOKEN), "the token is printed: {stderr}");
    let wrong = "test-token-0123456789abcdeX";
    assert_eq!(http(addr, "GET", "/", "").0, 401);
    assert_eq!(http(addr, "GET", &format!("/?token={wrong}"), "").0, 401);
    assert_eq!(http(addr, "GET", &format!("/?token={TOKEN}"), "").0, 200);
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    assert_eq!(http(addr, "GET", "/", &bearer).0, 200);
    let rt = runtime();
    for path in ["/ws".to_string(), format!("/ws?token={wrong}")] {
        match rt.block_on(tokio_tungstenite::connect_async(format!(
            "ws://{addr}{path}"
        ))) {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("{path}: {:?}", other.map(|_| "connected")),
        }
    }
    let (ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(format!(
            "ws://{addr}/ws?token={TOKEN}"
        )))
        .unwrap();
    drop(ws);
    assert_eq!(http(addr, "POST", "/disarm", "").0, 401);
    assert_eq!(
        http(addr, "POST", &format!("/disarm?token={wrong}"), "").0,
        401
    );
    let (code, body) = http(addr, "POST", &format!("/disarm?token={TOKEN}"), "");
    assert_eq!(code, 200, "{body}");
    let (_, summary) = session.wait();
    assert_eq!(summary["status"], "interrupted");
    assert_eq!(summary["runtime"]["outputs_disarmed_before_flush"], true);
    assert!(summary["duration_s"].as_f64().unwrap() < 50.0);
}

/// With an output (the emulated Pulse Pal), the page gets each trigger's
/// latency (deciding sample's arrival → command written) from the sink, as
/// the session's `latency.tsv` counts it.
#[test]
fn trigger_latencies_reach_the_page_from_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("pp");
    let mut emulator = Command::new(env!("CARGO_BIN_EXE_neuroloop"))
        .args(["emulate", "pulse-pal", "--link", link.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if link.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let session = monitored_rodent_session(
        dir.path(),
        &format!(
            "[[outputs]]\nkind = \"pulse-pal\"\nport = \"{}\"\n",
            link.display()
        ),
    );
    let mut outputs = serde_json::Value::Null;
    let latency = runtime()
        .block_on(watch(session.addr, |update| {
            if update["type"] == "hello" {
                outputs = update["session"]["outputs"].clone();
            }
            let latency = &update["status"]["trigger_latency"];
            latency["count"]
                .as_u64()
                .is_some_and(|n| n >= 2)
                .then(|| latency.clone())
        }))
        .expect("the session ended before two triggers were written");
    session.interrupt();
    let (_, summary) = session.wait();
    emulator.kill().unwrap();
    emulator.wait().unwrap();
    assert_eq!(outputs, serde_json::json!(["pulse-pal"]));
    let written = &summary["latency"]["arrival_to_command"];
    assert!(latency["count"].as_u64() <= written["count"].as_u64());
    for field in ["p50_us", "p99_us"] {
        assert!(latency[field].as_f64().unwrap() > 0.0, "{latency}");
    }
    println!("trigger latency on the page: {latency}; in summary.json: {written}");
}

/// The session's warnings reach the page as they are logged (here the
/// processing thread's refused pinning to a CPU that does not exist), and
/// when the session ends the page is told how, once it is disarmed and written.
#[test]
fn warnings_and_the_ending_reach_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let session = monitored_rodent_session(dir.path(), "[realtime]\ncpu = 100000\n");
    let mut warnings = serde_json::Value::Null;
    let ended = runtime()
        .block_on(watch(session.addr, |update| {
            if update["type"] == "ended" {
                return Some(update.clone());
            }
            let shown = &update["status"]["warnings"];
            if warnings.is_null() && shown.as_array().is_some_and(|w| !w.is_empty()) {
                warnings = shown.clone();
                session.interrupt();
            }
            None
        }))
        .unwrap_or_else(|| {
            panic!("the page was not told the session ended (warnings: {warnings})")
        });
    let out = session.out.clone();
    let (_, summary) = session.wait();
    assert_eq!(summary["status"], "interrupted");
    assert_eq!(ended["status"], "interrupted", "{ended}");
    assert_eq!(ended["error"], serde_json::Value::Null);
    assert_eq!(ended["folder"], out.display().to_string());
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.contains("CPU 100000") && warning.contains("running without it"),
        "{warnings}"
    );
}

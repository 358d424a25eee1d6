//! The dashboard in a real browser: headless Chromium driven through WebDriver (the W3C
//! JSON protocol, sent with hyper's HTTP/1.1 client) against `live_server` bound to
//! `0.0.0.0`, where admin reads need a token.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`apt-get install -y chromium
//! chromium-driver`); without them the test fails and says so.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use eac_tests::{APP_TOML, SECRET};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use support::{Auth, Launch, Server, TOKEN};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const INSTALL: &str = "apt-get install -y chromium chromium-driver";

/// The first of `names` found on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A chromedriver process and one browser session; both ended on drop.
struct Browser {
    driver: Child,
    address: SocketAddr,
    /// Runs the WebDriver exchanges, one at a time.
    runtime: tokio::runtime::Runtime,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let chromedriver = on_path(&["chromedriver"]).unwrap_or_else(|| {
            panic!("chromedriver is not installed: this test needs a real browser (`{INSTALL}`)")
        });
        let chromium =
            on_path(&["chromium", "chromium-browser", "google-chrome"]).unwrap_or_else(|| {
                panic!("chromium is not installed: this test needs a real browser (`{INSTALL}`)")
            });
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let mut command = Command::new(&chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that the browser it starts goes with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command.spawn().expect("start chromedriver");
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let profile = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut browser = Browser {
            driver,
            address,
            runtime,
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = TcpStream::connect(address).is_ok()
                && browser.raw("GET", "/status", None).1["value"]["ready"] == true;
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1440,1300", "--hide-scrollbars", "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                ],
            },
        }}});
        let (status, created) = browser.raw("POST", "/session", Some(&capabilities));
        assert_eq!(status, 200, "no browser session: {created}");
        browser.session = created["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser
    }

    /// One WebDriver exchange on a connection of its own: the status and the JSON answer.
    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.address.to_string())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(
                body.map(Value::to_string).unwrap_or_default(),
            )))
            .unwrap();
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(self.address)
                .await
                .expect("connect to chromedriver");
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("an HTTP/1.1 connection");
            let connection = tokio::spawn(connection);
            let response = sender.send_request(request).await.expect("an answer");
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.expect("its body");
            connection.abort();
            (status, body.to_bytes())
        };
        let (status, body) = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(60), exchange).await })
            .unwrap_or_else(|_| panic!("WebDriver {method} {path}: no answer within 60 s"));
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// A command of this session; its `value`, or a panic naming the WebDriver error.
    fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let body = (method == "POST").then_some(&body);
        let (status, answer) = self.raw(method, &path, body);
        assert_eq!(status, 200, "WebDriver {method} {path}: {answer}");
        answer["value"].clone()
    }

    /// Runs `script` in the page; what it returns.
    fn script(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }));
    }

    fn find(&self, css: &str) -> String {
        let found = self.cmd(
            "POST",
            "/element",
            json!({ "using": "css selector", "value": css }),
        );
        found[ELEMENT].as_str().expect("an element").to_owned()
    }

    fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.cmd("GET", &format!("/element/{id}/text"), Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn attribute(&self, css: &str, name: &str) -> String {
        let id = self.find(css);
        self.cmd(
            "GET",
            &format!("/element/{id}/attribute/{name}"),
            Value::Null,
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/click"), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/clear"), json!({}));
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    /// Polls the text of `css` until `done` holds, for at most 10 seconds.
    fn until(&self, css: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        self.until_within(css, what, Duration::from_secs(10), done)
    }

    /// [`until`](Browser::until), for at most `within`.
    fn until_within(
        &self,
        css: &str,
        what: &str,
        within: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.try_text(css).unwrap_or_default();
            if done(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "`{css}` never showed {what}; it shows {text:?}; page: {}",
                self.try_text("body").unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_text(&self, css: &str) -> Option<String> {
        let path = format!("/session/{}/element", self.session);
        let (status, found) = self.raw(
            "POST",
            &path,
            Some(&json!({ "using": "css selector", "value": css })),
        );
        let id = found["value"][ELEMENT].as_str().filter(|_| status == 200)?;
        let path = format!("/session/{}/element/{id}/text", self.session);
        let (status, text) = self.raw("GET", &path, None);
        (status == 200).then(|| text["value"].as_str().unwrap_or_default().to_owned())
    }

    /// The browser's console since the last call (chromedriver drains it).
    fn console(&self) -> Vec<Value> {
        let path = format!("/session/{}/se/log", self.session);
        let (status, log) = self.raw("POST", &path, Some(&json!({ "type": "browser" })));
        assert_eq!(status, 200, "no browser log: {log}");
        log["value"].as_array().cloned().unwrap_or_default()
    }

    fn screenshot(&self, to: &Path) {
        let encoded = self.cmd("GET", "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 PNG"))
            .expect("a base64 screenshot");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Quits the browser.
            let _ = self.raw("DELETE", &format!("/session/{}", self.session), None);
        }
        // Then the driver and anything left in its group.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Console entries that are errors (`SEVERE`), as text.
fn errors(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_dashboard_follows_the_server_live_and_rolls_back_in_a_real_browser() {
    let (config, state) = support::app_dirs();
    let file = config.path().join("app.toml");
    // Bound to 0.0.0.0: reads need a token, even through loopback.
    let server = Launch::new(config.path(), state.path())
        .listen("0.0.0.0:0")
        .start();
    let local = SocketAddr::from(([127, 0, 0, 1], server.address.port()));
    let admin = format!("http://{local}/_internal/eac");

    // The page loads without a token, under the CSP; its data does not.
    let page = Server::request_to(local, "GET", "/_internal/eac/", Auth::None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.header("content-security-policy"),
        Some("default-src 'self'")
    );
    for file in ["app.js", "app.css"] {
        let path = format!("/_internal/eac/dashboard/{file}");
        assert_eq!(
            Server::request_to(local, "GET", &path, Auth::None).status,
            200
        );
    }
    let status = Server::request_to(local, "GET", "/_internal/eac/status", Auth::None);
    assert_eq!(status.status, 401);

    let browser = Browser::start();
    browser.go(&format!("{admin}/"));
    // The script ran (under `default-src 'self'`) and asked for a token.
    browser.until("#banner", "a request for a token", |t| {
        t.contains("needs a token")
    });
    // Without a token the only errors are the refused reads (401), nothing else.
    let before = errors(&browser.console());
    assert!(
        before
            .iter()
            .all(|e| e.contains("401") && e.contains("/_internal/eac/")),
        "unexpected console errors before the token: {before:?}"
    );

    browser.type_into("#token", TOKEN);
    browser.click("#token-save");
    browser.until("#version", "version 1", |t| t == "1");
    browser.until("#live", "the event stream open", |t| t == "live");
    browser.until("#history", "version 1 in the history", |t| t.contains('1'));
    // Nothing happened yet: the event log says so.
    assert!(browser.text("#events").starts_with("No events yet"));

    // A valid edit shows up live: the event log and the version, no reload.
    let edited = APP_TOML.replace("message = \"hello\"", "message = \"hello, live\"");
    std::fs::write(&file, &edited).unwrap();
    browser.until("#version", "version 2", |t| t == "2");
    browser.until("#events", "the publish event", |t| {
        t.contains("published") && t.contains("version 2") && !t.contains("No events yet")
    });
    // The resolver of `[access] rules` was not rebuilt: `[access]` did not change.
    browser.until("#resolvers", "the access rules resolver", |t| {
        t.contains("access rules")
    });
    assert_eq!(
        browser.text("[data-resolver='access rules'] .built-at"),
        "1"
    );
    assert!(
        browser.text("#sources").contains("read on demand"),
        "{}",
        browser.text("#sources")
    );

    // An invalid edit is rejected: the page says so and names the key.
    let broken = edited.replace("max_body_bytes = 1048576", "max_body_bytes = 0");
    std::fs::write(&file, &broken).unwrap();
    browser.until("#banner", "the rejection", |t| t.contains("REJECTED"));
    browser.until("#errors", "the rejected key", |t| {
        t.contains("limits.max_body_bytes")
    });
    assert_eq!(browser.text("#version"), "2", "a rejection changes nothing");
    std::fs::write(&file, &edited).unwrap();
    browser.until("#outcome", "a good reload again", |t| t != "rejected");

    // Roll back to version 1: the confirmation shows the diff first.
    browser.click("button[data-rollback='1']");
    let confirm = browser.until("#confirm-body", "the rollback's diff", |t| {
        t.contains("greeting.message")
    });
    assert!(
        confirm.contains("\"hello, live\"") && confirm.contains("\"hello\""),
        "{confirm}"
    );
    browser.click("#confirm-ok");
    browser.until("#version", "version 3", |t| t == "3");
    browser.until("#origin", "the rollback as the origin", |t| {
        t.contains("rollback")
    });
    let served = server.get("/", Auth::None);
    assert_eq!(served["message"], "hello", "{served}");
    assert_eq!(served["version"], 3, "{served}");

    // The stream closes while the tab is hidden and reopens when it is shown again.
    let opened = browser.attribute("#live", "data-opened");
    let first = browser.cmd("GET", "/window", Value::Null);
    let other = browser.cmd("POST", "/window/new", json!({ "type": "tab" }));
    browser.cmd("POST", "/window", json!({ "handle": other["handle"] }));
    browser.cmd("DELETE", "/window", Value::Null);
    browser.cmd("POST", "/window", json!({ "handle": first }));
    let deadline = Instant::now() + Duration::from_secs(10);
    while browser.attribute("#live", "data-opened") == opened {
        assert!(
            Instant::now() < deadline,
            "the stream was not reopened after the tab was hidden"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    browser.until("#live", "the event stream open again", |t| t == "live");

    // A diff between two kept versions, for the picture too.
    browser.click("#diff-form button");
    browser.until("#diff-result", "a diff", |t| t.contains("greeting.message"));
    let page_text = browser.text("body");
    assert!(!page_text.contains(SECRET), "a secret shows on the page");
    assert!(!page_text.contains(TOKEN), "the token shows on the page");

    // With the token, no console errors at all.
    let after = errors(&browser.console());
    assert!(after.is_empty(), "console errors: {after:?}");

    // The README's picture is refreshed only when asked (EAC_UPDATE_SCREENSHOT=1), so a
    // test run leaves the work tree clean.
    let shot = if std::env::var_os("EAC_UPDATE_SCREENSHOT").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/screenshots/dashboard.png")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png")
    };
    // The page from its top, as a visitor first sees it.
    browser.script("window.scrollTo(0, 0); return null;");
    browser.screenshot(&shot);

    // A preview of a change with long values: its diff fits the card (nothing cut off on
    // the right), and the resolvers' table breaks no word.
    browser.type_into(
        "#overlay",
        &json!({"upstream": {"url": format!("https://{}.example/api", "a-very-long-host-name".repeat(4))},
                "greeting": {"message": "a long message to see whether the why column stays in view"}})
        .to_string(),
    );
    browser.click("#preview");
    browser.until("#action-result", "the preview's diff", |t| {
        t.contains("upstream.url")
    });
    let overflow = browser.script(
        "const r = document.getElementById('action-result'); \
         const card = r.closest('.card').getBoundingClientRect(); \
         const t = r.querySelector('table').getBoundingClientRect(); \
         return [t.right - card.right, r.scrollWidth - r.clientWidth];",
    );
    assert!(
        overflow[0].as_f64().unwrap() <= 0.0 && overflow[1].as_f64().unwrap() <= 0.0,
        "the preview's diff runs out of its card by {overflow}"
    );
    // Each word of each cell on one line: a word laid out over two lines has two boxes.
    let broken = browser.script(
        "const broken = []; \
         for (const td of document.querySelectorAll('#resolvers td, #resolvers th')) { \
           const walk = document.createTreeWalker(td, NodeFilter.SHOW_TEXT); \
           for (let n = walk.nextNode(); n; n = walk.nextNode()) { \
             const words = /\\S+/g; let m; \
             while ((m = words.exec(n.data))) { \
               const r = document.createRange(); \
               r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length); \
               if (r.getClientRects().length > 1) broken.push(m[0]); \
             } \
           } \
         } \
         return broken;",
    );
    assert_eq!(broken, json!([]), "resolver cells broken inside a word");

    // The metrics route, read with the token, saw the same story.
    let (code, metrics) = {
        let r = Server::request_to(local, "GET", "/_internal/eac/metrics", Auth::Read);
        (r.status, r.body)
    };
    assert_eq!(code, 200, "{metrics}");
    assert!(metrics.contains("eac_snapshot_version 3"), "{metrics}");
    assert!(
        metrics.contains("eac_reload_total{outcome=\"rejected\"}"),
        "{metrics}"
    );

    drop(browser);
    server.terminate();
}

#[test]
fn the_dashboard_shows_a_remote_source_its_etag_hits_and_when_it_is_down() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let remote = runtime
        .block_on(eac_examples::doc_server::DocServer::start(
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    remote.set(eac_examples::doc_server::Document::text(
        "application/toml",
        "[greeting]\nmessage = \"from the config service\"\n",
    ));
    let (config, state) = support::app_dirs();
    let url = remote.url("/app.toml");
    let server = Launch::new(config.path(), state.path())
        .arg("--remote")
        .arg(&url)
        .env("EAC_REFRESH_POLL_INTERVAL_MS", "100")
        .start();
    let browser = Browser::start();
    browser.go(&format!("http://{}/_internal/eac/", server.address));
    browser.type_into("#token", TOKEN);
    browser.click("#token-save");
    // The remote source: its URL, up, and polls answered 304 counted as not modified.
    let panel = browser.until("#sources", "the remote source, up, with ETag hits", |t| {
        t.contains(&url) && t.contains("up") && !t.contains(" 0 not modified")
    });
    assert!(panel.contains("http"), "{panel}");
    // A bad remote document blocks only itself: it shows as rejected at its source, and
    // a file edit is published without it, the page listing it as held back.
    remote.set(eac_examples::doc_server::Document::text(
        "application/toml",
        "[greeting]\nmessage = \"\"\n",
    ));
    browser.until("#sources", "the rejection at the source", |t| {
        t.contains("(rejected)") && t.contains("1 rejected")
    });
    std::fs::write(
        config.path().join("app.toml"),
        eac_tests::app_with("request_timeout_ms = 5000", "request_timeout_ms = 4000"),
    )
    .unwrap();
    let held = browser.until("#drift", "the remote document held back", |t| {
        t.contains("Held back") && t.contains(&url)
    });
    assert!(held.contains("greeting.message"), "{held}");
    let answer = server.get("/", Auth::None);
    assert_eq!(
        (&answer["message"], &answer["version"]),
        (&"from the config service".into(), &2.into())
    );
    remote.set(eac_examples::doc_server::Document::text(
        "application/toml",
        "[greeting]\nmessage = \"from the config service\"\n",
    ));
    browser.until("#drift", "nothing held back", |t| !t.contains("Held back"));
    // The config service goes away: the panel says the source is down, the server keeps
    // serving its version.
    drop(remote);
    drop(runtime);
    browser.until("#sources", "the source down", |t| t.contains("down"));
    // And the banner is not green about it.
    browser.until("#banner", "the banner saying the source is down", |t| {
        t.contains("but ") && t.contains("is down")
    });
    assert_eq!(browser.attribute("#banner", "class"), "banner warn");
    assert_eq!(
        server.get("/", Auth::None)["message"],
        "from the config service"
    );
    let after = errors(&browser.console());
    assert!(after.is_empty(), "console errors: {after:?}");
    drop(browser);
    server.terminate();
}

#[cfg(feature = "etcd")]
#[test]
fn the_dashboard_shows_which_instance_of_an_etcd_fleet_serves_which_version() {
    const PREFIX: &str = "/eac/dashboard/";
    let (etcd, mut client, config) = support::etcd_fleet_ground(PREFIX, "from etcd");
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let launch = |state: &Path| {
        Launch::new(config.path(), state)
            .arg("--etcd")
            .arg(&etcd.endpoint())
            .arg("--etcd-prefix")
            .arg(PREFIX)
    };
    let a = launch(state_a.path()).start();
    // B's environment gives it other configuration: the odd one out on A's page.
    let mut b = launch(state_b.path())
        .env("APP_FEATURES__SHOUT", "true")
        .start();

    // The ids the instances registered under (host name and listen address).
    let fleet = |s: &Value| s["sources"][0]["details"]["fleet"].clone();
    let status = a.until("/_internal/eac/status", |s| {
        fleet(s).as_object().is_some_and(|f| f.len() == 2)
    });
    let id = |server: &Server| {
        let suffix = format!(":{}", server.address);
        fleet(&status)
            .as_object()
            .unwrap()
            .keys()
            .find(|id| id.ends_with(&suffix))
            .cloned()
            .unwrap_or_else(|| panic!("no instance id ends with {suffix}: {status}"))
    };
    let (id_a, id_b) = (id(&a), id(&b));
    let row = |id: &str| format!("tr[data-instance='{id}']");
    let version_of = |id: &str| format!("{} .fleet-version", row(id));
    let shows = |version: &Value| {
        let version = version.to_string();
        move |t: &str| t.split_whitespace().next() == Some(version.as_str())
    };

    let browser = Browser::start();
    browser.go(&format!("http://{}/_internal/eac/", a.address));
    browser.type_into("#token", TOKEN);
    browser.click("#token-save");
    browser.until("#live", "the event stream open", |t| t == "live");

    // One row per instance, with the version each serves; B, serving other
    // configuration, is marked, A is not.
    for (server, id) in [(&a, &id_a), (&b, &id_b)] {
        let version = &server.get("/", Auth::None)["version"];
        browser.until(&version_of(id), "the version it serves", shows(version));
    }
    browser.until(&row(&id_b), "B marked as differing", |t| {
        t.contains("differs")
    });
    let version_a = a.get("/", Auth::None)["version"].to_string();
    browser.until(&row(&id_a), "A's row, not marked", |t| {
        t.contains(&id_a) && t.contains(&version_a) && !t.contains("differs")
    });
    browser.until(".detail-fleet", "the odd one out counted", |t| {
        t.contains("1 of 2 instance(s) serve other configuration")
    });
    // The fleet has the whole row: its card as wide as the page's grid, each instance's
    // name on one line.
    let layout = browser.script(
        "const card = document.querySelector('.detail-fleet').closest('.card').getBoundingClientRect(); \
         const main = document.querySelector('main').getBoundingClientRect(); \
         const lines = [...document.querySelectorAll('table.fleet code.instance')] \
           .map(c => c.getClientRects().length); \
         return [card.width / main.width, Math.max(...lines)];",
    );
    assert!(
        layout[0].as_f64().unwrap() > 0.9 && layout[1] == 1,
        "the fleet's card is {layout} (its share of the row, the most lines an instance's name takes)"
    );

    // A put is live on both: the table follows, for both rows.
    client.put("greeting", r#"{"message": "second"}"#);
    for (server, id) in [(&a, &id_a), (&b, &id_b)] {
        let body = server.until("/", |b| {
            b["message"]
                .as_str()
                .is_some_and(|m| m.eq_ignore_ascii_case("second"))
        });
        browser.until(&version_of(id), "the new version", shows(&body["version"]));
    }
    browser.until(&row(&id_b), "B still marked", |t| t.contains("differs"));
    browser.screenshot(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-fleet.png"));
    for id in [&id_a, &id_b] {
        browser.until(&row(id), "the instance SYNCED", |t| t.contains("SYNCED"));
    }

    // A bad put: both instances NACK it; a click on the NACK shows its errors.
    client.put("greeting", r#"{"message": ""}"#);
    for id in [&id_a, &id_b] {
        browser.until(&row(id), "the instance NACKED", |t| {
            t.contains("NACKED") && t.contains("NACK of revision")
        });
    }
    browser.click(&format!("{} details.nack summary", row(&id_b)));
    browser.until(&row(&id_b), "the NACK's errors", |t| {
        t.contains("greeting.message") && t.contains(&format!("etcd:{PREFIX}greeting@"))
    });
    // Fixed: SYNCED again, the NACK gone; both applied the latest revision, each with
    // the time it took.
    client.put("greeting", r#"{"message": "third"}"#);
    for id in [&id_a, &id_b] {
        browser.until(&row(id), "SYNCED again", |t| {
            t.contains("SYNCED") && !t.contains("NACK") && t.contains(" ms (receipt)")
        });
    }
    browser.until(
        "#fleet-applied",
        "the latest revision applied by both",
        |t| t.contains("applied by 2 of 2, the slowest in "),
    );

    // B dies without leaving: its row goes once its lease runs out. live_server takes
    // the fleet's default lease (10 s) and has no flag to shorten it, hence the wait.
    b.signal("KILL");
    b.wait_exit();
    // The panel is re-filled every 2 s: a read between two renders finds no table, so
    // "B gone" must be read off a table that still lists A.
    let left = browser.until_within(
        ".detail-fleet",
        "B gone once its lease ran out",
        Duration::from_secs(30),
        |t| t.contains(&id_a) && !t.contains(&id_b),
    );
    assert!(left.contains("all serving this configuration"), "{left}");

    let after = errors(&browser.console());
    assert!(after.is_empty(), "console errors: {after:?}");
    drop(browser);
    a.terminate();
    drop(b);
}

#[cfg(feature = "etcd")]
#[test]
fn the_dashboard_shows_a_gray_release_of_an_etcd_fleet_in_flight_and_decides_it_by_hand() {
    const PREFIX: &str = "/eac/dashboard-release/";
    let (etcd, _client, config) = support::etcd_fleet_ground(PREFIX, "hello");
    let endpoint = etcd.endpoint();
    let states: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let fleet: Vec<Server> = states
        .iter()
        .map(|state| {
            Launch::new(config.path(), state.path())
                .arg("--etcd")
                .arg(&endpoint)
                .arg("--etcd-prefix")
                .arg(PREFIX)
                .env_remove("APP_FEATURES__SHOUT")
                .start()
        })
        .collect();
    let view = fleet[0].until("/_internal/eac/fleet", |f| {
        f["members"].as_array().is_some_and(|m| m.len() == 2)
    });
    let canary_id = format!(":{}", fleet[1].address);
    let canary_id = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .find(|id| id.ends_with(&canary_id))
        .unwrap()
        .to_owned();

    // A little load on both, for the judge's figures.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = std::sync::Arc::clone(&stop);
        let addresses: Vec<_> = fleet.iter().map(|s| s.address).collect();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for address in &addresses {
                    Server::request_to(*address, "GET", "/", Auth::None);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // A release of `shout` to the second member, with a window no test waits out.
    let start_release = || {
        support::tool(
            &[
                "release",
                "features",
                "-",
                "--canary-ids",
                &canary_id,
                "--window",
                "60s",
                "--etcd",
                &endpoint,
                "--etcd-prefix",
                PREFIX,
            ],
            r#"{"shout": true}"#,
        )
    };
    let release = start_release();
    fleet[1].until("/", |b| b["message"] == "HELLO");
    let id = fleet[0].until("/_internal/eac/fleet", |f| {
        f["releases"][0]["state"] == "canary"
    })["releases"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let browser = Browser::start();
    browser.go(&format!("http://{}/_internal/eac/", fleet[0].address));
    browser.type_into("#token", TOKEN);
    browser.click("#token-save");
    browser.until("#live", "the event stream open", |t| t == "live");
    // In flight: its canary, the window left, and what the judge sees of both roles.
    let row = format!("tr[data-release='{id}']");
    browser.until(&row, "the release in flight", |t| {
        t.contains("in flight") && t.contains(&canary_id) && t.contains("s of the window left")
    });
    let counted = |t: &str| {
        t.split_whitespace()
            .next()
            .is_some_and(|first| first.ends_with('%'))
            && !t.contains(" 0 requests")
    };
    browser.until(
        &format!("{row} .release-canary"),
        "the canaries' figures",
        counted,
    );
    browser.until(
        &format!("{row} .release-stable"),
        "the stable members' figures",
        counted,
    );
    browser.until(
        &format!("tr[data-instance='{canary_id}'] .fleet-state"),
        "the canary's role",
        |t| t.contains("canary"),
    );
    browser.screenshot(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-release.png"));

    // Aborted by hand, from the page: the command that started it ends with exit 3,
    // the canary is back, and the row says why.
    browser.click(&format!("{row} button[data-release-action='abort']"));
    let (code, out, err) = support::finish(release);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.contains("aborted: aborted by hand"), "{out}");
    fleet[1].until("/", |b| b["message"] == "hello");
    browser.until(&row, "the decision", |t| {
        t.contains("aborted") && t.contains("aborted by hand") && !t.contains("in flight")
    });
    // Seen by this member too, in its event stream.
    browser.until("#events", "the release's end", |t| {
        t.contains(&format!("release {id} aborted"))
    });

    // A second release, promoted by hand from the page: the command ends with exit 0,
    // every member serves it, and the row says who decided.
    let release = start_release();
    fleet[1].until("/", |b| b["message"] == "HELLO");
    let second = fleet[0].until("/_internal/eac/fleet", |f| {
        f["releases"].as_array().is_some_and(|r| {
            r.iter()
                .any(|r| r["id"] != id.as_str() && r["state"] == "canary")
        })
    })["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] != id.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let row = format!("tr[data-release='{second}']");
    browser.until(&row, "the second release in flight", |t| {
        t.contains("in flight")
    });
    browser.click(&format!("{row} button[data-release-action='promote']"));
    let (code, out, err) = support::finish(release);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("promoted: promoted by hand"), "{out}");
    for server in &fleet {
        server.until("/", |b| b["message"] == "HELLO");
    }
    browser.until(&row, "the promotion", |t| {
        t.contains("promoted") && t.contains("promoted by hand") && !t.contains("in flight")
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    let after = errors(&browser.console());
    assert!(after.is_empty(), "console errors: {after:?}");
    drop(browser);
    for server in fleet {
        server.terminate();
    }
}

#[test]
fn the_dashboard_shows_a_running_canary_its_figures_and_aborts_it() {
    let (config, state) = support::app_dirs();
    let server = Launch::new(config.path(), state.path())
        .arg("--reload")
        .arg("canary")
        .env("EAC_CANARY_SHARE", "1.0")
        .env("EAC_CANARY_WINDOW_MS", "600000")
        .start();
    let browser = Browser::start();
    browser.go(&format!("http://{}/_internal/eac/", server.address));
    browser.type_into("#token", TOKEN);
    browser.click("#token-save");
    browser.until("#canary", "no canary", |t| t.contains("No canary running"));
    // Started from the Act card's overlay.
    browser.type_into("#overlay", r#"{"greeting": {"message": "from a canary"}}"#);
    browser.click("#canary-start");
    let panel = browser.until("#canary", "the canary and its share", |t| {
        t.contains("canary v2") && t.contains("100% of requests")
    });
    assert!(
        panel.contains("stable") && panel.contains("requests"),
        "{panel}"
    );
    browser.until("#banner", "the canary in the banner", |t| {
        t.contains("Serving version 1") && t.contains("Canary v2")
    });
    // Requests it served show in its figures (the page polls while a canary runs).
    for _ in 0..3 {
        assert_eq!(server.get("/", Auth::None)["message"], "from a canary");
    }
    browser.until("#canary", "three canary requests", |t| {
        t.lines().any(|l| l.starts_with("canary 3 "))
    });
    browser.click("#canary-abort");
    browser.until("#action-result", "the abort", |t| t.contains("aborted"));
    browser.until("#canary", "no canary", |t| t.contains("No canary running"));
    assert_eq!(server.get("/", Auth::None)["message"], "hello");
    let after = errors(&browser.console());
    assert!(after.is_empty(), "console errors: {after:?}");
    drop(browser);
    server.terminate();
}

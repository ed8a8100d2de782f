//! The dashboard (`serve`) of the real `async-worker` binary, opened in Debian's Chromium
//! (headless, driven by chromedriver over WebDriver) as an operator would: the overview's
//! handlers and lag (refreshed live), a dead letter's error (HTML in it shown as text, never
//! run), the chain of an event, the flow diagram; retry through the UI after signing in with
//! the token; and refusals: read-only mode, a forged form. Screenshots of each page go to
//! `target/tmp/dashboard/`.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install -y chromium chromium-driver`);
//! without them the test is skipped with a note, unless `CI=true`, where it fails.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http, App};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const TOKEN: &str = "a-long-operator-token-for-the-test";
/// Markup in an order's note: stored in the payload and quoted in the stock service's error.
const NOTE: &str = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\"><i class=\"injected\">x</i>";

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(path: &str) -> Option<PathBuf> {
    let path = Path::new(path);
    if path.exists() {
        return Some(path.to_owned());
    }
    let message = format!(
        "{} not found; install Debian's chromium and chromium-driver",
        path.display()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("skipped: {message}");
    None
}

/// Starts `serve` on a free port; its base URL, read from the line it prints on stderr.
fn serve(app: &App, extra: &[&str], token: Option<&str>) -> (Running, String) {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut cmd = app.command(&args);
    match token {
        Some(t) => cmd.env("EVENTS_DASHBOARD_TOKEN", t),
        None => cmd.env_remove("EVENTS_DASHBOARD_TOKEN"),
    };
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("dashboard: ") {
                let url = rest.split_whitespace().next().unwrap_or_default();
                let _ = tx.send(url.trim_end_matches('/').to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve printed no `dashboard: http://..` line within 30 s");
    (Running(child), url)
}

/// The dead letters and retries as `dead-letters --json` lists them.
fn failures(app: &App) -> Vec<Value> {
    let out: Value = serde_json::from_str(&app.run(&["dead-letters", "--json"])).unwrap();
    out["failures"].as_array().unwrap().clone()
}

/// Places orders (`place`: the arguments of `place-orders`), runs a worker on every handler
/// for two seconds, and returns the dead letters (`dead-letters --json`).
fn dead_letters_of(app: &App, place: &[&str]) -> Vec<Value> {
    app.run(&[&["place-orders"], place].concat());
    app.run(&App::PROCESS_ALL);
    failures(app)
        .into_iter()
        .filter(|f| f["status"] == "dead")
        .collect()
}

/// The text of the first `css` element, waiting for it (up to 30 s) while a page loads after
/// a click.
async fn text(client: &Client, css: &str) -> String {
    let found = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await;
    match found {
        Ok(element) => element.text().await.unwrap(),
        Err(e) => {
            let page = client.source().await.unwrap_or_default();
            panic!(
                "no `{css}` on {:?}: {e}\n{page}",
                client.current_url().await
            );
        }
    }
}

async fn screenshot(client: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// `fetch` from the page: the status of a POST to `path` with `body` as a form and `auth` as
/// the Authorization header.
async fn post_from_page(client: &Client, path: &str, body: &str, auth: Option<&str>) -> u64 {
    let script = r#"
        const [path, body, auth, done] = arguments;
        const headers = { "Content-Type": "application/x-www-form-urlencoded" };
        if (auth) headers["Authorization"] = auth;
        fetch(path, { method: "POST", headers, body }).then(r => done(r.status), e => done(String(e)));
    "#;
    let status = client
        .execute_async(script, vec![json!(path), json!(body), json!(auth)])
        .await
        .unwrap();
    status
        .as_u64()
        .unwrap_or_else(|| panic!("fetch failed: {status}"))
}

/// Waits until `css`'s text is `want` (the page refreshes itself), for at most `limit`.
async fn wait_text(client: &Client, css: &str, want: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let got = text(client, css).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "`{css}` still reads {got:?}, not {want:?}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_the_dashboard_and_retries_a_dead_letter_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) =
        (tool("/usr/bin/chromium"), tool("/usr/bin/chromedriver"))
    else {
        return;
    };
    let app = App::new("dashboard");
    let dead = dead_letters_of(&app, &["12", "--empty-every", "6", "--note", NOTE]);
    assert_eq!(dead.len(), 2, "orders 6 and 12 dead-lettered: {dead:?}");
    let (first, second) = (
        dead[0]["id"].as_i64().unwrap(),
        dead[1]["id"].as_i64().unwrap(),
    );

    let (_read_only, ro) = serve(&app, &[], None);
    let (_acting, act) = serve(&app, &["--allow-actions"], Some(TOKEN));

    let port = free_port();
    let _driver = Running(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1400,1000"],
        }),
    );
    let start = Instant::now();
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => break client,
            Err(e) if start.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver did not start a browser within 30 s: {e}"),
        }
    };

    // The overview: both handlers, the stock handler's dead letters, its lag (live).
    client.goto(&format!("{ro}/")).await.unwrap();
    let handlers = text(&client, "table.handlers").await;
    assert!(handlers.contains("orders.send_confirmation"), "{handlers}");
    assert!(handlers.contains("orders.update_stock"), "{handlers}");
    assert_eq!(text(&client, "a.dead").await, "2");
    assert_eq!(text(&client, "b.log-head").await, "12");
    assert!(text(&client, "ul.problems")
        .await
        .contains("orders.update_stock: 2 dead letters"));
    app.run(&["place-orders", "5"]);
    // No reload: the page fetches its live part every two seconds.
    wait_text(&client, "b.log-head", "17", Duration::from_secs(20)).await;
    let lag = "table.handlers tbody tr:first-child span.lag";
    wait_text(&client, lag, "5", Duration::from_secs(20)).await;
    screenshot(&client, "overview").await;

    // Dead letters: the error, its markup shown as text; no buttons when read-only.
    client.goto(&format!("{ro}/dead-letters")).await.unwrap();
    let list = text(&client, "table.dead-letters").await;
    assert!(list.contains("stock service rejected order 6"), "{list}");
    assert!(client
        .find_all(Locator::Css("button.retry"))
        .await
        .unwrap()
        .is_empty());
    client
        .goto(&format!("{ro}/dead-letters/{first}"))
        .await
        .unwrap();
    let error = text(&client, "pre.full-error").await;
    assert!(error.contains("422 Unprocessable Entity"), "{error}");
    assert!(error.contains(NOTE), "{error}");
    let payload = text(&client, "pre.payload").await;
    assert!(
        payload.contains("\"items\": 0") && payload.contains("<img src=x"),
        "{payload}"
    );
    let injected = client
        .execute(
            "return [window.__xss === undefined, document.querySelectorAll('.injected, main img').length]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        injected,
        json!([true, 0]),
        "markup from the store ran or rendered"
    );
    screenshot(&client, "dead-letter").await;
    // Read-only refuses a retry, even with the token.
    let bearer = format!("Bearer {TOKEN}");
    let status = post_from_page(
        &client,
        &format!("/dead-letters/{first}/retry"),
        "",
        Some(&bearer),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        failures(&app)
            .iter()
            .filter(|f| f["status"] == "dead")
            .count(),
        2
    );

    // The event's chain and the flow diagram.
    let event: Value =
        serde_json::from_str(&app.run(&["log", "--from", "6", "--to", "6", "--json"])).unwrap();
    let id = event["events"][0]["event_id"].as_str().unwrap().to_owned();
    client
        .goto(&format!("{ro}/log?correlation={id}"))
        .await
        .unwrap();
    let chain = text(&client, "ol.chain").await;
    assert!(
        chain.contains("orders.order_placed") && chain.contains("Customer/1"),
        "{chain}"
    );
    client.goto(&format!("{ro}/flow")).await.unwrap();
    let flow = text(&client, "svg.flow").await;
    assert!(flow.contains("orders.order_placed"), "{flow}");
    assert!(flow.contains("orders.update_stock (durable)"), "{flow}");
    screenshot(&client, "flow").await;

    // With actions allowed: no buttons until signed in; sign in; retry through the UI.
    client
        .goto(&format!("{act}/dead-letters/{first}"))
        .await
        .unwrap();
    assert!(client
        .find_all(Locator::Css("button.retry"))
        .await
        .unwrap()
        .is_empty());
    client.goto(&format!("{act}/sign-in")).await.unwrap();
    let field = client
        .find(Locator::Css("input[name=token]"))
        .await
        .unwrap();
    field.send_keys(TOKEN).await.unwrap();
    client
        .find(Locator::Css("form.sign-in button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text(&client, "span.badge").await, "actions enabled");
    client
        .goto(&format!("{act}/dead-letters/{first}"))
        .await
        .unwrap();
    client
        .find(Locator::Css("button.retry"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let notice = text(&client, "p.notice").await;
    assert!(notice.contains("Scheduled for retry"), "{notice}");
    screenshot(&client, "retried").await;
    let now = failures(&app);
    let retried = now.iter().find(|f| f["id"] == first).unwrap();
    assert_eq!(retried["status"], "retrying", "{retried}");
    // A form without this session's anti-forgery token is refused, and changes nothing.
    let status = post_from_page(
        &client,
        &format!("/dead-letters/{second}/retry"),
        "csrf=forged",
        None,
    )
    .await;
    assert_eq!(status, 403);
    let other = failures(&app);
    assert_eq!(
        other.iter().find(|f| f["id"] == second).unwrap()["status"],
        "dead"
    );
    // Drop asks first, then skips the event for good.
    client
        .goto(&format!("{act}/dead-letters/{second}"))
        .await
        .unwrap();
    client
        .find(Locator::Css("button.drop"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let question = client.get_alert_text().await.unwrap();
    assert!(
        question.contains(&format!("Drop dead letter {second}?")),
        "{question}"
    );
    client.accept_alert().await.unwrap();
    let notice = text(&client, "p.notice").await;
    assert!(
        notice.contains(&format!("Dead letter {second} dropped")),
        "{notice}"
    );
    assert!(!failures(&app).iter().any(|f| f["id"] == second));
    client.close().await.unwrap();
}

/// The port of a base URL `http://127.0.0.1:PORT`.
fn port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// No browser needed: the JSON endpoints are the CLI's `--json`; a script acts with the
/// token in a Bearer header (and is refused without it); `--base-path` points every link and
/// form below the proxy's prefix; a short token is refused at start.
#[test]
fn the_json_is_the_clis_and_a_script_acts_with_the_token() {
    let app = App::new("dashboard-json");
    let dead: Vec<i64> = dead_letters_of(&app, &["6", "--empty-every", "3"])
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    assert_eq!(dead.len(), 2, "orders 3 and 6 dead-lettered");
    let (_serve, url) = serve(
        &app,
        &["--allow-actions", "--base-path", "/ops"],
        Some(TOKEN),
    );
    let port = port(&url);
    let get = |path: &str| {
        let (status, body) = http(port, "GET", path, &[]).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str::<Value>(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    };
    let cli = |args: &[&str]| serde_json::from_str::<Value>(&app.run(args)).unwrap();
    assert_eq!(get("/api/dead-letters"), cli(&["dead-letters", "--json"]));
    assert_eq!(
        get("/api/log?from=2&to=4"),
        cli(&["log", "--from", "2", "--to", "4", "--json"])
    );
    assert_eq!(get("/api/timers"), cli(&["timers", "--json"]));
    let status = get("/api/status");
    assert_eq!(status["handlers"][1]["handler"], "orders.update_stock");
    assert_eq!(status["handlers"][1]["dead"], 2);
    let detail = get(&format!("/api/dead-letters/{}", dead[0]));
    assert_eq!(detail["failure"]["id"], dead[0]);
    assert_eq!(detail["event"]["payload"]["items"], 0);
    let flow = get("/api/flow");
    let edge = json!({"from": "e_orders_order_placed", "to": "h_orders_update_stock"});
    assert!(flow["edges"].as_array().unwrap().contains(&edge), "{flow}");
    let (status, body) = http(port, "GET", "/api/dead-letters/999", &[]).unwrap();
    assert_eq!(status, 404, "{body}");

    let (_, page) = http(port, "GET", "/dead-letters", &[]).unwrap();
    assert!(
        page.contains("href=\"/ops/dead-letters/"),
        "links below --base-path: {page}"
    );
    assert!(page.contains("href=\"/ops/sign-in\""), "{page}");

    let bearer = format!("Authorization: Bearer {TOKEN}");
    let retry = format!("/dead-letters/{}/retry", dead[0]);
    let wrong = "Authorization: Bearer wrong-token-of-some-length";
    let (status, body) = http(port, "POST", &retry, &[wrong]).unwrap();
    assert_eq!(status, 403, "{body}");
    let (status, body) = http(port, "POST", &retry, &[]).unwrap();
    assert_eq!(status, 403, "no session, no token: {body}");
    assert!(failures(&app).iter().all(|f| f["status"] == "dead"));
    let (status, body) = http(port, "POST", &retry, &[&bearer]).unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"retried":1}"#));
    let drop = format!("/dead-letters/{}/drop", dead[1]);
    let (status, body) = http(port, "POST", &drop, &[&bearer]).unwrap();
    assert_eq!(
        (status, body),
        (200, format!(r#"{{"dropped":{}}}"#, dead[1]))
    );
    let left = failures(&app);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["status"], "retrying");

    let short = app
        .command(&["serve", "--listen", "127.0.0.1:0", "--allow-actions"])
        .env("EVENTS_DASHBOARD_TOKEN", "short")
        .output()
        .unwrap();
    assert_eq!(short.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(stderr.contains("at least 16 characters"), "{stderr}");
}

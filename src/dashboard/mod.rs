//! mb-dashboard: the customer's usage in a browser, and as JSON, served
//! read-only from the VM itself.
//!
//! This module owns the HTTP side: the bind rule and access token
//! ([`auth`]), request validation ([`request`]), the page ([`html`],
//! [`svg`]) and the routes. It computes no usage figure itself: [`data`]
//! calls the report library behind mb-report, so the page, the API and the
//! CLI show the same numbers (the API's summary JSON *is* `mb-report
//! --json`).
//!
//! Endpoints: the page (a customer's view, or the operator's fleet view
//! without `--customer`), `/api/v1/{summary,series,invoice,customers,vms}`,
//! `/metrics` (Prometheus, [`metrics`]) and `/healthz`.
//!
//! Design:
//! - axum routes on a small tokio runtime (2 workers), served by the accept
//!   loop of [`server`] (header-read timeout, connection cap, request size
//!   limits). Database work is blocking, so each request runs on the
//!   blocking pool (capped at [`DB_CONNECTIONS`] threads, so a burst
//!   queues) with a read-only [`Store`] lent by [`pool`]: kept open between
//!   requests, because a PostgreSQL connect per request (TCP, TLS, a forked
//!   server backend) would cost more than the queries. At most
//!   [`DB_CONNECTIONS`] stores are open, plus the cache's probe; a request
//!   that fails because its connection broke (a server restart) runs once
//!   more on a new one.
//! - Read-only: the store is opened with `SQLITE_OPEN_READ_ONLY` and
//!   `query_only`, so cron jobs keep writing (WAL) and the dashboard never
//!   can.
//! - Scoping: with `--customer`, every handler receives that customer and
//!   nothing else; a request naming another customer gets 403.
//! - Errors: bad input is a 4xx with a one-line message (HTML for the page,
//!   `{"error": ...}` for the API); a database failure is 503 and logged on
//!   stderr. Handlers cannot panic on input, and a panic elsewhere would be
//!   caught by tokio per task, not take the server down.
//! - SIGTERM and SIGINT stop accepting connections, let in-flight requests
//!   finish (at most 10 s), and exit 0.

pub mod auth;
pub mod cache;
pub mod data;
pub mod fleet;
pub mod html;
pub mod metrics;
pub mod pool;
pub mod request;
pub mod server;
pub mod svg;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::middleware::{self, Next};
use axum::routing::get;
use axum::Router;
use chrono_tz::Tz;

use crate::cli;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::{Mode, Store};
use crate::time;
use auth::Token;
use request::Params;

/// How long in-flight requests may run after SIGTERM before the process
/// exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Page cache of each pooled SQLite connection, KiB. The OS page cache
/// holds the database; the cache of computed figures ([`cache`]) spares
/// most requests any read. Small, so that 8 requests computing at once keep
/// the process under 50 MiB.
pub const PAGE_CACHE_KIB: u32 = 4096;

/// Requests computed at once (the blocking threads), and so the most
/// database connections open for them ([`pool`]); the cache's probe is one
/// more.
pub const DB_CONNECTIONS: usize = 8;

/// How often idle connections are looked at, and closed after
/// [`pool::MAX_IDLE`] unused.
const REAP_EVERY: Duration = Duration::from_secs(60);

/// Everything the server needs, resolved from the command line and config.
#[derive(Debug, Clone)]
pub struct Options {
    /// The database (opened read-only, kept open between requests).
    pub db: crate::store::DbSpec,
    /// The configuration (time zone, billing rules).
    pub cfg: Config,
    /// Address to listen on.
    pub host: IpAddr,
    /// Port (0: any free port; the bound address is printed on stderr).
    pub port: u16,
    /// Serve only this customer.
    pub customer: Option<String>,
    /// Require this token on every request but `/healthz`.
    pub token: Option<Token>,
    /// Whether a non-loopback address was explicitly allowed.
    pub allow_remote: bool,
    /// Header-read timeout and connection cap.
    pub limits: server::Limits,
}

struct App {
    /// The open read-only stores lent to requests.
    pool: pool::Pool,
    /// Computed figures, until the next commit.
    cache: cache::Cache,
    cfg: Config,
    tz: Tz,
    customer: Option<String>,
    token: Option<Token>,
}

/// A response with a status and a short message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// HTTP status code.
    pub status: u16,
    /// One line for the client.
    pub msg: String,
}

impl HttpError {
    fn new(status: u16, msg: impl Into<String>) -> HttpError {
        HttpError {
            status,
            msg: msg.into(),
        }
    }

    /// 400.
    pub fn bad_request(msg: impl Into<String>) -> HttpError {
        HttpError::new(400, msg)
    }

    /// 403.
    pub fn forbidden(msg: impl Into<String>) -> HttpError {
        HttpError::new(403, msg)
    }

    /// 404.
    pub fn not_found(msg: impl Into<String>) -> HttpError {
        HttpError::new(404, msg)
    }

    /// 414.
    pub fn uri_too_long(msg: impl Into<String>) -> HttpError {
        HttpError::new(414, msg)
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// As an HTML error page.
    fn html(&self) -> Response<Body> {
        respond(
            self.status_code(),
            "text/html; charset=utf-8",
            html::error_page(self.status, &self.msg),
        )
    }

    /// As `{"error": "..."}`.
    fn json(&self) -> Response<Body> {
        respond(
            self.status_code(),
            "application/json",
            serde_json::json!({ "error": self.msg }).to_string() + "\n",
        )
    }
}

impl From<Error> for HttpError {
    /// Library errors on a request: a bad argument is the client's (400), a
    /// domain rule (an invoice that cannot be computed) is 422, anything
    /// else (database, I/O) is the server's and becomes 503 with the detail
    /// logged on stderr, not sent to the client.
    fn from(e: Error) -> HttpError {
        match e {
            Error::Usage(m) => HttpError::bad_request(m),
            Error::Invalid(m) => HttpError::new(422, m),
            other => {
                cli::warn(format!("request failed: {other}"));
                HttpError::new(503, "the usage database is not available right now")
            }
        }
    }
}

fn respond(status: StatusCode, ctype: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// Run `f` on the blocking pool with a read-only store from the pool. When
/// `f` fails on the server's side (503) and the store then cannot answer
/// a round trip, its connection broke under it (a PostgreSQL restart or
/// failover, a cut network): the store is closed, not returned, and `f`
/// runs once more on a new one. Every request is read-only, so running it
/// twice is safe.
async fn with_store<T, F>(app: &Arc<App>, f: F) -> Result<T, HttpError>
where
    T: Send + 'static,
    F: Fn(&Store, &App) -> Result<T, HttpError> + Send + 'static,
{
    let app = Arc::clone(app);
    tokio::task::spawn_blocking(move || {
        let store = app.pool.get().map_err(HttpError::from)?;
        match f(&store, &app) {
            Err(e) if e.status == 503 && !store.healthy() => {
                cli::warn("the database connection was lost; retrying on a new connection");
                store.discard();
                let store = app.pool.get().map_err(HttpError::from)?;
                f(&store, &app)
            }
            r => r,
        }
    })
    .await
    .unwrap_or_else(|e| {
        cli::warn(format!("request task failed: {e}"));
        Err(HttpError::new(503, "internal error"))
    })
}

/// Serve until SIGTERM or SIGINT. Blocks; builds its own runtime.
pub fn serve(o: Options) -> Result<()> {
    auth::check_bind(o.host, o.allow_remote, o.token.is_some())?;
    // Fail at start, not on the first request, when the database is
    // missing, unreadable or of another schema version.
    Store::open(&o.db, Mode::ReadOnly)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(DB_CONNECTIONS)
        .thread_name("mb-dashboard")
        .enable_all()
        .build()
        .map_err(|e| Error::Stream(std::io::Error::other(format!("starting the runtime: {e}"))))?;
    rt.block_on(run_server(o))
}

async fn run_server(o: Options) -> Result<()> {
    let addr = SocketAddr::new(o.host, o.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        // Not a usage error: the arguments are fine, the port is taken.
        .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr().map_err(Error::Stream)?;
    let app = Arc::new(App {
        cache: cache::Cache::new(o.db.clone()),
        pool: pool::Pool::new(o.db, DB_CONNECTIONS, PAGE_CACHE_KIB),
        tz: o.cfg.timezone,
        cfg: o.cfg,
        customer: o.customer,
        token: o.token,
    });
    let reaper = {
        let app = Arc::clone(&app);
        async move {
            let mut tick = tokio::time::interval(REAP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let app = Arc::clone(&app);
                // Closing a connection writes to its socket: not on a worker.
                let _ = tokio::task::spawn_blocking(move || {
                    app.pool.reap(pool::MAX_IDLE);
                    app.cache.reap(pool::MAX_IDLE);
                })
                .await;
            }
        }
    };
    let reaper = tokio::spawn(reaper);
    let router = router(app);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::Stream)?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(Error::Stream)?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    cli::warn(format!("listening on http://{bound}/"));
    let cap = server::effective_cap(o.limits.max_connections);
    if cap < o.limits.max_connections {
        cli::warn(format!(
            "at most {cap} connections (the open-files limit less {} for the database)",
            server::FD_RESERVE
        ));
    }
    let serving = server::run(listener, router, o.limits, stop_rx.clone());
    let signal = async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        cli::warn("shutting down");
        let _ = stop_tx.send(true);
    };
    let grace = async move {
        let _ = stop_rx.wait_for(|v| *v).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::pin!(serving);
    tokio::select! {
        _ = &mut serving => {}
        _ = signal => {
            tokio::select! {
                _ = &mut serving => {}
                _ = grace => cli::warn(format!(
                    "requests still open {} s after the signal; exiting",
                    SHUTDOWN_GRACE.as_secs()
                )),
            }
        }
    }
    reaper.abort();
    Ok(())
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/api/v1/summary", get(api_summary))
        .route("/api/v1/series", get(api_series))
        .route("/api/v1/invoice", get(api_invoice))
        .route("/api/v1/customers", get(api_customers))
        .route("/api/v1/vms", get(api_vms))
        .route("/metrics", get(metrics_page))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), guard))
        .with_state(app)
}

/// Every request passes here: query size limit, the token, and the
/// security headers of every response.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response<Body> {
    let mut resp = admit(&app, req, next).await;
    let h = resp.headers_mut();
    for (k, v) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // The token may be in a URL once; never pass it on in a Referer.
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    resp
}

async fn admit(app: &App, req: Request, next: Next) -> Response<Body> {
    // GET requests carry no body; refuse one rather than read it.
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if has_body {
        return HttpError::new(413, "request bodies are not accepted").html();
    }
    let query = req.uri().query().map(str::to_string);
    if query
        .as_ref()
        .is_some_and(|q| q.len() > request::MAX_QUERY_BYTES)
    {
        return HttpError::uri_too_long(format!(
            "query string longer than {} bytes",
            request::MAX_QUERY_BYTES
        ))
        .html();
    }
    let Some(token) = &app.token else {
        return next.run(req).await;
    };
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    if let Some(given) = auth::query_token(query.as_deref()) {
        if !token.matches(given) {
            return unauthorized("wrong token");
        }
        // Trade the URL token for a cookie and drop it from the address.
        let path = req.uri().path();
        let last = path.rsplit('/').next().unwrap_or("");
        let mut loc = if last.is_empty() {
            "./".to_string()
        } else {
            last.to_string()
        };
        let rest = auth::strip_token(query.as_deref().unwrap_or(""));
        if !rest.is_empty() {
            loc.push('?');
            loc.push_str(&rest);
        }
        let https = req
            .headers()
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
        let cookie = format!(
            "{}={given}; Path=/; HttpOnly; SameSite=Strict{}",
            auth::COOKIE,
            if https { "; Secure" } else { "" }
        );
        let mut r = respond(
            StatusCode::SEE_OTHER,
            "text/plain; charset=utf-8",
            String::new(),
        );
        if let (Ok(l), Ok(c)) = (HeaderValue::from_str(&loc), HeaderValue::from_str(&cookie)) {
            r.headers_mut().insert(header::LOCATION, l);
            r.headers_mut().insert(header::SET_COOKIE, c);
            return r;
        }
        return HttpError::bad_request("malformed query").html();
    }
    let given = {
        // Scoped: a borrow of the request (whose body is not Sync) must not
        // live across the await below.
        let hv = |n: header::HeaderName| req.headers().get(n).and_then(|v| v.to_str().ok());
        auth::presented(hv(header::AUTHORIZATION), hv(header::COOKIE)).map(str::to_string)
    };
    match given {
        Some(t) if token.matches(&t) => next.run(req).await,
        Some(_) => unauthorized("wrong token"),
        None => unauthorized(
            "authentication required: send Authorization: Bearer TOKEN, \
             or open the page once with ?token=TOKEN",
        ),
    }
}

fn unauthorized(msg: &str) -> Response<Body> {
    let mut r = HttpError::new(401, msg).html();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"mb-dashboard\""),
    );
    r
}

async fn not_found() -> Response<Body> {
    HttpError::not_found("not found").html()
}

async fn healthz(State(app): State<Arc<App>>) -> Response<Body> {
    // A round trip, not only a lent store: a kept connection to a server
    // that went away must not report ok.
    let probe = |s: &Store, _: &App| s.data_version().map(|_| ()).map_err(HttpError::from);
    match with_store(&app, probe).await {
        Ok(()) => respond(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
        Err(e) => respond(
            e.status_code(),
            "text/plain; charset=utf-8",
            format!("{}\n", e.msg),
        ),
    }
}

fn json_ok(v: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_string(v) {
        Ok(s) => respond(StatusCode::OK, "application/json", s + "\n"),
        Err(e) => HttpError::from(Error::Stream(e.into())).json(),
    }
}

/// The registry's view of `id` at `at`: tier, status and since when.
fn who(store: &Store, id: &str, at: chrono::DateTime<chrono::Utc>) -> Result<html::Who, Error> {
    let Some(c) = store.customer(id, at)? else {
        return Ok(html::Who::default());
    };
    let since = store
        .customer_history(id)?
        .into_iter()
        .filter(|h| h.field == "status")
        .filter_map(|h| time::parse_rfc3339(&h.effective))
        .rfind(|t| *t <= at);
    Ok(html::Who {
        registered: true,
        tier: c.tier,
        status: c.status,
        status_since: since,
    })
}

/// Why a month's invoice has no base fee, in words for the customer.
fn no_base_reason(w: &html::Who, month: &crate::report::Period, cfg: &Config) -> String {
    if !w.registered {
        return "not registered, nothing is invoiced".into();
    }
    match (w.status.as_deref(), w.tier.as_deref()) {
        (Some(st), _) if st != "active" => match w.status_since {
            Some(t) => format!(
                "the customer is {st} since {}",
                t.with_timezone(&month.tz).format("%Y-%m-%d")
            ),
            None => format!("the customer is {st}"),
        },
        (_, None) => format!("no tier in effect in {}", month.label),
        (_, Some(t)) if !cfg.plans.contains_key(t) => {
            format!("tier {t} has no price in [plans]")
        }
        _ => format!("no billable day in {}", month.label),
    }
}

async fn page(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response<Body> {
    let r = with_store(&app, move |store, app| {
        let p = Params::parse(q.as_deref())?;
        p.only(&request::with_period(&["customer"]), &[])?;
        let now = time::now();
        let sel = request::selection(&p, now, app.tz, app.customer.as_deref())?;
        let summary =
            data::summary_cached(&app.cache, store, &sel.period, sel.customer.as_deref())?;
        data::check_known(&summary, sel.customer.as_deref(), app.customer.is_some())?;
        let by = request::default_bucket(sel.unit);
        let buckets = sel.period.buckets(by).map_err(HttpError::from)?;
        let mut series = Arc::new(Vec::new());
        let (mut who_, mut invoice, mut fleet_data) = (None, None, None);
        match &sel.customer {
            Some(c) => {
                let metrics: Vec<String> = ["cost_usd", "tokens", "cpu_percent", "memory_percent"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                series =
                    data::series_cached(&app.cache, store, &sel.period, Some(c), by, &metrics)?;
                let one_ns = chrono::Duration::nanoseconds(1);
                who_ = Some(who(store, c, now.min(sel.period.end - one_ns))?);
                // The invoice of the viewed month: the month holding the
                // start of the period on screen.
                let month = crate::report::Period::containing(
                    crate::report::Unit::Month,
                    sel.period.start,
                    app.tz,
                )
                .map_err(HttpError::from)?;
                let state = if now >= month.end {
                    html::InvoiceState::Final
                } else if now < month.start {
                    html::InvoiceState::Future
                } else {
                    html::InvoiceState::Projected
                };
                let pv = data::previews_cached(&app.cache, store, &app.cfg, &month, Some(c), now)
                    .map_err(|e| match e {
                        Error::Usage(m) | Error::Invalid(m) => m,
                        other => {
                            cli::warn(format!("invoice preview: {other}"));
                            "the usage database is not available right now".into()
                        }
                    })
                    .and_then(|mut p| {
                        p.customers
                            .pop()
                            .ok_or_else(|| "no invoice data".to_string())
                    });
                let w_month = who(store, c, now.min(month.end - one_ns))?;
                invoice = Some(html::InvoiceView {
                    no_base_reason: no_base_reason(&w_month, &month, &app.cfg),
                    month,
                    state,
                    preview: pv,
                });
            }
            None => {
                let customers = fleet::customers(store, &app.cfg, &summary, None, now)?;
                // The page shows samples only: skip the pass over the
                // window's api and activity rows.
                let o = crate::report::fleet::Options {
                    events: false,
                    ..crate::report::fleet::Options::at(now)
                };
                let f = data::fleet_cached(&app.cache, store, &o)?;
                fleet_data = Some((customers, f));
            }
        }
        Ok(html::page(&html::PageData {
            sel: &sel,
            scoped: app.customer.is_some(),
            tz: app.tz,
            now,
            summary: &summary,
            series: &series,
            buckets: &buckets,
            bucket_unit: by,
            who: who_,
            invoice,
            fleet: fleet_data.as_ref().map(|(c, f)| (c, f)),
        }))
    })
    .await;
    match r {
        Ok(body) => respond(StatusCode::OK, "text/html; charset=utf-8", body),
        Err(e) => e.html(),
    }
}

async fn api_summary(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response<Body> {
    let r = with_store(&app, move |store, app| {
        let p = Params::parse(q.as_deref())?;
        p.only(&request::with_period(&["customer"]), &[])?;
        let sel = request::selection(&p, time::now(), app.tz, app.customer.as_deref())?;
        let s = data::summary_cached(&app.cache, store, &sel.period, sel.customer.as_deref())?;
        data::check_known(&s, sel.customer.as_deref(), app.customer.is_some())?;
        Ok(crate::cmd::report::summary_json(&s))
    })
    .await;
    match r {
        Ok(v) => json_ok(&v),
        Err(e) => e.json(),
    }
}

async fn api_series(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response<Body> {
    let r = with_store(&app, move |store, app| {
        let p = Params::parse(q.as_deref())?;
        p.only(
            &request::with_period(&["customer", "by", "metric"]),
            &["metric"],
        )?;
        let sel = request::selection(&p, time::now(), app.tz, app.customer.as_deref())?;
        let by = request::series_by(&p, sel.unit)?;
        let metrics = request::metrics(&p)?;
        if sel.customer.is_some() && app.customer.is_none() {
            let s = data::summary_cached(&app.cache, store, &sel.period, sel.customer.as_deref())?;
            data::check_known(&s, sel.customer.as_deref(), false)?;
        }
        Ok(data::series_cached(
            &app.cache,
            store,
            &sel.period,
            sel.customer.as_deref(),
            by,
            &metrics,
        )?)
    })
    .await;
    match r {
        Ok(v) => json_ok(&*v),
        Err(e) => e.json(),
    }
}

async fn api_invoice(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response<Body> {
    let r = with_store(&app, move |store, app| {
        let p = Params::parse(q.as_deref())?;
        p.only(&["month", "customer"], &[])?;
        let now = time::now();
        let month = data::invoice_month(p.get("month"), now, app.tz)?;
        let customer = request::customer(&p, app.customer.as_deref())?;
        if customer.is_some() && app.customer.is_none() {
            let s = data::summary_cached(&app.cache, store, &month, customer.as_deref())?;
            data::check_known(&s, customer.as_deref(), false)?;
        }
        Ok(data::previews_cached(
            &app.cache,
            store,
            &app.cfg,
            &month,
            customer.as_deref(),
            now,
        )?)
    })
    .await;
    match r {
        Ok(v) => json_ok(&v),
        Err(e) => e.json(),
    }
}

/// The fleet freshness options of a request: `since`, `until` (default:
/// the last 31 days to now) and `stale_after`.
fn fleet_options(
    p: &Params,
    now: chrono::DateTime<chrono::Utc>,
    tz: Tz,
    customer: Option<String>,
) -> Result<crate::report::fleet::Options, HttpError> {
    use crate::report::fleet::{parse_duration, Options, LOOKBACK_DAYS};
    let mut o = Options::at(now);
    if let Some(u) = request::point(p, "until", tz)? {
        o.until = u;
        o.bounded = true;
    }
    o.since = match request::point(p, "since", tz)? {
        Some(s) => s,
        None => o.until - chrono::Duration::days(LOOKBACK_DAYS),
    };
    if o.until <= o.since {
        return Err(HttpError::bad_request("until is not after since"));
    }
    if o.until - o.since > chrono::Duration::days(request::MAX_RANGE_DAYS) {
        return Err(HttpError::bad_request(format!(
            "since..until is longer than {} days",
            request::MAX_RANGE_DAYS
        )));
    }
    if let Some(v) = p.get("stale_after") {
        o.stale_after = Some(parse_duration(v).ok_or_else(|| {
            HttpError::bad_request("stale_after: expected seconds, or a number with s, m, h or d")
        })?);
    }
    o.customer = customer;
    Ok(o)
}

async fn api_vms(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response<Body> {
    let r = with_store(&app, move |store, app| {
        let p = Params::parse(q.as_deref())?;
        p.only(&["since", "until", "customer", "stale_after"], &[])?;
        let customer = request::customer(&p, app.customer.as_deref())?;
        let o = fleet_options(&p, time::now(), app.tz, customer)?;
        Ok(crate::report::fleet::fleet(store, &o)?)
    })
    .await;
    match r {
        Ok(v) => json_ok(&v),
        Err(e) => e.json(),
    }
}

async fn api_customers(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response<Body> {
    let r = with_store(&app, move |store, app| {
        let p = Params::parse(q.as_deref())?;
        p.only(&request::with_period(&["customer"]), &[])?;
        let now = time::now();
        let sel = request::selection(&p, now, app.tz, app.customer.as_deref())?;
        let s = data::summary_cached(&app.cache, store, &sel.period, sel.customer.as_deref())?;
        data::check_known(&s, sel.customer.as_deref(), app.customer.is_some())?;
        Ok(fleet::customers(
            store,
            &app.cfg,
            &s,
            sel.customer.as_deref(),
            now,
        )?)
    })
    .await;
    match r {
        Ok(v) => json_ok(&v),
        Err(e) => e.json(),
    }
}

async fn metrics_page(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response<Body> {
    let r = with_store(&app, move |store, app| {
        let p = Params::parse(q.as_deref())?;
        p.only(&[], &[])?;
        let now = time::now();
        let month = data::current_month(now, app.tz).map_err(HttpError::from)?;
        let scope = app.customer.clone();
        let summary = data::summary_cached(&app.cache, store, &month, scope.as_deref())?;
        let (start, end) = (month.start_ns(), month.end_ns());
        let by_vm = app.cache.get(format!("by_vm\0{month:?}\0{scope:?}"), || {
            store.last_events(
                crate::store::fleet::EventTable::Api,
                start,
                end,
                scope.as_deref(),
            )
        })?;
        let o = crate::report::fleet::Options {
            customer: scope.clone(),
            events: false,
            ..crate::report::fleet::Options::at(now)
        };
        let fleet = data::fleet_cached(&app.cache, store, &o)?;
        type Runs = (
            Option<std::collections::BTreeMap<String, crate::store::fleet::RunTotals>>,
            Vec<(String, f64)>,
        );
        let runs = app
            .cache
            .get("runs".to_string(), || -> Result<Runs, Error> {
                if scope.is_some() {
                    return Ok((None, Vec::new()));
                }
                let last = store
                    .last_finished_runs()?
                    .into_iter()
                    .filter_map(|(st, t)| {
                        time::parse_rfc3339(&t).map(|t| {
                            (
                                st,
                                t.timestamp() as f64 + f64::from(t.timestamp_subsec_micros()) / 1e6,
                            )
                        })
                    })
                    .collect();
                Ok((Some(store.run_totals()?), last))
            })?;
        let (runs, last_run) = (&runs.0, &runs.1);
        Ok(metrics::render(&metrics::Input {
            month: &month,
            summary: &summary,
            included_tokens: app.cfg.billing.included_tokens,
            by_vm: &by_vm,
            fleet: &fleet,
            runs: runs.as_ref(),
            last_run,
        }))
    })
    .await;
    match r {
        Ok(body) => respond(StatusCode::OK, metrics::CONTENT_TYPE, body),
        Err(e) => respond(
            e.status_code(),
            "text/plain; charset=utf-8",
            format!("{}\n", e.msg),
        ),
    }
}

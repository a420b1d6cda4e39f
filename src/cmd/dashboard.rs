//! mb-dashboard: the usage dashboard and JSON API over the store,
//! read-only, on 127.0.0.1 by default.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::cli::{DbArgs, Outcome};
use crate::dashboard::{self, auth::Token};
use crate::error::{Error, Result};
use crate::events::{is_ident, IDENT_RULE};

/// Serve the usage dashboard and its JSON API.
#[derive(Debug, Parser)]
#[command(
    name = "mb-dashboard",
    version,
    about = "Serve the usage dashboard and its JSON API, read-only, on 127.0.0.1",
    long_about = "Serve the usage dashboard and its JSON API, read-only, on 127.0.0.1.\n\n\
The page shows, for a day, ISO week or month (selector and previous/next links): API cost and \
tokens by provider and model, cost per day (per hour for a day), CPU and memory over time, disk \
and network totals, activity by type, the customer's tier and status, and the invoice of the \
viewed month (final for a past month; for the current one the overage so far, projected linearly \
to the month end). Dates are local to the configured zone. Without --customer the page is the \
operator's fleet view: per customer tier, status, cost, tokens against the allowance and \
resources with a total row, and per VM its last sample, stale VMs (no sample for more than two \
intervals) marked. It reloads every minute. Charts are drawn by the server; the page loads \
nothing from the network and runs no script.\n\n\
JSON API (the same library as mb-report, so the figures agree; GET only):\n  \
/api/v1/summary?period=day|week|month&date=YYYY-MM-DD&customer=ID  (or month=YYYY-MM|current|last): \
exactly `mb-report --json` for that period and customer;\n  \
/api/v1/series?...&by=hour|day|week|month&metric=NAME (repeatable): `mb-report series --json`;\n  \
/api/v1/invoice?month=YYYY-MM|current|last&customer=ID: the invoice preview;\n  \
/api/v1/customers?(period as for summary): the fleet view's customer rows and total;\n  \
/api/v1/vms?since=T&until=T&stale_after=15m: `mb-report vms --json`;\n  \
/metrics: Prometheus text format (month-to-date gauges, sample ages, ingest counts);\n  \
/healthz: `ok` when the database answers a query (no token needed).\n\
Every period parameter set also accepts since=T&until=T as in mb-report. Bad requests get 4xx \
with a one-line message ({\"error\": ...} from the API); a database failure is 503. A request \
header must arrive within --header-timeout (also the keep-alive idle timeout); at most \
--max-connections are open (fewer when the open-files limit is low); heads over 16 KiB get 431 \
and request bodies 413.\n\n\
Security: the database is opened read-only. Binding an address that is not loopback needs \
--allow-remote and an access token (--token-file, or the MB_DASHBOARD_TOKEN environment \
variable; at least 16 characters); otherwise the tool refuses to start (exit 2). With a token, \
every request but /healthz must send `Authorization: Bearer TOKEN`, or open the page once with \
`?token=TOKEN`, which sets an HttpOnly cookie and redirects to the URL without it. For public \
access put it behind a reverse proxy with TLS (see the README for a Traefik example). With \
--customer only that customer's data is served; a request for another gets 403.\n\n\
The bound address is printed on stderr (`mb-dashboard: listening on http://127.0.0.1:8080/`). \
SIGTERM or SIGINT stops accepting connections, lets running requests finish (10 s at most) and \
exits 0.",
    after_long_help = EXAMPLES
)]
pub struct Args {
    #[command(flatten)]
    pub db: DbArgs,

    /// Address to listen on (an IP address; `localhost` means 127.0.0.1)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on (0: any free port, printed on stderr)
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Serve only this customer, whatever a request asks for
    #[arg(long, value_name = "ID")]
    pub customer: Option<String>,

    /// Allow a non-loopback --host (needs an access token too)
    #[arg(long)]
    pub allow_remote: bool,

    /// File holding the access token, refused unless only its owner can read it (chmod 600) [default: $MB_DASHBOARD_TOKEN]
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Seconds a client has to send a whole request header; also the idle timeout of a kept-alive connection
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,

    /// Most connections open at once (lowered to fit the open-files limit); at the cap the oldest idle or half-open one makes room
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub max_connections: u64,
}

const EXAMPLES: &str = "\
EXAMPLES:
    # One customer's dashboard on http://127.0.0.1:8080/
    mb-dashboard --customer acme

    # The JSON summary of the current ISO week, as mb-report --json prints it
    curl -s 'http://127.0.0.1:8080/api/v1/summary?period=week&customer=acme' \\
        | jq .customers

    # Behind a reverse proxy on another host, with a token
    openssl rand -hex 32 > /etc/mb/dashboard.token
    chmod 600 /etc/mb/dashboard.token
    mb-dashboard --host 0.0.0.0 --allow-remote \\
        --token-file /etc/mb/dashboard.token
    curl -H \"Authorization: Bearer $(cat /etc/mb/dashboard.token)\" \\
        http://vm1:8080/api/v1/invoice

    # Health probe
    curl -fsS http://127.0.0.1:8080/healthz";

/// Parse `--host`: an IP address, or `localhost`.
fn parse_host(s: &str) -> Result<IpAddr> {
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| {
            Error::Usage(format!(
                "--host {s:?}: expected an IP address such as 127.0.0.1, ::1 or 0.0.0.0"
            ))
        })
}

/// Run mb-dashboard: validate everything, then serve until a signal.
pub fn run(args: Args, _out: &mut dyn Write) -> Result<Outcome> {
    let host = parse_host(&args.host)?;
    if let Some(c) = &args.customer {
        if !is_ident(c) {
            return Err(Error::Usage(format!("--customer {c:?} {IDENT_RULE}")));
        }
    }
    let env = std::env::var("MB_DASHBOARD_TOKEN").ok();
    let token = Token::load(args.token_file.as_deref(), env.as_deref())?;
    // Check the bind rule before touching config or database, so the
    // refusal is the first and only message.
    dashboard::auth::check_bind(host, args.allow_remote, token.is_some())?;
    let (cfg, db) = args.db.resolve()?;
    dashboard::serve(dashboard::Options {
        db,
        cfg,
        host,
        port: args.port,
        customer: args.customer,
        token,
        allow_remote: args.allow_remote,
        limits: dashboard::server::Limits {
            header_timeout: std::time::Duration::from_secs(args.header_timeout),
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        },
    })?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn args_are_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn hosts() {
        assert_eq!(parse_host("localhost").unwrap().to_string(), "127.0.0.1");
        assert_eq!(parse_host("[::1]").unwrap().to_string(), "::1");
        assert!(parse_host("example.com").is_err());
    }
}

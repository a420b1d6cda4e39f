#!/usr/bin/env python3
"""stripe-upload: send mb-report's invoice lines or meter events to Stripe, exactly once.

Usage:
    mb-report invoice --month last --as-of T --csv | stripe-upload [OPTIONS] [FILE]
    mb-report stripe-meter --month last --as-of T --event-name NAME | stripe-upload [OPTIONS]

The input's CSV header decides what is sent:
- `mb-report invoice --csv`: one invoice item per line (POST /v1/invoiceitems:
  customer, amount in the currency's minor unit, currency, description,
  period[start], period[end], metadata[mb_*]); with --invoice include an
  invoice per customer afterwards (POST /v1/invoices with
  pending_invoice_items_behavior=include, then finalize with --finalize or
  leave it to Stripe's auto_advance); with --draft-invoice CUS=in_... the
  customer's items are attached to that draft invoice instead.
- `mb-report stripe-meter`: one meter event per line
  (POST /v1/billing/meter_events).

Exactly once, unattended (see docs/operations.md, "Stripe"):
- A ledger (SQLite, --ledger) keyed by Stripe mode (from the key's prefix,
  checked against every response's livemode), Stripe account (GET
  /v1/account) and the line's key stores the amount, a hash of the request
  and, before every request, the intent; after it, the outcome. A line
  already sent with the same request is skipped ("already sent"); a line
  whose amount or request changed is refused with the old and new amounts,
  or corrected with --correct: a pending invoice item is deleted and
  re-created, an invoiced one gets an adjustment item for the difference
  with its own key; a meter event sent less than 24 hours ago is cancelled
  (POST /v1/billing/meter_event_adjustments) and re-sent with a new
  identifier, an older one gets an event for the increase.
- An intent without an outcome (a crash, a kill, a lost answer, a saved
  Stripe error) is reconciled before anything is created: the customer's
  invoice items (GET /v1/invoiceitems?customer=...&pending=true, then
  pending=false, following has_more) are searched for
  metadata[mb_idempotency_key]; found, it is recorded; not found, the line is
  sent again with a new Idempotency-Key (Stripe replays a saved result for
  24 hours, so the old key cannot be used to retry).
- Retries: network errors, 409, 429 and 5xx with exponential backoff and full
  jitter, honouring Retry-After and Stripe-Should-Retry, within --retry-window
  seconds per request. A replayed error (Idempotent-Replayed: true) or
  Stripe-Should-Retry: false is not retried: the line is recorded as needing
  reconciliation and the run carries on with the other lines.

Output: stdout has one `KEY<TAB>STRIPE_ID<TAB>WHAT` line per request that
changed something in Stripe. The last line on stderr is the summary: it
starts with `stripe-upload: done:` when nothing needs a person, and with
`stripe-upload: NEEDS ATTENTION:` followed by the keys otherwise.

Exit status: 0 every line is in Stripe exactly once (sent now or before);
1 the run finished but some lines need a person: refused by the checks or by
Stripe, changed since they were sent (run with --correct), or with an
unknown outcome (run again: it reconciles); 2 usage error, unreadable input
or ledger, no key, key refused, a mode or account mismatch: nothing more was
sent, the ledger is consistent, fix and run again.

The secret key comes from STRIPE_API_KEY or a key file (--key-file,
STRIPE_API_KEY_FILE), never from the command line, and is never printed. A
key file that group or others can read is refused (exit 2) with the chmod
to run.
Python 3.8+ standard library only.
"""

import argparse
import csv
import fcntl
import hashlib
import io
import ipaddress
import json
import os
import random
import re
import shlex
import socket
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

PROG = "stripe-upload"
# Stripe-Version sent with every request, so an account-level API upgrade
# never changes what the script gets back (https://docs.stripe.com/api/versioning).
STRIPE_VERSION = "2026-01-28.clover"
INVOICE_COLUMNS = [
    "customer_id", "stripe_customer_id", "period_start", "period_end", "line",
    "description", "quantity", "unit", "currency", "amount_minor",
    "amount_unrounded", "tokens", "cost_usd", "markup", "fx_rate",
    "idempotency_key",
]
METER_COLUMNS = ["identifier", "timestamp", "event_name",
                 "payload_stripe_customer_id", "payload_value"]
# Audit fields copied into the item's metadata (Stripe: at most 50 keys of
# 40 characters, values of 500: https://docs.stripe.com/metadata).
METADATA = [
    "customer_id", "line", "quantity", "unit", "amount_unrounded", "tokens",
    "cost_usd", "markup", "fx_rate", "fx_source", "fx_date", "idempotency_key",
]
# Decimals of the minor unit (https://docs.stripe.com/currencies); the same
# table as mb's src/money.rs. Others are refused.
ZERO_DECIMAL = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG",
                "RWF", "VND", "VUV", "XAF", "XOF", "XPF"}
REFUSED_CURRENCIES = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND", "HUF", "ISK", "TWD", "UGX"}
DAY = 86400
SCHEMA = """
CREATE TABLE IF NOT EXISTS lines (
    mode TEXT NOT NULL,            -- 'test' or 'live', from the key, checked against livemode
    account TEXT NOT NULL,         -- acct_... of the key
    kind TEXT NOT NULL,            -- 'invoiceitem', 'meter_event' or 'invoice'
    key TEXT NOT NULL,             -- the line's idempotency_key / identifier
    customer TEXT NOT NULL,
    amount INTEGER NOT NULL,       -- minor units (meter: the value) the line asks for
    billed INTEGER NOT NULL,       -- what Stripe holds for it now (sum of items or events)
    request_hash TEXT NOT NULL,    -- sha256 of the request for `amount`
    stripe_id TEXT,                -- the current item / invoice / event identifier
    version INTEGER NOT NULL,      -- bumped by every correction
    state TEXT NOT NULL,           -- 'sent', 'unknown' or 'refused'
    sent_at INTEGER,               -- Unix seconds the current object was created
    note TEXT,
    PRIMARY KEY (mode, account, kind, key)
);
CREATE TABLE IF NOT EXISTS requests (   -- the journal: intent before every request
    id INTEGER PRIMARY KEY,
    mode TEXT NOT NULL, account TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
    purpose TEXT NOT NULL,         -- create, delete, adjust, cancel, invoice, finalize
    http_key TEXT NOT NULL,        -- Idempotency-Key sent
    method TEXT NOT NULL, path TEXT NOT NULL,
    amount INTEGER, request_hash TEXT NOT NULL,
    intent_at INTEGER NOT NULL,
    outcome TEXT,                  -- NULL (no answer yet), ok, unknown, refused
    http_status INTEGER, stripe_id TEXT, error TEXT, done_at INTEGER
);
"""


class Fatal(Exception):
    """Exit 2 with this message."""


def warn(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def now():
    """Unix seconds; MB_NOW (RFC 3339) pins it for tests, like the mb tools."""
    v = os.environ.get("MB_NOW")
    if v:
        t = unix_seconds(v)
        if t is not None:
            return t
    return int(time.time())


def default_ledger():
    if os.geteuid() == 0:
        base = "/var/lib/mb"
    else:
        base = os.path.join(
            os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local/state"),
            "mb")
    return os.path.join(base, "stripe-ledger.sqlite")


def unix_seconds(text):
    """RFC 3339 (with Z or an offset) to Unix seconds; None if invalid."""
    t = text.strip()
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", t):
        return None
    t = t[:-1] + "+00:00" if t.endswith("Z") else t
    t = re.sub(r"\.\d+", "", t)
    try:
        return int(datetime.fromisoformat(t).astimezone(timezone.utc).timestamp())
    except ValueError:
        return None


def day_of(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def request_hash(form):
    return hashlib.sha256(json.dumps(sorted(form)).encode()).hexdigest()


def decimals(cur):
    c = cur.upper()
    if c in REFUSED_CURRENCIES or not re.fullmatch(r"[A-Z]{3}", c):
        return None
    return 0 if c in ZERO_DECIMAL else 2


def money(minor, cur):
    d = decimals(cur)
    if not d:
        return f"{minor} {cur.upper()}"
    s = "-" if minor < 0 else ""
    a = abs(minor)
    return f"{s}{a // 10 ** d}.{a % 10 ** d:0{d}d} {cur.upper()}"


class Line:
    """One input line ready to send."""

    def __init__(self, n, kind, key, customer, amount, currency, form, row):
        self.n, self.kind, self.key, self.customer = n, kind, key, customer
        self.amount, self.currency, self.form, self.row = amount, currency, form, row
        self.hash = request_hash(form)


def check_invoice_row(row, currency, drafts):
    """An invoice item Line's fields, or a reason to refuse it."""
    cus = row["stripe_customer_id"].strip()
    if not cus:
        return None, (f"customer {row['customer_id']!r} has no stripe_customer_id "
                      f"(mb-customer set {row['customer_id']} --stripe-customer cus_...)")
    if not re.fullmatch(r"cus_[A-Za-z0-9]{1,251}", cus):
        return None, f"stripe_customer_id {cus!r} is not a Stripe customer id (cus_...)"
    amount = row["amount_minor"].strip()
    if not re.fullmatch(r"-?[0-9]{1,15}", amount):
        return None, f"amount_minor {amount!r} is not an integer of minor units"
    cur = row["currency"].strip()
    if cur.upper() != currency.upper():
        return None, f"currency {cur!r} is not the configured {currency.upper()} (--currency)"
    key = row["idempotency_key"].strip()
    if not key or len(key) > 200:
        return None, "no idempotency_key (or longer than 200 characters)"
    start, end = unix_seconds(row["period_start"]), unix_seconds(row["period_end"])
    if start is None or end is None or end <= start:
        return None, f"bad period {row['period_start']!r} .. {row['period_end']!r}"
    form = [
        ("customer", cus),
        ("amount", str(int(amount))),
        ("currency", cur.lower()),
        ("description", row["description"][:500]),
        # Stripe's period end is inclusive; mb's is exclusive.
        ("period[start]", str(start)),
        ("period[end]", str(end - 1)),
    ]
    if cus in drafts:
        form.append(("invoice", drafts[cus]))
    for f in METADATA:
        v = (row.get(f) or "").strip()
        if v:
            form.append((f"metadata[mb_{f}]", v[:500]))
    return Line(0, "invoiceitem", key, cus, int(amount), cur.lower(), form, row), None


def check_meter_row(row, t_now):
    ident = row["identifier"].strip()
    if not ident or len(ident) > 95:
        return None, f"identifier {ident!r} is empty or longer than 95 characters (Stripe: 100, minus room for corrections)"
    name = row["event_name"].strip()
    if not name or len(name) > 100:
        return None, "event_name is empty or longer than 100 characters"
    cus = row["payload_stripe_customer_id"].strip()
    if not re.fullmatch(r"cus_[A-Za-z0-9]{1,251}", cus):
        return None, f"payload_stripe_customer_id {cus!r} is not a Stripe customer id (cus_...)"
    ts, val = row["timestamp"].strip(), row["payload_value"].strip()
    if not re.fullmatch(r"[0-9]{1,12}", ts):
        return None, f"timestamp {ts!r} is not Unix seconds"
    if not re.fullmatch(r"[0-9]{1,15}", val):
        return None, f"payload_value {val!r} is not a non-negative integer"
    t = int(ts)
    # https://docs.stripe.com/api/billing/meter-event/create: "within the
    # past 35 calendar days or up to 5 minutes in the future".
    if t > t_now + 300:
        return None, f"the event of {day_of(t)} is dated in the future ({ts}); Stripe accepts at most 5 minutes ahead"
    if t < t_now - 35 * DAY + 600:
        return None, (f"the event of {day_of(t)} is older than Stripe's 35-day window for meter "
                      "events; bill it as an invoice item instead")
    form = [("event_name", name), ("identifier", ident), ("timestamp", ts),
            ("payload[stripe_customer_id]", cus), ("payload[value]", val)]
    return Line(0, "meter_event", ident, cus, int(val), "", form, row), None


class Http:
    """Stripe requests with bounded retries; never raises for HTTP errors."""

    def __init__(self, base, key, version, timeout, window):
        self.base, self.key, self.version = base.rstrip("/"), key, version
        self.timeout, self.window = timeout, window

    def once(self, method, path, form=None, idem=None, query=None):
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        h = {"Authorization": f"Bearer {self.key}", "Stripe-Version": self.version,
             "User-Agent": "mb-stripe-upload/2"}
        if data is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        if idem:
            h["Idempotency-Key"] = idem
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, dict(r.headers), parse(r.read())
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), parse(e.read())
        except (urllib.error.URLError, OSError, socket.timeout) as e:
            return None, {}, {"error": {"message": str(getattr(e, "reason", e))}}

    def call(self, method, path, form=None, idem=None, query=None):
        """(status, headers, body, retryable_exhausted). Retries what can help."""
        deadline = time.monotonic() + self.window
        attempt = 0
        while True:
            status, headers, body = self.once(method, path, form, idem, query)
            hdr = {k.lower(): v for k, v in headers.items()}
            should = hdr.get("stripe-should-retry")
            if hdr.get("idempotent-replayed") == "true" or should == "false":
                return status, hdr, body
            retry = status is None or status in (409, 429) or status >= 500 or should == "true"
            if not retry or (status is not None and 200 <= status < 300):
                return status, hdr, body
            attempt += 1
            # Full jitter (AWS architecture blog, "Exponential Backoff And
            # Jitter"), at least Retry-After when Stripe gives one.
            delay = random.uniform(0, min(8.0, 0.5 * 2 ** attempt))
            ra = hdr.get("retry-after")
            if ra and re.fullmatch(r"\d+(\.\d+)?", ra):
                delay = max(delay, float(ra))
            if time.monotonic() + delay > deadline:
                return status, hdr, body
            why = f"HTTP {status}" if status else body["error"]["message"]
            warn(f"{idem or path}: {why}; retrying in {delay:.1f} s" + (" with the same idempotency key" if idem else ""))
            time.sleep(delay)


def parse(raw):
    try:
        return json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        return {"error": {"message": raw.decode("utf-8", "replace").strip()[:200]}}


def stripe_error(body):
    e = body.get("error") if isinstance(body, dict) else None
    if isinstance(e, dict):
        return e.get("message") or e.get("type") or json.dumps(e)
    return json.dumps(body)[:200]


class Ledger:
    def __init__(self, path, mode, account):
        self.mode, self.account = mode, account
        d = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
            lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise Fatal(f"cannot open the ledger {path}: {e.strerror}; fix its directory or pass --ledger FILE")
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise Fatal(f"another stripe-upload holds the ledger {path}; wait for it to finish")
        self.lock_fd = lock_fd
        old = os.umask(0o077)
        try:
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise Fatal(f"cannot use the ledger {path}: {e}")
        finally:
            os.umask(old)
        os.chmod(path, 0o600)

    def tx(self):
        return _Tx(self.db)

    def line(self, kind, key):
        r = self.db.execute(
            "SELECT customer, amount, billed, request_hash, stripe_id, version, state, sent_at, note "
            "FROM lines WHERE mode=? AND account=? AND kind=? AND key=?",
            (self.mode, self.account, kind, key)).fetchone()
        if not r:
            return None
        return dict(zip(["customer", "amount", "billed", "request_hash", "stripe_id", "version",
                         "state", "sent_at", "note"], r))

    def open_intents(self, kind, key):
        return self.db.execute(
            "SELECT id, purpose, http_key, request_hash, amount FROM requests WHERE mode=? AND account=? "
            "AND kind=? AND key=? AND (outcome IS NULL OR outcome='unknown') ORDER BY id",
            (self.mode, self.account, kind, key)).fetchall()

    def attempts(self, kind, key):
        return self.db.execute(
            "SELECT COUNT(*) FROM requests WHERE mode=? AND account=? AND kind=? AND key=?",
            (self.mode, self.account, kind, key)).fetchone()[0]

    def intent(self, kind, key, purpose, http_key, method, path, amount, rhash):
        with self.tx():
            cur = self.db.execute(
                "INSERT INTO requests (mode, account, kind, key, purpose, http_key, method, path, amount, "
                "request_hash, intent_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (self.mode, self.account, kind, key, purpose, http_key, method, path, amount, rhash, now()))
            return cur.lastrowid

    def outcome(self, rid, outcome, status, stripe_id=None, error=None, line=None):
        """Record a request's outcome and, in the same transaction, the line."""
        with self.tx():
            self.db.execute("UPDATE requests SET outcome=?, http_status=?, stripe_id=?, error=?, done_at=? "
                            "WHERE id=?", (outcome, status, stripe_id, error, now(), rid))
            if line:
                self.put(**line)

    def close_intents(self, kind, key, outcome, note):
        self.db.execute("UPDATE requests SET outcome=?, error=coalesce(error || '; ', '') || ?, done_at=? "
                        "WHERE mode=? AND account=? AND kind=? AND key=? AND (outcome IS NULL OR outcome='unknown')",
                        (outcome, note, now(), self.mode, self.account, kind, key))

    def put(self, kind, key, customer, amount, billed, request_hash, stripe_id, version, state,
            sent_at=None, note=None):
        self.db.execute(
            "INSERT INTO lines (mode, account, kind, key, customer, amount, billed, request_hash, stripe_id, "
            "version, state, sent_at, note) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (mode, account, kind, key) DO UPDATE SET customer=excluded.customer, "
            "amount=excluded.amount, billed=excluded.billed, request_hash=excluded.request_hash, "
            "stripe_id=excluded.stripe_id, version=excluded.version, state=excluded.state, "
            "sent_at=coalesce(excluded.sent_at, lines.sent_at), note=excluded.note",
            (self.mode, self.account, kind, key, customer, amount, billed, request_hash, stripe_id, version,
             state, sent_at, note))


class _Tx:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, et, ev, tb):
        self.db.execute("COMMIT" if et is None else "ROLLBACK")
        return False


def read_key(args):
    key = os.environ.get("STRIPE_API_KEY", "").strip()
    path = args.key_file or os.environ.get("STRIPE_API_KEY_FILE")
    if not key and path:
        try:
            st = os.stat(path)
            if st.st_mode & 0o077:
                # Refused, as ssh refuses a private key others can read
                # (docs/security.md): the key may already have leaked.
                what = "--key-file" if args.key_file else "STRIPE_API_KEY_FILE"
                raise Fatal(f"{what} {path}: permissions {st.st_mode & 0o777:04o} are too "
                            f"open (group or others can read it); run: chmod 600 {shlex.quote(path)}")
            with open(path, encoding="utf-8") as f:
                key = f.read().strip()
        except OSError as e:
            raise Fatal(f"cannot read the key file {path}: {e.strerror}")
    if not key:
        raise Fatal("no Stripe key: set STRIPE_API_KEY or pass --key-file FILE "
                    "(a file of mode 0600 holding sk_live_... or rk_live_...)")
    if any(c.isspace() for c in key):
        raise Fatal("the Stripe key contains white space; check the key file")
    m = re.match(r"(sk|rk)_(test|live)_", key)
    if not m:
        raise Fatal("the Stripe key does not start with sk_live_, rk_live_, sk_test_ or rk_test_")
    return key, m.group(2)


def check_base(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https" and u.hostname:
        return
    if u.scheme == "http" and u.hostname:
        host = u.hostname
        try:
            loop = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loop = False
        if loop:
            return
        raise Fatal(f"--api-base {url!r}: plain http would send the secret key in clear; "
                    "only https, or http to a loopback address (a local test server), is allowed")
    raise Fatal(f"--api-base {url!r} is not an https URL")


class Run:
    """One upload: the lines, the ledger and the counts."""

    def __init__(self, args, http, ledger, mode, name):
        self.args, self.http, self.ledger, self.mode, self.name = args, http, ledger, mode, name
        self.out = sys.stdout
        self.sent = self.skipped = self.corrected = 0
        self.attention = []  # (key, why)
        self.unreachable_streak = 0

    def need(self, line, why):
        warn(f"{self.name}:{line.n}: {line.key}: {why}")
        self.attention.append(line.key)

    def emit(self, key, sid, what):
        self.out.write(f"{key}\t{sid}\t{what}\n")
        self.out.flush()

    def check_livemode(self, body):
        lm = body.get("livemode") if isinstance(body, dict) else None
        if lm is not None and lm != (self.mode == "live"):
            raise Fatal(f"Stripe answered livemode={str(lm).lower()} to a {self.mode}-mode key; "
                        "the key or --api-base is not what it seems; nothing more is sent")

    def request(self, line, purpose, http_key, method, path, form, amount, rhash, on_ok, sid=None):
        """Intent, request, outcome. on_ok(body) returns the line record to
        store; sid is the Stripe id to journal when the answer has none."""
        rid = self.ledger.intent(line.kind, line.key, purpose, http_key, method, path, amount, rhash)
        status, hdr, body = self.http.call(method, path, form, http_key if method == "POST" else None)
        if status is not None and 200 <= status < 300:
            self.check_livemode(body)
            self.unreachable_streak = 0
            rec = on_ok(body)
            self.ledger.outcome(rid, "ok", status, sid or body.get("id") or body.get("identifier"), line=rec)
            return True, body
        if status in (401, 403):
            self.ledger.outcome(rid, "refused", status, error=stripe_error(body))
            raise Fatal(f"Stripe refused the key (HTTP {status}: {stripe_error(body)}); check STRIPE_API_KEY")
        replayed = hdr.get("idempotent-replayed") == "true"
        err = stripe_error(body)
        etype = body.get("error", {}).get("type") if isinstance(body, dict) else None
        if status is not None and 400 <= status < 500 and status not in (409, 429) and etype != "idempotency_error":
            # Stripe refused the request itself (validation or a state it
            # cannot be in): nothing was created.
            self.ledger.outcome(rid, "refused", status, error=err)
            return False, f"Stripe answered HTTP {status}{' (replayed)' if replayed else ''}: {err}"
        # 5xx, a replayed 5xx, an idempotency conflict or no answer: Stripe
        # may or may not have done it.
        if status is None:
            self.unreachable_streak += 1
        self.ledger.outcome(rid, "unknown", status, error=err)
        what = f"HTTP {status}" if status else "no answer"
        if replayed:
            what += ", replayed by Stripe for this key (Idempotent-Replayed: true)"
        return None, f"outcome unknown ({what}: {err})"

    # ---------------------------------------------------------------- reconcile
    def find_item(self, line, hashes):
        """The customer's invoice item made by one of the requests `hashes`
        of this line (metadata mb_idempotency_key and mb_request_hash)."""
        for pending in ("true", "false"):
            after = None
            while True:
                q = [("customer", line.customer), ("pending", pending), ("limit", "100")]
                if after:
                    q.append(("starting_after", after))
                status, _, body = self.http.call("GET", "/v1/invoiceitems", query=q)
                if status != 200:
                    return "error", f"listing {line.customer}'s invoice items failed (HTTP {status}: {stripe_error(body)})"
                for it in body.get("data", []):
                    self.check_livemode(it)
                    md = it.get("metadata") or {}
                    if md.get("mb_idempotency_key") == line.key and md.get("mb_request_hash") in hashes:
                        return "found", it
                if not body.get("has_more") or not body.get("data"):
                    break
                after = body["data"][-1]["id"]
        return "absent", None

    # ---------------------------------------------------------------- invoice items
    def item_form(self, line, version, extra=None):
        form = list(line.form) if extra is None else extra
        form = form + [("metadata[mb_request_hash]", line.hash), ("metadata[mb_version]", str(version))]
        return form

    def send_item(self, line, version, http_key, purpose="create"):
        form = self.item_form(line, version)

        def ok(body):
            return dict(kind=line.kind, key=line.key, customer=line.customer, amount=line.amount,
                        billed=line.amount if purpose == "create" else line.amount,
                        request_hash=line.hash, stripe_id=body.get("id"), version=version,
                        state="sent", sent_at=now())
        done, res = self.request(line, purpose, http_key, "POST", "/v1/invoiceitems", form, line.amount,
                                 line.hash, ok)
        return done, res

    def invoice_item(self, line):
        led = self.ledger.line(line.kind, line.key)
        intents = self.ledger.open_intents(line.kind, line.key)
        creates = [i for i in intents if i[1] in ("create", "adjust")]
        if creates:
            # A create (or an adjustment) without a known outcome (a crash, a
            # kill, a lost or saved error answer): look in Stripe before
            # creating again.
            st, found = self.find_item(line, {i[3] for i in creates})
            if st == "error":
                return self.need(line, f"needs reconciliation: {found}; run again")
            if st == "found":
                md = found.get("metadata") or {}
                with self.ledger.tx():
                    self.ledger.close_intents(line.kind, line.key, "ok", f"reconciled: found {found['id']}")
                    if md.get("mb_adjusts") and led:
                        # An adjustment item: the original stays the line's item.
                        billed = led["billed"] + found["amount"]
                        self.ledger.put(line.kind, line.key, line.customer, billed, billed, md["mb_request_hash"],
                                        led["stripe_id"], int(md.get("mb_version") or 1), "sent",
                                        note=f"adjusted by {found['id']} (reconciled)")
                    else:
                        self.ledger.put(line.kind, line.key, line.customer, found["amount"], found["amount"],
                                        md["mb_request_hash"], found["id"], int(md.get("mb_version") or 1),
                                        "sent", sent_at=found.get("date"), note="reconciled")
                warn(f"{self.name}:{line.n}: {line.key}: reconciled: Stripe has it as {found['id']}")
                self.emit(line.key, found["id"], "reconciled")
                led = self.ledger.line(line.kind, line.key)
            else:
                with self.ledger.tx():
                    self.ledger.close_intents(line.kind, line.key, "absent",
                                              "reconciled: not in Stripe's invoice items")
        if led and led["state"] == "sent":
            if led["request_hash"] == line.hash:
                self.skipped += 1
                return
            return self.correct_item(line, led)
        attempt = self.ledger.attempts(line.kind, line.key)
        version = led["version"] if led else 1
        # The first request uses the line's key; a re-send after a
        # reconciliation that found nothing needs a fresh one, because Stripe
        # replays the saved result of the old key for 24 hours.
        http_key = line.key if attempt == 0 else f"{line.key}.a{attempt + 1}"
        if version > 1:
            http_key = f"{line.key}.v{version}" + (f".a{attempt + 1}" if attempt else "")
        done, res = self.send_item(line, version, http_key)
        if done:
            self.sent += 1
            self.emit(line.key, res.get("id"), "created")
        elif done is False:
            with self.ledger.tx():
                self.ledger.put(line.kind, line.key, line.customer, line.amount, 0, line.hash, None, version,
                                "refused", note=res)
            self.need(line, f"{res}; not sent")
        else:
            self.need(line, f"needs reconciliation: {res}; run again later (it looks in Stripe before re-sending)")

    def correct_item(self, line, led):
        old, new = led["billed"], line.amount
        change = f"amount {money(led['amount'], line.currency)} was sent as {led['stripe_id']}, now {money(new, line.currency)}"
        if led["amount"] == new:
            change = f"the request changed since it was sent as {led['stripe_id']} (same amount {money(new, line.currency)})"
        if not self.args.correct:
            return self.need(line, f"changed: {change}; not sent. Run with --correct to delete and re-create "
                             "the pending item, or, once invoiced, to add an adjustment line for the difference")
        version = led["version"] + 1
        # Pending (or on a draft invoice): delete and re-create.
        status, _, body = self.http.call("GET", f"/v1/invoiceitems/{led['stripe_id']}")
        deletable = False
        if status == 200:
            inv = body.get("invoice")
            if inv is None:
                deletable = True
            else:
                s2, _, ib = self.http.call("GET", f"/v1/invoices/{inv}")
                deletable = s2 == 200 and ib.get("status") == "draft"
        elif status == 404:
            # Gone: deleted by an earlier run whose answer was lost, or by hand.
            ours = self.ledger.db.execute(
                "SELECT 1 FROM requests WHERE mode=? AND account=? AND kind=? AND key=? AND purpose='delete' "
                "AND path=?", (self.ledger.mode, self.ledger.account, line.kind, line.key,
                               f"/v1/invoiceitems/{led['stripe_id']}")).fetchone()
            deletable = "gone" if ours else None
        else:
            return self.need(line, f"changed: {change}; cannot look at {led['stripe_id']} (HTTP {status}: "
                             f"{stripe_error(body)}); run again")
        if deletable == "gone":
            with self.ledger.tx():
                self.ledger.close_intents(line.kind, line.key, "ok", "the item was gone: the delete had been done")
                self.ledger.put(line.kind, line.key, line.customer, led["amount"], 0, led["request_hash"], None,
                                version, "unknown", note=f"deleted {led['stripe_id']} for a correction")
            deletable = False
            done, res = self.send_item(line, version, f"{line.key}.v{version}")
            if done:
                self.corrected += 1
                warn(f"{self.name}:{line.n}: {line.key}: corrected: {change}; re-created as {res.get('id')}")
                self.emit(line.key, res.get("id"), "re-created")
            else:
                self.need(line, f"{led['stripe_id']} was deleted for a correction, but re-creating failed: {res}")
            return
        if deletable:
            def gone(body):
                return dict(kind=line.kind, key=line.key, customer=line.customer, amount=led["amount"], billed=0,
                            request_hash=led["request_hash"], stripe_id=None, version=version, state="unknown",
                            note=f"deleted {led['stripe_id']} for a correction")
            done, res = self.request(line, "delete", f"{line.key}.v{version}.delete", "DELETE",
                                     f"/v1/invoiceitems/{led['stripe_id']}", None, led["amount"],
                                     led["request_hash"], gone)
            if not done:
                return self.need(line, f"changed: {change}; deleting {led['stripe_id']} failed: {res}")
            self.emit(line.key, led["stripe_id"], "deleted")
            done, res = self.send_item(line, version, f"{line.key}.v{version}")
            if done:
                self.corrected += 1
                warn(f"{self.name}:{line.n}: {line.key}: corrected: {change}; the pending item was re-created as {res.get('id')}")
                self.emit(line.key, res.get("id"), "re-created")
            else:
                self.need(line, f"deleted {led['stripe_id']} for a correction, but re-creating failed: {res}; run again")
            return
        if deletable is None:
            return self.need(line, f"changed: {change}; {led['stripe_id']} no longer exists in Stripe; "
                             "check the customer's invoices by hand")
        # Invoiced: an adjustment line for the difference, with its own key.
        diff = new - old
        if diff == 0:
            with self.ledger.tx():
                self.ledger.put(line.kind, line.key, line.customer, new, old, line.hash, led["stripe_id"],
                                version, "sent", note="request changed after invoicing; amount unchanged")
            self.corrected += 1
            return warn(f"{self.name}:{line.n}: {line.key}: {change}; it is invoiced, nothing to adjust")
        adj_key = f"{line.key}.adj{version}"
        form = [(k, v) for k, v in line.form if k not in ("amount", "description", "invoice")
                and not k.startswith("metadata[")]
        form += [("amount", str(diff)),
                 ("description", f"Correction: {line.row.get('description', '')[:400]} "
                                 f"(was {money(old, line.currency)}, now {money(new, line.currency)})"),
                 ("metadata[mb_idempotency_key]", line.key), ("metadata[mb_adjusts]", led["stripe_id"] or ""),
                 ("metadata[mb_request_hash]", line.hash), ("metadata[mb_version]", str(version))]

        def adjusted(body):
            return dict(kind=line.kind, key=line.key, customer=line.customer, amount=new, billed=new,
                        request_hash=line.hash, stripe_id=led["stripe_id"], version=version, state="sent",
                        note=f"adjusted by {body.get('id')} ({diff:+d})")
        # Journalled with the line's hash, which the item's metadata carries,
        # so a lost answer is reconciled like a create.
        done, res = self.request(line, "adjust", adj_key, "POST", "/v1/invoiceitems", form, diff,
                                 line.hash, adjusted)
        if done:
            self.corrected += 1
            warn(f"{self.name}:{line.n}: {line.key}: corrected: {change}; it is invoiced, so adjustment "
                 f"item {res.get('id')} of {money(diff, line.currency)} goes on the next invoice")
            self.emit(adj_key, res.get("id"), "adjustment")
        else:
            self.need(line, f"changed: {change}; the adjustment failed: {res}")

    # ---------------------------------------------------------------- meter events
    def meter_event(self, line):
        led = self.ledger.line(line.kind, line.key)
        intents = self.ledger.open_intents(line.kind, line.key)
        if intents:
            # Stripe deduplicates identifiers for at least 24 hours, so a
            # re-send of an unknown outcome inside that window is harmless;
            # after it, it would count twice: a person must look.
            first = self.ledger.db.execute("SELECT min(intent_at) FROM requests WHERE mode=? AND account=? "
                                           "AND kind=? AND key=? AND (outcome IS NULL OR outcome='unknown')",
                                           (self.ledger.mode, self.ledger.account, line.kind, line.key)).fetchone()[0]
            if now() - first >= DAY - 600:
                return self.need(line, "an earlier send has an unknown outcome and is older than Stripe's 24-hour "
                                 "identifier window; check the meter's events in the Stripe dashboard, then "
                                 "delete this line's rows from the ledger's requests table")
            with self.ledger.tx():
                self.ledger.close_intents(line.kind, line.key, "resent", "re-sent with the same identifier")
        if led and led["state"] == "sent" and not intents:
            if led["request_hash"] == line.hash:
                self.skipped += 1
                return
            return self.correct_event(line, led)
        ident = led["stripe_id"] if led and led["stripe_id"] else line.key
        value = line.amount
        creates = [i for i in intents if i[1] == "create"]
        if creates:
            value = creates[-1][4]  # re-send exactly what was sent (a correction's increase)
        form = [(k, ident if k == "identifier" else str(value) if k == "payload[value]" else v)
                for k, v in line.form]
        version = led["version"] if led else 1
        attempt = self.ledger.attempts(line.kind, line.key)

        def ok(body):
            return dict(kind=line.kind, key=line.key, customer=line.customer, amount=line.amount,
                        billed=line.amount, request_hash=line.hash, stripe_id=ident, version=version,
                        state="sent", sent_at=now())
        # A fresh Idempotency-Key per attempt (a saved 500 would be replayed
        # for 24 hours); the identifier is what Stripe deduplicates on.
        http_key = f"mb-meter-{ident}" + (f".a{attempt + 1}" if attempt else "")
        done, res = self.request(line, "create", http_key, "POST", "/v1/billing/meter_events",
                                 form, value, line.hash, ok)
        if done:
            self.sent += 1
            self.emit(line.key, ident, "meter event")
        elif done is False:
            self.need(line, f"{res}; not sent")
        else:
            self.need(line, f"needs reconciliation: {res}; run again within 24 hours (Stripe deduplicates the identifier)")

    def live_events(self, line):
        """This line's events Stripe counts: (identifier, value, sent_at),
        from the journal (creates that succeeded, minus successful cancels)."""
        L = self.ledger
        rows = L.db.execute("SELECT purpose, stripe_id, amount, done_at FROM requests WHERE mode=? AND account=? "
                            "AND kind=? AND key=? AND outcome='ok' ORDER BY id",
                            (L.mode, L.account, line.kind, line.key)).fetchall()
        cancelled = {r[1] for r in rows if r[0] == "cancel"}
        return [(r[1], r[2], r[3]) for r in rows if r[0] == "create" and r[1] not in cancelled]

    def correct_event(self, line, led):
        new = line.amount
        change = f"value {led['amount']} was sent as {led['stripe_id']}, now {new}"
        if not self.args.correct:
            return self.need(line, f"changed: {change}; not sent. Run with --correct to cancel and re-send it "
                             "(within 24 hours) or to send the increase")
        # Stripe can cancel an event only within 24 hours of receiving it
        # (https://docs.stripe.com/api/billing/meter-event-adjustment/create);
        # older events stay counted, so the new event carries the rest.
        live = self.live_events(line)
        recent = [e for e in live if now() - (e[2] or 0) < DAY - 600]
        kept = sum(e[1] for e in live if e not in recent)
        if kept > new:
            return self.need(line, f"changed: {change}; events of {kept} were sent more than 24 hours ago, so "
                             "Stripe can no longer cancel them, and a decrease cannot be sent as an event: "
                             f"credit the customer {kept - new} units by hand (a credit note)")
        version = led["version"] + 1
        new_ident = f"{line.key}.r{version}"
        name = dict(line.form)["event_name"]
        for ident, value, _ in recent:
            cform = [("event_name", name), ("type", "cancel"), ("cancel[identifier]", ident)]

            def cancelled(body, ident=ident):
                return dict(kind=line.kind, key=line.key, customer=line.customer, amount=led["amount"],
                            billed=led["billed"] - value, request_hash=led["request_hash"], stripe_id=new_ident,
                            version=version, state="unknown", note=f"cancelled {ident}")
            done, res = self.request(line, "cancel", f"mb-meter-cancel-{ident}", "POST",
                                     "/v1/billing/meter_event_adjustments", cform, -value, request_hash(cform),
                                     cancelled, sid=ident)
            if not done:
                return self.need(line, f"changed: {change}; cancelling {ident} failed: {res}; run again")
            led = self.ledger.line(line.kind, line.key)
            self.emit(ident, ident, "cancelled")
        value = new - kept
        if value == 0:
            with self.ledger.tx():
                self.ledger.put(line.kind, line.key, line.customer, new, new, line.hash, led["stripe_id"], version,
                                "sent", note="corrected by cancelling")
            self.corrected += 1
            return warn(f"{self.name}:{line.n}: {line.key}: corrected: {change}; cancelled, nothing to re-send")
        form = [(k, v) for k, v in line.form if k not in ("identifier", "payload[value]")]
        form += [("identifier", new_ident), ("payload[value]", str(value))]

        def ok(body):
            return dict(kind=line.kind, key=line.key, customer=line.customer, amount=new, billed=new,
                        request_hash=line.hash, stripe_id=new_ident, version=version, state="sent",
                        sent_at=now())
        done, res = self.request(line, "create", f"mb-meter-{new_ident}", "POST", "/v1/billing/meter_events",
                                 form, value, line.hash, ok)
        if done:
            self.corrected += 1
            warn(f"{self.name}:{line.n}: {line.key}: corrected: {change}; sent {new_ident} with value {value}")
            self.emit(line.key, new_ident, "meter event correction")
        else:
            self.need(line, f"changed: {change}; sending {new_ident} failed: {res}; run again")

    # ---------------------------------------------------------------- invoices
    def invoices(self, lines):
        by_cus = {}
        for ln in lines:
            by_cus.setdefault(ln.customer, []).append(ln)
        for cus, ls in by_cus.items():
            if any(ln.key in self.attention for ln in ls):
                warn(f"{cus}: not invoiced: some of its lines need attention (above)")
                self.attention.append(f"invoice of {cus}")
                continue
            month = (ls[0].row.get("period_start") or "")[:7]
            key = f"mb-{month}-{ls[0].row.get('customer_id', cus)}-invoice"
            pseudo = Line(ls[0].n, "invoice", key, cus, sum(ln.amount for ln in ls), ls[0].currency, [], {})
            led = self.ledger.line("invoice", key)
            if not led or led["state"] != "sent":
                form = [("customer", cus), ("pending_invoice_items_behavior", "include"),
                        ("auto_advance", "true"), ("metadata[mb_idempotency_key]", key)]

                def ok(body, pseudo=pseudo, form=form):
                    return dict(kind="invoice", key=key, customer=cus, amount=body.get("total", 0),
                                billed=body.get("total", 0), request_hash=request_hash(form),
                                stripe_id=body.get("id"), version=1, state="sent", sent_at=now(), note="draft")
                attempt = self.ledger.attempts("invoice", key)
                done, res = self.request(pseudo, "invoice", key if attempt == 0 else f"{key}.a{attempt + 1}",
                                         "POST", "/v1/invoices", form, None, request_hash(form), ok)
                if not done:
                    self.need(pseudo, f"creating the invoice failed: {res}")
                    continue
                self.emit(key, res.get("id"), "invoice")
                led = self.ledger.line("invoice", key)
            if self.args.finalize and led["note"] == "draft":
                def fin(body, led=led):
                    return dict(kind="invoice", key=key, customer=cus, amount=led["amount"], billed=led["billed"],
                                request_hash=led["request_hash"], stripe_id=led["stripe_id"], version=1,
                                state="sent", note="finalized")
                done, res = self.request(pseudo, "finalize", f"{key}.finalize", "POST",
                                         f"/v1/invoices/{led['stripe_id']}/finalize", [], None, "", fin)
                if done:
                    self.emit(key, led["stripe_id"], "finalized")
                else:
                    self.need(pseudo, f"finalizing {led['stripe_id']} failed: {res}")


def main(argv):
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 all lines in Stripe exactly once; 1 finished, some lines need a person "
               "(listed on the last line); 2 usage, input, key or ledger error. See docs/operations.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", default="-", help="mb-report invoice --csv or stripe-meter output (default: stdin)")
    p.add_argument("--dry-run", action="store_true", help="print the requests, send nothing, no key or ledger needed")
    p.add_argument("--currency", default=os.environ.get("MB_STRIPE_CURRENCY", "EUR"),
                   help="the only currency accepted [MB_STRIPE_CURRENCY, default EUR]")
    p.add_argument("--ledger", default=os.environ.get("MB_STRIPE_LEDGER") or default_ledger(),
                   help="the SQLite ledger [MB_STRIPE_LEDGER, default STATE_DIR/stripe-ledger.sqlite]")
    p.add_argument("--key-file", help="file holding the secret key [STRIPE_API_KEY_FILE; or STRIPE_API_KEY]")
    p.add_argument("--api-base", default=os.environ.get("STRIPE_API_BASE", "https://api.stripe.com"),
                   help="API base: https, or http to loopback only [STRIPE_API_BASE]")
    p.add_argument("--stripe-version", default=os.environ.get("STRIPE_VERSION", STRIPE_VERSION),
                   help=f"Stripe-Version header [STRIPE_VERSION, default {STRIPE_VERSION}]")
    p.add_argument("--correct", action="store_true",
                   help="fix lines whose amount changed since they were sent (delete and re-create a pending "
                        "item, add an adjustment line to an invoiced one; cancel and re-send a meter event)")
    p.add_argument("--invoice", choices=["none", "include"], default="none",
                   help="after the items, create each customer's invoice with "
                        "pending_invoice_items_behavior=include [default: none, the items wait for the next invoice]")
    p.add_argument("--finalize", action="store_true", help="finalize the invoices --invoice include creates "
                   "(otherwise Stripe's auto_advance finalizes them about an hour later)")
    p.add_argument("--draft-invoice", action="append", default=[], metavar="CUS=in_ID",
                   help="attach this customer's items to the given draft invoice (repeatable)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request [default 30]")
    p.add_argument("--retry-window", type=float, default=60.0,
                   help="seconds to keep retrying one request (network errors, 409, 429, 5xx) [default 60]")
    args = p.parse_args(argv)
    if decimals(args.currency) is None:
        raise Fatal(f"--currency {args.currency!r}: not a currency mb invoices in "
                    "(three-decimal and Stripe special-case currencies are refused)")
    check_base(args.api_base)
    if args.finalize and args.invoice != "include":
        raise Fatal("--finalize needs --invoice include")
    drafts = {}
    for d in args.draft_invoice:
        m = re.fullmatch(r"(cus_[A-Za-z0-9]+)=(in_[A-Za-z0-9]+)", d)
        if not m:
            raise Fatal(f"--draft-invoice {d!r}: expected cus_...=in_...")
        drafts[m.group(1)] = m.group(2)
    if drafts and args.invoice != "none":
        raise Fatal("--draft-invoice and --invoice include are two ways to invoice; pick one")

    name = "stdin" if args.file == "-" else args.file
    try:
        if args.file == "-":
            text = sys.stdin.buffer.read().decode("utf-8")
        else:
            with open(args.file, "rb") as f:
                text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise Fatal(f"cannot read {name}: {e}")
    rows = csv.DictReader(io.StringIO(text, newline=""))
    fields = rows.fieldnames or []
    if all(c in fields for c in INVOICE_COLUMNS):
        kind = "invoiceitem"
    elif all(c in fields for c in METER_COLUMNS):
        kind = "meter_event"
        if args.invoice != "none" or drafts:
            raise Fatal("--invoice and --draft-invoice apply to invoice lines, not meter events")
    else:
        raise Fatal(f"{name}: not mb-report invoice --csv or stripe-meter output "
                    f"(expected the columns {','.join(INVOICE_COLUMNS[:3])},... or {','.join(METER_COLUMNS)})")

    # Check every line before sending any.
    good, refused_keys, seen, read = [], [], set(), 0
    t_now = now()
    for row in rows:
        read += 1
        n = rows.line_num
        if None in row or any(v is None for v in row.values()):
            warn(f"{name}:{n}: wrong number of fields; refused")
            refused_keys.append(f"{name}:{n}")
            continue
        if kind == "invoiceitem":
            line, why = check_invoice_row(row, args.currency, drafts)
        else:
            line, why = check_meter_row(row, t_now)
        if why is None and line.key in seen:
            why = f"key {line.key!r} appears twice in the input"
        if why:
            warn(f"{name}:{n}: {why}; refused")
            refused_keys.append(f"{name}:{n}")
            continue
        line.n = n
        seen.add(line.key)
        good.append(line)

    path = {"invoiceitem": "/v1/invoiceitems", "meter_event": "/v1/billing/meter_events"}[kind]
    if args.dry_run:
        base = args.api_base.rstrip("/")
        for ln in good:
            sys.stdout.write(f"POST {base}{path}\nAuthorization: Bearer ***\nIdempotency-Key: {ln.key}\n"
                             f"Stripe-Version: {args.stripe_version}\n"
                             f"Content-Type: application/x-www-form-urlencoded\n\n{urllib.parse.urlencode(ln.form)}\n\n")
        warn(f"read {read}, would send {len(good)}, refused {len(refused_keys)} (dry run: nothing sent)")
        return 1 if refused_keys else 0

    # The key before the ledger: a run without a key creates nothing.
    key, mode = read_key(args)
    http = Http(args.api_base, key, args.stripe_version, args.timeout, args.retry_window)
    status, _, body = http.call("GET", "/v1/account")
    if status in (401, 403):
        raise Fatal(f"Stripe refused the key (HTTP {status}: {stripe_error(body)}); check STRIPE_API_KEY")
    if status != 200 or not str(body.get("id", "")).startswith("acct_"):
        raise Fatal(f"cannot tell which Stripe account the key belongs to (GET /v1/account: "
                    f"{'HTTP %s' % status if status else 'no answer'}: {stripe_error(body)}); nothing sent, run again")
    ledger = Ledger(args.ledger, mode, body["id"])
    run = Run(args, http, ledger, mode, name)
    for ln in good:
        if run.unreachable_streak >= 3:
            run.need(ln, "not sent: Stripe did not answer the last 3 lines; run again when it is reachable")
            continue
        if kind == "invoiceitem":
            run.invoice_item(ln)
        else:
            run.meter_event(ln)
    if kind == "invoiceitem" and args.invoice == "include":
        run.invoices(good)
    attention = refused_keys + run.attention
    summary = (f"read {read}, sent {run.sent}, already sent {run.skipped}, corrected {run.corrected}, "
               f"refused {len(refused_keys)}; {mode} mode, account {body['id']}")
    if attention:
        warn(f"NEEDS ATTENTION: {summary}; {len(attention)} need a person: {', '.join(attention)}")
        return 1
    warn(f"done: {summary}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Fatal as e:
        warn(str(e))
        sys.exit(2)
    except BrokenPipeError:
        sys.exit(0)
    except (sqlite3.Error, OSError) as e:
        # The ledger or a file failed mid-run: fatal, never exit 1 ("needs a
        # person" with a list) nor a traceback. What was journalled stands;
        # a re-run reconciles any intent left open.
        warn(f"fatal: {e}; nothing more was sent; fix it and run again (open intents are reconciled)")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)

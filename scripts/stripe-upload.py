#!/usr/bin/env python3
"""stripe-upload: create Stripe invoice items from `mb-report invoice --csv`.

Usage:
    mb-report invoice --month last --csv | stripe-upload [OPTIONS] [FILE]

Reads the invoice CSV (stdin, or FILE) with the columns of mb-report(1):
customer_id, stripe_customer_id, period_start, period_end, line, description,
quantity, unit, currency, amount_minor, amount_unrounded, tokens, cost_usd,
markup, fx_rate, idempotency_key; and for every line POSTs
/v1/invoiceitems (customer, amount, currency in lower case, description,
period[start], period[end] as Unix seconds, metadata[...]) with the line's
idempotency key as the Idempotency-Key header. The items wait on the
customer's next invoice (Stripe's "pending invoice items").

Safety:
- Every line is checked before anything is sent. A line without a
  stripe_customer_id, with an amount that is not an integer of minor units,
  with a currency other than --currency (default EUR), with a bad period or
  no idempotency key is refused: reported as `INPUT:LINE: reason`, not sent,
  and the exit status is 1. The other lines are sent.
- A ledger file (--ledger, default STATE_DIR/stripe-ledger.tsv) records the
  key and the Stripe id of every item created, fsynced after each one, under
  an exclusive lock. A key in the ledger is never sent again, so re-running
  the job is a no-op; Stripe's own idempotency keys expire after 24 hours,
  the ledger does not. A request whose outcome is unknown (network error,
  5xx, 429) is retried with the same key, which Stripe answers with the
  first result.
- The secret key comes from STRIPE_API_KEY or a key file (--key-file, or
  STRIPE_API_KEY_FILE), never from the command line, and is never printed:
  --dry-run shows `Authorization: Bearer ***`. A key file that group or
  others can read is refused (exit 2) with the chmod to run.

Options:
    --dry-run           print the requests, send nothing, keep the ledger as is
    --currency CODE     the only currency accepted [MB_STRIPE_CURRENCY, default EUR]
    --ledger FILE       ledger of sent keys [MB_STRIPE_LEDGER]
    --key-file FILE     file holding the secret key [STRIPE_API_KEY_FILE]
    --api-base URL      API base [STRIPE_API_BASE, default https://api.stripe.com]
    --timeout SECONDS   per request [default 30]
    --retries N         extra attempts for an unknown outcome [default 3]

Exit status: 0 every line sent or already in the ledger; 1 some lines were
refused (by the checks or by Stripe with a 4xx), the others were sent;
2 usage error, unreadable input or ledger, no key, authentication refused,
or Stripe unreachable after the retries (lines sent before that are in the
ledger; run again).

Python 3.8+ standard library only.
"""

import argparse
import csv
import fcntl
import io
import json
import os
import re
import shlex
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

PROG = "stripe-upload"
COLUMNS = [
    "customer_id", "stripe_customer_id", "period_start", "period_end", "line",
    "description", "quantity", "unit", "currency", "amount_minor",
    "amount_unrounded", "tokens", "cost_usd", "markup", "fx_rate",
    "idempotency_key",
]
# Fields copied into the item's metadata (Stripe: up to 50 keys, 500 chars).
METADATA = [
    "customer_id", "line", "quantity", "unit", "amount_unrounded", "tokens",
    "cost_usd", "markup", "fx_rate", "idempotency_key",
]


class Fatal(Exception):
    """Exit 2 with this message."""


def warn(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def default_ledger():
    if os.geteuid() == 0:
        base = "/var/lib/mb"
    else:
        base = os.path.join(
            os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local/state"),
            "mb",
        )
    return os.path.join(base, "stripe-ledger.tsv")


def unix_seconds(text):
    """RFC 3339 (with Z or an offset) to Unix seconds; None if invalid."""
    t = text.strip()
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", t):
        return None
    t = t[:-1] + "+00:00" if t.endswith("Z") else t
    t = re.sub(r"\.\d+", "", t)
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        return None
    return int(dt.astimezone(timezone.utc).timestamp())


def check(row, currency):
    """The form fields of one line, or a reason to refuse it."""
    cus = row["stripe_customer_id"].strip()
    if not cus:
        return None, (f"customer {row['customer_id']!r} has no stripe_customer_id "
                      f"(mb-customer set {row['customer_id']} --stripe-customer cus_...)")
    if not re.fullmatch(r"[A-Za-z0-9_]{1,255}", cus):
        return None, f"stripe_customer_id {cus!r} is not a Stripe id"
    amount = row["amount_minor"].strip()
    if not re.fullmatch(r"-?[0-9]{1,15}", amount):
        return None, f"amount_minor {amount!r} is not an integer of minor units"
    cur = row["currency"].strip()
    if cur.upper() != currency.upper():
        return None, f"currency {cur!r} is not the configured {currency.upper()} (--currency)"
    key = row["idempotency_key"].strip()
    if not key or len(key) > 255:
        return None, "no idempotency_key (or longer than 255 characters)"
    start, end = unix_seconds(row["period_start"]), unix_seconds(row["period_end"])
    if start is None or end is None or end <= start:
        return None, f"bad period {row['period_start']!r} .. {row['period_end']!r}"
    form = [
        ("customer", cus),
        ("amount", str(int(amount))),
        ("currency", cur.lower()),
        ("description", row["description"][:500]),
        ("period[start]", str(start)),
        ("period[end]", str(end)),
    ]
    for f in METADATA:
        v = row.get(f, "")
        if v:
            form.append((f"metadata[mb_{f}]", v[:500]))
    return (key, form), None


class Ledger:
    """Keys already sent: `key<TAB>stripe id<TAB>sent at` lines, locked."""

    def __init__(self, path, write):
        self.path = path
        self.keys = {}
        self.f = None
        if write:
            d = os.path.dirname(path) or "."
            try:
                os.makedirs(d, mode=0o700, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as e:
                raise Fatal(f"cannot open the ledger {path}: {e.strerror}; "
                            "fix its directory's permissions or pass --ledger FILE")
            self.f = os.fdopen(fd, "r+", encoding="utf-8")
            try:
                fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise Fatal(f"another stripe-upload holds the ledger {path}; wait for it to finish")
            self.f.seek(0)
            text = self.f.read()
        else:
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError:
                text = ""
            except OSError as e:
                raise Fatal(f"cannot read the ledger {path}: {e.strerror}")
        for n, line in enumerate(text.splitlines(), 1):
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            self.keys[parts[0]] = parts[1] if len(parts) > 1 else ""

    def add(self, key, item_id):
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.f.write(f"{key}\t{item_id}\t{now}\n")
        self.f.flush()
        os.fsync(self.f.fileno())
        self.keys[key] = item_id


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
    return key


def post(url, key, idem, body, timeout, retries):
    """POST once per attempt; returns (status, parsed JSON or text)."""
    data = body.encode()
    delay = 0.5
    for attempt in range(retries + 1):
        req = urllib.request.Request(url, data=data, method="POST", headers={
            "Authorization": f"Bearer {key}",
            "Idempotency-Key": idem,
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "mb-stripe-upload/1",
        })
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")
            if e.code in (429,) or e.code >= 500:
                why = f"HTTP {e.code}"
            else:
                return e.code, text
        except (urllib.error.URLError, OSError) as e:
            why = str(getattr(e, "reason", e))
        if attempt < retries:
            warn(f"{idem}: {why}; retrying with the same idempotency key")
            time.sleep(delay)
            delay *= 2
    raise Fatal(f"{idem}: Stripe unreachable after {retries + 1} attempts ({why}); "
                "run again later (the ledger keeps what was sent)")


def stripe_error(text):
    try:
        e = json.loads(text)["error"]
        return e.get("message") or e.get("type") or text
    except (ValueError, KeyError, TypeError):
        return text.strip()[:200]


def main(argv):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", default="-", help="invoice CSV (default: stdin)")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--currency", default=os.environ.get("MB_STRIPE_CURRENCY", "EUR"))
    p.add_argument("--ledger", default=os.environ.get("MB_STRIPE_LEDGER") or default_ledger())
    p.add_argument("--key-file")
    p.add_argument("--api-base", default=os.environ.get("STRIPE_API_BASE", "https://api.stripe.com"))
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--retries", type=int, default=3)
    args = p.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z]{3}", args.currency):
        raise Fatal(f"--currency {args.currency!r} is not a 3-letter ISO code")
    if not re.match(r"https?://", args.api_base):
        raise Fatal(f"--api-base {args.api_base!r} is not an http(s) URL")

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
    missing = [c for c in COLUMNS if c not in (rows.fieldnames or [])]
    if missing:
        raise Fatal(f"{name}: not mb-report invoice --csv output (missing columns: {', '.join(missing)})")

    # Check every line before sending any.
    good, refused, seen, read = [], 0, set(), 0
    for row in rows:
        read += 1
        n = rows.line_num
        if None in row or any(v is None for v in row.values()):
            warn(f"{name}:{n}: wrong number of fields; refused")
            refused += 1
            continue
        item, why = check(row, args.currency)
        if why is None and item[0] in seen:
            why = f"idempotency_key {item[0]!r} appears twice in the input"
        if why:
            warn(f"{name}:{n}: {why}; refused")
            refused += 1
            continue
        seen.add(item[0])
        good.append((n, item))

    ledger = Ledger(args.ledger, write=not args.dry_run)
    url = args.api_base.rstrip("/") + "/v1/invoiceitems"
    key = None if args.dry_run else read_key(args)
    sent = skipped = 0
    out = sys.stdout
    for n, (idem, form) in good:
        if idem in ledger.keys:
            skipped += 1
            continue
        body = urllib.parse.urlencode(form)
        if args.dry_run:
            out.write(f"POST {url}\nAuthorization: Bearer ***\nIdempotency-Key: {idem}\n"
                      f"Content-Type: application/x-www-form-urlencoded\n\n{body}\n\n")
            sent += 1
            continue
        status, resp = post(url, key, idem, body, args.timeout, args.retries)
        if status in (401, 403):
            raise Fatal(f"Stripe refused the key (HTTP {status}: {stripe_error(resp)}); check STRIPE_API_KEY")
        if not 200 <= status < 300:
            warn(f"{name}:{n}: {idem}: Stripe answered HTTP {status}: {stripe_error(resp)}; not sent")
            refused += 1
            continue
        try:
            item_id = json.loads(resp).get("id", "")
        except (ValueError, AttributeError):
            item_id = ""
        ledger.add(idem, item_id)
        out.write(f"{idem}\t{item_id}\n")
        out.flush()
        sent += 1
    verb = "would send" if args.dry_run else "sent"
    warn(f"read {read}, {verb} {sent}, already sent {skipped}, refused {refused}")
    return 1 if refused else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Fatal as e:
        warn(str(e))
        sys.exit(2)
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)

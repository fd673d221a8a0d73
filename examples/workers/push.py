#!/usr/bin/env python3
"""Push one HR export to a Muster gateway: a scheduled worker's example.

One run pushes one file and exits with a code a scheduler can act on:

    0  the import succeeded
    3  it succeeded, but some rows had errors (the first 20 are printed)
    1  it was rejected or failed, was not final within --wait, or the
       credentials, the network, the gateway or reading the file failed
    2  usage error (bad arguments, a format that cannot be told)

Needs Python 3.8+ and `requests` (pip install requests); nothing else.

Configuration, from the environment (never from the command line, where
`ps` and shell history would show it):

    MUSTER_URL                  the gateway's base URL, e.g. https://muster.example.com
    MUSTER_CLIENT_ID            the client id
    MUSTER_CLIENT_SECRET        the client secret, or
    MUSTER_CLIENT_SECRET_FILE   a file holding it (set one of the two, not both)

Usage:

    push.py FILE [--mapping NAME] [--mode upsert|snapshot] [--dry-run]
                 [--format csv|jsonl|scim] [--wait SECONDS]
                 [--idempotency-key K] [--retries N]
                 [--delimiter C] [--on-behalf-of WHO]

The flow is the one docs/integration.md describes:

1. POST /oauth2/token (client_secret_basic, grant_type=client_credentials).
   A fresh token is fetched for every request, because a client whose
   token policy is `one_time` gets tokens that the first request consumes;
   for a `ttl` client this costs one extra round trip per request.
2. POST /api/v1/imports with the file as the body, streamed from disk,
   with its Content-Type, the options as query parameters, `wait` of at
   most 30 s, and an Idempotency-Key header.
3. GET /api/v1/imports/{id} every few seconds until the import is final or
   the --wait budget is spent.
4. When rows failed, GET /api/v1/imports/{id}/errors?limit=20 and print
   row, column, attribute, code and message (the API never returns a
   cell's value, and nothing here prints one).

Transient failures (connection errors, timeouts, 408, 429, 500, 502, 503,
504) are retried with exponential backoff and jitter, honouring
Retry-After. An upload is always retried with the same Idempotency-Key, so
a retry after a lost answer returns the import the first attempt made
instead of importing the file twice. Any other 4xx, and a rejected or
failed import, is final: the run reports it and exits 1. (The one
exception is `401 invalid_token` on an API request, which the docs say to
answer by fetching a new token and retrying once.)

The secret, the access tokens and the file's contents are never printed.
"""

import argparse
import json
import os
import random
import sys
import time
import urllib.parse
import uuid

try:
    import requests
except ImportError:  # pragma: no cover - depends on the machine
    sys.stderr.write("push.py: needs the 'requests' package (pip install requests)\n")
    sys.exit(1)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ROW_ERRORS = 3

# The gateway holds the upload's answer at most this long; longer requests
# risk the idle timeouts of proxies. After that the script polls.
SERVER_WAIT_MAX = 30
# "Poll it every few seconds" (docs/integration.md): start at 1 s, back off
# to 5 s.
POLL_FIRST = 1.0
POLL_MAX = 5.0
# How many row errors are printed.
SHOWN_ERRORS = 20
# Retry pauses: 1 s, 2 s, 4 s, ... (capped), each with up to 100 % jitter;
# a Retry-After is honoured up to this cap.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
RETRY_AFTER_MAX = 300.0
CONNECT_TIMEOUT = 10
# Seconds without a byte from the gateway before a request counts as lost
# (on top of any server-side wait).
READ_TIMEOUT = 60

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
FINAL_STATES = {"succeeded", "succeeded_with_errors", "rejected", "failed"}
CONTENT_TYPES = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "scim": "application/scim+json",
}
# An encrypted export (.csv.gpg, .jsonl.age, ...) is sent as it is: the
# gateway detects the encryption; the format is that of the plaintext.
ENCRYPTED_SUFFIXES = (".gpg", ".pgp", ".asc", ".age")

USER_AGENT = "muster-example-push.py/1"


class Failure(Exception):
    """Ends the run with exit code 1 and this message on stderr."""


def log(msg):
    sys.stderr.write("push.py: %s\n" % msg)
    sys.stderr.flush()


# ---- configuration ------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="push.py",
        description="Push one HR export to a Muster gateway and report the result.",
        epilog="Environment: MUSTER_URL, MUSTER_CLIENT_ID, and MUSTER_CLIENT_SECRET or "
        "MUSTER_CLIENT_SECRET_FILE. Exit codes: 0 succeeded; 3 succeeded with row "
        "errors; 1 rejected, failed, not final in time, or an authentication, network "
        "or gateway error; 2 usage error.",
    )
    p.add_argument("file", metavar="FILE", help="the export: .csv, .jsonl or .ndjson "
                   "(also encrypted, e.g. .csv.gpg); a SCIM file with --format scim")
    p.add_argument("--mapping", metavar="NAME",
                   help="the stored mapping to apply (not with --format scim)")
    p.add_argument("--mode", choices=["upsert", "snapshot"],
                   help="upsert (the gateway's default) or snapshot")
    p.add_argument("--dry-run", action="store_true",
                   help="validate and count, write nothing")
    p.add_argument("--format", choices=sorted(CONTENT_TYPES),
                   help="csv, jsonl or scim (default: from the file's extension)")
    p.add_argument("--wait", type=nonneg_int, default=600, metavar="SECONDS",
                   help="how long to wait for the import to become final (default 600)")
    p.add_argument("--idempotency-key", metavar="K",
                   help="reuse a key to make a resent file return the first import "
                   "(default: a new random UUID)")
    p.add_argument("--retries", type=nonneg_int, default=4, metavar="N",
                   help="retries of a transiently failed request (default 4)")
    p.add_argument("--delimiter", metavar="C",
                   help="the CSV delimiter: one character, or 'tab'")
    p.add_argument("--on-behalf-of", metavar="WHO",
                   help="who the push is for, recorded in the audit trail")
    a = p.parse_args(argv)

    if a.format is None:
        a.format = format_from_name(a.file)
        if a.format is None:
            p.error("cannot tell the format of %s from its name: pass --format csv, "
                    "jsonl or scim" % a.file)
    if a.format == "scim" and a.mapping:
        p.error("--mapping: a SCIM file is read by the SCIM User mapping; leave it out")
    if a.format != "scim" and not a.mapping:
        p.error("--mapping is required (the name of a stored mapping)")
    if a.idempotency_key is None:
        a.idempotency_key = str(uuid.uuid4())
    elif not (1 <= len(a.idempotency_key) <= 255
              and all(0x20 <= ord(c) <= 0x7E for c in a.idempotency_key)):
        p.error("--idempotency-key: 1 to 255 printable ASCII characters")
    if a.delimiter is not None and a.delimiter != "tab" and len(a.delimiter) != 1:
        p.error("--delimiter: one character, or 'tab'")
    return a


def nonneg_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError("not a whole number: %r" % s)
    if v < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return v


def format_from_name(path):
    name = os.path.basename(path).lower()
    for suffix in ENCRYPTED_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".jsonl") or name.endswith(".ndjson"):
        return "jsonl"
    return None


def credentials(env):
    """(client_id, secret) from the environment, like `muster push` reads them."""
    client_id = (env.get("MUSTER_CLIENT_ID") or "").strip()
    if not client_id:
        raise Failure("no credentials: set MUSTER_CLIENT_ID, and MUSTER_CLIENT_SECRET "
                      "or MUSTER_CLIENT_SECRET_FILE")
    secret, secret_file = env.get("MUSTER_CLIENT_SECRET"), env.get("MUSTER_CLIENT_SECRET_FILE")
    if secret is not None and secret_file is not None:
        raise Failure("set MUSTER_CLIENT_SECRET or MUSTER_CLIENT_SECRET_FILE, not both")
    if secret_file is not None:
        try:
            with open(secret_file, encoding="utf-8") as f:
                secret = f.read()
        except OSError as e:
            # e.strerror, not e: the message names the file, never its content.
            raise Failure("cannot read MUSTER_CLIENT_SECRET_FILE (%s): %s"
                          % (secret_file, e.strerror))
    if secret is None:
        raise Failure("no client secret: set MUSTER_CLIENT_SECRET or "
                      "MUSTER_CLIENT_SECRET_FILE")
    secret = secret.strip()
    if not secret:
        raise Failure("the client secret is empty")
    return client_id, secret


# ---- HTTP ---------------------------------------------------------------


def problem_text(resp):
    """A refusal as one line: the problem's code and detail (or the OAuth
    error), never a body we cannot read."""
    try:
        body = resp.json()
    except ValueError:
        return "HTTP %d" % resp.status_code
    if not isinstance(body, dict):
        return "HTTP %d" % resp.status_code
    if "error" in body and isinstance(body["error"], str):  # RFC 6749 5.2
        desc = body.get("error_description")
        return "HTTP %d %s%s" % (resp.status_code, body["error"], ": %s" % desc if desc else "")
    code, detail = body.get("code"), body.get("detail")
    text = "HTTP %d" % resp.status_code
    if code:
        text += " %s" % code
    if detail:
        text += ": %s" % detail
    for e in body.get("errors") or []:  # field-level problems of a 422
        if isinstance(e, dict):
            where = e.get("column") or e.get("attribute") or ""
            text += "; %s %s" % (where, e.get("message") or e.get("code") or "")
    return text


def problem_code(resp):
    try:
        body = resp.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        return body.get("code") or body.get("error")
    return None


def retry_after(resp):
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    v = resp.headers.get("Retry-After") if resp is not None else None
    if not v:
        return None
    v = v.strip()
    if v.isdigit():
        return min(float(v), RETRY_AFTER_MAX)
    try:
        from email.utils import parsedate_to_datetime
        when = parsedate_to_datetime(v).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(0.0, when - time.time()), RETRY_AFTER_MAX)


def backoff(attempt):
    """Full-jitter exponential backoff: up to 1, 2, 4, ... s, at least half."""
    ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * (2 ** attempt))
    return random.uniform(ceiling / 2, ceiling)


class Bearer(requests.auth.AuthBase):
    """Sets `Authorization: Bearer`. Given as `auth=`, it also keeps
    requests from taking credentials from a ~/.netrc instead (proxy
    settings from the environment still apply)."""

    def __init__(self, token):
        self.token = token

    def __call__(self, r):
        r.headers["Authorization"] = "Bearer " + self.token
        return r


def json_of(resp, what):
    try:
        return resp.json()
    except ValueError:
        raise Failure("%s: HTTP %d with a body that is not JSON" % (what, resp.status_code))


class Gateway:
    def __init__(self, base, client_id, secret, retries, on_behalf_of=None):
        self.base = base.rstrip("/")
        # RFC 6749 2.3.1: id and secret are form-urlencoded inside the Basic
        # header. Generated ids and secrets never change under it; a
        # hand-chosen one with, say, a ':' or '%' would otherwise break.
        self._basic = (urllib.parse.quote_plus(client_id), urllib.parse.quote_plus(secret))
        self.retries = retries
        self.http = requests.Session()
        self.http.headers["User-Agent"] = USER_AGENT
        if on_behalf_of:
            self.http.headers["On-Behalf-Of"] = on_behalf_of

    def _send(self, what, make):
        """Sends the request `make()` builds until it is answered with
        something other than a transient failure, or the retries run out.
        Returns the response; raises Failure."""
        attempt = 0
        while True:
            resp = None
            try:
                resp = make()
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as e:
                # No (whole) answer: the request may or may not have arrived.
                reason = type(e).__name__
            else:
                if resp.status_code not in TRANSIENT_STATUS:
                    return resp
                reason = problem_text(resp)
            if attempt >= self.retries:
                raise Failure("%s: %s (gave up after %d attempts)" % (what, reason, attempt + 1))
            pause = retry_after(resp)
            if pause is None:
                pause = backoff(attempt)
            log("%s: %s; retrying in %.1f s" % (what, reason, pause))
            time.sleep(pause)
            attempt += 1

    def token(self):
        """A fresh access token (client_credentials, client_secret_basic)."""
        resp = self._send(
            "token request",
            lambda: self.http.post(
                self.base + "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=self._basic,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                allow_redirects=False,
            ),
        )
        if resp.status_code != 200:
            raise Failure("token request refused: %s" % problem_text(resp))
        body = json_of(resp, "token request")
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise Failure("token request: the answer holds no access_token")
        return token

    def call(self, what, method, path, params=None, headers=None, body_file=None,
             read_timeout=READ_TIMEOUT):
        """An API request with a token of its own; a `401 invalid_token`
        (e.g. an expired or already-used token) is retried once with a new
        one, as docs/integration.md advises. `body_file` is a path, opened
        afresh for every attempt and streamed."""
        for renewed in (False, True):
            def make():
                auth = Bearer(self.token())
                if body_file is None:
                    return self.http.request(
                        method, self.base + path, params=params, headers=headers,
                        auth=auth, timeout=(CONNECT_TIMEOUT, read_timeout),
                        allow_redirects=False)
                # An open file as `data`: requests streams it from disk with
                # its Content-Length; nothing reads the file into memory.
                with open(body_file, "rb") as f:
                    return self.http.request(
                        method, self.base + path, params=params, headers=headers,
                        data=f, auth=auth, timeout=(CONNECT_TIMEOUT, read_timeout),
                        allow_redirects=False)

            resp = self._send(what, make)
            if resp.status_code == 401 and problem_code(resp) == "invalid_token" and not renewed:
                log("%s: the token was refused; retrying once with a new one" % what)
                continue
            return resp
        return resp  # not reached


# ---- the run ------------------------------------------------------------


def counts_line(info):
    c = info.get("counts") or {}
    return "%d rows: %d created, %d updated, %d unchanged, %d deactivated, %d failed" % (
        c.get("rows_total", 0), c.get("created", 0), c.get("updated", 0),
        c.get("unchanged", 0), c.get("deactivated", 0), c.get("failed", 0))


def print_row_errors(gw, info):
    failed = (info.get("counts") or {}).get("failed", 0)
    if not failed:
        return
    path = "/api/v1/imports/%s/errors" % urllib.parse.quote(info["id"], safe="")
    try:
        resp = gw.call("listing the row errors", "GET", path, params={"limit": SHOWN_ERRORS})
    except Failure as e:
        # The import's result stands; only its details are missing.
        log(str(e))
        return
    if resp.status_code != 200:
        log("cannot list the row errors: %s" % problem_text(resp))
        return
    try:
        items = resp.json()["items"]
    except (ValueError, KeyError, TypeError):
        log("cannot list the row errors: unexpected answer")
        return
    print("row errors (%d of %d):" % (len(items), failed))
    for e in items:
        column = e.get("column")
        attribute = e.get("attribute")
        where = ""
        if column:
            where += " column %s" % json.dumps(column, ensure_ascii=False)
        if attribute:
            where += " (%s)" % attribute
        print("  row %s%s: %s: %s" % (e.get("row"), where, e.get("code"), e.get("message")))
    if failed > len(items):
        print("  ... and %d more: GET %s" % (failed - len(items), path))


def run(a, env):
    base = (env.get("MUSTER_URL") or "").strip()
    if not base:
        raise Failure("set MUSTER_URL to the gateway's base URL")
    client_id, secret = credentials(env)
    if not os.path.isfile(a.file):
        raise Failure("%s: not a readable file" % a.file)
    gw = Gateway(base, client_id, secret, a.retries, a.on_behalf_of)

    server_wait = min(a.wait, SERVER_WAIT_MAX)
    params = {"wait": server_wait}
    if a.mapping:
        params["mapping"] = a.mapping
    if a.mode:
        params["mode"] = a.mode
    if a.dry_run:
        params["dry_run"] = "true"
    if a.delimiter is not None:
        params["delimiter"] = a.delimiter
    headers = {
        "Content-Type": CONTENT_TYPES[a.format],
        # The same key on every attempt: a retry cannot import twice.
        "Idempotency-Key": a.idempotency_key,
    }

    deadline = time.monotonic() + a.wait
    resp = gw.call("upload", "POST", "/api/v1/imports", params=params, headers=headers,
                   body_file=a.file, read_timeout=server_wait + READ_TIMEOUT)
    if resp.status_code not in (200, 202):
        raise Failure("upload refused: %s" % problem_text(resp))
    info = json_of(resp, "upload")
    import_id = info["id"]
    log("import %s %s (Idempotency-Key %s)" % (import_id, info["state"], a.idempotency_key))

    pause = POLL_FIRST
    path = "/api/v1/imports/%s" % urllib.parse.quote(import_id, safe="")
    while info["state"] not in FINAL_STATES:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(pause, left))
        pause = min(pause * 1.5, POLL_MAX)
        resp = gw.call("status poll", "GET", path)
        if resp.status_code != 200:
            raise Failure("import %s: status poll refused: %s" % (import_id, problem_text(resp)))
        info = json_of(resp, "status poll")

    state = info["state"]
    print_row_errors(gw, info)
    print("import %s %s%s: %s" % (import_id, state, " (dry run)" if info.get("dry_run") else "",
                                  counts_line(info)))
    sys.stdout.flush()
    if state not in FINAL_STATES:
        log("import %s is still %s after %d s; it goes on in the gateway (GET %s)"
            % (import_id, state, a.wait, path))
        return EXIT_FAILED
    err = info.get("error")
    if err:
        log("import %s %s: %s (%s)" % (import_id, state, err.get("message"), err.get("code")))
    if state == "succeeded":
        return EXIT_OK
    if state == "succeeded_with_errors":
        return EXIT_ROW_ERRORS
    if state == "rejected":
        log("fix the cause and send the file again with a new Idempotency-Key "
            "(this one keeps answering with the rejected import)")
    return EXIT_FAILED


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(a, os.environ)
    except Failure as e:
        log(str(e))
        return EXIT_FAILED
    except KeyboardInterrupt:
        log("interrupted")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

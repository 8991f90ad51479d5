#!/usr/bin/env python3
"""A OnePipe pipeline worker in Python, with only the standard library.

It speaks the HTTP protocol of docs/protocol/workers.md: bootstrap, long-poll
pull, lease renewal, ack, heartbeat, and shutdown on SIGTERM (running jobs get
ONEPIPE_STOP_TIMEOUT_MS to finish; the rest are handed back unrun: status released).

    ONEPIPE_WORKERS_URL=http://127.0.0.1:8081 ONEPIPE_API_KEY=op_... python3 worker.py
"""

import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone


class TerminalError(Exception):
    """Fails the stage for good: its retry policy is not used."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- handlers
# A handler takes (job, ctx) and returns a JSON value: the stage's output.
# job is the pulled job as a dict (input, upstream, context, attempt...).

def _text_of(job):
    """The text a stage works on: its own input's "text", else the first upstream output with one."""
    inp = job.get("input")
    if isinstance(inp, dict) and isinstance(inp.get("text"), str):
        return inp["text"]
    for up in (job.get("upstream") or {}).values():
        out = (up or {}).get("output")
        if isinstance(out, dict) and isinstance(out.get("text"), str):
            return out["text"]
    raise TerminalError("NO_TEXT", "no input.text and no upstream output with a text")


def upper(job, ctx):
    text = _text_of(job)
    ctx.log("info", "upper-casing", chars=len(text))
    return {"text": text.upper()}


def count(job, ctx):
    text = _text_of(job)
    words = len(text.split())
    ctx.set_context("words", words)
    return {"text": text, "words": words}


def join(job, ctx):
    parts = []
    for name in sorted((job.get("upstream") or {}).keys()):
        out = job["upstream"][name].get("output")
        parts.append("%s=%s" % (name, json.dumps(out, sort_keys=True, separators=(",", ":"))))
    sep = (job.get("input") or {}).get("separator", " | ") if isinstance(job.get("input"), dict) else " | "
    return {"joined": sep.join(parts), "stages": len(parts), "words": (job.get("context") or {}).get("words")}


HANDLERS = {"py.upper": upper, "py.count": count, "py.join": join}


# ---------------------------------------------------------------- protocol

def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clip(text, limit=8192):
    """The protocol takes messages of up to 8192 characters: cut longer ones rather than have the ack refused."""
    text = str(text).replace("\0", "\\u0000")
    return text if len(text) <= limit else text[: limit - 12] + "\u2026 (cut)"


def say(message, **fields):
    extra = (" " + json.dumps(fields, default=str)) if fields else ""
    print("onepipe-python-worker: %s%s" % (message, extra), flush=True)


class Refused(Exception):
    """The control plane refused the credentials: no retry can fix that."""


class Client:
    def __init__(self, url, api_key):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.token = None
        self.lock = threading.Lock()

    def call(self, path, body, timeout=15.0, use_key=False):
        """POSTs JSON; returns (status, parsed body or None). Raises OSError when unreachable."""
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.token and not use_key:
            headers["authorization"] = "Bearer " + self.token
        else:
            headers["x-api-key"] = self.api_key
        data = json.dumps(body, allow_nan=False).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                return res.status, _parse(res.read())
        except urllib.error.HTTPError as e:
            return e.code, _parse(e.read())


def _parse(raw):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:300]


class Job:
    def __init__(self, wire):
        self.wire = wire
        self.id = wire["executionId"]
        self.logs = []
        self.context = {}
        self.cancelled = threading.Event()
        self.over = False  # the control plane said the attempt is over, or shutdown acked it

    # the ctx a handler sees
    def log(self, level, message, **fields):
        entry = {"level": level, "message": clip(message), "at": now_iso()}
        if fields:
            entry["fields"] = fields
        self.logs.append(entry)

    def set_context(self, key, value):
        json.dumps(value, allow_nan=False)  # the value rule: refuse now, where the caller is
        self.context[key] = value


class Worker:
    def __init__(self, url, api_key, name, concurrency, stop_timeout_ms):
        self.client = Client(url, api_key)
        self.name = name
        self.concurrency = concurrency
        self.stop_timeout_ms = stop_timeout_ms
        self.session = None
        self.in_flight = {}
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.drain = False
        self.failed = None

    # -- session
    def bootstrap(self):
        body = {"name": self.name, "handlers": sorted(HANDLERS), "concurrency": self.concurrency,
                "version": "python-example-1", "host": socket.gethostname()}
        status, res = self.client.call("/workers/bootstrap", body, use_key=True)
        if status in (401, 403):
            raise Refused("bootstrap answered %d: %s" % (status, res))
        if status == 404:
            # A wrong address, not an outage: most often the app's own port instead of the worker API's.
            raise Refused("%s has no /workers/bootstrap: point ONEPIPE_WORKERS_URL at the control plane's worker API "
                          "(ONEPIPE_WORKERS_PORT, default 8081), not the app's port" % self.client.url)
        if status not in (200, 201):
            raise OSError("bootstrap answered %d: %s" % (status, res))
        self.session = res
        self.client.token = res["sessionToken"]

    def post(self, path, body, timeout=15.0):
        """A call with the session; a 401 (session ended) bootstraps again once and repeats it."""
        token = self.client.token
        status, res = self.client.call(path, body, timeout)
        if status != 401 or self.failed:
            return status, res
        with self.client.lock:
            if self.client.token == token:
                try:
                    self.bootstrap()
                    say("session ended; bootstrapped again", workerId=self.session["workerId"])
                except Refused as e:
                    self.fail(e)
                    return status, res
        body = dict(body, workerId=self.session["workerId"]) if "workerId" in body else body
        return self.client.call(path, body, timeout)

    def fail(self, err):
        self.failed = err
        say("stopping: the control plane refused the API key: %s" % err)
        self.stopping.set()

    # -- jobs
    def pull_loop(self):
        failures = 0
        # At most 10 s: a pull parked when the worker stops is waited for (see shutdown), so this bounds a stop.
        wait_ms = min(int(self.session.get("maxWaitMs", 30000)), 10000)
        while not self.stopping.is_set():
            with self.cond:
                while not self.stopping.is_set() and (self.drain or len(self.in_flight) >= self.concurrency):
                    self.cond.wait(1.0)
                free = self.concurrency - len(self.in_flight)
            if self.stopping.is_set():
                return
            body = {"workerId": self.session["workerId"], "handlers": sorted(HANDLERS), "max": min(free, 100), "waitMs": wait_ms}
            try:
                status, res = self.post("/jobs/pull", body, timeout=wait_ms / 1000.0 + 15)
            except OSError as e:
                failures += 1
                say("pull failed; trying again", error=str(e))
                self.stopping.wait(min(5.0, 0.1 * 2 ** failures))
                continue
            if status == 200:
                failures = 0
                for wire in res.get("jobs", []):
                    self.start_job(wire)
            elif status == 204:
                failures = 0
            elif status in (401, 403):
                return self.fail("pull answered %d: %s" % (status, res))
            else:
                failures += 1
                say("pull refused; trying again", status=status, error=res)
                self.stopping.wait(min(5.0, 0.1 * 2 ** failures))

    def start_job(self, wire):
        job = Job(wire)
        with self.cond:
            self.in_flight[job.id] = job
        if self.stopping.is_set():
            # Pulled while stopping: hand it back now rather than after its lease.
            return self.finish(job, {"executionId": job.id, "status": "released"})
        threading.Thread(target=self.run_job, args=(job,), daemon=True).start()

    def run_job(self, job):
        handler = HANDLERS.get(job.wire["handler"])
        try:
            if handler is None:
                raise TerminalError("WORKER_NO_HANDLER", "no handler %s" % job.wire["handler"])
            output = handler(job.wire, job)
            json.dumps(output, allow_nan=False)  # a value JSON cannot carry is the handler's bug: fail for good
            ack = {"executionId": job.id, "status": "completed", "output": output}
        except TerminalError as e:
            ack = self.failed_ack(job, str(e), e.code, False, "TerminalError")
        except (ValueError, TypeError) as e:
            ack = self.failed_ack(job, "output is not JSON: %s" % e, "INVALID_OUTPUT", False)
        except Exception as e:  # any other failure: the stage's retry policy decides
            ack = self.failed_ack(job, str(e), getattr(e, "code", None), True, type(e).__name__)
        self.finish(job, ack)

    def failed_ack(self, job, message, code, retryable, name="Error"):
        error = {"message": clip(message), "name": clip(name, 128), "retryable": retryable}
        if isinstance(code, str):
            error["code"] = clip(code, 128)
        return {"executionId": job.id, "status": "failed", "error": error}

    def finish(self, job, ack):
        with self.cond:
            if job.over or self.in_flight.get(job.id) is not job:
                return
            job.over = True
            del self.in_flight[job.id]
            self.cond.notify_all()
        if job.logs:
            ack["logs"] = job.logs
        if job.context:
            ack["context"] = job.context
        try:
            status, res = self.post("/jobs/ack", ack, timeout=30)
        except OSError as e:
            return say("ack failed; the stage comes back when its lease runs out", executionId=job.id, error=str(e))
        if status == 409:
            return  # the attempt is over (lease lost, timed out, cancelled): nothing to do
        if status >= 300:
            say("ack refused", executionId=job.id, status=status, error=res)

    # -- background: leases and heartbeats
    def renew_loop(self):
        lease_ms = int(self.session.get("leaseMs", 30000))
        while not self.stopping.wait(max(0.05, lease_ms / 3000.0)):
            with self.cond:
                jobs = list(self.in_flight.values())
            for job in jobs:
                try:
                    status, res = self.post("/jobs/lease/renew", {"executionId": job.id})
                except OSError as e:
                    say("lease renewal failed; trying again", executionId=job.id, error=str(e))
                    continue
                if status in (404, 409):
                    job.over = True  # its result must not be sent; the handler may look at ctx.cancelled
                    job.cancelled.set()
                    with self.cond:
                        self.in_flight.pop(job.id, None)
                        self.cond.notify_all()

    def heartbeat_loop(self):
        every = int(self.session.get("heartbeatMs", 10000)) / 1000.0
        cpu_before, at_before = time.process_time(), time.monotonic()
        while not self.stopping.wait(every):
            cpu, at = time.process_time(), time.monotonic()
            body = {"workerId": self.session["workerId"], "inFlight": len(self.in_flight),
                    "cpu": round((cpu - cpu_before) / max(at - at_before, 1e-6), 3)}
            cpu_before, at_before = cpu, at
            try:
                status, res = self.post("/workers/heartbeat", body)
            except OSError as e:
                say("heartbeat failed", error=str(e))
                continue
            if status == 200 and isinstance(res, dict):
                drain = res.get("drain") is True
                if drain != self.drain:
                    say("drain requested: no more pulls" if drain else "drain lifted")
                with self.cond:
                    self.drain = drain
                    self.cond.notify_all()

    # -- life
    def run(self):
        failures = 0
        while True:
            try:
                self.bootstrap()
                break
            except OSError as e:  # not up yet, or restarting: keep trying until stopped
                failures += 1
                say("control plane not reachable; trying again", url=self.client.url, error=str(e))
                if self.stopping.wait(min(5.0, 0.1 * 2 ** failures)):
                    return 0
        say("started", workerId=self.session["workerId"], handlers=sorted(HANDLERS), concurrency=self.concurrency)
        self.puller = threading.Thread(target=self.pull_loop, daemon=True)
        self.puller.start()
        for loop in (self.renew_loop, self.heartbeat_loop):
            threading.Thread(target=loop, daemon=True).start()
        # The main thread only waits, so that SIGTERM's handler runs at once even while a pull is parked.
        while not self.stopping.wait(0.5):
            pass
        self.shutdown()
        return 1 if self.failed else 0

    def shutdown(self):
        end = time.monotonic() + self.stop_timeout_ms / 1000.0
        with self.cond:
            while self.in_flight and time.monotonic() < end:
                self.cond.wait(max(0.0, end - time.monotonic()))
            left = list(self.in_flight.values())
        for job in left:
            job.cancelled.set()
            self.finish(job, {"executionId": job.id, "status": "released"})
        # A pull still parked may be handed a job now (even one just released): wait for it to answer,
        # so start_job releases what it brings instead of the process leaving it to its lease.
        if getattr(self, "puller", None) is not None:
            self.puller.join(timeout=12.0)
        if self.session and not self.failed:
            try:
                self.client.call("/workers/shutdown", {"workerId": self.session["workerId"], "reason": "SIGTERM"})
            except OSError as e:
                say("shutdown call failed", error=str(e))
        say("stopped", handedBack=len(left))


def main():
    api_key = os.environ.get("ONEPIPE_API_KEY")
    if not api_key:
        print("onepipe-python-worker: set ONEPIPE_API_KEY to an API key of the application", file=sys.stderr)
        return 2
    worker = Worker(
        url=os.environ.get("ONEPIPE_WORKERS_URL", "http://127.0.0.1:8081"),
        api_key=api_key,
        name=os.environ.get("ONEPIPE_WORKER_NAME", "python-example"),
        concurrency=int(os.environ.get("ONEPIPE_WORKER_CONCURRENCY", "4")),
        stop_timeout_ms=int(os.environ.get("ONEPIPE_STOP_TIMEOUT_MS", "30000")),
    )
    signal.signal(signal.SIGTERM, lambda *_: worker.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: worker.stopping.set())
    try:
        return worker.run()
    except Refused as e:
        print("onepipe-python-worker: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Soak: a fleet of real-time agents through restarts and a crash of `rmmsim serve`.

    cargo build --release && python3 scripts/soak.py [--agents 10000] [--out reports/soak]

What it does, on loopback only, bounded in time (it gives up after --deadline):

1. starts `rmmsim serve` on a fresh database and downloads folder, makes a
   client and a beta site, and starts `rmmsim swarm` with --agents machines on
   0.6.58 (heartbeat 10 s; the swarm reconnects lost agents by itself);
2. waits until every agent is online, then publishes 0.6.59 (beta) and rescans,
   so every machine is sent an update (download 20 s, install 30 s, restart 15 s
   in the swarm's agent model);
3. during the updates: a graceful restart (SIGTERM) 10 s after the publish
   (downloads in progress), a kill -9 when the fleet is back (installs in
   progress), and another graceful restart when it is back again (restarts
   and success reports in progress); each time it waits for every agent to
   be back online before going on;
4. once the fleet has converged, a third graceful restart, and a last hold;
5. checks: no agent row lost or duplicated (rows == agents, every device id
   the swarm enrolled is still there), no pending update lost (every machine
   ends on 0.6.59 and the rollout row of 0.6.59 counts a success for each,
   nothing left pending), every agent back online, and the server's resident
   memory (flat: at the end of the hold within 20 % of before the update).

It writes soak.json and soak.md to --out and exits 1 if a check fails.
The standard library only: it runs wherever the rmmsim binary does.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

TOKEN = "soak-admin-token"
OLD, NEW = "0.6.58", "0.6.59"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("authorization", f"Bearer {TOKEN}")
        if data is not None:
            req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def up(self):
        try:
            return self.call("GET", "/api/stats", timeout=5)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return None


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def log(msg, t0):
    print(f"[{time.monotonic() - t0:7.1f} s] {msg}", flush=True)


class Soak:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="rmmsim-soak-")
        self.port = free_port()
        self.api = Api(self.port)
        self.t0 = time.monotonic()
        self.serve = None
        self.swarm = None
        self.events = []
        self.pending_before = None
        self.samples = []

    def deadline_left(self):
        return self.args.deadline - (time.monotonic() - self.t0)

    def start_serve(self):
        out = open(os.path.join(self.dir, "serve.log"), "a")
        self.serve = subprocess.Popen(
            [self.args.bin, "serve", "--listen", f"127.0.0.1:{self.port}",
             "--db", os.path.join(self.dir, "soak.sqlite3"),
             "--downloads", os.path.join(self.dir, "downloads"),
             "--admin-token", TOKEN, "--log-level", "warn", "--rescan-every", "0s",
             # One site key enrols the whole fleet at once.
             "--max-enrolments-per-minute", "0"],
            stdout=out, stderr=out)
        for _ in range(300):
            if self.serve.poll() is not None:
                sys.exit(f"rmmsim serve exited with {self.serve.returncode}; see {self.dir}/serve.log")
            if self.api.up() is not None:
                return
            time.sleep(0.1)
        sys.exit("rmmsim serve did not answer within 30 s")

    def stop_serve(self, how):
        t = time.monotonic()
        if how == "kill -9":
            self.serve.kill()
        else:
            self.serve.send_signal(signal.SIGTERM)
        code = self.serve.wait(timeout=60)
        log(f"serve stopped ({how}), exit {code}, in {time.monotonic() - t:.1f} s", self.t0)
        return code

    def wait_online(self, what):
        t = time.monotonic()
        shown = t
        while self.deadline_left() > 0:
            stats = self.api.up()
            if stats and time.monotonic() - shown > 30:
                shown = time.monotonic()
                log(f"{what}: {stats['online']} online so far", self.t0)
            if stats and stats["online"] >= self.args.agents:
                secs = time.monotonic() - t
                log(f"{what}: {stats['online']} online, {stats['agent_rows']} rows, "
                    f"{stats['pending_updates']} pending, after {secs:.1f} s", self.t0)
                return secs, stats
            time.sleep(1)
        self.fail(f"{what}: not every agent came back before the deadline")

    def sample(self, label, settle=True):
        if settle:
            time.sleep(self.args.settle)
        stats = self.api.up() or {}
        rss = rss_bytes(self.serve.pid)
        self.samples.append({"label": label, "rss_bytes": rss, "online": stats.get("online"),
                             "agent_rows": stats.get("agent_rows"),
                             "pending_updates": stats.get("pending_updates")})
        log(f"{label}: server RSS {rss / 2**20:.1f} MiB", self.t0)

    def restart(self, how, label, settle=True):
        code = self.stop_serve(how)
        before = self.api.up()
        assert before is None, "the server still answers after it stopped"
        self.start_serve()
        secs, stats = self.wait_online(f"after {label}")
        self.events.append({"event": label, "how": how, "exit_code": code,
                            "pending_before": self.pending_before,
                            "all_back_after_s": round(secs, 1),
                            "rows": stats["agent_rows"], "pending": stats["pending_updates"]})
        self.sample(f"after {label}", settle)

    def fail(self, msg):
        log(f"FAILED: {msg}", self.t0)
        self.cleanup()
        sys.exit(1)

    def cleanup(self):
        for p in (self.swarm, self.serve):
            if p and p.poll() is None:
                p.kill()
                p.wait()

    def run(self):
        a = self.args
        log(f"folder {self.dir}, server 127.0.0.1:{self.port}", self.t0)
        self.start_serve()
        client = self.api.call("POST", "/api/clients", {"name": "soak"})
        site = self.api.call("POST", f"/api/clients/{client['id']}/sites",
                             {"name": "fleet", "channel": "beta"})
        swarm_log = open(os.path.join(self.dir, "swarm.log"), "w")
        self.swarm = subprocess.Popen(
            [a.bin, "swarm", "--server", f"ws://127.0.0.1:{self.port}", "--agents", str(a.agents),
             "--heartbeat", "10s", "--window", "30s", "--version", OLD],
            env={**os.environ, "RMMSIM_SITE_KEY": site["site_key"]},
            stdout=swarm_log, stderr=swarm_log)
        self.wait_online("fleet up")
        self.sample("steady before the update")
        enrolled = {r["device_id"] for r in self.api.call("GET", "/api/agents")}

        subprocess.run([a.bin, "publish", "--downloads", os.path.join(self.dir, "downloads"),
                        "--version", NEW, "--platform", "windows-amd64", "--size", "1MiB"],
                       check=True, stdout=subprocess.DEVNULL)
        self.api.call("POST", "/api/updates/rescan")
        published = time.monotonic()
        log(f"published {NEW}", self.t0)
        # Each event waits for the fleet to be back from the one before, so
        # the times are at the earliest: the point is that updates are in
        # flight at each (the "pending before" column says how many).
        for at, how, label in [(10, "SIGTERM", "restart 1 (downloads)"),
                               (40, "kill -9", "kill -9 (installs)"),
                               (70, "SIGTERM", "restart 2 (restarts and reports)")]:
            time.sleep(max(0.0, published + at - time.monotonic()))
            stats = self.api.up() or {}
            log(f"{label}: {stats.get('pending_updates')} pending before", self.t0)
            self.pending_before = stats.get("pending_updates")
            self.restart(how, label, settle=False)

        while self.deadline_left() > 0:
            rows = self.api.call("GET", "/api/agents")
            on_new = sum(1 for r in rows if r["version"] == NEW)
            if on_new >= a.agents and not any(r["pending_update"] for r in rows):
                break
            time.sleep(5)
        log("fleet converged", self.t0)
        self.pending_before = 0
        self.restart("SIGTERM", "restart 3 (converged)")
        time.sleep(a.hold)
        self.sample("end of hold")

        rows = self.api.call("GET", "/api/agents")
        rollouts = self.api.call("GET", "/api/updates/rollouts")["rollouts"]
        row = next((r for r in rollouts if r["version"] == NEW), {})
        stats = self.api.up()
        device_ids = [r["device_id"] for r in rows]
        rss = [s["rss_bytes"] for s in self.samples if s["rss_bytes"]]
        checks = {
            "no row lost or duplicated": len(rows) == a.agents and len(set(device_ids)) == a.agents
            and enrolled <= set(device_ids),
            "every machine on the new build": all(r["version"] == NEW for r in rows),
            "no pending update left": stats["pending_updates"] == 0
            and not any(r["pending_update"] for r in rows),
            "a success for every machine": row.get("successes", 0) >= a.agents,
            "every agent online": stats["online"] == a.agents,
            "server memory flat (end within 20 % of before the update)": bool(rss) and rss[-1] <= 1.2 * rss[0],
        }
        result = {"agents": a.agents, "events": self.events, "samples": self.samples,
                  "rollout": row, "checks": checks,
                  "duration_s": round(time.monotonic() - self.t0, 1)}
        self.cleanup()
        write(a.out, result)
        return all(checks.values())


def write(out, result):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "soak.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = [f"# Soak: {result['agents']} agents, {result['duration_s']} s", "",
             "| event | pending before | exit | all back after | rows | pending after |",
             "|---|---|---|---|---|---|"]
    for e in result["events"]:
        lines.append(f"| {e['event']} | {e['pending_before']} | {e['exit_code']} | "
                     f"{e['all_back_after_s']} s | {e['rows']} | {e['pending']} |")
    lines += ["", "| sample | server RSS |", "|---|---|"]
    for s in result["samples"]:
        lines.append(f"| {s['label']} | {s['rss_bytes'] / 2**20:.1f} MiB |")
    lines += ["", "| check | |", "|---|---|"]
    for name, ok in result["checks"].items():
        lines.append(f"| {name} | {'ok' if ok else 'FAILED'} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "soak.md"), "w") as f:
        f.write(text)
    print(text)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=10000)
    p.add_argument("--bin", default="target/release/rmmsim")
    p.add_argument("--out", default="reports/soak")
    p.add_argument("--settle", type=float, default=15.0, help="seconds before a memory sample")
    p.add_argument("--hold", type=float, default=60.0, help="seconds of the last hold")
    p.add_argument("--deadline", type=float, default=1200.0, help="give up after this many seconds")
    args = p.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"{args.bin} not found: run `cargo build --release` first (or give --bin)")
    soak = Soak(args)
    try:
        ok = soak.run()
    finally:
        soak.cleanup()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

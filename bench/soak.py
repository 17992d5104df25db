"""``make soak``: a seeded chaos soak of rotation in the deployed timeline. Not a test and not part of the suite:
a benchmark-like run that prints what it saw and exits non-zero when a target is missed.

    python -m bench.soak [--seed N] [--duration S] [--pairs N] [--lifetime S] [--rate S] [--json]

One process plays AWS (moto server, the run guard's table), Slack (the fake, enforcing 600 ``oauth.v2.access`` a
minute, with a 60 s grace period for a used refresh token) and the scheduler. Every RotateFunction run is a real
process, started the way Lambda would start it:

* **the schedule** every ``--rate`` seconds; **overlapping runs** (manual invokes, a second schedule) at random,
  some of them ``{"secret_id": ...}``; a **retry 5-20 s after every run that died**, at most two, as Lambda's
  async retries would (deployed: about 60 s and 2 minutes later);
* **random SIGKILLs**: at a random step of the protocol (before the refresh, after Slack answered, after the
  store-first write, after the promote), or at a random moment from outside (mid-write, mid-guard, anywhere);
* **Slack faults**: 429 with a Retry-After, 5xx, answers lost after Slack acted;
* **AWS faults** in every run's own clients: throttled calls, and lost answers on every write, the run guard's
  own writes (take, renew, let go) included;
* **reinstalls** of random workspaces through the callback's write path.

Tokens live ``--lifetime`` seconds (480: a day of 12-hour tokens is 960 s here) and the rotation margin is 300 s,
the least the template allows. After ``--duration`` seconds the faults stop, the runs finish, and one clean sweep
runs. It then reports:

* **lost pairs**: marked ``needs_reinstall`` at any moment, or at the end not holding a refresh token Slack still
  accepts and has not used;
* **access tokens that expired while current** (seen every 0.5 s from the listing's version ids);
* **the longest blocked stretch**: the longest time the run guard stayed claimed by a run that had already died
  (or ended without letting go), i.e. while no run could work.

Targets: 0 lost, 0 expired, longest blocked stretch under 30 s. A failure prints the seed to replay it with.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.world import World, summary_of

STEPS = ["before_refresh", "after_refresh", "after_store", "after_promote"]
GRACE = 60.0  # the most this package assumes of Slack's "short" grace period for a used refresh token
BLOCKED_TARGET = 30.0


@dataclass
class Run:
    id: str
    kind: str  # schedule, overlap, retry, final
    started: float
    process: subprocess.Popen[bytes]
    out: Any
    secret_id: str | None = None
    kill_after: float | None = None  # an external SIGKILL this many seconds after start
    retries_left: int = 2
    ended: float | None = None
    killed: bool = False
    summary: dict[str, Any] | None = None


@dataclass
class Ledger:
    kills: Counter[str] = field(default_factory=Counter)
    slack_faults: Counter[str] = field(default_factory=Counter)
    aws_faults: Counter[str] = field(default_factory=Counter)
    runs: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # runs that raised out of the handler, by last line
    timeouts: list[str] = field(default_factory=list)  # runs still going at their timeout, with their last output
    reinstalls: int = 0
    reinstalls_refused: int = 0
    marked_reinstall: set[str] = field(default_factory=set)
    expired: set[tuple[str, int]] = field(default_factory=set)
    guard_samples: list[tuple[float, str, float]] = field(default_factory=list)  # (time, holder, expires_at)


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.ledger = Ledger()
        self.runs: list[Run] = []
        self.pending_retries: list[tuple[float, Run]] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="soak-")
        self._stop_monitor = threading.Event()
        self._counter = 0

    # -- the world -------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.world = World(lifetime=self.args.lifetime, grace=GRACE, latency=(0.01, 0.08)).start()
        self.names = [self.world.install(f"T{i:05d}") for i in range(self.args.pairs)]
        threading.Thread(target=self._monitor, name="soak-monitor", daemon=True).start()

    @property
    def outputs(self) -> Path:
        """The folder holding each run's output (``<run id>.out``), removed by ``stop``."""
        return Path(self._tmp.name)

    def stop(self) -> None:
        self._stop_monitor.set()
        for run in self.runs:
            if run.process.poll() is None:
                run.process.kill()
        self.world.stop()
        self._tmp.cleanup()

    @staticmethod
    def _timeout(kind: str) -> int:
        return 300 if kind == "final" else 120

    def reinstall(self) -> None:
        from slack_tokens.errors import SlackApiError

        try:
            self.world.install(self.rng.choice(self.names).split("/")[-2])
        except SlackApiError:  # it met one of the Slack faults meant for the rotator: the user would try again
            self.ledger.reinstalls_refused += 1
        else:
            self.ledger.reinstalls += 1

    # -- runs ------------------------------------------------------------------------------------------------

    def launch(
        self, kind: str, *, secret_id: str | None = None, chaos: bool = True, retry_of: Run | None = None
    ) -> Run:
        self._counter += 1
        run_id = f"{kind}-{self._counter:04d}"
        args = ["--request-id", run_id, "--timeout", str(self._timeout(kind))]
        if secret_id:
            args += ["--secret-id", secret_id]
        if chaos:
            args += ["--chaos", f"{self.rng.randrange(1 << 30)}:0.02:0.04"]
        kill_after = None
        if chaos and self.rng.random() < self.args.kill_rate:
            if self.rng.random() < 0.6:
                step = self.rng.choice(STEPS)
                args += ["--kill-at", step, "--nth", str(self.rng.randint(1, 3))]
            else:
                kill_after = self.rng.uniform(0.3, 4.0)
        out = (Path(self._tmp.name) / f"{run_id}.out").open("wb")
        process = self.world.rotator(*args, out=out)
        run = Run(run_id, kind, time.time(), process, out, secret_id=secret_id, kill_after=kill_after)
        if retry_of is not None:
            run.retries_left = retry_of.retries_left - 1
        self.runs.append(run)
        self.ledger.runs[kind] += 1
        return run

    def reap(self, now: float) -> None:
        for run in self.runs:
            if run.ended is not None:
                continue
            self._end_if_overdue(run, now)
            code = run.process.poll()
            if code is not None:
                self._ended(run, code, now)

    def _end_if_overdue(self, run: Run, now: float) -> None:
        """Kill a run whose chaos kill is due, or one past its function's timeout (Lambda ends it: retried)."""
        if run.process.poll() is not None:
            return
        if run.kill_after is not None and now - run.started >= run.kill_after:
            run.process.kill()
            self.ledger.kills["external"] += 1
        elif now - run.started > self._timeout(run.kind) + 5:
            run.process.kill()  # Lambda ends an invocation at its timeout: a function error, retried
            run.kill_after = -1.0
            self.ledger.timeouts.append(f"{run.id}: " + Path(run.out.name).read_text(errors="replace")[-600:])

    def _ended(self, run: Run, code: int, now: float) -> None:
        run.ended = now
        run.out.close()
        text = Path(run.out.name).read_text(errors="replace")
        if code == 0:
            run.summary = summary_of(text.encode())
            for fault in run.summary.get("chaos", []):
                self.ledger.aws_faults[fault.split(":", 1)[1]] += 1
            return
        # A crash, or an error raised out of the handler: both are function errors to Lambda.
        if code == -signal.SIGKILL:
            run.killed = True
            if run.kill_after is None:
                self.ledger.kills["at_step"] += 1
        else:
            self.ledger.errors[text.strip().splitlines()[-1][:160]] += 1
        if run.retries_left > 0:  # Lambda's async retry of a function error
            self.pending_retries.append((now + self.rng.uniform(5, 20), run))

    # -- chaos -----------------------------------------------------------------------------------------------

    def slack_fault(self) -> None:
        kind = self.rng.choices(["429", "5xx", "lost"], weights=[3, 3, 4])[0]
        if kind == "429":
            self.world.slack.fail_next("oauth.v2.access", status=429, retry_after=self.rng.choice([1, 2, 3, 5, 10]))
        elif kind == "5xx":
            self.world.slack.fail_next("oauth.v2.access", status=self.rng.choice([500, 502, 503]))
        else:
            self.world.slack.fail_next("oauth.v2.access", drop_after_processing=True)
        self.ledger.slack_faults[kind] += 1

    def loop(self) -> None:
        started = time.time()
        next_sweep = started
        next_overlap = started + self.rng.expovariate(1 / self.args.overlap_every)
        next_reinstall = started + self.rng.uniform(10, 30)
        next_slack_fault = started + self.rng.uniform(1, 4)
        while (now := time.time()) < started + self.args.duration:
            if now >= next_sweep:
                self.launch("schedule")
                next_sweep += self.args.rate
            if now >= next_overlap:
                forced = self.rng.random() < 0.3
                self.launch("overlap", secret_id=self.rng.choice(self.names) if forced else None)
                next_overlap = now + self.rng.expovariate(1 / self.args.overlap_every)
            if now >= next_reinstall:
                self.reinstall()
                next_reinstall = now + self.rng.uniform(10, 30)
            if now >= next_slack_fault:
                self.slack_fault()
                next_slack_fault = now + self.rng.uniform(1, 4)
            for due_at, original in [r for r in self.pending_retries if r[0] <= now]:
                self.pending_retries.remove((due_at, original))
                self.launch("retry", secret_id=original.secret_id, retry_of=original)
            self.reap(now)
            time.sleep(0.1)

    def drain(self) -> None:
        """Faults stop; pending retries run; every run ends; then one clean sweep."""
        while self.pending_retries or any(r.ended is None for r in self.runs):
            now = time.time()
            for due_at, original in [r for r in self.pending_retries if r[0] <= now]:
                self.pending_retries.remove((due_at, original))
                self.launch("retry", secret_id=original.secret_id, retry_of=original)
            self.reap(now)
            time.sleep(0.1)
        final = self.launch("final", chaos=False)
        while final.ended is None:
            self.reap(time.time())
            time.sleep(0.1)

    # -- watching --------------------------------------------------------------------------------------------

    def _monitor(self) -> None:
        from slack_tokens.models import parse_version_id

        while not self._stop_monitor.wait(0.5):
            now = time.time()
            try:
                for meta in self.world.store.list_pairs():
                    current = meta.current
                    info = parse_version_id(current) if current else None
                    if info is None:
                        continue
                    if info.status != "active":
                        self.ledger.marked_reinstall.add(meta.name)
                    elif info.expires_at is not None and info.expires_at <= now:
                        self.ledger.expired.add((meta.name, info.expires_at))
                item = self.world.dynamodb.get_item(
                    TableName=self.world.guard_table, Key={"name": {"S": "rotation"}}, ConsistentRead=True
                ).get("Item", {})
            except Exception:  # noqa: S112 - the watcher must outlive a hiccup of the emulator; it looks again
                continue
            holder = item.get("holder", {}).get("S", "") if item.get("owner", {}).get("S") else ""
            expires_at = float(item.get("expires_at", {}).get("N", "0"))
            self.ledger.guard_samples.append((now, holder, expires_at))

    def blocked_stretches(self) -> list[float]:
        """How long, each time, the guard stayed claimed by a run that had already ended (killed, or gone without
        letting go): nobody could work meanwhile."""
        ended = {f"test-function/{r.id}": r.ended for r in self.runs if r.ended is not None}
        stretches: list[float] = []
        current: tuple[str, float, float] | None = None  # holder, first, last
        for at, holder, expires_at in self.ledger.guard_samples:
            dead = holder in ended and ended[holder] is not None and at > ended[holder] and expires_at > at
            if dead and current is not None and current[0] == holder:
                current = (holder, current[1], at)
            elif dead:
                if current is not None:
                    stretches.append(current[2] - current[1] + 0.5)
                current = (holder, max(at - 0.5, ended[holder] or at), at)
            elif current is not None:
                stretches.append(current[2] - current[1] + 0.5)
                current = None
        if current is not None:
            stretches.append(current[2] - current[1] + 0.5)
        return stretches

    def lost(self) -> list[str]:
        return sorted(self.ledger.marked_reinstall | {name for name in self.names if not self.world.healthy(name)})

    def story(self, name: str) -> list[str]:
        """What every run said about one pair (for a lost pair: how it was lost), oldest first."""
        lines: list[str] = []
        for run in self.runs:
            for line in Path(run.out.name).read_text(errors="replace").splitlines():
                if name in line and '"message"' in line:
                    record = json.loads(line)
                    extra = {k: v for k, v in record.items() if k in {"result", "reason", "slack_error", "error"}}
                    lines.append(f"{record['timestamp']} {run.id}{' (killed)' if run.killed else ''}: "
                                 f"{record['message']} {extra}")  # fmt: skip
            if run.killed and name in Path(run.out.name).read_text(errors="replace"):
                lines.append(f"{run.id} was killed")
        return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    parser.add_argument("--duration", type=float, default=960.0, help="seconds of chaos (960: a day of 12-h tokens)")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--lifetime", type=int, default=480, help="access token lifetime, seconds")
    parser.add_argument("--rate", type=float, default=30.0, help="seconds between scheduled sweeps")
    parser.add_argument("--overlap-every", type=float, default=20.0, help="mean seconds between overlapping runs")
    parser.add_argument("--kill-rate", type=float, default=0.3, help="share of runs that are killed")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid> prints where every thread is
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    print(f"soak: seed {args.seed}, {args.duration:.0f} s, {args.pairs} pairs of {args.lifetime} s tokens", flush=True)
    soak = Soak(args)
    started = time.time()
    soak.start()
    kept = Path("artifacts") / f"soak-{args.seed}"
    try:
        soak.loop()
        soak.drain()
        figures = report(soak, time.time() - started)
        ok = figures["lost"] == 0 and figures["expired_while_current"] == 0
        ok = ok and figures["longest_blocked_seconds"] < BLOCKED_TARGET
        if not ok:  # every run's whole output (logs and summary; never a token), to find out what happened
            shutil.copytree(soak.outputs, kept, dirs_exist_ok=True)
    finally:
        soak.stop()
    print(json.dumps(figures, indent=2) if args.json else render(figures), flush=True)
    if not ok:
        print(f"soak FAILED: replay with python -m bench.soak --seed {args.seed} --duration {args.duration:g}")
        print(f"every run's output is kept in {kept}/")
    return 0 if ok else 1


def report(soak: Soak, elapsed: float) -> dict[str, Any]:
    ledger = soak.ledger
    summaries = [r.summary for r in soak.runs if r.summary is not None]
    refreshes = [r for r in soak.world.slack.requests if r.form.get("grant_type") == "refresh_token"]
    stretches = soak.blocked_stretches()
    lost = soak.lost()
    return {
        "lost_pair_stories": {name: soak.story(name) for name in lost},
        "seed": soak.args.seed,
        "duration_seconds": round(elapsed),
        "pairs": soak.args.pairs,
        "token_lifetime_seconds": soak.args.lifetime,
        "runs": dict(ledger.runs),
        "runs_total": sum(ledger.runs.values()),
        "rotations": sum(s.get("rotated", 0) for s in summaries),
        "refresh_calls_at_slack": len(refreshes),
        "kills": dict(ledger.kills),
        "kills_total": sum(ledger.kills.values()),
        "runs_that_raised": dict(ledger.errors),
        "runs_at_their_timeout": ledger.timeouts,
        "slack_faults": dict(ledger.slack_faults),
        "aws_faults": dict(ledger.aws_faults),
        "faults_total": sum(ledger.slack_faults.values()) + sum(ledger.aws_faults.values()),
        "reinstalls": ledger.reinstalls,
        "reinstalls_refused_by_a_slack_fault": ledger.reinstalls_refused,
        "guard": dict(Counter(str(s.get("guard")) for s in summaries)),
        "lost": len(lost),
        "lost_pairs": lost,
        "expired_while_current": len(ledger.expired),
        "longest_blocked_seconds": round(max(stretches, default=0.0), 1),
        "blocked_stretches": len(stretches),
    }


def render(figures: dict[str, Any]) -> str:
    lines = ["", "Soak"]
    for key, value in figures.items():
        lines.append(f"  {key:26} {value}")
    verdicts = [
        ("lost pairs", figures["lost"] == 0, f"{figures['lost']} (target 0)"),
        ("expired while current", figures["expired_while_current"] == 0, f"{figures['expired_while_current']} (0)"),
        (
            "longest blocked stretch",
            figures["longest_blocked_seconds"] < BLOCKED_TARGET,
            f"{figures['longest_blocked_seconds']} s (target < {BLOCKED_TARGET:.0f} s)",
        ),
    ]
    lines += [f"  [{'PASS' if ok else 'FAIL'}] {name}: {text}" for name, ok, text in verdicts]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

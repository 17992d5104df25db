"""The run guard: one rotation or exchange run works at a time, and a dead run stops blocking within seconds.

The one module that speaks to DynamoDB (boto3). The guard is one item, ``{"name": "rotation"}``, in a table of its
own that only the rotator's and the exchange's roles can write (rotation and exchange share the item, so the two
never work at once):

==============  ====================================================================================================
``owner``        the holding run's random id; ``""`` when free
``holder``       who holds it, for operators (function name and request id)
``acquired_at``  when the holder took it (Unix seconds)
``expires_at``   when the claim ends unless renewed (Unix seconds); a live holder renews it every ``ttl / 3``
``rev``          a random token that changes with every write: the compare-and-swap handle for taking the guard
``in_flight``    the pairs a holder is refreshing: ``<secret name>#<version id it was refreshed from>`` each,
                 added before the refresh is sent, dropped once the pair is safe (see "Noted pairs")
``released_at``, ``last_summary``  what the last holder left when it let go (counts only, never a token)
==============  ====================================================================================================

A second item, ``{"name": "last_sweep"}``, is written at the end of every sweep, whether or not it needed the guard
(``record_sweep``): ``at`` (Unix seconds), ``holder`` (function and request id) and ``summary`` (the run summary's
JSON: counts, never a token). It is what ``slack-tokens status`` shows as the last sweep. It is an unconditional
``UpdateItem`` on its own key, so it never touches the guard item and needs no permission the rotator lacks.

**Taking it.** Read the item (strongly consistent) and judge it (``judge``, pure). Free, lapsed, or not a claim any
live run could have written (expiring further ahead than a holder ever sets, held longer than a Lambda invocation
can live, or malformed): write our claim on condition that ``rev`` is still what we read, so of two runs racing
exactly one wins. Held by a live-looking claim: watch it for up to ``wait`` seconds. A live holder renews within
``ttl / 3`` (the ``rev`` changes: give up, busy); a dead one does not, its claim lapses and we take it.

**Holding it.** A heartbeat thread renews the claim every ``ttl / 3`` on condition that we still own it. ``check()``
is the fence: true only while a renewal confirmed the claim recently; when the last confirmation is old (the process
was paused, or DynamoDB is slow) it renews synchronously first. A run paused past its claim finds, on waking, that
another run took over: its renewal fails and ``check()`` stays false for good.

**Letting go.** Clear the owner, on condition that we still own it, and leave the run's summary.

**Noted pairs.** A run notes each pair on the claim (a conditional ``ADD``, which is the fence too) right before it
sends the refresh, with the version the refresh is made from. Once the pair is safe (stored, or never refreshed) the
note is dropped at the next renewal or when the run lets go. A note still there means a run stopped (killed, or
Slack may have acted on a refresh whose answer was lost) between using a refresh token and storing what it got for
it; the used token works only for Slack's short grace period. Whoever holds the guard next, by take-over or after a
normal release, gets the notes (``Hold.inherited``) and refreshes each noted pair whose current version is still
the noted one first, due or not. A note whose pair has moved on since is stale and simply dropped.

**When DynamoDB cannot be reached** (or the table is missing, or access is denied) the guard reports
``UNAVAILABLE``: rotation goes on under the functions' reserved concurrency alone, because a lost guard must never
stop rotation (every token would expire). A claim whose answer was lost is released anyway, or lapses in ``ttl``.

Costs per run with work to do: 2 calls to take it, one per refreshed pair (its note), one renewal every ``ttl / 3``,
one call to let go. A sweep with nothing due reads the item once, for notes left behind.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from slack_tokens.observability import Metric, logger

ROTATION = "rotation"  # the one guard item; rotation and exchange share it
LAST_SWEEP = "last_sweep"  # what the last sweep did (record_sweep); read by the operator's `slack-tokens status`
DEFAULT_TTL = 15.0
MIN_TTL, MAX_TTL = 5.0, 60.0
CLOCK_SKEW = 5.0  # seconds two Lambda hosts' clocks may disagree by (NTP keeps them far closer)
# Lambda ends every invocation at 15 minutes: a claim taken longer ago than this belongs to no live run.
LONGEST_RUN = 900.0 + 60.0
POLL = 1.0  # seconds between looks at a claim held by someone else

_CONDITION_FAILED = "ConditionalCheckFailedException"
_SEPARATOR = "#"  # never in a Secrets Manager name (letters, digits and /_+=.@- only)


def make_client() -> Any:
    """A DynamoDB client with bounded timeouts (worst case of one call: two attempts of 1 + 2 s and a backoff of at
    most 1 s, 7 s). Honours ``AWS_ENDPOINT_URL``."""
    config = Config(connect_timeout=1.0, read_timeout=2.0, retries={"mode": "standard", "total_max_attempts": 2})
    return boto3.client("dynamodb", config=config)


# --------------------------------------------------------------------------------------------------------------
# Pure decisions
# --------------------------------------------------------------------------------------------------------------


class GuardState(StrEnum):
    """What a run knows about the guard (the ``guard`` field of every run summary)."""

    NOT_NEEDED = "not_needed"  # nothing to do: the guard was not asked for
    ACQUIRED = "acquired"  # this run holds it
    TAKEN_OVER = "taken_over"  # this run holds it, after taking it from a claim no live run can hold (logged loudly)
    BUSY = "busy"  # a live run holds it: this run does nothing
    UNAVAILABLE = "unavailable"  # DynamoDB could not be used: this run works under reserved concurrency alone
    LOST = "lost"  # this run held it, then another run took over (it was paused or cut off): it stopped working

    @property
    def may_work(self) -> bool:
        return self in (GuardState.ACQUIRED, GuardState.TAKEN_OVER, GuardState.UNAVAILABLE)


class Verdict(StrEnum):
    """What a claim we read means to a run that wants the guard."""

    FREE = "free"
    MINE = "mine"  # our own claim (an earlier attempt whose answer was lost landed)
    HELD = "held"  # a claim a live run may hold
    LAPSED = "lapsed"  # its holder stopped renewing: it died, or was paused
    IMPLAUSIBLE = "implausible"  # it expires further ahead than any holder ever sets
    OVERDUE = "overdue"  # taken longer ago than any Lambda invocation lives
    MALFORMED = "malformed"  # not a claim this package writes

    @property
    def takeable(self) -> bool:
        return self is not Verdict.HELD

    @property
    def loud(self) -> bool:
        """A claim that no working guard leaves behind: taken over, and reported as an error."""
        return self in (Verdict.IMPLAUSIBLE, Verdict.OVERDUE, Verdict.MALFORMED)


class Noted(NamedTuple):
    """A pair noted on the claim: its secret name and the version its refresh was made from (``None``: unknown)."""

    name: str
    version: str | None

    @classmethod
    def parse(cls, entry: str) -> Noted:
        name, _, version = entry.partition(_SEPARATOR)
        return cls(name, version or None)

    @property
    def entry(self) -> str:
        return f"{self.name}{_SEPARATOR}{self.version}" if self.version else self.name


class Claim(NamedTuple):
    """The guard item as read; ``None`` fields where the item lacks (or garbles) them."""

    owner: str | None
    holder: str
    acquired_at: float | None
    expires_at: float | None
    rev: str | None
    in_flight: tuple[Noted, ...] = ()

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Claim:
        names = item.get("in_flight")
        entries = names.get("SS") if isinstance(names, Mapping) else None
        in_flight = (
            sorted(Noted.parse(e) for e in entries if isinstance(e, str) and e) if isinstance(entries, list) else []
        )
        return cls(
            owner=_string(item.get("owner")),
            holder=_string(item.get("holder")) or "",
            acquired_at=_number(item.get("acquired_at")),
            expires_at=_number(item.get("expires_at")),
            rev=_string(item.get("rev")),
            in_flight=tuple(in_flight),
        )


def judge(claim: Claim | None, me: str, now: float) -> Verdict:
    """What ``claim`` means for run ``me`` at ``now`` (Unix seconds)."""
    if claim is None or claim.owner == "":
        return Verdict.FREE
    if claim.owner is None or claim.expires_at is None or claim.acquired_at is None or claim.rev is None:
        return Verdict.MALFORMED
    if claim.owner == me:
        return Verdict.MINE
    return _by_age(claim.acquired_at, claim.expires_at, now)


def _by_age(acquired_at: float, expires_at: float, now: float) -> Verdict:
    if expires_at <= now:
        return Verdict.LAPSED
    if expires_at > now + MAX_TTL + CLOCK_SKEW:
        return Verdict.IMPLAUSIBLE
    if now - acquired_at > LONGEST_RUN:
        return Verdict.OVERDUE
    return Verdict.HELD


def _string(value: Any) -> str | None:
    return value["S"] if isinstance(value, Mapping) and isinstance(value.get("S"), str) else None


def _number(value: Any) -> float | None:
    if not isinstance(value, Mapping) or not isinstance(value.get("N"), str):
        return None
    try:
        number = float(value["N"])
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------------------------------------------
# The guard
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Hold:
    """One run's dealings with the guard, as its summary reports them."""

    state: GuardState = GuardState.NOT_NEEDED
    took_over: Verdict | None = None  # LAPSED / IMPLAUSIBLE / ... when this run took the guard from such a claim
    holder: str | None = None  # BUSY: who holds it
    held_for: float | None = None  # BUSY: how long that holder has held it, seconds
    waited: float = 0.0  # seconds this run spent taking the guard
    inherited: tuple[Noted, ...] = ()  # pairs noted on the claim by a run that stopped mid-refresh: do these first
    watched: bool = False  # it had to wait for someone else's claim (which then lapsed, or stayed: BUSY)
    _attempted: bool = field(default=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The guard's part of a run summary."""
        busy = self.state is GuardState.BUSY
        return {
            "guard": str(self.state),
            "guard_took_over": str(self.took_over) if self.took_over else None,
            "blocked_by": self.holder if busy else None,
            "blocked_seconds": round(self.held_for) if self.held_for is not None else None,
            "guard_waited_seconds": round(self.waited, 1),
        }

    def metrics(self, *, blocked_metric: str | None) -> list[Metric]:
        """``blocked_metric`` (0 or 1, every run that had work: the alarm watches its minimum) and the guard's
        problems (``RunGuardProblem``: a claim no working run writes was taken over, or DynamoDB could not be used;
        ``RunGuardLapsed``: a dead run's claim was taken after it lapsed, where the crash itself is the news)."""
        found: list[Metric] = []
        if blocked_metric is not None and self.state is not GuardState.NOT_NEEDED:
            found.append(Metric(blocked_metric, 1 if self.state is GuardState.BUSY else 0))
        if self.took_over is not None:
            loud = self.took_over.loud
            found.append(
                Metric("RunGuardProblem", reason=f"taken_over_{self.took_over}") if loud else Metric("RunGuardLapsed")
            )
        if self.state is GuardState.UNAVAILABLE:
            found.append(Metric("RunGuardProblem", reason="unavailable"))
        return found


class _Unavailable(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class RunGuard:
    """The run guard item ``name`` in DynamoDB table ``table``. One instance serves one run at a time."""

    def __init__(
        self,
        client: Callable[[], Any],
        table: str,
        *,
        name: str = ROTATION,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not MIN_TTL <= ttl <= MAX_TTL:
            raise ValueError(f"the guard's ttl must be from {MIN_TTL:g} to {MAX_TTL:g} seconds")
        self._client_factory = client
        self._table = table
        self._name = name
        self.ttl = ttl
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._owner = ""
        self._confirmed_until = 0.0  # monotonic time until which the last renewal vouches for our claim
        self._state = GuardState.NOT_NEEDED
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._hold = Hold()  # the current run's, kept up to date (a guard lost mid-run shows in its summary)
        self._noted: dict[str, set[str]] = {}  # name -> its entries on the item: this run's notes, the inherited ones
        self._finished: set[str] = set()  # entries whose pairs are safe now, to drop from the item

    # -- the run's view ----------------------------------------------------------------------------------------

    @contextmanager
    def hold(self, holder: str, *, wait: float, summary: Callable[[], Mapping[str, Any]]) -> Iterator[Hold]:
        """Take the guard for the block (waiting up to ``wait`` seconds for a dead holder's claim to lapse), and
        let go of it afterwards, leaving ``summary()`` behind. The block checks ``Hold.state.may_work``."""
        hold = self.acquire(holder, wait=wait)
        try:
            yield hold
        finally:
            if hold._attempted:
                self.release(summary())

    def check(self) -> bool:
        """The fence, consulted before every call that could refresh or exchange a pair: may this run still work?"""
        with self._lock:
            state, confirmed_until = self._state, self._confirmed_until
        if state is GuardState.UNAVAILABLE:
            return True
        if not state.may_work:
            return False
        if self._monotonic() + self.ttl / 3 < confirmed_until:
            return True
        return self._renew()

    def note(self, name: str, version: str) -> bool:
        """Record on the claim, before its refresh is sent, that this run is refreshing ``name`` from ``version``:
        the next run to hold the guard does such pairs first, while their used refresh tokens still work. The write
        is conditional on owning the guard, so it is the fence too: False means stop (another run took over). When
        DynamoDB cannot be reached, the local check decides."""
        entry = Noted(name, version).entry
        with self._lock:
            state = self._state
            self._noted.setdefault(name, set()).add(entry)
            self._finished.discard(entry)
        if state is GuardState.UNAVAILABLE:
            return True
        if not state.may_work:
            return False
        names, values = _names("owner", "in_flight")
        values.update({":me": {"S": self._owner}, ":name": {"SS": [entry]}})
        try:
            self._update("ADD #in_flight :name", "#owner = :me", names, values)
        except _ConditionFailed:
            self._lose()
            return False
        except _Unavailable:
            return self.check()
        return True

    def done(self, name: str) -> None:
        """The pair ``name`` is safe now (stored, never refreshed, or moved on since a note was inherited): the
        next renewal, or letting go, drops its note."""
        with self._lock:
            self._finished.update(self._noted.pop(name, ()))

    def waiting(self) -> tuple[Noted, ...]:
        """The pairs noted on the guard by runs that stopped mid-refresh (one read; empty if DynamoDB fails)."""
        try:
            claim = self._read()
        except _Unavailable:
            return ()
        return claim.in_flight if claim is not None else ()

    def patience(self, time_left: float) -> float:
        """How long a run with ``time_left`` seconds to spare waits for someone else's claim: long enough for a
        dead holder's claim to lapse (its ttl), never longer than it can afford."""
        return max(0.0, min(self.ttl + 2.0, time_left))

    @property
    def state(self) -> GuardState:
        with self._lock:
            return self._state

    # -- taking and letting go ---------------------------------------------------------------------------------

    def acquire(self, holder: str, *, wait: float) -> Hold:
        hold = self._hold = Hold(_attempted=True)
        self._owner = os.urandom(16).hex()
        self._stop.clear()
        with self._lock:
            self._noted, self._finished = {}, set()
        started = self._monotonic()
        first_seen: Claim | None = None
        failures = 0
        while True:
            try:
                claim = self._read()
                now = self._clock()
                verdict = judge(claim, self._owner, now)
                if verdict.takeable and (verdict is Verdict.MINE or self._claim(claim, holder, now)):
                    return self._held(hold, verdict, claim, started)
            except _Unavailable as problem:
                # A write whose answer was lost may have landed: look again (the claim is then ours) before giving up.
                failures += 1
                if failures > 2:
                    return self._unavailable(hold, problem, started)
                self._sleep(0.2 * failures)
                continue
            if verdict.takeable:
                continue  # another run changed the item first: look again
            assert claim is not None and claim.expires_at is not None  # noqa: S101 - HELD implies both
            if first_seen is None:
                first_seen = claim
            elif claim.rev != first_seen.rev:
                return self._busy(hold, claim, now, started)  # it renewed: a live holder
            remaining = started + wait - self._monotonic()
            if remaining <= 0:
                return self._busy(hold, claim, now, started)
            hold.watched = True
            self._sleep(min(POLL, remaining, max(0.05, claim.expires_at - now + 0.05)))

    def release(self, summary: Mapping[str, Any] | None = None) -> None:
        """Let go (if this run still owns the guard) and leave the run's summary. Never raises."""
        if not self._owner:
            return
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=self.ttl)
            self._heartbeat = None
        with self._lock:
            self._state = GuardState.NOT_NEEDED
            finished = sorted(self._finished)
        update, names, values = self._letting_go(summary or {}, finished)
        for attempt in range(3):  # a claim left behind blocks the next run until it lapses: worth two more tries
            try:
                self._update(update, "#owner = :me", names, values)
            except _ConditionFailed:
                return  # not (or no longer) ours: another run took over, or an earlier try landed
            except _Unavailable as problem:
                if attempt == 2:
                    logger.warning(
                        "could not let go of the run guard; it lapses on its own", extra={"error": problem.error}
                    )
                    return
                self._sleep(0.2 * (attempt + 1))
            else:
                return

    def _letting_go(
        self, summary: Mapping[str, Any], finished: list[str]
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        """The update that frees the guard, leaves ``summary`` and drops the notes of pairs that are safe now."""
        names, values = _names("owner", "released_at", "rev", "last_summary", "expires_at")
        values.update(
            {
                ":free": {"S": ""},
                ":now": {"N": _epoch(self._clock())},
                ":rev": {"S": os.urandom(16).hex()},
                ":summary": {"S": json.dumps(dict(summary), separators=(",", ":"), sort_keys=True)},
                ":me": {"S": self._owner},
            }
        )
        update = "SET #owner = :free, #released_at = :now, #rev = :rev, #last_summary = :summary, #expires_at = :now"
        if finished:  # notes of pairs not safe yet stay, for the next holder
            names["#in_flight"], values[":finished"] = "in_flight", {"SS": finished}
            update += " DELETE #in_flight :finished"
        return update, names, values

    def record_sweep(self, summary: Mapping[str, Any], holder: str) -> None:
        """Leave the sweep's summary (counts, never a token) on the ``last_sweep`` item. Never raises: a sweep's
        work is done by now, and an operator's view is not worth failing it for."""
        try:
            self._client_factory().update_item(
                TableName=self._table,
                Key={"name": {"S": LAST_SWEEP}},
                UpdateExpression="SET #at = :at, #holder = :holder, #summary = :summary",
                ExpressionAttributeNames={"#at": "at", "#holder": "holder", "#summary": "summary"},
                ExpressionAttributeValues={
                    ":at": {"N": _epoch(self._clock())},
                    ":holder": {"S": holder[:200]},
                    ":summary": {"S": json.dumps(dict(summary), separators=(",", ":"), sort_keys=True)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("could not record the sweep's summary", extra={"error": _describe(exc)})

    # -- steps -------------------------------------------------------------------------------------------------

    def _held(self, hold: Hold, verdict: Verdict, claim: Claim | None, started: float) -> Hold:
        if verdict is Verdict.MINE and claim is not None and claim.expires_at is not None:
            # Our earlier attempt landed though its answer was lost: the item says how long it vouches for us.
            with self._lock:
                self._confirmed_until = self._monotonic() + min(self.ttl, claim.expires_at - self._clock())
        took_over = verdict if verdict not in (Verdict.FREE, Verdict.MINE) else None
        if claim is not None:  # notes left by a dead run, or by a finished one whose refresh Slack may have acted on
            hold.inherited = claim.in_flight
            with self._lock:
                for noted in claim.in_flight:
                    self._noted.setdefault(noted.name, set()).add(noted.entry)
        state = GuardState.TAKEN_OVER if took_over is not None and took_over.loud else GuardState.ACQUIRED
        if took_over is not None:
            log = logger.error if took_over.loud else logger.warning
            log(
                "took over the run guard from a claim no live run holds",
                extra={"verdict": str(took_over), "previous_holder": claim.holder if claim else None},
            )
        with self._lock:
            self._state = state
        hold.state, hold.took_over = state, took_over
        hold.waited = self._monotonic() - started
        self._heartbeat = threading.Thread(target=self._beat, name="run-guard-heartbeat", daemon=True)
        self._heartbeat.start()
        return hold

    def _unavailable(self, hold: Hold, problem: _Unavailable, started: float) -> Hold:
        logger.error(
            "the run guard is unavailable; going on under reserved concurrency alone",
            extra={"guard_table": self._table, "error": problem.error},
        )
        with self._lock:
            self._state = GuardState.UNAVAILABLE
        hold.state = GuardState.UNAVAILABLE
        hold.waited = self._monotonic() - started
        return hold

    def _busy(self, hold: Hold, claim: Claim, now: float, started: float) -> Hold:
        hold.state = GuardState.BUSY
        hold.holder = claim.holder
        hold.held_for = max(0.0, now - claim.acquired_at) if claim.acquired_at is not None else None
        hold.waited = self._monotonic() - started
        logger.info("another run holds the run guard; nothing to do", extra={"holder": claim.holder})
        return hold

    def _claim(self, seen: Claim | None, holder: str, now: float) -> bool:
        """Write our claim over ``seen`` (compare-and-swap on its ``rev``); False when another write came first."""
        names, values = _names("owner", "holder", "acquired_at", "expires_at", "renewed_at", "rev")
        sent = self._monotonic()
        values.update(
            {
                ":me": {"S": self._owner},
                ":holder": {"S": holder[:200]},
                ":now": {"N": _epoch(now)},
                ":expires": {"N": _epoch(now + self.ttl)},
                ":rev": {"S": os.urandom(16).hex()},
            }
        )
        update = (
            "SET #owner = :me, #holder = :holder, #acquired_at = :now, #expires_at = :expires, "
            "#renewed_at = :now, #rev = :rev"
        )
        if seen is not None and seen.rev is not None:
            values[":seen"] = {"S": seen.rev}
            condition = "#rev = :seen"
        else:  # no item yet, or one without a usable rev (malformed): whoever writes a rev first wins
            values[":string"] = {"S": "S"}
            condition = "NOT attribute_type(#rev, :string)"
        try:
            self._update(update, condition, names, values)
        except _ConditionFailed:
            return False
        with self._lock:
            self._confirmed_until = sent + self.ttl
        return True

    def _renew(self) -> bool:
        """Push our claim's expiry ahead (and drop the noted pairs that are safe now); False, and the guard lost
        for good, when another run owns it now."""
        names, values = _names("owner", "expires_at", "renewed_at", "rev")
        sent, now = self._monotonic(), self._clock()
        with self._lock:
            finished = sorted(self._finished)
        values.update(
            {
                ":me": {"S": self._owner},
                ":now": {"N": _epoch(now)},
                ":expires": {"N": _epoch(now + self.ttl)},
                ":rev": {"S": os.urandom(16).hex()},
            }
        )
        update = "SET #expires_at = :expires, #renewed_at = :now, #rev = :rev"
        if finished:  # (DynamoDB refuses an expression name or value that the expression does not use)
            names["#in_flight"], values[":finished"] = "in_flight", {"SS": finished}
            update += " DELETE #in_flight :finished"
        try:
            self._update(update, "#owner = :me", names, values)
        except _ConditionFailed:
            self._lose()
            return False
        except _Unavailable as problem:
            logger.warning("could not renew the run guard", extra={"error": problem.error})
            with self._lock:
                return self._state.may_work and self._monotonic() + self.ttl / 3 < self._confirmed_until
        with self._lock:
            self._confirmed_until = max(self._confirmed_until, sent + self.ttl)
            self._finished -= set(finished)
            return self._state.may_work

    def _lose(self) -> None:
        with self._lock:
            was, self._state = self._state, GuardState.LOST
            self._hold.state = GuardState.LOST
        if was.may_work:
            logger.warning("another run took over the run guard; this run stops starting new work")

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            with self._lock:
                if not self._state.may_work:
                    return
            self._renew()

    # -- DynamoDB ----------------------------------------------------------------------------------------------

    def _read(self) -> Claim | None:
        try:
            answer = self._client_factory().get_item(
                TableName=self._table, Key={"name": {"S": self._name}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise _Unavailable(_describe(exc)) from None
        item = answer.get("Item")
        return Claim.from_item(item) if item else None

    def _update(self, update: str, condition: str, names: dict[str, str], values: dict[str, Any]) -> None:
        try:
            self._client_factory().update_item(
                TableName=self._table,
                Key={"name": {"S": self._name}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == _CONDITION_FAILED:
                raise _ConditionFailed from None
            raise _Unavailable(_describe(exc)) from None
        except BotoCoreError as exc:
            raise _Unavailable(_describe(exc)) from None


class _ConditionFailed(Exception):
    pass


def _names(*attributes: str) -> tuple[dict[str, str], dict[str, Any]]:
    return {f"#{a}": a for a in attributes}, {}


def _epoch(seconds: float) -> str:
    return f"{seconds:.3f}"


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


__all__ = [
    "LAST_SWEEP",
    "ROTATION",
    "Claim",
    "GuardState",
    "Hold",
    "Noted",
    "RunGuard",
    "Verdict",
    "judge",
    "make_client",
]

"""The deployed world, played on 127.0.0.1 for the crash benchmarks: moto server with the run guard's table and the
app credentials secret, the fake Slack, workspaces installed through the callback's write path, and RotateFunction
runs as real processes (``sandbox.rotate_process``) configured as the template configures them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
MARGIN = 300  # the least RotationMarginSeconds the template allows
GUARD_TTL = 15  # the template's GUARD_TTL_SECONDS


class World:
    def __init__(self, *, lifetime: int, grace: float, latency: float | tuple[float, float] = 0.0) -> None:
        self.lifetime, self.grace, self.latency = lifetime, grace, latency

    def start(self) -> World:
        sys.path[:0] = [p for p in (str(ROOT / "layers" / "common"), str(ROOT)) if p not in sys.path]
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's request log
        from local.template import Template
        from sandbox.app import CLIENT_ID, CLIENT_SECRET, GUARD_TABLE, PREFIX
        from sandbox.aws import MotoServer, create_table
        from sandbox.fake_slack import FakeSlack
        from slack_tokens.slack_client import SlackClient
        from slack_tokens.store import TokenStore

        self.moto = MotoServer().start()
        self.moto.reset()  # moto keeps its state per process: a second World starts from an empty account
        self.sm = self.moto.client()
        self.dynamodb = self.moto.dynamodb()
        create_table(self.dynamodb, GUARD_TABLE, Template.load().resources["RunGuardTable"]["Properties"])
        credentials = json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        app_secret = self.sm.create_secret(Name="bench/app-credentials", SecretString=credentials)
        self.slack = FakeSlack(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            token_lifetime=self.lifetime,
            refresh_grace_seconds=self.grace,
            rate_limits={"oauth.v2.access": 600},
            latency=self.latency,
        ).start()
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in {"AWS_PROFILE", "POWERTOOLS_DEV"}},
            **self.moto.env(),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)]),
            "SLACK_APP_SECRET_ID": app_secret["ARN"],
            "TOKEN_SECRET_PREFIX": PREFIX,
            "SLACK_API_URL": self.slack.api_url,
            "ROTATION_MARGIN_SECONDS": str(MARGIN),
            "SLACK_REFRESH_PER_MINUTE": "590",
            "ROTATION_WORKERS": "8",
            "GUARD_TABLE_NAME": GUARD_TABLE,
            "GUARD_TTL_SECONDS": str(GUARD_TTL),
            "POWERTOOLS_METRICS_NAMESPACE": "SlackTokenLifecycleBench",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        self.guard_table = GUARD_TABLE
        self.store = TokenStore(self.sm, PREFIX)
        self._installer = SlackClient(self.slack.api_url)
        self._credentials = (CLIENT_ID, CLIENT_SECRET)
        return self

    def stop(self) -> None:
        self.slack.stop()
        self.moto.stop()

    def install(self, team: str) -> str:
        """A workspace installs (or reinstalls) the app: the callback's code exchange and store write."""
        self.slack.set_installation(team_id=team, team_name=f"Workspace {team}")
        code = self.slack.grant_code(scope="chat:write", user_scope="", redirect_uri=None)
        client_id, client_secret = self._credentials
        access = self._installer.exchange_code(
            client_id=client_id,
            client_secret=client_secret,
            code=code,
            redirect_uri=None,
            deadline=time.monotonic() + 20,
        )
        return self.store.save_installation(access.pairs()[0], deadline=time.monotonic() + 20).name

    def rotator(self, *args: str, out: IO[bytes] | int = subprocess.PIPE) -> subprocess.Popen[bytes]:
        """One RotateFunction run in its own process (``sandbox.rotate_process`` arguments)."""
        return subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "sandbox.rotate_process", *args],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def stored(self, name: str) -> dict[str, Any]:
        value = self.sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"]
        result: dict[str, Any] = json.loads(value)
        return result

    def healthy(self, name: str) -> bool:
        """The stored pair is active and holds a refresh token Slack accepts and has not used."""
        stored = self.stored(name)
        refresh = stored["refresh_token"]
        return (
            stored["status"] == "active"
            and self.slack.is_refresh_token_valid(refresh)
            and self.slack.refresh_count(refresh) == 0
            and self.slack.is_access_token_valid(stored["access_token"])
        )


def summary_of(output: bytes) -> dict[str, Any]:
    """The run summary: the last line a rotator process printed."""
    result: dict[str, Any] = json.loads(output.decode(errors="replace").strip().splitlines()[-1])
    return result

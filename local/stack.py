"""``LocalStack``: the deployed stack's pieces, played on 127.0.0.1 in this process.

| deployed (template.yaml)                          | local                                                    |
|---------------------------------------------------|----------------------------------------------------------|
| Secrets Manager, the template's secrets           | moto server; each ``AWS::SecretsManager::Secret`` created |
| API Gateway HTTP API (``HttpApi`` events)         | ``HttpApi``: payload 2.0 events, in-process invocations  |
| Lambda functions, the shared layer                | ``FunctionHost``: handlers, layers, environment, context |
| EventBridge Scheduler (``ScheduleV2`` events)     | ``Scheduler``, at ``rotate_every`` seconds if given      |
| slack.com                                         | the Slack sandbox (the tests' ``FakeSlack``), or Slack   |

Template parameters keep their defaults except the local ones: the Slack URLs (the sandbox), ``RedirectUri`` (this
machine), the app credentials (the sandbox's, or the real app's) and, in the sandbox, ``RotationMarginSeconds``
300 so that the sandbox's short-lived tokens fall due within minutes. ``Options.parameters`` overrides any of them.

moto keeps its state per process: LocalStacks started in one process share one Secrets Manager, so give each its
own ``TokenSecretPrefix`` (``Options(parameters=...)``) when several run at once.

Start it from a test with ``LocalStack(Options(port=0)).start()`` (and ``stop()``): ``install_url``, ``slack``
(the sandbox), ``aws`` (a boto3 Secrets Manager client on moto), ``store`` and ``invoke`` are there to drive it.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local import state
from local.console import Console
from local.http_api import HttpApi
from local.lambda_api import LambdaApi
from local.lambda_host import FunctionHost
from local.scheduler import Scheduler
from local.template import STACK_NAME, TEMPLATE_PATH, Function, Schedule, Template, TemplateError
from sandbox.aws import MotoServer, create_table, endpoint_env, secretsmanager_client
from sandbox.fake_slack import FakeSlack
from slack_tokens import entrypoints
from slack_tokens.store import TokenStore
from slack_tokens_cli.pairs import PairRow, pair_rows

SANDBOX_CLIENT_ID = "1111111111.2222222222"
SANDBOX_CLIENT_SECRET = "sandboxsecret0123456789abcdef"  # the sandbox's own made-up app; not a secret anywhere
SANDBOX_TOKEN_LIFETIME = 600
SANDBOX_ROTATE_EVERY = 60.0
SANDBOX_ROTATION_MARGIN = 300  # the lowest the template allows: tokens of 600 s fall due 150-300 s after issue
SANDBOX_RATE_LIMITS = {"oauth.v2.access": 600}  # Slack's per-app limit, shared by installs and rotation


@dataclass(frozen=True)
class Options:
    port: int = 3000  # the HTTP API's port on 127.0.0.1; 0: the OS picks one
    public_url: str | None = None  # the API's URL as the browser sees it; default http://localhost:<port>
    token_lifetime: int = SANDBOX_TOKEN_LIFETIME  # sandbox access tokens live this many seconds
    rotate_every: float | None = None  # seconds between schedule runs; None: 60 in the sandbox, else the template's
    slack_client_id: str | None = None  # both set: real Slack with this app instead of the sandbox
    slack_client_secret: str | None = field(default=None, repr=False)
    parameters: Mapping[str, str] = field(default_factory=dict)  # template parameter overrides
    serve_http: bool = True
    run_schedules: bool = True
    state_file: Path | None = None  # where to say how to reach this stack (make run: .local/stack.json)
    attach: Mapping[str, Any] | None = None  # the state of a running stack to use instead of starting one
    template_path: Path = TEMPLATE_PATH

    @property
    def real_slack(self) -> bool:
        return bool(self.slack_client_id and self.slack_client_secret)


class LocalStack:
    def __init__(self, options: Options | None = None, *, console: Console | None = None) -> None:
        self.options = options or Options()
        self.console = console
        self.moto: MotoServer | None = None
        self.slack: FakeSlack | None = None
        self.aws: Any = None
        self.template: Template | None = None
        self.host: FunctionHost | None = None
        self.api: HttpApi | None = None
        self.scheduler: Scheduler | None = None
        self.lambda_api: LambdaApi | None = None
        self.public_url = ""
        self.outputs: dict[str, str] = {}
        self._aws_environment: dict[str, str] = {}
        self._watcher: StoreWatcher | None = None
        self._started = False

    # -- lifecycle

    def start(self) -> LocalStack:
        if self._started:
            raise RuntimeError("LocalStack is already running")
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything that was started, newest first. Safe to call twice."""
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.lambda_api is not None:
            self.lambda_api.stop()
            self.lambda_api = None
        if self.host is not None:
            self.host.stop()
            self.host = None
        if self.slack is not None:
            self.slack.stop()
            self.slack = None
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        if self.options.state_file is not None:
            state.remove(self.options.state_file)
        self._started = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what a test or the commands use

    @property
    def install_url(self) -> str:
        return self.outputs["InstallUrl"]

    @property
    def redirect_url(self) -> str:
        return self.outputs["RedirectUrl"]

    @property
    def api_url(self) -> str:
        """Where the HTTP API listens (127.0.0.1); ``public_url`` is the same API as the browser reaches it."""
        if self.api is None:
            raise RuntimeError("the HTTP API is not running")
        return f"http://127.0.0.1:{self.api.port}"

    @property
    def functions(self) -> dict[str, Function]:
        if self.host is None:
            raise RuntimeError("LocalStack is not running")
        return self.host.functions

    @property
    def store(self) -> TokenStore:
        return TokenStore(self.aws, self._template().parameters["TokenSecretPrefix"])

    def pairs(self) -> list[PairRow]:
        return pair_rows(self.store.list_pairs(), self.store.prefix)

    def invoke(self, function: str, event: Any) -> Any:
        """Run one function once, as a direct invoke (or the HTTP API, or a schedule) would."""
        if self.host is None:
            raise RuntimeError("LocalStack is not running")
        try:
            return self.host.invoke(function, event)
        finally:
            if self._watcher is not None:
                self._watcher.check()

    def fire(self, schedule: Schedule) -> None:
        """One run of a schedule: invoke its function with its input and log a one-line summary."""
        started = time.monotonic()
        try:
            result = self.invoke(schedule.function, schedule.input)
        except Exception as exc:
            self._say("schedule", f"{schedule.event} -> {schedule.function} failed: {exc}", level="ERROR")
            return
        elapsed = (time.monotonic() - started) * 1000
        self._say("schedule", f"{schedule.event} -> {schedule.function}: {summary(result)} ({elapsed:.0f} ms)")

    # -- start-up

    def _template(self) -> Template:
        if self.template is None:
            raise RuntimeError("LocalStack is not running")
        return self.template

    def _start(self) -> None:
        options = self.options
        probe = Template.load(options.template_path)  # routes and outputs need no parameter values
        user_parameters = dict(options.parameters)
        if options.real_slack:
            user_parameters.setdefault("SlackClientId", str(options.slack_client_id))
            user_parameters.setdefault("SlackClientSecret", str(options.slack_client_secret))
        problems = probe.check_parameters(user_parameters)
        if problems:
            raise TemplateError("; ".join(problems))

        if options.serve_http:
            self.api = HttpApi(probe.routes(), self.invoke, port=options.port, console=self.console).bind()
        port = self.api.port if self.api is not None else options.port
        self.public_url = (options.public_url or f"http://localhost:{port}").rstrip("/")
        self.outputs = probe.api_outputs(self.public_url)

        parameters: dict[str, str] = {}
        if "RedirectUrl" in self.outputs:
            parameters["RedirectUri"] = self.outputs["RedirectUrl"]
        if options.attach is not None:
            parameters |= self._attach(options.attach)
        else:
            parameters |= self._start_backends()
        parameters |= user_parameters
        template = self._load(parameters)

        self.host = FunctionHost(
            template.functions(),
            aws_environment=self._aws_environment,
            console=self.console,
            on_environment_change=entrypoints.reset,
        ).start()
        self._watcher = StoreWatcher(self.store, self.console) if self.console is not None else None
        if self._watcher is not None:
            self._watcher.check(announce=False)
        jobs = self._schedule_jobs() if options.run_schedules and options.attach is None else []
        if self.api is not None:
            self.api.start()
        self._serve_lambda_api()
        self.scheduler = Scheduler(jobs, self.fire).start()
        if options.state_file is not None:
            state.write(options.state_file, self._state(template))

    def _serve_lambda_api(self) -> None:
        """Lambda's Invoke API for ``slack-tokens rotate`` / ``exchange`` (and ``aws lambda invoke``): ``make run``
        only (a stack that serves HTTP)."""
        if self.options.serve_http:
            self.lambda_api = LambdaApi(self.functions, self.invoke).start()

    def _load(self, parameters: Mapping[str, str]) -> Template:
        """The template with every parameter given, its resources bound to the running (or attached) backends."""
        options = self.options
        template = self.template = Template.load(options.template_path, parameters=parameters)
        if self.api is not None:
            self.api.use_routes(template.routes())  # with the parameters resolved (the callback's throttle)
        if options.attach is not None:
            for logical_id, physical_id in options.attach["resources"].items():
                template.bind(logical_id, physical_id)
        else:
            self._create_secrets(template)
            self._create_tables(template)
        return template

    def _start_backends(self) -> dict[str, str]:
        """Start moto (and the sandbox); the parameters that point the functions at them."""
        options = self.options
        self.moto = MotoServer().start()
        self.aws = self.moto.client()
        self._aws_environment = self.moto.env()
        if options.real_slack:
            return {}  # the template's defaults are Slack's own URLs
        self.slack = FakeSlack(
            client_id=SANDBOX_CLIENT_ID,
            client_secret=SANDBOX_CLIENT_SECRET,
            token_lifetime=options.token_lifetime,
            default_redirect_uri=self.outputs.get("RedirectUrl"),
            rate_limits=SANDBOX_RATE_LIMITS,
        ).start()
        return {
            "SlackApiUrl": self.slack.api_url,
            "SlackAuthorizeUrl": self.slack.authorize_url,
            "SlackClientId": SANDBOX_CLIENT_ID,
            "SlackClientSecret": SANDBOX_CLIENT_SECRET,
            "RotationMarginSeconds": str(SANDBOX_ROTATION_MARGIN),
        }

    def _attach(self, running: Mapping[str, Any]) -> dict[str, str]:
        """Use a running stack's moto and Slack (``.local/stack.json``) instead of starting new ones."""
        self.aws = secretsmanager_client(running["moto_url"])
        self._aws_environment = endpoint_env(running["moto_url"])
        return dict(running["parameters"])

    def _create_secrets(self, template: Template) -> None:
        """Each ``AWS::SecretsManager::Secret`` of the template, created in moto as CloudFormation would."""
        for logical_id, resource in template.resources_of_type("AWS::SecretsManager::Secret").items():
            properties = template.resolve(resource.get("Properties") or {})
            if "SecretString" in properties:
                value = str(properties["SecretString"])
            else:
                value = _generate(properties.get("GenerateSecretString") or {})
            created = self.aws.create_secret(
                # as CloudFormation names them: stack, logical id, a random suffix (no '/', so never under the prefix)
                Name=properties.get("Name") or f"{STACK_NAME}-{logical_id}-{secrets.token_hex(4).upper()}",
                Description=str(properties.get("Description", "")),
                SecretString=value,
            )
            template.bind(logical_id, created["ARN"])  # Ref of a secret is its ARN

    def _create_tables(self, template: Template) -> None:
        """Each ``AWS::DynamoDB::Table`` of the template (the run guard), created in moto as CloudFormation would."""
        assert self.moto is not None  # noqa: S101 - only called when this stack started moto
        dynamodb = self.moto.dynamodb()
        for logical_id, resource in template.resources_of_type("AWS::DynamoDB::Table").items():
            properties = template.resolve(resource.get("Properties") or {})
            name = f"{STACK_NAME}-{logical_id}-{secrets.token_hex(4).upper()}"
            template.bind(logical_id, create_table(dynamodb, name, properties))  # Ref of a table is its name

    def _schedule_jobs(self) -> list[tuple[Schedule, float]]:
        every = self.options.rotate_every
        if every is None and self.slack is not None:
            every = SANDBOX_ROTATE_EVERY
        jobs: list[tuple[Schedule, float]] = []
        for function in self.functions.values():
            for schedule in function.schedules:
                if not schedule.enabled:
                    continue
                period = every if every is not None else schedule.interval_seconds
                if period is None:
                    self._say("schedule", f"{schedule.event}: {schedule.expression} is not a rate; set ROTATE_EVERY")
                    continue
                jobs.append((schedule, period))
        return jobs

    def _state(self, template: Template) -> dict[str, Any]:
        hidden = template.no_echo_parameters()
        local = {"SlackApiUrl", "SlackAuthorizeUrl", "RedirectUri", "RotationMarginSeconds"}
        return {
            "started_at": int(time.time()),
            "moto_url": self.moto.url if self.moto is not None else None,
            "api_url": self.api_url if self.api is not None else None,
            "public_url": self.public_url,
            "install_url": self.outputs.get("InstallUrl"),
            "sandbox_url": self.slack.base_url if self.slack is not None else None,
            "lambda_url": self.lambda_api.url if self.lambda_api is not None else None,
            "functions": {logical_id: logical_id for logical_id in self.functions},  # FunctionName = logical id here
            "rotate_every": self._sweep_period(),
            "token_prefix": template.parameters["TokenSecretPrefix"],
            "parameters": {
                k: v
                for k, v in template.parameters.items()
                if k not in hidden and (k in local or k in self.options.parameters)
            },
            "resources": dict(template.bound()),
        }

    def _sweep_period(self) -> float | None:
        jobs = self.scheduler.jobs if self.scheduler is not None else []
        return next((period for schedule, period in jobs if schedule.function == "RotateFunction"), None)

    def _say(self, component: str, text: str, *, level: str = "INFO") -> None:
        if self.console is not None:
            self.console.line(component, text, level=level)


class StoreWatcher:
    """Tells, after each invocation, which pairs appeared or changed in the store (from the listing only)."""

    def __init__(self, store: TokenStore, console: Console | None) -> None:
        self._store = store
        self._console = console
        self._seen: dict[str, PairRow] = {}
        self._lock = threading.Lock()
        self._hinted = False

    def check(self, *, announce: bool = True) -> None:
        with self._lock:
            try:
                rows = pair_rows(self._store.list_pairs(), self._store.prefix)
            except Exception as exc:  # the watcher only informs; never let it break an invocation
                self._say(f"cannot list the pairs: {exc}", level="WARNING")
                return
            now = time.time()
            for row in rows:
                before = self._seen.get(row.name)
                if not announce or (before is not None and before.current_version == row.current_version):
                    continue
                what = f"{row.token_type}, team {row.team}, expires in {row.expires_in(now)}"
                if before is None:
                    self._say(f"pair stored: {row.name} ({what}; status {row.status})")
                    if not self._hinted:
                        self._hinted = True
                        self._say("`make pairs` lists the stored pairs (never their tokens)")
                elif row.status != before.status:
                    self._say(f"{row.name} is now {row.status} ({what})", level="WARNING")
                else:
                    self._say(f"pair updated: {row.name} has a new current version ({what})")
            self._seen = {row.name: row for row in rows}

    def _say(self, text: str, *, level: str = "INFO") -> None:
        if self._console is not None:
            self._console.line("store", text, level=level)


def summary(result: Any) -> str:
    """A run summary in a few words: its non-zero counts (``rotated=1 due=1``), or ``nothing to do``."""
    if not isinstance(result, Mapping):
        return json.dumps(result)[:200]
    parts = [
        f"{k}={v}"
        for k, v in result.items()
        if (isinstance(v, int) and not isinstance(v, bool) and v) or (k == "error" and v)
    ]
    failures = result.get("failures")
    if isinstance(failures, Mapping) and failures:
        parts.append("failures=" + json.dumps(failures, separators=(",", ":")))
    return " ".join(parts) or "nothing to do"


def _generate(spec: Mapping[str, Any]) -> str:
    """A value for ``GenerateSecretString`` (length and the exclusions the template uses)."""
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    alphabet = "".join(c for c in alphabet if c not in str(spec.get("ExcludeCharacters", "")))
    return "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))

"""Read ``template.yaml`` the way the local stack needs it: functions with their code, handler, layers, timeout
and environment; their ``HttpApi`` routes and schedules; the secrets the stack creates.

Intrinsic functions (``Ref``, ``Fn::If``, ``Fn::Sub``, ``Fn::FindInMap``, ``Fn::Join``, ``Fn::Select`` and the
condition functions) are resolved against the parameter values (defaults plus overrides) and the local stand-ins of
resources (``bind``: e.g. the ARN of the moto secret that plays ``StateKeySecret``). Globals merge into each
function as SAM merges them: maps merged, lists appended, scalars replaced. Anything the local stack cannot play
raises ``TemplateError`` naming it, rather than being guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = ROOT / "template.yaml"

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
STACK_NAME = "local"
PSEUDO_PARAMETERS: dict[str, Any] = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": STACK_NAME,
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
    "AWS::NotificationARNs": [],
}

_SUB_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_API_URL = re.compile(r"https://\$\{(\w+)\}\.execute-api\.\$\{AWS::Region\}\.\$\{AWS::URLSuffix\}(/\S*)?")
_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_RATE_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class TemplateError(Exception):
    """The template asks for something the local stack cannot play (or is malformed)."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


# -- loading -------------------------------------------------------------------------------------------------------


class CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that turns short-form tags (``!Ref X``, ``!GetAtt A.B``...) into long-form dicts."""


def _short_form(loader: CloudFormationLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has no other node kind
        raise TemplateError(f"unexpected YAML node for !{suffix}")
    if suffix in {"Ref", "Condition"}:
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _short_form)


def load_template(text: str) -> dict[str, Any]:
    document = yaml.load(text, Loader=CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict):
        raise TemplateError("the template is not a YAML mapping")
    return document


# -- what the template declares ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Throttle:
    """A route's ``RouteSettings`` throttling: ``rate`` requests a second, a bucket of ``burst`` (API Gateway's)."""

    rate: float
    burst: int


@dataclass(frozen=True, slots=True)
class Route:
    """One ``HttpApi`` event: ``method`` (``ANY`` matches every method) and ``path`` (``{name}`` and ``{name+}``
    parameters), or the ``$default`` catch-all; ``throttle`` from the event's ``RouteSettings``."""

    function: str
    event: str
    method: str
    path: str
    throttle: Throttle | None = None

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route serves ``method path``, else None."""
        if self.method not in ("ANY", method.upper()):
            return None
        if self.path == "$default":
            return {}
        found = self._pattern().fullmatch(path)
        return dict(found.groupdict()) if found else None

    def _pattern(self) -> re.Pattern[str]:
        """``/items/{id}`` -> ``/items/(?P<id>[^/]+)``; ``/files/{path+}`` -> ``/files/(?P<path>.+)``."""
        parts = []
        for part in self.path.split("/"):
            if part.startswith("{") and part.endswith("+}"):
                parts.append(f"(?P<{part[1:-2]}>.+)")
            elif part.startswith("{") and part.endswith("}"):
                parts.append(f"(?P<{part[1:-1]}>[^/]+)")
            else:
                parts.append(re.escape(part))
        return re.compile("/".join(parts))

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Sort key, most specific first: API Gateway prefers exact paths, then greedy ones, then ``$default``."""
        parts = self.path.strip("/").split("/")
        greedy = any(p.endswith("+}") for p in parts)
        literal = sum(1 for p in parts if not p.startswith("{"))
        return (self.path == "$default", greedy, -literal)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A ``Schedule``/``ScheduleV2`` event: what the scheduler sends the function, and how often."""

    function: str
    event: str
    expression: str
    input: Any
    enabled: bool

    @property
    def interval_seconds(self) -> float | None:
        """The period of a ``rate(...)`` expression; None for ``cron(...)``/``at(...)``."""
        match = _RATE.fullmatch(self.expression.strip())
        if match is None:
            return None
        return float(int(match.group(1)) * _RATE_UNIT_SECONDS[match.group(2).rstrip("s")])


@dataclass(frozen=True, slots=True)
class Function:
    logical_id: str
    runtime: str
    code_uri: Path
    handler: str  # "module.attribute", relative to code_uri
    timeout: int
    memory: int
    environment: dict[str, str] = field(repr=False)
    layers: tuple[Path, ...]
    log_level: str | None
    log_format: str | None
    routes: tuple[Route, ...]
    schedules: tuple[Schedule, ...]

    @property
    def handler_file(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return self.code_uri / (module.replace(".", "/") + ".py")

    @property
    def handler_attribute(self) -> str:
        return self.handler.rpartition(".")[2]

    @property
    def module_name(self) -> str:
        """A unique module name for the handler (every function has an ``app.py``)."""
        return f"{self.code_uri.name}_{self.handler.rpartition('.')[0].replace('.', '_')}"


# -- the template --------------------------------------------------------------------------------------------------


class Template:
    """A parsed template with parameter values; resolves intrinsics and describes its functions."""

    def __init__(
        self, document: Mapping[str, Any], *, root: Path = ROOT, parameters: Mapping[str, str] | None = None
    ) -> None:
        self.document = document
        self.root = root
        self._declared: dict[str, Any] = dict(document.get("Parameters") or {})
        unknown = sorted(set(parameters or {}) - set(self._declared))
        if unknown:
            raise TemplateError(f"unknown template parameter(s): {', '.join(unknown)}")
        self.parameters: dict[str, str] = {
            name: _text(spec["Default"]) for name, spec in self._declared.items() if "Default" in spec
        }
        self.parameters.update({name: str(value) for name, value in (parameters or {}).items()})
        self.resources: dict[str, Any] = dict(document.get("Resources") or {})
        self._physical: dict[str, Any] = {}
        self._conditions: dict[str, bool] = {}

    @classmethod
    def load(cls, path: Path = TEMPLATE_PATH, *, parameters: Mapping[str, str] | None = None) -> Template:
        return cls(load_template(path.read_text(encoding="utf-8")), root=path.parent, parameters=parameters)

    # -- parameters and resources

    def check_parameters(self, values: Mapping[str, str]) -> list[str]:
        """Problems with user-given parameter values, checked as CloudFormation would (AllowedValues,
        AllowedPattern, MinValue/MaxValue, MaxLength)."""
        problems: list[str] = []
        for name, value in values.items():
            spec = self._declared.get(name)
            if spec is None:
                problems.append(f"{name} is not a parameter of the template")
                continue
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in [_text(a) for a in allowed]:
                problems.append(f"{name} must be one of {', '.join(_text(a) for a in allowed)}")
            pattern = spec.get("AllowedPattern")
            if pattern is not None and not re.fullmatch(pattern, value):
                problems.append(f"{name} does not match {pattern}")
            if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
                problems.append(f"{name} is longer than {spec['MaxLength']}")
            if spec.get("Type") == "Number":
                try:
                    number = float(value)
                except ValueError:
                    problems.append(f"{name} must be a number")
                    continue
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    problems.append(f"{name} must be at least {spec['MinValue']}")
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    problems.append(f"{name} must be at most {spec['MaxValue']}")
        return problems

    def bind(self, logical_id: str, physical_id: Any) -> None:
        """What ``Ref logical_id`` means locally (e.g. the ARN of the moto secret standing in for it)."""
        if logical_id not in self.resources:
            raise TemplateError(f"no resource {logical_id} in the template")
        self._physical[logical_id] = physical_id

    def bound(self) -> dict[str, Any]:
        """The local stand-ins given with ``bind``."""
        return dict(self._physical)

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Resources of that type whose ``Condition`` holds, by logical id."""
        return {
            name: resource
            for name, resource in self.resources.items()
            if resource.get("Type") == resource_type and self.condition_holds(resource.get("Condition"))
        }

    # -- intrinsic functions

    def condition_holds(self, name: str | None) -> bool:
        if name is None:
            return True
        if name not in self._conditions:
            conditions = self.document.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = self._evaluate(conditions[name])
        return self._conditions[name]

    def _evaluate(self, expression: Any) -> bool:
        if isinstance(expression, Mapping) and len(expression) == 1:
            ((key, argument),) = expression.items()
            if key == "Condition":
                return self.condition_holds(argument)
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in argument)
                return _text(left) == _text(right)
            if key == "Fn::Not":
                return not self._evaluate(argument[0])
            if key == "Fn::And":
                return all(self._evaluate(a) for a in argument)
            if key == "Fn::Or":
                return any(self._evaluate(a) for a in argument)
        raise TemplateError(f"cannot evaluate condition {expression!r}")

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its local value (``NO_VALUE`` entries dropped)."""
        if isinstance(value, Mapping):
            if len(value) == 1:
                ((key, argument),) = value.items()
                if key == "Ref" or key.startswith("Fn::"):
                    return self._intrinsic(key, argument)
            return {k: r for k, v in value.items() if (r := self.resolve(v)) is not NO_VALUE}
        if isinstance(value, list):
            return [r for v in value if (r := self.resolve(v)) is not NO_VALUE]
        return value

    def _intrinsic(self, key: str, argument: Any) -> Any:
        if key == "Ref":
            return self._ref(argument)
        if key == "Fn::If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition_holds(condition) else when_false)
        if key == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
            return self._sub(text, {k: self.resolve(v) for k, v in variables.items()})
        if key == "Fn::FindInMap":
            mapping, first, second = (_text(self.resolve(a)) for a in argument)
            try:
                return self.document["Mappings"][mapping][first][second]
            except KeyError:
                raise TemplateError(f"Fn::FindInMap: no {mapping}.{first}.{second}") from None
        if key == "Fn::Join":
            delimiter, items = argument
            return delimiter.join(_text(item) for item in self.resolve(items))
        if key == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::GetAtt":
            target = argument if isinstance(argument, str) else ".".join(argument)
            raise TemplateError(f"Fn::GetAtt {target} has no local value")
        raise TemplateError(f"{key} is not supported by the local stack")

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self._declared:
            raise TemplateError(f"parameter {name} has no default: give it a value")
        if name in self._physical:
            return self._physical[name]
        if name in self.resources:
            raise TemplateError(f"Ref {name}: the local stack has no stand-in for this resource")
        raise TemplateError(f"Ref {name}: no such parameter or resource")

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _text(variables[name])
            if "." in name and name not in PSEUDO_PARAMETERS:
                raise TemplateError(f"Fn::Sub ${{{name}}}: attributes have no local value")
            return _text(self._ref(name))

        return _SUB_REFERENCE.sub(replace, text)

    def no_echo_parameters(self) -> set[str]:
        return {name for name, spec in self._declared.items() if spec.get("NoEcho") in (True, "true")}

    def api_outputs(self, base_url: str) -> dict[str, str]:
        """The Outputs that are URLs of an HTTP API of this template, rewritten onto ``base_url`` (e.g. InstallUrl
        ``https://${SlackOAuthApi}.execute-api...amazonaws.com/slack/install`` -> ``<base_url>/slack/install``)."""
        found: dict[str, str] = {}
        for name, output in (self.document.get("Outputs") or {}).items():
            value = (output or {}).get("Value")
            text = value.get("Fn::Sub") if isinstance(value, Mapping) else None
            match = _API_URL.fullmatch(text) if isinstance(text, str) else None
            if match and (self.resources.get(match.group(1)) or {}).get("Type") == "AWS::Serverless::HttpApi":
                found[name] = base_url.rstrip("/") + (match.group(2) or "/")
        return found

    # -- functions

    def functions(self) -> dict[str, Function]:
        """Every ``AWS::Serverless::Function``, Globals merged and intrinsics resolved."""
        globals_ = (self.document.get("Globals") or {}).get("Function") or {}
        return {
            name: self._function(name, _merge(globals_, resource.get("Properties") or {}))
            for name, resource in self.resources_of_type("AWS::Serverless::Function").items()
        }

    def layer_dirs(self) -> list[Path]:
        """The directories of every layer the functions use (no environment is resolved)."""
        globals_ = (self.document.get("Globals") or {}).get("Function") or {}
        found: list[Path] = []
        for name, resource in self.resources_of_type("AWS::Serverless::Function").items():
            for layer in _merge(globals_, resource.get("Properties") or {}).get("Layers") or []:
                directory = self._layer(name, layer)
                if directory not in found:
                    found.append(directory)
        return found

    def routes(self) -> list[Route]:
        """Every HttpApi route of every function, most specific first. Reads no resolved environment."""
        routes = [
            route
            for name, resource in self.resources_of_type("AWS::Serverless::Function").items()
            for route in self._routes(name, (resource.get("Properties") or {}).get("Events") or {})
        ]
        return sorted(routes, key=lambda r: r.specificity)

    def _function(self, name: str, properties: Mapping[str, Any]) -> Function:
        if "InlineCode" in properties or "ImageUri" in properties:
            raise TemplateError(f"{name}: only CodeUri functions run locally")
        code_uri, handler = self.resolve(properties.get("CodeUri")), self.resolve(properties.get("Handler"))
        if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
            raise TemplateError(f"{name}: needs a local CodeUri and a module.function Handler")
        variables = (self.resolve(properties.get("Environment") or {}) or {}).get("Variables") or {}
        logging_config = self.resolve(properties.get("LoggingConfig") or {})
        events = properties.get("Events") or {}
        return Function(
            logical_id=name,
            runtime=str(self.resolve(properties.get("Runtime", ""))),
            code_uri=(self.root / code_uri).resolve(),
            handler=handler,
            timeout=int(self.resolve(properties.get("Timeout", 3))),
            memory=int(self.resolve(properties.get("MemorySize", 128))),
            environment={key: _text(value) for key, value in variables.items()},
            layers=tuple(self._layer(name, layer) for layer in properties.get("Layers") or []),
            log_level=logging_config.get("ApplicationLogLevel"),
            log_format=logging_config.get("LogFormat"),
            routes=tuple(sorted(self._routes(name, events), key=lambda r: r.specificity)),
            schedules=tuple(self._schedules(name, events)),
        )

    def _layer(self, function: str, layer: Any) -> Path:
        """A layer defined in this template, as the directory Lambda would mount (its ContentUri)."""
        if isinstance(layer, Mapping) and set(layer) == {"Ref"}:
            resource = self.resources.get(layer["Ref"]) or {}
            if resource.get("Type") == "AWS::Serverless::LayerVersion":
                return (self.root / str(self.resolve(resource["Properties"]["ContentUri"]))).resolve()
        raise TemplateError(f"{function}: layer {layer!r} is not a layer of this template")

    def _routes(self, function: str, events: Mapping[str, Any]) -> list[Route]:
        routes: list[Route] = []
        for event_name, event in events.items():
            if event.get("Type") != "HttpApi":
                continue
            properties = event.get("Properties") or {}
            version = _text(self.resolve(properties.get("PayloadFormatVersion", "2.0")))
            if version != "2.0":
                raise TemplateError(f"{function}.{event_name}: the local HTTP API speaks payload format 2.0 only")
            path = self.resolve(properties.get("Path", "$default"))
            method = str(self.resolve(properties.get("Method", "ANY"))).upper()
            method = "ANY" if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" else method
            throttle = self._throttle(f"{function}.{event_name}", properties.get("RouteSettings") or {})
            routes.append(Route(function, event_name, method, path, throttle))
        return routes

    def _throttle(self, where: str, settings: Mapping[str, Any]) -> Throttle | None:
        rate, burst = settings.get("ThrottlingRateLimit"), settings.get("ThrottlingBurstLimit")
        if rate is None and burst is None:
            return None
        if rate is None or burst is None:
            raise TemplateError(f"{where}: the local HTTP API needs both ThrottlingRateLimit and ThrottlingBurstLimit")
        return Throttle(rate=float(self.resolve(rate)), burst=int(self.resolve(burst)))

    def _schedules(self, function: str, events: Mapping[str, Any]) -> list[Schedule]:
        schedules: list[Schedule] = []
        for event_name, event in events.items():
            if event.get("Type") not in ("Schedule", "ScheduleV2"):
                continue
            properties = event.get("Properties") or {}  # only what the scheduler needs: DLQ ARNs have no local value
            raw_input = self.resolve(properties.get("Input"))
            try:
                payload = json.loads(raw_input) if isinstance(raw_input, str) else (raw_input or {})
            except ValueError:
                payload = raw_input
            state = _text(self.resolve(properties.get("State", "ENABLED"))).upper()
            enabled = state == "ENABLED" and _text(self.resolve(properties.get("Enabled", True))) == "true"
            expression = _text(self.resolve(properties["ScheduleExpression"]))
            schedules.append(Schedule(function, event_name, expression, payload, enabled))
        return schedules


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _merge(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals rule: maps merge (recursively), lists are appended to, anything else is replaced."""
    if isinstance(global_value, Mapping) and isinstance(local_value, Mapping):
        if _is_intrinsic(global_value) or _is_intrinsic(local_value):
            return local_value
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = _merge(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return [*global_value, *local_value]
    return local_value


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)) in {"Ref", "Condition"} | {k for k in value if k.startswith("Fn::")}

"""The local stack: the whole product on one machine, with no AWS account, no Docker and no Slack app.

``make run`` (``python -m local.run``) starts, in one process:

* moto's Secrets Manager server on 127.0.0.1, reached by the functions through ``AWS_ENDPOINT_URL``, holding the
  template's two configuration secrets;
* a Slack sandbox on 127.0.0.1 (``sandbox/fake_slack.py``, the same fake the tests use) unless real Slack
  credentials are given;
* a local HTTP API that serves every ``HttpApi`` route of ``template.yaml`` as API Gateway would (payload 2.0),
  invoking the handlers in-process with their template environment and a Lambda-like context;
* the template's schedules, fired locally (faster in the sandbox, so rotation can be watched).

``make invoke`` runs one function once against the same pieces; ``make pairs`` lists the stored token pairs.
Everything is read from ``template.yaml``: a new function, route or schedule needs no change here.

Modules: ``template`` (reads the template, resolves intrinsics), ``lambda_host`` (loads and invokes handlers),
``http_api`` (the HTTP API), ``scheduler``, ``console`` (log lines), ``pairs`` (the operator view), ``stack``
(``LocalStack``: everything together), and the commands ``run`` and ``invoke``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable
from pathlib import Path

from local.template import Template, TemplateError


def mount_layers(layers: Iterable[Path]) -> None:
    """Put layer directories on ``sys.path``, as Lambda mounts a layer's content under ``/opt/python``."""
    for layer in layers:
        if str(layer) not in sys.path:
            sys.path.append(str(layer))


def _mount_template_layers() -> None:
    with contextlib.suppress(OSError, TemplateError):  # a broken template is reported by whoever reads it for real
        mount_layers(Template.load().layer_dirs())


# The one thing importing this package does: make the template's layers (the ``slack_tokens`` package) importable,
# so ``python -m local.<command>`` needs no PYTHONPATH. It reads template.yaml and needs no environment variable.
_mount_template_layers()

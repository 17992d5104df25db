"""The sandbox: stand-ins for what the functions meet in AWS, runnable on 127.0.0.1 with no account and no Slack app.

* ``fake_slack``: Slack's OAuth v2 endpoints (consent page, code and refresh grants, exchange, auth.test), with
  Slack's token rules and fault knobs;
* ``aws``: moto's server as the local Secrets Manager and DynamoDB, and the tables as the template creates them;
  ``aws_faults``: throttles and lost answers injected into real botocore clients;
* ``lambda_runtime``: the functions imported and invoked the way Lambda does it, with API Gateway events;
  ``rotate_process``: one RotateFunction run in its own process, optionally killed or frozen at a protocol step;
* ``http_server``: the one small HTTP server the fake Slack and the local API (``local/http_api.py``) are served by;
* ``app``: the app's test credentials, and the real handlers driven as a browser and an operator would.

Used by ``local/`` (``make run``), ``bench/`` and ``tests/``; never shipped (the functions and the layer are built
from ``functions/`` and ``layers/`` only).
"""

"""``slack-tokens``: the operator's command for a deployed (or ``make run``) slack-token-lifecycle stack.

Not part of the Lambda layer: it is installed with the repository (``pip install .``, ``make venv``) and imports the
layer's ``slack_tokens`` package for the pieces both share (names, version ids, the retire protocol).
"""

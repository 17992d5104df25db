"""``python -m slack_tokens_cli``: the same as the ``slack-tokens`` console script."""

from slack_tokens_cli.main import run

raise SystemExit(run())

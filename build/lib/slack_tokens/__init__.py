"""Slack OAuth v2 token lifecycle on AWS Lambda + Secrets Manager (the shared layer)."""

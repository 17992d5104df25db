"""The few HTML pages a person sees during an install. Every value is escaped; no page shows a secret."""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1d1c1d}}
h1{{font-size:1.5rem}} .ok{{color:#007a5a}} .bad{{color:#e01e5a}} a{{color:#1264a3}}</style></head>
<body><h1 class="{tone}">{title}</h1><p>{message}</p>{action}</body></html>
"""


def page(title: str, message: str, *, ok: bool, retry_url: str | None = None, retry_label: str = "Try again") -> str:
    action = f'<p><a href="{escape(retry_url)}">{escape(retry_label)}</a></p>' if retry_url else ""
    return _PAGE.format(title=escape(title), message=escape(message), tone="ok" if ok else "bad", action=action)


def installed(workspace: str | None) -> str:
    where = f" to {workspace}" if workspace else ""
    return page("Installed", f"The app was added{where}. You can close this window and return to Slack.", ok=True)


def cancelled(install_url: str | None) -> str:
    return page(
        "Install cancelled",
        "You chose not to add the app. Nothing was changed.",
        ok=False,
        retry_url=install_url,
        retry_label="Add to Slack",
    )


def failed(title: str, message: str, install_url: str | None) -> str:
    return page(title, message, ok=False, retry_url=install_url, retry_label="Start the install again")

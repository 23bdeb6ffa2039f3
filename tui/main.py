"""Entry point of `nube tui`: find credentials, then run the app."""

from __future__ import annotations

import sys

from tui.credentials import CredentialsError, find_credentials


def main(cloud: str | None) -> int:
    try:
        creds = find_credentials(cloud)
    except CredentialsError as exc:
        print(f"nube tui: {exc}", file=sys.stderr)
        return 2
    from tui.app import run

    return run(creds)

"""Exit 0 when an HTTP endpoint answers 2xx: the API image's HEALTHCHECK (slim has no curl).

Usage: ``python healthcheck.py [URL]``; the default is ``/healthz`` on ``UVICORN_PORT``.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main(argv: list[str]) -> int:
    url = (
        argv[1]
        if len(argv) > 1
        else f"http://127.0.0.1:{os.environ.get('UVICORN_PORT', '8000')}/healthz"
    )
    try:
        with urllib.request.urlopen(
            url, timeout=float(os.environ.get("HEALTHCHECK_TIMEOUT_S", "4"))
        ) as r:
            ok = 200 <= r.status < 300
    except OSError as exc:  # URLError, HTTPError (non-2xx), timeouts, refused connections
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Runs scim2-tester (the python-scim project's compliance checker) against
a live gateway's SCIM door and prints one line per check.

Usage: scim_tester.py BASE_URL TOKEN

Exits 0 when no check ends in ERROR or CRITICAL, 1 otherwise. Checks the
gateway deliberately answers otherwise (see docs/scim.md, "Checked by
scim2-tester") are listed in ALLOWED with the reason, and are reported but
not counted.
"""

import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# (title substring, reason). Kept short: each is a documented choice.
ALLOWED: list[tuple[str, str]] = [
    (
        "did not remove attribute 'active'",
        "active is the person's employment status, always shown",
    ),
    (
        "'members' was not",
        "members.display is the member's displayName: a membership keeps no text of its own",
    ),
]

FAILING = {"ERROR", "CRITICAL"}


def main() -> int:
    base, token = sys.argv[1], sys.argv[2]
    http = Client(
        base_url=base,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    client = SyncSCIMClient(http)
    results = check_server(client, raise_exceptions=False)
    failed = 0
    for r in results:
        status = r.status.name
        text = f"{r.title or ''} {r.reason or ''}"
        allowed = next((why for t, why in ALLOWED if t in text), None)
        mark = status
        if status in FAILING:
            if allowed:
                mark = f"{status} (allowed: {allowed})"
            else:
                failed += 1
        where = f"[{r.resource_type}] " if getattr(r, "resource_type", None) else ""
        print(f"{mark:<10} {where}{r.title}: {r.reason or ''}")
    print(f"scim2-tester: {len(results)} checks, {failed} failed")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())

"""The SCIM target side of bench/provision.sh, against scim2-server.

  count BASE TOKEN                    Users on the target
  wait BASE TOKEN N TIMEOUT           waits until it holds N Users; prints
                                      the seconds it took
  ceiling BASE TOKEN N THREADS        creates N Users (the body the gateway
                                      sends), then PATCHes each once, from
                                      THREADS threads; prints the create and
                                      PATCH rates: what the target can take
"""
import concurrent.futures
import json
import sys
import threading
import time

import requests

SCIM = "application/scim+json"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def session(token):
    s = requests.Session()
    s.headers.update({"Authorization": f"Bearer {token}", "Accept": SCIM})
    return s


def count(base, token):
    r = session(token).get(f"{base}/Users", params={"count": "0"})
    r.raise_for_status()
    return r.json()["totalResults"]


def user(i):
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
        "userName": f"ceiling{i}@example.com",
        "externalId": f"C{i:07d}",
        "name": {"givenName": f"Given{i}", "familyName": f"Family{i}"},
        "displayName": f"Given{i} Family{i}",
        "title": "Engineer",
        "emails": [{"type": "work", "primary": True, "value": f"ceiling{i}@example.com"}],
        "active": True,
        ENT: {"employeeNumber": f"C{i:07d}", "department": f"Dept{i % 7}"},
    }


def rate(n, threads, job):
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        out = list(pool.map(job, range(n)))
    return n / (time.monotonic() - start), out


def main():
    cmd, base, token = sys.argv[1], sys.argv[2], sys.argv[3]
    if cmd == "count":
        print(count(base, token))
    elif cmd == "wait":
        n, timeout = int(sys.argv[4]), float(sys.argv[5])
        start = time.monotonic()
        while count(base, token) < n:
            if time.monotonic() - start > timeout:
                sys.exit(f"the target holds {count(base, token)} of {n} Users after {timeout}s")
            time.sleep(0.05)
        print(f"{time.monotonic() - start:.3f}")
    elif cmd == "ceiling":
        n, threads = int(sys.argv[4]), int(sys.argv[5])
        local = threading.local()

        def s():
            if not hasattr(local, "s"):
                local.s = session(token)
            return local.s

        def create(i):
            r = s().post(f"{base}/Users", data=json.dumps(user(i)), headers={"Content-Type": SCIM})
            assert r.status_code == 201, r.status_code
            return r.json()["id"]

        creates, ids = rate(n, threads, create)

        def patch(i):
            body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": f"{ENT}:department", "value": "Moved"}]}
            r = s().patch(f"{base}/Users/{ids[i]}", data=json.dumps(body), headers={"Content-Type": SCIM})
            assert r.status_code in (200, 204), r.status_code

        patches, _ = rate(n, threads, patch)
        print(f"{creates:.0f} {patches:.0f}")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()

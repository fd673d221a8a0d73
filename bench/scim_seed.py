"""Creates N SCIM Users (userName seed-I@example.com) at a SCIM base URL
over one keep-alive connection, for bench/scim.sh; writes their ids to
OUT/ids.txt and their userNames to OUT/names.txt.

Usage: scim_seed.py BASE_URL TOKEN N OUT
"""

import http.client
import json
import sys
import urllib.parse


def main() -> int:
    base, token, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/scim+json",
    }
    ids, names = [], []
    for i in range(n):
        name = f"seed-{i}@example.com"
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": name,
            "active": True,
            "name": {"givenName": "Seed", "familyName": f"User{i}"},
            "emails": [{"primary": True, "type": "work", "value": name}],
        }
        conn.request("POST", f"{url.path}/Users", json.dumps(body), headers)
        r = conn.getresponse()
        data = r.read()
        if r.status != 201:
            print(f"scim_seed: create {i} answered {r.status}", file=sys.stderr)
            return 1
        ids.append(json.loads(data)["id"])
        names.append(name)
    with open(f"{out}/ids.txt", "w") as f:
        f.write("\n".join(ids) + "\n")
    with open(f"{out}/names.txt", "w") as f:
        f.write("\n".join(names) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

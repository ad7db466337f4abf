"""The key lifecycle through a client generated from docs/openapi.json by
openapi-python-client: log in, create an access key, call the API with HTTP Basic
key:password, delete the key, see the key refused. Proves the document is usable by a
generator, not only valid.

Usage: generated_client.py PACKAGE_PARENT URL ADMIN PASSWORD
(PACKAGE_PARENT holds the generated package `accesskeyd_client`.)
"""

import base64
import sys

parent, url, admin, password = sys.argv[1:5]
sys.path.insert(0, parent)

from accesskeyd_client import AuthenticatedClient, Client  # noqa: E402
from accesskeyd_client.api.accesskeys import create_key, delete_key, list_keys  # noqa: E402
from accesskeyd_client.api.auth import login  # noqa: E402
from accesskeyd_client.api.users import get_me  # noqa: E402
from accesskeyd_client.models import AuthInput, KeyInput, KeyOutput, StatusMessage, UserOutput  # noqa: E402


def check(condition, what, response):
    if not condition:
        sys.exit(f"{what}: {response.status_code} {response.content!r}")


# Log in: the session token comes back in x-sq-auth, which the client then sends.
r = login.sync_detailed(
    client=Client(base_url=url),
    body=AuthInput(username=admin, password=password, auth_provider_id="builtin"),
)
check(r.status_code == 200 and isinstance(r.parsed, UserOutput), "login", r)
session = AuthenticatedClient(
    base_url=url, token=r.headers["x-sq-auth"], prefix="", auth_header_name="x-sq-auth"
)

# Create a key: the answer holds its password, once.
r = create_key.sync_detailed(client=session, body=KeyInput(name="generated client"))
check(r.status_code == 201 and isinstance(r.parsed, KeyOutput), "create key", r)
key = r.parsed
check(isinstance(key.password, str) and key.password, "create key: no password", r)

# Use it with HTTP Basic key:password, as an OData client or curl would.
basic = base64.b64encode(f"{key.key_id}:{key.password}".encode()).decode()
with_key = AuthenticatedClient(base_url=url, token=basic, prefix="Basic")
r = get_me.sync_detailed(client=with_key)
check(r.status_code == 200 and isinstance(r.parsed, UserOutput), "me with the key", r)
check(r.parsed.username == admin, "me with the key is the owner", r)
r = list_keys.sync_detailed(client=with_key)
check(r.status_code == 200, "list keys with the key", r)
check(any(k.key_id == key.key_id and not k.password for k in r.parsed.keys),
      "the key is listed, without its password", r)

# Delete it: the key is refused from then on.
r = delete_key.sync_detailed(key.key_id, client=session)
check(r.status_code == 200 and isinstance(r.parsed, StatusMessage), "delete key", r)
r = get_me.sync_detailed(client=with_key)
check(r.status_code == 401 and isinstance(r.parsed, StatusMessage), "the deleted key is refused", r)

print("client: ok")

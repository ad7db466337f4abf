"""Drives accesskeyd with the vendor's generated Python SDK (PyPI `seeq`, the models of
UserOutputV1 / UserInputV1 / AccessKeyOutputV1 / ConfigurationInputV1): the session options
and overrides of issue 8 must parse and round-trip there unchanged.

Usage: python3 session_options.py BASE_URL ADMIN PASSWORD USER_ID
(tests/e2e/sdk.rs starts the daemon and passes these). Exits non-zero on a failed check.
"""
import sys

import seeq.sdk as sdk

base, admin, password, user_id = sys.argv[1:5]

client = sdk.ApiClient(host=base + "/api")
auth = sdk.AuthApi(client)
_, status, headers = auth.login_with_http_info(
    body=sdk.AuthInputV1(username=admin, password=password, auth_provider_class="Auth", auth_provider_id="builtin"))
assert status == 200, status
client.set_default_header("x-sq-auth", headers["x-sq-auth"])

system = sdk.SystemApi(client)
out = system.set_configuration_options(body=sdk.ConfigurationInputV1(configuration_options=[
    sdk.ConfigurationOptionInputV1(path="Authentication/DefaultSessionDuration", value=90, note="sdk"),
    sdk.ConfigurationOptionInputV1(path="Authentication/AccessKey/Creation/Enabled", value=False),
]))
values = {o.path: o.value for o in out.configuration_options}
assert values["Authentication/DefaultSessionDuration"] == 90, values
assert values["Authentication/AccessKey/Creation/Enabled"] is False, values

users = sdk.UsersApi(client)
u = users.get_user(id=user_id.upper())  # the SDK upper-cases ids; they compare case-insensitively
assert u.session_duration is None, u.session_duration
assert u.effective_session_duration.value == 90 and u.effective_session_duration.uom == "min", u.effective_session_duration
assert u.is_application_service_principal is False

u = users.update_user(id=user_id, body=sdk.UserInputV1(session_duration=30, access_key_validity_duration=60))
assert u.session_duration == 30 and u.effective_session_duration.value == 30, u
assert u.access_key_validity_duration == 60 and u.effective_access_key_validity_duration.value == 60, u
u = users.update_user(id=user_id, body=sdk.UserInputV1(session_duration=-1))
assert u.session_duration is None and u.effective_session_duration.value == 90, u

keys = sdk.AccessKeysApi(client)
made = keys.create_key(body=sdk.AccessKeyInputV1(name="sdk key", user_id=user_id))
assert made.password and made.key_id.startswith("akd_"), made
listed = keys.get_keys(user_id=user_id)
assert [k.name for k in listed.keys] == ["sdk key"], listed
assert listed.keys[0].expiry is None
print("sdk: ok")

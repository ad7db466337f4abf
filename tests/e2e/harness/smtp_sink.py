"""A throwaway SMTP server for the e2e tests (driven by tests/e2e/harness/smtp.rs).

Usage: python3 smtp_sink.py PORT DIR [MODE [CERT KEY]]

Runs an aiosmtpd (PyPI `aiosmtpd`) SMTP server on 127.0.0.1:PORT and stores every message it
accepts in DIR as
  <n>.eml          the message as received (bytes after dot-unstuffing),
  <n>.parsed.json  {"subject", "text", "html", "headers"} decoded by Python's `email`
                   package (RFC 2047 headers, quoted-printable/base64 bodies, charsets),
  <n>.json         {"mail_from", "rcpt_tos", "auth_user"}, written last,
with n = 1, 2, ...; each file is written to a temp name and renamed, so a reader that sees
<n>.json also sees the other two complete.

MODE is a comma-separated list (or `none`):
  auth      require AUTH (PLAIN or LOGIN) as user `notifier`, password `smtp-secret`,
            before MAIL FROM; allowed over plain text unless starttls is also given
  starttls  offer STARTTLS with the PEM certificate CERT and key KEY and require it before
            any mail transaction (and before AUTH)
Without MODE: plain SMTP, no TLS, no AUTH.

Prints `ready` on stdout once it listens; on a startup failure prints the reason on stderr
(with "[Errno 98] Address already in use" when the port is taken) and exits with status 1.
Runs until killed, or until its stdin reaches end of file (the test process holds the other
end of a pipe, so the server also goes away when the test process dies).
"""

import asyncio
import email
import email.policy
import json
import os
import socket
import ssl
import sys
import traceback
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

# aiosmtpd warns about AUTH without TLS, which is what the `auth` mode is for.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")

USER = b"notifier"
PASSWORD = b"smtp-secret"


def write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def part_content(msg, preference):
    part = msg.get_body(preferencelist=(preference,))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except Exception as e:  # a broken part: say so instead of losing the message
        return "<undecodable %s part: %s>" % (preference, e)
    if isinstance(content, bytes):
        return content.decode("utf-8", "replace")
    return content


def parse(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return {
        "subject": str(msg.get("subject", "")),
        "text": part_content(msg, "plain"),
        "html": part_content(msg, "html"),
        "headers": [[k, str(v)] for k, v in msg.items()],
    }


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            parsed = parse(raw)
        except Exception as e:
            parsed = {"subject": "", "text": "", "html": "", "headers": [],
                      "parse_error": repr(e)}
        auth_user = session.auth_data.login.decode("utf-8", "replace") \
            if isinstance(session.auth_data, LoginPassword) else None
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_user": auth_user,
        }
        # No await in here: messages of concurrent sessions get distinct numbers.
        self.count += 1
        base = os.path.join(self.directory, str(self.count))
        write_atomically(base + ".eml", raw)
        write_atomically(base + ".parsed.json", json.dumps(parsed).encode())
        write_atomically(base + ".json", json.dumps(meta).encode())
        return "250 OK: stored as %d" % self.count


def authenticator(server, session, envelope, mechanism, auth_data):
    if isinstance(auth_data, LoginPassword) and \
            auth_data.login == USER and auth_data.password == PASSWORD:
        return AuthResult(success=True, auth_data=auth_data)
    return AuthResult(success=False, handled=False)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: smtp_sink.py PORT DIR [MODE [CERT KEY]]")
    port = int(sys.argv[1])
    directory = sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "none"
    modes = {m for m in mode.split(",") if m and m != "none"}
    unknown = modes - {"auth", "starttls"}
    if unknown:
        sys.exit("unknown mode(s): %s" % ", ".join(sorted(unknown)))

    kwargs = {"enable_SMTPUTF8": True}
    if "starttls" in modes:
        if len(sys.argv) < 6:
            sys.exit("starttls needs CERT and KEY arguments")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(sys.argv[4], sys.argv[5])
        kwargs.update(tls_context=ctx, require_starttls=True)
    if "auth" in modes:
        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls="starttls" in modes,
        )

    try:
        asyncio.run(serve(port, directory, kwargs))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    # Not sys.exit: that would wait for the executor thread still blocked on stdin.
    os._exit(0)


async def serve(port, directory, smtp_kwargs):
    # Our own socket rather than aiosmtpd's Controller: a taken port fails here at once
    # (the Controller only reports it after its ready timeout).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except OSError as e:
        print("smtp_sink could not listen on 127.0.0.1:%d: %s" % (port, e),
              file=sys.stderr, flush=True)
        os._exit(1)
    handler = Sink(directory)
    loop = asyncio.get_running_loop()
    # hostname: the name in the greeting; also spares SMTP() a getfqdn() DNS lookup.
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", **smtp_kwargs), sock=sock)
    print("ready", flush=True)
    # Serve until stdin reaches end of file (the test process is gone or dropped us).
    await loop.run_in_executor(None, drain_stdin)
    server.close()


def drain_stdin():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except Exception:
        pass


if __name__ == "__main__":
    main()

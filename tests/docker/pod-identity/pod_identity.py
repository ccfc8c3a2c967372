#!/usr/bin/env python3
"""A stand-in for the EKS Pod Identity Agent (tests/test_containers.py): answers
GET /v1/credentials at 169.254.170.23:80 on the compose network with fixed credentials from its
environment (POD_IDENTITY_KEY_ID, POD_IDENTITY_SECRET_KEY, POD_IDENTITY_SESSION_TOKEN) when the
Authorization header equals POD_IDENTITY_AUTH_TOKEN, 401 without it, 403 otherwise. One line per
request on stdout: "CALL <method> <path> <status>". Standard library only.
"""
import datetime
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/v1/credentials"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        auth = self.headers.get("Authorization")
        if self.path != PATH:
            status, body = 404, {"message": "not found"}
        elif auth is None:
            status, body = 401, {"message": "missing authorization"}
        elif auth != os.environ["POD_IDENTITY_AUTH_TOKEN"]:
            status, body = 403, {"message": "bad authorization"}
        else:
            expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
            status, body = 200, {
                "AccessKeyId": os.environ["POD_IDENTITY_KEY_ID"],
                "SecretAccessKey": os.environ["POD_IDENTITY_SECRET_KEY"],
                "Token": os.environ["POD_IDENTITY_SESSION_TOKEN"],
                "AccountId": "111122223333",
                "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        print(f"CALL GET {self.path} {status}", flush=True)


if __name__ == "__main__":
    print("pod identity agent stand-in listening", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 80), Handler).serve_forever()

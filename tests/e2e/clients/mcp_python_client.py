"""An MCP client built on the MCP Python SDK, signing in through cimd-proxy with CIMD.

Run by the e2e tests (tests/e2e/87-mcp-clients.test.js) with the SDK installed in
target/e2e-venv by scripts/test. It:

1. connects to the protected MCP resource at SERVER_URL with the SDK's
   `OAuthClientProvider`, whose `client_metadata_url` (a CIMD document URL) becomes
   the client_id: the SDK discovers the proxy from the resource's RFC 9728 metadata and
   uses the URL because the proxy advertises `client_id_metadata_document_supported`;
2. completes the authorization-code flow headlessly: the redirect handler follows the
   proxy's and the provider's redirects (the provider signs the test user in and consents
   at once) with an HTTP client that keeps cookies, stops at the redirect URI without
   fetching it, and hands code, state and iss to the SDK's callback handler, which checks
   state and the RFC 9207 iss;
3. calls the resource's `whoami` tool, then makes the SDK refresh REFRESHES times (by
   marking the access token expired, which is how the SDK decides to refresh) and calls
   the tool after each refresh.

Arguments: one JSON object, {"server_url", "client_metadata_url", "redirect_uri",
"refreshes"}; with "client_id" instead of "client_metadata_url", a public client
pre-registered under that client_id (held in the storage from the start, as an
application configured with its client_id holds it), which the proxy relays
([[upstream.relayed_clients]]). Prints one JSON object on stdout (what happened, for the test to check;
no token values, only whether they changed); logs go to stderr. Exits non-zero on any
failure.
"""

import asyncio
import hashlib
import json
import logging
import sys
import time
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

MAX_HOPS = 12


def fingerprint(value: str | None) -> str | None:
    """A short digest to compare tokens across steps without printing them."""
    return hashlib.sha256(value.encode()).hexdigest()[:16] if value else None


class MemoryStorage(TokenStorage):
    """Tokens and client information in memory, with a record of every save."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.saved: list[dict[str, object]] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.saved.append(
            {
                "access_token": fingerprint(tokens.access_token),
                "refresh_token": fingerprint(tokens.refresh_token),
                "token_type": tokens.token_type,
                "scope": tokens.scope,
            }
        )

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class HeadlessBrowser:
    """Plays the user's browser: follows redirects until the client's redirect URI."""

    def __init__(self, redirect_uri: str) -> None:
        target = urlsplit(redirect_uri)
        self.target = (target.scheme, target.netloc, target.path)
        self.authorization_requests: list[dict[str, str]] = []
        self.result: AuthorizationCodeResult | None = None

    async def redirect_handler(self, authorization_url: str) -> None:
        query = parse_qs(urlsplit(authorization_url).query)
        self.authorization_requests.append(
            {
                "endpoint": authorization_url.split("?", 1)[0],
                **{name: values[0] for name, values in query.items() if name not in ("state", "code_challenge")},
            }
        )
        url = authorization_url
        # A fresh cookie jar per sign-in: the provider sees a new browser each time.
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as browser:
            for _ in range(MAX_HOPS):
                response = await browser.get(url)
                location = response.headers.get("location")
                if response.status_code not in (301, 302, 303, 307, 308) or not location:
                    raise RuntimeError(f"the sign-in stopped at {url.split('?', 1)[0]} with HTTP {response.status_code}")
                url = urljoin(url, location)
                parts = urlsplit(url)
                if (parts.scheme, parts.netloc, parts.path) == self.target:
                    params = {name: values[0] for name, values in parse_qs(parts.query).items()}
                    if "error" in params:
                        raise RuntimeError(f"the authorization failed: {params['error']} {params.get('error_description', '')}")
                    self.result = AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))
                    return
        raise RuntimeError(f"more than {MAX_HOPS} redirects")

    async def callback_handler(self) -> AuthorizationCodeResult:
        if self.result is None:
            raise RuntimeError("no authorization response was received")
        result, self.result = self.result, None
        return result


async def whoami(client: Client) -> dict[str, object]:
    result = await client.call_tool("whoami", {})
    if result.is_error:
        raise RuntimeError(f"whoami failed: {result}")
    return json.loads(result.content[0].text)


async def run(args: dict[str, object]) -> dict[str, object]:
    server_url = str(args["server_url"])
    redirect_uri = str(args["redirect_uri"])
    refreshes = int(args.get("refreshes", 2))
    storage = MemoryStorage()
    browser = HeadlessBrowser(redirect_uri)
    metadata = OAuthClientMetadata(
        client_name="MCP Python SDK e2e",
        redirect_uris=[redirect_uri],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    if "client_id" in args:
        # Pre-registered: the SDK uses the stored client information as it is.
        storage.client_info = OAuthClientInformationFull(
            client_id=str(args["client_id"]), **metadata.model_dump(exclude_none=True)
        )
    oauth = OAuthClientProvider(
        server_url=server_url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
        client_metadata_url=str(args["client_metadata_url"]) if "client_metadata_url" in args else None,
    )
    token_requests: list[dict[str, str]] = []

    async def record(request: httpx2.Request) -> None:
        if request.method == "POST" and request.url.path.endswith("/token"):
            form = parse_qs(request.content.decode())
            token_requests.append(
                {
                    "url": str(request.url),
                    "grant_type": form.get("grant_type", [""])[0],
                    "client_id": form.get("client_id", [""])[0],
                    "resource": form.get("resource", [""])[0],
                }
            )

    calls = []
    async with httpx2.AsyncClient(auth=oauth, timeout=20, event_hooks={"request": [record]}) as http:
        # 'legacy': the initialize handshake, which every server speaks (no server/discover probe).
        async with Client(streamable_http_client(server_url, http_client=http), mode="legacy") as client:
            calls.append(await whoami(client))
            for _ in range(refreshes):
                # The SDK refreshes when it holds an expired access token and a refresh token.
                oauth.context.token_expiry_time = time.time() - 1
                calls.append(await whoami(client))
    return {
        "client_id": storage.client_info.client_id if storage.client_info else None,
        "authorization_requests": browser.authorization_requests,
        "token_requests": token_requests,
        "saved_tokens": storage.saved,
        "calls": calls,
    }


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args = json.loads(sys.argv[1])
    summary = asyncio.run(run(args))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

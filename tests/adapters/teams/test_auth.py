"""With an app id, ``/api/messages`` checks Bot Framework tokens: signed by a local RSA key set served as
OpenID metadata on 127.0.0.1, minted the way the Teams channel mints them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from botframework.connector.auth import AuthenticationConstants
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from adapters.emulators.base import LocalServer
from adapters.emulators.botframework import BotFrameworkEmulator
from adapters.sql import SqlStore
from adapters.teams import mount_teams
from adapters.teams.openid import OpenIdKeySet
from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings, TeamsSettings

from .conftest import BOT_APP_ID, RecordingHandler

ISSUER = "https://api.botframework.com"


@dataclass
class KeyServer:
    """Serves OpenID metadata and a JWKS; counts the fetches."""

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    endorsements: dict[str, list[str]] = field(default_factory=dict)
    metadata_fetches: int = 0
    url: str = ""
    down: bool = False

    def add_key(self, kid: str, endorsements: list[str] | None = None) -> rsa.RSAPrivateKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys[kid] = key
        self.endorsements[kid] = endorsements if endorsements is not None else ["msteams"]
        return key

    def app(self) -> web.Application:
        async def metadata(request: web.Request) -> web.Response:
            self.metadata_fetches += 1
            if self.down:
                return web.json_response({"error": "unavailable"}, status=503)
            return web.json_response(
                {
                    "issuer": ISSUER,
                    "jwks_uri": f"{self.url}/v1/keys",
                    "id_token_signing_alg_values_supported": ["RS256"],
                }
            )

        async def jwks(request: web.Request) -> web.Response:
            keys = []
            for kid, key in self.keys.items():
                jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
                keys.append({**jwk, "kid": kid, "use": "sig", "endorsements": self.endorsements[kid]})
            return web.json_response({"keys": keys})

        app = web.Application()
        app.router.add_get("/v1/.well-known/openidconfiguration", metadata)
        app.router.add_get("/v1/keys", jwks)
        return app


@dataclass
class Minter:
    """Mints channel tokens for the activity about to be sent; tests change the fields between sends."""

    server: KeyServer
    kid: str = "key-1"
    claims: dict[str, Any] = field(default_factory=dict)
    key: rsa.RSAPrivateKey | None = None
    algorithm: str = "RS256"
    raw: str | None = None
    without: tuple[str, ...] = ()  # claims left out

    def __call__(self, activity: Mapping[str, Any]) -> str:
        if self.raw is not None:
            return self.raw
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": BOT_APP_ID,
            "iat": now,
            "nbf": now - 5,
            "exp": now + 3600,
            "serviceurl": activity["serviceUrl"],
            **self.claims,
        }
        for claim in self.without:
            payload.pop(claim, None)
        signing_key: Any = self.key or self.server.keys["key-1"]
        if self.algorithm == "HS256":
            signing_key = "a-shared-secret-that-is-long-enough-for-hs256"
        return jwt.encode(payload, signing_key, algorithm=self.algorithm, headers={"kid": self.kid})


@dataclass
class AuthHarness:
    teams: BotFrameworkEmulator
    keys: KeyServer
    minter: Minter
    store: SqlStore
    clock: FakeClock

    async def personal_install(self, user: str = "alice") -> int:
        return (await self.teams.install_personal_app(user=user)).status

    async def installed(self, user: str = "alice") -> bool:
        records = await self.store.list_conversations()
        return any(r.address.conversation_id == f"a:1personal-{user}" for r in records)


@pytest.fixture
async def auth(sqlite_store: SqlStore, clock: FakeClock) -> AsyncIterator[AuthHarness]:
    keys = KeyServer()
    keys.add_key("key-1")
    async with LocalServer(keys.app()) as key_server:
        keys.url = key_server.url
        settings = TeamsSettings.model_validate(
            {
                "app_id": BOT_APP_ID,
                "app_password": "${TEAMS_APP_PASSWORD}",
                "openid_metadata_url": f"{keys.url}/v1/.well-known/openidconfiguration",
            },
            context={"environ": {"TEAMS_APP_PASSWORD": "not-a-real-password"}},
        )
        app = create_app(Settings(), sqlite_store)
        mount_teams(app, settings, RecordingHandler(), sqlite_store, clock=clock)
        minter = Minter(keys)
        async with LocalServer(app) as bot_server:
            endpoint = f"{bot_server.url}/api/messages"
            async with BotFrameworkEmulator(clock=clock, bot_endpoint=endpoint, token_provider=minter) as teams:
                yield AuthHarness(teams, keys, minter, sqlite_store, clock)


async def test_a_valid_token_passes(auth: AuthHarness) -> None:
    assert await auth.personal_install() == 201
    assert await auth.installed()
    assert auth.keys.metadata_fetches == 1


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"iss": "https://sts.example.com/"}, id="wrong-issuer"),
        pytest.param({"aud": "11111111-2222-3333-4444-555555555555"}, id="wrong-audience"),
        pytest.param({"exp": int(time.time()) - 3600, "nbf": int(time.time()) - 7200}, id="expired"),
        pytest.param({"serviceurl": "https://smba.trafficmanager.net/amer/"}, id="other-service-url"),
        pytest.param({"serviceurl": None}, id="no-service-url"),
        pytest.param({"nbf": int(time.time()) + 3600}, id="not-yet-valid"),
    ],
)
async def test_a_token_with_a_wrong_claim_is_401(auth: AuthHarness, claims: dict[str, Any]) -> None:
    auth.minter.claims = claims
    assert await auth.personal_install() == 401
    assert not await auth.installed()


async def test_a_token_without_an_expiry_is_401(auth: AuthHarness) -> None:
    auth.minter.without = ("exp",)  # correctly signed, but good forever if it leaked
    assert await auth.personal_install() == 401
    assert not await auth.installed()


async def test_an_unknown_key_id_is_401(auth: AuthHarness) -> None:
    auth.minter.kid = "key-that-nobody-published"
    assert await auth.personal_install() == 401
    assert not await auth.installed()


async def test_a_token_signed_by_another_key_is_401(auth: AuthHarness) -> None:
    auth.minter.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert await auth.personal_install() == 401


async def test_a_hs256_token_is_401(auth: AuthHarness) -> None:
    auth.minter.algorithm = "HS256"
    assert await auth.personal_install() == 401


async def test_an_unsigned_token_is_401(auth: AuthHarness) -> None:
    auth.minter.algorithm = "none"
    auth.minter.raw = jwt.encode({"iss": ISSUER, "aud": BOT_APP_ID}, None, algorithm="none")
    assert await auth.personal_install() == 401


async def test_a_key_not_endorsed_for_teams_is_401(auth: AuthHarness) -> None:
    auth.keys.add_key("key-webchat", endorsements=["webchat"])
    auth.minter.kid = "key-webchat"
    auth.minter.key = auth.keys.keys["key-webchat"]
    assert await auth.personal_install() == 401


@pytest.mark.parametrize("raw", ["abc", "a.b.c", ""])
async def test_garbage_tokens_are_401(auth: AuthHarness, raw: str) -> None:
    auth.minter.raw = raw
    assert await auth.personal_install() == 401


async def test_no_authorization_header_is_401(auth: AuthHarness) -> None:
    auth.teams.bot.token_provider = None
    assert await auth.personal_install() == 401
    assert not await auth.installed()


async def test_unknown_key_ids_refresh_the_keys_at_most_once_an_hour(auth: AuthHarness) -> None:
    assert await auth.personal_install() == 201
    auth.minter.kid = "rotated-key"

    answers = await asyncio.gather(*(auth.teams.install_personal_app(user="bob") for _ in range(30)))

    assert {a.status for a in answers} == {401}
    assert auth.keys.metadata_fetches == 1

    # Microsoft publishes a new key; an hour later, the first token signed with it loads it
    auth.minter.key = auth.keys.add_key("rotated-key")
    await auth.clock.advance(3600)
    assert await auth.personal_install("bob") == 201
    assert auth.keys.metadata_fetches == 2
    assert await auth.installed("bob")


async def test_keys_that_cannot_be_fetched_are_a_503(sqlite_store: SqlStore, clock: FakeClock) -> None:
    settings = TeamsSettings.model_validate(
        {"app_id": BOT_APP_ID, "app_password": "${P}", "openid_metadata_url": "http://127.0.0.1:9/nothing"},
        context={"environ": {"P": "x"}},
    )
    app = create_app(Settings(), sqlite_store)
    mount_teams(app, settings, RecordingHandler(), sqlite_store, clock=clock)
    minter = Minter(KeyServer())
    minter.server.add_key("key-1")
    async with (
        LocalServer(app) as server,
        BotFrameworkEmulator(clock=clock, bot_endpoint=f"{server.url}/api/messages", token_provider=minter) as teams,
    ):
        answer = await teams.install_personal_app()
    assert answer.status == 503
    assert answer.headers.get("Retry-After") == "5"


async def test_while_no_keys_can_be_fetched_every_request_is_a_503_not_a_401(auth: AuthHarness) -> None:
    auth.keys.down = True

    answers = [await auth.personal_install() for _ in range(3)]

    assert answers == [503, 503, 503]  # (a 401 would tell Teams the token is bad: it would not retry)
    assert auth.keys.metadata_fetches == 1  # fetched again at most every 5 s
    auth.keys.down = False
    await auth.clock.advance(5)
    assert await auth.personal_install() == 201
    assert auth.keys.metadata_fetches == 2


async def test_tokens_never_reach_the_logs(auth: AuthHarness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    sent: list[str] = []
    minter = auth.minter

    def recording(activity: Mapping[str, Any]) -> str:
        sent.append(minter(activity))
        return sent[-1]

    auth.teams.bot.token_provider = recording
    assert await auth.personal_install() == 201
    minter.claims = {"aud": "someone-else"}
    assert await auth.personal_install() == 401
    minter.raw = "garbage-token-0123456789abcdef.payload-0123456789abcdef.sig-0123456789abcdef"
    assert await auth.personal_install() == 401

    assert caplog.records  # the refusals were logged…
    for token in sent:
        for part in token.split("."):
            assert len(part) < 16 or part not in caplog.text  # …without the token or any part of it
    assert "not-a-real-password" not in caplog.text


EMULATOR_TENANT = "d6d49420-f39b-4df7-a1dc-d59a935871db"  # the Azure AD tenants botbuilder takes for the Emulator's
SKILL_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"  # and for skills'


def fetched_from_azure_ad() -> bool:
    """Whether botbuilder's cache holds keys from the Emulator's and skills' Azure AD metadata, fetched or tried."""
    key_set = JwtTokenExtractor.metadataCache.get(AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL)
    return key_set is not None and (not isinstance(key_set, OpenIdKeySet) or key_set.fetches > 0)


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(
            {"iss": f"https://sts.windows.net/{EMULATOR_TENANT}/", "ver": "1.0", "appid": BOT_APP_ID}, id="emulator-v1"
        ),
        pytest.param(
            {"iss": f"https://login.microsoftonline.com/{EMULATOR_TENANT}/v2.0", "ver": "2.0", "azp": BOT_APP_ID},
            id="emulator-v2",
        ),
        pytest.param(
            {
                "iss": f"https://sts.windows.net/{SKILL_TENANT}/",
                "ver": "1.0",
                "appid": "22222222-0000-4000-8000-0000000000aa",
            },
            id="skill",
        ),
    ],
)
async def test_emulator_and_skill_tokens_are_401_and_fetch_nothing(auth: AuthHarness, claims: dict[str, Any]) -> None:
    """Tokens the Teams channel never sends are refused unread: no one can make Handoff fetch Azure AD's keys (and
    answer 503 while it cannot)."""
    auth.minter.claims = claims

    assert await auth.personal_install() == 401
    assert not await auth.installed()
    assert not fetched_from_azure_ad()
    assert auth.keys.metadata_fetches == 0


async def test_the_bearer_scheme_is_read_whatever_its_case(auth: AuthHarness) -> None:
    auth.teams.bot.token_provider = None
    activity = (await auth.teams.install_personal_app()).activity  # (refused: no token)
    headers = {"Content-Type": "application/json", "Authorization": f"bearer  {auth.minter(activity)}"}

    async with (
        aiohttp.ClientSession() as session,
        session.post(str(auth.teams.bot.endpoint), json=activity, headers=headers) as answer,
    ):
        assert answer.status == 201
    assert await auth.installed()

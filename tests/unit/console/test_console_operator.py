"""The operator's pages: accounts created, edited, disabled, expired and given a new
accesskey from the console, with the API feeling each change at once; and the fleet."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx
from console_client import Console

from ivrcast.console.fleet import fleet_view
from ivrcast.store.accounts import find_account
from ivrcast.store.fleet import node_statuses
from ivrcast.store.tables import nodes


async def play_voice(client: httpx.AsyncClient, appid: str, accesskey: str) -> int:
    """The vendor code a PlayVoice of the account gets."""
    answer = await client.post(
        "/api/yunhu",
        data={
            "service": "App.Sip_Call.PlayVoice", "appid": appid, "accesskey": accesskey,
            "nationcode": "id", "voicetype": "1", "voicefile": "nothing-here",
            "destnumber": "081234567800",
        },
    )  # fmt: skip
    code: int = answer.json()["code"]
    return code


def accesskey_of(page: httpx.Response) -> str:
    found = re.search(r'<code id="new-accesskey">([^<]+)</code>', page.text)
    assert found, page.text[:500]
    return found.group(1)


async def test_an_account_is_created_edited_expired_and_re_keyed(console: Console) -> None:
    async with console.operator() as operator:
        csrf = await console.csrf(operator, "/console/accounts/new")
        created = await operator.post(
            "/console/accounts/new",
            data={
                "csrf": csrf, "appid": "carol", "countries": "id, in",
                "allowed_ips": "198.51.100.0/24", "max_concurrency": "12",
                "callerids": "622150009999", "expires": "",
            },
        )  # fmt: skip
        assert created.status_code == 200, created.text
        assert created.headers["cache-control"] == "no-store"
        key = accesskey_of(created)
        # Accepted (code 200; the voice named does not exist, so data.status is 1).
        assert await play_voice(operator, "carol", key) == 200
        with console.db.read() as conn:
            carol = find_account(conn, "carol")
        assert carol is not None
        assert carol.countries == ("id", "in")
        assert carol.allowed_ips == ("198.51.100.0/24",)
        assert carol.max_concurrency == 12
        assert carol.callerids == ("622150009999",)
        assert carol.expires_at is None

        listing = await operator.get("/console/accounts")
        assert "carol" in listing.text

        saved = await operator.post(
            "/console/accounts/carol",
            data={
                "csrf": csrf, "countries": "ph", "allowed_ips": "", "max_concurrency": "40",
                "callerids": "", "callback_url": "https://example.com/cb",
                "expires": "2026-12-01",
            },
        )  # fmt: skip
        assert saved.status_code == 303
        with console.db.read() as conn:
            carol = find_account(conn, "carol")
        assert carol is not None
        assert (carol.countries, carol.allowed_ips, carol.max_concurrency) == (("ph",), (), 40)
        assert carol.callback_url == "https://example.com/cb"
        # 2026-12-01 00:00 in Asia/Jakarta (the console's zone).
        assert carol.expires_at is not None
        assert carol.expires_at.isoformat() == "2026-11-30T17:00:00+00:00"

        expired = await operator.post(
            "/console/accounts/carol/state", data={"csrf": csrf, "action": "expire"}
        )
        assert expired.status_code == 303
        assert await play_voice(operator, "carol", key) == 602
        await operator.post(
            "/console/accounts/carol/state", data={"csrf": csrf, "action": "unexpire"}
        )
        await operator.post(
            "/console/accounts/carol/state", data={"csrf": csrf, "action": "disable"}
        )
        assert await play_voice(operator, "carol", key) == 601
        await operator.post(
            "/console/accounts/carol/state", data={"csrf": csrf, "action": "enable"}
        )

        rekeyed = await operator.post("/console/accounts/carol/accesskey", data={"csrf": csrf})
        new_key = accesskey_of(rekeyed)
        assert new_key != key
        assert await play_voice(operator, "carol", key) == 601
        # Signed in: refused only for the nation, no longer among its countries (603).
        assert await play_voice(operator, "carol", new_key) == 603


async def test_bad_values_are_refused_naming_the_field(console: Console) -> None:
    async with console.operator() as operator:
        csrf = await console.csrf(operator, "/console/accounts/new")
        bad_ip = await operator.post(
            "/console/accounts/new",
            data={"csrf": csrf, "appid": "dave", "allowed_ips": "10.0.0.300"},
        )
        taken = await operator.post("/console/accounts/new", data={"csrf": csrf, "appid": "alice"})
        bad_date = await operator.post(
            "/console/accounts/alice", data={"csrf": csrf, "expires": "tomorrow"}
        )
        unknown = await operator.post(
            "/console/accounts/alice/state", data={"csrf": csrf, "action": "delete"}
        )
        no_csrf = await operator.post("/console/accounts/alice/state", data={"action": "expire"})
    assert bad_ip.status_code == 400
    assert "allowed_ips: &#39;10.0.0.300&#39; is not an IP address or network" in bad_ip.text
    assert taken.status_code == 409
    assert bad_date.status_code == 400
    assert "expires: &#39;tomorrow&#39;: give YYYY-MM-DD or never" in bad_date.text
    assert unknown.status_code == 400
    assert no_csrf.status_code == 403
    with console.db.read() as conn:
        assert find_account(conn, "dave") is None
        alice = find_account(conn, "alice")
    assert alice is not None
    assert alice.expires_at is None


async def test_the_playvoice_defaults_are_created_shown_and_edited(console: Console) -> None:
    async with console.operator() as operator:
        csrf = await console.csrf(operator, "/console/accounts/new")
        created = await operator.post(
            "/console/accounts/new",
            data={
                "csrf": csrf, "appid": "erin", "max_concurrency": "30",
                "default_retries": "3", "default_record": "1",
            },
        )  # fmt: skip
        assert created.status_code == 200, created.text
        with console.db.read() as conn:
            erin = find_account(conn, "erin")
        assert erin is not None
        assert (erin.default_retries, erin.default_record) == (3, True)
        page = await operator.get("/console/accounts/erin")
        assert 'name="default_retries" type="number" value="3"' in page.text
        assert '<option value="1" selected>' in page.text

        saved = await operator.post(
            "/console/accounts/erin",
            data={"csrf": csrf, "default_retries": "0", "default_record": "0"},
        )
        assert saved.status_code == 303
        too_many = await operator.post(
            "/console/accounts/erin", data={"csrf": csrf, "default_retries": "9"}
        )
        listing = await operator.get("/console/accounts")
    assert too_many.status_code == 400
    assert "default_retries: must be 0 to 5, got 9" in too_many.text
    with console.db.read() as conn:
        erin = find_account(conn, "erin")
    assert erin is not None
    assert (erin.default_retries, erin.default_record) == (0, False)
    row = re.search(r"<th scope=\"row\"><a [^>]*>erin</a></th>(.*?)</tr>", listing.text, re.S)
    assert row is not None
    assert '<td class="num">0</td>\n      <td>no</td>' in row.group(1)


async def test_accounts_cannot_reach_the_operator_pages(console: Console) -> None:
    async with console.signed_in("alice") as alice:
        pages = [await alice.get(p) for p in ("/console/accounts", "/console/fleet")]
        csrf = await console.csrf(alice)
        change = await alice.post(
            "/console/accounts/bob/state", data={"csrf": csrf, "action": "disable"}
        )
    assert [p.status_code for p in pages] == [403, 403]
    assert change.status_code == 403
    with console.db.read() as conn:
        bob = find_account(conn, "bob")
    assert bob is not None
    assert not bob.disabled


async def test_the_fleet_page_sums_the_live_nodes_reports(console: Console) -> None:
    now = console.clock.now()
    report = {
        "calls": 4, "finished": 120,
        "trunks": {"id-main": {"channels": 50, "max_cps": 10, "active": 4, "cps": 3.5,
                               "invites": 124}},
    }  # fmt: skip
    with console.db.write() as conn:
        for node_id, beat in (("n-live", now), ("n-late", now - timedelta(seconds=60))):
            conn.execute(
                nodes.insert().values(
                    id=node_id, hostname="h1", pid=10, started_at=now - timedelta(hours=1),
                    heartbeat_at=beat, stats=json.dumps(report),
                )
            )  # fmt: skip
    async with console.operator() as operator:
        page = await operator.get("/console/fleet")
    assert page.status_code == 200
    assert "n-live" in page.text
    assert "n-late" in page.text
    assert ">late<" in page.text
    assert ">live<" in page.text
    assert "1 dialer node live" in page.text
    assert "id-main: 4 / 50, 3.5/s" in page.text
    with console.db.read() as conn:
        statuses = node_statuses(conn, stopped_since=now)
    assert {s.id: s.report["finished"] for s in statuses} == {"n-live": 120, "n-late": 120}
    settings = console.settings.model_validate(
        {
            **console.settings.model_dump(),
            "trunks": [{"name": "id-main", "countries": ["id"], "proxy": "127.0.0.1:5070",
                        "max_channels": 100, "max_cps": 20}],
        }
    )  # fmt: skip
    view = fleet_view(console.db, settings, now=now)
    (trunk,) = view.trunks
    # Only the live node's report counts towards the trunk.
    assert (trunk.active, trunk.cps, trunk.nodes) == (4, 3.5, ["n-live"])
    assert view.live_nodes == 1

"""P1: cached `GET /cards/{id}` against a bare FastAPI route doing the same lookup in raw SQL.

Both run under uvicorn with the same worker count, against the same database,
driven by the same load loop in the same run; the ratio is what matters.
"""


import httpx

from bench.harness import baseline_server, run_load, throwaway_platform
from ece.settings import Settings
from ops.seed import ensure_admin

CONCURRENCY = 16
SECONDS = 10.0


def _create_cards(settings: Settings, api: str, count: int) -> list[str]:
    login, password = ensure_admin(settings)
    with httpx.Client(base_url=api, timeout=10) as client:
        token = client.post("/auth/login", json={"login": login, "password": password}
                            ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        return [client.post("/cards", headers=headers, json={
            "name": f"Bench card {i}", "set_name": "Bench", "number": str(i), "rarity": "rare",
        }).json()["id"] for i in range(count)]


def main() -> None:
    with throwaway_platform("api") as platform:
        api = platform.part("api").url
        ids = _create_cards(platform.settings, api, 100)
        with baseline_server("bench.baseline_card_app:app", platform.settings.api_workers,
                             f"/cards/{ids[0]}") as base_url:
            counter = iter(range(10**9))

            def api_request(client: httpx.AsyncClient):  # type: ignore[no-untyped-def]
                return client.get(f"{api}/cards/{ids[next(counter) % len(ids)]}")

            def baseline_request(client: httpx.AsyncClient):  # type: ignore[no-untyped-def]
                return client.get(f"{base_url}/cards/{ids[next(counter) % len(ids)]}")

            run_load(api_request, CONCURRENCY, 2)  # warm the cache and both processes
            run_load(baseline_request, CONCURRENCY, 2)
            ours = run_load(api_request, CONCURRENCY, SECONDS)
            base = run_load(baseline_request, CONCURRENCY, SECONDS)
    print(f"P1 card read, {CONCURRENCY} concurrent clients, {SECONDS:.0f} s each, "
          f"{platform.settings.api_workers} uvicorn worker(s)")
    print(ours.line("GET /cards/{id} (cached)"))
    print(base.line("bare FastAPI + raw SQL"))
    print(f"ratio (ours / baseline): {ours.rps / base.rps:.2f}")


if __name__ == "__main__":
    main()

"""A failed login's audit event never holds what was typed as the login: often a
password typed into the wrong field, and audit events flow on to Kafka and the lake."""

import httpx

from tests.support.apitest import PASSWORD, Db, assert_problem, register_and_login


async def test_failed_login_audit_stores_no_typed_secret(
    client: httpx.AsyncClient, db: Db
) -> None:
    account = await register_and_login(client)
    last = db.value("SELECT max(id) FROM audit_events")
    typed = "Tr0ub4dor&3-typed-in-the-login-field"
    r = await client.post("/auth/login", json={"login": typed, "password": PASSWORD})
    assert_problem(r, 401, "unauthorized")
    r = await client.post(
        "/auth/login", json={"login": f"  {account.email.upper()} ", "password": typed}
    )
    assert_problem(r, 401, "unauthorized")

    rows = db.rows(
        "SELECT actor_id::text, entity_id, details, row_to_json(e)::text FROM audit_events e "
        "WHERE id > %s AND action = 'auth.login_failed' ORDER BY id",
        last,
    )
    unknown, matched = rows[-2], rows[-1]
    # An unknown login: no account, no trace of the string.
    assert unknown[0] is None and unknown[1] is None
    assert unknown[2] == {"reason": "unknown_login"}
    # A real account: its id says whose, the typed email is not kept either.
    assert matched[0] == account.id and matched[1] == account.id
    assert matched[2] == {"reason": "bad_credentials"}
    for row in rows:
        text = row[3].lower()
        assert typed.lower() not in text and account.email.lower() not in text

"""Notification and push-subscription refusals.

Someone else's notification or subscription answers exactly like an unknown one
(404), so ids cannot be probed across accounts (OWASP API1).
"""

from api.core.problems import Problem, not_found, validation_error


def no_such_notification() -> Problem:
    return not_found("notification")


def no_such_subscription() -> Problem:
    return not_found("push subscription")


def bad_push_endpoint(detail: str) -> Problem:
    return validation_error(
        f"endpoint: {detail}",
        [{"loc": ["body", "endpoint"], "msg": detail, "type": "value_error"}],
    )

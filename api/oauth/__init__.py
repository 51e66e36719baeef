"""OpenID Connect sign-in and account linking (``/auth/oauth/*``, ``/me/identities``)."""

"""Cross-cutting pieces every domain uses: database, security, errors, audit, paging."""

"""What every command shares: failing with a message, refusing an unmigrated store."""

from __future__ import annotations

from typing import NoReturn

import click


def fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def check_store() -> None:
    from downsync.db import NotMigratedError, check_migrated

    try:
        check_migrated()
    except NotMigratedError as exc:
        fail(str(exc))

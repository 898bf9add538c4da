"""``python -m quotaquake.services.stub_api --port P [...]``: run the stub fingerprint API.

Bad options or an address in use: one line on stderr, exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from quotaquake.errors import UsageError
from quotaquake.services.stub_api.server import serve
from quotaquake.services.stub_api.settings import parse_settings


def main(argv: Sequence[str] | None = None) -> int:
    try:
        serve(parse_settings(argv))
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

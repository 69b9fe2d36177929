"""The whole contract as users read it: the tables (`contracts.docs`, from the pandera models) and how
other providers' records are mapped to them (`etl.reading.providers`, from the adapters' own tables).

`python -m etl.contract_docs README.md` (`make contract-docs`) puts it in the README.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from contracts.docs import contract_document, contract_markdown, update_readme
from etl.reading import provider_mapping_data, provider_mapping_markdown

PROVIDERS_HEADING = "### Other providers' events"
PROVIDERS_INTRO = (
    "Each record is recognised by its own shape (a file may mix providers); `--sources FILE` may pin a "
    "provider for paths matching a glob and set its options. `Message Sent` is written `Sent`, and so on."
)


def full_contract_markdown() -> str:
    return f"{contract_markdown()}\n{PROVIDERS_HEADING}\n\n{PROVIDERS_INTRO}\n\n{provider_mapping_markdown()}"


def full_contract_document() -> dict[str, Any]:
    return {**contract_document(), "providers": provider_mapping_data()}


def full_contract_json() -> str:
    return json.dumps(full_contract_document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    changed = update_readme(sys.argv[1], full_contract_markdown())
    print("README contract updated" if changed else "README contract up to date")

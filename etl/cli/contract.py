"""`etl contract`: the contract, generated from the pandera models."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from etl.contract_docs import full_contract_json, full_contract_markdown


class ContractFormat(StrEnum):
    markdown = "markdown"
    json = "json"


def contract(
    format: Annotated[ContractFormat, typer.Option("--format", help="markdown or json.")] = ContractFormat.markdown,
) -> None:
    """Print the event contract: tables, columns, rules, event names, timestamp forms, reason codes,
    and how other providers' events are mapped.

    Example: etl contract --format json > contract.json
    """
    typer.echo(full_contract_json() if format is ContractFormat.json else full_contract_markdown(), nl=False)

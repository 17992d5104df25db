"""Spent OAuth states: a state that reached Slack once is refused the second time, without a Slack call.

The one module besides the run guard that speaks to DynamoDB (boto3), in a table of its own that only the
callback's role can write (the run guard's table stays the rotator's and the exchange's). One item per spent state:

==============  ====================================================================================================
``state_id``     the state's hash (``state.state_id``): the table holds nothing a browser could use
``expires_at``   when the state would be refused as expired anyway (Unix seconds): the table's TTL attribute, so
                 DynamoDB deletes the item some time after that (a state past it is refused by its signature check)
==============  ====================================================================================================

Spending is one conditional put (``attribute_not_exists``): of two callbacks racing with one state, exactly one
wins. It fails closed: when DynamoDB cannot be used the callback answers 503 and calls nobody, because an
unchecked state is what lets a flood of callbacks spend the app's Slack budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from slack_tokens import errors

_CONDITION_FAILED = "ConditionalCheckFailedException"


class UsedStates:
    def __init__(self, client: Callable[[], Any], table: str) -> None:
        self._client = client  # made on first use (a cold start that refuses early never builds it)
        self._table = table

    def spend(self, state_id: str, *, expires_at: int) -> bool:
        """True the first time ``state_id`` is spent, False every time after; ``StoreError`` if DynamoDB fails."""
        try:
            self._client().put_item(
                TableName=self._table,
                Item={"state_id": {"S": state_id}, "expires_at": {"N": str(expires_at)}},
                ConditionExpression="attribute_not_exists(state_id)",
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == _CONDITION_FAILED:
                return False
            raise errors.StoreError(f"cannot record the spent state ({code or 'ClientError'})", code=code) from None
        except BotoCoreError as exc:
            raise errors.StoreError(f"cannot record the spent state ({type(exc).__name__})") from None
        return True

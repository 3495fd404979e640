"""The graphql-transport-ws transport: frame validation, close codes, keep-alive, token expiry and a bounded writer.

Strawberry executes the operations; this package decides what may reach it and owns everything the socket sends.
`messages` is the wire (close codes, frame validation), `outbound` the writer, `handler` the server side of the
protocol; connection slots are with the other limits (tidings.limits).
"""

from tidings.protocol.handler import TransportHost, TransportWSHandler
from tidings.protocol.messages import CloseCode, InvalidMessage, fit_reason, parse_message
from tidings.protocol.outbound import Outbound, result_too_large

__all__ = [
    "CloseCode",
    "InvalidMessage",
    "Outbound",
    "TransportHost",
    "TransportWSHandler",
    "fit_reason",
    "parse_message",
    "result_too_large",
]

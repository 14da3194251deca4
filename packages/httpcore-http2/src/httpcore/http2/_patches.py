"""Where this package departs from h2's own behaviour, with the reason beside each departure.

Everything that subclasses h2, replaces one of its parts or reads one of its private
attributes is here, and nowhere else, so that an h2 upgrade is checked in one place (the
`h2-oldest` test environment runs h2 3.2.0; 4.x is the default). `new_h2_connection()` builds
the client connection the rest of the package uses.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import h2.config
import h2.connection
import h2.settings
import hpack

_SettingCodes = h2.settings.SettingCodes

#: h2's connection state machine once it is closed for good (after a protocol error or
#: after we closed it); nothing is sent or received any more.
H2_CLOSED = h2.connection.ConnectionState.CLOSED

CONFIG = h2.config.H2Configuration(
    client_side=True,
    validate_inbound_headers=False,
    # The request headers are built already lower-cased and valid for HTTP/2 (`_headers.py`).
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)


class GracefulStateMachine(h2.connection.H2ConnectionStateMachine):  # type: ignore[misc,unused-ignore]
    """h2's connection state machine, except that a received GOAWAY keeps the connection open.

    RFC 9113 §6.8: streams up to the GOAWAY's last-stream-id still complete. h2 would refuse
    every frame after a GOAWAY; here the connection keeps processing them, and the connection
    opens no new stream once a GOAWAY was seen (its health is DRAINING).
    """

    _transitions = dict(h2.connection.H2ConnectionStateMachine._transitions)
    _transitions[
        (h2.connection.ConnectionState.CLIENT_OPEN, h2.connection.ConnectionInputs.RECV_GOAWAY)
    ] = (None, h2.connection.ConnectionState.CLIENT_OPEN)


class RepeatDecoder(hpack.Decoder):  # type: ignore[misc,unused-ignore]
    """An HPACK decoder that remembers the header blocks it decoded without touching its
    dynamic table.

    Servers tend to send the same response headers again and again, many (nginx among them)
    as Huffman-coded literals every time, whose decoding in pure Python costs more than the
    rest of a small response. Such a block, met again while the decoding state (the table's
    contents and size, the limits) is the same, decodes to the same headers and leaves that
    state alone: a dict lookup does instead.
    """

    MEMO_SIZE = 64

    def __init__(self) -> None:
        super().__init__()
        self._memo: Dict[bytes, Tuple[Tuple[Any, ...], Tuple[Any, ...]]] = {}
        self._table_changes = 0
        table = self.header_table
        add = table.add

        # hpack has no hook for "the dynamic table changed": count the additions instead.
        def counting_add(name: bytes, value: bytes) -> None:
            was_empty = not table.dynamic_entries
            add(name, value)
            # An entry too big for the table (any entry when the server set its size to 0,
            # as nginx does) leaves an empty table empty: no change.
            if table.dynamic_entries or not was_empty:
                self._table_changes += 1

        table.add = counting_add  # type: ignore[method-assign]

    def decode(self, data: bytes, raw: bool = False) -> Any:
        state = (
            self._table_changes,
            self.header_table.maxsize,
            self.max_header_list_size,
            self.max_allowed_table_size,
            raw,
        )
        memo = self._memo
        known = memo.get(data)
        if known is not None and known[0] == state:
            return list(known[1])
        headers = super().decode(data, raw)
        if self._table_changes == state[0] and self.header_table.maxsize == state[1]:
            if len(memo) >= self.MEMO_SIZE:
                memo.clear()
            memo[bytes(data)] = (state, tuple(headers))
        return headers


class H2Connection(h2.connection.H2Connection):  # type: ignore[misc,unused-ignore]
    """An h2 client connection that finishes the streams a GOAWAY lets complete, and decodes
    repeated response headers from memory."""

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config=config)
        self.state_machine = GracefulStateMachine()
        decoder = RepeatDecoder()
        decoder.max_header_list_size = self.decoder.max_header_list_size
        decoder.max_allowed_table_size = self.decoder.max_allowed_table_size
        self.decoder = decoder

    def clear_outbound_data_buffer(self) -> None:
        # h2 drops queued frames when a GOAWAY arrives; they may be window updates or body
        # data of streams that are still allowed to complete, so they are kept.
        return None

    def has_data_to_send(self) -> bool:
        """Whether frames are queued. h2 has no public way to ask: `data_to_send()` takes
        them, and only the writer may (see `_writer.py`)."""
        return bool(self._data_to_send)

    def is_closed(self) -> bool:
        return self.state_machine.state is H2_CLOSED


def new_h2_connection(config: h2.config.H2Configuration = CONFIG) -> H2Connection:
    """The client-side h2 connection, with our local SETTINGS (not yet sent)."""
    h2_state = H2Connection(config=config)
    h2_state.local_settings = h2.settings.Settings(
        client=True,
        initial_values={
            _SettingCodes.ENABLE_PUSH: 0,
            _SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            _SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
        },
    )
    # h2 4.x puts SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441, value 0) in every SETTINGS
    # frame. It is the server's setting to send; left out, the client's preface is the same
    # under h2 3.x and 4.x.
    connect_protocol = getattr(_SettingCodes, "ENABLE_CONNECT_PROTOCOL", None)
    if connect_protocol is not None and connect_protocol in h2_state.local_settings:
        del h2_state.local_settings[connect_protocol]
    return h2_state
